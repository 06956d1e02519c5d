import { randomUUID } from 'node:crypto';
import { createSql, type Sql } from '../../src/db/sql';
import { takeRequestToken } from '../../src/sync/rate-bucket';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

/** The shared request budget, against real Postgres, from two pools standing for two workers. */

let db: TestDatabase;
let pools: Sql[];

beforeAll(async () => {
  db = await createTestDatabase();
  pools = [createSql(db.url, { max: 4 }), createSql(db.url, { max: 4 })];
});

afterAll(async () => {
  await Promise.all(pools.map((p) => p.end()));
  await db.drop();
});

it('lets a minute’s burst through, then spaces requests at the hourly rate', async () => {
  const key = `test:${randomUUID()}`;
  const waits: number[] = [];
  for (let i = 0; i < 62; i++) waits.push(await takeRequestToken(pools[0]!, key, 3600));
  expect(waits.slice(0, 60).every((w) => w === 0)).toBe(true);
  // 1 request/second: the 61st waits about a second, the 62nd about two (minus the moments spent here).
  expect(waits[60]).toBeGreaterThan(500);
  expect(waits[60]).toBeLessThanOrEqual(1000);
  expect(waits[61]).toBeGreaterThan(1500);
  expect(waits[61]).toBeLessThanOrEqual(2000);
});

it('is one budget across workers: concurrent takers queue up instead of all going at once', async () => {
  const key = `test:${randomUUID()}`;
  const takes = pools.flatMap((pool) => Array.from({ length: 60 }, () => takeRequestToken(pool, key, 3600)));
  const waits = (await Promise.all(takes)).sort((a, b) => a - b);
  const immediate = waits.filter((w) => w === 0).length;
  expect(immediate).toBeGreaterThanOrEqual(60);
  expect(immediate).toBeLessThanOrEqual(62);
  // The other 60 are spread over the next minute, one slot each.
  expect(waits[119]).toBeGreaterThan(55_000);
  expect(new Set(waits.slice(immediate).map((w) => Math.round(w / 1000))).size).toBeGreaterThan(50);
});

it('keeps separate budgets apart', async () => {
  const [a, b] = [`test:${randomUUID()}`, `test:${randomUUID()}`];
  for (let i = 0; i < 60; i++) await takeRequestToken(pools[0]!, a, 3600);
  expect(await takeRequestToken(pools[0]!, a, 3600)).toBeGreaterThan(0);
  expect(await takeRequestToken(pools[0]!, b, 3600)).toBe(0);
});
