import { DEFAULT_BITBUCKET_CONSUMER, startBitbucketSimulator, type BitbucketSimulator } from '../../simulators/bitbucket';
import type { BitriseSimulator } from '../../simulators/bitrise';

/**
 * Drives every simulated endpoint the product consumes and keeps the responses, so one list of
 * traffic is checked twice: against the zod schemas (test/unit/simulators-schemas.test.ts, part of
 * `npm test`) and against the official Swagger files (test/conformance/, `npm run test:conformance`).
 * Nothing here reads the Swagger files.
 */

export type Json = Record<string, unknown>;

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export interface Fetched {
  status: number;
  headers: Headers;
  text: string;
  /** The parsed JSON body; undefined when the body is not JSON. */
  body: unknown;
  url: URL;
}

export async function get(url: string, headers: Record<string, string> = {}): Promise<Fetched> {
  const res = await fetch(url, { headers, redirect: 'manual' });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, headers: res.headers, text, body, url: new URL(url) };
}

/** Follows `next` until it is absent; fails on a loop so a broken cursor cannot hang a suite. */
export async function collect(
  first: string,
  headers: Record<string, string>,
  next: (body: Json) => string | undefined,
  items: (body: Json) => unknown[],
): Promise<{ pages: Fetched[]; values: unknown[] }> {
  const pages: Fetched[] = [];
  const values: unknown[] = [];
  const seen = new Set<string>();
  let url: string | undefined = first;
  while (url) {
    if (seen.has(url) || pages.length > 50) throw new Error(`pagination loops at ${url}`);
    seen.add(url);
    const page = await get(url, headers);
    if (page.status !== 200 || !isObject(page.body)) throw new Error(`${url} answered ${page.status}: ${page.text.slice(0, 200)}`);
    pages.push(page);
    values.push(...items(page.body));
    url = next(page.body);
  }
  return { pages, values };
}

// ---------------------------------------------------------------------------------------------
// Bitbucket

export const BITBUCKET_SEED = {
  workspaces: 2,
  reposPerWorkspace: 3,
  membersPerWorkspace: 5,
  pullRequestsPerRepo: 12,
  commitsPerRepo: 25,
  pipelinesPerRepo: 8,
};

const consumer = DEFAULT_BITBUCKET_CONSUMER;
export const BITBUCKET_BASIC = `Basic ${Buffer.from(`${consumer.clientId}:${consumer.clientSecret}`).toString('base64')}`;

export interface TokenExchange {
  status: number;
  body: Json;
  headers: Headers;
}

export async function bitbucketToken(
  sim: BitbucketSimulator,
  form: Record<string, string>,
  authorization: string | null = BITBUCKET_BASIC,
): Promise<TokenExchange> {
  const res = await fetch(`${sim.oauthUrl}/access_token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization ? { authorization } : {}) },
    body: new URLSearchParams(form).toString(),
  });
  return { status: res.status, body: (await res.json()) as Json, headers: res.headers };
}

/** The authorization-code flow end to end: approve, then exchange the code. */
export async function bitbucketAuthorize(sim: BitbucketSimulator): Promise<TokenExchange> {
  const redirect = 'http://127.0.0.1:9/callback';
  const res = await get(
    `${sim.oauthUrl}/authorize?client_id=${consumer.clientId}&response_type=code&state=s1&redirect_uri=${encodeURIComponent(redirect)}`,
  );
  const code = new URL(res.headers.get('location') ?? '').searchParams.get('code') ?? '';
  return bitbucketToken(sim, { grant_type: 'authorization_code', code });
}

export interface BitbucketTraffic {
  /** Token endpoint successes: code exchange and refresh (`scope`), and a legacy body (`scopes`). */
  tokens: { name: string; exchange: TokenExchange }[];
  /** Token endpoint failures (RFC 6749 §5.2 bodies). */
  oauthErrors: { name: string; exchange: TokenExchange }[];
  user: Fetched;
  /** Every page of each listing, followed through `next`. */
  lists: Record<'workspaces' | 'members' | 'repositories' | 'pullRequests' | 'participants' | 'commits' | 'pipelines', Fetched[]>;
  repository: Fetched;
  /** JSON error responses: 400, 401 (unknown and expired token), 403, 404, 503. */
  errors: Fetched[];
}

/**
 * Drives the Bitbucket simulator through every endpoint the sync uses. The simulator must be
 * freshly seeded with BITBUCKET_SEED (workspace `acme`, repositories `api`, `web`, `mobile-app`);
 * its controls are reset afterwards.
 */
export async function bitbucketTraffic(sim: BitbucketSimulator): Promise<BitbucketTraffic> {
  const granted = await bitbucketAuthorize(sim);
  const auth = { authorization: `Bearer ${String(granted.body.access_token)}` };
  const api = sim.apiUrl;
  const pages = async (path: string) =>
    (
      await collect(
        `${api}${path}`,
        auth,
        (b) => (typeof b.next === 'string' ? b.next : undefined),
        (b) => (Array.isArray(b.values) ? b.values : []),
      )
    ).pages;
  const allStates = 'state=OPEN&state=MERGED&state=DECLINED&state=SUPERSEDED';

  const refreshed = await bitbucketToken(sim, { grant_type: 'refresh_token', refresh_token: String(granted.body.refresh_token) });
  const legacy = await startBitbucketSimulator({ scopeField: 'scopes', seed: { workspaces: 1 } });
  let legacyToken: TokenExchange;
  try {
    legacyToken = await bitbucketAuthorize(legacy);
  } finally {
    await legacy.close();
  }
  const oauthErrors = [
    {
      name: 'rotated-out refresh token',
      exchange: await bitbucketToken(sim, { grant_type: 'refresh_token', refresh_token: String(granted.body.refresh_token) }),
    },
    { name: 'unknown code', exchange: await bitbucketToken(sim, { grant_type: 'authorization_code', code: 'not-a-code' }) },
    { name: 'no client authentication', exchange: await bitbucketToken(sim, { grant_type: 'refresh_token', refresh_token: 'x' }, null) },
  ];
  const current = { authorization: `Bearer ${String(refreshed.body.access_token)}` };
  Object.assign(auth, current);

  const traffic: BitbucketTraffic = {
    tokens: [
      { name: 'authorization_code', exchange: granted },
      { name: 'refresh_token', exchange: refreshed },
      { name: 'authorization_code (scopes, before 2026-05-04)', exchange: legacyToken },
    ],
    oauthErrors,
    user: await get(`${api}/user`, auth),
    lists: {
      workspaces: await pages('/user/workspaces?pagelen=1'),
      members: await pages('/workspaces/acme/members?pagelen=2'),
      repositories: await pages('/repositories/acme?pagelen=2&sort=updated_on'),
      pullRequests: await pages(`/repositories/acme/api/pullrequests?${allStates}&sort=updated_on&pagelen=5`),
      participants: await pages(
        `/repositories/acme/api/pullrequests?${allStates}&fields=%2Bvalues.participants,%2Bvalues.reviewers&pagelen=10`,
      ),
      commits: await pages('/repositories/acme/api/commits?pagelen=10'),
      pipelines: await pages('/repositories/acme/api/pipelines?sort=-created_on&pagelen=3'),
    },
    repository: await get(`${api}/repositories/acme/api`, auth),
    errors: [],
  };

  const errors = traffic.errors;
  errors.push(await get(`${api}/user`, { authorization: 'Bearer not-a-token' }));
  errors.push(await get(`${api}/repositories/acme?q=${encodeURIComponent('updated_on > "2024-01-01T00:00:00+00:00"')}`, auth));
  errors.push(await get(`${api}/repositories/nope`, auth));
  sim.control.setRepositoryAccess('acme', 'web', 'forbidden');
  sim.control.setRepositoryAccess('acme', 'mobile-app', 'not_found');
  try {
    errors.push(await get(`${api}/repositories/acme/web`, auth));
    errors.push(await get(`${api}/repositories/acme/web/pipelines`, auth));
    errors.push(await get(`${api}/repositories/acme/mobile-app/pullrequests`, auth));
    sim.control.injectFaults({ status: 503, count: 1 });
    errors.push(await get(`${api}/user`, auth));
  } finally {
    sim.control.reset();
    sim.control.setRepositoryAccess('acme', 'web', 'ok');
    sim.control.setRepositoryAccess('acme', 'mobile-app', 'ok');
  }
  // Last: it invalidates every access token handed out so far.
  sim.control.expireAccessTokens();
  errors.push(await get(`${api}/user`, auth));
  return traffic;
}

// ---------------------------------------------------------------------------------------------
// Bitrise

export const BITRISE_SEED = { organizations: 2, appsPerOrganization: 3, buildsPerApp: 23, pipelinesPerApp: 4 };

export interface BitriseTraffic {
  me: Fetched;
  organizations: Fetched;
  /** Every page of each listing, followed through `paging.next` (`before=` for pipelines). */
  lists: Record<'apps' | 'builds' | 'pipelines', Fetched[]>;
  app: Fetched;
  /** A finished and a running build, one by one (`GET …/builds/{build-slug}`). */
  builds: Fetched[];
  /** JSON error responses: 400, 401 (no token, Bearer prefix), 403, 404, 500. */
  errors: Fetched[];
}

/** Drives the Bitrise simulator (seeded with BITRISE_SEED) through every endpoint the sync uses. */
export async function bitriseTraffic(sim: BitriseSimulator): Promise<BitriseTraffic> {
  const token = sim.control.createToken({ label: 'traffic' });
  const auth = { authorization: token };
  const api = sim.apiUrl;
  const [app, other] = sim.control.dataset().organizations.flatMap((o) => o.apps);
  if (!app || !other) throw new Error('the Bitrise seed needs two apps');
  const nextAnchor = (b: Json) => (isObject(b.paging) && typeof b.paging.next === 'string' ? b.paging.next : undefined);
  const data = (b: Json) => (Array.isArray(b.data) ? b.data : []);
  const anchored = async (path: string) => {
    const first = `${api}${path}`;
    return (await collect(first, auth, (b) => (nextAnchor(b) ? `${first}&next=${nextAnchor(b) ?? ''}` : undefined), data)).pages;
  };
  const pipelinesFirst = `${api}/apps/${app.slug}/pipelines?limit=5`;

  const builds = await anchored(`/apps/${app.slug}/builds?limit=5`);
  const slugs = builds.flatMap((p) => (isObject(p.body) ? data(p.body) : [])).filter(isObject);
  const running = slugs.find((b) => b.status === 0);
  const finished = slugs.find((b) => b.status !== 0);

  const traffic: BitriseTraffic = {
    me: await get(`${api}/me`, auth),
    organizations: await get(`${api}/organizations`, auth),
    lists: {
      apps: await anchored('/apps?limit=2&sort_by=created_at'),
      builds,
      pipelines: (
        await collect(
          pipelinesFirst,
          auth,
          (b) => (nextAnchor(b) ? `${pipelinesFirst}&before=${encodeURIComponent(nextAnchor(b) ?? '')}` : undefined),
          data,
        )
      ).pages,
    },
    app: await get(`${api}/apps/${app.slug}`, auth),
    builds: [],
    errors: [],
  };
  for (const b of [finished, running]) if (b) traffic.builds.push(await get(`${api}/apps/${app.slug}/builds/${String(b.slug)}`, auth));

  const errors = traffic.errors;
  errors.push(await get(`${api}/apps`));
  errors.push(await get(`${api}/me`, { authorization: `Bearer ${token}` }));
  errors.push(await get(`${api}/apps/${app.slug}/builds?after=2024-01-01T00:00:00Z`, auth));
  errors.push(await get(`${api}/apps/0000000000000000/builds`, auth));
  sim.control.setAppAccess(other.slug, 'forbidden');
  try {
    errors.push(await get(`${api}/apps/${other.slug}/builds`, auth));
    sim.control.injectFaults({ status: 500, count: 1 });
    errors.push(await get(`${api}/me`, auth));
  } finally {
    sim.control.reset();
    sim.control.setAppAccess(other.slug, 'ok');
  }
  return traffic;
}
