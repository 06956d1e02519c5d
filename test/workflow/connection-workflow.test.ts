import { randomUUID } from 'node:crypto';
import { ApplicationFailure, WorkflowUpdateFailedError } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { Activities } from '../../src/activities';
import { syncTaskQueue } from '../../src/domain/connection';
import { ensureSearchAttributes } from '../../src/temporal/register-search-attributes';
import { connectionWorkflow } from '../../src/workflows/connection';
import { FailureTypes } from '../../src/domain/failures';
import type { ConnectionState } from '../../src/domain/connection';
import {
  attachCredentialUpdate,
  disconnectUpdate,
  pauseUpdate,
  resumeUpdate,
  stateQuery,
  syncNowUpdate,
  type ConnectionWorkflowInput,
} from '../../src/workflows/messages';

/**
 * The workflow's orchestration alone: activities are stubs (the edge of the unit under test).
 * It runs on the shared dev server rather than the time-skipping test server, because the latter
 * cannot register custom search attributes (its OperatorService is unimplemented) and the
 * workflow upserts ConnectionStatus; intervals of a second stand in for hours instead.
 */

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  // The SDK logs every worker start at INFO; only problems belong in the test output.
  Runtime.install({ logger: new DefaultLogger('WARN') });
  env = await TestWorkflowEnvironment.createFromExistingServer({ address: process.env.TEST_TEMPORAL_ADDRESS });
  await ensureSearchAttributes(env.connection, 'default');
  bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../../src/workflows'), logger: quietLogger });
});

afterAll(async () => {
  await env?.teardown();
});

const quietLogger = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} };

function stubActivities(overrides: Partial<Activities> = {}) {
  const calls = { runSync: 0, runBeganAt: [] as number[], publishState: [] as string[], destroyCredentials: 0 };
  const activities: Activities = {
    publishState: async (_id, snapshot) => void calls.publishState.push(snapshot.status),
    activateCredential: async () => ({ accountName: 'acme' }),
    beginRun: async () => {
      calls.runSync++;
      calls.runBeganAt.push(Date.now());
    },
    syncStep: async () => ({ records: 0, requests: 1 }),
    completeRun: async () => ({ finishedAt: new Date().toISOString() }),
    failRun: async () => {},
    destroyCredentials: async () => void calls.destroyCredentials++,
    ...overrides,
  };
  return { activities, calls };
}

async function withWorker<T>(activities: Activities, fn: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = `wf-test-${randomUUID()}`;
  const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities });
  // Sync steps go to the provider's own queue (these tests use Bitrise connections).
  const syncWorker = await Worker.create({ connection: env.nativeConnection, taskQueue: syncTaskQueue(taskQueue, 'bitrise'), activities });
  return worker.runUntil(() => syncWorker.runUntil(() => fn(taskQueue)));
}

const input = (overrides: Partial<ConnectionWorkflowInput> = {}): ConnectionWorkflowInput => ({
  connectionId: randomUUID(),
  tenantId: randomUUID(),
  provider: 'bitrise',
  syncIntervalSeconds: 1,
  maxHistoryEvents: 5000,
  ...overrides,
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(50);
  }
}

const start = (taskQueue: string, args: ConnectionWorkflowInput) =>
  env.client.workflow.start(connectionWorkflow, { taskQueue, workflowId: `connection-${args.connectionId}`, args: [args] });

describe('connectionWorkflow', () => {
  it('waits for a credential, then syncs on its interval', async () => {
    const { activities, calls } = stubActivities();
    await withWorker(activities, async (tq) => {
      const handle = await start(tq, input({ syncIntervalSeconds: 2 }));
      await sleep(2500);
      expect(calls.runSync).toBe(0);
      expect((await handle.query(stateQuery)).status).toBe('awaiting_credentials');

      const state = await handle.executeUpdate(attachCredentialUpdate, { args: [{ credentialId: 'cred-1' }] });
      expect(state.status).toBe('active');
      // One immediately, then one every 2 s: never sooner (a loaded machine may only make it later).
      await waitFor(() => calls.runSync >= 3, 60_000);
      const gaps = calls.runBeganAt.slice(1).map((t, i) => t - calls.runBeganAt[i]!);
      for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(1_900);
      expect((await handle.query(stateQuery)).nextSyncAt).not.toBeNull();
    });
  });

  it('parks in needs_reconnect without polling the provider, and resumes on a new credential', async () => {
    let authOk = false;
    const { activities, calls } = stubActivities({
      syncStep: async () => {
        if (!authOk)
          throw ApplicationFailure.create({
            type: FailureTypes.authLost,
            message: 'revoked',
            details: ['token_revoked'],
            nonRetryable: true,
          });
        return { records: 0, requests: 1 };
      },
    });
    await withWorker(activities, async (tq) => {
      const handle = await start(tq, input());
      await handle.executeUpdate(attachCredentialUpdate, { args: [{ credentialId: 'c1' }] });
      await waitFor(async () => (await handle.query(stateQuery)).status === 'needs_reconnect');
      const parked = await handle.query(stateQuery);
      expect(parked.status).toBe('needs_reconnect');
      expect(parked.lastError?.code).toBe('token_revoked');
      expect(parked.nextSyncAt).toBeNull();

      const syncsWhileParked = calls.runSync;
      await sleep(3000); // three intervals
      expect(calls.runSync).toBe(syncsWhileParked);

      authOk = true;
      await handle.executeUpdate(attachCredentialUpdate, { args: [{ credentialId: 'c2' }] });
      await waitFor(() => calls.runSync > syncsWhileParked);
      const resumed = await handle.query(stateQuery);
      expect(resumed.status).toBe('active');
      expect(resumed.lastError).toBeNull();
    });
  });

  it('refuses actions the status does not allow, with a stable code', async () => {
    const { activities } = stubActivities();
    await withWorker(activities, async (tq) => {
      const handle = await start(tq, input());
      const err = await handle.executeUpdate(syncNowUpdate, { args: [{}] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
      const cause = (err as WorkflowUpdateFailedError).cause as ApplicationFailure;
      expect(cause.type).toBe(FailureTypes.refused);
      expect(cause.details?.[0]).toBe('connection_awaiting_credentials');
    });
  });

  it('rejects an invalid credential without changing status', async () => {
    const { activities } = stubActivities({
      activateCredential: async () => {
        throw ApplicationFailure.create({
          type: FailureTypes.invalidCredentials,
          message: 'Bitrise rejected the credential.',
          nonRetryable: true,
        });
      },
    });
    await withWorker(activities, async (tq) => {
      const handle = await start(tq, input());
      const err = (await handle
        .executeUpdate(attachCredentialUpdate, { args: [{ credentialId: 'bad' }] })
        .catch((e: unknown) => e)) as WorkflowUpdateFailedError;
      expect((err.cause as ApplicationFailure).type).toBe(FailureTypes.invalidCredentials);
      expect((await handle.query(stateQuery)).status).toBe('awaiting_credentials');
    });
  });

  it('pauses (no syncs), resumes, and on disconnect destroys credentials and completes', async () => {
    const { activities, calls } = stubActivities();
    await withWorker(activities, async (tq) => {
      const handle = await start(tq, input());
      await handle.executeUpdate(attachCredentialUpdate, { args: [{ credentialId: 'c1' }] });
      await waitFor(() => calls.runSync >= 1);
      expect((await handle.executeUpdate(pauseUpdate)).status).toBe('paused');
      const before = calls.runSync;
      await sleep(3000);
      expect(calls.runSync).toBe(before);
      expect((await handle.executeUpdate(resumeUpdate)).status).toBe('active');
      await waitFor(() => calls.runSync > before);

      const final = await handle.executeUpdate(disconnectUpdate);
      expect(final.status).toBe('disconnected');
      expect(await handle.result()).toMatchObject({ status: 'disconnected' });
      expect(calls.destroyCredentials).toBe(1);
      expect(calls.publishState.at(-1)).toBe('disconnected');
    });
  });

  it('continues as new before history grows large, carrying its state', async () => {
    const { activities, calls } = stubActivities();
    await withWorker(activities, async (tq) => {
      const args = input({ maxHistoryEvents: 100, syncIntervalSeconds: 1 });
      const handle = await start(tq, args);
      await handle.executeUpdate(attachCredentialUpdate, { args: [{ credentialId: 'c1' }] });
      await waitFor(
        async () => (await env.client.workflow.getHandle(handle.workflowId).describe()).runId !== handle.firstExecutionRunId,
        60_000,
      );
      const runsBefore = calls.runSync;
      await waitFor(() => calls.runSync > runsBefore + 1);
      const latest = await env.client.workflow.getHandle(handle.workflowId).describe();
      expect(latest.runId).not.toBe(handle.firstExecutionRunId);
      const state = await env.client.workflow.getHandle(handle.workflowId).query(stateQuery);
      expect(state.status).toBe('active');
      expect(state.lastSyncAt).not.toBeNull();
      // Every sync publishes once: had the state been reset, the revision would trail the sync count.
      expect(state.revision).toBeGreaterThanOrEqual(runsBefore);
      const first = await env.client.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId).describe();
      expect(first.status.name).toBe('CONTINUED_AS_NEW');
    });
  });
});

/** A promise and the function that settles it, for holding an activity until the test lets it go. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open = () => {};
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

const authLostFailure = () =>
  ApplicationFailure.create({ type: FailureTypes.authLost, message: 'revoked', details: ['token_revoked'], nonRetryable: true });

/** Fails instead of hanging when a promise never settles (a deadlocked workflow). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms))),
  ]);
}

describe('connectionWorkflow under racing updates', () => {
  it('a pause arriving during verification is not undone by the attach', async () => {
    const verifying = gate();
    const { activities } = stubActivities({
      activateCredential: async (_id, credentialId) => {
        if (credentialId === 'c2') await verifying.promise;
        return { accountName: 'acme' };
      },
    });
    await withWorker(activities, async (tq) => {
      const handle = await start(tq, input({ syncIntervalSeconds: 3600 }));
      await handle.executeUpdate(attachCredentialUpdate, { args: [{ credentialId: 'c1' }] });
      const attach = handle.executeUpdate(attachCredentialUpdate, { args: [{ credentialId: 'c2' }] });
      await sleep(500);
      expect((await handle.executeUpdate(pauseUpdate)).status).toBe('paused');
      verifying.open();
      expect((await attach).status).toBe('paused');
      await sleep(500);
      expect((await handle.query(stateQuery)).status).toBe('paused');
    });
  });

  it('a disconnect during verification wipes credentials after the activation and completes disconnected', async () => {
    const verifying = gate();
    const order: string[] = [];
    const { activities, calls } = stubActivities({
      activateCredential: async () => {
        await verifying.promise;
        order.push('activated');
        return { accountName: 'acme' };
      },
      destroyCredentials: async () => void order.push('destroyed'),
    });
    await withWorker(activities, async (tq) => {
      const handle = await start(tq, input());
      const attach = handle.executeUpdate(attachCredentialUpdate, { args: [{ credentialId: 'c1' }] }).catch((e: unknown) => e);
      await sleep(500);
      const disconnect = handle.executeUpdate(disconnectUpdate);
      await sleep(1000);
      verifying.open();
      expect((await within(disconnect, 15_000, 'disconnect')).status).toBe('disconnected');
      const err = (await attach) as WorkflowUpdateFailedError;
      expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
      expect((err.cause as ApplicationFailure).details?.[0]).toBe('connection_disconnected');
      expect(order).toEqual(['activated', 'destroyed']);
      expect(calls.publishState.at(-1)).toBe('disconnected');
      expect(await handle.result()).toMatchObject({ status: 'disconnected' });
    });
  });

  it('a disconnect arriving while continue-as-new waits for handlers does not deadlock', async () => {
    const verifying = gate();
    const { activities, calls } = stubActivities({
      activateCredential: async (_id, credentialId) => {
        if (credentialId === 'c2') await verifying.promise;
        return { accountName: 'acme' };
      },
    });
    await withWorker(activities, async (tq) => {
      const handle = await start(tq, input({ maxHistoryEvents: 100, syncIntervalSeconds: 1 }));
      await handle.executeUpdate(attachCredentialUpdate, { args: [{ credentialId: 'c1' }] });
      const attach = handle.executeUpdate(attachCredentialUpdate, { args: [{ credentialId: 'c2' }] }).catch((e: unknown) => e);
      // Syncs go on until history is due to continue as new; then the run waits for the attach.
      await waitFor(async () => (await handle.fetchHistory()).events!.length >= 100, 60_000);
      await waitFor(async () => {
        const before = calls.runSync;
        await sleep(2500);
        return calls.runSync === before;
      }, 30_000);
      const disconnect = handle.executeUpdate(disconnectUpdate);
      await sleep(500);
      verifying.open();
      expect((await within(disconnect, 15_000, 'disconnect')).status).toBe('disconnected');
      await attach;
      expect(calls.destroyCredentials).toBe(1);
      expect(await within(handle.result(), 15_000, 'the workflow')).toMatchObject({ status: 'disconnected' });
    });
  });

  it('an old token failing after a new credential was attached mid-step does not park the connection', async () => {
    const stepStarted = gate();
    const reattached = gate();
    let firstBuilds = true;
    const { activities, calls } = stubActivities({
      syncStep: async (_id, _run, step) => {
        if (step === 'builds' && firstBuilds) {
          firstBuilds = false;
          stepStarted.open();
          await reattached.promise;
          throw authLostFailure();
        }
        return { records: 0, requests: 1 };
      },
    });
    await withWorker(activities, async (tq) => {
      const handle = await start(tq, input({ syncIntervalSeconds: 3600 }));
      await handle.executeUpdate(attachCredentialUpdate, { args: [{ credentialId: 'old' }] });
      await stepStarted.promise;
      await handle.executeUpdate(attachCredentialUpdate, { args: [{ credentialId: 'new' }] });
      reattached.open();
      await waitFor(() => calls.runSync >= 2);
      await waitFor(async () => (await handle.query(stateQuery)).lastSyncAt !== null);
      const state = await handle.query(stateQuery);
      expect(state.status).toBe('active');
      expect(calls.publishState).not.toContain('needs_reconnect');
    });
  });

  it('an auth failure of the current credential still parks the connection', async () => {
    const { activities } = stubActivities({
      syncStep: async (_id, _run, step) => {
        if (step === 'builds') throw authLostFailure();
        return { records: 0, requests: 1 };
      },
    });
    await withWorker(activities, async (tq) => {
      const handle = await start(tq, input({ syncIntervalSeconds: 3600 }));
      await handle.executeUpdate(attachCredentialUpdate, { args: [{ credentialId: 'c1' }] });
      await waitFor(async () => (await handle.query(stateQuery)).status === 'needs_reconnect');
    });
  });
});

describe('connectionWorkflow recovering by itself', () => {
  it('a step that made progress before a fault runs again at once, as a fresh activity', async () => {
    let buildsCalls = 0;
    const { activities, calls } = stubActivities({
      syncStep: async (_id, _run, step) => {
        if (step === 'builds' && ++buildsCalls <= 3) return { records: 50, requests: 5, continue: true };
        return { records: 0, requests: 1 };
      },
      failRun: async () => void calls.publishState.push('failRun'),
    });
    await withWorker(activities, async (tq) => {
      const handle = await start(tq, input({ syncIntervalSeconds: 3600 }));
      await handle.executeUpdate(attachCredentialUpdate, { args: [{ credentialId: 'c1' }] });
      await waitFor(async () => (await handle.query(stateQuery)).lastSyncAt !== null);
      expect(buildsCalls).toBe(4);
      expect(calls.publishState).not.toContain('failRun');
      expect((await handle.query(stateQuery)).lastError).toBeNull();
    });
  });

  it('a provider that stays down is a durable provider_unavailable wait, not a failed run', async () => {
    let down = true;
    let buildsCalls = 0;
    let failedRuns = 0;
    const { activities } = stubActivities({
      syncStep: async (_id, _run, step) => {
        if (step === 'builds' && down) {
          buildsCalls++;
          return { records: 0, requests: 3, providerUnavailableForMs: 1000 };
        }
        return { records: 0, requests: 1 };
      },
      failRun: async () => void failedRuns++,
    });
    await withWorker(activities, async (tq) => {
      const handle = await start(tq, input({ syncIntervalSeconds: 3600 }));
      await handle.executeUpdate(attachCredentialUpdate, { args: [{ credentialId: 'c1' }] });
      let seen: ConnectionState | undefined;
      await waitFor(async () => (seen = await handle.query(stateQuery)).syncState.state === 'provider_unavailable');
      expect(seen!.syncState).toMatchObject({ resource: 'builds', until: expect.any(String) });
      // It sleeps on a timer: no sync step is pending while it waits (publishing the wait may still be).
      const described = await handle.describe();
      expect((described.raw.pendingActivities ?? []).filter((a) => a.activityType?.name === 'syncStep')).toHaveLength(0);
      await waitFor(() => buildsCalls >= 2, 10_000);
      down = false;
      await waitFor(async () => (await handle.query(stateQuery)).lastSyncAt !== null, 20_000);
      const state = await handle.query(stateQuery);
      expect(state).toMatchObject({ status: 'active', lastError: null, syncState: { state: 'idle' } });
      expect(failedRuns).toBe(0);
    });
  });

  it('a long wait for the shared budget is a durable sleep shown as paced, then the step runs again', async () => {
    let appsCalls = 0;
    const { activities } = stubActivities({
      syncStep: async (_id, _run, step) => {
        if (step === 'apps' && ++appsCalls === 1) return { records: 0, requests: 0, rateLimitedForMs: 1500, paced: true };
        return { records: 0, requests: 1 };
      },
    });
    await withWorker(activities, async (tq) => {
      const handle = await start(tq, input({ syncIntervalSeconds: 3600 }));
      await handle.executeUpdate(attachCredentialUpdate, { args: [{ credentialId: 'c1' }] });
      let seen: ConnectionState | undefined;
      await waitFor(async () => (seen = await handle.query(stateQuery)).syncState.state === 'paced');
      expect(seen!.syncState).toMatchObject({ resource: 'apps', until: expect.any(String) });
      await waitFor(async () => (await handle.query(stateQuery)).lastSyncAt !== null, 20_000);
      expect(appsCalls).toBe(2);
      expect((await handle.query(stateQuery)).syncState).toEqual({ state: 'idle' });
    });
  });

  it('a run waiting out rate limits again and again continues as new and carries on the same run', async () => {
    let appsCalls = 0;
    const runIds = { begun: [] as string[], completed: [] as string[] };
    const { activities } = stubActivities({
      beginRun: async (_id, runId) => void runIds.begun.push(runId),
      completeRun: async (_id, runId) => {
        runIds.completed.push(runId);
        return { finishedAt: new Date().toISOString() };
      },
      syncStep: async (_id, _run, step) => {
        if (step === 'apps' && ++appsCalls <= 14) return { records: 0, requests: 1, rateLimitedForMs: 200 };
        return { records: 0, requests: 1 };
      },
    });
    await withWorker(activities, async (tq) => {
      const handle = await start(tq, input({ syncIntervalSeconds: 3600, maxHistoryEvents: 100 }));
      await handle.executeUpdate(attachCredentialUpdate, { args: [{ credentialId: 'c1' }] });
      await waitFor(() => runIds.completed.length === 1, 60_000);
      expect(runIds.begun).toHaveLength(1);
      expect(runIds.completed).toEqual(runIds.begun);
      const latest = await env.client.workflow.getHandle(handle.workflowId).describe();
      expect(latest.runId).not.toBe(handle.firstExecutionRunId);
      // No run's history grew past the threshold by much: the waits continued as new.
      const first = await env.client.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId).fetchHistory();
      expect(first.events!.length).toBeLessThan(140);
      await waitFor(async () => (await env.client.workflow.getHandle(handle.workflowId).query(stateQuery)).syncState.state === 'idle');
    });
  });
});
