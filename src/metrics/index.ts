import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { CONNECTION_STATUSES } from '../domain/connection';
import { PROVIDERS, type Provider } from '../providers/manifests';

/**
 * Conduit's own Prometheus metrics, defined once for every process: the API exposes the HTTP and
 * connection figures at `GET /metrics` (./http.ts), the worker the sync figures on
 * `WORKER_METRICS_PORT` (./worker-endpoint.ts), beside the Temporal SDK's. Call sites use the
 * one-line recorders below. Labels are bounded sets only (provider, resource, status, outcome,
 * route pattern): never a tenant, connection or run id, which belong in logs.
 */

export const registry = new Registry();
// Process figures (CPU, memory, event-loop lag, GC), unprefixed as Prometheus' Node conventions have them.
collectDefaultMetrics({ register: registry });

const registers = [registry];

// --- API -------------------------------------------------------------------------------------

export const httpRequests = new Counter({
  name: 'conduit_http_requests_total',
  help: 'API requests answered, by method, route pattern (never the raw URL) and status code',
  labelNames: ['method', 'route', 'status'] as const,
  registers,
});

export const httpRequestDuration = new Histogram({
  name: 'conduit_http_request_duration_seconds',
  help: 'API response time, by method, route pattern and status code',
  labelNames: ['method', 'route', 'status'] as const,
  // Up to the 75 s an attachCredential may wait for its verification.
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 75],
  registers,
});

type ConnectionCount = { provider: string; status: string; count: number };
let connectionCounts: (() => Promise<ConnectionCount[]>) | undefined;
let cached: { at: number; rows: ConnectionCount[] } | undefined;
const CONNECTION_COUNT_TTL_MS = 15_000;

export const connections = new Gauge({
  name: 'conduit_connections',
  help: 'Connections by provider and status (read from Postgres at scrape time, cached for 15 s)',
  labelNames: ['provider', 'status'] as const,
  registers,
  async collect() {
    if (!connectionCounts) return;
    if (!cached || Date.now() - cached.at > CONNECTION_COUNT_TTL_MS) cached = { at: Date.now(), rows: await connectionCounts() };
    // Every combination, so a status that emptied reads 0 rather than its last count.
    for (const provider of PROVIDERS) for (const status of CONNECTION_STATUSES) this.set({ provider, status }, 0);
    for (const row of cached.rows) this.set({ provider: row.provider, status: row.status }, row.count);
  },
});

/** Serves `conduit_connections` from this reader (the API's; the worker leaves it unset). */
export function observeConnections(read: () => Promise<ConnectionCount[]>): void {
  connectionCounts = read;
  cached = undefined;
}

// --- Sync (worker) ---------------------------------------------------------------------------

export type SyncResult = 'succeeded' | 'failed' | 'stalled';

export const syncRuns = new Counter({
  name: 'conduit_sync_runs_total',
  help: 'Sync runs finished, by provider and result',
  labelNames: ['provider', 'result'] as const,
  registers,
});

export const recordsWritten = new Counter({
  name: 'conduit_records_written_total',
  help: 'Records committed to Postgres, by provider and resource',
  labelNames: ['provider', 'resource'] as const,
  registers,
});

export const recordsRejected = new Counter({
  name: 'conduit_records_rejected_total',
  help: 'Records quarantined in sync_rejects, by provider and resource',
  labelNames: ['provider', 'resource'] as const,
  registers,
});

export const providerRequests = new Counter({
  name: 'conduit_provider_requests_total',
  help: 'Requests sent to a provider by the sync, by provider and answer status ("error": no answer: timeout, refused, reset); 429s are status="429"',
  labelNames: ['provider', 'status'] as const,
  registers,
});

export type WaitReason = 'rate_limited' | 'provider_unavailable' | 'budget';
export type WaitKind = 'inline' | 'durable';

export const syncWaits = new Counter({
  name: 'conduit_sync_waits_total',
  help: 'Waits in a sync: rate_limited (the provider said so), provider_unavailable (it kept failing), budget (our own request budget); inline (in the activity) or durable (a workflow timer)',
  labelNames: ['provider', 'reason', 'kind'] as const,
  registers,
});

export const syncWaitSeconds = new Counter({
  name: 'conduit_sync_wait_seconds_total',
  help: 'Seconds of those waits, by provider, reason and kind',
  labelNames: ['provider', 'reason', 'kind'] as const,
  registers,
});

export type RefreshOutcome = 'refreshed' | 'reused' | 'refused' | 'in_doubt' | 'failed';

export const tokenRefreshes = new Counter({
  name: 'conduit_token_refreshes_total',
  help: 'OAuth token refreshes by provider and outcome: refreshed, reused (another refresher already had), refused (access lost), in_doubt (a refusal retried while an earlier refresh is in doubt), failed (transient, retried)',
  labelNames: ['provider', 'outcome'] as const,
  registers,
});

export type WebhookOutcome = 'delivered' | 'retried' | 'gone' | 'given_up' | 'cancelled';

export const webhookDeliveries = new Counter({
  name: 'conduit_webhook_deliveries_total',
  help: 'Webhook delivery outcomes: delivered (2xx), retried (an attempt failed; tried again), gone (410: endpoint disabled), given_up (retry window over), cancelled (endpoint disabled or removed)',
  labelNames: ['outcome'] as const,
  registers,
});

export type ReconcilerAction = 'provisioned' | 'recreated' | 'ended' | 'failed';

export const reconcilerRepairs = new Counter({
  name: 'conduit_reconciler_repairs_total',
  help: 'What the reconciler repaired: provisioned (a workflow started for a new row), recreated (a lost workflow), ended (a workflow with no row), failed (retried next run)',
  labelNames: ['action'] as const,
  registers,
});

// --- Recorders: one line at each call site ----------------------------------------------------

export function countSyncRun(provider: Provider | null, result: SyncResult): void {
  // null: the run was already finished (a retried activity); counted once.
  if (provider) syncRuns.inc({ provider, result });
}

export function countRecords(provider: Provider, resource: string, written: number, rejected: number): void {
  if (written) recordsWritten.inc({ provider, resource }, written);
  if (rejected) recordsRejected.inc({ provider, resource }, rejected);
}

/** `status` undefined: the request got no answer. */
export function countProviderRequest(provider: Provider, status: number | undefined): void {
  providerRequests.inc({ provider, status: status === undefined ? 'error' : String(status) });
}

export function countSyncWait(provider: Provider, reason: WaitReason, kind: WaitKind, ms: number): void {
  syncWaits.inc({ provider, reason, kind });
  syncWaitSeconds.inc({ provider, reason, kind }, Math.max(0, ms) / 1000);
}

export function countTokenRefresh(provider: Provider, outcome: RefreshOutcome): void {
  tokenRefreshes.inc({ provider, outcome });
}

/** For the webhook sender: one call per delivery attempt. */
export function recordWebhookDelivery(outcome: WebhookOutcome): void {
  webhookDeliveries.inc({ outcome });
}

export function countReconcilerRepairs(report: Record<ReconcilerAction, number>): void {
  for (const action of ['provisioned', 'recreated', 'ended', 'failed'] as const)
    if (report[action]) reconcilerRepairs.inc({ action }, report[action]);
}
