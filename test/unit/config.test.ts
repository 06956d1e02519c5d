import { randomBytes } from 'node:crypto';
import { ConfigError, loadConfig } from '../../src/config';

const key = () => randomBytes(32).toString('base64');
const minimal = () => ({ DATABASE_URL: 'postgres://u:p@localhost:5432/conduit', ADMIN_TOKEN: 'a'.repeat(32), ENCRYPTION_KEY: key() });

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const c = loadConfig(minimal());
    expect(c.temporal).toEqual({ address: 'localhost:7233', namespace: 'default', taskQueue: 'conduit' });
    expect(c.bitbucket.apiUrl).toBe('https://api.bitbucket.org/2.0');
    expect(c.bitbucket.oauthUrl).toBe('https://bitbucket.org/site/oauth2');
    expect(c.bitrise.apiUrl).toBe('https://api.bitrise.io/v0.1');
    expect(c.syncIntervalSeconds).toBe(3600);
    expect(c.http.port).toBe(3000);
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

  it('accepts old keys after the current one for rotation', () => {
    const [current, old] = [key(), key()];
    const c = loadConfig({ ...minimal(), ENCRYPTION_KEY: `${current}, ${old}` });
    expect(c.encryptionKeys.map((k) => k.toString('base64'))).toEqual([current, old]);
  });

  it('requires the Bitbucket consumer id and secret together', () => {
    expect(() => loadConfig({ ...minimal(), BITBUCKET_CLIENT_ID: 'id' })).toThrow(/BITBUCKET_CLIENT_SECRET/);
    expect(loadConfig({ ...minimal(), BITBUCKET_CLIENT_ID: 'id', BITBUCKET_CLIENT_SECRET: 's' }).bitbucket.clientId).toBe('id');
  });

  it('strips trailing slashes from URLs so paths join cleanly', () => {
    expect(loadConfig({ ...minimal(), PUBLIC_URL: 'https://conduit.example.com/', BITRISE_API_URL: 'http://sim/v0.1/' }).http.publicUrl).toBe('https://conduit.example.com');
  });
});
