import { syncStateKey } from '../../src/temporal/search-attributes';
import { startStack, waitFor, type Stack } from '../helpers/stack';

/**
 * A provider that slows us down. With no inline waiting allowed, every rate-limit pause leaves the
 * activity and becomes a durable sleep in the workflow; a provider that stops answering makes the
 * run `stalled` instead of leaving it silently running.
 */

let stack: Stack;
let apiKey: string;

beforeAll(async () => {
  stack = await startStack({
    bitrise: { seed: { organizations: 1, appsPerOrganization: 1, buildsPerApp: 5, pipelinesPerApp: 1 } },
    env: {
      SYNC_MAX_INLINE_RATE_LIMIT_WAIT_SECONDS: '0',
      SYNC_RATE_LIMIT_BACKOFF_SECONDS: '3',
      SYNC_STALL_TIMEOUT_SECONDS: '10',
      SYNC_REQUEST_RETRY_SECONDS: '1',
      SYNC_PROVIDER_UNAVAILABLE_WAIT_SECONDS: '3',
    },
  });
  ({ apiKey } = await stack.createTenant('Rate limits'));
});

afterAll(async () => {
  await stack?.stop();
});

it('a long rate-limit pause is a durable sleep visible on the connection, then the run completes', async () => {
  const api = (method: string, path: string, body?: unknown) => stack.request(method, path, { apiKey, body });
  const conn = (await api('POST', '/v1/connections', { provider: 'bitrise' })).body;
  stack.bitrise.control.injectFaults({ status: 429, count: 1, pathPrefix: '/apps' });
  expect((await api('PUT', `/v1/connections/${conn.id}/credentials`, { token: stack.bitrise.control.createToken() })).status).toBe(200);

  let seen: any;
  await waitFor(async () => (seen = (await api('GET', `/v1/connections/${conn.id}`)).body).syncState.state === 'rate_limited', 30_000);
  expect(seen.syncState).toMatchObject({ resource: 'apps', until: expect.any(String) });
  expect(Date.parse(seen.syncState.until)).toBeGreaterThan(Date.now());

  // The workflow sits on a timer, not an activity: nothing is running for it meanwhile, and
  // operators find it with `temporal workflow list --query 'SyncState="rate_limited"'`.
  const described = await stack.temporal.workflow.getHandle(conn.workflowId).describe();
  expect((described.raw.pendingActivities ?? []).filter((a) => a.activityType?.name === 'syncStep')).toHaveLength(0);
  expect(described.typedSearchAttributes.get(syncStateKey)).toBe('rate_limited');

  await waitFor(async () => (await api('GET', `/v1/connections/${conn.id}/runs`)).body.items[0]?.status === 'succeeded', 60_000);
  const [run] = (await api('GET', `/v1/connections/${conn.id}/runs`)).body.items;
  expect(run.rateLimitWaits).toBe(1);
  // The workflow publishes `idle` right after closing the run.
  await waitFor(async () => (await api('GET', `/v1/connections/${conn.id}`)).body.syncState.state === 'idle');
});

it('a run that commits nothing for too long is flagged stalled, on the run and the connection', async () => {
  const api = (method: string, path: string, body?: unknown) => stack.request(method, path, { apiKey, body });
  const conn = (await api('POST', '/v1/connections', { provider: 'bitrise' })).body;
  expect((await api('PUT', `/v1/connections/${conn.id}/credentials`, { token: stack.bitrise.control.createToken() })).status).toBe(200);
  await waitFor(async () => (await api('GET', `/v1/connections/${conn.id}/runs`)).body.items[0]?.status === 'succeeded', 60_000);

  // Every answer now takes longer than the stall timeout.
  stack.bitrise.control.setLatency(15_000);
  try {
    await api('POST', `/v1/connections/${conn.id}/sync`);
    await waitFor(async () => (await api('GET', `/v1/connections/${conn.id}/runs`)).body.items[0]?.status === 'stalled', 60_000);
  } finally {
    stack.bitrise.control.setLatency(0);
  }
  const [run] = (await api('GET', `/v1/connections/${conn.id}/runs`)).body.items;
  expect(run.error).toMatchObject({ code: 'sync_stalled' });
  let after: any;
  await waitFor(async () => (after = (await api('GET', `/v1/connections/${conn.id}`)).body).lastError !== null);
  expect(after).toMatchObject({ status: 'active', lastError: { code: 'sync_stalled' }, syncState: { state: 'idle' } });
  expect(after.nextSyncAt).not.toBeNull();
});

it('a provider that stays down is a durable provider_unavailable wait, not a failed run, and the run completes when it is back', async () => {
  const api = (method: string, path: string, body?: unknown) => stack.request(method, path, { apiKey, body });
  const conn = (await api('POST', '/v1/connections', { provider: 'bitrise' })).body;
  expect((await api('PUT', `/v1/connections/${conn.id}/credentials`, { token: stack.bitrise.control.createToken() })).status).toBe(200);
  await waitFor(async () => (await api('GET', `/v1/connections/${conn.id}/runs`)).body.items[0]?.status === 'succeeded', 60_000);

  stack.bitrise.control.injectFaults({ status: 503, count: 1_000_000, pathPrefix: '/apps' });
  try {
    await api('POST', `/v1/connections/${conn.id}/sync`);
    let seen: any;
    await waitFor(
      async () => (seen = (await api('GET', `/v1/connections/${conn.id}`)).body).syncState.state === 'provider_unavailable',
      60_000,
    );
    expect(seen.syncState).toMatchObject({ resource: 'apps', until: expect.any(String) });
    expect(seen.status).toBe('active');
    // A timer, not an activity: no worker slot is held while the provider is down.
    const described = await stack.temporal.workflow.getHandle(conn.workflowId).describe();
    expect((described.raw.pendingActivities ?? []).filter((a) => a.activityType?.name === 'syncStep')).toHaveLength(0);
    expect(described.typedSearchAttributes.get(syncStateKey)).toBe('provider_unavailable');
    expect((await api('GET', `/v1/connections/${conn.id}/runs`)).body.items[0].status).toBe('running');
  } finally {
    stack.bitrise.control.reset();
  }
  await waitFor(async () => (await api('GET', `/v1/connections/${conn.id}/runs`)).body.items[0]?.status === 'succeeded', 60_000);
  const runs = (await api('GET', `/v1/connections/${conn.id}/runs`)).body.items;
  expect(runs.map((r: any) => r.status)).toEqual(['succeeded', 'succeeded']);
  await waitFor(async () => (await api('GET', `/v1/connections/${conn.id}`)).body.syncState.state === 'idle');
  expect((await api('GET', `/v1/connections/${conn.id}`)).body.lastError).toBeNull();
});
