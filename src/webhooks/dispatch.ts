import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import { createDeliveries, markWorkflowsStarted, type DeliveryRef } from '../db/webhooks';
import type { Sql } from '../db/sql';
import { TEMPORAL_CALL_DEADLINE_MS } from '../temporal/start-connection';
import { type DeliveryRetry, type webhookDeliveryWorkflow } from '../workflows/webhook-delivery';

/**
 * From committed events to running delivery workflows. Called by whoever committed the events
 * (the activity or API call that changed a connection), right after the commit; the webhook
 * sweeper calls it again for whatever a crash in between left behind. Every step is idempotent:
 * deliveries are unique per (event, endpoint), and the workflow id is deterministic with
 * USE_EXISTING (a running one is kept) and ALLOW_DUPLICATE_FAILED_ONLY (a finished one is never
 * started again), so an event is never delivered twice because it was dispatched twice.
 */

export const deliveryWorkflowId = (d: Pick<DeliveryRef, 'eventId' | 'endpointId'>) => `webhook-${d.eventId}-${d.endpointId}`;

export interface WebhookDispatcher {
  /** Never throws: what it could not do, the sweeper does later. */
  dispatch(eventIds: string[]): Promise<void>;
  /** Starts (or finds running) the workflows of these deliveries; throws on failure. */
  start(deliveries: readonly DeliveryRef[]): Promise<void>;
}

interface Logger {
  warn(obj: object, msg: string): void;
}

export function createWebhookDispatcher(deps: {
  sql: Sql;
  temporal: Client;
  taskQueue: string;
  retry: DeliveryRetry;
  log: Logger;
}): WebhookDispatcher {
  const { sql, temporal } = deps;

  async function startOne(d: DeliveryRef): Promise<void> {
    try {
      await temporal.withDeadline(Date.now() + TEMPORAL_CALL_DEADLINE_MS, () =>
        temporal.workflow.start<typeof webhookDeliveryWorkflow>('webhookDeliveryWorkflow', {
          workflowId: deliveryWorkflowId(d),
          taskQueue: deps.taskQueue,
          workflowIdConflictPolicy: 'USE_EXISTING',
          workflowIdReusePolicy: 'ALLOW_DUPLICATE_FAILED_ONLY',
          args: [{ deliveryId: d.id, retry: deps.retry }],
        }),
      );
    } catch (err) {
      // A closed workflow with this id finished the delivery one way or the other.
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
  }

  async function start(deliveries: readonly DeliveryRef[]): Promise<void> {
    // A few at a time: a tenant with many endpoints should not open hundreds of calls at once.
    for (let i = 0; i < deliveries.length; i += 10) {
      const batch = deliveries.slice(i, i + 10);
      await Promise.all(batch.map(startOne));
      await markWorkflowsStarted(
        sql,
        batch.map((d) => d.id),
      );
    }
  }

  return {
    start,
    async dispatch(eventIds) {
      if (eventIds.length === 0) return;
      try {
        await start(await createDeliveries(sql, eventIds));
      } catch (err) {
        deps.log.warn({ reason: (err as Error).message, events: eventIds.length }, 'webhooks: dispatch failed; the sweeper will retry');
      }
    },
  };
}
