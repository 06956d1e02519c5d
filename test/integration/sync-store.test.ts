import { randomBytes, randomUUID } from 'node:crypto';
import { insertConnection } from '../../src/db/connections';
import { createSql, type Sql } from '../../src/db/sql';
import { startRun } from '../../src/db/sync-runs';
import { createTenant } from '../../src/db/tenants';
import { BITBUCKET_TABLES } from '../../src/providers/bitbucket/tables';
import { BITRISE_TABLES } from '../../src/providers/bitrise/tables';
import { commitPage, readCursor, type RecordRow } from '../../src/sync/store';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

/**
 * A page is written as one statement (rows as one jsonb parameter, the cursor and the progress mark
 * in the same statement). What that must keep: every typed column as the driver stored it before
 * (arrays, numerics, booleans, microsecond timestamps), the last copy of a duplicate, `updated_at`
 * moving only when `raw` changes, and all or nothing for rows + cursor + progress.
 */

let db: TestDatabase;
let sql: Sql;
let connectionId: string;
let runId: string;

beforeAll(async () => {
  db = await createTestDatabase();
  sql = createSql(db.url, { max: 2 });
  const { tenant } = await createTenant(sql, 'store');
  connectionId = randomUUID();
  await insertConnection(sql, {
    id: connectionId,
    tenantId: tenant.id,
    provider: 'bitrise',
    name: null,
    syncIntervalSeconds: 3600,
    returnUrl: null,
  });
  runId = randomUUID();
  await startRun(sql, connectionId, runId);
});

afterAll(async () => {
  await sql?.end({ timeout: 5 });
  await db?.drop();
});

const build = (id: string, over: Record<string, unknown> = {}): RecordRow => ({
  id,
  // Parsed, as a provider's body is: "__proto__" is then an own key, data like any other.
  raw: { slug: id, nested: JSON.parse('{"list":[1,"two",null],"__proto__":{"kept":true}}') as unknown, ...over },
  values: {
    app_id: 'app-1',
    build_number: 7,
    status: 1,
    status_text: 'success',
    credit_cost: 12.345,
    pull_request_id: null,
    is_on_hold: false,
    triggered_at: '2026-01-15T12:00:00.123456Z',
    ...over,
  },
});

it('stores typed columns, raw and the cursor in one commit; the last copy of a duplicate wins', async () => {
  const n = await commitPage(sql, {
    connectionId,
    runId,
    spec: BITRISE_TABLES.builds,
    rows: [build('b1', { status: 0 }), build('b2'), build('b1', { status: 2, status_text: 'failed' })],
    cursor: { resource: 'builds', scope: 'app-1', value: { after: 1768478400 } },
  });
  expect(n).toBe(2);
  const rows = await sql`
    select id, build_number, status, status_text, credit_cost::text as cost, pull_request_id, is_on_hold,
           to_char(triggered_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as triggered, raw,
           (raw -> 'nested')::text as nested
    from bitrise_builds where connection_id = ${connectionId} order by id`;
  expect(rows).toEqual([
    {
      id: 'b1',
      buildNumber: 7,
      status: 2,
      statusText: 'failed',
      cost: '12.345',
      pullRequestId: null,
      isOnHold: false,
      triggered: '2026-01-15T12:00:00.123456Z',
      raw: expect.objectContaining({ slug: 'b1', status: 2 }),
      nested: expect.any(String),
    },
    expect.objectContaining({ id: 'b2', status: 1, statusText: 'success' }),
  ]);
  // A "__proto__" key in raw is data, stored as such.
  expect(JSON.parse(rows[0]!.nested as string)).toEqual(JSON.parse('{"list":[1,"two",null],"__proto__":{"kept":true}}'));
  expect(Object.keys(JSON.parse(rows[0]!.nested as string) as object)).toContain('__proto__');
  expect(await readCursor(sql, connectionId, 'builds', 'app-1')).toEqual({ after: 1768478400 });
  const [run] = await sql`select last_progress_at from sync_runs where id = ${runId}`;
  expect(run!.lastProgressAt).toBeInstanceOf(Date);
});

it('stores array columns (a commit’s parents) as arrays', async () => {
  await sql`update connections set provider = 'bitbucket' where id = ${connectionId}`;
  await commitPage(sql, {
    connectionId,
    runId,
    spec: BITBUCKET_TABLES.commits,
    rows: [
      {
        id: '{repo}/abc',
        raw: { hash: 'abc' },
        values: { repository_id: '{repo}', hash: 'abc', committed_at: '2026-01-01T00:00:00Z', parent_hashes: ['p1', 'p2'] },
      },
    ],
  });
  const [row] = await sql`select parent_hashes from bitbucket_commits where connection_id = ${connectionId}`;
  expect(row!.parentHashes).toEqual(['p1', 'p2']);
});

it('moves updated_at only when raw changes', async () => {
  const stamp = async () =>
    (await sql`select updated_at::text as at from bitrise_builds where connection_id = ${connectionId} and id = 'b2'`)[0]!.at as string;
  const before = await stamp();
  await commitPage(sql, { connectionId, runId, spec: BITRISE_TABLES.builds, rows: [build('b2')] });
  expect(await stamp()).toBe(before);
  await commitPage(sql, { connectionId, runId, spec: BITRISE_TABLES.builds, rows: [build('b2', { status_text: 'retried' })] });
  expect(await stamp()).not.toBe(before);
});

it('is all or nothing: a row Postgres refuses leaves no row and no cursor behind', async () => {
  const cursor = { resource: 'builds', scope: 'app-2', value: { after: 1 } };
  await expect(
    commitPage(sql, {
      connectionId,
      runId,
      spec: BITRISE_TABLES.builds,
      rows: [build('ok-1'), build('bad', { triggered_at: 'not a time' })],
      cursor,
    }),
  ).rejects.toThrow();
  expect(await sql`select id from bitrise_builds where connection_id = ${connectionId} and id in ('ok-1', 'bad')`).toHaveLength(0);
  expect(await readCursor(sql, connectionId, 'builds', 'app-2')).toBeUndefined();
});

it('is all or nothing: a failing progress mark leaves no row and no cursor behind', async () => {
  const cursor = { resource: 'builds', scope: 'app-3', value: { after: 2 } };
  await expect(
    commitPage(sql, {
      connectionId,
      runId: `not-a-run-${randomBytes(2).toString('hex')}`,
      spec: BITRISE_TABLES.builds,
      rows: [build('ok-2')],
      cursor,
    }),
  ).rejects.toThrow();
  expect(await sql`select id from bitrise_builds where connection_id = ${connectionId} and id = 'ok-2'`).toHaveLength(0);
  expect(await readCursor(sql, connectionId, 'builds', 'app-3')).toBeUndefined();
});
