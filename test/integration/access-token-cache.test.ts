import { randomBytes, randomUUID } from 'node:crypto';
import { AuthLostError, createAccessBroker, createTokenCache } from '../../src/credentials/access';
import { createVault, type Vault } from '../../src/credentials/vault';
import { Keyring } from '../../src/crypto/keyring';
import { insertConnection } from '../../src/db/connections';
import { createSql, type Sql } from '../../src/db/sql';
import { createTenant } from '../../src/db/tenants';
import type { Provider } from '../../src/domain/connection';
import { createBitbucketOAuth } from '../../src/providers/bitbucket/oauth';
import { createProviders, type Providers } from '../../src/providers/registry';
import { startBitbucketSimulator, type BitbucketSimulator } from '../../simulators/bitbucket';
import { startBitriseSimulator, type BitriseSimulator } from '../../simulators/bitrise';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

/**
 * A sync step keeps its access token for the whole step (one vault read and decryption instead of
 * one per request). What must not change with it: a credential replaced while the step runs is
 * used from the next 401 on, a revoked one is still lost access, and an OAuth token about to expire
 * is refreshed rather than reused.
 */

const CONSUMER = { clientId: 'cache-test', clientSecret: `secret-${randomBytes(8).toString('hex')}` };

let db: TestDatabase;
let sql: Sql;
let vault: Vault;
let bitrise: BitriseSimulator;
let bitbucket: BitbucketSimulator;
let providers: Providers;
let tenantId: string;

beforeAll(async () => {
  db = await createTestDatabase();
  sql = createSql(db.url, { max: 3 });
  vault = createVault(sql, new Keyring([randomBytes(32)]));
  bitrise = await startBitriseSimulator();
  bitbucket = await startBitbucketSimulator({ consumers: [CONSUMER] });
  providers = createProviders({
    bitbucket: {
      apiUrl: bitbucket.apiUrl,
      oauthUrl: bitbucket.oauthUrl,
      platformOAuthClient: CONSUMER,
      requestsPerHour: 3_600_000,
      refreshGraceMs: 0,
    },
    bitrise: { apiUrl: bitrise.apiUrl, requestsPerHour: 3_600_000 },
  });
  tenantId = (await createTenant(sql, 'token cache')).tenant.id;
});

afterAll(async () => {
  await sql?.end({ timeout: 5 });
  await bitrise?.close();
  await bitbucket?.close();
  await db?.drop();
});

async function connection(provider: Provider): Promise<string> {
  const id = randomUUID();
  await insertConnection(sql, { id, tenantId, provider, name: null, syncIntervalSeconds: 3600, returnUrl: null });
  return id;
}

async function attachBitriseToken(connectionId: string, token: string): Promise<void> {
  await vault.activate(connectionId, await vault.storePending(connectionId, 'bitrise_token', { token }));
}

/** Counts the vault reads a broker makes, on a real vault. */
function countingBroker(now?: () => number) {
  let reads = 0;
  const counted: Vault = {
    ...vault,
    openActive: (...args: Parameters<Vault['openActive']>) => {
      reads += 1;
      return vault.openActive(...args);
    },
  };
  return { broker: createAccessBroker({ vault: counted, providers, now }), reads: () => reads };
}

describe('a step’s kept token', () => {
  it('is read from the vault once for all of a step’s requests', async () => {
    const id = await connection('bitrise');
    await attachBitriseToken(id, bitrise.control.createToken());
    const { broker, reads } = countingBroker();
    const cache = createTokenCache();
    for (let i = 0; i < 5; i++) await broker.withAccess(id, 'bitrise', (token) => providers.bitrise.getAccount(token), cache);
    expect(reads()).toBe(1);
    // Without a cache, every call reads the vault, as before.
    await broker.withAccess(id, 'bitrise', (token) => providers.bitrise.getAccount(token));
    expect(reads()).toBe(2);
  });

  it('gives way to a credential attached meanwhile, at the first 401, without losing access', async () => {
    const id = await connection('bitrise');
    const first = bitrise.control.createToken();
    await attachBitriseToken(id, first);
    const { broker } = countingBroker();
    const cache = createTokenCache();
    const used: string[] = [];
    const call = () =>
      broker.withAccess(
        id,
        'bitrise',
        (token) => {
          used.push(token);
          return providers.bitrise.getAccount(token);
        },
        cache,
      );
    await call();
    // The customer replaces the token (and revokes the old one) while the step runs.
    const second = bitrise.control.createToken();
    await attachBitriseToken(id, second);
    bitrise.control.revokeToken(first);
    await expect(call()).resolves.toBeDefined();
    expect(used).toEqual([first, first, second]);
    // And the new token is kept from then on.
    await call();
    expect(used.at(-1)).toBe(second);
  });

  it('is lost access when the current credential itself is refused: no extra request to the provider', async () => {
    const id = await connection('bitrise');
    const token = bitrise.control.createToken();
    await attachBitriseToken(id, token);
    const { broker } = countingBroker();
    const cache = createTokenCache();
    let calls = 0;
    const call = () =>
      broker.withAccess(
        id,
        'bitrise',
        (t) => {
          calls += 1;
          return providers.bitrise.getAccount(t);
        },
        cache,
      );
    await call();
    bitrise.control.revokeToken(token);
    const lost = call();
    await expect(lost).rejects.toBeInstanceOf(AuthLostError);
    await expect(lost).rejects.toMatchObject({ code: 'token_revoked' });
    expect(calls).toBe(2);
  });

  it('is refreshed, not reused, once an OAuth token is about to expire', async () => {
    const id = await connection('bitbucket');
    const redirectUri = 'http://127.0.0.1/cache-test/callback';
    const authorize = new URL(`${bitbucket.oauthUrl}/authorize`);
    for (const [k, v] of Object.entries({ client_id: CONSUMER.clientId, response_type: 'code', redirect_uri: redirectUri, state: 's' }))
      authorize.searchParams.set(k, v);
    const res = await fetch(authorize, { redirect: 'manual' });
    const code = new URL(res.headers.get('location')!).searchParams.get('code')!;
    const tokens = await createBitbucketOAuth({ oauthUrl: bitbucket.oauthUrl }).exchangeCode(CONSUMER, code, redirectUri);
    const credentialId = await vault.storePending(
      id,
      'bitbucket_oauth',
      { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken },
      tokens.expiresAt,
    );
    await vault.activate(id, credentialId);
    const grant = bitbucket.control.grants().at(-1)!;

    let clock = Date.now();
    const { broker } = countingBroker(() => clock);
    const cache = createTokenCache();
    const used: string[] = [];
    const call = () =>
      broker.withAccess(
        id,
        'bitbucket',
        (token) => {
          used.push(token);
          return providers.bitbucket.getAccount(token);
        },
        cache,
      );
    await call();
    expect(bitbucket.control.refreshCount(grant.id)).toBe(0);
    // Within the refresh margin (five minutes) of its expiry: the kept token must not be used.
    clock = Date.parse(tokens.expiresAt) - 60_000;
    await call();
    expect(bitbucket.control.refreshCount(grant.id)).toBe(1);
    expect(used[1]).not.toBe(used[0]);
    // The refreshed token is kept.
    await call();
    expect(used[2]).toBe(used[1]);
    expect(bitbucket.control.refreshCount(grant.id)).toBe(1);
  });
});
