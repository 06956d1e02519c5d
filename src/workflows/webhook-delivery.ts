import { ActivityFailure, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { WebhookActivities } from '../webhooks/activities';

/**
 * One event for one endpoint (id `webhook-<event id>-<endpoint id>`, started idempotently by
 * src/webhooks/dispatch.ts). The `deliverWebhook` activity makes one HTTP attempt; Temporal retries
 * it with exponential backoff until it succeeds, the receiver answers 410, or the retry window
 * (3 days by default) is over, when the delivery is given up. Durable: a worker crash or a Temporal
 * restart resumes the retries where they were.
 */

export interface DeliveryRetry {
  initialIntervalMs: number;
  maximumIntervalMs: number;
  /** All attempts together: after this long the delivery is given up (`failed`). */
  giveUpAfterMs: number;
}

export interface WebhookDeliveryInput {
  deliveryId: string;
  retry: DeliveryRetry;
}

/** HTTP attempts run on a queue of their own, so slow receivers never take the connections' worker slots. */
export const webhookTaskQueue = (baseTaskQueue: string) => `${baseTaskQueue}-webhooks`;

/** Per attempt: the 10 s request and the bookkeeping around it (also how soon an attempt lost with its worker is retried). */
const ATTEMPT_TIMEOUT = '15 seconds';

const bookkeeping = proxyActivities<WebhookActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

export async function webhookDeliveryWorkflow(input: WebhookDeliveryInput): Promise<void> {
  const { deliverWebhook } = proxyActivities<WebhookActivities>({
    taskQueue: webhookTaskQueue(workflowInfo().taskQueue),
    startToCloseTimeout: ATTEMPT_TIMEOUT,
    scheduleToCloseTimeout: input.retry.giveUpAfterMs,
    retry: {
      initialInterval: input.retry.initialIntervalMs,
      backoffCoefficient: 2,
      maximumInterval: input.retry.maximumIntervalMs,
    },
  });
  try {
    await deliverWebhook(input.deliveryId);
  } catch (err) {
    if (!(err instanceof ActivityFailure)) throw err;
    await bookkeeping.giveUpDelivery(input.deliveryId);
  }
}
