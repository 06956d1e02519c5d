import { z } from 'zod';
import { startBitbucketSimulator, type BitbucketSimulator } from '../../simulators/bitbucket';
import { startBitriseSimulator, type BitriseSimulator } from '../../simulators/bitrise';
import * as bb from '../../src/providers/bitbucket/schemas';
import * as br from '../../src/providers/bitrise/schemas';
import {
  allowNullStrings,
  compareWithSwagger,
  loadSpec,
  readSpec,
  SPEC_FILES,
  SpecValidator,
  SwaggerShapes,
  type Deviation,
  type SwaggerDoc,
} from './swagger';
import { BITBUCKET_SEED, BITRISE_SEED, bitbucketTraffic, bitriseTraffic, type Fetched } from './traffic';

/**
 * The zod provider schemas (src/providers/{bitbucket,bitrise}/schemas.ts) held against the official
 * Swagger files:
 *
 * 1. Every field a schema declares exists at the same place of the spec (following `$ref`, `allOf`
 *    and discriminator subtypes) with a compatible JSON type, except the documented real-world
 *    differences listed below. Nullability is not compared: the schemas accept `null` where the
 *    providers send it, which the specs never say.
 * 2. Every body the simulators produce for the product (test/conformance/traffic.ts) satisfies both
 *    the operation's Swagger response schema and the zod schema.
 */

/**
 * Where the Bitbucket zod schemas knowingly differ from https://api.bitbucket.org/swagger.json.
 * Each entry must still be needed: an unused one fails the suite.
 */
const BITBUCKET_DEVIATIONS: Deviation[] = [
  ...(['name', 'is_private'] as const).map((field): Deviation => ({
    at: `workspace_access.workspace.${field}`,
    kind: 'missing',
    why:
      '`workspace_base` declares only uuid, slug and links, and the operation example sends nothing else. Declared optional ' +
      'because the sync stores it when present (the simulator sends it); production must expect it absent.',
    sources: ['https://developer.atlassian.com/cloud/bitbucket/rest/api-group-workspaces/#api-user-workspaces-get'],
  })),
  {
    at: 'repository.slug',
    kind: 'missing',
    why: 'Sent by the real API (the URL segment of every repository link) although the definition lacks it.',
    sources: [
      'https://github.com/ACenterA/acentera-cms/blob/04ce2732337b15b2eb7e9e75aaf82dc260f0a21a/client/views/modals/CreateSiteModal.vue',
      'https://github.com/SonarSource/sonar-loc-count/pull/22',
    ],
  },
  {
    at: 'pipeline.trigger.name',
    kind: 'missing',
    why: 'Sent by the real API (PUSH, MANUAL, SCHEDULE…) although pipeline_trigger and its subtypes declare no properties.',
    sources: [
      'https://github.com/tuhrig/tuhrig.github.io/blob/9fcd83c349d214c9b06c108cad1935f8bb3b7ae8/_posts/2023/2023-03-06-plotting-test-results-to-see-regressions.md',
    ],
  },
  {
    at: 'error.error.detail',
    kind: 'type',
    why: 'A string in the spec; an object ({granted, required}) on scope failures.',
    sources: [
      'https://github.com/SonarSource/sonarqube/blob/172b54f60683aa3ddd7c75587bdd65fd41f5d12f/server/sonar-alm-client/src/test/java/org/sonar/alm/client/bitbucket/bitbucketcloud/BitbucketCloudRestClientTest.java',
    ],
  },
];

/** Where the Bitrise zod schemas knowingly differ from https://api-docs.bitrise.io/docs/swagger.json (nulls aside): nowhere. */
const BITRISE_DEVIATIONS: Deviation[] = [];

/** One zod schema and the Swagger nodes of the place it describes. */
interface Mapping {
  name: string;
  schema: z.ZodType;
  place: (s: SwaggerShapes) => ReturnType<SwaggerShapes['definition']>;
}

const valuesOf = (op: string) => (s: SwaggerShapes) => s.items(s.property(s.response(op, 200), 'values'));
const dataOf = (op: string) => (s: SwaggerShapes) => s.property(s.response(op, 200), 'data');
const dataItemsOf = (op: string) => (s: SwaggerShapes) => s.items(s.property(s.response(op, 200), 'data'));
const responseOf = (op: string) => (s: SwaggerShapes) => s.response(op, 200);

const BITBUCKET_LISTS = [
  '/user/workspaces',
  '/workspaces/{workspace}/members',
  '/repositories/{workspace}',
  '/repositories/{workspace}/{repo_slug}/pullrequests',
  '/repositories/{workspace}/{repo_slug}/commits',
  '/repositories/{workspace}/{repo_slug}/pipelines',
];

const BITBUCKET_MAPPINGS: Mapping[] = [
  { name: 'account', schema: bb.bitbucketAccountSchema, place: responseOf('/user') },
  { name: 'workspace_access', schema: bb.bitbucketWorkspaceAccessSchema, place: valuesOf('/user/workspaces') },
  { name: 'workspace_membership', schema: bb.bitbucketWorkspaceMembershipSchema, place: valuesOf('/workspaces/{workspace}/members') },
  { name: 'repository', schema: bb.bitbucketRepositorySchema, place: valuesOf('/repositories/{workspace}') },
  { name: 'repository', schema: bb.bitbucketRepositorySchema, place: responseOf('/repositories/{workspace}/{repo_slug}') },
  { name: 'pullrequest', schema: bb.bitbucketPullRequestSchema, place: valuesOf('/repositories/{workspace}/{repo_slug}/pullrequests') },
  { name: 'participant', schema: bb.bitbucketParticipantSchema, place: (s) => s.definition('participant') },
  { name: 'commit', schema: bb.bitbucketCommitSchema, place: valuesOf('/repositories/{workspace}/{repo_slug}/commits') },
  { name: 'pipeline', schema: bb.bitbucketPipelineSchema, place: valuesOf('/repositories/{workspace}/{repo_slug}/pipelines') },
  { name: 'error', schema: bb.bitbucketErrorSchema, place: (s) => s.definition('error') },
  ...BITBUCKET_LISTS.map((op): Mapping => ({ name: `page ${op}`, schema: bb.bitbucketRawPage, place: responseOf(op) })),
];

const BITRISE_MAPPINGS: Mapping[] = [
  { name: 'user', schema: br.bitriseUserSchema, place: dataOf('/me') },
  { name: 'organization', schema: br.bitriseOrganizationSchema, place: dataItemsOf('/organizations') },
  { name: 'app', schema: br.bitriseAppSchema, place: dataItemsOf('/apps') },
  { name: 'app', schema: br.bitriseAppSchema, place: dataOf('/apps/{app-slug}') },
  { name: 'build', schema: br.bitriseBuildSchema, place: dataItemsOf('/apps/{app-slug}/builds') },
  { name: 'build', schema: br.bitriseBuildSchema, place: dataOf('/apps/{app-slug}/builds/{build-slug}') },
  { name: 'pipeline list item', schema: br.bitrisePipelineListItemSchema, place: dataItemsOf('/apps/{app-slug}/pipelines') },
  { name: 'paging', schema: br.bitrisePagingSchema, place: (s) => s.definition('v0.PagingResponseModel') },
  {
    name: 'error',
    schema: br.bitriseErrorSchema,
    place: (s) => [...s.definition('service.StandardErrorRespModel'), ...s.definition('service.ProxyErrorRespModel')],
  },
  // `GET /organizations` is not paged (its response has no `paging`), so only its records are held here.
  ...['/apps', '/apps/{app-slug}/builds', '/apps/{app-slug}/pipelines'].map((op): Mapping => ({
    name: `page ${op}`,
    schema: br.bitriseRawPage,
    place: responseOf(op),
  })),
  ...['/me', '/apps/{app-slug}', '/apps/{app-slug}/builds/{build-slug}'].map((op): Mapping => ({
    name: `single ${op}`,
    schema: br.bitriseRawData,
    place: responseOf(op),
  })),
];

/** Differences found that no deviation allows, and deviations nothing needed. */
function audit(doc: SwaggerDoc, mappings: Mapping[], allowed: Deviation[]) {
  const shapes = new SwaggerShapes(doc);
  const used = new Set<Deviation>();
  const unexplained: string[] = [];
  for (const m of mappings) {
    const json = z.toJSONSchema(m.schema, { io: 'input', unrepresentable: 'any' });
    for (const d of compareWithSwagger(shapes, json, m.place(shapes), m.name)) {
      const allow = allowed.find((a) => a.at === d.at && a.kind === d.kind);
      if (allow) used.add(allow);
      else unexplained.push(`${d.at} (${d.kind}): ${d.detail}`);
    }
  }
  return { unexplained, unused: allowed.filter((a) => !used.has(a)).map((a) => a.at) };
}

function zodIssues(schema: z.ZodType, value: unknown): string[] {
  const parsed = schema.safeParse(value);
  return parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
}

/** A body against its operation's response schema (the generic error definition for undocumented error statuses). */
function swaggerIssues(spec: SpecValidator, res: Fetched, errorDefinition: string): string[] {
  const template = spec.template(res.url.pathname);
  const validate = spec.response(template, res.status) ?? (res.status >= 400 ? spec.definition(errorDefinition) : undefined);
  if (!validate) return [`${template} documents no schema for ${res.status}`];
  return spec.errors(validate, res.body);
}

// ---------------------------------------------------------------------------------------------

describe('the Bitbucket zod schemas agree with bitbucket-cloud.swagger.json', () => {
  let spec: SpecValidator;
  let sim: BitbucketSimulator;

  beforeAll(async () => {
    spec = new SpecValidator('bitbucket', await loadSpec(SPEC_FILES.bitbucket));
    sim = await startBitbucketSimulator({ seed: BITBUCKET_SEED });
  }, 30_000);

  afterAll(async () => {
    await sim?.close();
  });

  test('every declared field exists in the spec, except the documented deviations, each of which is still needed', () => {
    expect(audit(readSpec(SPEC_FILES.bitbucket), BITBUCKET_MAPPINGS, BITBUCKET_DEVIATIONS)).toEqual({ unexplained: [], unused: [] });
  });

  test('the check can fail: an undeclared field and a mistyped one are reported', () => {
    const doc = readSpec(SPEC_FILES.bitbucket);
    const wrong: Mapping[] = [
      {
        name: 'pullrequest',
        schema: bb.bitbucketPullRequestSchema.extend({ closed_at: z.string(), comment_count: z.string() }),
        place: valuesOf('/repositories/{workspace}/{repo_slug}/pullrequests'),
      },
    ];
    wrong.push({
      name: 'pipeline',
      schema: bb.bitbucketPipelineSchema.extend({
        state: z.looseObject({ name: z.string(), result: z.looseObject({ name: z.string(), code: z.int() }) }),
      }),
      place: valuesOf('/repositories/{workspace}/{repo_slug}/pipelines'),
    });
    expect(audit(doc, wrong, []).unexplained).toEqual([
      'pullrequest.comment_count (type): zod string, spec integer',
      'pullrequest.closed_at (missing): not declared by the spec',
      'pipeline.state.result.code (missing): not declared by the spec',
      'pipeline.trigger.name (missing): not declared by the spec',
    ]);
  });

  test('the token endpoint is outside the spec, so its schemas are checked against RFC 6749 bodies only', () => {
    const doc = readSpec(SPEC_FILES.bitbucket);
    const tokenUrl = new URL(doc.securityDefinitions.oauth2?.tokenUrl ?? '');
    expect(tokenUrl.pathname).toBe('/site/oauth2/access_token');
    expect(Object.keys(doc.paths).some((p) => `${doc.basePath}${p}` === tokenUrl.pathname)).toBe(false);
  });

  test('every body the simulator produces for the product satisfies the spec and the zod schema', async () => {
    const t = await bitbucketTraffic(sim);
    const problems: string[] = [];
    const check = (res: Fetched, schema: z.ZodType, records?: z.ZodType) => {
      const at = `${res.status} ${res.url.pathname}${res.url.search}`;
      for (const i of swaggerIssues(spec, res, 'error')) problems.push(`${at} swagger: ${i}`);
      for (const i of zodIssues(schema, res.body)) problems.push(`${at} zod: ${i}`);
      if (records) for (const i of zodIssues(bb.bitbucketPage(records), res.body)) problems.push(`${at} zod records: ${i}`);
    };
    const lists: [keyof typeof t.lists, z.ZodType][] = [
      ['workspaces', bb.bitbucketWorkspaceAccessSchema],
      ['members', bb.bitbucketWorkspaceMembershipSchema],
      ['repositories', bb.bitbucketRepositorySchema],
      ['pullRequests', bb.bitbucketPullRequestSchema],
      ['participants', bb.bitbucketPullRequestSchema],
      ['commits', bb.bitbucketCommitSchema],
      ['pipelines', bb.bitbucketPipelineSchema],
    ];
    for (const [key, records] of lists) for (const page of t.lists[key]) check(page, bb.bitbucketRawPage, records);
    check(t.user, bb.bitbucketAccountSchema);
    check(t.repository, bb.bitbucketRepositorySchema);
    for (const e of t.errors) check(e, bb.bitbucketErrorSchema);
    expect(problems).toEqual([]);
    expect(Object.values(t.lists).flat().length).toBeGreaterThan(10);
  });
});

describe('the Bitrise zod schemas agree with bitrise.swagger.json', () => {
  let spec: SpecValidator;
  let sim: BitriseSimulator;

  beforeAll(async () => {
    spec = new SpecValidator('bitrise', allowNullStrings(await loadSpec(SPEC_FILES.bitrise)));
    sim = await startBitriseSimulator({ seed: BITRISE_SEED });
  }, 30_000);

  afterAll(async () => {
    await sim?.close();
  });

  test('every declared field exists in the spec with a compatible type', () => {
    expect(audit(readSpec(SPEC_FILES.bitrise), BITRISE_MAPPINGS, BITRISE_DEVIATIONS)).toEqual({ unexplained: [], unused: [] });
  });

  test('the check can fail: an undeclared field and a mistyped one are reported', () => {
    const wrong: Mapping[] = [
      {
        name: 'build',
        schema: br.bitriseBuildSchema.extend({ is_pipeline: z.boolean(), status: z.string() }),
        place: dataItemsOf('/apps/{app-slug}/builds'),
      },
    ];
    expect(audit(readSpec(SPEC_FILES.bitrise), wrong, []).unexplained).toEqual([
      'build.status (type): zod string, spec integer',
      'build.is_pipeline (missing): not declared by the spec',
    ]);
  });

  test('every body the simulator produces for the product satisfies the spec and the zod schema', async () => {
    const t = await bitriseTraffic(sim);
    const problems: string[] = [];
    const check = (res: Fetched, schema: z.ZodType) => {
      const at = `${res.status} ${res.url.pathname}${res.url.search}`;
      for (const i of swaggerIssues(spec, res, 'service.StandardErrorRespModel')) problems.push(`${at} swagger: ${i}`);
      for (const i of zodIssues(schema, res.body)) problems.push(`${at} zod: ${i}`);
    };
    for (const page of t.lists.apps) check(page, br.bitrisePage(br.bitriseAppSchema));
    for (const page of t.lists.builds) check(page, br.bitrisePage(br.bitriseBuildSchema));
    for (const page of t.lists.pipelines) check(page, br.bitrisePage(br.bitrisePipelineListItemSchema));
    check(t.me, br.bitriseData(br.bitriseUserSchema));
    check(t.organizations, br.bitrisePage(br.bitriseOrganizationSchema));
    check(t.app, br.bitriseData(br.bitriseAppSchema));
    for (const b of t.builds) check(b, br.bitriseData(br.bitriseBuildSchema));
    for (const e of t.errors) check(e, br.bitriseErrorSchema);
    expect(problems).toEqual([]);
    expect(t.builds).toHaveLength(2);
  });
});
