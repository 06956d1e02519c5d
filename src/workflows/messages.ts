import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { ConnectionError, ConnectionStatus, Provider, SyncState } from '../domain/connection';

/**
 * The connection workflow's contract, shared by the workflow and its callers so a rename is a
 * compile error. API calls that need an answer (did the credential verify? was the action
 * allowed?) are updates with validators; reading state is a query.
 */

export interface ConnectionState {
  connectionId: string;
  tenantId: string;
  provider: Provider;
  status: ConnectionStatus;
  syncIntervalSeconds: number;
  lastSyncAt: string | null;
  nextSyncAt: string | null;
  lastError: ConnectionError | null;
  /** The sync run in flight, if any. */
  currentRunId: string | null;
  syncState: SyncState;
  /** Grows with every published change; the database ignores snapshots older than it has. */
  revision: number;
}

export interface ConnectionWorkflowInput {
  connectionId: string;
  tenantId: string;
  provider: Provider;
  syncIntervalSeconds: number;
  /** Continue-as-new once history passes this many events (the server may suggest it sooner). */
  maxHistoryEvents: number;
  /** Present when continuing as new: the state to carry on from. */
  carried?: { state: ConnectionState; syncRequested: boolean; pendingBackfill?: string[] };
}

export const stateQuery = defineQuery<ConnectionState>('state');
export const attachCredentialUpdate = defineUpdate<ConnectionState, [{ credentialId: string }]>('attachCredential');
export interface SyncRequest {
  /** Re-sync from scratch (backfill) instead of incrementally; upserts keep it duplicate-free. */
  full?: boolean;
  /** With `full`: backfill only these resources and leave the other cursors alone. */
  resources?: string[];
}

export const syncNowUpdate = defineUpdate<ConnectionState, [SyncRequest]>('syncNow');
export const pauseUpdate = defineUpdate<ConnectionState>('pause');
export const resumeUpdate = defineUpdate<ConnectionState>('resume');
export const disconnectUpdate = defineUpdate<ConnectionState>('disconnect');

/** ApplicationFailure types the workflow and activities use; the API maps them onto HTTP errors. */
export const FailureTypes = {
  /** An action the connection's status does not allow; details[0] is the stable error code. */
  refused: 'ActionRefused',
  invalidCredentials: 'InvalidCredentials',
  authLost: 'AuthLost',
  providerUnavailable: 'ProviderUnavailable',
  rateLimited: 'RateLimited',
  /** A run that committed no page for too long. */
  stalled: 'Stalled',
  connectionMissing: 'ConnectionMissing',
} as const;
