import {
  ChaosPlan,
  FaultPlan,
  FixedWindow,
  MonotonicClock,
  RequestLog,
  SecretRegistry,
  SimInputError,
  type SimRoute,
  createSimApp,
  commonControl,
  commonSimRoutes,
  installTrafficHooks,
  listen,
  num,
  optNum,
  optStr,
  parseAnchor,
  registerSimRoutes,
  seededRandom,
  str,
} from '../shared';
import { API_BASE } from './constants';
import { ApiError, sendError, sendFault } from './errors';
import { registerApiRoutes } from './routes';
import { TokenStore } from './tokens';
import type { BitriseControl, BitriseSimulator, BitriseSimulatorOptions, BuildStatus } from './types';
import { BitriseWorld } from './world';

/**
 * Bitrise API v0.1 simulator: personal and workspace access tokens sent raw in `Authorization`
 * (https://docs.bitrise.io/en/bitrise-ci/api/authenticating-with-the-bitrise-api), the endpoints
 * Conduit syncs under `/v0.1` (https://api-docs.bitrise.io/docs/swagger.json), `next`-anchor paging
 * (https://docs.bitrise.io/en/bitrise-ci/api/pagination-of-api-calls.html), and the real API's habit
 * of sending `null` for unset string fields (see render.ts).
 */

export * from './types';

export async function startBitriseSimulator(opts: BitriseSimulatorOptions = {}): Promise<BitriseSimulator> {
  const seed = opts.seed ?? {};
  const anchor = parseAnchor(seed.anchor);
  const clock = new MonotonicClock(anchor);
  const world = new BitriseWorld(seededRandom(seed.seed ?? 2), clock, seed, anchor);
  const secrets = new SecretRegistry();
  const log = new RequestLog();
  const faults = new FaultPlan(API_BASE);
  const chaos = new ChaosPlan();
  const minuteWindow = new FixedWindow(60_000);
  let perMinute: number | undefined;
  const tokens = new TokenStore(secrets, seed.tokens);

  const app = createSimApp();
  installTrafficHooks(app, {
    log,
    faults,
    chaos,
    isApiPath: (path) => path.startsWith(`${API_BASE}/`),
    sendFault: (reply, status) => sendFault(reply, status),
  });
  app.setErrorHandler((err, _request, reply) => {
    if (err instanceof ApiError) return sendError(reply, err.status, err.message);
    const status = (err as { statusCode?: number }).statusCode ?? 500;
    return sendError(reply, status >= 400 && status < 500 ? status : 500, status < 500 ? 'Bad Request' : 'Internal Server Error');
  });
  app.setNotFoundHandler((_request, reply) => sendError(reply, 404, 'Not Found'));

  registerApiRoutes(app, { world, tokens, minuteWindow, perMinute: () => perMinute });

  const control: BitriseControl = {
    ...commonControl({
      log,
      faults,
      chaos,
      secrets,
      resetOwn: () => {
        perMinute = undefined;
        minuteWindow.clear();
      },
    }),
    createToken: (o) => tokens.create(o),
    revokeToken: (token) => tokens.revoke(token),
    setRateLimit: (limit) => {
      if (limit !== null && !(Number.isInteger(limit.perMinute) && limit.perMinute >= 0))
        throw new SimInputError('perMinute must be an integer >= 0');
      perMinute = limit?.perMinute;
      minuteWindow.clear();
    },
    addBuilds: (slug, count, o) => world.addBuilds(slug, count, o),
    finishRunningBuilds: (slug, status) => world.finishRunningBuilds(slug, status),
    addPipelines: (slug, count, o) => world.addPipelines(slug, count, o),
    finishRunningPipelines: (slug, status) => world.finishRunningPipelines(slug, status),
    setAppAccess: (slug, access) => world.setAppAccess(slug, access),
    dataset: () => world.dataset(),
  };
  registerSimRoutes(app, bitriseSimRoutes(control));

  const url = await listen(app, opts.host ?? '127.0.0.1', opts.port ?? 0);
  return { url, apiUrl: `${url}${API_BASE}`, control, close: () => app.close() };
}

function bitriseSimRoutes(c: BitriseControl): SimRoute[] {
  const finished = (b: Record<string, unknown>) => optNum(b, 'status') as Exclude<BuildStatus, 0> | undefined;
  return [
    ...commonSimRoutes(c),
    {
      method: 'POST',
      url: '/tokens',
      handler: (b) => {
        const kind = optStr(b, 'kind');
        if (kind !== undefined && kind !== 'personal' && kind !== 'workspace')
          throw new SimInputError('kind must be personal or workspace');
        return { token: c.createToken({ label: optStr(b, 'label'), kind }) };
      },
    },
    { method: 'POST', url: '/tokens/revoke', handler: (b) => c.revokeToken(str(b, 'token')) },
    {
      method: 'POST',
      url: '/rate-limit',
      handler: (b) => c.setRateLimit(b.perMinute === null || b.perMinute === undefined ? null : { perMinute: num(b, 'perMinute') }),
    },
    { method: 'GET', url: '/dataset', handler: () => c.dataset() },
    {
      method: 'POST',
      url: '/apps/:app/builds',
      handler: (b, p) => ({
        slugs: c.addBuilds(p.app ?? '', num(b, 'count'), {
          status: optNum(b, 'status') as BuildStatus | undefined,
          branch: optStr(b, 'branch'),
          workflow: optStr(b, 'workflow'),
        }),
      }),
    },
    { method: 'POST', url: '/finish-running-builds', handler: (b) => ({ finished: c.finishRunningBuilds(undefined, finished(b)) }) },
    {
      method: 'POST',
      url: '/apps/:app/finish-running-builds',
      handler: (b, p) => ({ finished: c.finishRunningBuilds(p.app ?? '', finished(b)) }),
    },
    {
      method: 'POST',
      url: '/apps/:app/pipelines',
      handler: (b, p) => ({
        slugs: c.addPipelines(p.app ?? '', num(b, 'count'), {
          status: optNum(b, 'status') as BuildStatus | undefined,
          branch: optStr(b, 'branch'),
        }),
      }),
    },
    {
      method: 'POST',
      url: '/apps/:app/finish-running-pipelines',
      handler: (b, p) => ({ finished: c.finishRunningPipelines(p.app ?? '', finished(b)) }),
    },
    {
      method: 'POST',
      url: '/apps/:app/access',
      handler: (b, p) => {
        const access = str(b, 'access');
        if (access !== 'ok' && access !== 'forbidden' && access !== 'not_found')
          throw new SimInputError('access must be ok, forbidden or not_found');
        c.setAppAccess(p.app ?? '', access);
      },
    },
  ];
}
