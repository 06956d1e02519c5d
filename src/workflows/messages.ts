import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { ConnectionError, ConnectionState, ConnectionStatus, Provider, SyncState } from '../domain/connection';

/**
 * The connection workflow's contract, shared by the workflow and its callers so a rename is a
 * compile error. API calls that need an answer (did the credential verify? was the action
 * allowed?) are updates with validators; reading state is a query.
 */

/** Everything a connection carries across continue-as-new: one small plain object. */
export interface CarriedState {
  state: ConnectionState;
  /** A sync was asked for and has not started yet. */
  syncRequested: boolean;
  /** Resources whose cursors the next run forgets (a requested backfill). */
  pendingBackfill?: string[];
  /**
   * A run handed over to the next run by continue-as-new while it waited (rate limit, provider
   * unavailable): the next run carries it on from this step, after the wait.
   */
  resumeRun?: ResumeRun;
}

export interface ResumeRun {
  runId: string;
  /** The step to carry on with. */
  step: string;
  /** The backfill the run started with, owed again should it fail. */
  backfill: string[];
  /** The wait it was in: slept out (what is left of it) before the step runs again. */
  wait?: Extract<SyncState, { until: string }>;
}

/**
 * How long the API waits for `attachCredential`: the verification's own deadline (its
 * schedule-to-close timeout, retries included) plus a margin for the workflow task around it.
 */
export const VERIFICATION_TIMEOUT_MS = 60_000;
export const ATTACH_CREDENTIAL_DEADLINE_MS = VERIFICATION_TIMEOUT_MS + 15_000;

export interface ConnectionWorkflowInput {
  connectionId: string;
  tenantId: string;
  provider: Provider;
  syncIntervalSeconds: number;
  /** Continue-as-new once history passes this many events (the server may suggest it sooner). */
  maxHistoryEvents: number;
  /** Present when continuing as new: the state to carry on from. */
  carried?: CarriedState;
  /**
   * Present when the reconciler recreates a lost workflow: the state in Postgres to start from
   * (cursors live in Postgres already). Absent for a new connection (`awaiting_credentials`).
   */
  initial?: InitialConnectionState;
}

/** Where a recreated workflow starts: the row's status and run times, past the row's revision. */
export interface InitialConnectionState {
  status: Exclude<ConnectionStatus, 'provisioning' | 'disconnected'>;
  lastSyncAt: string | null;
  nextSyncAt: string | null;
  lastError: ConnectionError | null;
  /** The row's state revision: the workflow's snapshots continue above it, or they would be ignored. */
  revision: number;
}

export interface SyncRequest {
  /** Re-sync from scratch (backfill) instead of incrementally; upserts keep it duplicate-free. */
  full?: boolean;
  /** With `full`: backfill only these resources and leave the other cursors alone. */
  resources?: string[];
}

export const stateQuery = defineQuery<ConnectionState>('state');
export const attachCredentialUpdate = defineUpdate<ConnectionState, [{ credentialId: string }]>('attachCredential');
export const syncNowUpdate = defineUpdate<ConnectionState, [SyncRequest]>('syncNow');
export const pauseUpdate = defineUpdate<ConnectionState>('pause');
export const resumeUpdate = defineUpdate<ConnectionState>('resume');
export const disconnectUpdate = defineUpdate<ConnectionState>('disconnect');
