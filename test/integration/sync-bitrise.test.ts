import { completeSyncCounts } from '../../simulators/bitrise';
import { startStack, tenantApi, waitFor, type Stack } from '../helpers/stack';

/**
 * The sync engine against the Bitrise simulator: exact counts, incremental fetches proven by the
 * simulator's request log, faults, a killed worker, a dropped database, backfills.
 */

let stack: Stack;
let apiKey: string;

const SEED = { organizations: 2, appsPerOrganization: 2, buildsPerApp: 120, pipelinesPerApp: 6, seed: 7 };

beforeAll(async () => {
  stack = await startStack({ bitrise: { seed: SEED } });
  ({ apiKey } = await stack.createTenant('Sync'));
});

afterAll(async () => {
  await stack?.stop();
});

const { api, runs, waitForRuns } = tenantApi(
  () => stack,
  () => apiKey,
);

async function connect(): Promise<string> {
  const conn = (await api('POST', '/v1/connections', { provider: 'bitrise' })).body;
  expect((await api('PUT', `/v1/connections/${conn.id}/credentials`, { token: stack.bitrise.control.createToken() })).status).toBe(200);
  return conn.id;
}

async function allRecords(id: string, resource: string, query = ''): Promise<any[]> {
  const items: any[] = [];
  let cursor: string | null = null;
  do {
    const res: any = await api('GET', `/v1/connections/${id}/records/${resource}?limit=100${query}${cursor ? `&cursor=${cursor}` : ''}`);
    expect(res.status).toBe(200);
    items.push(...res.body.items);
    cursor = res.body.nextCursor;
  } while (cursor);
  return items;
}

const expected = () => completeSyncCounts(stack.bitrise.control.dataset());

async function tableCounts(id: string) {
  const [row] = await stack.sql`
    select (select count(*) from bitrise_organizations where connection_id = ${id})::int as organizations,
           (select count(*) from bitrise_apps where connection_id = ${id})::int as apps,
           (select count(*) from bitrise_builds where connection_id = ${id})::int as builds,
           (select count(*) from bitrise_pipelines where connection_id = ${id})::int as pipelines`;
  return row;
}

describe('Bitrise sync', () => {
  let id: string;

  it('a first sync stores exactly what the account has', async () => {
    id = await connect();
    const [run] = await waitForRuns(id, 1);
    expect(run.status).toBe('succeeded');
    expect(await tableCounts(id)).toEqual(expected());
    expect(run.counts).toMatchObject({ organizations: expected().organizations, apps: expected().apps, builds: expected().builds });
    expect(run.requests).toBeGreaterThan(4);

    const builds = await allRecords(id, 'builds');
    expect(new Set(builds.map((b) => b.id)).size).toBe(builds.length);
    expect(builds).toHaveLength(expected().builds);
    const finished = builds.find((b) => b.status === 1);
    expect(finished).toMatchObject({ statusText: 'success', appId: expect.any(String), triggeredAt: expect.any(String) });
    expect(finished.finishedAt).not.toBeNull();
    // `raw` is the provider's JSON as stored, keys untouched (not camelCased like the typed columns).
    expect(finished.raw).toMatchObject({ slug: finished.id, triggered_at: expect.any(String) });
    expect(finished.raw).not.toHaveProperty('triggeredAt');
    const [stored] = await stack.sql<
      { raw: string }[]
    >`select raw::text as raw from bitrise_builds where connection_id = ${id} and id = ${finished.id}`;
    expect(finished.raw).toEqual(JSON.parse(stored!.raw));
  });

  it('an incremental sync fetches only what changed', async () => {
    const app = stack.bitrise.control.dataset().organizations[0]!.apps[0]!.slug;
    const running = (await stack.sql`select count(*)::int as n from bitrise_builds where connection_id = ${id} and status = 0`)[0]!
      .n as number;
    stack.bitrise.control.addBuilds(app, 3, { status: 1 });
    const finishedNow = stack.bitrise.control.finishRunningBuilds();
    expect(finishedNow).toBe(running);
    stack.bitrise.control.clearRequests();

    expect((await api('POST', `/v1/connections/${id}/sync`)).status).toBe(202);
    const [latest] = await waitForRuns(id, 2);
    expect(latest.status).toBe('succeeded');
    expect(await tableCounts(id)).toEqual(expected());
    expect((await stack.sql`select count(*)::int as n from bitrise_builds where connection_id = ${id} and status = 0`)[0]!.n).toBe(0);

    // Builds: one small page per app from the watermark, plus one GET per build that was running.
    const buildLists = stack.bitrise.control.requests().filter((r) => /\/apps\/[^/]+\/builds$/.test(r.path));
    expect(buildLists).toHaveLength(expected().apps);
    expect(buildLists.every((r) => new URLSearchParams(r.query).has('after'))).toBe(true);
    const singleBuilds = stack.bitrise.control.requests().filter((r) => /\/builds\/[^/]+$/.test(r.path));
    expect(singleBuilds.length).toBeLessThanOrEqual(running);
    expect(latest.counts.builds).toBeLessThan(expected().builds / 4);
  });

  it('records can be followed with updatedSince', async () => {
    const before = new Date().toISOString();
    const app = stack.bitrise.control.dataset().organizations[1]!.apps[0]!.slug;
    stack.bitrise.control.addBuilds(app, 2, { status: 2 });
    await api('POST', `/v1/connections/${id}/sync`);
    await waitForRuns(id, 3);
    const changed = await allRecords(id, 'builds', `&updatedSince=${encodeURIComponent(before)}`);
    expect(changed.map((b) => b.status)).toEqual([2, 2]);
  });

  it('a full resync refetches everything without duplicating anything', async () => {
    stack.bitrise.control.clearRequests();
    expect((await api('POST', `/v1/connections/${id}/sync`, { full: true, resources: ['builds'] })).status).toBe(202);
    const [latest] = await waitForRuns(id, 4);
    expect(latest.status).toBe('succeeded');
    expect(latest.counts.builds).toBe(expected().builds);
    expect(await tableCounts(id)).toEqual(expected());
    // Only builds were backfilled: pipelines still listed from their watermark.
    const pipelineLists = stack.bitrise.control.requests().filter((r) => /\/pipelines$/.test(r.path));
    expect(pipelineLists.every((r) => new URLSearchParams(r.query).has('after'))).toBe(true);
  });

  it('rejects a backfill of an unknown resource with 400', async () => {
    const res = await api('POST', `/v1/connections/${id}/sync`, { full: true, resources: ['pullRequests'] });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('invalid_request');
  });
});

describe('faults', () => {
  it('20 % injected 5xx: retried, nothing lost or duplicated', async () => {
    stack.bitrise.control.injectFaults({ status: 503, count: 6, everyNth: 5 });
    const id = await connect();
    const [run] = await waitForRuns(id, 1, 120_000);
    stack.bitrise.control.reset();
    expect(run.status).toBe('succeeded');
    expect(run.retries).toBeGreaterThan(0);
    expect(await tableCounts(id)).toEqual(expected());
  });

  it('5xx on the account check are retried in place, never a step attempt (found by the chaos suite)', async () => {
    const id = await connect();
    await waitForRuns(id, 1, 120_000);
    // Three in a row used to fail the step's first three attempts, and the third put the whole
    // connection into a five-minute provider_unavailable wait.
    stack.bitrise.control.injectFaults({ status: 503, count: 3, pathPrefix: '/me' });
    expect((await api('POST', `/v1/connections/${id}/sync`)).status).toBe(202);
    const [run] = await waitForRuns(id, 2, 60_000);
    expect(run.status).toBe('succeeded');
    expect(run.retries).toBe(3);
    // Never a provider_unavailable wait: the run ends and the connection goes back to idle (published after the run row).
    await waitFor(async () => (await api('GET', `/v1/connections/${id}`)).body.syncState.state === 'idle', 30_000, 'idle');
  });

  it('a 429 storm backs off (Retry-After honoured) and completes', async () => {
    stack.bitrise.control.injectFaults({ status: 429, count: 3, pathPrefix: '/apps' });
    const id = await connect();
    const [run] = await waitForRuns(id, 1, 120_000);
    expect(run.status).toBe('succeeded');
    expect(run.rateLimitWaits).toBe(3);
    expect(await tableCounts(id)).toEqual(expected());
  });

  it('a dozen short 429s are waited out in place and do not spend the retry budget', async () => {
    // 14 > the step's 12 attempts: each 429 used to be a failed attempt.
    stack.bitrise.control.injectFaults({ status: 429, count: 14, pathPrefix: '/apps' });
    const id = await connect();
    const [run] = await waitForRuns(id, 1, 120_000);
    stack.bitrise.control.reset();
    expect(run.status).toBe('succeeded');
    expect(run.rateLimitWaits).toBe(14);
    expect(await tableCounts(id)).toEqual(expected());
  });

  it('an app losing access is marked inaccessible without failing the run, and comes back', async () => {
    const id = await connect();
    await waitForRuns(id, 1);
    const app = stack.bitrise.control.dataset().organizations[0]!.apps[1]!.slug;
    stack.bitrise.control.setAppAccess(app, 'forbidden');
    await api('POST', `/v1/connections/${id}/sync`);
    const [second] = await waitForRuns(id, 2);
    expect(second.status).toBe('succeeded');
    const [row] = await stack.sql`select accessible, inaccessible_since from bitrise_apps where connection_id = ${id} and id = ${app}`;
    expect(row).toMatchObject({ accessible: false, inaccessibleSince: expect.any(Date) });

    stack.bitrise.control.setAppAccess(app, 'ok');
    await api('POST', `/v1/connections/${id}/sync`);
    await waitForRuns(id, 3);
    const [back] = await stack.sql`select accessible from bitrise_apps where connection_id = ${id} and id = ${app}`;
    expect(back!.accessible).toBe(true);
  });

  it('a worker killed mid-pagination resumes: no duplicates, no gap, at most one page fetched twice', async () => {
    const id = await connect();
    await waitForRuns(id, 1);
    await api('POST', `/v1/connections/${id}/sync`, { full: true, resources: ['builds'] });
    stack.bitrise.control.setLatency(400);
    stack.bitrise.control.clearRequests();
    await waitFor(() => stack.bitrise.control.requests().filter((r) => /\/builds$/.test(r.path)).length >= 2, 60_000);
    await stack.worker.kill();
    stack.bitrise.control.setLatency(0);
    await stack.worker.start();
    const [run] = await waitForRuns(id, 2, 120_000);
    expect(run.status).toBe('succeeded');
    expect(run.retries).toBeGreaterThanOrEqual(1);
    expect(await tableCounts(id)).toEqual(expected());
    const pages = stack.bitrise.control
      .requests()
      .filter((r) => /\/builds$/.test(r.path) && r.status === 200)
      .map((r) => `${r.path}?${r.query}`);
    const repeated = pages.filter((p, i) => pages.indexOf(p) !== i);
    expect(repeated.length).toBeLessThanOrEqual(1);
  });

  it('a dropped database mid-run is survived', async () => {
    const id = await connect();
    await waitForRuns(id, 1);
    stack.bitrise.control.setLatency(200);
    await api('POST', `/v1/connections/${id}/sync`, { full: true });
    await waitFor(async () => (await runs(id)).some((r) => r.status === 'running'));
    // Every connection of the worker's pool is cut, as a Postgres restart would.
    await stack.sql`select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and application_name = 'conduit-worker'`;
    stack.bitrise.control.setLatency(0);
    const [run] = await waitForRuns(id, 2, 120_000);
    expect(run.status).toBe('succeeded');
    expect(await tableCounts(id)).toEqual(expected());
  });
});
