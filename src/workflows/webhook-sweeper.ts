import { condition, continueAsNew, defineSignal, proxyActivities, setHandler } from '@temporalio/workflow';
import type { WebhookActivities } from '../webhooks/activities';

/**
 * The webhook sweeper (one per task queue, id `conduit-webhook-sweeper-<queue>`), shaped like the
 * reconciler: runs `sweepWebhooks` — dispatching events and starting delivery workflows that a
 * crash between a commit and its dispatch left behind — then sleeps on a durable timer for
 * `intervalSeconds` or until `sweepNow`, which every worker sends at start-up (signal-with-start).
 */

export const sweepNowSignal = defineSignal('sweepNow');

const { sweepWebhooks } = proxyActivities<WebhookActivities>({
  startToCloseTimeout: '10 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

export async function webhookSweeperWorkflow(input: { intervalSeconds: number }): Promise<void> {
  let requested = false;
  setHandler(sweepNowSignal, () => {
    requested = true;
  });
  for (let i = 0; i < 100; i++) {
    requested = false;
    await sweepWebhooks();
    await condition(() => requested, input.intervalSeconds * 1000);
  }
  await continueAsNew<typeof webhookSweeperWorkflow>(input);
}

export const webhookSweeperWorkflowId = (taskQueue: string) => `conduit-webhook-sweeper-${taskQueue}`;
