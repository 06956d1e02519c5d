import { startOwnPostgres, type OwnPostgres } from '../helpers/own-postgres';
import { startStack, waitFor, type Stack } from '../helpers/stack';

/**
 * Postgres restarted in the middle of a sync: connections drop and new ones are refused for a
 * while. Activities fail, are retried by Temporal, and carry on from the last committed page;
 * nothing is lost or duplicated and the run completes without anyone touching it.
 */

let pg: OwnPostgres;
let stack: Stack;
let apiKey: string;

beforeAll(async () => {
  pg = await startOwnPostgres();
  stack = await startStack({
    databaseUrl: pg.url,
    bitrise: { seed: { organizations: 1, appsPerOrganization: 2, buildsPerApp: 300, pipelinesPerApp: 3, seed: 3 } },
  });
  ({ apiKey } = await stack.createTenant('Restart'));
});

afterAll(async () => {
  await stack?.stop();
  await pg?.stop();
});

it('a sync survives a Postgres restart mid-run: completes, exact counts, no duplicates', async () => {
  const api = (method: string, path: string, body?: unknown) => stack.request(method, path, { apiKey, body });
  const conn = (await api('POST', '/v1/connections', { provider: 'bitrise' })).body;
  stack.bitrise.control.setLatency(150);
  expect((await api('PUT', `/v1/connections/${conn.id}/credentials`, { token: stack.bitrise.control.createToken() })).status).toBe(200);

  // Restart once builds are being written.
  await waitFor(async () => ((await stack.sql`select count(*)::int as n from bitrise_builds`)[0]!.n as number) > 0, 60_000);
  await pg.restart(3000);
  stack.bitrise.control.setLatency(0);

  let run: any;
  await waitFor(async () => {
    try {
      run = (await api('GET', `/v1/connections/${conn.id}/runs`)).body.items?.[0];
      return run?.status === 'succeeded';
    } catch {
      return false;
    }
  }, 120_000);
  const ds = stack.bitrise.control.dataset();
  const apps = ds.organizations.flatMap((o) => o.apps);
  const [counts] = await stack.sql`
    select (select count(*) from bitrise_builds where connection_id = ${conn.id})::int as builds,
           (select count(distinct id) from bitrise_builds where connection_id = ${conn.id})::int as distinct_builds,
           (select count(*) from bitrise_apps where connection_id = ${conn.id})::int as apps`;
  expect(counts).toEqual({
    builds: apps.reduce((n, a) => n + a.builds.total, 0),
    distinctBuilds: apps.reduce((n, a) => n + a.builds.total, 0),
    apps: apps.length,
  });
  expect(run.retries).toBeGreaterThanOrEqual(1);
  expect((await api('GET', `/v1/connections/${conn.id}`)).body.status).toBe('active');
});
