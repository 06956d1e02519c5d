import Ajv from 'ajv';
import { DEFAULT_BITBUCKET_CONSUMER, startBitbucketSimulator, type BitbucketSimulator } from '../../simulators/bitbucket';
import { startBitriseSimulator, type BitriseSimulator } from '../../simulators/bitrise';
import { allowNullStrings, loadSpec, SPEC_FILES, SpecValidator } from './swagger';
import { collect, get, isObject, type Fetched, type Json } from './traffic';

/**
 * The simulators are only worth something if what they send is what the providers send. This
 * suite drives every simulated endpoint, success and failure, and validates each JSON body
 * against the response schema of the matching operation in the official Swagger files (in
 * PROVIDER_SPECS_DIR; `npm run test:conformance`). Where the real API is known to differ from its
 * spec, exactly that difference is allowed, with its public source.
 */

// ---------------------------------------------------------------------------------------------

describe('Bitbucket simulator conforms to bitbucket-cloud.swagger.json', () => {
  let spec: SpecValidator;
  let sim: BitbucketSimulator;
  let auth: Record<string, string>;
  const consumer = DEFAULT_BITBUCKET_CONSUMER;
  const basic = `Basic ${Buffer.from(`${consumer.clientId}:${consumer.clientSecret}`).toString('base64')}`;
  const seed = {
    workspaces: 2,
    reposPerWorkspace: 3,
    membersPerWorkspace: 5,
    pullRequestsPerRepo: 12,
    commitsPerRepo: 25,
    pipelinesPerRepo: 8,
  };
  /** Documented for every endpoint by the narrative ("Pagination", "Filter and sort", "Partial responses"). */
  const GENERIC = ['page', 'pagelen', 'q', 'sort', 'fields'];

  /** Validates a JSON response against its operation, plus every embedded typed object. */
  function expectConforms(res: Fetched, opts: { repeatable?: string[]; types?: string[]; checkParams?: boolean } = {}) {
    const template = spec.template(res.url.pathname);
    if (opts.checkParams !== false) expect(spec.paramErrors(template, res.url.searchParams, GENERIC, opts.repeatable)).toEqual([]);
    // Statuses an operation does not document (e.g. 403 on pipelines, 5xx) are checked against
    // the generic `error` definition, the body the documented 4xx responses all reference.
    const validate = spec.response(template, res.status) ?? (res.status >= 400 ? spec.definition('error') : undefined);
    if (!validate) throw new Error(`${template} documents no schema for ${res.status}`);
    expect(spec.errors(validate, res.body)).toEqual([]);
    // Swagger 2.0 `discriminator: type` means an object's `type` names its concrete definition
    // (pipeline_state_completed, pipeline_trigger_push…). The operation schema only knows the
    // base type, so each typed object is also validated against the definition it claims.
    const seen = new Set<string>();
    const problems: string[] = [];
    const visit = (node: unknown, at: string): void => {
      if (Array.isArray(node)) return node.forEach((v, i) => visit(v, `${at}/${i}`));
      if (!isObject(node)) return;
      if (typeof node.type === 'string' && spec.doc.definitions[node.type]) {
        seen.add(node.type);
        problems.push(...spec.errors(spec.definition(node.type), node).map((e) => `${at} (${String(node.type)}): ${e}`));
      }
      for (const [k, v] of Object.entries(node)) visit(v, `${at}/${k}`);
    };
    visit(res.body, '');
    expect(problems).toEqual([]);
    for (const t of opts.types ?? []) expect(seen).toContain(t);
  }

  async function authorize(): Promise<{ status: number; body: Json }> {
    const redirect = 'http://127.0.0.1:9/callback';
    const res = await get(
      `${sim.oauthUrl}/authorize?client_id=${consumer.clientId}&response_type=code&state=s1&redirect_uri=${encodeURIComponent(redirect)}`,
    );
    const code = new URL(res.headers.get('location') ?? '').searchParams.get('code') ?? '';
    return token({ grant_type: 'authorization_code', code });
  }

  async function token(
    form: Record<string, string>,
    authorization: string | null = basic,
  ): Promise<{ status: number; body: Json; headers: Headers }> {
    const res = await fetch(`${sim.oauthUrl}/access_token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization ? { authorization } : {}) },
      body: new URLSearchParams(form).toString(),
    });
    return { status: res.status, body: (await res.json()) as Json, headers: res.headers };
  }

  /**
   * The spec does not model the token endpoint (it lives on bitbucket.org, outside basePath
   * /2.0); its `securityDefinitions.oauth2` only names the URLs. These schemas encode the observed
   * success body (https://community.atlassian.com/t5/Bitbucket-questions/How-do-I-refresh-a-token/qaq-p/1545002,
   * with `state` = grant type as in https://github.com/terrakube-io/terrakube/issues/47; `scope`
   * since 2026-05-04, https://community.developer.atlassian.com/t/oauth-2-0-and-api-authentication-changes-for-bitbucket-cloud/99003)
   * and RFC 6749 §5.2 error bodies (https://www.rfc-editor.org/rfc/rfc6749#section-5.2).
   */
  const tokenAjv = new Ajv({ strict: false, allErrors: true });
  const tokenResponse = (scopeField: 'scope' | 'scopes') =>
    tokenAjv.compile({
      type: 'object',
      required: ['access_token', scopeField, 'expires_in', 'token_type', 'state', 'refresh_token'],
      properties: {
        access_token: { type: 'string', minLength: 20 },
        [scopeField]: { type: 'string', pattern: '^[a-z:]+( [a-z:]+)*$' },
        expires_in: { type: 'integer', minimum: 1 },
        token_type: { const: 'bearer' },
        state: { enum: ['authorization_code', 'refresh_token'] },
        refresh_token: { type: 'string', minLength: 10 },
      },
      additionalProperties: false,
    });
  const oauthError = tokenAjv.compile({
    type: 'object',
    required: ['error', 'error_description'],
    properties: {
      error: { enum: ['invalid_request', 'invalid_client', 'invalid_grant', 'unsupported_grant_type'] },
      error_description: { type: 'string' },
    },
    additionalProperties: false,
  });

  beforeAll(async () => {
    spec = new SpecValidator('bitbucket', await loadSpec(SPEC_FILES.bitbucket));
    sim = await startBitbucketSimulator({ seed });
    const granted = await authorize();
    auth = { authorization: `Bearer ${String(granted.body.access_token)}` };
  }, 30_000);

  afterAll(async () => {
    await sim?.close();
  });

  test('the OAuth endpoints sit where the spec security definition puts them', () => {
    const oauth2 = spec.doc.securityDefinitions.oauth2;
    expect(new URL(`${sim.oauthUrl}/authorize`).pathname).toBe(new URL(oauth2?.authorizationUrl ?? '').pathname);
    expect(new URL(`${sim.oauthUrl}/access_token`).pathname).toBe(new URL(oauth2?.tokenUrl ?? '').pathname);
    expect(new URL(sim.apiUrl).pathname).toBe(spec.doc.basePath);
  });

  test('authorize approves with a code, echoes state (repeated too), rejects unknown clients and can deny', async () => {
    const base = `${sim.oauthUrl}/authorize?client_id=${consumer.clientId}&response_type=code&redirect_uri=${encodeURIComponent('http://127.0.0.1:9/cb?keep=1')}`;
    const ok = await get(`${base}&state=a&state=b`);
    expect(ok.status).toBe(302);
    const location = new URL(ok.headers.get('location') ?? '');
    expect(location.origin + location.pathname).toBe('http://127.0.0.1:9/cb');
    expect(location.searchParams.get('keep')).toBe('1');
    expect(location.searchParams.get('code')).toMatch(/^[A-Za-z0-9]{10,}$/);
    expect(location.searchParams.getAll('state')).toEqual(['a', 'b']);

    const unknown = await get(`${sim.oauthUrl}/authorize?client_id=nope&response_type=code&state=x`);
    expect(unknown.status).toBe(400);
    expect(unknown.headers.get('content-type')).toMatch(/^text\/html/);

    sim.control.denyNextAuthorization();
    const denied = new URL((await get(`${base}&state=z`)).headers.get('location') ?? '');
    expect(denied.searchParams.get('error')).toBe('access_denied');
    expect(denied.searchParams.get('error_description')).toBeTruthy();
    expect(denied.searchParams.get('state')).toBe('z');
    expect(denied.searchParams.has('code')).toBe(false);
  });

  test('code exchange returns the documented token body and a code works once', async () => {
    const redirect = 'http://127.0.0.1:9/cb';
    const res = await get(
      `${sim.oauthUrl}/authorize?client_id=${consumer.clientId}&response_type=code&redirect_uri=${encodeURIComponent(redirect)}`,
    );
    const code = new URL(res.headers.get('location') ?? '').searchParams.get('code') ?? '';
    // Form-field client authentication is accepted as well as HTTP Basic.
    const first = await token(
      { grant_type: 'authorization_code', code, client_id: consumer.clientId, client_secret: consumer.clientSecret },
      null,
    );
    expect(first.status).toBe(200);
    const validate = tokenResponse('scope');
    expect(validate(first.body) ? [] : validate.errors).toEqual([]);
    expect(first.body.expires_in).toBe(7200);
    expect(first.body.state).toBe('authorization_code');

    const again = await token({ grant_type: 'authorization_code', code });
    expect(again.status).toBe(400);
    expect(oauthError(again.body)).toBe(true);
    expect(again.body.error).toBe('invalid_grant');
  });

  test('client authentication failures are 401 invalid_client', async () => {
    const wrong = `Basic ${Buffer.from(`${consumer.clientId}:not-the-secret`).toString('base64')}`;
    for (const authorization of [wrong, null]) {
      const res = await token({ grant_type: 'refresh_token', refresh_token: 'x' }, authorization);
      expect(res.status).toBe(401);
      expect(oauthError(res.body)).toBe(true);
      expect(res.body.error).toBe('invalid_client');
    }
  });

  test('refresh rotates the refresh token; the rotated-out one gets the observed invalid_request body', async () => {
    const granted = await authorize();
    const reuseBefore = sim.control.refreshTokenReuseCount();
    const refreshed = await token({ grant_type: 'refresh_token', refresh_token: String(granted.body.refresh_token) });
    expect(refreshed.status).toBe(200);
    const validate = tokenResponse('scope');
    expect(validate(refreshed.body) ? [] : validate.errors).toEqual([]);
    expect(refreshed.body.state).toBe('refresh_token');
    expect(refreshed.body.refresh_token).not.toBe(granted.body.refresh_token);

    const stale = await token({ grant_type: 'refresh_token', refresh_token: String(granted.body.refresh_token) });
    expect(stale.status).toBe(400);
    // Exact body and key order as observed in
    // https://community.atlassian.com/t5/Bitbucket-questions/How-do-I-refresh-a-token/qaq-p/1545002
    expect(JSON.stringify(stale.body)).toBe('{"error_description":"Invalid refresh_token","error":"invalid_request"}');
    expect(sim.control.refreshTokenReuseCount()).toBe(reuseBefore + 1);

    const next = await token({ grant_type: 'refresh_token', refresh_token: String(refreshed.body.refresh_token) });
    expect(next.status).toBe(200);
  });

  test('the scope field follows the scopeField option (scopes before 2026-05-04)', async () => {
    const legacy = await startBitbucketSimulator({ scopeField: 'scopes', seed: { workspaces: 1 } });
    try {
      const res = await get(
        `${legacy.oauthUrl}/authorize?client_id=${consumer.clientId}&response_type=code&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2F`,
      );
      const code = new URL(res.headers.get('location') ?? '').searchParams.get('code') ?? '';
      const tok = await fetch(`${legacy.oauthUrl}/access_token`, {
        method: 'POST',
        headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
        body: `grant_type=authorization_code&code=${code}`,
      });
      const body = (await tok.json()) as Json;
      const validate = tokenResponse('scopes');
      expect(validate(body) ? [] : validate.errors).toEqual([]);
      expect(body).not.toHaveProperty('scope');
    } finally {
      await legacy.close();
    }
  });

  const endpoints: [string, string, string[]][] = [
    ['current user', '/user', ['user']],
    ['workspaces of the user', '/user/workspaces', ['workspace_access', 'workspace_base']],
    ['workspace members', '/workspaces/acme/members', ['workspace_membership', 'user', 'workspace']],
    ['repositories', '/repositories/acme', ['repository', 'team', 'project', 'branch', 'workspace']],
    ['one repository', '/repositories/acme/api', ['repository']],
    [
      'pull requests in every state',
      '/repositories/acme/api/pullrequests?state=OPEN&state=MERGED&state=DECLINED&state=SUPERSEDED&pagelen=50',
      ['pullrequest', 'user', 'repository'],
    ],
    [
      'pull requests with participants',
      '/repositories/acme/api/pullrequests?state=MERGED&fields=%2Bvalues.participants,%2Bvalues.reviewers',
      ['participant'],
    ],
    ['commits', '/repositories/acme/api/commits', ['commit', 'author', 'user']],
    [
      'pipelines',
      '/repositories/acme/api/pipelines?sort=-created_on&pagelen=100',
      [
        'pipeline',
        'pipeline_ref_target',
        'pipeline_state_pending',
        'pipeline_state_in_progress',
        'pipeline_state_in_progress_running',
        'pipeline_state_completed',
        'pipeline_state_completed_successful',
        'pipeline_state_completed_failed',
        'pipeline_state_completed_error',
      ],
    ],
  ];
  test.each(endpoints)('%s (%s) matches its operation schema', async (_name, p, types) => {
    const res = await get(`${sim.apiUrl}${p}`, auth);
    expect(res.status).toBe(200);
    // Repeating `state` is documented in the operation's prose but not in its Swagger parameter
    // (a single string without collectionFormat), so only that repeat is allowed.
    expectConforms(res, { repeatable: ['state'], types });
  });

  test('list pagination: absolute next links round-trip until absent and cover the dataset', async () => {
    const ds = sim.control.dataset();
    const acme = ds.workspaces.find((w) => w.slug === 'acme');
    const repo = acme?.repositories.find((r) => r.slug === 'api');
    const cases: [string, number][] = [
      ['/user/workspaces?pagelen=1', ds.workspaces.length],
      ['/workspaces/acme/members?pagelen=2', acme?.members ?? -1],
      ['/repositories/acme?pagelen=2', acme?.repositories.length ?? -1],
      [
        '/repositories/acme/api/pullrequests?state=OPEN&state=MERGED&state=DECLINED&state=SUPERSEDED&pagelen=5',
        repo?.pullRequests.total ?? -1,
      ],
      ['/repositories/acme/api/pullrequests?pagelen=2', repo?.pullRequests.OPEN ?? -1],
      ['/repositories/acme/api/pipelines?pagelen=3', repo?.pipelines.total ?? -1],
    ];
    for (const [p, expected] of cases) {
      const { pages, values } = await collect(
        `${sim.apiUrl}${p}`,
        auth,
        (b) => b.next as string | undefined,
        (b) => b.values as unknown[],
      );
      expect(values).toHaveLength(expected);
      expect(pages.length).toBeGreaterThan(1);
      for (const page of pages) {
        expectConforms(page, { repeatable: ['state'] });
        expect(page.url.origin).toBe(new URL(sim.apiUrl).origin);
      }
      const ids = values.map((v) => {
        const item = v as { uuid?: string; id?: number; user?: Json; workspace?: Json };
        return String(item.uuid ?? item.id ?? item.user?.uuid ?? item.workspace?.uuid);
      });
      expect(new Set(ids).size).toBe(expected);
    }
  });

  test('the pull request page size is capped at 50', async () => {
    const res = await get(`${sim.apiUrl}/repositories/acme/api/pullrequests?pagelen=100`, auth);
    expect((res.body as Json).pagelen).toBe(50);
  });

  test('commits use iterator pagination: newest first, opaque next, no page or size', async () => {
    const repo = sim.control.dataset().workspaces[0]?.repositories[0];
    const { pages, values } = await collect(
      `${sim.apiUrl}/repositories/acme/api/commits?pagelen=10`,
      auth,
      (b) => b.next as string | undefined,
      (b) => b.values as unknown[],
    );
    expect(values).toHaveLength(repo?.commits ?? -1);
    for (const page of pages) {
      expectConforms(page);
      expect(Object.keys(page.body as Json).sort()).toEqual(page === pages.at(-1) ? ['pagelen', 'values'] : ['next', 'pagelen', 'values']);
    }
    const token = new URL(String((pages[0]?.body as Json).next)).searchParams.get('page');
    expect(token).not.toMatch(/^\d+$/);
    const dates = values.map((c) => Date.parse(String((c as Json).date)));
    expect(dates).toEqual([...dates].sort((a, b) => b - a));
    // Each commit's parent is the next (older) one: the DAG is consistent across pages.
    values.slice(0, -1).forEach((c, i) => expect(((c as Json).parents as Json[])[0]?.hash).toBe((values[i + 1] as Json).hash));
  });

  test('q compares unquoted datetimes; a quoted datetime is a 400 with the error schema', async () => {
    const all = (
      await get(`${sim.apiUrl}/repositories/acme/api/pullrequests?state=OPEN&state=MERGED&state=DECLINED&state=SUPERSEDED&pagelen=50`, auth)
    ).body as Json;
    const times = (all.values as Json[]).map((v) => String(v.updated_on)).sort();
    const cutoff = times[Math.floor(times.length / 2)] ?? '';
    const newer = times.filter((t) => Date.parse(t) > Date.parse(cutoff)).length;
    const q = encodeURIComponent(`updated_on > ${cutoff}`);
    const filtered = await get(
      `${sim.apiUrl}/repositories/acme/api/pullrequests?state=OPEN&state=MERGED&state=DECLINED&state=SUPERSEDED&q=${q}&sort=-updated_on`,
      auth,
    );
    expectConforms(filtered, { repeatable: ['state'] });
    const got = ((filtered.body as Json).values as Json[]).map((v) => String(v.updated_on));
    expect(got).toHaveLength(newer);
    expect(got).toEqual([...got].sort().reverse());

    const quoted = await get(`${sim.apiUrl}/repositories/acme?q=${encodeURIComponent(`updated_on > "${cutoff}"`)}`, auth);
    expect(quoted.status).toBe(400);
    expect(spec.errors(spec.definition('error'), quoted.body)).toEqual([]);
  });

  test('401s: expired, unknown and query-string tokens get the provider bodies', async () => {
    const fresh = await authorize();
    const headers = { authorization: `Bearer ${String(fresh.body.access_token)}` };
    expect((await get(`${sim.apiUrl}/user`, headers)).status).toBe(200);

    const inQuery = await get(`${sim.apiUrl}/user?access_token=${String(fresh.body.access_token)}`);
    expect(inQuery.status).toBe(401);
    // The client broke the rules here on purpose, so only the response is checked.
    expectConforms(inQuery, { checkParams: false });

    const unknown = await get(`${sim.apiUrl}/user`, { authorization: 'Bearer not-a-token' });
    expect(unknown.status).toBe(401);
    expectConforms(unknown);
    expect(unknown.body).toEqual({ type: 'error', error: { message: 'Token is invalid, expired, or not supported for this endpoint.' } });

    sim.control.expireAccessTokens();
    const expired = await get(`${sim.apiUrl}/user`, headers);
    expect(expired.status).toBe(401);
    expectConforms(expired);
    expect(expired.body).toEqual({
      type: 'error',
      error: { message: 'Access token expired. Use your refresh token to obtain a new access token.' },
    });

    const renewed = await token({ grant_type: 'refresh_token', refresh_token: String(fresh.body.refresh_token) });
    auth = { authorization: `Bearer ${String(renewed.body.access_token)}` };
    const pulls = await get(`${sim.apiUrl}/repositories/acme/api/pullrequests`, headers);
    expect(pulls.status).toBe(401);
    // The pull request operation documents 401 without a schema; the error definition applies.
    expectConforms(pulls);
  });

  test('forbidden and missing repositories answer 403 and 404 with error bodies', async () => {
    sim.control.setRepositoryAccess('acme', 'web', 'forbidden');
    sim.control.setRepositoryAccess('acme', 'mobile-app', 'not_found');
    try {
      const forbidden = await get(`${sim.apiUrl}/repositories/acme/web`, auth);
      expect(forbidden.status).toBe(403);
      expect(spec.response(spec.template(forbidden.url.pathname), 403)).toBeDefined();
      expectConforms(forbidden);
      expect(forbidden.body).toEqual({ type: 'error', error: { message: 'Forbidden' } });

      const pipelines = await get(`${sim.apiUrl}/repositories/acme/web/pipelines`, auth);
      expect(pipelines.status).toBe(403);
      expectConforms(pipelines);

      const missing = await get(`${sim.apiUrl}/repositories/acme/mobile-app/pullrequests`, auth);
      expect(missing.status).toBe(404);
      expect(spec.response(spec.template(missing.url.pathname), 404)).toBeDefined();
      expectConforms(missing);

      const listed = (await get(`${sim.apiUrl}/repositories/acme`, auth)).body as Json;
      expect((listed.values as Json[]).map((r) => r.slug)).not.toContain('mobile-app');

      const noWorkspace = await get(`${sim.apiUrl}/repositories/nope`, auth);
      expect(noWorkspace.status).toBe(404);
      expectConforms(noWorkspace);
    } finally {
      sim.control.setRepositoryAccess('acme', 'web', 'ok');
      sim.control.setRepositoryAccess('acme', 'mobile-app', 'ok');
    }
  });

  test('429 is plain text without Retry-After; 5xx carry the JSON error body', async () => {
    sim.control.injectFaults({ status: 429, count: 1, pathPrefix: '/repositories' });
    sim.control.injectFaults({ status: 503, count: 1 });
    const limited = await get(`${sim.apiUrl}/repositories/acme`, auth);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(limited.headers.has('retry-after')).toBe(false);
    expect(limited.text).toBe('Rate limit for this resource has been exceeded');

    const unavailable = await get(`${sim.apiUrl}/user`, auth);
    expect(unavailable.status).toBe(503);
    expectConforms(unavailable);
    expect((await get(`${sim.apiUrl}/user`, auth)).status).toBe(200);

    sim.control.setRateLimit({ perHour: 2 });
    try {
      const statuses = [];
      for (let i = 0; i < 3; i += 1) statuses.push((await get(`${sim.apiUrl}/user`, auth)).status);
      expect(statuses).toEqual([200, 200, 429]);
    } finally {
      sim.control.reset();
    }
  });

  test('the validators reject off-spec bodies (the checks above can fail)', async () => {
    const page = (await get(`${sim.apiUrl}/repositories/acme/api/pullrequests`, auth)).body as Json;
    const validate = spec.response('/repositories/{workspace}/{repo_slug}/pullrequests', 200);
    if (!validate) throw new Error('no schema');
    expect(spec.errors(validate, page)).toEqual([]);
    expect(spec.errors(validate, { ...page, extra: 1 })).not.toEqual([]);
    const [first] = page.values as Json[];
    expect(spec.errors(validate, { ...page, values: [{ ...first, id: String(first?.id) }] })).not.toEqual([]);
    expect(spec.errors(validate, { ...page, values: [{ ...first, state: 'CLOSED' }] })).not.toEqual([]);
    expect(spec.errors(spec.definition('error'), { type: 'error', error: { message: 'x', code: 1 } })).not.toEqual([]);
    expect(spec.errors(spec.definition('pipeline_state_completed'), { type: 'pipeline_state_completed', name: 'DONE' })).not.toEqual([]);
    expect(
      spec.paramErrors('/repositories/{workspace}/{repo_slug}/pullrequests', new URLSearchParams('state=OPEN&state=OPENED'), GENERIC, [
        'state',
      ]),
    ).not.toEqual([]);
    expect(spec.paramErrors('/repositories/{workspace}/{repo_slug}/commits', new URLSearchParams('page=1&page=2'), GENERIC)).not.toEqual(
      [],
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe('Bitrise simulator conforms to bitrise.swagger.json', () => {
  let spec: SpecValidator;
  let strict: SpecValidator;
  let sim: BitriseSimulator;
  let token: string;
  let appSlug: string;
  let buildSlug: string;
  const GENERIC: string[] = [];

  function expectConforms(res: Fetched) {
    const template = spec.template(res.url.pathname);
    expect(spec.paramErrors(template, res.url.searchParams, GENERIC)).toEqual([]);
    const validate =
      spec.response(template, res.status) ?? (res.status >= 400 ? spec.definition('service.StandardErrorRespModel') : undefined);
    if (!validate) throw new Error(`${template} documents no schema for ${res.status}`);
    expect(spec.errors(validate, res.body)).toEqual([]);
  }

  beforeAll(async () => {
    // The real API's nulls for unset strings are allowed, and nothing else (see allowNullStrings).
    spec = new SpecValidator('bitrise', allowNullStrings(await loadSpec(SPEC_FILES.bitrise)));
    strict = new SpecValidator('bitrise-strict', await loadSpec(SPEC_FILES.bitrise));
    sim = await startBitriseSimulator({ seed: { organizations: 2, appsPerOrganization: 3, buildsPerApp: 23, pipelinesPerApp: 4 } });
    token = sim.control.createToken({ label: 'conformance' });
    appSlug = sim.control.dataset().organizations[0]?.apps[0]?.slug ?? '';
    const builds = await get(`${sim.apiUrl}/apps/${appSlug}/builds?limit=1`, { authorization: token });
    buildSlug = String(((builds.body as Json).data as Json[])[0]?.slug);
  }, 30_000);

  afterAll(async () => {
    await sim?.close();
  });

  test('the token goes in raw: a Bearer prefix is a 401 with the documented body', async () => {
    const ok = await get(`${sim.apiUrl}/me`, { authorization: token });
    expect(ok.status).toBe(200);
    const bearer = await get(`${sim.apiUrl}/me`, { authorization: `Bearer ${token}` });
    expect(bearer.status).toBe(401);
    expectConforms(bearer);
    expect(bearer.body).toEqual({ message: 'Unauthorized' });
    const none = await get(`${sim.apiUrl}/apps`);
    expect(none.status).toBe(401);
    expectConforms(none);

    const workspaceToken = sim.control.createToken({ kind: 'workspace' });
    expect(workspaceToken).toMatch(/^bitwat_/);
    expect((await get(`${sim.apiUrl}/me`, { authorization: workspaceToken })).status).toBe(200);
    sim.control.revokeToken(workspaceToken);
    const revoked = await get(`${sim.apiUrl}/me`, { authorization: workspaceToken });
    expect(revoked.status).toBe(401);
    expectConforms(revoked);
  });

  test.each([
    ['current user', '/me'],
    ['organizations', '/organizations'],
    ['apps', '/apps?sort_by=created_at'],
    ['one app', '/apps/:app'],
    ['builds', '/apps/:app/builds?sort_by=running_first'],
    ['one build', '/apps/:app/builds/:build'],
    ['pipelines and standalone builds', '/apps/:app/pipelines?limit=50'],
  ])('%s (%s) matches its operation schema', async (_name, p) => {
    const res = await get(`${sim.apiUrl}${p.replace(':app', appSlug).replace(':build', buildSlug)}`, { authorization: token });
    expect(res.status).toBe(200);
    expectConforms(res);
    expect(isObject(res.body) && 'data' in res.body).toBe(true);
  });

  test('nulls are allowed for string fields only, and the real quirk is reproduced', async () => {
    const builds = (await get(`${sim.apiUrl}/apps/${appSlug}/builds?sort_by=running_first&limit=50`, { authorization: token }))
      .body as Json;
    const validate = spec.response('/apps/{app-slug}/builds', 200);
    const unpatched = strict.response('/apps/{app-slug}/builds', 200);
    if (!validate || !unpatched) throw new Error('no schema');
    const running = (builds.data as Json[])[0];
    expect(running?.status).toBe(0);
    expect(running?.finished_at).toBeNull();
    // Without the allowance the spec rejects the real shape…
    expect(strict.errors(unpatched, builds)).not.toEqual([]);
    // …and with it, null is still rejected where the spec says integer or boolean.
    expect(spec.errors(validate, { ...builds, data: [{ ...running, status: null }] })).not.toEqual([]);
    expect(spec.errors(validate, { ...builds, data: [{ ...running, is_on_hold: null }] })).not.toEqual([]);
    expect(spec.errors(validate, { ...builds, data: [{ ...running, build_number: '12' }] })).not.toEqual([]);
  });

  test('apps and builds page with next anchors until next is absent', async () => {
    const ds = sim.control.dataset();
    const apps = ds.organizations.flatMap((o) => o.apps);
    const headers = { authorization: token };
    const paging = (b: Json) => (b.paging as Json | undefined)?.next as string | undefined;
    const cases: [string, number][] = [
      ['/apps?limit=2', apps.length],
      [`/apps/${appSlug}/builds?limit=5`, apps[0]?.builds.total ?? -1],
    ];
    for (const [p, expected] of cases) {
      const first = `${sim.apiUrl}${p}`;
      const { pages, values } = await collect(
        first,
        headers,
        (b) => (paging(b) ? `${first}&next=${paging(b) ?? ''}` : undefined),
        (b) => b.data as unknown[],
      );
      expect(values).toHaveLength(expected);
      expect(pages.length).toBeGreaterThan(1);
      expect(new Set(values.map((v) => (v as Json).slug)).size).toBe(expected);
      for (const page of pages) {
        expectConforms(page);
        expect((page.body as Json).paging).toMatchObject({ total_item_count: expected });
      }
      expect(pages.at(-1)?.body).not.toHaveProperty('paging.next');
    }
    const capped = (await get(`${sim.apiUrl}/apps/${appSlug}/builds?limit=500`, headers)).body as Json;
    expect((capped.paging as Json).page_item_limit).toBe(50);
  });

  test('pipelines page by time with before=<next>', async () => {
    const app = sim.control.dataset().organizations[0]?.apps[0];
    const first = `${sim.apiUrl}/apps/${appSlug}/pipelines?limit=4`;
    const { pages, values } = await collect(
      first,
      { authorization: token },
      (b) => {
        const next = (b.paging as Json | undefined)?.next;
        return typeof next === 'string' ? `${first}&before=${encodeURIComponent(next)}` : undefined;
      },
      (b) => b.data as unknown[],
    );
    pages.forEach(expectConforms);
    expect(values).toHaveLength((app?.pipelines.total ?? 0) + (app?.builds.total ?? 0));
    expect((values as Json[]).filter((v) => v.is_pipeline === true)).toHaveLength(app?.pipelines.total ?? -1);
  });

  test('after and before filter builds by Unix timestamp', async () => {
    const headers = { authorization: token };
    const all = ((await get(`${sim.apiUrl}/apps/${appSlug}/builds?limit=50`, headers)).body as Json).data as Json[];
    const times = all.map((b) => Date.parse(String(b.triggered_at)) / 1000).sort((a, b) => a - b);
    const pivot = times[Math.floor(times.length / 2)] ?? 0;
    const after = await get(`${sim.apiUrl}/apps/${appSlug}/builds?after=${pivot}&limit=50`, headers);
    const before = await get(`${sim.apiUrl}/apps/${appSlug}/builds?before=${pivot}&limit=50`, headers);
    expectConforms(after);
    expectConforms(before);
    expect((after.body as Json).data).toHaveLength(times.filter((t) => t >= pivot).length);
    expect((before.body as Json).data).toHaveLength(times.filter((t) => t < pivot).length);
    const iso = await get(`${sim.apiUrl}/apps/${appSlug}/builds?after=2024-01-01T00:00:00Z`, headers);
    expect(iso.status).toBe(400);
    expectConforms(iso);
  });

  test('unknown apps are 404 with the documented body', async () => {
    const res = await get(`${sim.apiUrl}/apps/0000000000000000/builds`, { authorization: token });
    expect(res.status).toBe(404);
    expect(spec.response(spec.template(res.url.pathname), 404)).toBeDefined();
    expectConforms(res);
  });

  test('429 carries Retry-After and X-RateLimit headers; normal responses carry the headers too', async () => {
    sim.control.setRateLimit({ perMinute: 2 });
    try {
      const headers = { authorization: token };
      const first = await get(`${sim.apiUrl}/me`, headers);
      expect(first.status).toBe(200);
      expect(first.headers.get('x-ratelimit-limit')).toBe('2');
      expect(first.headers.get('x-ratelimit-remaining')).toBe('1');
      expect(Number(first.headers.get('x-ratelimit-reset'))).toBeGreaterThan(Date.now() / 1000);
      expect((await get(`${sim.apiUrl}/me`, headers)).status).toBe(200);
      const limited = await get(`${sim.apiUrl}/me`, headers);
      expect(limited.status).toBe(429);
      expect(limited.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(limited.text).toBe('Too Many Requests');
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(limited.headers.get('x-ratelimit-remaining')).toBe('0');
    } finally {
      sim.control.reset();
    }
    sim.control.injectFaults({ status: 429, count: 1 });
    const injected = await get(`${sim.apiUrl}/me`, { authorization: token });
    expect(injected.status).toBe(429);
    expect(injected.headers.has('retry-after')).toBe(true);
    sim.control.injectFaults({ status: 500, count: 1 });
    const failed = await get(`${sim.apiUrl}/me`, { authorization: token });
    expect(failed.status).toBe(500);
    expectConforms(failed);
  });
});
