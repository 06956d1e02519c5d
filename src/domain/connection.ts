/**
 * The connection model shared by the API, the activities and the workflow. Pure data and pure
 * functions only: the workflow sandbox imports this file.
 */

export const PROVIDERS = ['bitbucket', 'bitrise'] as const;
export type Provider = (typeof PROVIDERS)[number];

export const CONNECTION_STATUSES = ['awaiting_credentials', 'active', 'needs_reconnect', 'paused', 'disconnected'] as const;
export type ConnectionStatus = (typeof CONNECTION_STATUSES)[number];

export interface ConnectionError {
  code: string;
  message: string;
  /** ISO-8601 */
  at: string;
}

/** What the customer can ask of a connection, each guarded by the status it is in. */
export type ConnectionAction = 'authorize' | 'set_credentials' | 'sync' | 'pause' | 'resume' | 'disconnect';

const ALLOWED: Record<ConnectionAction, readonly ConnectionStatus[]> = {
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
 * What each provider syncs, in dependency order (parents before children). `account` comes first
 * in every run: one cheap request that proves access before the heavy ones.
 */
export const SYNC_RESOURCES = {
  bitbucket: ['workspaces', 'members', 'repositories', 'pullRequests', 'commits', 'pipelines'],
  bitrise: ['organizations', 'apps', 'builds', 'pipelines'],
} as const satisfies Record<Provider, readonly string[]>;

export type SyncResource<P extends Provider = Provider> = (typeof SYNC_RESOURCES)[P][number];

export function isSyncResource(provider: Provider, resource: string): resource is SyncResource {
  return (SYNC_RESOURCES[provider] as readonly string[]).includes(resource);
}

/** What the connection's sync loop is doing right now, for the API and the Temporal UI. */
export type SyncState =
  | { state: 'idle' }
  | { state: 'running'; resource: string }
  | { state: 'rate_limited'; resource: string; until: string };

/**
 * Sync steps of each provider run on a task queue of their own, polled by workers with a bounded
 * number of slots: a slow or rate-limited provider fills its own slots, never the other's, and
 * never the queue the workflows and bookkeeping run on.
 */
export function syncTaskQueue(baseTaskQueue: string, provider: Provider): string {
  return `${baseTaskQueue}-sync-${provider}`;
}
