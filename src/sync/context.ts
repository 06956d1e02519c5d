import { heartbeat, sleep as activitySleep, cancellationSignal } from '@temporalio/activity';
import type { z } from 'zod';
import { createTokenCache, type AccessBroker } from '../credentials/access';
import type { Sql } from '../db/sql';
import type { ProviderAdapter } from '../providers/adapter';
import type { Provider } from '../providers/manifests';
import { ProviderError } from '../providers/errors';
import { parseRetryAfter, providerFetch, redactUrl } from '../providers/http';
import { countProviderRequest, countRecords, countSyncWait } from '../metrics';
import type { RequestBudget } from './rate-bucket';
import { acceptRecords } from './records';
import {
  commitPage,
  markAccess,
  readCursor,
  type CursorWrite,
  type PageExtra,
  type RecordRow,
  type RejectRow,
  type TableSpec,
} from './store';

/**
 * What a resource syncer gets to work with: authenticated, paced GETs, the page-plus-cursor
 * commit, its provider's store, and bookkeeping. Syncers stay small and provider-specific;
 * everything about retries, pacing, stalls, counting and access marks lives here once. Syncers
 * never see the database pool: they write through `commit` and read through `store`.
 */
export interface SyncContext<Store = unknown> {
  connectionId: string;
  runId: string;
  /** The provider's API base URL (e.g. https://api.bitrise.io/v0.1). */
  apiUrl: string;
  store: Store;
  /** An authenticated, paced GET whose JSON body is checked against `schema`. */
  get<S extends z.ZodType>(url: string, schema: S): Promise<z.output<S>>;
  /**
   * A URL the provider sent us (a `next` link), checked before it is stored or followed: the
   * request carries the connection's token, which must go to the provider's own API only.
   */
  follow(url: string): string;
  /**
   * The records of a page that satisfy `schema`. The others are quarantined: kept with the reason
   * (after `redact`, the provider's removal of secret values) in `sync_rejects` by the next commit,
   * counted in the run, and left out of the page. A `null` list is an empty page, quarantined itself.
   */
  accept<S extends z.ZodType>(
    resource: string,
    items: readonly unknown[] | null | undefined,
    schema: S,
    redact?: (raw: unknown) => unknown,
  ): z.output<S>[];
  commit(spec: TableSpec, rows: RecordRow[], cursor?: CursorWrite, extra?: PageExtra): Promise<number>;
  cursor<T>(resource: string, scope?: string): Promise<T | undefined>;
  /** Records that a parent (a repository, an app) can or cannot be read now; counts as progress. */
  markAccess(spec: TableSpec, id: string, accessible: boolean): Promise<void>;
  stats: SyncStats;
}

export interface SyncStats {
  requests: number;
  records: number;
  rejected: number;
  /** Requests sent again in place after a transient fault (5xx, timeout, reset, a body that is not JSON). */
  retries: number;
  /** Short rate-limit waits honoured in place. */
  rateLimitWaits: number;
  /** Pages (and access marks) committed: progress, whatever the page held. */
  commits: number;
}

/**
 * How a GET retries in place. Idempotent reads are retried right here, so one failed request
 * costs a short wait instead of the whole step attempt (and its backoff).
 */
export interface RequestRetryPolicy {
  /** Attempts per request, the first included. */
  maxAttempts: number;
  /** No retry starts once this long has passed since the first attempt. */
  maxTotalMs: number;
  /** First backoff; doubles per attempt, with full jitter, up to `maxDelayMs`. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_REQUEST_RETRY: RequestRetryPolicy = { maxAttempts: 12, maxTotalMs: 120_000, baseDelayMs: 50, maxDelayMs: 15_000 };

/** Pure: the jittered (full jitter) exponential backoff before retry `n` (1-based). */
export function requestRetryDelayMs(n: number, policy: RequestRetryPolicy, random = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, n - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** Pure: whether a failed GET may be sent again in place. */
export function isRetryableInPlace(err: unknown): boolean {
  return err instanceof ProviderError && err.kind === 'transient';
}

export class StalledError extends Error {
  constructor(seconds: number) {
    super(`No page was committed for ${seconds} s; the run is stalled.`);
    this.name = 'StalledError';
  }
}

/**
 * The connection's share of its party's budget has no token for it within the longest wait in
 * place: the step hands the wait to the workflow's durable sleep (no token is held meanwhile).
 */
export class BudgetWaitError extends Error {
  constructor(readonly waitMs: number) {
    super(`The shared request budget has no token for this connection for ${Math.ceil(waitMs / 1000)} s.`);
    this.name = 'BudgetWaitError';
  }
}

export interface ContextOptions<Store> {
  sql: Sql;
  broker: AccessBroker;
  adapter: ProviderAdapter<Provider, Store>;
  connectionId: string;
  runId: string;
  /** The shared budget these requests spend (see ./rate-bucket.ts). */
  budget: RequestBudget;
  stallTimeoutSeconds: number;
  /** The step this context serves (a resource name), for messages. */
  resource?: string;
  /** In-place retries of transient faults (default DEFAULT_REQUEST_RETRY). */
  retry?: RequestRetryPolicy;
  /**
   * A 429 asking for at most this long is waited out in place (it costs no attempt); a longer one is
   * thrown with the wait in `retryAfterMs`, for the workflow's durable sleep. The same goes for a
   * wait for the shared budget (`BudgetWaitError`).
   */
  maxInlineRateLimitWaitMs?: number;
  /** First backoff after a 429 without a wait header; doubles per consecutive 429. */
  rateLimitBackoffMs?: number;
  /** At most one `sync.progress` notice per this many ms (coalesced: the notice carries the running total). */
  progressIntervalMs?: number;
}

const DEFAULT_PROGRESS_INTERVAL_MS = 1000;

export function createSyncContext<Store>(
  o: ContextOptions<Store>,
): SyncContext<Store> & { callProvider<T>(call: () => Promise<T>): Promise<T>; dispose(): void } {
  const { adapter } = o;
  const provider = adapter.manifest.id;
  const resource = o.resource ?? 'unknown';
  const apiOrigin = new URL(adapter.apiUrl).origin;
  const syncing = o.resource ? ` while syncing ${o.resource}` : '';
  /**
   * A URL we did not build (a `next` link, a stored cursor) is checked here before it is stored and
   * again before it is requested: the request carries the connection's token. A foreign origin is
   * a protocol error: final, never retried, and it names the resource.
   */
  const sameOrigin = (url: string): string => {
    let origin: string;
    try {
      origin = new URL(url).origin;
    } catch {
      throw new ProviderError('protocol', `${adapter.manifest.displayName} sent a link that is not a URL${syncing}; not following it`);
    }
    if (origin !== apiOrigin) {
      throw new ProviderError(
        'protocol',
        `${adapter.manifest.displayName} sent a link to another origin (${origin})${syncing}; not following it`,
      );
    }
    return url;
  };
  /** A redirect is final too: say which resource met it. */
  const nameResource = (err: unknown): never => {
    throw err instanceof ProviderError && err.kind === 'protocol'
      ? new ProviderError('protocol', `${err.message}${syncing}`, err.status)
      : err;
  };
  // Set when the provider says its budget is spent: nothing is sent before then.
  let holdUntil = 0;
  // When the last sync.progress notice went out (the first page always sends one).
  let lastProgressNotice = 0;
  // Set by each grant: this connection's share has no token for it before then, so it does not ask.
  let nextAskAt = 0;
  let lastProgress = Date.now();
  // Waiting for the budget (ours or the provider's) is not lack of progress: the watchdog skips it.
  let pacing = false;
  // The page the next `accept` is about (names a page whose list is null).
  let lastUrl = '';
  const stats: SyncStats = { requests: 0, records: 0, rejected: 0, retries: 0, rateLimitWaits: 0, commits: 0 };
  const retryPolicy = o.retry ?? DEFAULT_REQUEST_RETRY;
  const maxInlineRateLimitWaitMs = o.maxInlineRateLimitWaitMs ?? 60_000;
  const rateLimitBackoffMs = o.rateLimitBackoffMs ?? 10_000;
  // Consecutive 429s without a header back off exponentially; any answer that is not a 429 resets it.
  let consecutiveRateLimits = 0;
  // Rejects wait for the next commit, so they land in the same transaction as their page.
  let pendingRejects: RejectRow[] = [];
  const takeRejects = () => {
    const taken = pendingRejects;
    pendingRejects = [];
    return taken;
  };
  const stall = new AbortController();
  // Combined once: a signal per request would pile listeners onto the activity's cancellation signal.
  const abort = AbortSignal.any([stall.signal, cancellationSignal()]);
  const watchdog = setInterval(
    () => {
      heartbeat({ records: stats.records, requests: stats.requests });
      if (!pacing && Date.now() - lastProgress > o.stallTimeoutSeconds * 1000) stall.abort(new StalledError(o.stallTimeoutSeconds));
    },
    Math.min(5_000, o.stallTimeoutSeconds * 250),
  );

  // The step's token, read from the vault once (see AccessBroker.withAccess).
  const tokenCache = createTokenCache();

  /**
   * Waits for any hold the provider asked for, then for this request's token of the shared budget:
   * in place up to `maxInlineRateLimitWaitMs`, holding no token while it waits to ask; a longer
   * wait ends the step for the workflow's durable sleep. The time spent here does not count towards
   * the stall timeout.
   */
  async function pace(): Promise<void> {
    const began = Date.now();
    pacing = true;
    try {
      const hold = holdUntil - Date.now();
      if (hold > maxInlineRateLimitWaitMs) {
        throw new ProviderError('rate_limited', `${adapter.manifest.displayName} says its rate limit is spent${syncing}`, undefined, hold);
      }
      if (hold > 0) {
        countSyncWait(provider, 'rate_limited', 'inline', hold);
        await activitySleep(hold);
      }
      for (;;) {
        const early = nextAskAt - Date.now();
        if (early > maxInlineRateLimitWaitMs) throw new BudgetWaitError(early);
        if (early > 0) {
          countSyncWait(provider, 'budget', 'inline', early);
          await activitySleep(early);
        }
        const answer = await o.budget.take();
        nextAskAt = Date.now() + answer.againMs;
        if (answer.granted) {
          if (answer.waitMs > 0) {
            countSyncWait(provider, 'budget', 'inline', answer.waitMs);
            await waitHoldingToken(answer.waitMs);
          }
          return;
        }
      }
    } finally {
      pacing = false;
      lastProgress += Date.now() - began;
    }
  }

  /** A granted token's wait; a cancelled wait (pause, disconnect, shutdown) gives the token back. */
  async function waitHoldingToken(ms: number): Promise<void> {
    try {
      await activitySleep(ms);
    } catch (err) {
      await o.budget.giveBack().catch(() => undefined);
      throw err;
    }
  }

  const progressed = () => {
    lastProgress = Date.now();
    stats.commits += 1;
    heartbeat({ records: stats.records, requests: stats.requests });
  };

  /** Sleeps cancellably (pause, disconnect, the stall watchdog), heartbeating so the wait is seen alive. */
  async function waitInPlace(ms: number): Promise<void> {
    heartbeat({ records: stats.records, requests: stats.requests });
    stall.signal.throwIfAborted();
    let onStall = () => {};
    const stalled = new Promise<never>((_, reject) => {
      onStall = () => reject(stall.signal.reason as Error);
      stall.signal.addEventListener('abort', onStall, { once: true });
    });
    try {
      await Promise.race([activitySleep(ms), stalled]);
    } finally {
      stall.signal.removeEventListener('abort', onStall);
    }
  }

  /** A GET retried in place: transient faults with jittered backoff (capped), short 429s waited out. */
  function getWithRetries(url: string): Promise<unknown> {
    return retried(() => getOnce(url));
  }

  /** An idempotent provider call retried in place: transient faults with jittered backoff (capped), short 429s waited out. */
  async function retried<T>(call: () => Promise<T>): Promise<T> {
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      try {
        const body = await call();
        consecutiveRateLimits = 0;
        return body;
      } catch (err) {
        abort.throwIfAborted();
        if (err instanceof ProviderError && err.kind === 'rate_limited') {
          consecutiveRateLimits += 1;
          const wait = err.retryAfterMs ?? Math.min(10 * 60_000, rateLimitBackoffMs * 2 ** (consecutiveRateLimits - 1));
          if (wait > maxInlineRateLimitWaitMs) throw new ProviderError('rate_limited', err.message, err.status, wait);
          // A short, honoured wait: not a failure, so it spends no attempt of the request or the step.
          stats.rateLimitWaits += 1;
          countSyncWait(provider, 'rate_limited', 'inline', wait);
          attempt -= 1;
          await waitInPlace(wait);
          continue;
        }
        consecutiveRateLimits = 0;
        if (!isRetryableInPlace(err) || attempt >= retryPolicy.maxAttempts) throw err;
        const delay = requestRetryDelayMs(attempt, retryPolicy);
        if (Date.now() - started + delay > retryPolicy.maxTotalMs) throw err;
        stats.retries += 1;
        await waitInPlace(delay);
      }
    }
  }

  /** One paced, authenticated GET and its JSON body. */
  async function getOnce(url: string): Promise<unknown> {
    abort.throwIfAborted();
    await pace();
    const res = await o.broker.withAccess(
      o.connectionId,
      adapter.manifest.id,
      (token) =>
        providerFetch({
          url,
          headers: adapter.authHeaders(token),
          meter: { onRequest: () => void stats.requests++, onAnswer: (status) => countProviderRequest(provider, status) },
          signal: abort,
        }).catch(nameResource),
      tokenCache,
    );
    // A provider that says its budget is spent is believed before it answers 429.
    const wait = res.headers.get('x-ratelimit-remaining') === '0' ? parseRetryAfter(res.headers) : undefined;
    if (wait) holdUntil = Math.max(holdUntil, Date.now() + wait);
    try {
      return await res.json();
    } catch {
      abort.throwIfAborted();
      // A body cut short (a reset mid-transfer) or an HTML error page: the same GET may well work again.
      throw new ProviderError('transient', `GET ${redactUrl(url)} answered with a body that is not JSON`);
    }
  }

  return {
    connectionId: o.connectionId,
    runId: o.runId,
    apiUrl: adapter.apiUrl,
    store: adapter.createStore(o.sql, o.connectionId),
    stats,
    async get(url, schema) {
      abort.throwIfAborted();
      sameOrigin(url);
      lastUrl = url;
      const body = await getWithRetries(url);
      const parsed = schema.safeParse(body);
      if (!parsed.success) {
        // Not retried in place: the same bytes would come back; the step's retry policy decides.
        throw new ProviderError(
          'transient',
          `GET ${redactUrl(url)} answered with an unexpected body: ${parsed.error.issues[0]?.message ?? 'invalid'}`,
        );
      }
      return parsed.data;
    },
    follow: sameOrigin,
    accept(resource, items, schema, redact) {
      const { accepted, rejects } = acceptRecords(resource, items, schema, { redact, page: lastUrl, pageShown: redactUrl(lastUrl) });
      pendingRejects.push(...rejects);
      stats.rejected += rejects.length;
      return accepted;
    },
    async commit(spec, rows, cursor, extra) {
      const rejects = takeRejects();
      const now = Date.now();
      const progress =
        o.resource && rows.length > 0 && now - lastProgressNotice >= (o.progressIntervalMs ?? DEFAULT_PROGRESS_INTERVAL_MS)
          ? { resource: o.resource, recordsThisAttempt: stats.records + rows.length }
          : undefined;
      let n: number;
      try {
        n = await commitPage(o.sql, { connectionId: o.connectionId, runId: o.runId, spec, rows, cursor, extra, rejects, progress });
        if (progress) lastProgressNotice = now;
      } catch (err) {
        // Not committed: they go with the next page (or the retry's).
        pendingRejects = [...rejects, ...pendingRejects];
        throw err;
      }
      stats.records += rows.length;
      countRecords(provider, resource, rows.length, rejects.length);
      progressed();
      return n;
    },
    async cursor<T>(resource: string, scope = '') {
      return readCursor<T>(o.sql, o.connectionId, resource, scope);
    },
    async markAccess(spec, id, accessible) {
      const rejects = takeRejects();
      await commitPage(o.sql, {
        connectionId: o.connectionId,
        runId: o.runId,
        spec,
        rows: [],
        extra: (tx) => markAccess(tx, spec, o.connectionId, id, accessible),
        rejects,
      });
      countRecords(provider, resource, 0, rejects.length);
      progressed();
    },
    /** A provider call that is not a GET of a page (the account check): paced and retried in place like one. */
    callProvider<T>(call: () => Promise<T>): Promise<T> {
      return retried(async () => {
        abort.throwIfAborted();
        await pace();
        return call();
      });
    },
    dispose() {
      clearInterval(watchdog);
    },
  };
}
