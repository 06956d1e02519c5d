import {
  ChaosPlan,
  FaultPlan,
  MonotonicClock,
  QueryError,
  RequestLog,
  RollingWindow,
  SecretRegistry,
  SimInputError,
  type SimRoute,
  createSimApp,
  cutMidBody,
  isRecord,
  commonControl,
  commonSimRoutes,
  installTrafficHooks,
  listen,
  num,
  optStr,
  parseAnchor,
  queryParams,
  registerSimRoutes,
  resetConnection,
  seededRandom,
  splitUrl,
  str,
} from '../shared';
import { API_BASE, OAUTH_BASE } from './constants';
import { ApiError, sendApiError, sendFault } from './errors';
import { OAuthServer, errorPage, oauthError } from './oauth';
import { renderers } from './render';
import { registerApiRoutes } from './routes';
import {
  type BitbucketControl,
  type BitbucketSimulator,
  type BitbucketSimulatorOptions,
  DEFAULT_BITBUCKET_CONSUMER,
  type PipelineResult,
  type PipelineStateName,
  type PullRequestState,
  type RefreshFault,
  REFRESH_FAULTS,
  type RepositoryAccess,
} from './types';
import { BitbucketWorld } from './world';

/**
 * Bitbucket Cloud simulator: OAuth 2.0 (authorization code + rotating refresh tokens) under
 * `/site/oauth2` and the REST 2.0 endpoints Conduit syncs under `/2.0`, with the real API's
 * response shapes, error bodies and pagination styles (https://developer.atlassian.com/cloud/bitbucket/rest/intro/,
 * https://developer.atlassian.com/cloud/bitbucket/oauth-2/; the zod schemas in src/providers/bitbucket/schemas.ts
 * cite the real-world differences).
 */

export * from './types';

export async function startBitbucketSimulator(opts: BitbucketSimulatorOptions = {}): Promise<BitbucketSimulator> {
  const seed = opts.seed ?? {};
  const anchor = parseAnchor(seed.anchor);
  const clock = new MonotonicClock(anchor);
  const world = new BitbucketWorld(seededRandom(seed.seed ?? 1), clock, seed, anchor);
  const secrets = new SecretRegistry();
  const log = new RequestLog();
  const faults = new FaultPlan(API_BASE);
  const chaos = new ChaosPlan();
  const refreshFaults: RefreshFault[] = [];
  const hourly = new RollingWindow(3600 * 1000);
  let perHour: number | undefined;
  const oauth = new OAuthServer(
    secrets,
    clock,
    opts.refreshTokenGraceSeconds ?? 0,
    opts.scopeField ?? 'scope',
    opts.accessTokenTtlSeconds ?? 7200,
  );
  for (const c of opts.consumers ?? [DEFAULT_BITBUCKET_CONSUMER]) oauth.addConsumer(c);

  const app = createSimApp();
  let siteUrl = '';
  let render = renderers('');

  installTrafficHooks(app, {
    log,
    faults,
    chaos,
    isApiPath: (path) => path.startsWith(`${API_BASE}/`),
    sendFault: (reply, status) => sendFault(reply, status),
  });

  app.setErrorHandler((err, request, reply) => {
    if (err instanceof ApiError) return sendApiError(reply, err);
    if (err instanceof QueryError) return sendApiError(reply, new ApiError(400, `Invalid query: ${err.message}`));
    const status = (err as { statusCode?: number }).statusCode ?? 500;
    if (splitUrl(request.url).path.startsWith(OAUTH_BASE)) {
      return reply.code(400).send(oauthError(400, 'invalid_request', 'Malformed request.').body);
    }
    return sendApiError(
      reply,
      new ApiError(status >= 400 && status < 500 ? status : 500, status < 500 ? 'Bad request' : 'Internal Server Error'),
    );
  });

  app.setNotFoundHandler((request, reply) => {
    if (splitUrl(request.url).path.startsWith(`${API_BASE}/`)) return sendApiError(reply, new ApiError(404, 'Resource not found'));
    return reply.code(404).type('text/html').send(errorPage('Page not found', 'The page you were looking for does not exist.'));
  });

  // --- OAuth
  app.get(`${OAUTH_BASE}/authorize`, async (request, reply) => {
    const result = oauth.authorize(queryParams(request.url));
    if ('redirect' in result) return reply.redirect(result.redirect, 302);
    return reply.code(result.status).type('text/html; charset=utf-8').send(result.html);
  });
  app.post(`${OAUTH_BASE}/access_token`, async (request, reply) => {
    const refreshing = isRecord(request.body) && request.body.grant_type === 'refresh_token';
    const fault = refreshing ? (refreshFaults.shift() ?? chaosRefreshFault(chaos)) : undefined;
    if (fault === 'unavailable') return sendFault(reply, 503);
    const result = oauth.token(request);
    // The refresh token was rotated, but the answer never arrives whole: the client holds only the old one.
    if (fault === 'answer_lost') return resetConnection(request, reply);
    if (fault === 'answer_cut') cutMidBody(reply);
    for (const [k, v] of Object.entries(result.headers ?? {})) reply.header(k, v);
    return reply.code(result.status).header('cache-control', 'no-store').send(result.body);
  });

  registerApiRoutes(app, {
    world,
    oauth,
    hourly,
    perHour: () => perHour,
    siteUrl: () => siteUrl,
    render: () => render,
  });

  // --- Controls
  const control: BitbucketControl = {
    ...commonControl({
      log,
      faults,
      chaos,
      secrets,
      resetOwn: () => {
        perHour = undefined;
        hourly.clear();
        oauth.clearDenial();
        refreshFaults.length = 0;
      },
    }),
    denyNextAuthorization: (description = 'The user denied access to this application.') => oauth.denyNext(description),
    failNextRefreshes: (count, how) => {
      if (!Number.isInteger(count) || count < 1) throw new SimInputError('count must be a positive integer');
      if (!REFRESH_FAULTS.includes(how)) throw new SimInputError(`how must be one of ${REFRESH_FAULTS.join(', ')}`);
      refreshFaults.push(...Array.from({ length: count }, () => how));
    },
    expireAccessTokens: () => oauth.expireAccessTokens(),
    revokeAll: () => oauth.revokeAll(),
    setAccessTokenTtl: (seconds) => {
      if (!Number.isInteger(seconds) || seconds < 1) throw new SimInputError('ttl must be a positive integer');
      oauth.ttlSeconds = seconds;
    },
    setRefreshTokenGrace: (seconds) => oauth.setRefreshTokenGrace(seconds),
    addConsumer: (clientId, clientSecret, extra = {}) => oauth.addConsumer({ clientId, clientSecret, ...extra }),
    refreshCount: (grantId) => oauth.refreshCount(grantId),
    refreshTokenReuseCount: () => oauth.reuseCount(),
    grants: () => oauth.grantList(),
    setRateLimit: (limit) => {
      if (limit !== null && !(Number.isInteger(limit.perHour) && limit.perHour >= 0))
        throw new SimInputError('perHour must be an integer >= 0');
      perHour = limit?.perHour;
      hourly.clear();
    },
    touchPullRequests: (ws, repo, ids) => world.touchPullRequests(ws, repo, ids),
    setPullRequestState: (ws, repo, id, state) => world.setPullRequestState(ws, repo, id, state),
    addPullRequests: (ws, repo, count, o) => world.addPullRequests(ws, repo, count, o?.state),
    addCommits: (ws, repo, count) => world.addCommits(ws, repo, count),
    addPipelines: (ws, repo, count, o) => world.addPipelines(ws, repo, count, o),
    finishRunningPipelines: (ws, repo, result) => world.finishRunningPipelines(ws, repo, result),
    setRepositoryAccess: (ws, repo, access) => world.setRepositoryAccess(ws, repo, access),
    setMemberPresent: (ws, user, present) => world.setMemberPresent(ws, user, present),
    dataset: () => world.dataset(),
  };
  registerSimRoutes(app, bitbucketSimRoutes(control));

  siteUrl = await listen(app, opts.host ?? '127.0.0.1', opts.port ?? 0);
  render = renderers(siteUrl);
  return {
    url: siteUrl,
    apiUrl: `${siteUrl}${API_BASE}`,
    oauthUrl: `${siteUrl}${OAUTH_BASE}`,
    control,
    close: () => app.close(),
  };
}

const accessValues: readonly RepositoryAccess[] = ['ok', 'forbidden', 'not_found'];

/** Chaos's draw for one refresh, in the terms of `failNextRefreshes`. */
function chaosRefreshFault(chaos: ChaosPlan): RefreshFault | undefined {
  const drawn = chaos.pickToken();
  if (!drawn) return undefined;
  if (drawn.kind === 'token_5xx') return 'unavailable';
  return drawn.midBody ? 'answer_cut' : 'answer_lost';
}

function bitbucketSimRoutes(c: BitbucketControl): SimRoute[] {
  const ids = (body: Record<string, unknown>) => {
    const v = body.ids;
    if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x))) throw new SimInputError('body.ids must be an array of integers');
    return v as number[];
  };
  return [
    ...commonSimRoutes(c),
    { method: 'POST', url: '/deny-next-authorization', handler: (b) => c.denyNextAuthorization(optStr(b, 'description')) },
    { method: 'POST', url: '/expire-access-tokens', handler: () => c.expireAccessTokens() },
    { method: 'POST', url: '/fail-next-refreshes', handler: (b) => c.failNextRefreshes(num(b, 'count'), str(b, 'how') as RefreshFault) },
    { method: 'POST', url: '/revoke-all', handler: () => c.revokeAll() },
    { method: 'POST', url: '/access-token-ttl', handler: (b) => c.setAccessTokenTtl(num(b, 'seconds')) },
    { method: 'POST', url: '/refresh-token-grace', handler: (b) => c.setRefreshTokenGrace(num(b, 'seconds')) },
    {
      method: 'POST',
      url: '/consumers',
      handler: (b) => {
        const scopes = Array.isArray(b.scopes) ? b.scopes.map(String) : undefined;
        c.addConsumer(str(b, 'clientId'), str(b, 'clientSecret'), { callbackUrl: optStr(b, 'callbackUrl'), scopes });
      },
    },
    { method: 'GET', url: '/refresh-count', handler: () => ({ count: c.refreshCount() }) },
    { method: 'GET', url: '/refresh-token-reuse-count', handler: () => ({ count: c.refreshTokenReuseCount() }) },
    { method: 'GET', url: '/grants', handler: () => c.grants() },
    {
      method: 'POST',
      url: '/rate-limit',
      handler: (b) => c.setRateLimit(b.perHour === null || b.perHour === undefined ? null : { perHour: num(b, 'perHour') }),
    },
    { method: 'GET', url: '/dataset', handler: () => c.dataset() },
    {
      method: 'POST',
      url: '/repositories/:workspace/:repo/touch-pull-requests',
      handler: (b, p) => c.touchPullRequests(p.workspace ?? '', p.repo ?? '', ids(b)),
    },
    {
      method: 'POST',
      url: '/repositories/:workspace/:repo/pull-requests',
      handler: (b, p) => ({
        ids: c.addPullRequests(p.workspace ?? '', p.repo ?? '', num(b, 'count'), {
          state: optStr(b, 'state') as PullRequestState | undefined,
        }),
      }),
    },
    {
      method: 'POST',
      url: '/repositories/:workspace/:repo/pull-requests/:id/state',
      handler: (b, p) => c.setPullRequestState(p.workspace ?? '', p.repo ?? '', Number(p.id), str(b, 'state') as PullRequestState),
    },
    {
      method: 'POST',
      url: '/repositories/:workspace/:repo/commits',
      handler: (b, p) => ({ hashes: c.addCommits(p.workspace ?? '', p.repo ?? '', num(b, 'count')) }),
    },
    {
      method: 'POST',
      url: '/repositories/:workspace/:repo/pipelines',
      handler: (b, p) => ({
        buildNumbers: c.addPipelines(p.workspace ?? '', p.repo ?? '', num(b, 'count'), {
          state: optStr(b, 'state') as PipelineStateName | undefined,
          result: optStr(b, 'result') as PipelineResult | undefined,
          branch: optStr(b, 'branch'),
        }),
      }),
    },
    {
      method: 'POST',
      url: '/repositories/:workspace/:repo/finish-running-pipelines',
      handler: (b, p) => ({
        finished: c.finishRunningPipelines(p.workspace ?? '', p.repo ?? '', optStr(b, 'result') as PipelineResult | undefined),
      }),
    },
    {
      method: 'POST',
      url: '/repositories/:workspace/:repo/access',
      handler: (b, p) => {
        const access = str(b, 'access') as RepositoryAccess;
        if (!accessValues.includes(access)) throw new SimInputError('access must be ok, forbidden or not_found');
        c.setRepositoryAccess(p.workspace ?? '', p.repo ?? '', access);
      },
    },
    {
      method: 'POST',
      url: '/workspaces/:workspace/members/:user/presence',
      handler: (b, p) => {
        if (typeof b.present !== 'boolean') throw new SimInputError('body.present must be a boolean');
        c.setMemberPresent(p.workspace ?? '', p.user ?? '', b.present);
      },
    },
  ];
}
