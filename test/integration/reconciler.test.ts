import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/api/app';
import { createConnectionService } from '../../src/api/connections-service';
import { createApiDeps, type ApiDeps } from '../../src/api/deps';
import { reconcilerWorkflowId, type ReconcileReport } from '../../src/reconciler/reconcile';
import { reconcileNowSignal } from '../../src/workflows/reconciler';
import { completeOAuth, startStack, waitFor, waitForStatus, type Stack } from '../helpers/stack';

/**
 * No connection without its workflow, and none the other way round: creating a connection while
 * Temporal is unreachable answers 503 and leaves a `provisioning` row that the reconciler
 * completes; a terminated (or lost) workflow is recreated in its row's status and keeps syncing;
 * a connection workflow with no row is ended.
 */

let stack: Stack;
let apiKey: string;
let tenantId: string;

beforeAll(async () => {
  // A long interval: the tests run the reconciler on demand, the way a worker start does.
  stack = await startStack({ env: { RECONCILE_INTERVAL_SECONDS: '3600' } });
  ({ apiKey, id: tenantId } = await stack.createTenant('Reconciler'));
});

afterAll(async () => {
  await stack?.stop();
});

const api = (method: string, path: string, body?: unknown) => stack.request(method, path, { apiKey, body });
const runs = async (id: string) => (await api('GET', `/v1/connections/${id}/runs`)).body.items as any[];
const succeeded = async (id: string) => (await runs(id)).filter((r) => r.status === 'succeeded').length;

async function lastReport(): Promise<{ finishedAt: Date; report: ReconcileReport } | undefined> {
  const [row] = await stack.sql<{ finishedAt: Date; report: ReconcileReport }[]>`
    select finished_at, report from reconciler_runs where task_queue = ${stack.env.TEMPORAL_TASK_QUEUE!}`;
  return row;
}

/** Wakes the reconciler and waits for the run that follows; returns its report. */
async function reconcileNow(): Promise<ReconcileReport> {
  const before = (await lastReport())?.report.startedAt;
  await stack.temporal.workflow.getHandle(reconcilerWorkflowId(stack.env.TEMPORAL_TASK_QUEUE!)).signal(reconcileNowSignal);
  let report: ReconcileReport | undefined;
  await waitFor(
    async () => {
      report = (await lastReport())?.report;
      return !!report && report.startedAt !== before;
    },
    30_000,
    'a reconciler run',
  );
  return report!;
}

/** Visibility is eventually consistent, so a repair may take a second run: reconcile until `done`. */
async function reconcileUntil(done: () => Promise<boolean>, what: string): Promise<ReconcileReport[]> {
  const reports: ReconcileReport[] = [];
  await waitFor(
    async () => {
      reports.push(await reconcileNow());
      return done();
    },
    60_000,
    what,
  );
  return reports;
}

const describeStatus = async (workflowId: string) => (await stack.temporal.workflow.getHandle(workflowId).describe()).status.name;

async function connectedBitrise(): Promise<any> {
  const conn = (await api('POST', '/v1/connections', { provider: 'bitrise' })).body;
  const token = stack.bitrise.control.createToken();
  expect((await api('PUT', `/v1/connections/${conn.id}/credentials`, { token })).status).toBe(200);
  await waitFor(async () => (await succeeded(conn.id)) >= 1, 60_000, 'first sync');
  return conn;
}

it('runs at worker start-up and reports on /readyz', async () => {
  await waitFor(async () => !!(await lastReport()), 30_000, 'the start-up reconcile');
  const ready = await stack.request('GET', '/readyz');
  expect(ready.status).toBe(200);
  expect(ready.body.reconciler).toMatchObject({
    lastRunAt: expect.any(String),
    provisioned: expect.any(Number),
    recreated: expect.any(Number),
    ended: expect.any(Number),
  });
  expect([...stack.worker.output].join('')).toContain('reconciler: run finished');
});

describe('Temporal unreachable when a connection is created', () => {
  let deadDeps: ApiDeps;
  let deadApp: FastifyInstance;
  let dead: Connection;
  let deadUrl: string;
  /** Calls the API whose Temporal is unreachable. */
  const deadApi = async (method: string, path: string, body?: unknown) => {
    const headers: Record<string, string> = { authorization: `Bearer ${apiKey}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${deadUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as any };
  };

  beforeAll(async () => {
    // An API whose Temporal is unreachable (nothing listens on port 1); its Postgres is the real one.
    const deps = await createApiDeps(stack.config);
    dead = Connection.lazy({ address: '127.0.0.1:1' });
    const temporal = new Client({ connection: dead, namespace: 'default' });
    deadDeps = {
      ...deps,
      temporal,
      connections: createConnectionService({ config: deps.config, sql: deps.sql, temporal, vault: deps.vault, providers: deps.providers }),
    };
    deadApp = await buildApp(deadDeps);
    await deadApp.listen({ port: 0, host: '127.0.0.1' });
    const address = deadApp.server.address();
    deadUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  });

  afterAll(async () => {
    await deadApp?.close();
    await deadDeps?.close();
    await dead?.close().catch(() => undefined);
  });

  it('answers 503 temporal_unavailable, leaves a provisioning row the reconciler later completes', async () => {
    const res = await deadApi('POST', '/v1/connections', { provider: 'bitbucket', name: 'made while Temporal was down' });
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('temporal_unavailable');

    const [row] = await stack.sql<{ id: string; status: string; workflowId: string }[]>`
      select id, status, workflow_id from connections where tenant_id = ${tenantId} and name = 'made while Temporal was down'`;
    expect(row!.status).toBe('provisioning');
    // The read path never needed Temporal, and the API shows the status; actions wait for it.
    const view = await deadApi('GET', `/v1/connections/${row!.id}`);
    expect(view.status).toBe(200);
    expect(view.body.status).toBe('provisioning');
    const authorize = await api('POST', `/v1/connections/${row!.id}/authorize`);
    expect(authorize.status).toBe(409);
    expect(authorize.body.error.code).toBe('connection_provisioning');

    const reports = await reconcileUntil(
      async () => (await api('GET', `/v1/connections/${row!.id}`)).body.status !== 'provisioning',
      'provisioned',
    );
    expect(reports.reduce((n, r) => n + r.provisioned, 0)).toBe(1);
    expect((await api('GET', `/v1/connections/${row!.id}`)).body.status).toBe('awaiting_credentials');
    expect(await describeStatus(row!.workflowId)).toBe('RUNNING');

    // A normal connection from here on.
    await completeOAuth(stack, apiKey, row!.id);
    await waitFor(async () => (await succeeded(row!.id)) >= 1, 60_000, 'first sync of the late workflow');
    expect((await api('GET', `/v1/connections/${row!.id}`)).body.status).toBe('active');
  });

  it('maps gRPC UNAVAILABLE on actions to 503 temporal_unavailable too', async () => {
    const conn = (await api('POST', '/v1/connections', { provider: 'bitrise' })).body;
    // awaiting_credentials cannot be paused: refused from the row without asking Temporal.
    expect((await deadApi('POST', `/v1/connections/${conn.id}/pause`)).status).toBe(409);
    const put = await deadApi('PUT', `/v1/connections/${conn.id}/credentials`, { token: stack.bitrise.control.createToken() });
    expect(put.status).toBe(503);
    expect(put.body.error.code).toBe('temporal_unavailable');
  }, 90_000);
});

describe('lost workflows', () => {
  it('a terminated workflow is recreated in its row’s status, with its cursors, and keeps syncing', async () => {
    const active = await connectedBitrise();
    const paused = await connectedBitrise();
    expect((await api('POST', `/v1/connections/${paused.id}/pause`)).status).toBe(200);
    const cursors = async (id: string) =>
      (await stack.sql`select count(*)::int as n from sync_cursors where connection_id = ${id}`)[0]!.n as number;
    const cursorsBefore = await cursors(active.id);
    expect(cursorsBefore).toBeGreaterThan(0);

    for (const c of [active, paused]) await stack.temporal.workflow.getHandle(c.workflowId).terminate('test: workflow lost');
    const reports = await reconcileUntil(
      async () => (await describeStatus(active.workflowId)) === 'RUNNING' && (await describeStatus(paused.workflowId)) === 'RUNNING',
      'both workflows recreated',
    );
    expect(reports.reduce((n, r) => n + r.recreated, 0)).toBe(2);
    expect(stack.worker.output.join('')).toContain('reconciler: started a missing connection workflow');

    // Same status as before, same workflow id; the recreated workflow answers and keeps syncing.
    expect((await api('GET', `/v1/connections/${active.id}`)).body.status).toBe('active');
    const before = await succeeded(active.id);
    expect((await api('POST', `/v1/connections/${active.id}/sync`)).status).toBe(202);
    await waitFor(async () => (await succeeded(active.id)) > before, 60_000, 'a sync by the recreated workflow');
    expect(await cursors(active.id)).toBe(cursorsBefore);

    const p = await waitForStatus(stack, apiKey, paused.id, 'paused');
    expect(p.status).toBe('paused');
    const sync = await api('POST', `/v1/connections/${paused.id}/sync`);
    expect(sync.status).toBe(409);
    expect(sync.body.error.code).toBe('connection_paused');
    const resumed = await api('POST', `/v1/connections/${paused.id}/resume`);
    expect(resumed.status).toBe(200);
    expect(resumed.body.status).toBe('active');
  });

  it('a connection workflow with no row is ended', async () => {
    const ghost = randomUUID();
    const handle = await stack.temporal.workflow.start('connectionWorkflow', {
      workflowId: `connection-${ghost}`,
      taskQueue: stack.env.TEMPORAL_TASK_QUEUE!,
      args: [{ connectionId: ghost, tenantId, provider: 'bitrise', syncIntervalSeconds: 3600, maxHistoryEvents: 5000 }],
    });
    const reports = await reconcileUntil(async () => (await describeStatus(handle.workflowId)) === 'TERMINATED', 'the ghost ended');
    expect(reports.reduce((n, r) => n + r.ended, 0)).toBe(1);
    const ready = await stack.request('GET', '/readyz');
    expect(ready.body.reconciler.ended).toBeGreaterThanOrEqual(0);
    expect(ready.body.reconciler.lastRunAt).toBe((await lastReport())!.finishedAt.toISOString());
  });
});
