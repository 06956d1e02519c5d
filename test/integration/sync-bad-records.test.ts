import { randomBytes } from 'node:crypto';
import { completeSyncCounts as bitbucketCounts } from '../../simulators/bitbucket';
import { completeSyncCounts as bitriseCounts } from '../../simulators/bitrise';
import { dumpDatabase } from '../helpers/leaks';
import { completeOAuth, startStack, tenantApi, type Stack } from '../helpers/stack';

/**
 * One bad record must not poison a sync, and no secret in synced data is stored: records that
 * fail their schema (nulls, ids and numbers a Postgres `int` cannot hold, unparseable
 * timestamps), `null` pages and duplicates within a page leave the good records committed, the run
 * succeeded and later resources synced, with the rejects shown by the runs API; trigger-time
 * variable values (Bitrise build params, Bitbucket pipeline variables) appear nowhere in the
 * database nor in the records API.
 */

let stack: Stack;
let apiKey: string;

const BITRISE_SEED = { organizations: 1, appsPerOrganization: 2, buildsPerApp: 30, pipelinesPerApp: 4, seed: 3 };
const BITBUCKET_SEED = {
  workspaces: 1,
  reposPerWorkspace: 2,
  membersPerWorkspace: 3,
  pullRequestsPerRepo: 8,
  commitsPerRepo: 10,
  pipelinesPerRepo: 4,
};

const secret = (label: string) => `${label}-${randomBytes(12).toString('hex')}`;

beforeAll(async () => {
  stack = await startStack({ bitrise: { seed: BITRISE_SEED }, bitbucket: { seed: BITBUCKET_SEED } });
  ({ apiKey } = await stack.createTenant('Bad records'));
});

afterAll(async () => {
  await stack?.stop();
});

const { api, waitForRuns } = tenantApi(
  () => stack,
  () => apiKey,
);

async function allRecords(id: string, resource: string): Promise<any[]> {
  const items: any[] = [];
  let cursor: string | null = null;
  do {
    const res: any = await api('GET', `/v1/connections/${id}/records/${resource}?limit=100${cursor ? `&cursor=${cursor}` : ''}`);
    expect(res.status).toBe(200);
    items.push(...res.body.items);
    cursor = res.body.nextCursor;
  } while (cursor);
  return items;
}

async function cursorsOf(id: string): Promise<string[]> {
  const rows = await stack.sql<{ value: string }[]>`select value::text as value from sync_cursors where connection_id = ${id}`;
  return rows.map((r) => r.value);
}

describe('Bitrise: bad records and secret build params', () => {
  const buildSecret = secret('bitrise-build-secret');
  const rejectedSecret = secret('bitrise-rejected-secret');
  const pipelineSecret = secret('bitrise-pipeline-secret');

  it('quarantines each bad record, keeps the good ones, and stores no variable value', async () => {
    const ds = stack.bitrise.control.dataset();
    const [app, otherApp] = ds.organizations[0]!.apps;
    const good = (slug: string, extra: Record<string, unknown> = {}) => ({
      slug,
      build_number: 9000,
      status: 1,
      triggered_at: '2020-01-02T03:04:05Z',
      ...extra,
    });
    const env = (value: string) => ({
      environments: [{ mapped_to: 'API_TOKEN', key: 'API_TOKEN', value, is_expand: false }],
      branch: 'main',
    });
    stack.bitrise.control.tamper({
      kind: 'records',
      pathPrefix: `/apps/${app!.slug}/builds`,
      records: [
        good('bad-null-status', { status: null }),
        good('bad-null-slug', { slug: null }),
        good('bad-int-range', { build_number: 2 ** 31 }),
        good('bad-int-fraction', { build_number: 1.5 }),
        good('bad-pr-range', { pull_request_id: 2 ** 40 }),
        good('bad-timestamp', { triggered_at: 'last tuesday' }),
        good('bad-year-zero', { triggered_at: '0000-01-01T00:00:00Z' }),
        good('bad-with-secret', { status: 'done', original_build_params: env(rejectedSecret) }),
        good('good-duplicate'),
        good('good-duplicate'),
        good('good-with-secret', { original_build_params: env(buildSecret) }),
        'not even an object',
      ],
    });
    // A null page: the first app's pipelines come back as `data: null`.
    stack.bitrise.control.tamper({ kind: 'nullList', pathPrefix: `/apps/${app!.slug}/pipelines` });
    // A pipeline whose trigger params carry a variable value.
    stack.bitrise.control.tamper({
      kind: 'records',
      pathPrefix: `/apps/${otherApp!.slug}/pipelines`,
      records: [
        {
          slug: 'pipeline-with-secret',
          is_pipeline: true,
          status: 1,
          triggered_at: '2020-01-02T03:04:05.123456Z',
          finished_at: '2020-01-02T03:14:05.123456Z',
          trigger_params: { pipeline: 'ci', environments: [{ key: 'DEPLOY_KEY', value: pipelineSecret }] },
        },
      ],
    });

    const conn = (await api('POST', '/v1/connections', { provider: 'bitrise' })).body;
    expect((await api('PUT', `/v1/connections/${conn.id}/credentials`, { token: stack.bitrise.control.createToken() })).status).toBe(200);
    const [run] = await waitForRuns(conn.id, 1);
    expect(run.status).toBe('succeeded');

    const expected = bitriseCounts(stack.bitrise.control.dataset());
    const builds = await allRecords(conn.id, 'builds');
    // Every good record of the poisoned page is there, the duplicate once.
    expect(builds).toHaveLength(expected.builds + 2);
    expect(builds.filter((b) => b.id === 'good-duplicate')).toHaveLength(1);
    expect(builds.some((b) => String(b.id).startsWith('bad-'))).toBe(false);
    // Later resources still synced: the other app's pipelines (and the injected one) are stored.
    const pipelines = await allRecords(conn.id, 'pipelines');
    expect(pipelines.some((p) => p.id === 'pipeline-with-secret')).toBe(true);
    expect(pipelines.some((p) => p.appId === otherApp!.slug)).toBe(true);

    // 8 bad builds, the non-object, the null page.
    expect(run.rejected).toBe(10);
    expect(run.rejects).toHaveLength(5);
    for (const r of run.rejects) {
      expect(Object.keys(r).sort()).toEqual(['reason', 'recordId', 'resource']);
      expect(typeof r.reason).toBe('string');
    }
    const rejects = await stack.sql<{ recordKey: string; recordId: string | null; reason: string; resource: string }[]>`
      select record_key, record_id, reason, resource from sync_rejects where connection_id = ${conn.id}`;
    expect(
      rejects
        .map((r) => r.recordId)
        .filter(Boolean)
        .sort(),
    ).toEqual(
      ['bad-int-fraction', 'bad-int-range', 'bad-null-status', 'bad-pr-range', 'bad-timestamp', 'bad-with-secret', 'bad-year-zero'].sort(),
    );
    expect(rejects.find((r) => r.recordId === 'bad-int-range')?.reason).toMatch(/build_number/);
    expect(rejects.find((r) => r.resource === 'pipelines')?.reason).toMatch(/null/);

    // No cursor became null or NaN.
    for (const c of await cursorsOf(conn.id)) expect(c).not.toMatch(/null|NaN/);

    // The variable's key is kept, its value is nowhere: not in any table, not in the records API.
    const withSecret = builds.find((b) => b.id === 'good-with-secret');
    expect(JSON.stringify(withSecret)).toContain('API_TOKEN');
    const everything = await dumpDatabase(stack.sql);
    for (const s of [buildSecret, rejectedSecret, pipelineSecret]) {
      expect(everything).not.toContain(s);
      expect(JSON.stringify(builds)).not.toContain(s);
      expect(JSON.stringify(pipelines)).not.toContain(s);
    }

    // The next run heals: the pipelines that came back null are listed again.
    expect((await api('POST', `/v1/connections/${conn.id}/sync`)).status).toBe(202);
    const [second] = await waitForRuns(conn.id, 2);
    expect(second.status).toBe('succeeded');
    expect((await allRecords(conn.id, 'pipelines')).some((p) => p.appId === app!.slug)).toBe(true);
    for (const c of await cursorsOf(conn.id)) expect(c).not.toMatch(/null|NaN/);
  });

  it('a stored cursor already poisoned with {"after": null} heals instead of failing', async () => {
    const conn = (await api('POST', '/v1/connections', { provider: 'bitrise' })).body;
    expect((await api('PUT', `/v1/connections/${conn.id}/credentials`, { token: stack.bitrise.control.createToken() })).status).toBe(200);
    expect((await waitForRuns(conn.id, 1))[0].status).toBe('succeeded');
    await stack.sql`update sync_cursors set value = '{"after": null}'::jsonb where connection_id = ${conn.id} and resource in ('builds', 'pipelines')`;
    expect((await api('POST', `/v1/connections/${conn.id}/sync`)).status).toBe(202);
    const [second] = await waitForRuns(conn.id, 2);
    expect(second.status).toBe('succeeded');
    expect(second.retries).toBe(0);
    for (const c of await cursorsOf(conn.id)) expect(c).not.toMatch(/null|NaN/);
  });
});

describe('Bitbucket: bad records and pipeline variables', () => {
  const variableSecret = secret('bitbucket-variable-secret');

  it('quarantines each bad record, keeps the good ones, and stores no variable value', async () => {
    const ds = stack.bitbucket.control.dataset();
    const ws = ds.workspaces[0]!.slug;
    const repos = ds.workspaces[0]!.repositories.map((r) => r.slug);
    const pr = (id: unknown, extra: Record<string, unknown> = {}) => ({
      id,
      state: 'OPEN',
      title: `injected ${String(id)}`,
      created_on: '2020-01-02T03:04:05.000000+00:00',
      updated_on: '2020-01-02T03:04:05.000000+00:00',
      ...extra,
    });
    for (const repo of repos) {
      stack.bitbucket.control.tamper({
        kind: 'records',
        pathPrefix: `/repositories/${ws}/${repo}/pullrequests`,
        records: [
          pr(900001, { state: null }),
          pr(2 ** 31),
          pr(12.5),
          pr('900002'),
          pr(900003, { comment_count: 2 ** 40 }),
          pr(900004, { updated_on: '2020-13-45T99:00:00+00:00' }),
          pr(900005, { created_on: null }),
          pr(900100),
          pr(900100),
          {},
        ],
      });
      stack.bitbucket.control.tamper({
        kind: 'records',
        pathPrefix: `/repositories/${ws}/${repo}/pipelines`,
        records: [
          {
            uuid: `{injected-pipeline-${repo}}`,
            build_number: 9000,
            state: { name: 'COMPLETED', result: { name: 'SUCCESSFUL' } },
            created_on: '2020-01-02T03:04:05.000Z',
            variables: [{ key: 'DEPLOY_TOKEN', value: variableSecret, secured: false }],
          },
          { uuid: `{bad-pipeline-${repo}}`, build_number: 2 ** 31, state: { name: 'COMPLETED' }, created_on: '2020-01-02T03:04:05.000Z' },
        ],
      });
    }
    // Members come back as `values: null`: nobody may be marked as gone on the strength of it.
    stack.bitbucket.control.tamper({ kind: 'nullList', pathPrefix: `/workspaces/${ws}/members` });
    // Commits: a page with `values: null` on one repository.
    stack.bitbucket.control.tamper({ kind: 'nullList', pathPrefix: `/repositories/${ws}/${repos[0]}/commits` });

    const conn = (await api('POST', '/v1/connections', { provider: 'bitbucket' })).body;
    await completeOAuth(stack, apiKey, conn.id);
    const [run] = await waitForRuns(conn.id, 1);
    expect(run.status).toBe('succeeded');

    const expected = bitbucketCounts(stack.bitbucket.control.dataset());
    const prs = await allRecords(conn.id, 'pullRequests');
    expect(prs).toHaveLength(expected.pullRequests + repos.length);
    expect(prs.filter((p) => p.number === 900100)).toHaveLength(repos.length);
    // Later resources still synced: pipelines (the injected good one too) and the other repository's commits.
    const pipelines = await allRecords(conn.id, 'pipelines');
    expect(pipelines).toHaveLength(expected.pipelines + repos.length);
    const commits = await allRecords(conn.id, 'commits');
    expect(commits.length).toBeGreaterThan(0);

    // Per repository: 7 bad pull requests, {} and one bad pipeline; plus two null pages.
    expect(run.rejected).toBe(repos.length * 9 + 2);
    expect(run.rejects.length).toBe(5);
    const reasons = await stack.sql<{ resource: string; reason: string }[]>`
      select resource, reason from sync_rejects where connection_id = ${conn.id}`;
    expect(reasons.filter((r) => r.resource === 'members')).toHaveLength(1);
    expect(reasons.some((r) => r.resource === 'pullRequests' && /state/.test(r.reason))).toBe(true);
    expect(reasons.some((r) => r.resource === 'pullRequests' && /comment_count/.test(r.reason))).toBe(true);
    // Nobody is marked deleted: a null page is no proof anyone left.
    const [members] = await stack.sql<{ deleted: number }[]>`
      select count(*)::int as deleted from bitbucket_members where connection_id = ${conn.id} and deleted_at is not null`;
    expect(members!.deleted).toBe(0);

    for (const c of await cursorsOf(conn.id)) expect(c).not.toMatch(/null|NaN/);
    const injected = pipelines.find((p) => p.id === `{injected-pipeline-${repos[0]}}`);
    expect(JSON.stringify(injected)).toContain('DEPLOY_TOKEN');
    expect(JSON.stringify(pipelines)).not.toContain(variableSecret);
    expect(await dumpDatabase(stack.sql)).not.toContain(variableSecret);
  });
});

describe('migration 00005 redacts rows stored before it', () => {
  it('drops variable values and URL passwords already in raw, keeping the keys', async () => {
    const { readFile } = await import('node:fs/promises');
    const path = await import('node:path');
    const [conn] = await stack.sql<{ id: string }[]>`select id from connections where provider = 'bitrise' limit 1`;
    const [bb] = await stack.sql<{ id: string }[]>`select id from connections where provider = 'bitbucket' limit 1`;
    const old = secret('stored-before');
    const raw = {
      slug: 'stored-before-00005',
      original_build_params: { environments: [{ key: 'K', value: old }, old], nested: { environments: [{ mapped_to: 'M', value: old }] } },
      repo_url: `https://ci:${old}@example.com/r.git`,
    };
    await stack.sql`insert into bitrise_builds (connection_id, id, app_id, status, raw) values (${conn!.id}, 'stored-before-00005', 'app', 1, ${stack.sql.json(raw)})`;
    await stack.sql`insert into bitbucket_pipelines (connection_id, id, repository_id, raw)
                    values (${bb!.id}, 'stored-before-00005', 'repo', ${stack.sql.json({ variables: [{ key: 'V', value: old, secured: false }] })})`;
    await stack.sql`insert into sync_rejects (connection_id, resource, record_key, run_id, reason, raw)
                    values (${conn!.id}, 'builds', 'stored-before-00005', gen_random_uuid(), 'r', ${stack.sql.json(raw)})`;
    expect(await dumpDatabase(stack.sql)).toContain(old);

    const migration = await readFile(path.join(__dirname, '../../src/db/migrations/00005_redact_build_params.sql'), 'utf8');
    await stack.sql.begin((tx) => tx.unsafe(migration));
    expect(await dumpDatabase(stack.sql)).not.toContain(old);
    const [row] = await stack.sql<{ raw: any }[]>`select raw from bitrise_builds where id = 'stored-before-00005'`;
    expect(JSON.stringify(row!.raw)).toContain('"K"');
    expect(JSON.stringify(row!.raw)).toContain('https://ci@example.com/r.git');
  });
});
