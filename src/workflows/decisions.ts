import { ActivityFailure, ApplicationFailure, TimeoutFailure, isCancellation } from '@temporalio/workflow';
import {
  describeRefusal,
  isSyncResource,
  refusalCode,
  syncResources,
  type ConnectionAction,
  type ConnectionError,
  type ConnectionStatus,
  type Provider,
} from '../domain/connection';
import { FailureTypes } from '../domain/failures';
import type { SyncRequest } from './messages';

/**
 * The connection workflow's pure decisions: what a failure means for the connection, whether an
 * action is allowed, when the next sync is due. No workflow APIs are called here, so each rule is
 * unit-tested on its own (test/unit/workflow-decisions.test.ts) and the workflow stays a thin loop.
 */

/** The failure an update is refused with, or null when the action is allowed. */
export function refusalOf(action: ConnectionAction, status: ConnectionStatus, disconnectRequested: boolean): ApplicationFailure | null {
  if (disconnectRequested) return refusal(action, 'connection_disconnected', describeRefusal(action, 'disconnected'));
  const code = refusalCode(action, status);
  return code ? refusal(action, code, describeRefusal(action, status)) : null;
}

function refusal(action: ConnectionAction, code: string, message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: FailureTypes.refused, message, details: [code, action], nonRetryable: true });
}

function badRequest(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: FailureTypes.badRequest, message, nonRetryable: true });
}

export function credentialArgumentProblem(arg: unknown): ApplicationFailure | null {
  const credentialId = (arg as { credentialId?: unknown } | undefined)?.credentialId;
  return typeof credentialId === 'string' && credentialId ? null : badRequest('credentialId is required');
}

export function syncRequestProblem(provider: Provider, request: SyncRequest | null | undefined): ApplicationFailure | null {
  const unknown = (request?.resources ?? []).filter((r) => !isSyncResource(provider, r));
  if (unknown.length) {
    return badRequest(`Unknown ${provider} resources: ${unknown.join(', ')}. Known: ${syncResources(provider).join(', ')}.`);
  }
  if (request?.resources?.length && !request.full) return badRequest('resources applies to a full sync only: pass "full": true.');
  return null;
}

/** The resources a sync request asks to backfill, added to those already owed. */
export function backfillAfter(provider: Provider, pending: readonly string[], request: SyncRequest | null | undefined): string[] {
  if (!request?.full) return [...pending];
  const resources = request.resources?.length ? request.resources : [...syncResources(provider)];
  return [...new Set([...pending, ...resources])];
}

export function isDue(nextSyncAt: string | null, now: number): boolean {
  return nextSyncAt === null || Date.parse(nextSyncAt) <= now;
}

/** One interval after `from` (or now), but never in the past: a missed sync runs at once, not twice. */
export function nextSyncAfter(from: string | null, intervalSeconds: number, now: number): string {
  const base = from ? Date.parse(from) : now;
  return new Date(Math.max(base + intervalSeconds * 1000, now)).toISOString();
}

/** The root ApplicationFailure behind an activity failure, if there is one. */
export function rootApplicationFailure(err: unknown): ApplicationFailure | undefined {
  let e: unknown = err;
  while (e instanceof ActivityFailure) e = e.cause;
  return e instanceof ApplicationFailure ? e : undefined;
}

export interface SyncFailure {
  error: ConnectionError;
  /** Access is gone: the connection parks in needs_reconnect. */
  authLost: boolean;
  /** The run stopped making progress; recorded `stalled`, not `failed`. */
  stalled: boolean;
  /** Pause or disconnect stopped it: no error for the customer. */
  cancelled: boolean;
}

/** What a failed run means for the connection. */
export function describeSyncFailure(err: unknown, at: string): SyncFailure {
  const plain = { authLost: false, stalled: false, cancelled: false };
  if (isCancellation(err)) return { error: { code: 'sync_cancelled', message: 'The sync was cancelled.', at }, ...plain, cancelled: true };
  const app = rootApplicationFailure(err);
  if (app?.type === FailureTypes.authLost) {
    const code = typeof app.details?.[0] === 'string' ? app.details[0] : 'auth_lost';
    return { error: { code, message: app.message, at }, ...plain, authLost: true };
  }
  if (app?.type === FailureTypes.stalled) return { error: { code: 'sync_stalled', message: app.message, at }, ...plain, stalled: true };
  if (app?.type === FailureTypes.rateLimited) return { error: { code: 'rate_limited', message: app.message, at }, ...plain };
  if (app?.type === FailureTypes.providerProtocol)
    return { error: { code: 'provider_protocol_error', message: app.message, at }, ...plain };
  if (app?.type === FailureTypes.providerUnavailable)
    return { error: { code: 'provider_unavailable', message: app.message, at }, ...plain };
  // A heartbeat timeout with retries exhausted: the run stopped making progress.
  if (err instanceof ActivityFailure && err.cause instanceof TimeoutFailure) {
    return { error: { code: 'sync_stalled', message: 'The sync stopped making progress.', at }, ...plain, stalled: true };
  }
  return { error: { code: 'sync_failed', message: app?.message ?? (err instanceof Error ? err.message : 'Sync failed'), at }, ...plain };
}

/** Turns a failed verification into the failure the API maps to 422 or 503. */
export function credentialFailure(err: unknown): ApplicationFailure {
  const app = rootApplicationFailure(err);
  if (app?.type === FailureTypes.invalidCredentials) {
    return ApplicationFailure.create({ type: FailureTypes.invalidCredentials, message: app.message, nonRetryable: true });
  }
  return ApplicationFailure.create({
    type: FailureTypes.providerUnavailable,
    message: 'The provider could not be reached to verify the credential; try again shortly.',
    nonRetryable: true,
  });
}

/**
 * How long to wait for a provider that keeps failing: the activity's suggestion, doubled for each
 * wait in a row already spent on this step, up to an hour.
 */
export function providerUnavailableWaitMs(suggestedMs: number, waitsSoFar: number, capMs = 60 * 60_000): number {
  return Math.min(capMs, suggestedMs * 2 ** Math.max(0, waitsSoFar));
}
