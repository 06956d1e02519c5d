import { heartbeat, sleep as activitySleep, cancellationSignal } from '@temporalio/activity';
import type { AccessBroker } from '../credentials/access';
import type { Sql } from '../db/sql';
import type { Provider } from '../domain/connection';
import { bitriseAuthHeader } from '../providers/bitrise';
import { ProviderError } from '../providers/errors';
import { parseRetryAfter, providerFetch } from '../providers/http';
import { takeRequestToken } from './rate-bucket';
import { commitPage, readCursor, type CursorWrite, type RecordRow, type TableSpec } from './store';

/**
 * What a resource syncer gets to work with: authenticated, paced GETs, the page-plus-cursor
 * commit, and bookkeeping. Syncers stay small and provider-specific; everything about retries,
 * pacing, stalls and counting lives here once.
 */
export interface SyncContext {
  connectionId: string;
  runId: string;
  provider: Provider;
  /** The provider's API base URL (e.g. https://api.bitrise.io/v0.1). */
  apiUrl: string;
  sql: Sql;
  get<T>(url: string): Promise<T>;
  commit(spec: TableSpec, rows: RecordRow[], cursor?: CursorWrite, extra?: Parameters<typeof commitPage>[1]['extra']): Promise<number>;
  cursor<T>(resource: string, scope?: string): Promise<T | undefined>;
  stats: { requests: number; records: number };
}

export class StalledError extends Error {
  constructor(seconds: number) {
    super(`No page was committed for ${seconds} s; the run is stalled.`);
    this.name = 'StalledError';
  }
}

export interface ContextOptions {
  sql: Sql;
  broker: AccessBroker;
  connectionId: string;
  runId: string;
  provider: Provider;
  apiUrl: string;
  /** Requests per hour to pace at; the provider's own headers can only slow us further. */
  requestsPerHour: number;
  /** The shared budget these requests spend (see rateBucketKey). */
  rateBucket: string;
  stallTimeoutSeconds: number;
}

export function createSyncContext(o: ContextOptions): SyncContext & { dispose(): void } {
  // Set when the provider says its budget is spent: nothing is sent before then.
  let holdUntil = 0;
  let lastProgress = Date.now();
  const stats = { requests: 0, records: 0 };
  const stall = new AbortController();
  // Combined once: a signal per request would pile listeners onto the activity's cancellation signal.
  const abort = AbortSignal.any([stall.signal, cancellationSignal()]);
  const watchdog = setInterval(() => {
    heartbeat({ records: stats.records, requests: stats.requests });
    if (Date.now() - lastProgress > o.stallTimeoutSeconds * 1000) stall.abort(new StalledError(o.stallTimeoutSeconds));
  }, Math.min(5_000, o.stallTimeoutSeconds * 250));

  /** Waits for this request's turn in the shared bucket and for any hold the provider asked for. */
  async function pace(): Promise<void> {
    const wait = Math.max(await takeRequestToken(o.sql, o.rateBucket, o.requestsPerHour), holdUntil - Date.now());
    if (wait > 0) await activitySleep(wait);
  }

  function authHeaders(token: string): Record<string, string> {
    return o.provider === 'bitrise' ? bitriseAuthHeader(token) : { authorization: `Bearer ${token}`, accept: 'application/json' };
  }

  return {
    connectionId: o.connectionId,
    runId: o.runId,
    provider: o.provider,
    apiUrl: o.apiUrl,
    sql: o.sql,
    stats,
    async get<T>(url: string): Promise<T> {
      abort.throwIfAborted();
      await pace();
      const res = await o.broker.withAccess(o.connectionId, o.provider, (token) =>
        providerFetch({
          url,
          headers: authHeaders(token),
          meter: { onRequest: () => void stats.requests++ },
          signal: abort,
        }),
      );
      // A provider that says its budget is spent is believed before it answers 429.
      const wait = res.headers.get('x-ratelimit-remaining') === '0' ? parseRetryAfter(res.headers) : undefined;
      if (wait) holdUntil = Math.max(holdUntil, Date.now() + wait);
      try {
        return (await res.json()) as T;
      } catch {
        throw new ProviderError('transient', `GET ${new URL(url).pathname} answered with a body that is not JSON`);
      }
    },
    async commit(spec, rows, cursor, extra) {
      const n = await commitPage(o.sql, { connectionId: o.connectionId, runId: o.runId, spec, rows, cursor, extra });
      stats.records += rows.length;
      lastProgress = Date.now();
      heartbeat({ records: stats.records, requests: stats.requests });
      return n;
    },
    async cursor<T>(resource: string, scope = '') {
      return readCursor<T>(o.sql, o.connectionId, resource, scope);
    },
    dispose() {
      clearInterval(watchdog);
    },
  };
}
