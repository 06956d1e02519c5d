import { createTenantCache, type TenantCache } from '../../src/api/tenant-cache';
import { sha256 } from '../../src/crypto/tokens';
import { createSql, type Sql } from '../../src/db/sql';
import { createTenant, setAllowedReturnOrigins } from '../../src/db/tenants';
import { waitFor } from '../helpers/stack';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

/**
 * API keys → tenants are cached per API process. What must hold: a tenant change made through any
 * replica reaches every replica at once (announced on commit), nothing outlives the TTL, a wrong
 * key is never cached, and a lookup that raced an announcement does not store what it read.
 */

let db: TestDatabase;
let pools: Sql[];
let caches: TenantCache[];
let clock = Date.now();

beforeAll(async () => {
  db = await createTestDatabase();
  // Two pools stand for two API replicas.
  pools = [createSql(db.url, { max: 2 }), createSql(db.url, { max: 2 })];
  caches = await Promise.all(pools.map((sql) => createTenantCache(sql, { ttlMs: 60_000, now: () => clock })));
});

afterAll(async () => {
  await Promise.all(caches.map((c) => c.close()));
  await Promise.all(pools.map((p) => p.end({ timeout: 5 })));
  await db.drop();
});

const rename = (sql: Sql, id: string, name: string) => sql`update tenants set name = ${name} where id = ${id}`;

it('serves a key from memory until the TTL ends', async () => {
  const [sql] = pools;
  const { tenant, apiKey } = await createTenant(sql!, 'Acme');
  expect((await caches[0]!.byApiKey(apiKey))?.name).toBe('Acme');
  // A change nobody announced (not how the code changes tenants): the cached tenant is served...
  await rename(sql!, tenant.id, 'Acme renamed');
  expect((await caches[0]!.byApiKey(apiKey))?.name).toBe('Acme');
  // ...until its TTL runs out.
  clock += 60_001;
  expect((await caches[0]!.byApiKey(apiKey))?.name).toBe('Acme renamed');
});

it('drops a tenant on every replica as soon as a change to it commits', async () => {
  const { tenant, apiKey } = await createTenant(pools[0]!, 'Globex');
  for (const cache of caches) expect((await cache.byApiKey(apiKey))?.allowedReturnOrigins).toEqual([]);
  await setAllowedReturnOrigins(pools[0]!, tenant.id, ['https://app.globex.example']);
  for (const cache of caches) {
    await waitFor(
      async () => (await cache.byApiKey(apiKey))?.allowedReturnOrigins[0] === 'https://app.globex.example',
      10_000,
      'the change to reach the replica',
    );
  }
});

it('never caches a wrong key', async () => {
  const apiKey = `cdk_not_yet_${Date.now()}`;
  expect(await caches[0]!.byApiKey(apiKey)).toBeUndefined();
  // The same key becoming valid (as a key rotation would make it) works at once.
  const { tenant } = await createTenant(pools[0]!, 'Initech');
  await pools[0]!`update tenants set api_key_hash = ${sha256(apiKey)} where id = ${tenant.id}`;
  expect((await caches[0]!.byApiKey(apiKey))?.id).toBe(tenant.id);
});

it('does not store a lookup that raced an announcement', async () => {
  const { tenant, apiKey } = await createTenant(pools[0]!, 'Umbrella');
  const lookup = caches[1]!.byApiKey(apiKey);
  // Announced while the lookup's read is in flight: what it read may predate the change.
  caches[1]!.forget(tenant.id);
  expect((await lookup)?.name).toBe('Umbrella');
  await rename(pools[0]!, tenant.id, 'Umbrella renamed');
  expect((await caches[1]!.byApiKey(apiKey))?.name).toBe('Umbrella renamed');
});

it('reads the database every time with a TTL of 0', async () => {
  const cache = await createTenantCache(pools[0]!, { ttlMs: 0 });
  const { tenant, apiKey } = await createTenant(pools[0]!, 'Hooli');
  expect((await cache.byApiKey(apiKey))?.name).toBe('Hooli');
  await rename(pools[0]!, tenant.id, 'Hooli renamed');
  expect((await cache.byApiKey(apiKey))?.name).toBe('Hooli renamed');
  await cache.close();
});
