import { stateQuery } from '../../src/workflows/messages';
import { startStack, tenantApi, waitFor, type Stack } from '../helpers/stack';

/**
 * The worker keeps at most WORKER_MAX_CACHED_WORKFLOWS connection workflows in memory. With more
 * connections than that, the others are evicted between tasks and replayed at their next one: every
 * connection must still answer its state query, take updates and sync, exactly as a cached one.
 */

let stack: Stack;
let apiKey: string;

beforeAll(async () => {
  stack = await startStack({
    env: { WORKER_MAX_CACHED_WORKFLOWS: '2' },
    bitrise: { seed: { organizations: 1, appsPerOrganization: 1, buildsPerApp: 3, pipelinesPerApp: 1, seed: 9 } },
  });
  ({ apiKey } = await stack.createTenant('Cache'));
});

afterAll(async () => {
  await stack?.stop();
});

const { api, waitForRuns } = tenantApi(
  () => stack,
  () => apiKey,
);

it('connections beyond the sticky cache answer queries, take updates and sync', async () => {
  const ids: string[] = [];
  for (let i = 0; i < 6; i++) ids.push((await api('POST', '/v1/connections', { provider: 'bitrise' })).body.id as string);
  const active = ids.slice(0, 3);
  for (const id of active) {
    const res = await api('PUT', `/v1/connections/${id}/credentials`, { token: stack.bitrise.control.createToken() });
    expect(res.status).toBe(200);
  }
  for (const id of active) await waitForRuns(id, 1);

  // Six workflows, two cache slots: most of these are replayed to answer.
  for (const id of ids) {
    const state = await stack.temporal.workflow.getHandle(`connection-${id}`).query(stateQuery);
    expect(state.connectionId).toBe(id);
    expect(state.status).toBe(active.includes(id) ? 'active' : 'awaiting_credentials');
  }
  for (const id of active) expect((await api('POST', `/v1/connections/${id}/sync`)).status).toBe(202);
  for (const id of active) await waitForRuns(id, 2);
  expect((await api('POST', `/v1/connections/${ids[5]}/sync`)).status).toBe(409);
  expect((await api('DELETE', `/v1/connections/${ids[4]}`)).body.status).toBe('disconnected');
  await waitFor(async () => (await api('GET', `/v1/connections/${ids[4]}`)).body.status === 'disconnected', 30_000, 'disconnect');
});
