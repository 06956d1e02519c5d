import path from 'node:path';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { startStack, waitFor, type Stack } from '../helpers/stack';

/**
 * Found by the chaos suite: while a connection's workflow task keeps failing or timing out (a bad
 * deploy, or workers so starved that every task overruns its timeout), Temporal refuses updates
 * with FAILED_PRECONDITION. The API answered that with a 500; it is our dependency being briefly
 * unable to act, so it is a 503 the caller retries, and the connection works again once a good
 * worker takes the task.
 */

let stack: Stack;
let apiKey: string;

beforeAll(async () => {
  // The in-process bad worker logs only what matters.
  Runtime.install({ logger: new DefaultLogger('WARN') });
  stack = await startStack();
  ({ apiKey } = await stack.createTenant('Failing workflow tasks'));
});

afterAll(async () => {
  await stack?.stop();
});

const api = (method: string, urlPath: string, body?: unknown) => stack.request(method, urlPath, { apiKey, body });

it('actions answer 503 workflow_unavailable while the workflow task is failing, and work once a good worker is back', async () => {
  const conn = (await api('POST', '/v1/connections', { provider: 'bitrise' })).body;
  expect((await api('PUT', `/v1/connections/${conn.id}/credentials`, { token: stack.bitrise.control.createToken() })).status).toBe(200);
  await waitFor(
    async () => (await api('GET', `/v1/connections/${conn.id}/runs`)).body.items.some((r: any) => r.status === 'succeeded'),
    60_000,
    'the first sync',
  );

  await stack.worker.kill();
  const connection = await NativeConnection.connect({ address: stack.env.TEMPORAL_ADDRESS! });
  const badWorker = await Worker.create({
    connection,
    taskQueue: stack.env.TEMPORAL_TASK_QUEUE!,
    workflowsPath: path.join(__dirname, '../fixtures/workflows/bad-deploy.ts'),
    // Tasks of the dead worker's cache come to this one at once.
    stickyQueueScheduleToStartTimeout: '1 second',
  });
  const handle = stack.temporal.workflow.getHandle(conn.workflowId);
  try {
    await badWorker.runUntil(async () => {
      // A first action gives the bad worker a task to fail; then Temporal holds the task as failed.
      const first = await api('POST', `/v1/connections/${conn.id}/pause`);
      expect(first.status).toBe(503);
      await waitFor(async () => ((await handle.describe()).raw.pendingWorkflowTask?.attempt ?? 0) >= 2, 60_000, 'a failed workflow task');
      const refused = await api('POST', `/v1/connections/${conn.id}/pause`);
      expect(refused.status).toBe(503);
      expect(refused.body.error.code).toBe('workflow_unavailable');
    });
  } finally {
    await connection.close();
  }

  await stack.worker.start();
  await waitFor(
    async () => (await api('POST', `/v1/connections/${conn.id}/pause`)).status === 200,
    90_000,
    'a pause once a good worker is back',
  );
  expect((await api('GET', `/v1/connections/${conn.id}`)).body.status).toBe('paused');
});
