import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../src/config';
import { temporalConnectionOptions } from '../../src/temporal/connection';

const key = () => randomBytes(32).toString('base64');
const minimal = () => ({ DATABASE_URL: 'postgres://u:p@localhost:5432/conduit', ADMIN_TOKEN: 'a'.repeat(32), ENCRYPTION_KEY: key() });

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const c = loadConfig(minimal());
    expect(c.temporal).toMatchObject({ address: 'localhost:7233', namespace: 'default', taskQueue: 'conduit', apiKey: undefined });
    expect(c.metrics).toEqual({ token: undefined, workerPort: 0 });
    expect(c.http.trustProxy).toBe(false);
    expect(c.providers.bitbucket.apiUrl).toBe('https://api.bitbucket.org/2.0');
    expect(c.providers.bitbucket.oauthUrl).toBe('https://bitbucket.org/site/oauth2');
    expect(c.providers.bitrise.apiUrl).toBe('https://api.bitrise.io/v0.1');
    expect(c.syncIntervalSeconds).toBe(3600);
    expect(c.http.port).toBe(3000);
    expect(c.events).toEqual({ heartbeatSeconds: 15, retentionDays: 30 });
    expect(c.webhooks).toEqual({
      allowInsecureUrls: false,
      retry: { initialIntervalMs: 10_000, maximumIntervalMs: 3_600_000, giveUpAfterMs: 3 * 86_400_000 },
      sweepIntervalSeconds: 60,
      maxConcurrentDeliveries: 50,
    });
  });

  it('lists every bad variable at once, without echoing secret values', () => {
    const secret = 'not-base64-of-32-bytes-SECRET';
    let error: unknown;
    try {
      loadConfig({ DATABASE_URL: 'mysql://x', ENCRYPTION_KEY: secret, SYNC_INTERVAL_SECONDS: '5' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    for (const name of ['DATABASE_URL', 'ADMIN_TOKEN', 'ENCRYPTION_KEY', 'SYNC_INTERVAL_SECONDS']) expect(problems).toContain(name);
    expect((error as Error).message).not.toContain(secret);
  });

  it('security settings: safe defaults, CORS origins parsed, insecure return origins only on request', () => {
    const c = loadConfig(minimal());
    expect(c.allowInsecureReturnOrigins).toBe(false);
    expect(c.corsOrigins).toEqual([]);
    expect(c.rateLimit).toEqual({ apiKeyPerMinute: 600, adminPerMinute: 30, oauthPerMinute: 60, invitePerMinute: 30 });
    expect(c.pendingCredentialTtlSeconds).toBe(86400);
    expect(c.purgeIntervalSeconds).toBe(300);
    const d = loadConfig({
      ...minimal(),
      ALLOW_INSECURE_RETURN_ORIGINS: 'true',
      CORS_ORIGINS: ' https://app.example.com/ ,http://localhost:5173',
    });
    expect(d.allowInsecureReturnOrigins).toBe(true);
    expect(d.corsOrigins).toEqual(['https://app.example.com', 'http://localhost:5173']);
    expect(() => loadConfig({ ...minimal(), CORS_ORIGINS: 'javascript:alert(1)' })).toThrow(/CORS_ORIGINS/);
    expect(() => loadConfig({ ...minimal(), RATE_LIMIT_API_KEY_PER_MINUTE: '0' })).toThrow(/RATE_LIMIT_API_KEY_PER_MINUTE/);
  });

  it('accepts old keys after the current one for rotation', () => {
    const [current, old] = [key(), key()];
    const c = loadConfig({ ...minimal(), ENCRYPTION_KEY: `${current}, ${old}` });
    expect(c.encryptionKeys.map((k) => k.toString('base64'))).toEqual([current, old]);
  });

  it('requires the Bitbucket consumer id and secret together', () => {
    expect(() => loadConfig({ ...minimal(), BITBUCKET_CLIENT_ID: 'id' })).toThrow(/BITBUCKET_CLIENT_SECRET/);
    expect(
      loadConfig({ ...minimal(), BITBUCKET_CLIENT_ID: 'id', BITBUCKET_CLIENT_SECRET: 's' }).providers.bitbucket.platformOAuthClient
        ?.clientId,
    ).toBe('id');
  });

  it('strips trailing slashes from URLs so paths join cleanly', () => {
    expect(
      loadConfig({ ...minimal(), PUBLIC_URL: 'https://conduit.example.com/', BITRISE_API_URL: 'http://sim/v0.1/' }).http.publicUrl,
    ).toBe('https://conduit.example.com');
  });

  it('operations settings: metrics token and port, trusted proxies', () => {
    const c = loadConfig({ ...minimal(), METRICS_TOKEN: 'm'.repeat(20), WORKER_METRICS_PORT: '9464', TRUST_PROXY: '1' });
    expect(c.metrics).toEqual({ token: 'm'.repeat(20), workerPort: 9464 });
    const oneHop = c.http.trustProxy as (address: string, hop: number) => boolean;
    expect([oneHop('10.0.0.2', 0), oneHop('10.0.0.3', 1)]).toEqual([true, false]);
    expect(loadConfig({ ...minimal(), TRUST_PROXY: '10.0.0.0/8, 127.0.0.1' }).http.trustProxy).toEqual(['10.0.0.0/8', '127.0.0.1']);
    expect(loadConfig({ ...minimal(), METRICS_TOKEN: '' }).metrics.token).toBeUndefined();
    expect(() => loadConfig({ ...minimal(), METRICS_TOKEN: 'short' })).toThrow(/METRICS_TOKEN/);
    expect(() => loadConfig({ ...minimal(), TRUST_PROXY: 'everyone' })).toThrow(/TRUST_PROXY/);
    expect(() => loadConfig({ ...minimal(), WORKER_METRICS_PORT: '70000' })).toThrow(/WORKER_METRICS_PORT/);
  });
});

describe('Temporal connection options (TLS, API key)', () => {
  const options = (env: Record<string, string>) => temporalConnectionOptions(loadConfig({ ...minimal(), ...env }).temporal);

  it('plaintext by default; an API key alone is left to the SDK, which then uses TLS', () => {
    expect(options({})).toEqual({ address: 'localhost:7233' });
    expect(options({ TEMPORAL_API_KEY: 'key-1', TEMPORAL_ADDRESS: 'eu-west-1.aws.api.temporal.io:7233' })).toEqual({
      address: 'eu-west-1.aws.api.temporal.io:7233',
      apiKey: 'key-1',
    });
    expect(options({ TEMPORAL_TLS: 'true' })).toEqual({ address: 'localhost:7233', tls: true });
    expect(options({ TEMPORAL_TLS: 'false', TEMPORAL_API_KEY: 'key-1' })).toEqual({
      address: 'localhost:7233',
      tls: false,
      apiKey: 'key-1',
    });
  });

  it('reads the client pair and the CA from their files, and names a file it cannot read', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-tls-'));
    try {
      for (const f of ['client.pem', 'client.key', 'ca.pem']) fs.writeFileSync(path.join(dir, f), `-----${f}-----`);
      const tls = {
        TEMPORAL_TLS_CERT: path.join(dir, 'client.pem'),
        TEMPORAL_TLS_KEY: path.join(dir, 'client.key'),
        TEMPORAL_TLS_CA: path.join(dir, 'ca.pem'),
        TEMPORAL_TLS_SERVER_NAME: 'temporal.internal',
      };
      expect(options(tls)).toEqual({
        address: 'localhost:7233',
        tls: {
          clientCertPair: { crt: Buffer.from('-----client.pem-----'), key: Buffer.from('-----client.key-----') },
          serverRootCACertificate: Buffer.from('-----ca.pem-----'),
          serverNameOverride: 'temporal.internal',
        },
      });
      expect(() => options({ ...tls, TEMPORAL_TLS_CA: path.join(dir, 'missing.pem') })).toThrow(/TEMPORAL_TLS_CA .*missing\.pem: ENOENT/);
      expect(() => loadConfig({ ...minimal(), TEMPORAL_TLS_CERT: tls.TEMPORAL_TLS_CERT })).toThrow(/TEMPORAL_TLS_KEY/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
