import {
  DEFAULT_BITBUCKET_CONSUMER,
  startBitbucketSimulator,
  type BitbucketSimulator,
  type BitbucketSimulatorOptions,
} from '../../simulators/bitbucket';
import { startBitriseSimulator, type BitriseSimulator } from '../../simulators/bitrise';

/**
 * The control surface other suites build scenarios on: token lifecycle, data mutations for
 * incremental sync, fault injection, the request log, and the same controls over `/_sim`.
 */

type Json = Record<string, any>;

const consumer = DEFAULT_BITBUCKET_CONSUMER;
const basicFor = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
const basic = basicFor(consumer.clientId, consumer.clientSecret);

async function call(url: string, init: RequestInit = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url, { redirect: 'manual', ...init });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // plain text stays text
  }
  return { status: res.status, body, headers: res.headers };
}

const post = (url: string, body?: unknown) =>
  call(
    url,
    body === undefined
      ? { method: 'POST' }
      : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) },
  );

async function tokenRequest(sim: BitbucketSimulator, form: Record<string, string>, authorization = basic) {
  return call(`${sim.oauthUrl}/access_token`, {
    method: 'POST',
    headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  });
}

async function connect(sim: BitbucketSimulator, clientId = consumer.clientId, authorization = basic): Promise<Json> {
  const res = await call(
    `${sim.oauthUrl}/authorize?client_id=${clientId}&response_type=code&redirect_uri=${encodeURIComponent('http://127.0.0.1:9/cb')}`,
  );
  const code = new URL(String(res.headers.get('location'))).searchParams.get('code') ?? '';
  const tokens = await tokenRequest(sim, { grant_type: 'authorization_code', code }, authorization);
  expect(tokens.status).toBe(200);
  return tokens.body as Json;
}

const bearer = (tokens: Json) => ({ authorization: `Bearer ${String(tokens.access_token)}` });

describe('Bitbucket simulator controls', () => {
  const sims: BitbucketSimulator[] = [];
  const start = async (opts: BitbucketSimulatorOptions = {}) => {
    const sim = await startBitbucketSimulator({
      seed: { workspaces: 1, reposPerWorkspace: 2, pullRequestsPerRepo: 6, commitsPerRepo: 12, pipelinesPerRepo: 3 },
      ...opts,
    });
    sims.push(sim);
    return sim;
  };
  afterAll(async () => {
    await Promise.all(sims.map((s) => s.close()));
  });

  test('a rotated-out refresh token still works inside the grace period, and the reuse is counted', async () => {
    const sim = await start({ refreshTokenGraceSeconds: 60 });
    const first = await connect(sim);
    const second = await tokenRequest(sim, { grant_type: 'refresh_token', refresh_token: first.refresh_token });
    const raced = await tokenRequest(sim, { grant_type: 'refresh_token', refresh_token: first.refresh_token });
    expect([second.status, raced.status]).toEqual([200, 200]);
    expect(sim.control.refreshTokenReuseCount()).toBe(1);
    expect(sim.control.refreshCount()).toBe(2);
    const [grant] = sim.control.grants();
    expect(grant && sim.control.refreshCount(grant.id)).toBe(2);
  });

  test('revokeAll kills access and refresh tokens; expireAccessTokens only access tokens', async () => {
    const sim = await start();
    const tokens = await connect(sim);
    sim.control.expireAccessTokens();
    expect((await call(`${sim.apiUrl}/user`, { headers: bearer(tokens) })).body.error.message).toMatch(/^Access token expired/);
    const renewed = await tokenRequest(sim, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token });
    expect(renewed.status).toBe(200);
    expect((await call(`${sim.apiUrl}/user`, { headers: bearer(renewed.body) })).status).toBe(200);

    sim.control.revokeAll();
    const api = await call(`${sim.apiUrl}/user`, { headers: bearer(renewed.body) });
    expect(api.status).toBe(401);
    expect(api.body.error.message).toBe('Token is invalid, expired, or not supported for this endpoint.');
    const refresh = await tokenRequest(sim, { grant_type: 'refresh_token', refresh_token: renewed.body.refresh_token });
    expect(refresh.status).toBe(400);
    expect(refresh.body).toEqual({ error_description: 'Invalid refresh_token', error: 'invalid_request' });
  });

  test('setAccessTokenTtl changes expires_in and the real expiry of new tokens', async () => {
    const sim = await start({ accessTokenTtlSeconds: 60 });
    expect((await connect(sim)).expires_in).toBe(60);
    sim.control.setAccessTokenTtl(1);
    const short = await connect(sim);
    expect(short.expires_in).toBe(1);
    await new Promise((r) => setTimeout(r, 1100));
    expect((await call(`${sim.apiUrl}/user`, { headers: bearer(short) })).status).toBe(401);
  });

  test('the hourly budget is per grant', async () => {
    const sim = await start();
    const a = await connect(sim);
    const b = await connect(sim);
    sim.control.setRateLimit({ perHour: 1 });
    const statuses = async (t: Json) => [
      (await call(`${sim.apiUrl}/user`, { headers: bearer(t) })).status,
      (await call(`${sim.apiUrl}/user`, { headers: bearer(t) })).status,
    ];
    expect(await statuses(a)).toEqual([200, 429]);
    expect(await statuses(b)).toEqual([200, 429]);
    sim.control.setRateLimit(null);
    expect(await statuses(a)).toEqual([200, 200]);
  });

  test('consumer scopes are enforced and callback URLs must be extended', async () => {
    const sim = await start({
      consumers: [
        {
          clientId: 'narrow',
          clientSecret: 'narrow-secret-0123456789',
          scopes: ['account', 'repository'],
          callbackUrl: 'http://127.0.0.1:9/cb',
        },
      ],
    });
    const bad = await call(
      `${sim.oauthUrl}/authorize?client_id=narrow&response_type=code&redirect_uri=${encodeURIComponent('http://evil.example/cb')}`,
    );
    expect(bad.status).toBe(400);
    const implicit = await call(`${sim.oauthUrl}/authorize?client_id=narrow&response_type=code`);
    expect(implicit.headers.get('location')).toMatch(/^http:\/\/127\.0\.0\.1:9\/cb\?code=/);
    const tokens = await connect(sim, 'narrow', basicFor('narrow', 'narrow-secret-0123456789'));
    expect(tokens.scope).toBe('account repository');
    expect((await call(`${sim.apiUrl}/repositories/acme/api/commits`, { headers: bearer(tokens) })).status).toBe(200);
    const pipelines = await call(`${sim.apiUrl}/repositories/acme/api/pipelines`, { headers: bearer(tokens) });
    expect(pipelines.status).toBe(403);
    expect(pipelines.body.error.message).toMatch(/privilege scopes/);
  });

  test('touched, re-stated and new pull requests show up after an updated_on cursor', async () => {
    const sim = await start();
    const headers = bearer(await connect(sim));
    const all = `${sim.apiUrl}/repositories/acme/api/pullrequests?state=OPEN&state=MERGED&state=DECLINED&state=SUPERSEDED&pagelen=50&sort=-updated_on`;
    const cursor = (await call(all, { headers })).body.values[0].updated_on as string;
    sim.control.touchPullRequests('acme', 'api', [1, 3]);
    sim.control.setPullRequestState('acme', 'api', 2, 'MERGED');
    const [added] = sim.control.addPullRequests('acme', 'api', 1);
    const since = await call(`${all}&q=${encodeURIComponent(`updated_on > ${cursor}`)}`, { headers });
    expect(since.body.values.map((p: Json) => p.id).sort()).toEqual([1, 2, 3, added].sort());
    expect(since.body.values.find((p: Json) => p.id === 2).state).toBe('MERGED');
    expect(sim.control.dataset().workspaces[0]?.repositories[0]?.pullRequests.total).toBe(7);
    expect(() => sim.control.touchPullRequests('acme', 'api', [999])).toThrow(/no pull request/);
  });

  test('commits pushed while a client pages neither shift nor repeat the pages it still has to read', async () => {
    const sim = await start();
    const headers = bearer(await connect(sim));
    const first = await call(`${sim.apiUrl}/repositories/acme/api/commits?pagelen=5`, { headers });
    const pushed = sim.control.addCommits('acme', 'api', 3);
    const rest: Json[] = [];
    for (let next: string | undefined = first.body.next; next;) {
      const page = await call(next, { headers });
      rest.push(...page.body.values);
      next = page.body.next;
    }
    const hashes = [...first.body.values, ...rest].map((c: Json) => c.hash);
    expect(hashes).toHaveLength(12);
    expect(new Set(hashes).size).toBe(12);
    const fresh = await call(`${sim.apiUrl}/repositories/acme/api/commits?pagelen=3`, { headers });
    expect(fresh.body.values.map((c: Json) => c.hash)).toEqual([...pushed].reverse());
  });

  test('pipelines can be added running and finished later', async () => {
    const sim = await start();
    const headers = bearer(await connect(sim));
    const [n] = sim.control.addPipelines('acme', 'api', 1, { state: 'IN_PROGRESS' });
    const counts = () => sim.control.dataset().workspaces[0]?.repositories[0]?.pipelines;
    expect(counts()).toEqual({ total: 4, running: 3, completed: 1 });
    const latest = async () =>
      (await call(`${sim.apiUrl}/repositories/acme/api/pipelines?sort=-created_on&pagelen=1`, { headers })).body.values[0];
    expect((await latest()).build_number).toBe(n);
    expect((await latest()).state.name).toBe('IN_PROGRESS');
    expect(await latest()).not.toHaveProperty('completed_on');
    expect(sim.control.finishRunningPipelines('acme', 'api', 'FAILED')).toBe(3);
    const done = await latest();
    expect(done.state).toEqual({
      type: 'pipeline_state_completed',
      name: 'COMPLETED',
      result: { type: 'pipeline_state_completed_failed', name: 'FAILED' },
    });
    expect(Date.parse(done.completed_on)).toBeGreaterThanOrEqual(Date.parse(done.created_on));
    expect(counts()).toEqual({ total: 4, running: 0, completed: 4 });
  });

  test('faults hit only matching API requests, in order, then stop', async () => {
    const sim = await start();
    const tokens = await connect(sim);
    const headers = bearer(tokens);
    sim.control.injectFaults({ status: 500, count: 2, pathPrefix: '/repositories' });
    sim.control.injectFaults({ status: 502, count: 1, pathPrefix: '/2.0/user', latencyMs: 150 });
    expect((await call(`${sim.apiUrl}/repositories/acme`, { headers })).status).toBe(500);
    const started = Date.now();
    expect((await call(`${sim.apiUrl}/user`, { headers })).status).toBe(502);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    // OAuth is never faulted.
    expect((await tokenRequest(sim, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token })).status).toBe(200);
    expect((await call(`${sim.apiUrl}/repositories/acme`, { headers })).status).toBe(500);
    expect((await call(`${sim.apiUrl}/repositories/acme`, { headers })).status).toBe(200);
    sim.control.injectFaults({ status: 503, count: 5 });
    sim.control.reset();
    expect((await call(`${sim.apiUrl}/user`, { headers })).status).toBe(200);
  });

  test('the request log and the secret registry see everything the client did', async () => {
    const sim = await start();
    sim.control.addConsumer('extra', 'extra-secret-abcdefghijkl');
    const tokens = await connect(sim);
    await call(`${sim.apiUrl}/repositories/acme?pagelen=1`, { headers: bearer(tokens) });
    const log = sim.control.requests();
    expect(log.map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual([
      'GET /site/oauth2/authorize 302',
      'POST /site/oauth2/access_token 200',
      'GET /2.0/repositories/acme 200',
    ]);
    expect(log[2]?.query).toBe('pagelen=1');
    const secrets = sim.control.issuedSecrets();
    for (const s of [consumer.clientSecret, 'extra-secret-abcdefghijkl', tokens.access_token, tokens.refresh_token])
      expect(secrets).toContain(s);
    expect(secrets).toHaveLength(5); // + the authorization code
    sim.control.clearRequests();
    expect(sim.control.requests()).toEqual([]);
  });

  test('the same seed and anchor give byte-identical data', async () => {
    const seed = { workspaces: 1, seed: 42, anchor: '2025-03-01T12:00:00Z' };
    const [a, b] = [await start({ seed }), await start({ seed })];
    const body = async (sim: BitbucketSimulator) => {
      const res = await call(`${sim.apiUrl}/repositories/acme/web/pullrequests?state=MERGED`, { headers: bearer(await connect(sim)) });
      return JSON.stringify(res.body).replaceAll(sim.url, '');
    };
    expect(await body(a)).toBe(await body(b));
    // History ends at the anchor, not at start-up time.
    expect(await body(a)).toMatch(/"updated_on":"2025-0(2-2[0-9]|3-01)T/);
  });

  test('every control is reachable over /_sim', async () => {
    const sim = await start();
    const tokens = await connect(sim);
    const sim_ = `${sim.url}/_sim`;
    expect((await post(`${sim_}/repositories/acme/api/commits`, { count: 2 })).body.hashes).toHaveLength(2);
    expect((await post(`${sim_}/repositories/acme/api/pipelines`, { count: 1, state: 'PENDING' })).body.buildNumbers).toEqual([4]);
    expect((await post(`${sim_}/repositories/acme/api/finish-running-pipelines`, {})).body).toEqual({ finished: 3 });
    expect((await post(`${sim_}/repositories/acme/api/touch-pull-requests`, { ids: [1] })).status).toBe(200);
    expect((await post(`${sim_}/repositories/acme/api/pull-requests`, { count: 1 })).body).toEqual({ ids: [7] });
    expect((await post(`${sim_}/repositories/acme/api/pull-requests/7/state`, { state: 'DECLINED' })).status).toBe(200);
    expect((await post(`${sim_}/repositories/acme/api/access`, { access: 'forbidden' })).status).toBe(200);
    expect((await call(`${sim.apiUrl}/repositories/acme/api`, { headers: bearer(tokens) })).status).toBe(403);
    expect((await post(`${sim_}/repositories/acme/api/access`, { access: 'sideways' })).status).toBe(400);
    expect((await post(`${sim_}/repositories/acme/nope/commits`, { count: 1 })).status).toBe(404);
    expect((await call(`${sim_}/dataset`)).body.workspaces[0].repositories[0].commits).toBe(14);

    expect((await post(`${sim_}/faults`, { status: 429, count: 1 })).status).toBe(200);
    expect((await call(`${sim.apiUrl}/user`, { headers: bearer(tokens) })).status).toBe(429);
    expect((await post(`${sim_}/faults`, { status: 418, count: 1 })).status).toBe(400);
    expect((await post(`${sim_}/rate-limit`, { perHour: 0 })).status).toBe(200);
    expect((await call(`${sim.apiUrl}/user`, { headers: bearer(tokens) })).status).toBe(429);
    expect((await post(`${sim_}/reset`)).status).toBe(200);
    expect((await call(`${sim.apiUrl}/user`, { headers: bearer(tokens) })).status).toBe(200);

    expect((await post(`${sim_}/deny-next-authorization`, { description: 'nope' })).status).toBe(200);
    const denied = await call(
      `${sim.oauthUrl}/authorize?client_id=${consumer.clientId}&response_type=code&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2F`,
    );
    expect(new URL(String(denied.headers.get('location'))).searchParams.get('error_description')).toBe('nope');
    expect((await post(`${sim_}/consumers`, { clientId: 'c2', clientSecret: 's2-0123456789' })).status).toBe(200);
    expect((await post(`${sim_}/access-token-ttl`, { seconds: 5 })).status).toBe(200);
    expect((await connect(sim, 'c2', basicFor('c2', 's2-0123456789'))).expires_in).toBe(5);
    await tokenRequest(sim, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token });
    expect((await call(`${sim_}/refresh-count`)).body).toEqual({ count: 1 });
    expect((await call(`${sim_}/refresh-token-reuse-count`)).body).toEqual({ count: 0 });
    // Bitbucket's grace window: the rotated-out refresh token keeps working while it lasts.
    expect((await tokenRequest(sim, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token })).status).toBe(400);
    expect((await post(`${sim_}/refresh-token-grace`, { seconds: 60 })).status).toBe(200);
    expect((await tokenRequest(sim, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token })).status).toBe(200);
    expect((await post(`${sim_}/refresh-token-grace`, { seconds: 0 })).status).toBe(200);
    expect((await tokenRequest(sim, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token })).status).toBe(400);
    expect((await call(`${sim_}/refresh-token-reuse-count`)).body).toEqual({ count: 3 });
    expect((await call(`${sim_}/refresh-count`)).body).toEqual({ count: 2 });
    expect((await call(`${sim_}/grants`)).body).toHaveLength(2);
    expect((await post(`${sim_}/expire-access-tokens`)).status).toBe(200);
    expect((await post(`${sim_}/revoke-all`)).status).toBe(200);
    expect((await call(`${sim_}/secrets`)).body).toContain('s2-0123456789');
    expect((await call(`${sim_}/requests`)).body.length).toBeGreaterThan(0);
    expect((await post(`${sim_}/requests/clear`)).status).toBe(200);
    expect((await call(`${sim_}/requests`)).body).toEqual([]);
    expect((await post(`${sim_}/latency`, { ms: 0 })).status).toBe(200);
  });
});

describe('Bitrise simulator controls', () => {
  let sim: BitriseSimulator;
  let app: string;
  const seededToken = 'seeded-token-for-tests-0123456789';
  beforeAll(async () => {
    sim = await startBitriseSimulator({
      seed: { organizations: 1, appsPerOrganization: 2, buildsPerApp: 4, pipelinesPerApp: 2, tokens: [seededToken] },
    });
    app = sim.control.dataset().organizations[0]?.apps[0]?.slug ?? '';
  });
  afterAll(async () => {
    await sim.close();
  });
  const headers = () => ({ authorization: seededToken });

  test('builds can be added running and finished later', async () => {
    const [slug] = sim.control.addBuilds(app, 1, { status: 0, branch: 'main', workflow: 'primary' });
    const latest = async () => (await call(`${sim.apiUrl}/apps/${app}/builds?limit=1`, { headers: headers() })).body.data[0];
    expect(await latest()).toMatchObject({
      slug,
      status: 0,
      status_text: 'in-progress',
      finished_at: null,
      branch: 'main',
      triggered_workflow: 'primary',
    });
    expect(await latest()).not.toHaveProperty('credit_cost');
    expect(sim.control.dataset().organizations[0]?.apps[0]?.builds.running).toBe(2);
    expect(sim.control.finishRunningBuilds(app, 2)).toBe(2);
    const done = await latest();
    expect(done).toMatchObject({ slug, status: 2, status_text: 'error' });
    expect(typeof done.finished_at).toBe('string');
    expect(typeof done.credit_cost).toBe('number');
    const single = await call(`${sim.apiUrl}/apps/${app}/builds/${slug}`, { headers: headers() });
    expect(single.body.data.slug).toBe(slug);
  });

  test('status and build_number filters select exactly the matching builds', async () => {
    const counts = sim.control.dataset().organizations[0]?.apps[0]?.builds.byStatus;
    const failed = await call(`${sim.apiUrl}/apps/${app}/builds?status=2`, { headers: headers() });
    expect(failed.body.data).toHaveLength(counts?.[2] ?? -1);
    expect((await call(`${sim.apiUrl}/apps/${app}/builds?status=7`, { headers: headers() })).status).toBe(400);
  });

  test('app access can be withdrawn (404, hidden from /apps) or forbidden (403)', async () => {
    const other = sim.control.dataset().organizations[0]?.apps[1]?.slug ?? '';
    sim.control.setAppAccess(other, 'not_found');
    expect((await call(`${sim.apiUrl}/apps/${other}/builds`, { headers: headers() })).status).toBe(404);
    expect((await call(`${sim.apiUrl}/apps`, { headers: headers() })).body.data.map((a: Json) => a.slug)).not.toContain(other);
    sim.control.setAppAccess(other, 'forbidden');
    expect((await call(`${sim.apiUrl}/apps/${other}/builds`, { headers: headers() })).status).toBe(403);
    sim.control.setAppAccess(other, 'ok');
    expect((await call(`${sim.apiUrl}/apps/${other}/builds`, { headers: headers() })).status).toBe(200);
  });

  test('tokens, secrets and the request log', async () => {
    const token = sim.control.createToken({ label: 'ci' });
    expect(token).toMatch(/^[A-Za-z0-9_-]{80,}$/);
    expect(sim.control.issuedSecrets()).toEqual(expect.arrayContaining([seededToken, token]));
    sim.control.clearRequests();
    await call(`${sim.apiUrl}/apps?limit=1`, { headers: { authorization: token } });
    expect(sim.control.requests()).toEqual([expect.objectContaining({ method: 'GET', path: '/v0.1/apps', query: 'limit=1', status: 200 })]);
    expect(() => sim.control.revokeToken('never-issued')).toThrow();
  });

  test('answers can be tampered with over /_sim: bad records, null lists, foreign next links, redirects', async () => {
    const sim_ = `${sim.url}/_sim`;
    const builds = `${sim.apiUrl}/apps/${app}/builds`;
    expect((await post(`${sim_}/tamper`, { kind: 'records', pathPrefix: `/apps/${app}/builds`, records: [{ slug: null }] })).status).toBe(
      200,
    );
    const tampered = (await call(builds, { headers: headers() })).body;
    expect(tampered.data.at(-1)).toEqual({ slug: null });
    // Used up after `count` (1) answers.
    expect((await call(builds, { headers: headers() })).body.data.at(-1)).not.toEqual({ slug: null });
    expect((await post(`${sim_}/tamper`, { kind: 'nullList', pathPrefix: '/apps' })).status).toBe(200);
    expect((await call(`${sim.apiUrl}/apps`, { headers: headers() })).body.data).toBeNull();
    expect((await post(`${sim_}/tamper`, { kind: 'next', next: 'https://evil.example/x', pathPrefix: '/apps' })).status).toBe(200);
    expect((await call(`${sim.apiUrl}/apps`, { headers: headers() })).body.paging.next).toBe('https://evil.example/x');
    expect(
      (await post(`${sim_}/tamper`, { kind: 'redirect', status: 307, location: 'https://evil.example/', pathPrefix: '/me' })).status,
    ).toBe(200);
    const redirected = await call(`${sim.apiUrl}/me`, { headers: headers() });
    expect(redirected.status).toBe(307);
    expect(redirected.headers.get('location')).toBe('https://evil.example/');
    expect((await post(`${sim_}/tamper`, { kind: 'nope' })).status).toBe(400);
    expect((await post(`${sim_}/tamper`, { kind: 'nullList', pathPrefix: '/me', count: 3 })).status).toBe(200);
    expect((await post(`${sim_}/reset`)).status).toBe(200);
    expect((await call(`${sim.apiUrl}/me`, { headers: headers() })).body.data).not.toBeNull();
  });

  test('every control is reachable over /_sim', async () => {
    const sim_ = `${sim.url}/_sim`;
    const { token } = (await post(`${sim_}/tokens`, { kind: 'workspace' })).body;
    expect(token).toMatch(/^bitwat_/);
    expect((await call(`${sim.apiUrl}/me`, { headers: { authorization: token } })).status).toBe(200);
    expect((await post(`${sim_}/tokens/revoke`, { token })).status).toBe(200);
    expect((await call(`${sim.apiUrl}/me`, { headers: { authorization: token } })).status).toBe(401);
    expect((await post(`${sim_}/apps/${app}/builds`, { count: 2, status: 0 })).body.slugs).toHaveLength(2);
    expect((await post(`${sim_}/apps/${app}/finish-running-builds`, { status: 1 })).body).toEqual({ finished: 2 });
    expect((await post(`${sim_}/apps/${app}/pipelines`, { count: 1, status: 0 })).body.slugs).toHaveLength(1);
    expect((await post(`${sim_}/apps/${app}/finish-running-pipelines`, {})).body).toEqual({ finished: 2 });
    expect((await post(`${sim_}/finish-running-builds`, {})).body.finished).toBeGreaterThanOrEqual(1);
    expect((await post(`${sim_}/apps/${app}/access`, { access: 'ok' })).status).toBe(200);
    expect((await post(`${sim_}/apps/nope/builds`, { count: 1 })).status).toBe(404);
    expect((await call(`${sim_}/dataset`)).body.organizations[0].apps[0].builds.running).toBe(0);
    expect((await post(`${sim_}/rate-limit`, { perMinute: 0 })).status).toBe(200);
    const limited = await call(`${sim.apiUrl}/me`, { headers: headers() });
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBeTruthy();
    expect((await post(`${sim_}/faults`, { status: 502, count: 1, pathPrefix: '/me' })).status).toBe(200);
    expect((await post(`${sim_}/reset`)).status).toBe(200);
    expect((await call(`${sim.apiUrl}/me`, { headers: headers() })).status).toBe(200);
    expect((await post(`${sim_}/latency`, { ms: 0 })).status).toBe(200);
    expect((await call(`${sim_}/secrets`)).body).toContain(token);
    expect((await call(`${sim_}/requests`)).body.length).toBeGreaterThan(0);
    expect((await post(`${sim_}/requests/clear`)).status).toBe(200);
  });
});
