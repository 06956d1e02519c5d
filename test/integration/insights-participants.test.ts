import { completeOAuth, startStack, tenantApi, type Stack } from '../helpers/stack';

/**
 * Pull request participants are extracted at sync time into bitbucket_pr_participants, in the
 * page's transaction: after a sync against the simulator they match the participants in `raw`
 * exactly, and the seats / delivery figures read them. What the database derives from them for
 * delivery (migration 00011's triggers) matches `raw` too: who is the author, and each pull
 * request's first review and first approval.
 */

let stack: Stack;
let apiKey: string;

beforeAll(async () => {
  stack = await startStack({
    bitbucket: {
      seed: {
        workspaces: 1,
        reposPerWorkspace: 2,
        membersPerWorkspace: 4,
        pullRequestsPerRepo: 12,
        commitsPerRepo: 20,
        pipelinesPerRepo: 4,
        seed: 5,
      },
    },
  });
  ({ apiKey } = await stack.createTenant('Participants'));
});

afterAll(async () => {
  await stack?.stop();
});

const { api, waitForRuns } = tenantApi(
  () => stack,
  () => apiKey,
);

it('a sync writes one participant row per user in each pull request’s participants', async () => {
  const conn = (await api('POST', '/v1/connections', { provider: 'bitbucket' })).body;
  await completeOAuth(stack, apiKey, conn.id);
  const [run] = await waitForRuns(conn.id, 1);
  expect(run.status).toBe('succeeded');

  const fromRaw = await stack.sql`
    select p.id as pull_request_id, x -> 'user' ->> 'uuid' as user_id, x ->> 'role' as role,
           coalesce((x ->> 'approved')::boolean, false) as approved, (x ->> 'participated_on')::timestamptz as participated_on
    from bitbucket_pull_requests p cross join lateral jsonb_array_elements(p.raw -> 'participants') x
    where p.connection_id = ${conn.id} order by 1, 2`;
  const stored = await stack.sql`
    select pull_request_id, user_id, role, approved, participated_on from bitbucket_pr_participants
    where connection_id = ${conn.id} order by 1, 2`;
  expect(fromRaw.length).toBeGreaterThan(0);
  expect(stored).toEqual(fromRaw);
  expect(stored.some((r) => r.approved)).toBe(true);

  // The author flag and the review milestones, from raw by their definitions (README "Insights").
  const derived = await stack.sql`
    select p.id,
           (select min((x ->> 'participated_on')::timestamptz) from jsonb_array_elements(p.raw -> 'participants') x
            where x -> 'user' ->> 'uuid' is distinct from p.raw -> 'author' ->> 'uuid'
              and (x ->> 'participated_on')::timestamptz between p.created_on and p.updated_on) as first_review_on,
           (select min((x ->> 'participated_on')::timestamptz) from jsonb_array_elements(p.raw -> 'participants') x
            where x -> 'user' ->> 'uuid' is distinct from p.raw -> 'author' ->> 'uuid' and (x ->> 'approved')::boolean
              and (x ->> 'participated_on')::timestamptz between p.created_on and p.updated_on) as first_approval_on
    from bitbucket_pull_requests p where p.connection_id = ${conn.id} order by 1`;
  const milestones = await stack.sql`
    select id, first_review_on, first_approval_on from bitbucket_pull_requests where connection_id = ${conn.id} order by 1`;
  expect(milestones).toEqual(derived);
  expect(milestones.some((m) => m.firstApprovalOn !== null)).toBe(true);
  const authors = await stack.sql`
    select x.pull_request_id, x.user_id, x.is_author, x.user_id = p.author_id as expected from bitbucket_pr_participants x
    join bitbucket_pull_requests p on p.connection_id = x.connection_id and p.id = x.pull_request_id where x.connection_id = ${conn.id}`;
  expect(authors.every((a) => a.isAuthor === (a.expected === true))).toBe(true);

  const seats = await api('GET', `/v1/connections/${conn.id}/insights/seats`);
  expect(seats.status).toBe(200);
  expect(seats.body.totals.members).toBeGreaterThan(0);
});
