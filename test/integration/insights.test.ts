import { startStack, type Stack } from '../helpers/stack';

/**
 * Insights against hand-made fixtures: rows inserted straight into the synced tables of
 * connections created through the API, every expected figure worked out by hand below.
 * percentile_cont interpolates: for sorted values v0..v(n-1), p sits at position p·(n−1).
 */

let stack: Stack;
let apiKey: string;
let bitrise: string;
let bitbucket: string;
let seatsConn: string;

const api = (method: string, path: string, body?: unknown) => stack.request(method, path, { apiKey, body });

const MARCH = 'from=2026-03-01&to=2026-03-08';
const APRIL = 'from=2026-04-01&to=2026-04-08';
const NULL_P = { p50: null, p90: null, p95: null };

interface Build {
  id: string;
  app: string;
  workflow: string;
  branch?: string;
  /** null: the provider recorded no commit for the run. */
  commit: string | null;
  status: number;
  at: string;
  queue: number;
  duration?: number;
  credits?: number;
}

async function insertBuilds(connectionId: string, builds: Build[]) {
  await stack.sql`insert into bitrise_apps ${stack.sql([
    { connection_id: connectionId, id: 'app1', title: 'App One', raw: {} },
    { connection_id: connectionId, id: 'app2', title: 'App Two', raw: {} },
  ])}`;
  for (const b of builds) {
    await stack.sql`
      insert into bitrise_builds (connection_id, id, app_id, status, triggered_workflow, branch, commit_hash, credit_cost,
                                  triggered_at, started_on_worker_at, finished_at, raw)
      values (${connectionId}, ${b.id}, ${b.app}, ${b.status}, ${b.workflow}, ${b.branch ?? 'main'}, ${b.commit}, ${b.credits ?? null},
              ${b.at}::timestamptz, ${b.at}::timestamptz + ${b.queue} * interval '1 second',
              ${b.duration === undefined ? null : b.at}::timestamptz + ${b.queue + (b.duration ?? 0)} * interval '1 second', '{}')`;
  }
}

beforeAll(async () => {
  stack = await startStack();
  ({ apiKey } = await stack.createTenant('Insights'));
  bitrise = (await api('POST', '/v1/connections', { provider: 'bitrise', name: 'ci' })).body.id;
  bitbucket = (await api('POST', '/v1/connections', { provider: 'bitbucket', name: 'code' })).body.id;
  seatsConn = (await api('POST', '/v1/connections', { provider: 'bitbucket', name: 'seats' })).body.id;

  // ---- Bitrise. March: b1..b6 (b1 and b2 given in +02:00 / -05:00 near midnight). February: the previous period.
  await insertBuilds(bitrise, [
    // 2026-03-02T01:30+02:00 = 2026-03-01T23:30Z: bucket 03-01 (and ISO week of Mon 02-23)
    {
      id: 'b1',
      app: 'app1',
      workflow: 'primary',
      commit: 'c1',
      status: 2,
      at: '2026-03-02T01:30:00+02:00',
      queue: 60,
      duration: 100,
      credits: 2,
    },
    // 2026-03-01T19:30-05:00 = 2026-03-02T00:30Z: bucket 03-02
    {
      id: 'b2',
      app: 'app1',
      workflow: 'primary',
      commit: 'c1',
      status: 1,
      at: '2026-03-01T19:30:00-05:00',
      queue: 30,
      duration: 200,
      credits: 4,
    },
    {
      id: 'b3',
      app: 'app1',
      workflow: 'primary',
      commit: 'c2',
      status: 1,
      at: '2026-03-02T10:00:00Z',
      queue: 10,
      duration: 300,
      credits: 6,
    },
    { id: 'b4', app: 'app1', workflow: 'deploy', commit: 'c2', status: 3, at: '2026-03-03T12:00:00Z', queue: 20, duration: 50, credits: 1 },
    { id: 'b5', app: 'app2', workflow: 'test', commit: 'c3', status: 0, at: '2026-03-03T23:59:59Z', queue: 5 },
    { id: 'b6', app: 'app2', workflow: 'test', commit: 'c3', status: 2, at: '2026-03-04T00:00:00Z', queue: 40, duration: 400, credits: 8 },
    {
      id: 'p1',
      app: 'app1',
      workflow: 'primary',
      commit: 'c0',
      status: 1,
      at: '2026-02-25T12:00:00Z',
      queue: 10,
      duration: 150,
      credits: 3,
    },
    {
      id: 'p2',
      app: 'app1',
      workflow: 'primary',
      commit: 'c0',
      status: 2,
      at: '2026-02-26T12:00:00Z',
      queue: 10,
      duration: 50,
      credits: 1,
    },
    { id: 'x1', app: 'app1', workflow: 'primary', commit: 'cx', status: 2, at: '2026-02-01T12:00:00Z', queue: 10, duration: 999 },
    // April: flakiness.
    { id: 'b7', app: 'app1', workflow: 'primary', commit: 'c4', status: 1, at: '2026-04-01T01:00:00Z', queue: 0, duration: 10 },
    { id: 'b8', app: 'app1', workflow: 'primary', commit: 'c4', status: 2, at: '2026-04-01T02:00:00Z', queue: 0, duration: 20 },
    { id: 'b9', app: 'app1', workflow: 'primary', commit: 'c4', status: 1, at: '2026-04-01T03:00:00Z', queue: 0, duration: 30 },
    { id: 'b10', app: 'app2', workflow: 'test', commit: 'c5', status: 2, at: '2026-04-02T01:00:00Z', queue: 0, duration: 100 },
    { id: 'b11', app: 'app2', workflow: 'test', commit: 'c5', status: 2, at: '2026-04-02T02:00:00Z', queue: 0, duration: 100 },
    { id: 'b12', app: 'app2', workflow: 'test', commit: 'c5', status: 1, at: '2026-04-02T03:00:00Z', queue: 0, duration: 50 },
    { id: 'b13', app: 'app2', workflow: 'test', commit: 'c6', status: 1, at: '2026-04-03T03:00:00Z', queue: 0, duration: 50 },
    { id: 'b14', app: 'app2', workflow: 'test', commit: 'c6', status: 4, at: '2026-04-03T04:00:00Z', queue: 0, duration: 50 },
  ]);

  // ---- Bitbucket: one workspace, one repository, pull requests with participants, pipelines, commits.
  const s = stack.sql;
  await s`insert into bitbucket_workspaces (connection_id, id, slug, raw) values (${bitbucket}, '{ws1}', 'acme', '{}')`;
  await s`insert into bitbucket_repositories (connection_id, id, workspace_id, slug, full_name, raw)
          values (${bitbucket}, '{r1}', '{ws1}', 'api', 'acme/api', '{}')`;
  await s`insert into bitbucket_members (connection_id, id, workspace_id, user_id, display_name, raw) values
          (${bitbucket}, '{ws1}/{u1}', '{ws1}', '{u1}', 'Alice', '{}'), (${bitbucket}, '{ws1}/{u2}', '{ws1}', '{u2}', 'Bob', '{}'),
          (${bitbucket}, '{ws1}/{u3}', '{ws1}', '{u3}', 'Carol', '{}')`;
  const pr = (n: number, author: string, state: string, created: string, updated: string) =>
    s`insert into bitbucket_pull_requests (connection_id, id, repository_id, number, state, author_id, created_on, updated_on, raw)
      values (${bitbucket}, ${`{r1}/${n}`}, '{r1}', ${n}, ${state}, ${author}, ${created}, ${updated}, '{}')`;
  await pr(1, '{u1}', 'MERGED', '2026-03-01T00:00:00Z', '2026-03-01T10:00:00Z');
  await pr(2, '{u2}', 'MERGED', '2026-03-02T00:00:00Z', '2026-03-03T00:00:00Z');
  await pr(3, '{u1}', 'OPEN', '2026-03-02T00:00:00Z', '2026-03-04T00:00:00Z');
  await pr(4, '{u3}', 'MERGED', '2026-02-20T00:00:00Z', '2026-03-05T00:00:00Z');
  await pr(5, '{u2}', 'DECLINED', '2026-03-06T00:00:00Z', '2026-03-06T01:00:00Z');
  const part = (n: number, user: string, approved: boolean, on: string) =>
    s`insert into bitbucket_pr_participants (connection_id, pull_request_id, user_id, role, approved, participated_on)
      values (${bitbucket}, ${`{r1}/${n}`}, ${user}, 'REVIEWER', ${approved}, ${on})`;
  await part(1, '{u1}', false, '2026-03-01T00:30:00Z'); // the author: never a review
  await part(1, '{u2}', false, '2026-03-01T01:00:00Z');
  await part(1, '{u3}', true, '2026-03-01T04:00:00Z');
  await part(2, '{u1}', true, '2026-03-02T12:00:00Z');
  await part(3, '{u2}', false, '2026-03-03T00:00:00Z');
  await s`insert into bitbucket_commits (connection_id, id, repository_id, hash, committed_at, author_id, raw) values
          (${bitbucket}, '{r1}/h1', '{r1}', 'h1', '2026-03-01T08:00:00Z', '{u1}', '{}'),
          (${bitbucket}, '{r1}/h2', '{r1}', 'h2', '2026-03-02T09:00:00Z', '{u2}', '{}')`;
  const pipe = (
    n: number,
    branch: string,
    state: string,
    result: string | null,
    commit: string,
    created: string,
    minutes: number,
    secs: number,
  ) =>
    s`insert into bitbucket_pipelines (connection_id, id, repository_id, build_number, state, result, branch, commit_hash, created_on,
                                       completed_on, build_seconds_used, raw)
      values (${bitbucket}, ${`{p${n}}`}, '{r1}', ${n}, ${state}, ${result}, ${branch}, ${commit}, ${created}::timestamptz,
              ${created}::timestamptz + ${minutes} * interval '1 minute', ${secs},
              ${s.json({ target: { selector: branch === 'main' ? { type: 'branches', pattern: 'main' } : { type: 'default' } } })})`;
  await pipe(1, 'main', 'COMPLETED', 'SUCCESSFUL', 'h1', '2026-03-01T10:00:00Z', 10, 600);
  await pipe(2, 'main', 'COMPLETED', 'FAILED', 'h2', '2026-03-02T10:00:00Z', 5, 300);
  await pipe(3, 'main', 'COMPLETED', 'FAILED', 'h2', '2026-03-02T11:00:00Z', 5, 300);
  await pipe(4, 'main', 'COMPLETED', 'SUCCESSFUL', 'h2', '2026-03-02T12:00:00Z', 10, 600);
  await pipe(5, 'main', 'COMPLETED', 'STOPPED', 'h3', '2026-03-03T12:00:00Z', 1, 60);
  await pipe(6, 'feat', 'COMPLETED', 'SUCCESSFUL', 'h4', '2026-03-04T12:00:00Z', 2, 120);
  await pipe(7, 'main', 'COMPLETED', 'FAILED', 'h5', '2026-03-06T12:00:00Z', 2, 120);

  // ---- Seats (as of 2026-04-01: 30 days back is 03-02, 90 days back is 2026-01-01).
  await s`insert into bitbucket_workspaces (connection_id, id, slug, raw) values (${seatsConn}, '{ws1}', 'acme', '{}')`;
  // Dave left the workspace: a full members listing no longer returned him (migration 00011 turned `active = false` into `deleted_at`).
  await s`insert into bitbucket_members (connection_id, id, workspace_id, user_id, display_name, deleted_at, raw) values
          (${seatsConn}, '{ws1}/{u1}', '{ws1}', '{u1}', 'Alice', null, '{}'), (${seatsConn}, '{ws1}/{u2}', '{ws1}', '{u2}', 'Bob', null, '{}'),
          (${seatsConn}, '{ws1}/{u3}', '{ws1}', '{u3}', 'Carol', null, '{}'), (${seatsConn}, '{ws1}/{u4}', '{ws1}', '{u4}', 'Dave', now(), '{}'),
          (${seatsConn}, '{ws1}/{u5}', '{ws1}', '{u5}', 'Eve', null, '{}')`;
  await s`insert into bitbucket_commits (connection_id, id, repository_id, hash, committed_at, author_id, raw) values
          (${seatsConn}, '{r1}/a1', '{r1}', 'a1', '2026-03-25T00:00:00Z', '{u1}', '{}'),
          (${seatsConn}, '{r1}/a3', '{r1}', 'a3', '2026-04-02T00:00:00Z', '{u3}', '{}'),
          (${seatsConn}, '{r1}/a4', '{r1}', 'a4', '2026-03-30T00:00:00Z', '{u4}', '{}')`;
  await s`insert into bitbucket_pull_requests (connection_id, id, repository_id, number, state, author_id, created_on, updated_on, raw)
          values (${seatsConn}, '{r1}/1', '{r1}', 1, 'OPEN', '{u2}', '2026-02-01T00:00:00Z', '2026-02-01T00:00:00Z', '{}')`;
  await s`insert into bitbucket_pr_participants (connection_id, pull_request_id, user_id, approved, participated_on)
          values (${seatsConn}, '{r1}/1', '{u3}', false, '2025-12-01T00:00:00Z')`;
});

afterAll(async () => {
  await stack?.stop();
});

describe('CI (Bitrise)', () => {
  it('totals, UTC day buckets with empty ones, breakdowns and trends against the previous period', async () => {
    const res = await api('GET', `/v1/connections/${bitrise}/insights/ci?${MARCH}`);
    expect(res.status).toBe(200);
    const b = res.body;
    expect(b.range).toEqual({ from: '2026-03-01T00:00:00.000Z', to: '2026-03-08T00:00:00.000Z', bucket: 'day' });
    expect(b.groupKind).toBe('app');
    expect(b.costUnit).toBe('credits');
    // 6 builds, b5 running; durations 50,100,200,300,400 (p90 at 3.6 → 360, p95 at 3.8 → 380);
    // queues 5,10,20,30,40,60 (p50 at 2.5 → 25, p90 at 4.5 → 50, p95 at 4.75 → 55); credits 2+4+6+1+8.
    expect(b.totals).toEqual({
      builds: 6,
      finished: 5,
      succeeded: 2,
      failed: 2,
      aborted: 1,
      successRate: 0.4,
      failureRate: 0.4,
      abortRate: 0.2,
      durationSeconds: { p50: 200, p90: 360, p95: 380 },
      queueSeconds: { p50: 25, p90: 50, p95: 55 },
      cost: 21,
    });
    expect(b.buckets.map((x: any) => x.start)).toEqual([1, 2, 3, 4, 5, 6, 7].map((d) => `2026-03-0${d}T00:00:00Z`));
    // One value: every percentile is it.
    expect(b.buckets[0]).toMatchObject({ builds: 1, failed: 1, durationSeconds: { p50: 100, p90: 100, p95: 100 }, cost: 2 });
    // Two values 200, 300: p50 250, p90 290, p95 295; queues 10, 30.
    expect(b.buckets[1]).toMatchObject({
      builds: 2,
      succeeded: 2,
      successRate: 1,
      durationSeconds: { p50: 250, p90: 290, p95: 295 },
      queueSeconds: { p50: 20, p90: 28, p95: 29 },
      cost: 10,
    });
    // b4 aborted and b5 still running (23:59:59Z stays on the 3rd).
    expect(b.buckets[2]).toMatchObject({ builds: 2, finished: 1, aborted: 1, abortRate: 1, successRate: 0, durationSeconds: { p50: 50 } });
    expect(b.buckets[2].queueSeconds).toEqual({ p50: 12.5, p90: 18.5, p95: 19.25 });
    expect(b.buckets[3]).toMatchObject({ builds: 1, failed: 1, durationSeconds: { p50: 400 }, cost: 8 });
    expect(b.buckets[4]).toEqual({
      start: '2026-03-05T00:00:00Z',
      builds: 0,
      finished: 0,
      succeeded: 0,
      failed: 0,
      aborted: 0,
      successRate: null,
      failureRate: null,
      abortRate: null,
      durationSeconds: NULL_P,
      queueSeconds: NULL_P,
      cost: 0,
    });
    // app1: durations 50,100,200,300 (even count: p50 150; p90 at 2.7 → 270; p95 at 2.85 → 285).
    expect(b.byGroup.map((g: any) => [g.groupId, g.groupName, g.builds])).toEqual([
      ['app1', 'App One', 4],
      ['app2', 'App Two', 2],
    ]);
    expect(b.byGroup[0]).toMatchObject({ successRate: 0.5, failureRate: 0.25, abortRate: 0.25, cost: 13 });
    expect(b.byGroup[0].durationSeconds).toEqual({ p50: 150, p90: 270, p95: 285 });
    expect(b.byGroup[0].queueSeconds).toEqual({ p50: 25, p90: 51, p95: 55.5 });
    expect(b.byGroup[1]).toMatchObject({ finished: 1, failureRate: 1, queueSeconds: { p50: 22.5, p90: 36.5, p95: 38.25 } });
    expect(b.byWorkflow.map((w: any) => [w.groupId, w.workflow, w.builds])).toEqual([
      ['app1', 'primary', 3],
      ['app2', 'test', 2],
      ['app1', 'deploy', 1],
    ]);
    // Previous period 2026-02-22 → 03-01: p1 (150 s, success), p2 (50 s, failure); x1 is older still.
    expect(b.slowest).toEqual([
      {
        groupId: 'app2',
        groupName: 'App Two',
        workflow: 'test',
        builds: 2,
        failed: 1,
        failureRate: 1,
        durationP50: 400,
        previous: { builds: 0, failed: 0, failureRate: null, durationP50: null },
      },
      {
        groupId: 'app1',
        groupName: 'App One',
        workflow: 'primary',
        builds: 3,
        failed: 1,
        failureRate: 0.3333,
        durationP50: 200,
        previous: { builds: 2, failed: 1, failureRate: 0.5, durationP50: 100 },
      },
      {
        groupId: 'app1',
        groupName: 'App One',
        workflow: 'deploy',
        builds: 1,
        failed: 0,
        failureRate: 0,
        durationP50: 50,
        previous: { builds: 0, failed: 0, failureRate: null, durationP50: null },
      },
    ]);
    expect(b.mostFailing.map((w: any) => w.workflow)).toEqual(['test', 'primary']);
  });

  it('ISO weeks in UTC, filters, and an empty period', async () => {
    const week = (await api('GET', `/v1/connections/${bitrise}/insights/ci?${MARCH}&bucket=week`)).body;
    // 2026-03-01 is a Sunday: its week starts Monday 02-23 and holds only b1 (23:30Z); b2 (19:30-05:00) is Monday in UTC.
    expect(week.buckets.map((x: any) => [x.start, x.builds])).toEqual([
      ['2026-02-23T00:00:00Z', 1],
      ['2026-03-02T00:00:00Z', 5],
    ]);
    const app2 = (await api('GET', `/v1/connections/${bitrise}/insights/ci?${MARCH}&app=app2`)).body;
    expect(app2.totals).toMatchObject({ builds: 2, finished: 1, failed: 1, cost: 8 });
    const primary = (await api('GET', `/v1/connections/${bitrise}/insights/ci?${MARCH}&workflow=primary&branch=main`)).body;
    expect(primary.totals).toMatchObject({ builds: 3, durationSeconds: { p50: 200 } });
    const empty = (await api('GET', `/v1/connections/${bitrise}/insights/ci?from=2025-01-01&to=2025-01-03`)).body;
    expect(empty.totals).toMatchObject({ builds: 0, successRate: null, durationSeconds: NULL_P, cost: 0 });
    expect(empty.buckets).toHaveLength(2);
    expect(empty.byGroup).toEqual([]);
    expect(empty.slowest).toEqual([]);
  });

  it('refuses bad ranges and filters of the other provider, and is tenant-scoped', async () => {
    const long = await api('GET', `/v1/connections/${bitrise}/insights/ci?from=2025-01-01&to=2026-03-01`);
    expect(long.status).toBe(400);
    expect(long.body.error.code).toBe('invalid_range');
    expect((await api('GET', `/v1/connections/${bitrise}/insights/ci?from=2026-03-08&to=2026-03-01`)).body.error.code).toBe(
      'invalid_range',
    );
    expect((await api('GET', `/v1/connections/${bitrise}/insights/ci?from=yesterday`)).status).toBe(400);
    expect((await api('GET', `/v1/connections/${bitrise}/insights/ci?repository=x`)).body.error.code).toBe('unsupported_filter');
    expect((await api('GET', `/v1/connections/${bitrise}/insights/seats`)).body.error.code).toBe('unsupported_for_provider');
    const other = await stack.createTenant('Other');
    const foreign = await stack.request('GET', `/v1/connections/${bitrise}/insights/ci`, { apiKey: other.apiKey });
    expect(foreign.status).toBe(404);
    const overview = await stack.request('GET', '/v1/insights/overview', { apiKey: other.apiKey });
    expect(overview.body.connections).toEqual([]);
  });

  it('the default range is the last 30 days', async () => {
    const b = (await api('GET', `/v1/connections/${bitrise}/insights/ci`)).body;
    expect(Date.parse(b.range.to) - Date.parse(b.range.from)).toBe(30 * 86_400_000);
    expect(Math.abs(Date.parse(b.range.to) - Date.now())).toBeLessThan(60_000);
  });
});

describe('flakiness', () => {
  it('Bitrise: same-commit flips, score, time lost, evidence; sorted by time lost', async () => {
    const res = await api('GET', `/v1/connections/${bitrise}/insights/flakiness?${APRIL}`);
    expect(res.status).toBe(200);
    // test/c5: fail, fail, success → 1 flip in 3 runs, 200 s of failed runs; primary/c4: success, fail, success → 2 flips in 3,
    // 20 s. c6 (success, then aborted) is not flaky.
    expect(res.body.totals).toEqual({ flakyWorkflows: 2, affectedCommits: 2, timeLostSeconds: 220 });
    expect(res.body.workflows).toEqual([
      {
        groupId: 'app2',
        groupName: 'App Two',
        workflow: 'test',
        score: 0.3333,
        flips: 1,
        runs: 3,
        affectedCommits: 1,
        timeLostSeconds: 200,
        evidence: {
          commit: 'c5',
          success: { id: 'b12', url: 'https://app.bitrise.io/build/b12' },
          failure: { id: 'b11', url: 'https://app.bitrise.io/build/b11' },
        },
      },
      {
        groupId: 'app1',
        groupName: 'App One',
        workflow: 'primary',
        score: 0.6667,
        flips: 2,
        runs: 3,
        affectedCommits: 1,
        timeLostSeconds: 20,
        evidence: {
          commit: 'c4',
          success: { id: 'b9', url: 'https://app.bitrise.io/build/b9' },
          failure: { id: 'b8', url: 'https://app.bitrise.io/build/b8' },
        },
      },
    ]);
    // March: c1 failed (b1, 100 s) then succeeded (b2).
    const march = (await api('GET', `/v1/connections/${bitrise}/insights/flakiness?${MARCH}`)).body;
    expect(march.workflows.map((w: any) => [w.workflow, w.score, w.timeLostSeconds, w.evidence.commit])).toEqual([
      ['primary', 0.5, 100, 'c1'],
    ]);
  });

  it('Bitbucket: pipeline URLs from workspace and repository slugs', async () => {
    const res = await api('GET', `/v1/connections/${bitbucket}/insights/flakiness?${MARCH}`);
    // h2 on `main`: failed (p2), failed (p3), succeeded (p4): 1 flip in 3 runs, 2 × 300 s lost.
    expect(res.body.workflows).toEqual([
      {
        groupId: '{r1}',
        groupName: 'acme/api',
        workflow: 'main',
        score: 0.3333,
        flips: 1,
        runs: 3,
        affectedCommits: 1,
        timeLostSeconds: 600,
        evidence: {
          commit: 'h2',
          success: { id: '{p4}', url: 'https://bitbucket.org/acme/api/pipelines/results/4' },
          failure: { id: '{p3}', url: 'https://bitbucket.org/acme/api/pipelines/results/3' },
        },
      },
    ]);
  });
});

describe('flakiness: same branch, no new commit in between', () => {
  // A tenant of its own, so the overview figures above stay as they are.
  let key: string;
  let conn: string;
  const MAY = 'from=2026-05-01&to=2026-05-08';
  const at = (day: number, hour: number, minute = 0) => `2026-05-0${day}T0${hour}:${String(minute).padStart(2, '0')}:00Z`;
  const run = (
    id: string,
    workflow: string,
    branch: string,
    commit: string | null,
    status: number,
    when: string,
    duration = 10,
    app = 'app1',
  ) => ({ id, app, workflow, branch, commit, status, at: when, queue: 0, duration }) satisfies Build;

  beforeAll(async () => {
    key = (await stack.createTenant('Branches')).apiKey;
    conn = (await stack.request('POST', '/v1/connections', { apiKey: key, body: { provider: 'bitrise', name: 'nightly' } })).body.id;
    await insertBuilds(conn, [
      // main, app1: m1 seen, then two nightly runs that recorded no commit (on m1 still): success, failure, success.
      run('n1', 'nightly', 'main', 'm1', 1, at(1, 1), 100),
      run('n2', 'nightly', 'main', null, 2, at(2, 1), 200),
      run('n3', 'nightly', 'main', null, 1, at(3, 1), 150),
      // A deploy shows a new commit m2 on main; the next two nightly runs are on m2: failure, success.
      run('d1', 'deploy', 'main', 'm2', 1, at(4, 1)),
      // app2's main is another repository: its m9, seen just before n4, is not app1's head.
      run('z1', 'nightly', 'main', 'm9', 1, at(5, 0, 30), 10, 'app2'),
      run('n4', 'nightly', 'main', null, 2, at(5, 1), 300),
      run('n5', 'nightly', 'main', null, 1, at(6, 1), 120),
      // dev: a failure on dv1, an aborted run showing a new commit dv2, then a success with no commit (on dv2): not flaky.
      run('x1', 'nightly', 'dev', 'dv1', 2, at(1, 3), 50),
      run('c1', 'ci', 'dev', 'dv2', 3, at(2, 3)),
      run('x2', 'nightly', 'dev', null, 1, at(3, 3)),
      // feature: no commit ever seen on the branch, so no commit to hold the runs to: ignored.
      run('y1', 'nightly', 'feature', null, 2, at(1, 4), 70),
      run('y2', 'nightly', 'feature', null, 1, at(2, 4)),
    ]);
  });

  it('a run without a commit ran on its branch’s latest commit seen before it (any workflow of the app)', async () => {
    const res = await stack.request('GET', `/v1/connections/${conn}/insights/flakiness?${MAY}`, { apiKey: key });
    expect(res.status).toBe(200);
    // app1 nightly: m1 (n1 S, n2 F, n3 S: 2 flips) and m2 (n4 F, n5 S: 1 flip) → 3 flips in 5 runs; failed runs 200 + 300 s.
    // Not flaky: dev (dv1 failed, dv2 succeeded: a new commit in between), feature (no commit), app2 and deploy (one outcome).
    expect(res.body.totals).toEqual({ flakyWorkflows: 1, affectedCommits: 2, timeLostSeconds: 500 });
    expect(res.body.workflows).toEqual([
      {
        groupId: 'app1',
        groupName: 'App One',
        workflow: 'nightly',
        score: 0.6,
        flips: 3,
        runs: 5,
        affectedCommits: 2,
        timeLostSeconds: 500,
        evidence: {
          commit: 'm2',
          success: { id: 'n5', url: 'https://app.bitrise.io/build/n5' },
          failure: { id: 'n4', url: 'https://app.bitrise.io/build/n4' },
        },
      },
    ]);
  });
});

describe('CI (Bitbucket)', () => {
  it('build minutes, no queue time, pipeline targets as workflows', async () => {
    const b = (await api('GET', `/v1/connections/${bitbucket}/insights/ci?${MARCH}&repository={r1}`)).body;
    expect(b.groupKind).toBe('repository');
    expect(b.costUnit).toBe('minutes');
    // 7 pipelines, all completed: 3 successful, 3 failed, 1 stopped; (600+300+300+600+60+120+120) s / 60.
    expect(b.totals).toMatchObject({ builds: 7, finished: 7, succeeded: 3, failed: 3, aborted: 1, cost: 35, queueSeconds: NULL_P });
    // Durations 60,120,120,300,300,600,600 s: p50 300, p90 at 5.4 → 600.
    expect(b.totals.durationSeconds).toEqual({ p50: 300, p90: 600, p95: 600 });
    expect(b.byWorkflow.map((w: any) => [w.workflow, w.builds])).toEqual([
      ['main', 6],
      ['default', 1],
    ]);
  });
});

describe('seats (Bitbucket)', () => {
  it('active in the last 30/90 days by commits, pull requests and reviews; inactive members with their last activity', async () => {
    const res = await api('GET', `/v1/connections/${seatsConn}/insights/seats?to=2026-04-01`);
    expect(res.status).toBe(200);
    // Alice committed 03-25; Bob opened a PR 02-01 (within 90 days only); Carol reviewed 2025-12-01 (her 04-02 commit
    // is after `to`); Eve did nothing; Dave left the workspace and holds no seat.
    expect(res.body.totals).toEqual({ members: 4, active30: 1, active90: 2, inactive30: 3 });
    expect(res.body.workspaces).toEqual([{ workspaceId: '{ws1}', slug: 'acme', members: 4, active30: 1, active90: 2, inactive30: 3 }]);
    expect(res.body.inactiveMembers).toEqual([
      { workspaceId: '{ws1}', userId: '{u5}', displayName: 'Eve', lastActivityAt: null },
      { workspaceId: '{ws1}', userId: '{u3}', displayName: 'Carol', lastActivityAt: '2025-12-01T00:00:00Z' },
      { workspaceId: '{ws1}', userId: '{u2}', displayName: 'Bob', lastActivityAt: '2026-02-01T00:00:00Z' },
    ]);
  });
});

describe('delivery (Bitbucket)', () => {
  it('throughput, cycle time split, review load; DORA null until a deployment pattern is set', async () => {
    const res = await api('GET', `/v1/connections/${bitbucket}/insights/delivery?${MARCH}`);
    expect(res.status).toBe(200);
    const b = res.body;
    expect(b.throughput).toEqual([
      { start: '2026-03-01T00:00:00Z', opened: 1, merged: 1 },
      { start: '2026-03-02T00:00:00Z', opened: 2, merged: 0 },
      { start: '2026-03-03T00:00:00Z', opened: 0, merged: 1 },
      { start: '2026-03-04T00:00:00Z', opened: 0, merged: 0 },
      { start: '2026-03-05T00:00:00Z', opened: 0, merged: 1 },
      { start: '2026-03-06T00:00:00Z', opened: 1, merged: 0 },
      { start: '2026-03-07T00:00:00Z', opened: 0, merged: 0 },
    ]);
    // Merged: #1 (10 h; review at 1 h, approval 3 h later, merge 6 h after), #2 (24 h; review = approval at 12 h), #4 (13 days,
    // no review). Total 36000, 86400, 1123200 → p50 86400, p90 at 1.8 → 86400 + 0.8 × 1036800.
    expect(b.cycleTimeSeconds).toEqual({
      merged: 3,
      total: { p50: 86400, p90: 915840 },
      toFirstReview: { p50: 23400, p90: 39240 },
      reviewToApproval: { p50: 5400, p90: 9720 },
      approvalToMerge: { p50: 32400, p90: 41040 },
    });
    expect(b.reviewLoad).toEqual([
      { userId: '{u2}', displayName: 'Bob', reviews: 2, approvals: 0 },
      { userId: '{u1}', displayName: 'Alice', reviews: 1, approvals: 1 },
      { userId: '{u3}', displayName: 'Carol', reviews: 1, approvals: 1 },
    ]);
    expect(b.dora).toBeNull();
  });

  it('PATCH validates and stores the deployment pattern; DORA from matching pipelines', async () => {
    const bad = await api('PATCH', `/v1/connections/${bitbucket}`, { insights: { deploymentPattern: '(' } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('invalid_pattern');
    expect((await api('PATCH', `/v1/connections/${bitbucket}`, { insights: { other: 1 } })).status).toBe(400);
    const ok = await api('PATCH', `/v1/connections/${bitbucket}`, { insights: { deploymentPattern: '^main$' } });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ id: bitbucket, insights: { deploymentPattern: '^main$' } });

    const dora = (await api('GET', `/v1/connections/${bitbucket}/insights/delivery?${MARCH}`)).body.dora;
    // Deployments on main: p1 ok, p2 failed, p3 failed, p4 ok, p7 failed (p5 stopped and p6 on `feat` do not count).
    // Lead time: h1 08:00 → p1 done 10:10 (7800 s), h2 09:00 → p4 done 12:10 (11400 s). Restore: p2 done 10:05 → p4 done
    // 12:10 (7500 s; p3 is the same incident, p7 is not restored in the period).
    expect(dora).toEqual({
      deploymentPattern: '^main$',
      deployments: 5,
      successfulDeployments: 2,
      failedDeployments: 3,
      deploymentsPerDay: 0.2857,
      frequency: [
        { start: '2026-03-01T00:00:00Z', deployments: 1, successful: 1 },
        { start: '2026-03-02T00:00:00Z', deployments: 3, successful: 1 },
        { start: '2026-03-03T00:00:00Z', deployments: 0, successful: 0 },
        { start: '2026-03-04T00:00:00Z', deployments: 0, successful: 0 },
        { start: '2026-03-05T00:00:00Z', deployments: 0, successful: 0 },
        { start: '2026-03-06T00:00:00Z', deployments: 1, successful: 0 },
        { start: '2026-03-07T00:00:00Z', deployments: 0, successful: 0 },
      ],
      leadTimeSeconds: { p50: 9600, p90: 11040 },
      changeFailureRate: 0.6,
      timeToRestoreSeconds: { p50: 7500, p90: 7500 },
    });
  });
});

describe('overview', () => {
  it('one row per connection and totals', async () => {
    const res = await api('GET', `/v1/insights/overview?${MARCH}`);
    expect(res.status).toBe(200);
    const byName = Object.fromEntries(res.body.connections.map((c: any) => [c.name, c]));
    expect(byName.ci).toMatchObject({
      provider: 'bitrise',
      builds: 6,
      successRate: 0.4,
      durationP50: 200,
      cost: 21,
      costUnit: 'credits',
      members: null,
    });
    expect(byName.code).toMatchObject({
      provider: 'bitbucket',
      builds: 7,
      cost: 35,
      costUnit: 'minutes',
      members: 3,
      active30: 3,
      mergedPullRequests: 3,
      cycleTimeP50: 86400,
    });
    // `code`: all three opened or reviewed pull requests in March. As of 03-08 nobody in `seats` was active in the 30 days before (Alice's commit is on 03-25).
    expect(byName.seats).toMatchObject({ builds: 0, members: 4, active30: 0, mergedPullRequests: 0, cycleTimeP50: null });
    expect(res.body.totals).toEqual({ connections: 3, builds: 13, members: 7, active30: 3, mergedPullRequests: 3 });
  });

  it('is described in the OpenAPI document', async () => {
    const doc = (await stack.request('GET', '/openapi.json')).body;
    for (const p of ['ci', 'flakiness', 'seats', 'delivery']) expect(doc.paths[`/v1/connections/{id}/insights/${p}`]).toBeDefined();
    expect(doc.paths['/v1/insights/overview']).toBeDefined();
    expect(doc.paths['/v1/connections/{id}'].patch).toBeDefined();
  });
});
