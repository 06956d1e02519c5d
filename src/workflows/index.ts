// The worker bundles this file; it must export every workflow and import nothing with side effects.
export { connectionWorkflow } from './connection';
