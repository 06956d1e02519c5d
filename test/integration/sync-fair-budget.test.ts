import { syncStateKey } from '../../src/temporal/search-attributes';
import { completeOAuth, PLATFORM_CLIENT, startStack, waitFor, type Stack } from '../helpers/stack';

/**
 * Many connections of several tenants on one Bitbucket OAuth consumer whose budget is overspent when
 * they start, with a stall timeout shorter than their waits for it: the budget is shared fairly (the
 * small tenants' syncs finish while the big tenant's backfill has hardly begun), no run is stalled
 * by waiting for it, and the simulator never sees more than the budget. First, each on a consumer of
 * its own: a wait longer than the inline maximum is the workflow's durable `paced` sleep, and a
 * paused step's token comes back. Budgets are scaled down (2 requests a second, below what this
 * stack can send) and the backfill is not waited out, so the file takes a minute, not hours.
 */

const PER_HOUR = 7_200;
const PER_SECOND = PER_HOUR / 3600;
const BIG = 30;

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({
    // One workspace, one repository, a page of everything: 7 requests per connection's first sync.
    bitbucket: {
      seed: {
        workspaces: 1,
        reposPerWorkspace: 1,
        membersPerWorkspace: 2,
        pullRequestsPerRepo: 3,
        commitsPerRepo: 3,
        pipelinesPerRepo: 3,
        seed: 5,
      },
    },
    env: {
      BITBUCKET_REQUESTS_PER_HOUR: String(PER_HOUR),
      SYNC_STALL_TIMEOUT_SECONDS: '10',
      SYNC_MAX_INLINE_RATE_LIMIT_WAIT_SECONDS: '60',
      SYNC_MAX_CONCURRENT_PER_PROVIDER: '100',
    },
  });
});

afterAll(async () => {
  await stack?.stop();
});

const bucketOf = (clientId: string) => `bitbucket:${clientId}`;

/** The consumer's bucket as earlier traffic left it: `tokens` now (negative: owed to the provider). */
async function setBucket(key: string, tokens: number): Promise<void> {
  await stack.sql`
    insert into rate_buckets (key, tokens, refilled_at) values (${key}, ${tokens}, clock_timestamp())
    on conflict (key) do update set tokens = excluded.tokens, refilled_at = excluded.refilled_at`;
}

async function bucketRow(key: string) {
  const [row] = await stack.sql<{ tokens: number; refilledAt: Date }[]>`select tokens, refilled_at from rate_buckets where key = ${key}`;
  return row!;
}

/** A connected Bitbucket connection, on the platform's consumer or one of its own. */
async function connect(apiKey: string, clientId?: string): Promise<string> {
  const oauthClient = clientId ? { clientId, clientSecret: `${clientId}-secret` } : undefined;
  if (oauthClient) stack.bitbucket.control.addConsumer(oauthClient.clientId, oauthClient.clientSecret);
  const conn = (await stack.request('POST', '/v1/connections', { apiKey, body: { provider: 'bitbucket', oauthClient } })).body;
  await completeOAuth(stack, apiKey, conn.id);
  return conn.id;
}

async function runsOf(ids: string[]) {
  return stack.sql<{ connectionId: string; status: string; finishedAt: Date | null }[]>`
    select connection_id, status, finished_at from sync_runs where connection_id = any(${ids}::uuid[])`;
}

it('a wait for the budget longer than the inline maximum is a durable sleep shown as `paced`, holding no token', async () => {
  const tenant = await stack.createTenant('Paced');
  const bucket = bucketOf('consumer-paced');
  // Owed far more than the longest wait in place (60 s at 2 a second is 120 tokens): nothing is taken.
  await setBucket(bucket, -600);
  const before = await bucketRow(bucket);
  const id = await connect(tenant.apiKey, 'consumer-paced');
  let seen: any;
  await waitFor(
    async () => (seen = (await stack.request('GET', `/v1/connections/${id}`, { apiKey: tenant.apiKey })).body).syncState.state === 'paced',
    60_000,
    'the connection to be paced',
  );
  expect(seen.syncState).toMatchObject({ resource: 'account', until: expect.any(String) });
  expect(Date.parse(seen.syncState.until)).toBeGreaterThan(Date.now() + 60_000);
  const handle = stack.temporal.workflow.getHandle(`connection-${id}`);
  await waitFor(async () => (await handle.describe()).typedSearchAttributes.get(syncStateKey) === 'paced', 30_000, 'SyncState=paced');
  const described = await handle.describe();
  expect((described.raw.pendingActivities ?? []).filter((a) => a.activityType?.name === 'syncStep')).toHaveLength(0);
  // Refused, not queued: the balance was not touched.
  expect(await bucketRow(bucket)).toEqual(before);
  expect((await stack.request('POST', `/v1/connections/${id}/pause`, { apiKey: tenant.apiKey })).status).toBe(200);
});

it('a step paused while it waits in line for its token gives the token back, and nothing is sent', async () => {
  const tenant = await stack.createTenant('Pausing');
  const bucket = bucketOf('consumer-pausing');
  // Owed 40 s worth: the connection's first request is granted a token due in about 40 s.
  await setBucket(bucket, -80);
  const before = await bucketRow(bucket);
  const id = await connect(tenant.apiKey, 'consumer-pausing');
  await waitFor(
    async () => (await bucketRow(bucket)).refilledAt.getTime() !== before.refilledAt.getTime(),
    60_000,
    'the token to be granted',
  );
  const granted = await bucketRow(bucket);
  expect(granted.tokens).toBeLessThan(-40);
  stack.bitbucket.control.clearRequests();

  expect((await stack.request('POST', `/v1/connections/${id}/pause`, { apiKey: tenant.apiKey })).status).toBe(200);
  const returned = async () =>
    (await stack.sql<{ returned: string }[]>`select returned from rate_bucket_flows where bucket = ${bucket} and flow = ${id}`)[0]
      ?.returned;
  await waitFor(async () => (await returned()) === '1', 60_000, 'the token to come back');
  expect((await bucketRow(bucket)).tokens).toBeCloseTo(granted.tokens + 1, 9);
  expect(stack.bitbucket.control.requests().filter((r) => r.path.startsWith('/2.0/'))).toEqual([]);
});

it('a big backfill and small tenants share an overspent budget fairly, nothing stalls, and the provider never sees more than the budget', async () => {
  const bucket = bucketOf(PLATFORM_CLIENT.clientId);
  const big = await stack.createTenant('Big');
  const small = [await stack.createTenant('Small one'), await stack.createTenant('Small two')];
  // Overspent by earlier traffic for the next 12 s, while everyone connects: nothing is spare, so
  // every token goes by fair share from the start.
  const owed = 12 * PER_SECOND;
  stack.bitbucket.control.clearRequests();
  const drainedAt = Date.now();
  await setBucket(bucket, -owed);

  const bigIds = await Promise.all(Array.from({ length: BIG }, () => connect(big.apiKey)));
  // The big backfill is under way (waiting for its share) before the small tenants arrive.
  await waitFor(async () => (await runsOf(bigIds)).length === BIG, 60_000, 'the big tenant’s runs to start');
  const smallIds = await Promise.all(small.map((t) => connect(t.apiKey)));

  // Each small tenant has a third of the budget, the big tenant's 30 connections share the last
  // third: the small syncs finish while every connection of the big backfill is still running (and
  // not stalled, though each has waited for its share far longer than the stall timeout). The
  // backfill is not waited out: the stack stops with it.
  await waitFor(async () => (await runsOf(smallIds)).every((r) => r.status !== 'running'), 120_000, 'the small tenants’ runs');
  expect((await runsOf(smallIds)).map((r) => r.status)).toEqual(['succeeded', 'succeeded']);
  expect((await runsOf(bigIds)).map((r) => r.status)).toEqual(Array(BIG).fill('running'));

  // What the provider saw by any moment is what had refilled by then, less what was owed. GET /user
  // is left out: a credential's verification (when it is attached) is not paced.
  const seen = stack.bitbucket.control
    .requests()
    .filter((r) => r.path.startsWith('/2.0/') && r.path !== '/2.0/user')
    .map((r) => r.at)
    .sort((a, b) => a - b);
  expect(seen.length).toBeGreaterThanOrEqual(2 * 6);
  for (const [i, at] of seen.entries()) expect(i + 1).toBeLessThanOrEqual(PER_SECOND * ((at - drainedAt) / 1000) - owed + 1);
});
