/**
 * Parked connections: `npm run bench:parked [-- --connections=10000 --concurrency=20 --sample=300]`.
 *
 * Starts the whole stack (bench/lib/stack.ts: embedded Postgres, a Temporal dev server, the API,
 * the worker as its own process), then creates `connections` connections through the real create
 * path (`POST /v1/connections`: the row, then the idempotent workflow start) and, in the same run
 * and at the same concurrency, as many bare starts of the same workflow request on a task queue no
 * worker polls (what the Temporal server alone can take). The two are interleaved in chunks, so both
 * meet the same server state and the same machine load. Half the connections then get a Bitrise
 * simulator token and run their first sync (they sleep afterwards, until the next interval); the
 * other half keep waiting for a credential. It reports:
 *
 *   - the create rate against the bare-start rate (goal: ratio ≥ 0.8), and the settled rate (until
 *     every new workflow has published its first state);
 *   - the worker process's RSS with all of them parked (goal ≤ 1 GiB at 10,000; its sticky cache is
 *     WORKER_MAX_CACHED_WORKFLOWS, passed through with `--cache=N`);
 *   - workflow-task latency from a sample of histories (WorkflowTaskScheduled → Started → Completed);
 *   - the time for all of them to answer the `state` query.
 */
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { startConnectionWorkflow } from '../src/temporal/start-connection';
import { stateQuery } from '../src/workflows/messages';
import type { Stack } from '../test/helpers/stack';
import {
  createCleanup,
  fixed,
  int,
  loadAverage,
  mapConcurrent,
  mib,
  parseSizes,
  percentile,
  printVerdicts,
  processRss,
  progress,
  ratio,
  recordResult,
  runMain,
  table,
  usageLine,
  type Verdict,
} from './lib/report';
import { startBenchStack } from './lib/stack';

const DEFAULTS = { connections: 10_000, concurrency: 20, sample: 300, chunk: 500, cache: 0 };
const USAGE = `${usageLine('bench:parked', DEFAULTS)}   (--cache=0 keeps the configured WORKER_MAX_CACHED_WORKFLOWS default)`;

/** The smallest account that still runs every step of a Bitrise sync. */
const SEED = { organizations: 1, appsPerOrganization: 1, buildsPerApp: 5, pipelinesPerApp: 1, seed: 11 };

const EventType = temporal.api.enums.v1.EventType;

async function main(): Promise<number> {
  const { sizes, out, help } = parseSizes(process.argv.slice(2), DEFAULTS);
  if (help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const loadBefore = loadAverage();
  const cleanup = createCleanup();
  try {
    const env: Record<string, string> = {};
    if (sizes.cache > 0) env.WORKER_MAX_CACHED_WORKFLOWS = String(sizes.cache);
    const stack = await startBenchStack(cleanup, { bitrise: { seed: SEED }, env });
    const { apiKey } = await stack.createTenant('parked');
    const n = Math.round(sizes.connections);
    const concurrency = Math.round(sizes.concurrency);
    const workerPid = stack.worker.pid;
    if (!workerPid) throw new Error('the worker process is not running');
    const idleRss = await processRss(workerPid);

    // --- Start rates: real creates and bare starts, interleaved chunk by chunk.
    const ids: string[] = [];
    let createSeconds = 0;
    let bareSeconds = 0;
    let bareCount = 0;
    const bareQueue = `bench-bare-${randomUUID().slice(0, 8)}`;
    const chunk = Math.max(1, Math.round(sizes.chunk));
    const settledStarted = performance.now();
    for (let done = 0; done < n; done += chunk) {
      const size = Math.min(chunk, n - done);
      const t0 = performance.now();
      await mapConcurrent(Array.from({ length: size }), concurrency, async () => {
        const res = await retried(
          () => stack.request('POST', '/v1/connections', { apiKey, body: { provider: 'bitrise' } }),
          (r) => r.status === 201,
        );
        ids.push((res.body as { id: string }).id);
      });
      createSeconds += (performance.now() - t0) / 1000;
      const t1 = performance.now();
      await mapConcurrent(Array.from({ length: size }), concurrency, () => bareStart(stack.temporal, bareQueue));
      bareSeconds += (performance.now() - t1) / 1000;
      bareCount += size;
      progress(`created ${int(done + size)} of ${int(n)} (and as many bare starts)`);
    }
    progress('waiting for every new workflow to publish its first state');
    await waitForCount(stack, `state_revision >= 1`, n, 'first states published');
    const settledSeconds = (performance.now() - settledStarted) / 1000 - bareSeconds;
    const createRate = n / createSeconds;
    const bareRate = bareCount / bareSeconds;

    // --- Half of them active: a token each, the first sync, then asleep until the next interval.
    const active = ids.slice(0, Math.floor(n / 2));
    progress(`attaching a token to ${int(active.length)} connections (each runs its first sync)`);
    const attachStarted = performance.now();
    await mapConcurrent(active, concurrency, async (id) => {
      const token = stack.bitrise.control.createToken({ label: 'parked' });
      await retried(
        () => stack.request('PUT', `/v1/connections/${id}/credentials`, { apiKey, body: { token } }),
        (r) => r.status === 200,
        'attach',
      );
    });
    const attachSeconds = (performance.now() - attachStarted) / 1000;
    await waitForCount(stack, `status = 'active' and last_sync_at is not null`, active.length, 'first syncs finished');
    const syncedSeconds = (performance.now() - attachStarted) / 1000;
    const counts = await stack.sql<{ status: string; n: number }[]>`select status, count(*)::int as n from connections group by status`;
    const parkedRss = await processRss(workerPid);

    // --- Workflow-task latency, from histories.
    progress(`reading ${int(sizes.sample)} histories`);
    const sample = pick(ids, Math.round(sizes.sample));
    const latencies = { scheduleToStart: [] as number[], startToComplete: [] as number[], scheduleToComplete: [] as number[] };
    await mapConcurrent(sample, 10, async (id) => {
      const history = await stack.temporal.workflow.getHandle(`connection-${id}`).fetchHistory();
      let scheduled: number | undefined;
      let started: number | undefined;
      for (const e of history.events ?? []) {
        const at = Number(e.eventTime?.seconds ?? 0) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6);
        if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED) scheduled = at;
        else if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED && scheduled !== undefined) {
          started = at;
          latencies.scheduleToStart.push(at - scheduled);
        } else if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED && started !== undefined && scheduled !== undefined) {
          latencies.startToComplete.push(at - started);
          latencies.scheduleToComplete.push(at - scheduled);
          scheduled = started = undefined;
        }
      }
    });

    // --- Every connection answers the state query (replayed first if it is not in the sticky cache).
    progress(`querying all ${int(n)} workflows`);
    const queryMs: number[] = [];
    const queryStarted = performance.now();
    await mapConcurrent(ids, concurrency, async (id) => {
      const t = performance.now();
      const state = await stack.temporal.workflow.getHandle(`connection-${id}`).query(stateQuery);
      if (state.connectionId !== id) throw new Error(`connection-${id} answered for ${state.connectionId}`);
      queryMs.push(performance.now() - t);
    });
    const querySeconds = (performance.now() - queryStarted) / 1000;
    const afterQueryRss = await processRss(workerPid);

    const cacheSize = sizes.cache > 0 ? sizes.cache : stack.config.worker.maxCachedWorkflows;
    const figures = {
      connections: n,
      concurrency,
      failedAttempts: failures,
      workerMaxCachedWorkflows: cacheSize,
      statuses: Object.fromEntries(counts.map((c) => [c.status, c.n])),
      start: {
        createPerSecond: createRate,
        barePerSecond: bareRate,
        ratio: createRate / bareRate,
        settledPerSecond: n / settledSeconds,
        settledRatio: n / settledSeconds / bareRate,
      },
      active: { connections: active.length, attachSeconds, firstSyncsDoneSeconds: syncedSeconds },
      workerRssBytes: { idle: idleRss.rss, parked: parkedRss.rss, afterQueries: afterQueryRss.rss, peak: afterQueryRss.peak },
      workflowTaskMs: Object.fromEntries(
        Object.entries(latencies).map(([k, v]) => [
          k,
          { count: v.length, p50: percentile(v, 50), p99: percentile(v, 99), max: Math.max(...v) },
        ]),
      ),
      stateQuery: {
        totalSeconds: querySeconds,
        perSecond: n / querySeconds,
        p50Ms: percentile(queryMs, 50),
        p99Ms: percentile(queryMs, 99),
      },
    };

    const lines = [
      '',
      `== parked connections: ${int(n)} (${int(active.length)} active after a first sync, the rest awaiting credentials), concurrency ${concurrency}, sticky cache ${int(cacheSize)}`,
      '',
      table(
        ['figure', 'measured', 'baseline', 'ratio'],
        [
          [
            'create (POST /v1/connections) per s',
            fixed(createRate, 1),
            `${fixed(bareRate, 1)} bare starts/s`,
            ratio(createRate / bareRate),
          ],
          [
            'created and first state published, per s',
            fixed(n / settledSeconds, 1),
            `${fixed(bareRate, 1)} bare starts/s`,
            ratio(n / settledSeconds / bareRate),
          ],
          [
            'worker RSS parked / after all queries / peak',
            `${mib(parkedRss.rss)} / ${mib(afterQueryRss.rss)} / ${mib(afterQueryRss.peak)}`,
            `${mib(idleRss.rss)} idle`,
            '-',
          ],
          ...Object.entries(figures.workflowTaskMs).map(([k, v]) => [
            `workflow task ${k} p50 / p99 (${int(v.count)} tasks)`,
            `${fixed(v.p50, 0)} / ${fixed(v.p99, 0)} ms`,
            '-',
            '-',
          ]),
          [`state query, all ${int(n)}`, `${fixed(querySeconds, 1)} s (p99 ${fixed(percentile(queryMs, 99), 0)} ms)`, '-', '-'],
          [
            `${int(active.length)} tokens attached, first syncs done`,
            `${fixed(attachSeconds, 1)} s, ${fixed(syncedSeconds, 1)} s`,
            '-',
            '-',
          ],
        ],
      ),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    const verdicts: Verdict[] = [
      { goal: 'create rate ≥ 0.8 × bare start rate', measured: ratio(createRate / bareRate), met: createRate / bareRate >= 0.8 },
      {
        goal: `worker RSS ≤ 1 GiB with ${int(n)} parked`,
        measured: mib(Math.max(parkedRss.rss, afterQueryRss.rss)),
        met: Math.max(parkedRss.rss, afterQueryRss.rss) <= 2 ** 30,
      },
    ];
    printVerdicts('parked', verdicts, loadBefore);
    await recordResult(out, 'parked', { figures, verdicts, sizes }, loadBefore);
    return 0;
  } finally {
    await cleanup.run();
  }
}

/**
 * Failed attempts (a create answering 503, a start past its deadline: the machine is loaded) are
 * counted and tried again, on both sides alike, so one slow moment does not end the run.
 */
const failures = { create: 0, bare: 0, attach: 0 };

async function retried<T>(attempt: () => Promise<T>, ok: (value: T) => boolean, side: keyof typeof failures = 'create'): Promise<T> {
  for (let i = 1; ; i++) {
    let value: T | undefined;
    let error: unknown;
    try {
      value = await attempt();
    } catch (err) {
      error = err;
    }
    if (value !== undefined && ok(value)) return value;
    failures[side] += 1;
    if (i >= 5) throw error instanceof Error ? error : new Error(`${side} failed 5 times: ${JSON.stringify(value)}`);
  }
}

/** The very request the API sends (startConnectionWorkflow), to a task queue no worker polls. */
async function bareStart(client: Client, taskQueue: string): Promise<void> {
  const id = randomUUID();
  await retried(
    () =>
      startConnectionWorkflow(
        client,
        { taskQueue, maxHistoryEvents: 5000 },
        { id, tenantId: randomUUID(), provider: 'bitrise', syncIntervalSeconds: 3600, workflowId: `bench-bare-${id}` },
      ).then(() => true),
    (v) => v,
    'bare',
  );
}

async function waitForCount(stack: Stack, condition: string, expected: number, what: string): Promise<void> {
  for (let last = -1; ;) {
    const [row] = await stack.sql<{ n: number }[]>`select count(*)::int as n from connections where ${stack.sql.unsafe(condition)}`;
    if (row!.n >= expected) return;
    if (row!.n !== last) progress(`${what}: ${int(row!.n)} of ${int(expected)}`);
    last = row!.n;
    await new Promise((r) => setTimeout(r, 2000));
  }
}

/** A fixed-size random sample (without replacement). */
function pick<T>(items: readonly T[], count: number): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy.slice(0, Math.min(count, copy.length));
}

runMain(main, USAGE);
