import type { Client } from '@temporalio/client';
import type { ConnectionRow } from '../domain/connection';
import type { connectionWorkflow } from '../workflows/connection';
import type { InitialConnectionState } from '../workflows/messages';
import { connectionStatusKey, providerKey, syncStateKey, tenantIdKey } from './search-attributes';

/** No Temporal call waits longer than this; past it the caller answers 503 `temporal_unavailable`. */
export const TEMPORAL_CALL_DEADLINE_MS = 10_000;

/**
 * Starts a connection's workflow, idempotently: the id is `connection-<id>` and an already running
 * one is kept (`USE_EXISTING`), so the API, a retried request and the reconciler can all call this.
 * `initial` is the state a recreated workflow starts in (the row's status, run times and revision).
 */
export async function startConnectionWorkflow(
  client: Client,
  opts: { taskQueue: string; maxHistoryEvents: number; deadlineMs?: number },
  row: Pick<ConnectionRow, 'id' | 'tenantId' | 'provider' | 'syncIntervalSeconds' | 'workflowId'>,
  initial?: InitialConnectionState,
): Promise<void> {
  await client.withDeadline(Date.now() + (opts.deadlineMs ?? TEMPORAL_CALL_DEADLINE_MS), () =>
    client.workflow.start<typeof connectionWorkflow>('connectionWorkflow', {
      workflowId: row.workflowId,
      taskQueue: opts.taskQueue,
      workflowIdConflictPolicy: 'USE_EXISTING',
      args: [
        {
          connectionId: row.id,
          tenantId: row.tenantId,
          provider: row.provider,
          syncIntervalSeconds: row.syncIntervalSeconds,
          maxHistoryEvents: opts.maxHistoryEvents,
          ...(initial ? { initial } : {}),
        },
      ],
      typedSearchAttributes: [
        { key: connectionStatusKey, value: initial?.status ?? 'awaiting_credentials' },
        { key: providerKey, value: row.provider },
        { key: tenantIdKey, value: row.tenantId },
        { key: syncStateKey, value: 'idle' },
      ],
    }),
  );
}

/** gRPC UNAVAILABLE (14) or DEADLINE_EXCEEDED (4) anywhere in the cause chain: Temporal is not reachable. */
export function isTemporalUnavailable(err: unknown): boolean {
  return hasGrpcCode(err, [14, 4]);
}

/**
 * gRPC FAILED_PRECONDITION (9) or RESOURCE_EXHAUSTED (8) anywhere in the cause chain: Temporal is up
 * but the workflow cannot take an update now (its workflow task keeps failing or timing out, e.g.
 * while workers are starved or a bad deploy runs; or too many updates are in flight).
 */
export function isWorkflowBusy(err: unknown): boolean {
  return hasGrpcCode(err, [9, 8]);
}

function hasGrpcCode(err: unknown, codes: number[]): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'number' && codes.includes(code)) return true;
  }
  return false;
}
