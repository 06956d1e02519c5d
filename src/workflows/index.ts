// The worker bundles this file; it must export every workflow and import nothing with side effects.
export { connectionWorkflow } from './connection';
export { reconcilerWorkflow } from './reconciler';
export { webhookDeliveryWorkflow } from './webhook-delivery';
export { webhookSweeperWorkflow } from './webhook-sweeper';
