import type { FastifyInstance } from 'fastify';
import { type FixedWindow, isoMicrosZ, queryParams } from '../shared';
import { API_BASE, MAX_LIMIT } from './constants';
import { ApiError, sendError, sendRateLimited } from './errors';
import { anchorPage, intQuery, limitOf } from './pagination';
import { type Json, renderApp, renderBuild, renderMe, renderOrganization, renderPipelineItem } from './render';
import type { TokenStore } from './tokens';
import type { BuildStatus } from './types';
import type { App, BitriseWorld, Build } from './world';

export type Params = Record<string, string>;

/**
 * What the /v0.1 routes read from the running simulator. `perMinute` is a control that changes
 * after registration, so it is read through a function at request time.
 */
export interface ApiRouteDeps {
  world: BitriseWorld;
  tokens: TokenStore;
  minuteWindow: FixedWindow;
  perMinute: () => number | undefined;
}

/**
 * The `status` filter of `GET /apps/{app-slug}/pipelines` (https://api-docs.bitrise.io/docs/swagger.json),
 * mapped to the build status a list item must have.
 */
const PIPELINE_STATUS: Record<string, BuildStatus> = {
  running: 0,
  on_hold: 0,
  succeeded: 1,
  failed: 2,
  aborted: 3,
  succeeded_with_abort: 4,
};

/** Registers the authenticated `/v0.1` endpoints Conduit syncs. */
export function registerApiRoutes(app: FastifyInstance, sim: ApiRouteDeps): void {
  const { world, tokens, minuteWindow } = sim;

  const route = (path: string, handler: (query: URLSearchParams, params: Params) => Json) => {
    app.get(`${API_BASE}${path}`, async (request, reply) => {
      // The token goes in raw, with no scheme (https://docs.bitrise.io/en/bitrise-ci/api/authenticating-with-the-bitrise-api).
      // `Bearer <token>` is treated as a wrong token so a client that adds the prefix fails loudly
      // here rather than in production.
      const presented = request.headers.authorization;
      if (!presented || !tokens.accepts(presented)) return sendError(reply, 401, 'Unauthorized');
      const perMinute = sim.perMinute();
      if (perMinute !== undefined) {
        const now = Date.now();
        const w = minuteWindow.hit(presented, perMinute, now);
        const reset = Math.ceil(w.resetAt / 1000);
        reply
          .header('x-ratelimit-limit', String(perMinute))
          .header('x-ratelimit-remaining', String(w.remaining))
          .header('x-ratelimit-reset', String(reset));
        if (!w.allowed) return sendRateLimited(reply, Math.max(1, Math.ceil((w.resetAt - now) / 1000)));
      }
      return reply.send(handler(queryParams(request.url), request.params as Params));
    });
  };

  const visibleApps = () => world.allApps().filter((a) => a.access !== 'not_found');
  const appOrError = (slug: string | undefined) => {
    const found = slug === undefined ? undefined : world.findApp(slug);
    if (!found || found.access === 'not_found') throw new ApiError(404, 'Not Found');
    if (found.access === 'forbidden') throw new ApiError(403, 'Forbidden');
    return found;
  };
  const lastBuildAt = (a: App) => Math.max(0, ...a.builds.map((b) => b.triggeredAt));

  route('/me', () => ({ data: renderMe(world.me) }));

  route('/organizations', () => ({ data: world.organizations.map(renderOrganization) }));

  route('/apps', (query) => {
    const sortBy = query.get('sort_by') ?? 'last_build_at';
    if (sortBy !== 'last_build_at' && sortBy !== 'created_at') throw new ApiError(400, 'Invalid sort_by parameter');
    const title = query.get('title')?.toLowerCase();
    const projectType = query.get('project_type');
    const apps = visibleApps()
      .filter((a) => (!title || a.title.toLowerCase().includes(title)) && (!projectType || a.projectType === projectType))
      .sort(
        (a, b) => (sortBy === 'created_at' ? b.createdAt - a.createdAt : lastBuildAt(b) - lastBuildAt(a)) || a.slug.localeCompare(b.slug),
      );
    return anchorPage(apps, query, MAX_LIMIT, renderApp);
  });

  route('/apps/:app', (_query, params) => ({ data: renderApp(appOrError(params.app)) }));

  route('/apps/:app/builds', (query, params) => {
    const a = appOrError(params.app);
    const sortBy = query.get('sort_by') ?? 'created_at';
    if (sortBy !== 'created_at' && sortBy !== 'running_first') throw new ApiError(400, 'Invalid sort_by parameter');
    const status = intQuery(query, 'status');
    if (status !== undefined && (status < 0 || status > 4)) throw new ApiError(400, 'Invalid status parameter');
    // `after` and `before` are Unix timestamps in seconds (https://api-docs.bitrise.io/docs/swagger.json);
    // `after` is inclusive so a client resuming from its newest build sees that build again and
    // must de-duplicate.
    const after = intQuery(query, 'after');
    const before = intQuery(query, 'before');
    const buildNumber = intQuery(query, 'build_number');
    const prId = intQuery(query, 'pull_request_id');
    const branch = query.get('branch');
    const workflow = query.get('workflow');
    const message = query.get('commit_message')?.toLowerCase();
    const event = query.get('trigger_event_type');
    const isPipeline = query.get('is_pipeline_build');
    const eventOf = (b: Build) => (b.tag ? 'tag' : b.pullRequestId ? 'pull-request' : 'push');
    const builds = a.builds
      .filter(
        (b) =>
          (status === undefined || b.status === status) &&
          (after === undefined || b.triggeredAt >= after * 1000) &&
          (before === undefined || b.triggeredAt < before * 1000) &&
          (buildNumber === undefined || b.buildNumber === buildNumber) &&
          (prId === undefined || b.pullRequestId === prId) &&
          (!branch || b.branch === branch) &&
          (!workflow || b.workflow === workflow) &&
          (!message || (b.commitMessage ?? '').toLowerCase().includes(message)) &&
          (!event || eventOf(b) === event) &&
          // Builds here never belong to a pipeline.
          isPipeline !== 'true',
      )
      .sort((x, y) => (sortBy === 'running_first' ? Number(y.status === 0) - Number(x.status === 0) : 0) || y.triggeredAt - x.triggeredAt);
    return anchorPage(builds, query, MAX_LIMIT, (b) => renderBuild(a, b));
  });

  route('/apps/:app/builds/:build', (_query, params) => {
    const a = appOrError(params.app);
    const b = a.builds.find((x) => x.slug === params.build);
    if (!b) throw new ApiError(404, 'Not Found');
    return { data: renderBuild(a, b) };
  });

  route('/apps/:app/pipelines', (query, params) => {
    const a = appOrError(params.app);
    const time = (name: string) => {
      const raw = query.get(name);
      if (!raw) return undefined;
      const ms = Date.parse(raw);
      if (Number.isNaN(ms)) throw new ApiError(400, `Invalid ${name} parameter: must be RFC3339`);
      return ms;
    };
    // Pipelines page by time, not by slug: `before` (RFC3339, formerly `next`) is exclusive and the
    // default limit is 10 (https://api-docs.bitrise.io/docs/swagger.json).
    const before = time('before') ?? time('next');
    const after = time('after');
    const statusName = query.get('status');
    if (statusName && !(statusName in PIPELINE_STATUS)) throw new ApiError(400, 'Invalid status parameter');
    const branch = query.get('branch');
    const pipelineName = query.get('pipeline');
    const limit = limitOf(query, 10);
    const items = [
      ...a.pipelines.map((p) => ({ kind: 'pipeline' as const, p, at: p.triggeredAt, status: p.status, branch: p.branch, name: p.name })),
      ...a.builds.map((b) => ({ kind: 'build' as const, b, at: b.triggeredAt, status: b.status, branch: b.branch, name: b.workflow })),
    ]
      .filter(
        (i) =>
          (before === undefined || i.at < before) &&
          (after === undefined || i.at > after) &&
          (!statusName || i.status === PIPELINE_STATUS[statusName]) &&
          (!branch || i.branch === branch) &&
          (!pipelineName || (i.kind === 'pipeline' && i.name === pipelineName)),
      )
      .sort((x, y) => y.at - x.at);
    const page = items.slice(0, limit);
    const last = page.at(-1);
    // The real list reports zero counts here and pages by the last item's trigger time
    // (https://github.com/bitrise-io/bitrise-mcp/blob/f5059ef3a6d83b36dae92625c0eb41b4b9ccda2f/devenv/test-responses/before/list_pipelines.json).
    const paging: Json = { total_item_count: 0, page_item_limit: 0 };
    if (items.length > limit && last) paging.next = isoMicrosZ(last.at);
    return { data: page.map(renderPipelineItem), paging };
  });
}
