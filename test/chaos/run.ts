/**
 * `npm run test:chaos`: proves that Conduit recovers by itself.
 *
 * The real stack as separate OS processes — the Temporal dev server on a SQLite file, the embedded
 * Postgres on its data directory, the API, and WORKERS worker processes — with both provider
 * simulators (in this process) serving CONNECTIONS connections that sync while the simulators
 * serve every fault at once (5xx, connection resets, 429 storms with and without Retry-After, slow
 * answers, access tokens that live 20 s, refresh-token rotation with a short grace window, lost
 * token answers). Meanwhile, at seeded random points, workers are SIGKILLed (at least 5 times),
 * Temporal and Postgres are SIGKILLed and started again on the same files, and the API is SIGKILLed
 * while a client loop has pause/resume/sync requests in flight.
 *
 * Then it asserts: every connection ends `active` with exactly the simulators' records and no
 * duplicates; no connection was ever seen in `needs_reconnect` (the database, polled throughout,
 * and every workflow history's search-attribute upserts); no workflow failed, was terminated or
 * is stuck (each described: running, nothing pending); no update the API accepted was lost; no run
 * failed for any reason but a pause. It prints the kills survived, the faults served, the time to
 * settle after the last outage and the duration, then runs the embedded-stack test (embedded.ts).
 *
 * `CHAOS_SEED=<n>` replays a run's kill points and fault draws (the seed is printed).
 * `CHAOS_KEEP=1` keeps the run directory (logs, data) even when green.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { makeReachableTempDir } from '../../dev/embedded-postgres';
import { getFreePort } from '../../dev/ports';
import { resolveTemporalCli } from '../../dev/temporal-cli';
import { completeSyncCounts as bitbucketCounts, startBitbucketSimulator, type BitbucketSimulator } from '../../simulators/bitbucket';
import { completeSyncCounts as bitriseCounts, startBitriseSimulator, type BitriseSimulator } from '../../simulators/bitrise';
import { CHAOS_FAULT_KINDS, type ChaosSpec, type ChaosStats } from '../../simulators/shared';
import { loadConfig } from '../../src/config';
import { runMigrations } from '../../src/db/migrate';
import { createSql, type Sql } from '../../src/db/sql';
import { MANIFESTS, type Provider } from '../../src/providers/manifests';
import { adapterOf, createProviders } from '../../src/providers/registry';
import { reconcilerWorkflowId } from '../../src/reconciler/reconcile';
import { writeWorkflowBundle } from '../../src/temporal/workflow-bundle';
import { apiRequester, completeOAuth, PLATFORM_CLIENT, type ApiRequest } from '../helpers/stack';
import { ChaosClient, type ConnectionRef } from './client';
import { endedWorkflows, historiesWithNeedsReconnect, Observer } from './observer';
import { chaosSchedule, type ChaosEvent, type OutageKind } from './schedule';
import { NodeService, PostgresService, TemporalService, type Service } from './services';
import { runEmbeddedStackTest } from './embedded';

const SEED = process.env.CHAOS_SEED ? Number(process.env.CHAOS_SEED) : Math.floor(Math.random() * 2 ** 31);
const CONNECTIONS = { bitbucket: 10, bitrise: 10 } as const;
const WORKERS = 2;
const CHAOS_MS = 60_000;
const WORKER_KILLS = 6;
const API_KILLS = 2;
/** Seconds a rotated-out Bitbucket refresh token keeps working, in the simulator and in Conduit's config alike. */
const REFRESH_GRACE_SECONDS = 30;
const ACCESS_TOKEN_TTL_SECONDS = 20;
const SETTLE_GOAL_MS = 120_000;
const SETTLE_TIMEOUT_MS = 300_000;
const FAULTS: ChaosSpec = {
  errorRate: 0.1,
  resetRate: 0.03,
  slowRate: 0.05,
  slowMs: 2_500,
  storm: { everyMs: 20_000, lastsMs: 4_000, rate: 0.5 },
  tokenFaultRate: 0.1,
};
const BITBUCKET_SEED = {
  workspaces: 1,
  reposPerWorkspace: 2,
  membersPerWorkspace: 3,
  pullRequestsPerRepo: 110,
  commitsPerRepo: 210,
  pipelinesPerRepo: 210,
};
const BITRISE_SEED = { organizations: 1, appsPerOrganization: 2, buildsPerApp: 120, pipelinesPerApp: 110 };

const started = Date.now();
const elapsed = (from = started) => `${((Date.now() - from) / 1000).toFixed(1)} s`;
const say = (line: string) => console.log(`[chaos ${elapsed()}] ${line}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Outage {
  target: OutageKind;
  downAt: number;
  upAt?: number;
}

/** Ctrl-C or a CI timeout: stop everything this run started before exiting. */
let interrupt: (() => void) | undefined;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`[chaos] ${signal}: stopping`);
    interrupt?.();
  });
}

async function main(): Promise<number> {
  say(`seed ${SEED} (replay with CHAOS_SEED=${SEED} npm run test:chaos)`);
  process.env.TEMPORAL_CLI_PATH = await resolveTemporalCli();
  const dir = await makeReachableTempDir('conduit-chaos-');
  const logDir = path.join(dir, 'logs');
  await fs.mkdir(logDir);
  const cleanup: (() => Promise<unknown>)[] = [];
  let green = false;
  const interrupted = new Promise<false>((resolve) => (interrupt = () => resolve(false)));
  try {
    green = await Promise.race([chaos(dir, logDir, cleanup), interrupted]);
  } finally {
    for (const fn of cleanup.reverse()) await fn().catch((err: unknown) => console.error('[chaos] cleanup:', err));
    if (green && !process.env.CHAOS_KEEP) await fs.rm(dir, { recursive: true, force: true });
    else say(`kept ${dir} (logs in ${logDir})`);
  }
  if (!green) return 1;
  const embedded = await runEmbeddedStackTest({ log: say });
  return embedded ? 0 : 1;
}

async function chaos(dir: string, logDir: string, cleanup: (() => Promise<unknown>)[]): Promise<boolean> {
  // --- The stack -------------------------------------------------------------------------------
  const bitbucket = await startBitbucketSimulator({
    consumers: [PLATFORM_CLIENT],
    accessTokenTtlSeconds: ACCESS_TOKEN_TTL_SECONDS,
    refreshTokenGraceSeconds: REFRESH_GRACE_SECONDS,
    seed: BITBUCKET_SEED,
  });
  cleanup.push(() => bitbucket.close());
  const bitrise = await startBitriseSimulator({ seed: BITRISE_SEED });
  cleanup.push(() => bitrise.close());

  const [pgPort, temporalPort, apiPort] = [await getFreePort(), await getFreePort(), await getFreePort()];
  const postgres = new PostgresService(path.join(dir, 'postgres'), pgPort);
  const temporal = new TemporalService(path.join(dir, 'temporal', 'temporal.db'), temporalPort);
  // Workers start from a prebuilt bundle, as a deployment does (WORKFLOW_BUNDLE_PATH).
  const bundle = path.join(dir, 'workflow-bundle.js');
  await Promise.all([postgres.start(), temporal.start(), writeWorkflowBundle(bundle)]);
  cleanup.push(
    () => postgres.stop(),
    () => temporal.stop(),
  );
  await runMigrations(postgres.url);

  const env: Record<string, string> = {
    DATABASE_URL: postgres.url,
    TEMPORAL_ADDRESS: temporal.address,
    TEMPORAL_TASK_QUEUE: 'conduit',
    PORT: String(apiPort),
    HOST: '127.0.0.1',
    PUBLIC_URL: `http://127.0.0.1:${apiPort}`,
    ADMIN_TOKEN: `admin-${randomBytes(16).toString('hex')}`,
    ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    BITBUCKET_CLIENT_ID: PLATFORM_CLIENT.clientId,
    BITBUCKET_CLIENT_SECRET: PLATFORM_CLIENT.clientSecret,
    BITBUCKET_API_URL: bitbucket.apiUrl,
    BITBUCKET_OAUTH_URL: bitbucket.oauthUrl,
    BITBUCKET_REFRESH_GRACE_SECONDS: String(REFRESH_GRACE_SECONDS),
    BITRISE_API_URL: bitrise.apiUrl,
    // The simulators do not limit; Conduit's own pacing would only slow the run down.
    BITBUCKET_REQUESTS_PER_HOUR: '3600000',
    BITRISE_REQUESTS_PER_HOUR: '3600000',
    LOG_LEVEL: 'info',
    ALLOW_INSECURE_RETURN_ORIGINS: 'true',
    RATE_LIMIT_API_KEY_PER_MINUTE: '1000000',
    RATE_LIMIT_ADMIN_PER_MINUTE: '1000000',
    RATE_LIMIT_OAUTH_PER_MINUTE: '1000000',
    WORKFLOW_BUNDLE_PATH: bundle,
  };
  const providers = createProviders(loadConfig(env).providers);

  // A supervisor, as a deployment has: whatever dies on its own is started again.
  const restart = (svc: Service) => void ensureStarted(svc);
  const apiUrl = env.PUBLIC_URL!;
  const api = new NodeService('api', 'src/api/server.ts', env, logDir, async () => (await fetch(`${apiUrl}/healthz`)).ok, restart);
  const workers = Array.from(
    { length: WORKERS },
    (_, i) =>
      new NodeService(`worker-${i}`, 'src/worker.ts', env, logDir, async (tail) => tail().includes('Worker state changed'), restart),
  );
  await Promise.all([api.start(), ...workers.map((w) => w.start())]);
  for (const svc of [api, ...workers]) cleanup.push(() => svc.stop().finally(() => svc.close()));
  say(`stack up: Postgres :${pgPort}, Temporal :${temporalPort}, API :${apiPort}, ${WORKERS} workers (logs in ${logDir})`);

  const sql = createSql(postgres.url, { max: 2 });
  cleanup.push(() => sql.end({ timeout: 2 }));
  const temporalConnection = await Connection.connect({ address: temporal.address });
  cleanup.push(() => temporalConnection.close());
  const client = new Client({ connection: temporalConnection });

  // --- Connections -----------------------------------------------------------------------------
  const request = apiRequester(apiUrl, { timeoutMs: 45_000 });
  const tenant = await request('POST', '/v1/tenants', { headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` }, body: { name: 'Chaos' } });
  if (tenant.status !== 201) throw new Error(`tenant: ${tenant.status} ${JSON.stringify(tenant.body)}`);
  const apiKey = tenant.body.apiKey as string;
  const connections = await connectAll(request, apiKey, bitrise);
  const workflowIds = connections.map((c) => `connection-${c.id}`);
  say(
    `${connections.length} connections attached (${CONNECTIONS.bitbucket} Bitbucket over OAuth, ${CONNECTIONS.bitrise} Bitrise); first syncs under way`,
  );

  // --- Chaos -----------------------------------------------------------------------------------
  for (const sim of [bitbucket, bitrise]) sim.control.setChaos({ ...FAULTS, seed: SEED });
  const observer = new Observer(sql, client, () => workflowIds);
  observer.start();
  const chaosClient = new ChaosClient(request, apiKey, connections, SEED);
  const clientLoop = chaosClient.run(4);
  const schedule = chaosSchedule(SEED, { durationMs: CHAOS_MS, workers: WORKERS, workerKills: WORKER_KILLS, apiKills: API_KILLS });
  say(`chaos for ${CHAOS_MS / 1000} s: ${describeSchedule(schedule)}`);
  const chaosStart = Date.now();
  const outages: Outage[] = [];
  const targets = { api, temporal, postgres } as const;
  // One outage at a time per service: a kill due while the service is still coming back waits for it.
  const busy = new Map<Service, Promise<void>>();
  await Promise.all(
    schedule.map(async (event) => {
      await sleep(Math.max(0, chaosStart + event.at - Date.now()));
      if (event.kind === 'mutate') return mutateWorlds(bitbucket, bitrise);
      const svc = event.target === 'worker' ? workers[event.worker ?? 0]! : targets[event.target];
      const previous = busy.get(svc) ?? Promise.resolve();
      const outage = previous.then(() => killAndRestart(svc, event));
      busy.set(svc, outage);
      await outage;
    }),
  );
  async function killAndRestart(svc: Service, event: Extract<ChaosEvent, { kind: 'kill' }>): Promise<void> {
    if (event.target === 'api') {
      // Mid-request: wait (briefly) until the client has an action in flight.
      const until = Date.now() + 5_000;
      while (chaosClient.inFlight === 0 && Date.now() < until) await sleep(20);
    }
    const outage: Outage = { target: event.target, downAt: Date.now() };
    outages.push(outage);
    const inFlight = chaosClient.inFlight;
    await svc.kill();
    say(`SIGKILL ${svc.name}${event.target === 'api' ? ` (${inFlight} actions in flight)` : ''}; back in ${event.downMs} ms`);
    await sleep(event.downMs);
    await ensureStarted(svc);
    outage.upAt = Date.now();
    say(`${svc.name} is back (down ${((outage.upAt - outage.downAt) / 1000).toFixed(1)} s)`);
  }
  // Anything the supervisor is still bringing back counts as part of the last outage.
  for (const svc of [api, ...workers]) while (!svc.running) await sleep(200);
  const lastOutageEnd = Math.max(...outages.map((o) => o.upAt ?? Date.now()), Date.now());
  chaosClient.stop();
  await clientLoop;
  say(`last outage over; client sent ${JSON.stringify(chaosClient.stats.sent)}, accepted ${JSON.stringify(chaosClient.stats.accepted)}`);

  // --- Settle ----------------------------------------------------------------------------------
  const failures: string[] = [];
  await chaosClient.finish(SETTLE_TIMEOUT_MS).catch((err: Error) => failures.push(err.message));
  const finalSyncsAcceptedMs = Date.now() - lastOutageEnd;
  const expected = expectedCounts(bitbucket, bitrise);
  let progress = '';
  const settleDeadline = Date.now() + SETTLE_TIMEOUT_MS;
  let settledAt: number | undefined;
  let lastReport = Date.now();
  const secondSyncs = new Set<string>();
  const lateLandings = new Set<string>();
  while (Date.now() < settleDeadline) {
    const state = await unsettled(sql, connections, expected, chaosClient.lastSyncRequests(), providers).catch((err: Error) => ({
      problems: [`database: ${err.message}`],
      paused: [],
      short: [],
    }));
    const { problems } = state;
    if (problems.length === 0) {
      settledAt = Date.now();
      break;
    }
    // A pause that went unanswered during the chaos landed after the final sync: resume it.
    for (const id of state.paused) {
      lateLandings.add(id);
      void chaosClient.settle(id, SETTLE_TIMEOUT_MS).catch(() => undefined);
    }
    // The final run finished a pass that an earlier run began (paused, killed): records added since
    // that pass began come with the next run, which is asked for here.
    for (const id of state.short) {
      if (secondSyncs.has(id)) continue;
      secondSyncs.add(id);
      void chaosClient.settle(id, SETTLE_TIMEOUT_MS).catch(() => undefined);
    }
    progress = problems[0]!;
    if (Date.now() - lastReport > 15_000) {
      say(`settling: ${problems.length} left, e.g. ${progress}`);
      lastReport = Date.now();
    }
    await sleep(1_000);
  }
  const settleMs = (settledAt ?? Date.now()) - lastOutageEnd;
  await observer.stop();

  // --- Assertions ------------------------------------------------------------------------------
  if (!settledAt) {
    failures.push(`did not settle within ${SETTLE_TIMEOUT_MS / 1000} s of the last outage; still: ${progress}`);
    const still = await unsettled(sql, connections, expected, chaosClient.lastSyncRequests(), providers).catch(() => undefined);
    for (const p of still?.problems ?? []) failures.push(`  ${p}`);
  }
  if (settleMs > SETTLE_GOAL_MS) failures.push(`settling took ${(settleMs / 1000).toFixed(0)} s (goal < ${SETTLE_GOAL_MS / 1000} s)`);
  for (const c of connections) {
    const res = await request('GET', `/v1/connections/${c.id}`, { apiKey });
    if (res.status !== 200 || res.body.status !== 'active')
      failures.push(`${c.provider} ${c.id} reads ${res.status} ${res.body?.status ?? ''}`);
  }
  for (const [id, at] of observer.needsReconnect) failures.push(`${id} was seen in needs_reconnect at ${at}`);
  const histories = await historiesWithNeedsReconnect(client, workflowIds);
  for (const hit of histories.hits) failures.push(`a needs_reconnect search attribute in ${hit}`);
  for (const wf of await endedWorkflows(client)) failures.push(`workflow ended: ${wf}`);
  for (const id of [...workflowIds, reconcilerWorkflowId('conduit')]) {
    const d = await client.workflow.getHandle(id).describe();
    if (d.status.name !== 'RUNNING') failures.push(`${id} is ${d.status.name}`);
    if (id !== reconcilerWorkflowId('conduit')) {
      for (const a of d.raw.pendingActivities ?? [])
        failures.push(`${id} still has ${a.activityType?.name} pending (attempt ${a.attempt})`);
    }
  }
  for (const lost of chaosClient.stats.lostUpdates) failures.push(`lost update: ${lost}`);
  const runs = await sql<{ status: string; code: string | null; n: number }[]>`
    select status, error->>'code' as code, count(*)::int as n from sync_runs group by 1, 2 order by 1, 2`;
  for (const r of runs)
    if (r.status !== 'succeeded' && r.code !== 'sync_cancelled') failures.push(`${r.n} runs ${r.status} with ${r.code}`);
  const unexpected = [api, ...workers].flatMap((s) => s.unexpectedExits.map((e) => `${s.name} ${e}`));
  for (const e of unexpected) failures.push(`exited on its own: ${e}`);

  // --- Report ----------------------------------------------------------------------------------
  const faults = sumStats(bitbucket.control.chaosStats(), bitrise.control.chaosStats());
  const kills = outages.reduce<Record<string, number>>((acc, o) => ({ ...acc, [o.target]: (acc[o.target] ?? 0) + 1 }), {});
  const requests = bitbucket.control.requests().length + bitrise.control.requests().length;
  say('');
  say(
    `kills survived: ${Object.entries(kills)
      .map(([k, n]) => `${k} ×${n}`)
      .join(', ')} (all SIGKILL)`,
  );
  say(
    `faults served (${requests} API requests answered): ${Object.entries(faults)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ')}`,
  );
  say(
    `  Bitbucket token refreshes: ${bitbucket.control.refreshCount()}, rotated-out tokens presented again: ${bitbucket.control.refreshTokenReuseCount()}`,
  );
  say(
    `client: sent ${JSON.stringify(chaosClient.stats.sent)}, accepted ${JSON.stringify(chaosClient.stats.accepted)}, 409 ${chaosClient.stats.refused409}, 503 ${chaosClient.stats.unavailable503}, no answer ${chaosClient.stats.noAnswer}`,
  );
  say(`runs: ${runs.map((r) => `${r.status}${r.code ? `/${r.code}` : ''} ${r.n}`).join(', ')}`);
  say(`most attempts of a pending activity seen: ${observer.maxPendingAttempt.attempt} (${observer.maxPendingAttempt.where || '-'})`);
  say(
    `histories scanned: ${histories.scanned} runs of ${workflowIds.length} workflows; database polls ${observer.polls.database} (${observer.polls.databaseFailed} while down)`,
  );
  const finalRuns = await finalRunFigures(sql, chaosClient.lastSyncRequests());
  say(`final syncs accepted ${(finalSyncsAcceptedMs / 1000).toFixed(1)} s after the last outage; their runs took ${finalRuns}`);
  say(
    `${secondSyncs.size} connections needed a second sync after the final one (it finished a pass begun before new records arrived); ` +
      `${lateLandings.size} had an unanswered pause land after it; ${chaosClient.stats.inconclusive} read-backs inconclusive after an unanswered action`,
  );
  say(`settled ${(settleMs / 1000).toFixed(1)} s after the last outage (goal < ${SETTLE_GOAL_MS / 1000} s); chaos suite ${elapsed()}`);
  if (failures.length) {
    console.error(`[chaos] FAILED (seed ${SEED}):\n  ${failures.join('\n  ')}`);
    return false;
  }
  say(`green (seed ${SEED})`);
  return true;
}

/** Starts a service, again and again until it serves (a worker cannot start while Temporal is down). */
async function ensureStarted(svc: Service): Promise<void> {
  for (;;) {
    if (svc.running) return;
    try {
      await svc.start();
      return;
    } catch {
      await sleep(1_000);
    }
  }
}

/** Creates and attaches every connection: Bitbucket through the OAuth round trip, Bitrise with a token. */
async function connectAll(request: ApiRequest, apiKey: string, bitrise: BitriseSimulator): Promise<ConnectionRef[]> {
  const plan: Provider[] = [
    ...Array.from({ length: CONNECTIONS.bitbucket }, () => 'bitbucket' as const),
    ...Array.from({ length: CONNECTIONS.bitrise }, () => 'bitrise' as const),
  ];
  const out: ConnectionRef[] = [];
  const queue = [...plan.entries()];
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        const [i, provider] = next;
        const created = await request('POST', '/v1/connections', { apiKey, body: { provider, name: `${provider} ${i}` } });
        if (created.status !== 201) throw new Error(`create ${provider}: ${created.status} ${JSON.stringify(created.body)}`);
        const id = created.body.id as string;
        if (provider === 'bitbucket') await completeOAuth({ request }, apiKey, id);
        else {
          const put = await request('PUT', `/v1/connections/${id}/credentials`, { apiKey, body: { token: bitrise.control.createToken() } });
          if (put.status !== 200) throw new Error(`token for ${id}: ${put.status} ${JSON.stringify(put.body)}`);
        }
        out.push({ id, provider });
      }
    }),
  );
  return out;
}

type Expected = Record<Provider, Record<string, number>>;

function expectedCounts(bitbucket: BitbucketSimulator, bitrise: BitriseSimulator): Expected {
  return { bitbucket: bitbucketCounts(bitbucket.control.dataset()), bitrise: bitriseCounts(bitrise.control.dataset()) };
}

/**
 * What still stands between the stack and "settled" (no problems when every connection is done),
 * with the connections found paused and those whose final run left records for the next one.
 */
async function unsettled(
  sql: Sql,
  connections: ConnectionRef[],
  expected: Expected,
  finalSyncs: Map<string, number | undefined>,
  providers: ReturnType<typeof createProviders>,
): Promise<{ problems: string[]; paused: string[]; short: string[] }> {
  const problems: string[] = [];
  const paused: string[] = [];
  const short = new Set<string>();
  const rows = await sql<{ id: string; status: string; syncState: string; running: number; lastSucceeded: Date | null }[]>`
    select c.id, c.status, c.sync_state->>'state' as sync_state,
      (select count(*)::int from sync_runs r where r.connection_id = c.id and r.status = 'running') as running,
      (select max(started_at) from sync_runs r where r.connection_id = c.id and r.status = 'succeeded') as last_succeeded
    from connections c`;
  const byId = new Map(rows.map((r) => [r.id, r]));
  for (const c of connections) {
    const r = byId.get(c.id);
    if (!r) problems.push(`${c.id}: no row`);
    else if (r.status !== 'active') {
      problems.push(`${c.id}: ${r.status}`);
      if (r.status === 'paused') paused.push(c.id);
    } else if (r.syncState !== 'idle' || r.running > 0) problems.push(`${c.id}: syncing (${r.syncState})`);
    else {
      const asked = finalSyncs.get(c.id);
      if (asked && (!r.lastSucceeded || r.lastSucceeded.getTime() < asked - 1_000))
        problems.push(`${c.id}: no succeeded run since the final sync was asked for`);
    }
  }
  if (problems.length) return { problems, paused, short: [] };
  for (const provider of Object.keys(MANIFESTS) as Provider[]) {
    const adapter = adapterOf(providers, provider);
    for (const [resource, want] of Object.entries(expected[provider])) {
      const table = (adapter.tables as Record<string, { table: string }>)[resource]!.table;
      const counts = await sql<{ connectionId: string; n: number; distinctIds: number }[]>`
        select connection_id, count(*)::int as n, count(distinct id)::int as distinct_ids from ${sql(table)} group by connection_id`;
      const got = new Map(counts.map((r) => [r.connectionId, r]));
      for (const c of connections.filter((x) => x.provider === provider)) {
        const row = got.get(c.id);
        if (!row || row.n !== want || row.distinctIds !== row.n) {
          problems.push(`${c.id} ${resource}: ${row?.n ?? 0} rows (${row?.distinctIds ?? 0} distinct), the simulator has ${want}`);
          if ((row?.n ?? 0) < want) short.add(c.id);
        }
        if (row && row.distinctIds !== row.n) problems.push(`${c.id} ${resource}: duplicates`);
      }
    }
  }
  return { problems, paused, short: [...short] };
}

/** How long the runs asked for by the final syncs took, and what they waited on. */
async function finalRunFigures(sql: Sql, finalSyncs: Map<string, number | undefined>): Promise<string> {
  const rows: { seconds: number; waits: number; retries: number }[] = [];
  for (const [id, asked] of finalSyncs) {
    if (!asked) continue;
    const [run] = await sql<{ seconds: number; waits: number; retries: number }[]>`
      select extract(epoch from finished_at - ${new Date(asked)}::timestamptz)::float8 as seconds,
             rate_limit_waits as waits, retries
      from sync_runs where connection_id = ${id} and status = 'succeeded' and started_at >= ${new Date(asked - 1_000)}
      order by started_at limit 1`;
    if (run) rows.push(run);
  }
  if (rows.length === 0) return '(none)';
  const secs = rows.map((r) => r.seconds).sort((a, b) => a - b);
  const at = (q: number) => secs[Math.min(secs.length - 1, Math.floor(q * secs.length))]!.toFixed(1);
  const sum = (k: 'waits' | 'retries') => rows.reduce((n, r) => n + r[k], 0);
  return `p50 ${at(0.5)} s, max ${at(1)} s from request to finish (${sum('waits')} rate-limit waits, ${sum('retries')} retries in all)`;
}

/** New data at both providers: pull requests, commits, pipelines, builds; running ones finish. */
function mutateWorlds(bitbucket: BitbucketSimulator, bitrise: BitriseSimulator): void {
  const ds = bitbucket.control.dataset();
  for (const ws of ds.workspaces) {
    for (const repo of ws.repositories) {
      bitbucket.control.addPullRequests(ws.slug, repo.slug, 3);
      bitbucket.control.addCommits(ws.slug, repo.slug, 5);
      bitbucket.control.finishRunningPipelines(ws.slug, repo.slug);
      bitbucket.control.addPipelines(ws.slug, repo.slug, 2, { state: 'IN_PROGRESS' });
    }
  }
  for (const org of bitrise.control.dataset().organizations) {
    for (const app of org.apps) {
      bitrise.control.finishRunningBuilds(app.slug);
      bitrise.control.addBuilds(app.slug, 4);
      bitrise.control.addBuilds(app.slug, 1, { status: 0 });
      bitrise.control.addPipelines(app.slug, 2);
    }
  }
}

function describeSchedule(events: ChaosEvent[]): string {
  return events
    .map(
      (e) =>
        `${(e.at / 1000).toFixed(1)}s ${e.kind === 'mutate' ? 'new data' : `kill ${e.target}${e.worker !== undefined ? `-${e.worker}` : ''}`}`,
    )
    .join(', ');
}

function sumStats(...all: ChaosStats[]): ChaosStats {
  const out = Object.fromEntries(CHAOS_FAULT_KINDS.map((k) => [k, 0])) as ChaosStats;
  for (const s of all) for (const k of CHAOS_FAULT_KINDS) out[k] += s[k];
  return out;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error('[chaos] crashed:', err);
    process.exit(1);
  },
);
