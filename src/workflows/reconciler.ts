import { condition, continueAsNew, defineSignal, proxyActivities, setHandler } from '@temporalio/workflow';
import type { ReconcilerActivities } from '../reconciler/reconcile';

/**
 * The reconciler as a workflow of its own (one per task queue, id `conduit-reconciler-<queue>`):
 * it runs the `reconcile` activity, then sleeps on a durable timer for `intervalSeconds` or until
 * the `reconcileNow` signal, which every worker sends at start-up (signal-with-start, so a worker
 * starting against an empty Temporal database creates it). Continues as new every 100 runs.
 */

export const reconcileNowSignal = defineSignal('reconcileNow');

const { reconcile } = proxyActivities<ReconcilerActivities>({
  startToCloseTimeout: '10 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

export async function reconcilerWorkflow(input: { intervalSeconds: number }): Promise<void> {
  let requested = false;
  setHandler(reconcileNowSignal, () => {
    requested = true;
  });
  for (let i = 0; i < 100; i++) {
    requested = false;
    await reconcile();
    await condition(() => requested, input.intervalSeconds * 1000);
  }
  await continueAsNew<typeof reconcilerWorkflow>(input);
}
