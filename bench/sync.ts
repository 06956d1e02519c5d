/**
 * Sync engine benchmark: `npm run bench:sync [-- --scale=N] [--fault-rate=R]`.
 *
 * For each provider it builds a large simulated account, then measures
 *   1. a baseline: the same GETs the syncers send, with plain `fetch`, no database at all;
 *   2. the engine's first sync (full backfill) through the real activities;
 *   3. the engine's incremental sync right after, with nothing changed.
 * With `--fault-rate=R` (0 < R < 1, e.g. 0.2) it then measures a full resync fault-free and again with
 * the simulator answering every (1/R)-th API request 500, and reports the ratio of the two times.
 * It prints a table and a final `BENCH_JSON {...}` line. It is a report, not a test: the only thing
 * it judges is whether the stored rows match the simulator's dataset (exit 1 if not).
 *
 * A provider's simulator, baseline and engine share one process on purpose: both sides of every
 * ratio then pay the same simulator and event-loop costs, so the ratio isolates what the engine
 * adds on top of fetching (credential reads, pacing, page transactions, upserts). Absolute numbers
 * are therefore a floor for a real deployment, where each request also crosses the internet. Each
 * provider gets its own child process, so neither inherits the other's heap (see childMain).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createSyncActivities, type SyncSettings, type SyncStepResult } from '../src/activities/sync';
import { createAccessBroker } from '../src/credentials/access';
import { createVault } from '../src/credentials/vault';
import { Keyring } from '../src/crypto/keyring';
import { randomToken } from '../src/crypto/tokens';
import { insertConnection } from '../src/db/connections';
import { runMigrations } from '../src/db/migrate';
import { createSql, type Sql } from '../src/db/sql';
import { createTenant } from '../src/db/tenants';
import { startEmbeddedPostgres } from '../dev/embedded-postgres';
import { createCleanup, progress } from './lib/report';
import { PROVIDERS, syncResources, type Provider } from '../src/domain/connection';
import { bitriseAuthHeaders } from '../src/providers/bitrise/account';
import { createBitbucketOAuth } from '../src/providers/bitbucket/oauth';
import { updatedResumePoint, updatedSinceQuery } from '../src/providers/bitbucket/cursors';
import { queryString } from '../src/providers/bitbucket/urls';
import { adapterOf, createProviders, type ProviderSettings } from '../src/providers/registry';
import type { TableSpec } from '../src/sync/store';
import { completeSyncCounts, startBitbucketSimulator, type BitbucketSeed } from '../simulators/bitbucket';
import { completeSyncCounts as completeBitriseSyncCounts, startBitriseSimulator, type BitriseSeed } from '../simulators/bitrise';

// ---------------------------------------------------------------------------------------------
// Configuration

/**
 * `--scale` multiplies the history per parent (pull requests, commits, pipelines, builds), not the
 * number of workspaces, repositories, organizations or apps: records then grow linearly with the
 * scale, and so does the depth of pagination, which is what a long-lived account looks like.
 * `--provider` is internal: the parent process starts one child per provider with it.
 */
const USAGE =
  'Usage: npm run bench:sync [-- --scale=N] [--fault-rate=R]   (N > 0, default 1: multiplies the history per repository/app; ' +
  '0 < R < 1: also sync with that share of API requests answering 500)';

/** A mistake on the command line: reported as one line plus usage, without a stack trace. */
class UsageError extends Error {}

function parseOptions(argv: string[]): { scale: number; faultRate: number; provider?: Provider; help: boolean } {
  let values: { scale?: string; 'fault-rate'?: string; provider?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        scale: { type: 'string' },
        'fault-rate': { type: 'string' },
        provider: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const scale = values.scale === undefined ? 1 : Number(values.scale);
  if (!Number.isFinite(scale) || scale <= 0) throw new UsageError(`--scale must be a positive number, got ${JSON.stringify(values.scale)}`);
  const provider = values.provider as Provider | undefined;
  if (provider !== undefined && !PROVIDERS.includes(provider)) throw new UsageError(`--provider must be one of ${PROVIDERS.join(', ')}`);
  const faultRate = values['fault-rate'] === undefined ? 0 : Number(values['fault-rate']);
  if (!Number.isFinite(faultRate) || faultRate < 0 || faultRate >= 1)
    throw new UsageError(`--fault-rate must be a number in [0, 1), got ${JSON.stringify(values['fault-rate'])}`);
  return { scale, faultRate, provider, help: values.help ?? false };
}

const scaled = (n: number, scale: number) => Math.max(1, Math.round(n * scale));

// Fixed PRNG seeds and anchors: every run (and every machine) benchmarks byte-identical data.
const ANCHOR = '2026-01-15T12:00:00.000Z';

export function bitbucketSeed(scale: number): BitbucketSeed {
  return {
    workspaces: 2,
    reposPerWorkspace: 10,
    membersPerWorkspace: 25,
    pullRequestsPerRepo: scaled(200, scale),
    commitsPerRepo: scaled(1000, scale),
    pipelinesPerRepo: scaled(200, scale),
    seed: 42,
    anchor: ANCHOR,
  };
}

export function bitriseSeed(scale: number): BitriseSeed {
  return {
    organizations: 2,
    appsPerOrganization: 5,
    buildsPerApp: scaled(2000, scale),
    pipelinesPerApp: scaled(100, scale),
    seed: 42,
    anchor: ANCHOR,
  };
}

/**
 * Pacing set far above anything the simulators would push back on (1 ms between requests), so the
 * engine's own overhead is measured rather than the limiter. The stall and rate-limit settings only
 * matter if something goes wrong; they are generous so a slow machine does not trip them.
 */
export const REQUESTS_PER_HOUR = 3_600_000;
export const SETTINGS: SyncSettings = {
  stallTimeoutSeconds: 600,
  maxInlineRateLimitWaitMs: 60_000,
  rateLimitBackoffMs: 1000,
};

// ---------------------------------------------------------------------------------------------
// Measurement helpers

/**
 * Peak RSS while a phase runs. Sampled on a timer because the peak is transient (a page of JSON,
 * a batch of bind parameters). The process also holds the simulator, and RSS does not shrink after
 * a phase, so compare a phase with the baseline (same simulator in memory) rather than reading the
 * absolute number, and expect a later phase to show at least the peak of an earlier one.
 */
class RssSampler {
  private peak = 0;
  private timer: NodeJS.Timeout | undefined;

  start(): void {
    this.peak = process.memoryUsage().rss;
    this.timer = setInterval(() => this.sample(), 20);
    this.timer.unref();
  }

  stop(): number {
    this.sample();
    clearInterval(this.timer);
    return this.peak;
  }

  private sample(): void {
    this.peak = Math.max(this.peak, process.memoryUsage().rss);
  }
}

interface Figures {
  records: number;
  requests: number;
  seconds: number;
}

interface PhaseResult extends Figures {
  peakRssBytes: number;
  /** Per step ('account' and each resource), in sync order. */
  steps: Record<string, Figures>;
}

/** Runs `fn` with a clock and an RSS sampler around it. */
export async function measured<T>(fn: () => Promise<T>): Promise<{ value: T; seconds: number; peakRssBytes: number }> {
  const rss = new RssSampler();
  rss.start();
  const t0 = performance.now();
  let value: T;
  try {
    value = await fn();
  } catch (err) {
    rss.stop();
    throw err;
  }
  const seconds = (performance.now() - t0) / 1000;
  return { value, seconds, peakRssBytes: rss.stop() };
}

async function timedStep<T>(fn: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const t0 = performance.now();
  const value = await fn();
  return { value, seconds: (performance.now() - t0) / 1000 };
}

// ---------------------------------------------------------------------------------------------
// Baselines: the syncers' request sequence, minus everything that is not fetching

/**
 * A bare client: one header, JSON out, a counter. No pacing, no credential lookups, no retries,
 * no abort signals. This is the "how fast could it possibly go" line the engine is compared to.
 */
function plainClient(headers: Record<string, string>) {
  let requests = 0;
  return {
    get requests() {
      return requests;
    },
    async get<T>(url: string): Promise<T> {
      requests += 1;
      const res = await fetch(url, { headers });
      if (!res.ok) throw new Error(`Baseline GET ${new URL(url).pathname} answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
      return (await res.json()) as T;
    },
  };
}
type PlainClient = ReturnType<typeof plainClient>;

/** Collects per-step figures for a baseline; records are distinct ids, as the tables would hold. */
export class StepLog {
  readonly steps: Record<string, Figures> = {};

  async run(client: PlainClient, step: string, fn: (ids: Set<string>) => Promise<void>): Promise<void> {
    const ids = new Set<string>();
    const before = client.requests;
    const { seconds } = await timedStep(() => fn(ids));
    this.steps[step] = { records: ids.size, requests: client.requests - before, seconds };
  }

  totals(): Omit<Figures, 'seconds'> {
    const all = Object.values(this.steps);
    return { records: all.reduce((n, s) => n + s.records, 0), requests: all.reduce((n, s) => n + s.requests, 0) };
  }
}

type Json = Record<string, any>;
interface BitbucketPage {
  values?: Json[];
  next?: string | null;
}

/**
 * Bitbucket's `updated_on` listings are paged by re-querying with `q=updated_on > resume` (keyset),
 * exactly as syncUpdatedSince does, using the same pure helpers so the URLs are identical. Following
 * plain `next` links instead would send fewer, cheaper requests and flatter the baseline.
 */
async function baselineUpdatedSince(
  client: PlainClient,
  url: (q: string | undefined) => string,
  onItem: (item: Json) => void,
): Promise<void> {
  let after: string | undefined;
  let next = url(undefined);
  for (;;) {
    const page = await client.get<BitbucketPage>(next);
    const items = page.values ?? [];
    items.forEach(onItem);
    const more = Boolean(page.next) && items.length > 0;
    const resume = updatedResumePoint(
      items.map((i) => i.updated_on),
      more,
      after,
    );
    if (!more) return;
    next = resume !== after && resume !== undefined ? url(updatedSinceQuery(resume)) : page.next!;
    after = resume;
  }
}

export async function bitbucketBaseline(apiUrl: string, accessToken: string): Promise<StepLog> {
  const client = plainClient({ authorization: `Bearer ${accessToken}`, accept: 'application/json' });
  const log = new StepLog();
  const PAGELEN = 100;
  const seg = encodeURIComponent;
  const workspaces: { uuid: string; slug: string }[] = [];
  const repos: { uuid: string; slug: string; workspace: string }[] = [];
  const followAll = async (first: string, onItem: (item: Json) => void) => {
    for (let url: string | undefined = first; url;) {
      const page: BitbucketPage = await client.get<BitbucketPage>(url);
      (page.values ?? []).forEach(onItem);
      url = page.next ?? undefined;
    }
  };

  // The account step proves access; like the engine's, it stores no record.
  await log.run(client, 'account', async () => {
    await client.get(`${apiUrl}/user`);
  });
  await log.run(client, 'workspaces', (ids) =>
    followAll(`${apiUrl}/user/workspaces?${queryString({ pagelen: PAGELEN })}`, (a) => {
      if (!a.workspace?.uuid) return;
      ids.add(a.workspace.uuid);
      workspaces.push({ uuid: a.workspace.uuid, slug: a.workspace.slug });
    }),
  );
  await log.run(client, 'members', async (ids) => {
    for (const ws of workspaces) {
      await followAll(`${apiUrl}/workspaces/${seg(ws.slug)}/members?${queryString({ pagelen: PAGELEN })}`, (m) => {
        if (m.user?.uuid) ids.add(`${ws.uuid}/${m.user.uuid}`);
      });
    }
  });
  await log.run(client, 'repositories', async (ids) => {
    for (const ws of workspaces) {
      await baselineUpdatedSince(
        client,
        (q) => `${apiUrl}/repositories/${seg(ws.slug)}?${queryString({ pagelen: PAGELEN, sort: 'updated_on', q })}`,
        (r) => {
          if (!r.uuid || ids.has(r.uuid)) return;
          ids.add(r.uuid);
          repos.push({ uuid: r.uuid, slug: r.slug, workspace: ws.slug });
        },
      );
    }
  });
  const repoUrl = (r: (typeof repos)[number]) => `${apiUrl}/repositories/${seg(r.workspace)}/${seg(r.slug)}`;
  await log.run(client, 'pullRequests', async (ids) => {
    for (const repo of repos) {
      await baselineUpdatedSince(
        client,
        (q) =>
          `${repoUrl(repo)}/pullrequests?${queryString({ state: ['OPEN', 'MERGED', 'DECLINED', 'SUPERSEDED'], sort: 'updated_on', pagelen: 50, q })}`,
        (p) => ids.add(`${repo.uuid}/${p.id}`),
      );
    }
  });
  await log.run(client, 'commits', async (ids) => {
    for (const repo of repos)
      await followAll(`${repoUrl(repo)}/commits?${queryString({ pagelen: PAGELEN })}`, (c) => ids.add(`${repo.uuid}/${c.hash}`));
  });
  await log.run(client, 'pipelines', async (ids) => {
    // Numbered pages, newest first, as the syncer asks (it does not follow `next`).
    for (const repo of repos) {
      for (let page = 1; ; page += 1) {
        const body = await client.get<BitbucketPage>(
          `${repoUrl(repo)}/pipelines?${queryString({ sort: '-created_on', pagelen: PAGELEN, page })}`,
        );
        const values = (body.values ?? []).filter((p) => p.uuid);
        for (const p of values) ids.add(p.uuid);
        if (!body.next || values.length === 0) break;
      }
    }
  });
  return log;
}

interface BitrisePage {
  data: Json[];
  paging?: { next?: string | null };
}

export async function bitriseBaseline(apiUrl: string, token: string): Promise<StepLog> {
  const client = plainClient(bitriseAuthHeaders(token));
  const log = new StepLog();
  const LIMIT = 50;
  // Same encoding as the syncer's `q` helper (URLSearchParams, empty values dropped).
  const qs = (params: Record<string, string | number | undefined>) => {
    const s = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') s.set(k, String(v));
    return s.toString();
  };
  const apps: string[] = [];

  await log.run(client, 'account', async () => {
    await client.get(`${apiUrl}/me`);
  });
  await log.run(client, 'organizations', async (ids) => {
    for (const o of (await client.get<BitrisePage>(`${apiUrl}/organizations`)).data) ids.add(o.slug);
  });
  await log.run(client, 'apps', async (ids) => {
    let next: string | undefined;
    do {
      const page = await client.get<BitrisePage>(`${apiUrl}/apps?${qs({ limit: LIMIT, sort_by: 'created_at', next })}`);
      for (const a of page.data) {
        if (ids.has(a.slug)) continue;
        ids.add(a.slug);
        apps.push(a.slug);
      }
      next = page.paging?.next ?? undefined;
    } while (next);
  });
  await log.run(client, 'builds', async (ids) => {
    for (const app of apps) {
      let next: string | undefined;
      do {
        const page = await client.get<BitrisePage>(`${apiUrl}/apps/${encodeURIComponent(app)}/builds?${qs({ limit: LIMIT, next })}`);
        for (const b of page.data) ids.add(b.slug);
        next = page.paging?.next ?? undefined;
      } while (next);
    }
  });
  await log.run(client, 'pipelines', async (ids) => {
    for (const app of apps) {
      let before: string | undefined;
      do {
        const page = await client.get<BitrisePage>(`${apiUrl}/apps/${encodeURIComponent(app)}/pipelines?${qs({ limit: LIMIT, before })}`);
        // The list interleaves standalone builds; only pipelines are records of this resource.
        for (const p of page.data) if (p.is_pipeline) ids.add(p.slug);
        before = page.paging?.next ?? undefined;
      } while (before);
    }
  });
  return log;
}

// ---------------------------------------------------------------------------------------------
// The engine, driven the way the connection workflow drives it (minus Temporal itself)

export type SyncActivities = ReturnType<typeof createSyncActivities>;

interface RunRow {
  counts: Record<string, number>;
  requests: number;
  retries: number;
  rateLimitWaits: number;
  status: string;
}

/**
 * One sync run: beginRun, `account`, every resource in order, completeRun. Each activity runs in a
 * MockActivityEnvironment, so heartbeat/activityInfo/cancellationSignal behave as on a worker
 * without a Temporal server. Totals are read back from `sync_runs`, i.e. what the product reports.
 */
export async function engineRun(
  sql: Sql,
  activities: SyncActivities,
  provider: Provider,
  connectionId: string,
  backfill: boolean,
): Promise<PhaseResult & { run: RunRow }> {
  // Warnings off: a failing activity is reported once, by main(), not also by the SDK's logger.
  const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
  const runId = randomUUID();
  const resources: readonly string[] = syncResources(provider);
  const steps: Record<string, Figures> = {};
  const { seconds, peakRssBytes } = await measured(async () => {
    await env.run(activities.beginRun, connectionId, runId, backfill ? [...resources] : []);
    for (const step of ['account', ...resources]) {
      const { value, seconds: s } = await timedStep(() => stepAsTheWorkflowRunsIt(env, activities, connectionId, runId, step));
      steps[step] = { records: value.records, requests: value.requests, seconds: s };
    }
    await env.run(activities.completeRun, connectionId, runId);
  });
  const [run] = await sql<RunRow[]>`select counts, requests, retries, rate_limit_waits, status from sync_runs where id = ${runId}`;
  if (!run) throw new Error(`sync_runs has no row for run ${runId}`);
  const records = Object.values(run.counts).reduce((n, c) => n + c, 0);
  return { records, requests: run.requests, seconds, peakRssBytes, steps, run };
}

/**
 * A step as the workflow and Temporal run it: a failed attempt is retried (SYNC_STEP_OPTIONS' first
 * backoffs, shortened), `continue` runs a fresh attempt at once. Requests and records add up.
 */
async function stepAsTheWorkflowRunsIt(
  env: MockActivityEnvironment,
  activities: SyncActivities,
  connectionId: string,
  runId: string,
  step: string,
): Promise<SyncStepResult> {
  const total: SyncStepResult = { records: 0, requests: 0 };
  for (let attempt = 1; ;) {
    let value: SyncStepResult;
    try {
      value = await env.run<[string, string, string], SyncStepResult, SyncActivities['syncStep']>(
        activities.syncStep,
        connectionId,
        runId,
        step,
      );
    } catch (err) {
      if (++attempt > 12) throw err;
      await new Promise((r) => setTimeout(r, 200 * 2 ** Math.min(attempt, 5)));
      continue;
    }
    total.records += value.records;
    total.requests += value.requests;
    if (value.continue) continue;
    if (value.rateLimitedForMs !== undefined || value.providerUnavailableForMs !== undefined)
      throw new Error(`${step} asked for a durable wait (${JSON.stringify(value)}); the benchmark does not expect that`);
    return total;
  }
}

// ---------------------------------------------------------------------------------------------
// Verification: the stored rows against the simulator's own account of its data

export type Counts = Record<string, number>;

export async function storedCounts(sql: Sql, provider: Provider, connectionId: string): Promise<Counts> {
  const out: Counts = {};
  for (const [resource, spec] of Object.entries(
    adapterOf(createProviders(unusedSettings()), provider).tables as Record<string, TableSpec>,
  )) {
    // Records a complete listing no longer returned stay as history (deleted_at); the simulator counts current ones.
    const [row] = await sql<{ n: number }[]>`
      select count(*)::int as n from ${sql(spec.table)}
      where connection_id = ${connectionId} ${spec.tracksDeletion ? sql`and deleted_at is null` : sql``}`;
    out[resource] = row!.n;
  }
  return out;
}

export const mismatches = (expected: Counts, actual: Counts) =>
  Object.keys(expected)
    .filter((k) => expected[k] !== actual[k])
    .map((k) => `${k}: expected ${expected[k]}, stored ${actual[k] ?? 0}`);

// ---------------------------------------------------------------------------------------------
// One provider, end to end

interface ProviderReport {
  provider: Provider;
  seed: BitbucketSeed | BitriseSeed;
  expected: Counts;
  baseline: PhaseResult;
  first: PhaseResult & { ratioToBaseline: number; stored: Counts; mismatches: string[] };
  incremental: PhaseResult & { requestsRatioToFirst: number; secondsRatioToFirst: number; stored: Counts; mismatches: string[] };
  /** The baseline's distinct ids per resource differ from the dataset: a pagination problem the engine shares. */
  baselineMismatches: string[];
  /** With --fault-rate: a full resync fault-free and one with that share of requests answering 500. */
  faults?: {
    rate: number;
    faultFree: PhaseResult;
    faulted: PhaseResult & { retries: number; status: string; stored: Counts; mismatches: string[] };
    /** faulted seconds / fault-free seconds: the goal is ≤ 1.5 at a rate of 0.2. */
    ratio: number;
  };
}

/** Switches the simulator's 5xx injection on (every n-th API request) or off. */
interface FaultSwitch {
  on(everyNth: number): void;
  off(): void;
}

export interface Shared {
  sql: Sql;
  vault: ReturnType<typeof createVault>;
  tenantId: string;
  /** The activities wired as in src/worker.ts, once a simulator's URLs are known. */
  activitiesFor(settings: ProviderSettings): SyncActivities;
  defer(cleanup: () => Promise<void>): void;
}

/** Stands in for the provider a given pass does not talk to; nothing ever requests it. */
const UNUSED_URL = 'http://127.0.0.1:9/unused';

/** Every provider pointed nowhere, paced far above what the simulators push back on. */
export function unusedSettings(): ProviderSettings {
  return {
    bitbucket: {
      apiUrl: UNUSED_URL,
      oauthUrl: UNUSED_URL,
      platformOAuthClient: undefined,
      requestsPerHour: REQUESTS_PER_HOUR,
      refreshGraceMs: 0,
    },
    bitrise: { apiUrl: UNUSED_URL, requestsPerHour: REQUESTS_PER_HOUR },
  };
}

export async function newConnection(shared: Shared, provider: Provider): Promise<string> {
  const id = randomUUID();
  await insertConnection(shared.sql, {
    id,
    tenantId: shared.tenantId,
    provider,
    name: `bench ${provider}`,
    syncIntervalSeconds: 3600,
    returnUrl: null,
  });
  return id;
}

export function toPhase(log: StepLog, seconds: number, peakRssBytes: number): PhaseResult {
  return { ...log.totals(), seconds, peakRssBytes, steps: log.steps };
}

/**
 * The part both providers share once a credential is installed: baseline, first sync, incremental
 * sync, verification. The baseline runs twice and only the second is kept: the first pass warms
 * the JIT, undici's connection pool and the simulator's code paths, which would otherwise be
 * charged to whichever phase happened to run first.
 */
async function measureProvider(
  shared: Shared,
  activities: SyncActivities,
  provider: Provider,
  connectionId: string,
  seed: BitbucketSeed | BitriseSeed,
  expected: Counts,
  baseline: () => Promise<StepLog>,
  faultRate: number,
  faults: FaultSwitch,
): Promise<ProviderReport> {
  progress(`${provider}: warming up (untimed baseline pass)`);
  await baseline();
  progress(`${provider}: baseline`);
  const b = await measured(baseline);
  const base = toPhase(b.value, b.seconds, b.peakRssBytes);
  const baselineMismatches = mismatches(
    expected,
    Object.fromEntries(
      Object.entries(base.steps)
        .filter(([k]) => k !== 'account')
        .map(([k, v]) => [k, v.records]),
    ),
  );

  progress(`${provider}: engine first sync`);
  const first = await engineRun(shared.sql, activities, provider, connectionId, true);
  const storedFirst = await storedCounts(shared.sql, provider, connectionId);

  progress(`${provider}: engine incremental sync`);
  const incremental = await engineRun(shared.sql, activities, provider, connectionId, false);
  const storedIncremental = await storedCounts(shared.sql, provider, connectionId);

  for (const [name, run] of [
    ['first', first.run],
    ['incremental', incremental.run],
  ] as const) {
    if (run.status !== 'succeeded' || run.retries || run.rateLimitWaits) {
      progress(`${provider}: note: ${name} run ended ${run.status} with ${run.retries} retries and ${run.rateLimitWaits} rate-limit waits`);
    }
  }
  const strip = ({ run: _run, ...rest }: PhaseResult & { run: RunRow }): PhaseResult => rest;

  let faultReport: ProviderReport['faults'];
  if (faultRate > 0) {
    const everyNth = Math.max(1, Math.round(1 / faultRate));
    progress(`${provider}: full resync, fault-free`);
    const faultFree = await engineRun(shared.sql, activities, provider, connectionId, true);
    progress(`${provider}: full resync, every ${everyNth}th API request answering 500`);
    faults.on(everyNth);
    let faulted: Awaited<ReturnType<typeof engineRun>>;
    try {
      faulted = await engineRun(shared.sql, activities, provider, connectionId, true);
    } finally {
      faults.off();
    }
    const stored = await storedCounts(shared.sql, provider, connectionId);
    faultReport = {
      rate: 1 / everyNth,
      faultFree: strip(faultFree),
      faulted: {
        ...strip(faulted),
        retries: faulted.run.retries,
        status: faulted.run.status,
        stored,
        mismatches: mismatches(expected, stored),
      },
      ratio: faulted.seconds / faultFree.seconds,
    };
  }
  return {
    faults: faultReport,
    provider,
    seed,
    expected,
    baseline: base,
    first: {
      ...strip(first),
      ratioToBaseline: first.seconds / base.seconds,
      stored: storedFirst,
      mismatches: mismatches(expected, storedFirst),
    },
    incremental: {
      ...strip(incremental),
      requestsRatioToFirst: incremental.requests / first.requests,
      secondsRatioToFirst: incremental.seconds / first.seconds,
      stored: storedIncremental,
      mismatches: mismatches(expected, storedIncremental),
    },
    baselineMismatches,
  };
}

/** Every n-th API request answers 500 (the simulators' shared fault switch), until switched off. */
function faultSwitch(control: { injectFaults(f: { status: 500; count: number; everyNth: number }): void; reset(): void }): FaultSwitch {
  return {
    on: (everyNth) => control.injectFaults({ status: 500, count: 1_000_000_000, everyNth }),
    off: () => control.reset(),
  };
}

async function benchBitbucket(shared: Shared, scale: number, faultRate: number): Promise<ProviderReport> {
  const seed = bitbucketSeed(scale);
  const consumer = { clientId: 'bench-consumer', clientSecret: randomToken('bench_', 24), callbackUrl: 'http://127.0.0.1/bench/callback' };
  progress(`bitbucket: starting simulator (${describeSeed('bitbucket', seed)})`);
  const sim = await startBitbucketSimulator({ seed, consumers: [consumer] });
  shared.defer(() => sim.close());

  // The authorization-code dance, as a user's browser would do it: the simulator approves at once.
  const redirectUri = `${consumer.callbackUrl}?bench=1`;
  const authorize = new URL(`${sim.oauthUrl}/authorize`);
  for (const [k, v] of Object.entries({ client_id: consumer.clientId, response_type: 'code', redirect_uri: redirectUri, state: 'bench' }))
    authorize.searchParams.set(k, v);
  const res = await fetch(authorize, { redirect: 'manual' });
  const code = new URL(res.headers.get('location') ?? 'http://invalid/').searchParams.get('code');
  if (!code) throw new Error(`Bitbucket simulator did not hand out a code (HTTP ${res.status})`);
  const tokens = await createBitbucketOAuth({ oauthUrl: sim.oauthUrl }).exchangeCode(consumer, code, redirectUri);

  const connectionId = await newConnection(shared, 'bitbucket');
  const credentialId = await shared.vault.storePending(
    connectionId,
    'bitbucket_oauth',
    { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken },
    tokens.expiresAt,
  );
  await shared.vault.activate(connectionId, credentialId);

  const settings = unusedSettings();
  const activities = shared.activitiesFor({
    ...settings,
    bitbucket: { ...settings.bitbucket, apiUrl: sim.apiUrl, oauthUrl: sim.oauthUrl, platformOAuthClient: consumer },
  });
  return measureProvider(
    shared,
    activities,
    'bitbucket',
    connectionId,
    seed,
    completeSyncCounts(sim.control.dataset()),
    () => bitbucketBaseline(sim.apiUrl, tokens.accessToken),
    faultRate,
    faultSwitch(sim.control),
  );
}

async function benchBitrise(shared: Shared, scale: number, faultRate: number): Promise<ProviderReport> {
  const seed = bitriseSeed(scale);
  progress(`bitrise: starting simulator (${describeSeed('bitrise', seed)})`);
  const sim = await startBitriseSimulator({ seed });
  shared.defer(() => sim.close());
  const token = sim.control.createToken({ label: 'bench' });

  const connectionId = await newConnection(shared, 'bitrise');
  const credentialId = await shared.vault.storePending(connectionId, 'bitrise_token', { token });
  await shared.vault.activate(connectionId, credentialId);

  const settings = unusedSettings();
  const activities = shared.activitiesFor({ ...settings, bitrise: { ...settings.bitrise, apiUrl: sim.apiUrl } });
  return measureProvider(
    shared,
    activities,
    'bitrise',
    connectionId,
    seed,
    completeBitriseSyncCounts(sim.control.dataset()),
    () => bitriseBaseline(sim.apiUrl, token),
    faultRate,
    faultSwitch(sim.control),
  );
}

// ---------------------------------------------------------------------------------------------
// Output

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const secs = (n: number) => n.toFixed(2);
const mb = (bytes: number) => `${Math.round(bytes / 2 ** 20)} MB`;
const ratio = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}x` : 'n/a');
const perSec = (records: number, seconds: number) => (seconds > 0 ? records / seconds : 0);
const perRecord = (requests: number, records: number) => (records > 0 ? requests / records : 0);

function describeSeed(provider: Provider, seed: BitbucketSeed | BitriseSeed): string {
  if (provider === 'bitbucket') {
    const s = seed as BitbucketSeed;
    return `${s.workspaces} workspaces x ${s.reposPerWorkspace} repos, ${s.membersPerWorkspace} members/workspace, per repo ${s.pullRequestsPerRepo} PRs, ${s.commitsPerRepo} commits, ${s.pipelinesPerRepo} pipelines`;
  }
  const s = seed as BitriseSeed;
  return `${s.organizations} orgs x ${s.appsPerOrganization} apps, per app ${s.buildsPerApp} builds, ${s.pipelinesPerApp} pipelines`;
}

function table(header: string[], rows: string[][], rightAlignFrom = 1): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i >= rightAlignFrom ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function printReport(r: ProviderReport): void {
  const { baseline: b, first: f, incremental: i } = r;
  const out: string[] = [];
  out.push('', `== ${r.provider} (${describeSeed(r.provider, r.seed)})`, '');
  out.push(
    table(
      ['phase', 'records', 'requests', 'seconds', 'records/s', 'req/record', 'peak RSS', 'vs baseline'],
      [
        [
          'baseline (plain fetch)',
          int(b.records),
          int(b.requests),
          secs(b.seconds),
          int(perSec(b.records, b.seconds)),
          perRecord(b.requests, b.records).toFixed(4),
          mb(b.peakRssBytes),
          '1.00x',
        ],
        [
          'engine first sync',
          int(f.records),
          int(f.requests),
          secs(f.seconds),
          int(perSec(f.records, f.seconds)),
          perRecord(f.requests, f.records).toFixed(4),
          mb(f.peakRssBytes),
          ratio(f.ratioToBaseline),
        ],
        [
          'engine incremental',
          int(i.records),
          int(i.requests),
          secs(i.seconds),
          int(perSec(i.records, i.seconds)),
          perRecord(i.requests, i.records).toFixed(4),
          mb(i.peakRssBytes),
          ratio(i.seconds / b.seconds),
        ],
      ],
    ),
  );
  out.push(
    '',
    `incremental / first sync: requests ${ratio(i.requestsRatioToFirst)} (${int(i.requests)} of ${int(f.requests)}), time ${ratio(i.secondsRatioToFirst)}`,
    '',
  );
  const steps = Object.keys(f.steps);
  out.push(
    table(
      ['step', 'records', 'requests', 'baseline s', 'first s', 'first/base', 'incr. req', 'incr. s'],
      steps.map((s) => {
        const bs = b.steps[s];
        const fs = f.steps[s]!;
        const is = i.steps[s];
        return [
          s,
          int(fs.records),
          int(fs.requests),
          bs ? secs(bs.seconds) : '-',
          secs(fs.seconds),
          bs ? ratio(fs.seconds / bs.seconds) : '-',
          is ? int(is.requests) : '-',
          is ? secs(is.seconds) : '-',
        ];
      }),
    ),
  );
  const check = (label: string, stored: Counts, problems: string[]) =>
    problems.length
      ? `!!! MISMATCH after ${label}: ${problems.join('; ')}`
      : `stored rows after ${label} match the dataset: ${Object.entries(stored)
          .map(([k, v]) => `${k} ${int(v)}`)
          .join(', ')}`;
  out.push('', check('first sync', f.stored, f.mismatches), check('incremental sync', i.stored, i.mismatches));
  if (r.baselineMismatches.length)
    out.push(
      `note: the plain-fetch baseline, which sends the same requests, saw different counts too (${r.baselineMismatches.join('; ')}): records are lost in the paging, not in the engine's writes`,
    );
  if (b.requests !== f.requests)
    out.push(`note: the engine sent ${int(f.requests)} requests for the first sync, the baseline ${int(b.requests)}`);
  if (r.faults) {
    const { faultFree: ff, faulted: fd, rate, ratio: q } = r.faults;
    out.push(
      '',
      `faults: full resync fault-free ${secs(ff.seconds)} s (${int(ff.requests)} requests); with ${Math.round(rate * 100)} % of API requests ` +
        `answering 500 ${secs(fd.seconds)} s (${int(fd.requests)} requests, ${int(fd.retries)} retried in place, run ${fd.status}): ` +
        `${ratio(q)} the fault-free time`,
      fd.mismatches.length
        ? `!!! MISMATCH after the faulted resync: ${fd.mismatches.join('; ')}`
        : 'stored rows after the faulted resync match the dataset',
    );
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

// ---------------------------------------------------------------------------------------------
// Processes: the parent owns Postgres and the report, one child per provider does the measuring

const CHILD_RESULT = 'BENCH_CHILD ';

/**
 * A child measures one provider. Each provider gets a fresh process so its peak RSS, heap and JIT
 * state owe nothing to the provider measured before it (RSS never shrinks back within a process).
 * The Postgres server is shared; the child gets its own keyring, tenant and connection.
 */
async function childMain(provider: Provider, scale: number, faultRate: number): Promise<void> {
  const databaseUrl = process.env.BENCH_DATABASE_URL;
  if (!databaseUrl) throw new Error('BENCH_DATABASE_URL is not set (the child is started by the parent process)');
  const cleanup = createCleanup();
  try {
    const sql = createSql(databaseUrl, { applicationName: `conduit-bench-${provider}` });
    cleanup.defer(() => sql.end({ timeout: 5 }));
    const vault = createVault(sql, new Keyring([randomBytes(32)]));
    const shared: Shared = {
      sql,
      vault,
      tenantId: (await createTenant(sql, `bench ${provider}`)).tenant.id,
      // Wired as in src/worker.ts. The platform consumer only matters if a token needs refreshing.
      activitiesFor: (settings) => {
        const providers = createProviders(settings);
        return createSyncActivities({
          sql,
          broker: createAccessBroker({ vault, providers }),
          providers,
          settings: SETTINGS,
        });
      },
      defer: cleanup.defer,
    };
    const report = provider === 'bitbucket' ? await benchBitbucket(shared, scale, faultRate) : await benchBitrise(shared, scale, faultRate);
    process.stdout.write(`${CHILD_RESULT}${JSON.stringify(report)}\n`);
  } finally {
    await cleanup.run();
  }
}

/** Runs this same script (under the same tsx loader) for one provider and reads its result line. */
function runChild(
  provider: Provider,
  scale: number,
  faultRate: number,
  databaseUrl: string,
  started: (child: ChildProcess) => void,
): Promise<ProviderReport> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [...process.execArgv, __filename, `--scale=${scale}`, `--fault-rate=${faultRate}`, `--provider=${provider}`],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: { ...process.env, BENCH_DATABASE_URL: databaseUrl },
      },
    );
    started(child);
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => void (stdout += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const line = stdout.split('\n').find((l) => l.startsWith(CHILD_RESULT));
      if (code === 0 && line) return resolve(JSON.parse(line.slice(CHILD_RESULT.length)) as ProviderReport);
      reject(new Error(`The ${provider} benchmark process ended with ${signal ?? `exit code ${code}`}${line ? '' : ' and no result'}`));
    });
  });
}

async function parentMain(scale: number, faultRate: number): Promise<number> {
  const startedAt = new Date();
  const t0 = performance.now();
  const cleanup = createCleanup();
  try {
    // As root, Postgres runs as the `postgres` user, which must be able to walk into the data dir.
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'conduit-bench-'));
    cleanup.defer(() => fs.rm(tmp, { recursive: true, force: true }));
    await fs.chmod(tmp, 0o755);

    progress(`scale ${scale}; starting embedded Postgres in ${tmp}`);
    const pg = await startEmbeddedPostgres({ dataDir: path.join(tmp, 'pg'), fast: true });
    cleanup.defer(() => pg.stop());
    await runMigrations(pg.url);

    const reports: ProviderReport[] = [];
    for (const provider of PROVIDERS) {
      const running: { child?: ChildProcess } = {};
      // On an error or SIGTERM here the child would keep going: stop it (by its own pid) and let it
      // close its simulator before Postgres goes away under it.
      cleanup.defer(async () => {
        const { child } = running;
        if (!child || child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 15_000).unref())]);
      });
      const report = await runChild(provider, scale, faultRate, pg.url, (child) => (running.child = child));
      printReport(report);
      reports.push(report);
    }

    const totalSeconds = (performance.now() - t0) / 1000;
    const ok = reports.every(
      (r) => r.first.mismatches.length === 0 && r.incremental.mismatches.length === 0 && !r.faults?.faulted.mismatches.length,
    );
    process.stdout.write(
      `\ntotal wall time ${secs(totalSeconds)} s (Postgres start, simulators and warm-up passes included); ` +
        `${ok ? 'all stored counts match the simulators' : '!!! MISMATCH: stored counts differ from the simulator datasets'}\n`,
    );
    const json = {
      scale,
      faultRate,
      startedAt: startedAt.toISOString(),
      totalSeconds,
      node: process.version,
      cpus: os.cpus().length,
      settings: SETTINGS,
      ok,
      providers: Object.fromEntries(reports.map((r) => [r.provider, r])),
    };
    process.stdout.write(`BENCH_JSON ${JSON.stringify(json)}\n`);
    return ok ? 0 : 1;
  } finally {
    await cleanup.run();
  }
}

async function main(): Promise<number> {
  const { scale, faultRate, provider, help } = parseOptions(process.argv.slice(2));
  if (help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (provider === undefined) return parentMain(scale, faultRate);
  await childMain(provider, scale, faultRate);
  return 0;
}

// Imported by bench/ingest.ts for its helpers: run only when started as a script.
if (require.main === module)
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      if (err instanceof UsageError) process.stderr.write(`${err.message}\n${USAGE}\n`);
      else process.stderr.write(`[bench] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    },
  );
