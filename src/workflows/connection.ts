import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  allHandlersFinished,
  condition,
  continueAsNew,
  isCancellation,
  proxyActivities,
  setHandler,
  sleep,
  TimeoutFailure,
  upsertSearchAttributes,
  uuid4,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { createActivities } from '../activities';
import {
  SYNC_RESOURCES,
  describeRefusal,
  isSyncResource,
  refusalCode,
  syncTaskQueue,
  type ConnectionAction,
  type ConnectionError,
  type SyncState,
} from '../domain/connection';
import { connectionStatusKey, syncStateKey } from '../temporal/search-attributes';
import {
  FailureTypes,
  attachCredentialUpdate,
  disconnectUpdate,
  pauseUpdate,
  resumeUpdate,
  stateQuery,
  syncNowUpdate,
  type ConnectionState,
  type ConnectionWorkflowInput,
} from './messages';

type Activities = ReturnType<typeof createActivities>;

// Bookkeeping against our own database: retried until it works, because an outage of Postgres
// must delay the connection, never break it.
const bookkeeping = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

// Verifying a credential has a customer waiting on the HTTP response, so it gives up quickly.
const verification = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumAttempts: 3, nonRetryableErrorTypes: [FailureTypes.invalidCredentials] },
});

// A sync step heartbeats so pause/disconnect can cancel it and a dead worker is noticed quickly.
// Transient provider faults are retried with backoff; lost access or a stall is handed back at once.
const SYNC_STEP_OPTIONS = {
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '30 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '10 minutes',
    maximumAttempts: 12,
    nonRetryableErrorTypes: [FailureTypes.authLost, FailureTypes.connectionMissing, FailureTypes.stalled],
  },
} satisfies ActivityOptions;

/**
 * One connection, for its whole life: wait for a credential, then sync on a schedule (or on
 * demand) until access is lost (park in needs_reconnect, no polling), paused, or disconnected.
 * All I/O is in activities; the workflow only decides and remembers.
 */
export async function connectionWorkflow(input: ConnectionWorkflowInput): Promise<ConnectionState> {
  const state: ConnectionState = input.carried?.state ?? {
    connectionId: input.connectionId,
    tenantId: input.tenantId,
    provider: input.provider,
    status: 'awaiting_credentials',
    syncIntervalSeconds: input.syncIntervalSeconds,
    lastSyncAt: null,
    nextSyncAt: null,
    lastError: null,
    currentRunId: null,
    revision: 0,
    syncState: { state: 'idle' },
  };
  let syncRequested = input.carried?.syncRequested ?? false;
  // Resources whose cursors the next run forgets (a requested backfill), carried across runs.
  let pendingBackfill: string[] = input.carried?.pendingBackfill ?? [];
  let disconnectRequested = false;
  // Set once the disconnected state is in the database, so the API reads what it just caused.
  let disconnectPublished = false;
  // Every handler bumps this, so the main loop wakes on any change without enumerating them.
  let changes = 0;
  let runningSync: CancellationScope | undefined;
  const credentialLock = new Mutex();
  const syncing = proxyActivities<Activities>({ ...SYNC_STEP_OPTIONS, taskQueue: syncTaskQueue(workflowInfo().taskQueue, input.provider) });

  const view = (): ConnectionState => ({ ...state });
  const refuseUnless = (action: ConnectionAction) => {
    if (disconnectRequested) throw refusal(action, 'connection_disconnected', describeRefusal(action, 'disconnected'));
    const code = refusalCode(action, state.status);
    if (code) throw refusal(action, code, describeRefusal(action, state.status));
  };

  let published: { status?: string; syncState?: string } = {};
  async function publish(): Promise<void> {
    state.revision += 1;
    changes += 1;
    // Upserted only on change: each upsert is a history event.
    if (published.status !== state.status || published.syncState !== state.syncState.state) {
      upsertSearchAttributes([
        { key: connectionStatusKey, value: state.status },
        { key: syncStateKey, value: state.syncState.state },
      ]);
      published = { status: state.status, syncState: state.syncState.state };
    }
    await bookkeeping.publishState(state.connectionId, {
      status: state.status,
      syncIntervalSeconds: state.syncIntervalSeconds,
      lastSyncAt: state.lastSyncAt,
      nextSyncAt: state.nextSyncAt,
      lastError: state.lastError,
      syncState: state.syncState,
      revision: state.revision,
    });
  }

  setHandler(stateQuery, view);

  setHandler(
    attachCredentialUpdate,
    ({ credentialId }) =>
      credentialLock.run(async () => {
        // Checked again under the lock: the status may have moved while this update waited.
        refuseUnless('set_credentials');
        try {
          await verification.activateCredential(state.connectionId, credentialId);
        } catch (err) {
          throw credentialFailure(err);
        }
        state.status = 'active';
        state.lastError = null;
        syncRequested = true;
        await publish();
        return view();
      }),
    {
      validator: (arg) => {
        if (typeof arg?.credentialId !== 'string' || !arg.credentialId) throw ApplicationFailure.nonRetryable('credentialId is required', 'BadRequest');
        refuseUnless('set_credentials');
      },
    },
  );

  setHandler(
    syncNowUpdate,
    async (request) => {
      if (request?.full) {
        const resources = request.resources?.length ? request.resources : [...SYNC_RESOURCES[state.provider]];
        pendingBackfill = [...new Set([...pendingBackfill, ...resources])];
      }
      syncRequested = true;
      changes += 1;
      return view();
    },
    {
      validator: (request) => {
        refuseUnless('sync');
        const unknown = (request?.resources ?? []).filter((r: string) => !isSyncResource(state.provider, r));
        if (unknown.length) {
          throw ApplicationFailure.nonRetryable(`Unknown ${state.provider} resources: ${unknown.join(', ')}. Known: ${SYNC_RESOURCES[state.provider].join(', ')}.`, 'BadRequest');
        }
        if (request?.resources?.length && !request.full) throw ApplicationFailure.nonRetryable('resources applies to a full sync only: pass "full": true.', 'BadRequest');
      },
    },
  );

  setHandler(
    pauseUpdate,
    async () => {
      state.status = 'paused';
      state.nextSyncAt = null;
      runningSync?.cancel();
      await publish();
      return view();
    },
    { validator: () => refuseUnless('pause') },
  );

  setHandler(
    resumeUpdate,
    async () => {
      state.status = 'active';
      state.nextSyncAt = nextSyncAfter(state.lastSyncAt, state.syncIntervalSeconds);
      await publish();
      return view();
    },
    { validator: () => refuseUnless('resume') },
  );

  setHandler(
    disconnectUpdate,
    async () => {
      disconnectRequested = true;
      changes += 1;
      runningSync?.cancel();
      await condition(() => disconnectPublished);
      return view();
    },
    { validator: () => refuseUnless('disconnect') },
  );

  const shouldContinueAsNew = () =>
    workflowInfo().continueAsNewSuggested || workflowInfo().historyLength >= input.maxHistoryEvents;

  if (!input.carried) await publish();
  else published = { status: state.status, syncState: state.syncState.state };

  while (!disconnectRequested) {
    if (shouldContinueAsNew()) {
      // Handlers finish first so no update is lost across the boundary.
      await condition(allHandlersFinished);
      if (disconnectRequested) break;
      await continueAsNew<typeof connectionWorkflow>({ ...input, carried: { state: view(), syncRequested, pendingBackfill } });
    }

    if (state.status === 'active' && (syncRequested || isDue(state.nextSyncAt))) {
      syncRequested = false;
      await syncOnce();
      continue;
    }

    const seen = changes;
    const timeout = state.status === 'active' && state.nextSyncAt ? Math.max(1, Date.parse(state.nextSyncAt) - Date.now()) : undefined;
    const woken = () => changes !== seen || disconnectRequested || shouldContinueAsNew();
    if (timeout === undefined) await condition(woken);
    else await condition(woken, timeout);
  }

  await bookkeeping.destroyCredentials(state.connectionId);
  state.status = 'disconnected';
  state.nextSyncAt = null;
  state.currentRunId = null;
  await publish();
  disconnectPublished = true;
  await condition(allHandlersFinished);
  return view();

  /**
   * One run: account check, then each resource in order. A long rate-limit pause is a durable
   * sleep here (visible as syncState), not an activity holding a worker slot.
   */
  async function syncOnce(): Promise<void> {
    const runId = uuid4();
    const backfill = pendingBackfill;
    pendingBackfill = [];
    state.currentRunId = runId;
    changes += 1;
    let outcome: { ok: true; finishedAt: string } | { ok: false; error: ConnectionError; authLost: boolean; cancelled: boolean; stalled: boolean };
    try {
      runningSync = new CancellationScope();
      outcome = await runningSync.run(async () => {
        await bookkeeping.beginRun(state.connectionId, runId, backfill);
        for (const step of ['account', ...SYNC_RESOURCES[state.provider]]) {
          await setSyncState({ state: 'running', resource: step });
          for (;;) {
            const result = await syncing.syncStep(state.connectionId, runId, step);
            if (!result.rateLimitedForMs) break;
            await setSyncState({ state: 'rate_limited', resource: step, until: new Date(Date.now() + result.rateLimitedForMs).toISOString() });
            await sleep(result.rateLimitedForMs);
          }
        }
        return { ok: true as const, finishedAt: (await bookkeeping.completeRun(state.connectionId, runId)).finishedAt };
      });
    } catch (err) {
      outcome = { ok: false, ...describeSyncFailure(err), cancelled: isCancellation(err) };
      // A cancelled or failed backfill is owed again next run.
      pendingBackfill = [...new Set([...backfill, ...pendingBackfill])];
    } finally {
      runningSync = undefined;
      state.currentRunId = null;
      state.syncState = { state: 'idle' };
    }

    if (!outcome.ok) {
      const { error, stalled } = outcome;
      await CancellationScope.nonCancellable(() => bookkeeping.failRun(state.connectionId, runId, error, stalled ? 'stalled' : 'failed'));
    }
    if (outcome.ok) {
      state.lastSyncAt = outcome.finishedAt;
      state.lastError = null;
    } else if (!outcome.cancelled) {
      state.lastError = outcome.error;
      if (outcome.authLost && state.status === 'active') state.status = 'needs_reconnect';
    }
    state.nextSyncAt = state.status === 'active' ? nextSyncAfter(outcome.ok ? outcome.finishedAt : nowIso(), state.syncIntervalSeconds) : null;
    await publish();
  }

  async function setSyncState(next: SyncState): Promise<void> {
    state.syncState = next;
    await publish();
  }
}

function nowIso(): string {
  return new Date().toISOString();
}

function isDue(nextSyncAt: string | null): boolean {
  return nextSyncAt === null || Date.parse(nextSyncAt) <= Date.now();
}

function nextSyncAfter(from: string | null, intervalSeconds: number): string {
  const base = from ? Date.parse(from) : Date.now();
  return new Date(Math.max(base + intervalSeconds * 1000, Date.now())).toISOString();
}

function refusal(action: ConnectionAction, code: string, message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: FailureTypes.refused, message, details: [code, action], nonRetryable: true });
}

/** The root ApplicationFailure behind an activity failure, if there is one. */
function rootApplicationFailure(err: unknown): ApplicationFailure | undefined {
  let e: unknown = err;
  while (e instanceof ActivityFailure) e = e.cause;
  return e instanceof ApplicationFailure ? e : undefined;
}

function describeSyncFailure(err: unknown): { error: ConnectionError; authLost: boolean; stalled: boolean } {
  const at = nowIso();
  const plain = { authLost: false, stalled: false };
  if (isCancellation(err)) return { error: { code: 'sync_cancelled', message: 'The sync was cancelled.', at }, ...plain };
  const app = rootApplicationFailure(err);
  if (app?.type === FailureTypes.authLost) {
    const code = typeof app.details?.[0] === 'string' ? app.details[0] : 'auth_lost';
    return { error: { code, message: app.message, at }, authLost: true, stalled: false };
  }
  if (app?.type === FailureTypes.stalled) return { error: { code: 'sync_stalled', message: app.message, at }, authLost: false, stalled: true };
  if (app?.type === FailureTypes.rateLimited) return { error: { code: 'rate_limited', message: app.message, at }, ...plain };
  if (app?.type === FailureTypes.providerUnavailable) return { error: { code: 'provider_unavailable', message: app.message, at }, ...plain };
  // A heartbeat timeout with retries exhausted: the run stopped making progress.
  if (err instanceof ActivityFailure && err.cause instanceof TimeoutFailure) {
    return { error: { code: 'sync_stalled', message: 'The sync stopped making progress.', at }, authLost: false, stalled: true };
  }
  return { error: { code: 'sync_failed', message: app?.message ?? (err instanceof Error ? err.message : 'Sync failed'), at }, ...plain };
}

/** Turns a failed verification into the failure the API maps to 422 or 503. */
function credentialFailure(err: unknown): ApplicationFailure {
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

/** Serializes async handlers that must not interleave (two credential swaps at once). */
class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn, fn);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
