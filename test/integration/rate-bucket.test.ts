import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { createSql, type Sql } from '../../src/db/sql';
import {
  budgetLimits,
  leaveSplit,
  returnToken,
  takeToken,
  type Asker,
  type BucketState,
  type Decision,
  type FlowState,
} from '../../src/sync/budget';
import { leaveRequestBudget, returnRequestToken, takeRequestToken } from '../../src/sync/rate-bucket';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

/**
 * The shared request budget in real Postgres (`take_request_token`, migration 00012), from two pools
 * standing for two workers: it makes the same decisions as the pure rules of src/sync/budget.ts
 * (random histories through both), its row lock keeps concurrent callers from overdrawing it, a
 * cancelled wait's token comes back, and a connection that stops asking leaves the split by itself.
 */

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

const owed = (flow: string, tenant = flow): Asker => ({ flow, tenant, draw: 1 - 1e-12 });
// Explicit instants (whole milliseconds, as a Date holds them) ahead of the real clock, so a return or
// a leave (which use Postgres's clock) lands before every later ask, as in the pure rules.
const BASE_MS = Date.now() + 10 * 365 * 86_400_000;
const instant = (ms: number) => new Date(ms);

async function bucketRow(key: string) {
  const [row] = await pools[0]!<{ tokens: number }[]>`select tokens from rate_buckets where key = ${key}`;
  return row;
}

async function flowRow(key: string, flow: string) {
  const [row] = await pools[0]!<{ credit: number; returned: string; active: boolean }[]>`
    select credit, returned, active_until > clock_timestamp() as active from rate_bucket_flows where bucket = ${key} and flow = ${flow}`;
  return row;
}

it('decides as the pure rules do, whatever the history', async () => {
  const step = fc.record({
    dtMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 20_000 })),
    flow: fc.integer({ min: 0, max: 5 }),
    draw: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
    then: fc.constantFrom('nothing', 'return', 'leave'),
  });
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        perHour: fc.integer({ min: 60, max: 20_000 }),
        maxWait: fc.integer({ min: 0, max: 30 }),
        grace: fc.integer({ min: 0, max: 20 }),
      }),
      fc.array(step, { minLength: 1, maxLength: 40 }),
      async ({ perHour, maxWait, grace }, steps) => {
        const limits = budgetLimits(perHour, maxWait, grace);
        const key = `test:${randomUUID()}`;
        let bucket: BucketState | undefined;
        const flows = new Map<string, FlowState>();
        let ms = BASE_MS;
        for (const [i, s] of steps.entries()) {
          ms += s.dtMs;
          const asker = { flow: `f${s.flow}`, tenant: `t${s.flow % 3}`, draw: s.draw };
          // The rules only ever use differences of instants: counted from BASE_MS, doubles keep them exact.
          const now = (ms - BASE_MS) / 1000;
          const expected = takeToken(limits, bucket, flows, asker, now);
          const got = await takeRequestToken(pools[i % 2]!, key, asker, limits, instant(ms));
          expectSameDecision(got, expected.decision);
          if (expected.bucket) bucket = expected.bucket;
          if (expected.flow) flows.set(asker.flow, expected.flow);
          if (s.then === 'return' && expected.decision.granted && expected.decision.waitSeconds > 0) {
            bucket = returnToken(limits, bucket!);
            flows.set(asker.flow, leaveSplit(flows.get(asker.flow)!, now));
            await returnRequestToken(pools[0]!, key, asker.flow, limits);
          } else if (s.then === 'leave' && flows.has(asker.flow)) {
            flows.set(asker.flow, leaveSplit(flows.get(asker.flow)!, now));
            await leaveRequestBudget(pools[1]!, key, asker.flow);
          }
          expect((await bucketRow(key))!.tokens).toBeCloseTo(bucket?.tokens ?? limits.burst, 6);
        }
      },
    ),
    { numRuns: 50 },
  );
});

function expectSameDecision(got: Decision, expected: Decision) {
  expect(got.granted).toBe(expected.granted);
  expect(got.againSeconds).toBeCloseTo(expected.againSeconds, 4);
  if (got.granted && expected.granted) expect(got.waitSeconds).toBeCloseTo(expected.waitSeconds, 4);
}

it('is one budget across workers: concurrent callers never overdraw it past the longest wait', async () => {
  const key = `test:${randomUUID()}`;
  const limits = budgetLimits(3600, 60); // 1 a second, 60 banked, waits in line up to 60 s
  const asks = Array.from({ length: 130 }, (_, i) => takeRequestToken(pools[i % 2]!, key, owed(`f${i}`), limits));
  const decisions = await Promise.all(asks);
  const granted = decisions.filter((d) => d.granted);
  const waits = granted.map((d) => d.waitSeconds).sort((a, b) => a - b);
  // The 60 banked are sent at once; about 60 more wait in line up to 60 s out, one a second; the
  // rest take nothing.
  expect(waits.filter((w) => w === 0).length).toBeGreaterThanOrEqual(60);
  expect(waits.filter((w) => w === 0).length).toBeLessThanOrEqual(61);
  expect(granted.length).toBeGreaterThanOrEqual(120);
  expect(granted.length).toBeLessThan(125);
  expect(waits.at(-1)).toBeLessThanOrEqual(60);
  const queued = waits.filter((w) => w > 0);
  expect(new Set(queued.map((w) => Math.ceil(w))).size).toBe(queued.length);
  expect((await bucketRow(key))!.tokens).toBeGreaterThanOrEqual(-60);
  for (const d of decisions.filter((d) => !d.granted)) expect(d.againSeconds).toBeGreaterThan(0);
});

it('keeps separate budgets apart', async () => {
  const [a, b] = [`test:${randomUUID()}`, `test:${randomUUID()}`];
  const limits = budgetLimits(3600, 0);
  for (let i = 0; i < 60; i++) await takeRequestToken(pools[0]!, a, owed(`f${i}`), limits);
  expect((await takeRequestToken(pools[0]!, a, owed('x'), limits)).granted).toBe(false);
  expect(await takeRequestToken(pools[0]!, b, owed('x'), limits)).toEqual({ granted: true, waitSeconds: 0, againSeconds: 0 });
});

it('takes back the token of a cancelled wait, and the connection leaves the split', async () => {
  const key = `test:${randomUUID()}`;
  const limits = budgetLimits(3600, 60);
  await pools[0]!`insert into rate_buckets (key, tokens, refilled_at) values (${key}, -10, clock_timestamp())`;
  const decision = await takeRequestToken(pools[0]!, key, owed('paused'), limits);
  expect(decision).toMatchObject({ granted: true, waitSeconds: expect.any(Number) });
  const before = (await bucketRow(key))!.tokens;
  expect((await flowRow(key, 'paused'))!.active).toBe(true);
  await returnRequestToken(pools[1]!, key, 'paused', limits);
  expect((await bucketRow(key))!.tokens).toBeCloseTo(before + 1, 9);
  expect(await flowRow(key, 'paused')).toMatchObject({ returned: '1', active: false });
});

it('a connection that stops asking (a killed step) leaves the split by itself: its share goes back to the others', async () => {
  const key = `test:${randomUUID()}`;
  const limits = budgetLimits(3600, 60, 0.2); // one a second; counted in the split 0.2 s past its next ask
  const t0 = BASE_MS;
  await pools[0]!`insert into rate_buckets (key, tokens, refilled_at) values (${key}, -10, ${instant(t0)})`;
  const joining = (flow: string, tenant: string, draw: number): Asker => ({ flow, tenant, draw });
  // "killed" (tenant A) is owed a token in 0.05 s, then never asks again.
  expect(await takeRequestToken(pools[0]!, key, joining('killed', 'A', 0.95), limits, instant(t0))).toEqual({
    granted: false,
    againSeconds: expect.closeTo(0.05, 9),
  });
  // b (tenant B) shares the rate with it: half a token a second, so a whole one takes 2 s.
  expect(await takeRequestToken(pools[1]!, key, joining('b', 'B', 0), limits, instant(t0))).toEqual({
    granted: false,
    againSeconds: expect.closeTo(2, 9),
  });
  // At 0.5 s "killed" has left the split (0.05 + 0.2 s): b has the whole rate, so half a token by
  // now and the rest in 0.5 s (it would be 1.5 s more at half the rate).
  expect(await takeRequestToken(pools[1]!, key, joining('b', 'B', 0), limits, instant(t0 + 500))).toEqual({
    granted: false,
    againSeconds: expect.closeTo(0.5, 9),
  });
});
