/**
 * The connection model's rules, shared by the API, the activities and the workflow. Pure data and
 * pure functions only, with no runtime imports beyond the provider manifests: the workflow sandbox
 * imports this file. The shapes themselves are zod schemas in ./schemas.ts (imported here as types
 * only, so zod stays out of the workflow bundle).
 */
import type { Provider } from '../providers/manifests';

export { isSyncResource, PROVIDERS, syncResources, type Provider, type SyncResource } from '../providers/manifests';
export type { ConnectionError, ConnectionRow, ConnectionSnapshot, ConnectionState, ConnectionView, SyncState } from './schemas';

export const CONNECTION_STATUSES = ['provisioning', 'awaiting_credentials', 'active', 'needs_reconnect', 'paused', 'disconnected'] as const;
export type ConnectionStatus = (typeof CONNECTION_STATUSES)[number];

/** What the customer can ask of a connection, each guarded by the status it is in. */
export type ConnectionAction = 'authorize' | 'set_credentials' | 'sync' | 'pause' | 'resume' | 'disconnect';

/** The statuses each action is allowed in (the console shows its buttons from this table too). */
export const ALLOWED: Record<ConnectionAction, readonly ConnectionStatus[]> = {
  authorize: ['awaiting_credentials', 'needs_reconnect', 'active'],
  set_credentials: ['awaiting_credentials', 'needs_reconnect', 'active'],
  sync: ['active'],
  pause: ['active'],
  resume: ['paused'],
  disconnect: ['awaiting_credentials', 'active', 'needs_reconnect', 'paused'],
};

/** The stable error code a refused action answers with, chosen to tell the caller what to do. */
export function refusalCode(action: ConnectionAction, status: ConnectionStatus): string | null {
  if (ALLOWED[action].includes(status)) return null;
  if (status === 'disconnected') return 'connection_disconnected';
  // The row exists, its workflow is not started yet (the reconciler finishes it): try again shortly.
  if (status === 'provisioning') return 'connection_provisioning';
  if (status === 'paused') return 'connection_paused';
  if (action === 'resume') return 'connection_not_paused';
  if (status === 'awaiting_credentials') return 'connection_awaiting_credentials';
  if (status === 'needs_reconnect') return 'connection_needs_reconnect';
  return 'invalid_connection_state';
}

export function describeRefusal(action: ConnectionAction, status: ConnectionStatus): string {
  return `Cannot ${action.replace('_', ' ')} a connection that is ${status.replace('_', ' ')}.`;
}

/**
 * Sync steps of each provider run on a task queue of their own, polled by workers with a bounded
 * number of slots: a slow or rate-limited provider fills its own slots, never the other's, and
 * never the queue the workflows and bookkeeping run on.
 */
export function syncTaskQueue(baseTaskQueue: string, provider: Provider): string {
  return `${baseTaskQueue}-sync-${provider}`;
}
