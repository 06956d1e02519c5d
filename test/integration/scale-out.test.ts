import os from 'node:os';
import { Client, Connection } from '@temporalio/client';
import { temporal as proto } from '@temporalio/proto';
import { getFreePort } from '../../dev/ports';
import { completeSyncCounts as bitbucketCounts, startBitbucketSimulator, type BitbucketSimulator } from '../../simulators/bitbucket';
import { completeSyncCounts as bitriseCounts, startBitriseSimulator, type BitriseSimulator } from '../../simulators/bitrise';
import { createSql, type Sql } from '../../src/db/sql';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { ApiProcess, PLATFORM_CLIENT, serviceEnv, startOAuthInBrowser, waitFor, WorkerProcess } from '../helpers/stack';

/**
 * The production shape as plain processes: two API replicas and two workers (separate OS
 * processes, as docker-compose.yml runs them) on one Temporal server and one Postgres, with the
 * provider simulators. Any API replica finishes an OAuth flow another started; a SIGKILLed worker's
 * sync is finished by the other with exact counts; the request budget is shared by both workers.
 * Nothing here depends on timing: waits are on conditions, and the budget check allows for
 * requests arriving late, never early.
 */

/** BITBUCKET_REQUESTS_PER_HOUR for this file: 1 request/s with a burst of 60 (a minute's worth, src/sync/rate-bucket.ts). */
const PER_HOUR = 3600;
const PER_SECOND = PER_HOUR / 3600;
const BURST = PER_HOUR / 60;
/**
 * How late a request may reach the simulator after its token became valid (the timer firing late,
 * the request in flight) on a loaded machine. Only loosens the bound: it never makes the test wait.
 */
const LATENESS_S = 10;

let db: TestDatabase;
let bitbucket: BitbucketSimulator;
let bitrise: BitriseSimulator;
let apis: [ApiProcess, ApiProcess];
let workers: [WorkerProcess, WorkerProcess];
let env: Record<string, string>;
let sql: Sql;
let temporalConnection: Connection;
let temporal: Client;
let apiKey: string;
const oauthConnections: { id: string; workflowId: string }[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  // 14 repositories: about 45 paced requests per connection, so two connections need more than the burst.
  bitbucket = await startBitbucketSimulator({
    consumers: [PLATFORM_CLIENT],
    seed: {
      workspaces: 1,
      reposPerWorkspace: 14,
      membersPerWorkspace: 3,
      pullRequestsPerRepo: 4,
      commitsPerRepo: 6,
      pipelinesPerRepo: 3,
      seed: 11,
    },
  });
  bitrise = await startBitriseSimulator({
    seed: { organizations: 1, appsPerOrganization: 2, buildsPerApp: 60, pipelinesPerApp: 4, seed: 5 },
  });
  const [portA, portB] = [await getFreePort(), await getFreePort()];
  env = serviceEnv({
    databaseUrl: db.url,
    port: portA,
    bitbucket,
    bitrise,
    // One sync slot per provider and worker: two connections syncing at once occupy both workers.
    extra: { BITBUCKET_REQUESTS_PER_HOUR: String(PER_HOUR), SYNC_MAX_CONCURRENT_PER_PROVIDER: '1' },
  });
  // Both replicas share PUBLIC_URL (in production the proxy's address): the OAuth redirect URI is one.
  apis = [new ApiProcess(env), new ApiProcess({ ...env, PORT: String(portB) })];
  workers = [new WorkerProcess(env), new WorkerProcess(env)];
  await Promise.all([...apis, ...workers].map((p) => p.start()));
  sql = createSql(db.url, { max: 2 });
  temporalConnection = await Connection.connect({ address: env.TEMPORAL_ADDRESS });
  temporal = new Client({ connection: temporalConnection, namespace: env.TEMPORAL_NAMESPACE });
  const tenant = await call(apis[1], 'POST', '/v1/tenants', { token: env.ADMIN_TOKEN, body: { name: 'Scale' } });
  expect(tenant.status).toBe(201);
  apiKey = tenant.body.apiKey;
});

afterAll(async () => {
  await Promise.all([...(workers ?? []), ...(apis ?? [])].map((p) => p.kill('SIGTERM')));
  await temporalConnection?.close();
  await sql?.end({ timeout: 5 });
  await bitbucket?.close();
  await bitrise?.close();
  await db?.drop();
});

async function call(api: ApiProcess, method: string, path: string, o: { token?: string; body?: unknown } = {}) {
  const res = await fetch(`${api.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${o.token ?? apiKey}`,
      ...(o.body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: o.body === undefined ? undefined : JSON.stringify(o.body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** The same URL on another replica (what the proxy does when it sends the next request elsewhere). */
const onReplica = (url: string, api: ApiProcess) => {
  const u = new URL(url);
  u.host = new URL(api.url).host;
  return u.toString();
};

const identityOf = (w: WorkerProcess) => `${w.pid}@${os.hostname()}`;

/** Which worker identities ran each attempt of a workflow's `syncStep` activities. */
async function syncStepIdentities(workflowId: string): Promise<string[]> {
  const history = await temporal.workflow.getHandle(workflowId).fetchHistory();
  const events = history.events ?? [];
  const syncSteps = new Set(
    events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'syncStep').map((e) => String(e.eventId)),
  );
  return events
    .filter((e) => e.activityTaskStartedEventAttributes && syncSteps.has(String(e.activityTaskStartedEventAttributes.scheduledEventId)))
    .map((e) => e.activityTaskStartedEventAttributes!.identity ?? '');
}

async function runsOf(api: ApiProcess, id: string): Promise<any[]> {
  return (await call(api, 'GET', `/v1/connections/${id}/runs`)).body.items;
}

async function waitForSucceededRun(id: string, timeoutMs: number): Promise<any> {
  let runs: any[] = [];
  await waitFor(
    async () => (runs = await runsOf(apis[0], id)).some((r) => r.status === 'succeeded'),
    timeoutMs,
    `a succeeded run of ${id}`,
  );
  return runs.find((r) => r.status === 'succeeded');
}

async function bitbucketTableCounts(id: string) {
  const [row] = await sql`
    select (select count(*) from bitbucket_workspaces where connection_id = ${id})::int as workspaces,
           (select count(*) from bitbucket_members where connection_id = ${id} and deleted_at is null)::int as members,
           (select count(*) from bitbucket_repositories where connection_id = ${id})::int as repositories,
           (select count(*) from bitbucket_pull_requests where connection_id = ${id})::int as "pullRequests",
           (select count(*) from bitbucket_commits where connection_id = ${id})::int as commits,
           (select count(*) from bitbucket_pipelines where connection_id = ${id})::int as pipelines`;
  return row;
}

async function bitriseTableCounts(id: string) {
  const [row] = await sql`
    select (select count(*) from bitrise_organizations where connection_id = ${id})::int as organizations,
           (select count(*) from bitrise_apps where connection_id = ${id})::int as apps,
           (select count(*) from bitrise_builds where connection_id = ${id})::int as builds,
           (select count(*) from bitrise_pipelines where connection_id = ${id})::int as pipelines`;
  return row;
}

describe('two API replicas', () => {
  it('either replica finishes the OAuth flow the other started: the state and the browser cookie verify on both', async () => {
    for (const [start, finish] of [
      [apis[0], apis[1]],
      [apis[1], apis[0]],
    ] as const) {
      const conn = (await call(start, 'POST', '/v1/connections', { body: { provider: 'bitbucket' } })).body;
      const auth = await call(start, 'POST', `/v1/connections/${conn.id}/authorize`);
      expect(auth.status).toBe(200);
      // Consent page and Continue on one replica (the cookie is set there)…
      const { providerUrl, cookie } = await startOAuthInBrowser(onReplica(auth.body.authorizeUrl, start));
      const callback = (await fetch(providerUrl, { redirect: 'manual' })).headers.get('location')!;
      // …the provider's redirect lands on the other.
      const back = await fetch(onReplica(callback, finish), { redirect: 'manual', headers: { cookie } });
      expect(back.status).toBe(302);
      expect(new URL(back.headers.get('location')!).searchParams.get('result')).toBe('connected');
      // Single use across replicas: the state is spent for both.
      const replay = await fetch(onReplica(callback, start), { redirect: 'manual', headers: { cookie } });
      expect(replay.status).toBe(400);
      expect(((await replay.json()) as any).error.code).toBe('state_already_used');
      oauthConnections.push(conn);
    }
  });
});

describe('two workers', () => {
  it('share the request budget: the two first syncs together never outpace it, and both workers ran them', async () => {
    expect(oauthConnections).toHaveLength(2);
    const runs = await Promise.all(oauthConnections.map((c) => waitForSucceededRun(c.id, 300_000)));
    for (const [i, c] of oauthConnections.entries()) {
      expect(runs[i].status).toBe('succeeded');
      expect(await bitbucketTableCounts(c.id)).toEqual(bitbucketCounts(bitbucket.control.dataset()));
    }

    // Every paced request (all of the sync's GETs; the account check and the token endpoint are not paced).
    const at = bitbucket.control
      .requests()
      .filter((r) => r.path.startsWith('/2.0/') && r.path !== '/2.0/user')
      .map((r) => r.at)
      .sort((a, b) => a - b);
    // The workload needs more than the burst, or the budget would not be tested.
    expect(at.length).toBeGreaterThan(BURST + 15);
    // No window of requests holds more than the bucket can give: its burst plus what refills meanwhile.
    const overBudget: string[] = [];
    for (let i = 0; i < at.length; i++) {
      for (let j = i; j < at.length; j++) {
        const seconds = (at[j]! - at[i]!) / 1000;
        const allowed = BURST + PER_SECOND * (seconds + LATENESS_S);
        if (j - i + 1 > allowed) overBudget.push(`${j - i + 1} requests in ${seconds.toFixed(1)} s (at most ${allowed.toFixed(0)})`);
      }
    }
    expect(overBudget.slice(0, 5)).toEqual([]);
    // Paced at all: what exceeds the burst could only be sent as the bucket refilled.
    expect((at[at.length - 1]! - at[0]!) / 1000).toBeGreaterThanOrEqual((at.length - BURST) / PER_SECOND - LATENESS_S);

    // Both workers took sync steps of these runs (one slot each, two connections at once).
    const identities = new Set((await Promise.all(oauthConnections.map((c) => syncStepIdentities(c.workflowId)))).flat());
    expect([...identities].sort()).toEqual(workers.map(identityOf).sort());
  });

  it('a SIGKILLed worker’s sync in progress is finished by the other, with exact counts', async () => {
    bitrise.control.setLatency(3000);
    const conn = (await call(apis[1], 'POST', '/v1/connections', { body: { provider: 'bitrise' } })).body;
    expect(
      (await call(apis[0], 'PUT', `/v1/connections/${conn.id}/credentials`, { body: { token: bitrise.control.createToken() } })).status,
    ).toBe(200);
    // Whichever worker runs a step of the first sync right now is the one to kill.
    const handle = temporal.workflow.getHandle(conn.workflowId);
    let holder = '';
    let victim: WorkerProcess | undefined;
    try {
      await waitFor(
        async () => {
          const pending = (await handle.describe()).raw.pendingActivities ?? [];
          const step = pending.find(
            (a) =>
              a.activityType?.name === 'syncStep' && a.state === proto.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED,
          );
          holder = step?.lastWorkerIdentity ?? '';
          return holder !== '';
        },
        60_000,
        'a sync step in progress',
      );
      victim = workers.find((w) => identityOf(w) === holder);
      expect(victim).toBeDefined();
      await victim!.kill('SIGKILL');
    } finally {
      bitrise.control.setLatency(0);
    }
    const survivor = workers.find((w) => w !== victim)!;
    expect(survivor.pid).toBeDefined();

    // The step's heartbeat times out (15 s) and its retry runs on the survivor, from the last committed page.
    const run = await waitForSucceededRun(conn.id, 180_000);
    expect(run.retries).toBeGreaterThanOrEqual(1);
    expect(await runsOf(apis[1], conn.id)).toHaveLength(1);
    expect(await bitriseTableCounts(conn.id)).toEqual(bitriseCounts(bitrise.control.dataset()));
    // The survivor ran sync steps of this run. (History records only an activity's last attempt, and
    // the victim may have finished a step just before it died, so which step was last is not asserted.)
    const identities = await syncStepIdentities(conn.workflowId);
    expect(identities).toContain(identityOf(survivor));
  });
});
