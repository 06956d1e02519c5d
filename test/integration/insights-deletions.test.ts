import { completeOAuth, startStack, tenantApi, type Stack } from '../helpers/stack';

/**
 * Deletion tracking end to end: records the provider deleted (an app, a member, a repository:
 * absent from their listing, 404 on their own endpoints) are marked `deleted_at` by the next
 * complete listing, shown with `deletedAt` by the records API, and no longer counted by insights —
 * and unmarked when they come back. A listing that could not read everything marks nothing, and
 * neither does an incremental repository listing.
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
        pullRequestsPerRepo: 10,
        commitsPerRepo: 8,
        pipelinesPerRepo: 6,
        seed: 3,
      },
    },
    bitrise: { seed: { organizations: 1, appsPerOrganization: 2, buildsPerApp: 8, pipelinesPerApp: 1, seed: 3 } },
  });
  ({ apiKey } = await stack.createTenant('Deletions'));
});

afterAll(async () => {
  await stack?.stop();
});

const { api, waitForRuns } = tenantApi(
  () => stack,
  () => apiKey,
);

/** Runs a sync (`full` resets the listed resources' cursors first) and waits for it to succeed. */
async function sync(id: string, body?: unknown): Promise<void> {
  const before = (await api('GET', `/v1/connections/${id}/runs`)).body.items.filter((r: any) => r.status !== 'running').length;
  expect((await api('POST', `/v1/connections/${id}/sync`, body)).status).toBe(202);
  const [run] = await waitForRuns(id, before + 1);
  expect(run.status).toBe('succeeded');
}

/** Every record of a resource through the records API, by id. */
async function records(id: string, resource: string): Promise<Map<string, any>> {
  const res = await api('GET', `/v1/connections/${id}/records/${resource}?limit=500`);
  expect(res.status).toBe(200);
  return new Map(res.body.items.map((r: any) => [r.id, r]));
}

// Wide enough for every seeded run and pull request (the simulators seed the hours before now).
const range = () => `from=${new Date(Date.now() - 60 * 86_400_000).toISOString()}&to=${new Date(Date.now() + 86_400_000).toISOString()}`;

describe('Bitrise: a deleted app', () => {
  let id: string;
  let kept: string;
  let gone: string;
  const buildsOf = async (app: string) =>
    (await stack.sql`select count(*)::int as n from bitrise_builds where connection_id = ${id} and app_id = ${app}`)[0]!.n as number;

  beforeAll(async () => {
    id = (await api('POST', '/v1/connections', { provider: 'bitrise', name: 'apps' })).body.id;
    expect((await api('PUT', `/v1/connections/${id}/credentials`, { token: stack.bitrise.control.createToken() })).status).toBe(200);
    const [run] = await waitForRuns(id, 1);
    expect(run.status).toBe('succeeded');
    [kept, gone] = stack.bitrise.control.dataset().organizations[0]!.apps.map((a) => a.slug) as [string, string];
  });

  it('a listing it could not read in full marks nothing; the next complete one marks the app', async () => {
    const ci = (await api('GET', `/v1/connections/${id}/insights/ci?${range()}`)).body;
    expect(ci.byGroup.map((g: any) => [g.groupId, g.builds]).sort()).toEqual(
      [
        [kept, await buildsOf(kept)],
        [gone, await buildsOf(gone)],
      ].sort(),
    );

    stack.bitrise.control.setAppAccess(gone, 'not_found');
    // One unreadable record on the apps listing: the app may be that record, so nobody is marked.
    stack.bitrise.control.tamper({ kind: 'records', pathPrefix: '/apps', records: [{ slug: null, title: 'unreadable' }] });
    await sync(id);
    expect((await records(id, 'apps')).get(gone).deletedAt).toBeNull();

    await sync(id);
    const apps = await records(id, 'apps');
    expect(apps.get(gone).deletedAt).toEqual(expect.any(String));
    expect(apps.get(kept).deletedAt).toBeNull();

    // Insights leave the app's builds out: only the other app's remain, in every figure.
    const after = (await api('GET', `/v1/connections/${id}/insights/ci?${range()}`)).body;
    expect(after.byGroup.map((g: any) => [g.groupId, g.builds])).toEqual([[kept, await buildsOf(kept)]]);
    expect(after.totals.builds).toBe(await buildsOf(kept));
    expect(after.byWorkflow.every((w: any) => w.groupId === kept)).toBe(true);
    const flaky = (await api('GET', `/v1/connections/${id}/insights/flakiness?${range()}`)).body;
    expect(flaky.workflows.every((w: any) => w.groupId === kept)).toBe(true);
    const overview = (await api('GET', `/v1/insights/overview?${range()}`)).body;
    expect(overview.connections.find((c: any) => c.connectionId === id).builds).toBe(await buildsOf(kept));
  });

  it('an app listed again is unmarked, and counts again', async () => {
    const marked = (await records(id, 'apps')).get(gone);
    stack.bitrise.control.setAppAccess(gone, 'ok');
    await sync(id);
    const back = (await records(id, 'apps')).get(gone);
    expect(back.deletedAt).toBeNull();
    expect(Date.parse(back.updatedAt)).toBeGreaterThan(Date.parse(marked.updatedAt));
    const ci = (await api('GET', `/v1/connections/${id}/insights/ci?${range()}`)).body;
    expect(ci.totals.builds).toBe((await buildsOf(kept)) + (await buildsOf(gone)));
  });
});

describe('Bitbucket', () => {
  let id: string;
  let ws: string;
  let wsUuid: string;
  beforeAll(async () => {
    id = (await api('POST', '/v1/connections', { provider: 'bitbucket', name: 'code' })).body.id;
    await completeOAuth(stack, apiKey, id);
    const [run] = await waitForRuns(id, 1);
    expect(run.status).toBe('succeeded');
    ({ slug: ws, uuid: wsUuid } = stack.bitbucket.control.dataset().workspaces[0]!);
  });

  it('a member who left is marked by the next complete members listing, not by one with a null page', async () => {
    const seats = async () => (await api('GET', `/v1/connections/${id}/insights/seats`)).body.totals.members as number;
    expect(await seats()).toBe(4);
    const [member] = await stack.sql<{ id: string; userId: string }[]>`
      select id, user_id from bitbucket_members where connection_id = ${id} and display_name <> 'Sim User' order by id limit 1`;
    stack.bitbucket.control.setMemberPresent(ws, member!.userId, false);

    stack.bitbucket.control.tamper({ kind: 'nullList', pathPrefix: `/workspaces/${ws}/members` });
    await sync(id);
    expect((await records(id, 'members')).get(member!.id).deletedAt).toBeNull();
    expect(await seats()).toBe(4);

    await sync(id);
    const members = await records(id, 'members');
    expect(members.get(member!.id).deletedAt).toEqual(expect.any(String));
    expect([...members.values()].filter((m) => m.deletedAt === null)).toHaveLength(3);
    expect(await seats()).toBe(3);

    stack.bitbucket.control.setMemberPresent(ws, member!.userId, true);
    await sync(id);
    expect((await records(id, 'members')).get(member!.id).deletedAt).toBeNull();
    expect(await seats()).toBe(4);
  });

  it('a deleted repository is marked by a full pass only, leaves insights, and comes back unmarked', async () => {
    const [gone, kept] = stack.bitbucket.control.dataset().workspaces[0]!.repositories as unknown as [
      { slug: string; uuid: string },
      { uuid: string },
    ];
    const counts = async (repo: string) => {
      const [row] = await stack.sql`
        select (select count(*) from bitbucket_pipelines where connection_id = ${id} and repository_id = ${repo})::int as pipelines,
               (select count(*) from bitbucket_pull_requests where connection_id = ${id} and repository_id = ${repo} and state = 'MERGED')::int as merged`;
      return row as { pipelines: number; merged: number };
    };
    const insights = async () => ({
      ci: (await api('GET', `/v1/connections/${id}/insights/ci?${range()}`)).body,
      delivery: (await api('GET', `/v1/connections/${id}/insights/delivery?${range()}`)).body,
    });
    const all = { pipelines: (await counts(gone.uuid)).pipelines + (await counts(kept.uuid)).pipelines };
    const before = await insights();
    expect(before.ci.totals.builds).toBe(all.pipelines);
    expect(before.ci.byGroup.map((g: any) => g.groupId).sort()).toEqual([gone.uuid, kept.uuid].sort());

    stack.bitbucket.control.setRepositoryAccess(ws, gone.slug, 'not_found');
    // The incremental listing (updated_on > cursor) cannot tell a deleted repository from an unchanged one.
    await sync(id);
    const [row] =
      await stack.sql`select deleted_at, accessible from bitbucket_repositories where connection_id = ${id} and id = ${gone.uuid}`;
    expect(row).toMatchObject({ deletedAt: null, accessible: false });

    await sync(id, { full: true, resources: ['repositories'] });
    const repos = await records(id, 'repositories');
    expect(repos.get(gone.uuid).deletedAt).toEqual(expect.any(String));
    expect(repos.get(kept.uuid).deletedAt).toBeNull();
    // Its children stay stored (the records API serves them) but no figure counts them.
    expect((await records(id, 'pipelines')).size).toBe(all.pipelines);
    const after = await insights();
    expect(after.ci.totals.builds).toBe((await counts(kept.uuid)).pipelines);
    expect(after.ci.byGroup.map((g: any) => g.groupId)).toEqual([kept.uuid]);
    expect(after.delivery.cycleTimeSeconds.merged).toBe((await counts(kept.uuid)).merged);
    expect(before.delivery.cycleTimeSeconds.merged).toBe((await counts(kept.uuid)).merged + (await counts(gone.uuid)).merged);

    stack.bitbucket.control.setRepositoryAccess(ws, gone.slug, 'ok');
    await sync(id, { full: true, resources: ['repositories'] });
    expect((await records(id, 'repositories')).get(gone.uuid).deletedAt).toBeNull();
    expect((await insights()).ci.totals.builds).toBe(all.pipelines);
    // Workspaces are tracked the same way; this one is still listed.
    expect((await records(id, 'workspaces')).get(wsUuid).deletedAt).toBeNull();
  });
});
