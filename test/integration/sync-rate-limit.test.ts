import { startStack, waitFor, type Stack } from '../helpers/stack';

/**
 * With no inline waiting allowed, every rate-limit pause leaves the activity and becomes a
 * durable sleep in the workflow: the connection shows it, and the run completes afterwards.
 */

let stack: Stack;
let apiKey: string;

beforeAll(async () => {
  stack = await startStack({
    bitrise: { seed: { organizations: 1, appsPerOrganization: 1, buildsPerApp: 5, pipelinesPerApp: 1 } },
    env: { SYNC_MAX_INLINE_RATE_LIMIT_WAIT_SECONDS: '0', SYNC_RATE_LIMIT_BACKOFF_SECONDS: '3' },
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

  // The workflow sits on a timer, not an activity: nothing is running for it meanwhile.
  const described = await stack.temporal.workflow.getHandle(conn.workflowId).describe();
  expect(described.raw.pendingActivities ?? []).toHaveLength(0);

  await waitFor(async () => (await api('GET', `/v1/connections/${conn.id}/runs`)).body.items[0]?.status === 'succeeded', 60_000);
  const [run] = (await api('GET', `/v1/connections/${conn.id}/runs`)).body.items;
  expect(run.rateLimitWaits).toBe(1);
  expect((await api('GET', `/v1/connections/${conn.id}`)).body.syncState).toEqual({ state: 'idle' });
});
