import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { completeOAuth, startStack, tenantApi, waitFor, type Stack } from '../helpers/stack';

/**
 * The provider's token goes to the provider only: a `next` link to another origin, a stored cursor
 * link to another origin (as after a change of BITBUCKET_API_URL) and a 3xx answer each fail the
 * run at once — no retry, no request to the foreign host — with a message naming the resource,
 * and the connection stays active.
 */

let stack: Stack;
let apiKey: string;
let foreign: Server;
let foreignUrl: string;
const foreignHits: { url: string; headers: IncomingHttpHeaders }[] = [];

const SEED = {
  workspaces: 1,
  reposPerWorkspace: 2,
  membersPerWorkspace: 2,
  pullRequestsPerRepo: 3,
  commitsPerRepo: 150,
  pipelinesPerRepo: 3,
};

beforeAll(async () => {
  foreign = createServer((req, res) => {
    foreignHits.push({ url: req.url ?? '', headers: req.headers });
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ values: [], pagelen: 100 }));
  });
  await new Promise<void>((resolve) => foreign.listen(0, '127.0.0.1', resolve));
  foreignUrl = `http://127.0.0.1:${(foreign.address() as AddressInfo).port}`;
  stack = await startStack({ bitbucket: { seed: SEED } });
  ({ apiKey } = await stack.createTenant('Hostile provider'));
});

afterAll(async () => {
  await stack?.stop();
  await new Promise((resolve) => foreign?.close(resolve));
});

const { api, waitForRuns } = tenantApi(
  () => stack,
  () => apiKey,
);

async function connect(): Promise<string> {
  const conn = (await api('POST', '/v1/connections', { provider: 'bitbucket' })).body;
  await completeOAuth(stack, apiKey, conn.id);
  return conn.id;
}

const requestsTo = (re: RegExp) => stack.bitbucket.control.requests().filter((r) => re.test(r.path));

async function expectProtocolFailure(id: string, runs: number, resource: string) {
  const [run] = await waitForRuns(id, runs);
  expect(run.status).toBe('failed');
  expect(run.error.code).toBe('provider_protocol_error');
  expect(run.error.message).toContain(resource);
  expect(run.retries).toBe(0);
  // The run row is written before the workflow publishes the connection's lastError: wait for that.
  let conn: any;
  await waitFor(
    async () => {
      conn = (await api('GET', `/v1/connections/${id}`)).body;
      return conn.lastError !== null;
    },
    30_000,
    'the connection to show the run’s error',
  );
  expect(conn.status).toBe('active');
  expect(conn.lastError.code).toBe('provider_protocol_error');
  return run;
}

describe('links and redirects from the provider', () => {
  beforeEach(() => {
    stack.bitbucket.control.reset();
    stack.bitbucket.control.clearRequests();
    foreignHits.length = 0;
  });

  it('a next link to another origin fails the run at once, and the foreign host sees nothing', async () => {
    const ds = stack.bitbucket.control.dataset();
    const ws = ds.workspaces[0]!.slug;
    const repo = ds.workspaces[0]!.repositories[0]!.slug;
    stack.bitbucket.control.tamper({
      kind: 'next',
      pathPrefix: `/repositories/${ws}/${repo}/commits`,
      next: `${foreignUrl}/2.0/repositories/${ws}/${repo}/commits?page=2`,
      count: 50,
    });
    const id = await connect();
    await expectProtocolFailure(id, 1, 'commits');
    // The step was not retried: the poisoned page was asked for once, and no page twice.
    expect(requestsTo(new RegExp(`/${repo}/commits$`))).toHaveLength(1);
    const pages = requestsTo(/\/commits$/).map((r) => `${r.path}?${r.query}`);
    expect(new Set(pages).size).toBe(pages.length);
    expect(foreignHits).toEqual([]);
    // The refused link never became a cursor.
    const cursors = await stack.sql`select value from sync_cursors where connection_id = ${id} and resource = 'commits'`;
    expect(JSON.stringify(cursors)).not.toContain(foreignUrl);
  });

  it('a stored cursor link to another origin (the API URL changed since) is refused before it is requested', async () => {
    const id = await connect();
    const [first] = await waitForRuns(id, 1);
    expect(first.status).toBe('succeeded');
    const [repo] = await stack.sql<{ id: string }[]>`select id from bitbucket_repositories where connection_id = ${id} limit 1`;
    await stack.sql`
      update sync_cursors set value = ${stack.sql.json({ next: `${foreignUrl}/2.0/old-api/commits?page=2`, newest: 'abcdef0' })}
      where connection_id = ${id} and resource = 'commits' and scope = ${repo!.id}`;
    stack.bitbucket.control.clearRequests();
    expect((await api('POST', `/v1/connections/${id}/sync`)).status).toBe(202);
    await expectProtocolFailure(id, 2, 'commits');
    expect(foreignHits).toEqual([]);
  });

  it('a 3xx is neither followed nor taken for an answer, and is not retried', async () => {
    stack.bitbucket.control.tamper({
      kind: 'redirect',
      status: 302,
      pathPrefix: '/user/workspaces',
      location: `${foreignUrl}/steal`,
      count: 50,
    });
    const id = await connect();
    const run = await expectProtocolFailure(id, 1, 'workspaces');
    expect(run.error.message).toContain('302');
    expect(requestsTo(/\/user\/workspaces$/)).toHaveLength(1);
    expect(foreignHits).toEqual([]);
    // Nothing reached the foreign host with the token, in any header.
    expect(foreignHits.filter((h) => h.headers.authorization)).toEqual([]);
  });
});
