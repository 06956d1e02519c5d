import { randomUUID } from 'node:crypto';
import { ApplicationFailure, WorkflowUpdateFailedError } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { Activities } from '../../src/activities';
import { syncTaskQueue } from '../../src/domain/connection';
import { ensureSearchAttributes } from '../../src/temporal/register-search-attributes';
import { connectionWorkflow } from '../../src/workflows/connection';
import {
  FailureTypes,
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
  const calls = { runSync: 0, publishState: [] as string[], destroyCredentials: 0 };
  const activities: Activities = {
    publishState: async (_id, snapshot) => void calls.publishState.push(snapshot.status),
    activateCredential: async () => ({ accountName: 'acme' }),
    beginRun: async () => void calls.runSync++,
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
      await waitFor(() => calls.runSync === 1);
      await sleep(5000);
      // One immediately, then one every 2 s.
      expect(calls.runSync).toBeGreaterThanOrEqual(3);
      expect(calls.runSync).toBeLessThanOrEqual(4);
      expect((await handle.query(stateQuery)).nextSyncAt).not.toBeNull();
    });
  });

  it('parks in needs_reconnect without polling the provider, and resumes on a new credential', async () => {
    let authOk = false;
    const { activities, calls } = stubActivities({
      syncStep: async () => {
        if (!authOk) throw ApplicationFailure.create({ type: FailureTypes.authLost, message: 'revoked', details: ['token_revoked'], nonRetryable: true });
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
        throw ApplicationFailure.create({ type: FailureTypes.invalidCredentials, message: 'Bitrise rejected the credential.', nonRetryable: true });
      },
    });
    await withWorker(activities, async (tq) => {
      const handle = await start(tq, input());
      const err = (await handle.executeUpdate(attachCredentialUpdate, { args: [{ credentialId: 'bad' }] }).catch((e: unknown) => e)) as WorkflowUpdateFailedError;
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
      await waitFor(async () => (await env.client.workflow.getHandle(handle.workflowId).describe()).runId !== handle.firstExecutionRunId, 60_000);
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
