import type { z } from 'zod';
import { startBitbucketSimulator, type BitbucketSimulator } from '../../simulators/bitbucket';
import { startBitriseSimulator, type BitriseSimulator } from '../../simulators/bitrise';
import * as bb from '../../src/providers/bitbucket/schemas';
import * as br from '../../src/providers/bitrise/schemas';
import {
  BITBUCKET_SEED,
  BITRISE_SEED,
  bitbucketTraffic,
  bitriseTraffic,
  isObject,
  type BitbucketTraffic,
  type BitriseTraffic,
  type Fetched,
  type Json,
} from '../conformance/traffic';

/**
 * The simulators speak the shapes the zod provider schemas (src/providers/{bitbucket,bitrise}/schemas.ts)
 * accept: every endpoint the product consumes is driven (test/conformance/traffic.ts) and each
 * body is parsed the way the sync will parse it, envelope first, then record by record. Needs no
 * Swagger file; `npm run test:conformance` holds both the simulators and these schemas against the
 * official specs.
 */

/** zod's complaints as `path: message`, [] when the value parses. */
function issues(schema: z.ZodType, value: unknown): string[] {
  const parsed = schema.safeParse(value);
  return parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
}

/** Records of every page, each page parsed with `raw` and each record with `item` on its own. */
function recordsOf(pages: Fetched[], raw: z.ZodType, key: 'values' | 'data', item: z.ZodType): Json[] {
  const out: Json[] = [];
  for (const page of pages) {
    expect(issues(raw, page.body)).toEqual([]);
    const values = isObject(page.body) && Array.isArray(page.body[key]) ? (page.body[key] as unknown[]) : [];
    values.forEach((v, i) =>
      expect({ at: `${page.url.pathname}${page.url.search} ${key}[${i}]`, issues: issues(item, v) }).toMatchObject({ issues: [] }),
    );
    out.push(...values.filter(isObject));
  }
  return out;
}

const clone = <T>(v: T): T => structuredClone(v);

// ---------------------------------------------------------------------------------------------

describe('Bitbucket simulator bodies parse with the zod schemas', () => {
  let sim: BitbucketSimulator;
  let traffic: BitbucketTraffic;

  beforeAll(async () => {
    sim = await startBitbucketSimulator({ seed: BITBUCKET_SEED });
    traffic = await bitbucketTraffic(sim);
  }, 30_000);

  afterAll(async () => {
    await sim?.close();
  });

  const lists = [
    ['workspaces', 'workspaces', bb.bitbucketWorkspaceAccessSchema],
    ['members', 'members', bb.bitbucketWorkspaceMembershipSchema],
    ['repositories', 'repositories', bb.bitbucketRepositorySchema],
    ['pull requests (every state)', 'pullRequests', bb.bitbucketPullRequestSchema],
    ['pull requests with participants', 'participants', bb.bitbucketPullRequestSchema],
    ['commits', 'commits', bb.bitbucketCommitSchema],
    ['pipelines', 'pipelines', bb.bitbucketPipelineSchema],
  ] as const;

  test.each(lists)('%s: each page is an envelope and each record parses on its own', (_name, key, schema) => {
    const pages = traffic.lists[key];
    expect(pages.length).toBeGreaterThan(1);
    const records = recordsOf(pages, bb.bitbucketRawPage, 'values', schema);
    expect(records.length).toBeGreaterThan(0);
    // The typed envelope accepts the same pages whole.
    for (const page of pages) expect(issues(bb.bitbucketPage(schema), page.body)).toEqual([]);
  });

  test('the listings cover the whole dataset', () => {
    const ds = sim.control.dataset();
    const acme = ds.workspaces.find((w) => w.slug === 'acme');
    const api = acme?.repositories.find((r) => r.slug === 'api');
    const count = (key: keyof BitbucketTraffic['lists']) =>
      traffic.lists[key].reduce((n, p) => n + bb.bitbucketRawPage.parse(p.body).values!.length, 0);
    expect(count('workspaces')).toBe(ds.workspaces.length);
    expect(count('members')).toBe(acme?.members);
    expect(count('repositories')).toBe(acme?.repositories.length);
    expect(count('pullRequests')).toBe(api?.pullRequests.total);
    expect(count('participants')).toBe(api?.pullRequests.total);
    expect(count('commits')).toBe(api?.commits);
    expect(count('pipelines')).toBe(api?.pipelines.total);
  });

  test('the parsed records carry what storage reads, in every variant the simulator makes', () => {
    const parse = <S extends z.ZodType>(key: keyof BitbucketTraffic['lists'], schema: S): z.infer<S>[] =>
      traffic.lists[key].flatMap((p) => bb.bitbucketPage(schema).parse(p.body).values);
    const prs = parse('participants', bb.bitbucketPullRequestSchema);
    expect(new Set(prs.map((p) => p.state))).toEqual(new Set(['OPEN', 'MERGED', 'DECLINED', 'SUPERSEDED']));
    expect(prs.some((p) => p.merge_commit?.hash)).toBe(true);
    expect(prs.every((p) => p.source?.branch?.name && p.destination?.branch?.name && p.author?.uuid)).toBe(true);
    const participants = prs.flatMap((p) => p.participants ?? []);
    expect(participants.some((p) => p.approved && p.participated_on)).toBe(true);
    expect(participants.every((p) => p.role && p.user?.uuid)).toBe(true);

    const commits = parse('commits', bb.bitbucketCommitSchema);
    expect(commits.every((c) => c.author?.raw && c.author.user?.uuid)).toBe(true);
    expect(commits.at(-1)?.parents).toEqual([]);

    const pipelines = parse('pipelines', bb.bitbucketPipelineSchema);
    expect(new Set(pipelines.map((p) => p.state.name))).toEqual(new Set(['PENDING', 'IN_PROGRESS', 'COMPLETED']));
    for (const p of pipelines) {
      expect(p.state.name === 'COMPLETED').toBe(p.state.result !== undefined && p.completed_on !== undefined);
      expect(p.trigger?.name && p.target?.ref_name && p.target.commit?.hash && p.creator?.uuid).toBeTruthy();
    }

    const members = parse('members', bb.bitbucketWorkspaceMembershipSchema);
    expect(members.every((m) => m.user.display_name && m.user.account_id && m.user.nickname)).toBe(true);
    const repos = parse('repositories', bb.bitbucketRepositorySchema);
    expect(repos.every((r) => r.slug && r.full_name === `acme/${r.slug}` && r.project?.key && r.mainbranch?.name)).toBe(true);
  });

  test('the current user and one repository parse', () => {
    expect(traffic.user.status).toBe(200);
    expect(issues(bb.bitbucketAccountSchema, traffic.user.body)).toEqual([]);
    expect(traffic.repository.status).toBe(200);
    expect(issues(bb.bitbucketRepositorySchema, traffic.repository.body)).toEqual([]);
  });

  test('token responses parse, `scope` and the older `scopes` alike', () => {
    for (const { name, exchange } of traffic.tokens) {
      expect({ name, status: exchange.status }).toEqual({ name, status: 200 });
      expect(issues(bb.bitbucketTokenResponseSchema, exchange.body)).toEqual([]);
      const token = bb.bitbucketTokenResponseSchema.parse(exchange.body);
      expect(token.scope ?? token.scopes).toMatch(/^[a-z:]+( [a-z:]+)*$/);
      expect(token.expires_in).toBe(7200);
      expect(token.refresh_token).toBeTruthy();
    }
    expect(traffic.tokens.map((t) => 'scopes' in t.exchange.body)).toEqual([false, false, true]);
  });

  test('OAuth and API error bodies parse with their error schemas', () => {
    for (const { name, exchange } of traffic.oauthErrors) {
      expect({ name, status: exchange.status >= 400 }).toEqual({ name, status: true });
      expect(issues(bb.bitbucketOAuthErrorSchema, exchange.body)).toEqual([]);
    }
    expect(traffic.errors.map((e) => e.status)).toEqual([401, 400, 404, 403, 403, 404, 503, 401]);
    for (const e of traffic.errors)
      expect({ url: e.url.pathname, issues: issues(bb.bitbucketErrorSchema, e.body) }).toMatchObject({ issues: [] });
  });

  test('records breaking what storage relies on are rejected', () => {
    const pr = clone(bb.bitbucketRawPage.parse(traffic.lists.pullRequests[0]?.body).values![0]) as Json;
    expect(issues(bb.bitbucketPullRequestSchema, pr)).toEqual([]);
    expect(issues(bb.bitbucketPullRequestSchema, { ...pr, id: String(pr.id) })).not.toEqual([]);
    expect(issues(bb.bitbucketPullRequestSchema, { ...pr, id: 1.5 })).not.toEqual([]);
    expect(issues(bb.bitbucketPullRequestSchema, { ...pr, updated_on: undefined })).not.toEqual([]);
    expect(issues(bb.bitbucketPullRequestSchema, { ...pr, updated_on: '2024-01-01 10:00:00' })).not.toEqual([]);
    expect(issues(bb.bitbucketPullRequestSchema, { ...pr, created_on: 1_700_000_000 })).not.toEqual([]);
    expect(issues(bb.bitbucketPullRequestSchema, { ...pr, author: { display_name: 'no uuid' } })).not.toEqual([]);

    const repo = clone(traffic.repository.body) as Json;
    expect(issues(bb.bitbucketRepositorySchema, { ...repo, uuid: undefined })).not.toEqual([]);
    expect(issues(bb.bitbucketRepositorySchema, { ...repo, full_name: 'no-slash' })).not.toEqual([]);

    const commit = clone(bb.bitbucketRawPage.parse(traffic.lists.commits[0]?.body).values![0]) as Json;
    expect(issues(bb.bitbucketCommitSchema, { ...commit, hash: 'not-hex' })).not.toEqual([]);
    expect(issues(bb.bitbucketCommitSchema, { ...commit, parents: [{}] })).not.toEqual([]);

    const pipeline = clone(bb.bitbucketRawPage.parse(traffic.lists.pipelines[0]?.body).values![0]) as Json;
    expect(issues(bb.bitbucketPipelineSchema, { ...pipeline, build_number: '7' })).not.toEqual([]);
    expect(issues(bb.bitbucketPipelineSchema, { ...pipeline, state: {} })).not.toEqual([]);
    expect(issues(bb.bitbucketWorkspaceAccessSchema, { administrator: true, workspace: { slug: 'acme' } })).not.toEqual([]);
    expect(issues(bb.bitbucketTokenResponseSchema, { token_type: 'bearer', expires_in: 7200 })).not.toEqual([]);
    expect(issues(bb.bitbucketErrorSchema, { type: 'error', error: {} })).not.toEqual([]);
    // One bad record fails a typed page, not a raw one: that is what quarantining relies on.
    const page = clone(traffic.lists.pullRequests[0]?.body) as Json;
    (page.values as Json[])[0] = { ...pr, id: 'x' };
    expect(issues(bb.bitbucketRawPage, page)).toEqual([]);
    expect(issues(bb.bitbucketPage(bb.bitbucketPullRequestSchema), page)).not.toEqual([]);
    expect(issues(bb.bitbucketRawPage, { ...page, next: 'not a url' })).not.toEqual([]);
  });

  test('unknown fields pass through and documented nulls are accepted', () => {
    const pr = clone(bb.bitbucketRawPage.parse(traffic.lists.pullRequests[0]?.body).values![0]) as Json;
    const parsed = bb.bitbucketPullRequestSchema.parse({ ...pr, brand_new: { x: 1 }, merge_commit: null });
    expect(parsed).toMatchObject({ brand_new: { x: 1 }, merge_commit: null, links: pr.links });
    const repo = clone(traffic.repository.body) as Json;
    expect(issues(bb.bitbucketRepositorySchema, { ...repo, mainbranch: null, language: '', slug: undefined })).toEqual([]);
    expect(issues(bb.bitbucketParticipantSchema, { role: 'REVIEWER', approved: false, state: null, participated_on: null })).toEqual([]);
    // `/user/workspaces` entries as the spec's own example shows them: no name, no is_private.
    expect(
      issues(bb.bitbucketWorkspaceAccessSchema, {
        type: 'workspace_access',
        workspace: { type: 'workspace_base', uuid: '{a}', slug: 'a' },
      }),
    ).toEqual([]);
    expect(
      issues(bb.bitbucketErrorSchema, { type: 'error', error: { message: 'm', detail: { required: ['account'], granted: [] } } }),
    ).toEqual([]);
    expect(
      issues(bb.bitbucketTokenResponseSchema, { access_token: 'a', expires_in: 7200, token_type: 'bearer', scope: 'account' }),
    ).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------

describe('Bitrise simulator bodies parse with the zod schemas', () => {
  let sim: BitriseSimulator;
  let traffic: BitriseTraffic;

  beforeAll(async () => {
    sim = await startBitriseSimulator({ seed: BITRISE_SEED });
    traffic = await bitriseTraffic(sim);
  }, 30_000);

  afterAll(async () => {
    await sim?.close();
  });

  const lists = [
    ['apps', 'apps', br.bitriseAppSchema],
    ['builds', 'builds', br.bitriseBuildSchema],
    ['pipelines and standalone builds', 'pipelines', br.bitrisePipelineListItemSchema],
  ] as const;

  test.each(lists)('%s: each page is an envelope and each record parses on its own', (_name, key, schema) => {
    const pages = traffic.lists[key];
    expect(pages.length).toBeGreaterThan(1);
    expect(recordsOf(pages, br.bitriseRawPage, 'data', schema).length).toBeGreaterThan(0);
    for (const page of pages) expect(issues(br.bitrisePage(schema), page.body)).toEqual([]);
  });

  test('the listings cover the whole dataset', () => {
    const apps = sim.control.dataset().organizations.flatMap((o) => o.apps);
    const count = (key: keyof BitriseTraffic['lists']) =>
      traffic.lists[key].reduce((n, p) => n + br.bitriseRawPage.parse(p.body).data!.length, 0);
    expect(count('apps')).toBe(apps.length);
    expect(count('builds')).toBe(apps[0]?.builds.total);
    expect(count('pipelines')).toBe((apps[0]?.builds.total ?? 0) + (apps[0]?.pipelines.total ?? 0));
  });

  test('the current user, organizations, one app and single builds parse', () => {
    expect(issues(br.bitriseData(br.bitriseUserSchema), traffic.me.body)).toEqual([]);
    expect(recordsOf([traffic.organizations], br.bitriseRawPage, 'data', br.bitriseOrganizationSchema)).toHaveLength(
      BITRISE_SEED.organizations,
    );
    expect(issues(br.bitriseData(br.bitriseAppSchema), traffic.app.body)).toEqual([]);
    expect(traffic.builds.map((b) => b.status)).toEqual([200, 200]);
    const builds = traffic.builds.map((b) => {
      expect(issues(br.bitriseRawData, b.body)).toEqual([]);
      return br.bitriseData(br.bitriseBuildSchema).parse(b.body).data;
    });
    expect(builds.map((b) => b.status !== 0)).toEqual([true, false]);
    // A running build: nothing finished yet, and the real API's nulls for unset strings.
    expect(builds[1]).toMatchObject({ finished_at: null });
  });

  test('the parsed records carry what storage reads', () => {
    const builds = traffic.lists.builds.flatMap((p) => br.bitrisePage(br.bitriseBuildSchema).parse(p.body).data);
    expect(new Set(builds.map((b) => b.status)).size).toBeGreaterThan(2);
    expect(builds.every((b) => b.triggered_workflow && b.branch && b.machine_type_id && b.stack_identifier && b.status_text)).toBe(true);
    expect(builds.some((b) => b.commit_hash === null) && builds.some((b) => typeof b.commit_hash === 'string')).toBe(true);
    expect(builds.filter((b) => b.status !== 0).every((b) => typeof b.credit_cost === 'number' && b.finished_at)).toBe(true);
    const items = traffic.lists.pipelines.flatMap((p) => br.bitrisePage(br.bitrisePipelineListItemSchema).parse(p.body).data);
    expect(items.some((i) => i.is_pipeline) && items.some((i) => !i.is_pipeline)).toBe(true);
    const apps = traffic.lists.apps.flatMap((p) => br.bitrisePage(br.bitriseAppSchema).parse(p.body).data);
    expect(apps.every((a) => a.title && a.provider && a.repo_url && a.owner?.slug)).toBe(true);
  });

  test('error bodies parse with the error schema', () => {
    expect(traffic.errors.map((e) => e.status)).toEqual([401, 401, 400, 404, 403, 500]);
    for (const e of traffic.errors)
      expect({ url: e.url.pathname, issues: issues(br.bitriseErrorSchema, e.body) }).toMatchObject({ issues: [] });
  });

  test('records breaking what storage relies on are rejected; nulls and new fields are not', () => {
    const build = clone(br.bitriseRawPage.parse(traffic.lists.builds[0]?.body).data![0]) as Json;
    expect(issues(br.bitriseBuildSchema, build)).toEqual([]);
    expect(issues(br.bitriseBuildSchema, { ...build, status: '1' })).not.toEqual([]);
    expect(issues(br.bitriseBuildSchema, { ...build, status: null })).not.toEqual([]);
    expect(issues(br.bitriseBuildSchema, { ...build, slug: undefined })).not.toEqual([]);
    expect(issues(br.bitriseBuildSchema, { ...build, slug: 42 })).not.toEqual([]);
    expect(issues(br.bitriseBuildSchema, { ...build, triggered_at: 1_700_000_000 })).not.toEqual([]);
    expect(issues(br.bitriseBuildSchema, { ...build, triggered_at: '2024-01-01T10:00:00' })).not.toEqual([]);
    expect(issues(br.bitrisePipelineListItemSchema, { slug: 'p', status: 1, triggered_at: '2024-01-01T10:00:00Z' })).not.toEqual([]);
    expect(issues(br.bitriseAppSchema, { title: 'no slug' })).not.toEqual([]);
    expect(issues(br.bitriseUserSchema, { username: 'no slug' })).not.toEqual([]);
    expect(issues(br.bitriseErrorSchema, {})).not.toEqual([]);
    expect(issues(br.bitriseRawPage, { data: {} })).not.toEqual([]);

    // What the real API sends for unset values, of any type, and fields added later.
    const nulls = { commit_hash: null, tag: null, credit_cost: null, finished_at: null, original_build_params: null, is_on_hold: null };
    expect(br.bitriseBuildSchema.parse({ ...build, ...nulls, ai_run_type: 'code-reviewer' })).toMatchObject({
      ...nulls,
      ai_run_type: 'code-reviewer',
    });
    expect(issues(br.bitriseErrorSchema, { error_msg: 'proxy error' })).toEqual([]);
    expect(issues(br.bitriseRawPage, { data: [], paging: { total_item_count: 0, page_item_limit: 0, next: null } })).toEqual([]);
  });
});
