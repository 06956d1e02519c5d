import {
  CancellationScope,
  allHandlersFinished,
  condition,
  continueAsNew,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  uuid4,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { createActivities } from '../activities';
import { syncResources, syncTaskQueue, type ConnectionAction, type ConnectionState, type SyncState } from '../domain/connection';
import { FailureTypes } from '../domain/failures';
import { connectionStatusKey, syncStateKey } from '../temporal/search-attributes';
import {
  backfillAfter,
  credentialArgumentProblem,
  credentialFailure,
  describeSyncFailure,
  isDue,
  nextSyncAfter,
  providerUnavailableWaitMs,
  refusalOf,
  syncRequestProblem,
  type SyncFailure,
} from './decisions';
import {
  attachCredentialUpdate,
  disconnectUpdate,
  pauseUpdate,
  resumeUpdate,
  stateQuery,
  syncNowUpdate,
  VERIFICATION_TIMEOUT_MS,
  type CarriedState,
  type ConnectionWorkflowInput,
  type ResumeRun,
  type SyncRequest,
} from './messages';

/**
 * patched() ids, one per change of the commands this workflow issues (see README, "Changing the
 * workflow safely"). Each is asked only on the path it changes, so other histories stay as they were.
 */
export const PATCHES = {
  /** A step's `continue` (progress, then a fault) runs it again; `providerUnavailableForMs` waits durably. */
  stepRecovery: 'sync-step-recovery',
  /** A run waiting out a rate limit or an outage continues as new when history is due, and carries on after. */
  waitContinueAsNew: 'wait-continue-as-new',
  /** attachCredential looks again after verification: a pause or disconnect meanwhile wins. */
  attachRecheck: 'attach-recheck-after-verify',
  /** Disconnect wipes credentials only after a verification in flight has ended. */
  disconnectAwaitsVerification: 'disconnect-awaits-verification',
  /** An auth failure parks the connection only if no newer credential arrived while the step ran. */
  parkCurrentCredentialOnly: 'park-current-credential-only',
} as const;

/** Thrown out of a run's scope to hand the run over to the next run (continue-as-new). */
class HandOver extends Error {
  constructor(readonly resume: ResumeRun) {
    super('handed over to the next run');
    this.name = 'HandOver';
  }
}

type Activities = ReturnType<typeof createActivities>;

// Bookkeeping against our own database: retried until it works, because an outage of Postgres
// must delay the connection, never break it. Each is one short statement: an attempt lost with its
// worker is given up after 10 s, and retries come at most 5 s apart, so the connection moves on
// within seconds of Postgres (or a worker) coming back. (Activity options only: the commands this
// workflow issues, and so replay, are unchanged.)
const bookkeeping = proxyActivities<Activities>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '5 seconds' },
});

// Verifying a credential has a customer waiting on the HTTP response, so it gives up quickly.
// Its schedule-to-close timeout bounds all attempts together, and the API waits that long (plus a
// margin) before answering 503, so a verification never outlives the caller's wait unnoticed.
const verification = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  scheduleToCloseTimeout: VERIFICATION_TIMEOUT_MS,
  retry: { initialInterval: '1 second', maximumAttempts: 3, nonRetryableErrorTypes: [FailureTypes.invalidCredentials] },
});

// A sync step heartbeats (every 5 s) so pause/disconnect can cancel it and a dead worker's step is
// taken over 15 s after its last heartbeat. Provider faults are retried in place and long waits are
// durable workflow sleeps, so what reaches this retry policy is a dead worker, a database outage or
// a bug: retried at most 10 s apart (a worker or Postgres that is back is used at once), for about a
// quarter of an hour before the run is given up.
const SYNC_STEP_OPTIONS = {
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '15 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '10 seconds',
    maximumAttempts: 100,
    nonRetryableErrorTypes: [FailureTypes.authLost, FailureTypes.connectionMissing, FailureTypes.stalled],
  },
} satisfies ActivityOptions;

const nowIso = () => new Date().toISOString();

function initialState(input: ConnectionWorkflowInput): CarriedState {
  // `initial` (a workflow the reconciler recreated) changes values only, never the commands issued.
  const from = input.initial;
  return {
    state: {
      connectionId: input.connectionId,
      tenantId: input.tenantId,
      provider: input.provider,
      status: from?.status ?? 'awaiting_credentials',
      syncIntervalSeconds: input.syncIntervalSeconds,
      lastSyncAt: from?.lastSyncAt ?? null,
      nextSyncAt: from?.status === 'active' ? from.nextSyncAt : null,
      lastError: from?.lastError ?? null,
      currentRunId: null,
      revision: from?.revision ?? 0,
      syncState: { state: 'idle' },
    },
    syncRequested: false,
    pendingBackfill: [],
  };
}

/**
 * One connection, for its whole life: wait for a credential, then sync on a schedule (or on
 * demand) until access is lost (park in needs_reconnect, no polling), paused, or disconnected.
 * All I/O is in activities; the workflow only decides and remembers. What it remembers across
 * continue-as-new is the one plain object `carried`; the rest lives only as long as this run.
 */
export async function connectionWorkflow(input: ConnectionWorkflowInput): Promise<ConnectionState> {
  const carried: CarriedState = input.carried ? { pendingBackfill: [], ...input.carried } : initialState(input);
  const { state } = carried;
  const run = {
    disconnectRequested: false,
    // Set once the disconnected state is in the database, so the API reads what it just caused.
    disconnectPublished: false,
    // Every handler bumps this, so the main loop wakes on any change without enumerating them.
    changes: 0,
    runningSync: undefined as CancellationScope | undefined,
    // What the search attributes say now: upserted only on change, each upsert is a history event.
    published: {} as { status?: string; syncState?: string },
    /** Verifications in flight: disconnect waits for them before wiping credentials. */
    verifying: 0,
    /** Grows with every credential adopted: tells an old token's auth failure from the current one's. */
    credentialEpoch: 0,
  };
  const credentialLock = new Mutex();
  const syncing = proxyActivities<Activities>({ ...SYNC_STEP_OPTIONS, taskQueue: syncTaskQueue(workflowInfo().taskQueue, input.provider) });

  const view = (): ConnectionState => ({ ...state });
  const refuseUnless = (action: ConnectionAction) => {
    const refused = refusalOf(action, state.status, run.disconnectRequested);
    if (refused) throw refused;
  };

  async function publish(): Promise<void> {
    state.revision += 1;
    run.changes += 1;
    if (run.published.status !== state.status || run.published.syncState !== state.syncState.state) {
      upsertSearchAttributes([
        { key: connectionStatusKey, value: state.status },
        { key: syncStateKey, value: state.syncState.state },
      ]);
      run.published = { status: state.status, syncState: state.syncState.state };
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
        run.verifying += 1;
        try {
          await verification.activateCredential(state.connectionId, credentialId);
        } catch (err) {
          throw credentialFailure(err);
        } finally {
          run.verifying -= 1;
        }
        // Verification took a while: what happened meanwhile wins over this update.
        if ((run.disconnectRequested || state.status === 'paused') && patched(PATCHES.attachRecheck)) {
          // Disconnect wipes the credential just activated once this handler is done.
          if (run.disconnectRequested) refuseUnless('set_credentials');
          // Paused meanwhile: the credential is adopted, the connection stays paused until resumed.
          run.credentialEpoch += 1;
          state.lastError = null;
          carried.syncRequested = true;
          await publish();
          return view();
        }
        run.credentialEpoch += 1;
        state.status = 'active';
        state.lastError = null;
        carried.syncRequested = true;
        await publish();
        return view();
      }),
    {
      validator: (arg) => {
        const problem = credentialArgumentProblem(arg);
        if (problem) throw problem;
        refuseUnless('set_credentials');
      },
    },
  );

  setHandler(
    syncNowUpdate,
    async (request) => {
      carried.pendingBackfill = backfillAfter(state.provider, carried.pendingBackfill ?? [], request);
      carried.syncRequested = true;
      run.changes += 1;
      return view();
    },
    {
      validator: (request: SyncRequest | undefined) => {
        refuseUnless('sync');
        const problem = syncRequestProblem(state.provider, request);
        if (problem) throw problem;
      },
    },
  );

  setHandler(
    pauseUpdate,
    async () => {
      state.status = 'paused';
      state.nextSyncAt = null;
      run.runningSync?.cancel();
      await publish();
      return view();
    },
    { validator: () => refuseUnless('pause') },
  );

  setHandler(
    resumeUpdate,
    async () => {
      state.status = 'active';
      state.nextSyncAt = nextSyncAfter(state.lastSyncAt, state.syncIntervalSeconds, Date.now());
      await publish();
      return view();
    },
    { validator: () => refuseUnless('resume') },
  );

  setHandler(
    disconnectUpdate,
    async () => {
      run.disconnectRequested = true;
      run.changes += 1;
      run.runningSync?.cancel();
      await condition(() => run.disconnectPublished);
      return view();
    },
    { validator: () => refuseUnless('disconnect') },
  );

  const shouldContinueAsNew = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength >= input.maxHistoryEvents;

  if (!input.carried) await publish();
  else run.published = { status: state.status, syncState: state.syncState.state };

  while (!run.disconnectRequested) {
    if (shouldContinueAsNew()) {
      // Handlers finish first so no update is lost across the boundary. A disconnect's handler
      // finishes only after the code below the loop, so it must end this wait too (or deadlock).
      await condition(() => allHandlersFinished() || run.disconnectRequested);
      if (run.disconnectRequested) break;
      await continueAsNew<typeof connectionWorkflow>({
        ...input,
        carried: {
          state: view(),
          syncRequested: carried.syncRequested,
          pendingBackfill: carried.pendingBackfill,
          ...(carried.resumeRun ? { resumeRun: carried.resumeRun } : {}),
        },
      });
    }

    // A run handed over by the previous run carries on; paused or parked meanwhile, it ends here.
    if (carried.resumeRun) {
      if (state.status === 'active') await syncOnce(carried.resumeRun);
      else await endHandedOverRun();
      continue;
    }

    if (state.status === 'active' && (carried.syncRequested || isDue(state.nextSyncAt, Date.now()))) {
      carried.syncRequested = false;
      await syncOnce();
      continue;
    }

    const seen = run.changes;
    const timeout = state.status === 'active' && state.nextSyncAt ? Math.max(1, Date.parse(state.nextSyncAt) - Date.now()) : undefined;
    const woken = () => run.changes !== seen || run.disconnectRequested || shouldContinueAsNew();
    if (timeout === undefined) await condition(woken);
    else await condition(woken, timeout);
  }

  if (carried.resumeRun) await endHandedOverRun();
  if (run.verifying > 0 && patched(PATCHES.disconnectAwaitsVerification)) await condition(() => run.verifying === 0);
  await bookkeeping.destroyCredentials(state.connectionId);
  state.status = 'disconnected';
  state.nextSyncAt = null;
  state.currentRunId = null;
  await publish();
  run.disconnectPublished = true;
  await condition(allHandlersFinished);
  return view();

  /**
   * One run: account check, then each resource in order. A long rate-limit pause, or a provider
   * that keeps failing, is a durable sleep here (visible as syncState), not an activity holding a
   * worker slot. `resume` carries on a run the previous run handed over at continue-as-new.
   */
  async function syncOnce(resume?: ResumeRun): Promise<void> {
    const runId = resume?.runId ?? uuid4();
    const backfill = resume ? resume.backfill : (carried.pendingBackfill ?? []);
    if (!resume) carried.pendingBackfill = [];
    carried.resumeRun = undefined;
    state.currentRunId = runId;
    run.changes += 1;
    // The credential epoch when the step now running started.
    const stepEpoch = { value: run.credentialEpoch };
    let outcome: ({ ok: true; finishedAt: string } | ({ ok: false } & SyncFailure)) | undefined;
    let handedOver = false;
    try {
      run.runningSync = new CancellationScope();
      outcome = await run.runningSync.run(async () => {
        if (!resume) await bookkeeping.beginRun(state.connectionId, runId, backfill);
        const steps = ['account', ...syncResources(state.provider)];
        const from = resume ? Math.max(0, steps.indexOf(resume.step)) : 0;
        for (const step of steps.slice(from)) {
          const resumed = resume && step === resume.step ? resume : undefined;
          if (resumed?.wait) {
            const left = Date.parse(resumed.wait.until) - Date.now();
            if (left > 0) await sleep(left);
          }
          await runStep(runId, step, backfill, stepEpoch);
        }
        return { ok: true as const, finishedAt: (await bookkeeping.completeRun(state.connectionId, runId)).finishedAt };
      });
    } catch (err) {
      if (err instanceof HandOver) {
        carried.resumeRun = err.resume;
        handedOver = true;
      } else {
        outcome = { ok: false, ...describeSyncFailure(err, nowIso()) };
        // A cancelled or failed backfill is owed again next run.
        carried.pendingBackfill = [...new Set([...backfill, ...(carried.pendingBackfill ?? [])])];
      }
    } finally {
      run.runningSync = undefined;
      if (!handedOver) {
        state.currentRunId = null;
        state.syncState = { state: 'idle' };
      }
    }
    // Handed over: the run, its syncState and currentRunId go on in the next run.
    if (handedOver || !outcome) return;

    if (!outcome.ok) {
      const { error, stalled } = outcome;
      await CancellationScope.nonCancellable(() => bookkeeping.failRun(state.connectionId, runId, error, stalled ? 'stalled' : 'failed'));
    }
    if (outcome.ok) {
      state.lastSyncAt = outcome.finishedAt;
      state.lastError = null;
    } else if (!outcome.cancelled) {
      // The token that failed was replaced while the step ran: the new one's attach asked for a run.
      const superseded = outcome.authLost && stepEpoch.value !== run.credentialEpoch && patched(PATCHES.parkCurrentCredentialOnly);
      if (superseded) carried.syncRequested = true;
      else {
        state.lastError = outcome.error;
        if (outcome.authLost && state.status === 'active') state.status = 'needs_reconnect';
      }
    }
    state.nextSyncAt =
      state.status === 'active' ? nextSyncAfter(outcome.ok ? outcome.finishedAt : nowIso(), state.syncIntervalSeconds, Date.now()) : null;
    await publish();
  }

  /**
   * One step, run again after each durable wait it asks for, and at once when it made progress
   * before a fault (`continue`: a fresh activity, so a fresh retry budget).
   */
  async function runStep(runId: string, step: string, backfill: string[], stepEpoch: { value: number }): Promise<void> {
    await setSyncState({ state: 'running', resource: step });
    let unavailableWaits = 0;
    for (;;) {
      stepEpoch.value = run.credentialEpoch;
      const result = await syncing.syncStep(state.connectionId, runId, step);
      if (result.continue && patched(PATCHES.stepRecovery)) {
        if (shouldContinueAsNew() && patched(PATCHES.waitContinueAsNew)) throw new HandOver({ runId, step, backfill });
        continue;
      }
      let waitMs: number;
      let wait: Extract<SyncState, { until: string }>;
      if (result.providerUnavailableForMs && patched(PATCHES.stepRecovery)) {
        waitMs = providerUnavailableWaitMs(result.providerUnavailableForMs, unavailableWaits++);
        wait = { state: 'provider_unavailable', resource: step, until: new Date(Date.now() + waitMs).toISOString() };
      } else if (result.rateLimitedForMs) {
        // Same commands either way; `paced` only tells operators the wait is for our own shared budget.
        waitMs = result.rateLimitedForMs;
        wait = { state: result.paced ? 'paced' : 'rate_limited', resource: step, until: new Date(Date.now() + waitMs).toISOString() };
      } else break;
      await setSyncState(wait);
      // A long wait, again and again, would grow this run's history without bound: hand over.
      if (shouldContinueAsNew() && patched(PATCHES.waitContinueAsNew)) throw new HandOver({ runId, step, backfill, wait });
      await sleep(waitMs);
      if (wait.state === 'provider_unavailable') await setSyncState({ state: 'running', resource: step });
    }
  }

  /** A handed-over run that cannot carry on (paused, parked or disconnected meanwhile) ends cancelled. */
  async function endHandedOverRun(): Promise<void> {
    const resume = carried.resumeRun;
    if (!resume) return;
    carried.resumeRun = undefined;
    carried.pendingBackfill = [...new Set([...resume.backfill, ...(carried.pendingBackfill ?? [])])];
    const error = { code: 'sync_cancelled', message: 'The sync was cancelled.', at: nowIso() };
    await CancellationScope.nonCancellable(() => bookkeeping.failRun(state.connectionId, resume.runId, error, 'failed'));
    state.currentRunId = null;
    state.syncState = { state: 'idle' };
    await publish();
  }

  async function setSyncState(next: SyncState): Promise<void> {
    state.syncState = next;
    await publish();
  }
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
