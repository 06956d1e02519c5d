import type { FastifyInstance } from 'fastify';
import { type RollingWindow, compileFilter, encodeQuery, isRecord, queryParams, sortItems, splitUrl } from '../shared';
import { API_BASE, PR_STATES } from './constants';
import { ApiError, sendFault } from './errors';
import { type Grant, type OAuthServer, hasScope } from './oauth';
import { intParam, pageBased } from './pagination';
import type { Json, Renderers } from './render';
import type { PullRequestState } from './types';
import type { BitbucketWorld, Pipeline } from './world';

export type Params = Record<string, string>;
export interface ApiContext {
  query: URLSearchParams;
  params: Params;
  grant: Grant;
  selfUrl: string;
}

/**
 * What the /2.0 routes read from the running simulator. `siteUrl`, `render` and `perHour` change
 * after registration (the port is known only once listening; the rate limit is a control), so
 * they are read through functions at request time.
 */
export interface ApiRouteDeps {
  world: BitbucketWorld;
  oauth: OAuthServer;
  hourly: RollingWindow;
  perHour: () => number | undefined;
  siteUrl: () => string;
  render: () => Renderers;
}

/** Registers the authenticated `/2.0` endpoints Conduit syncs. */
export function registerApiRoutes(app: FastifyInstance, sim: ApiRouteDeps): void {
  const { world, oauth, hourly } = sim;

  // --- API
  const route = (path: string, scope: string, handler: (ctx: ApiContext) => Json) => {
    app.get(`${API_BASE}${path}`, async (request, reply) => {
      const query = queryParams(request.url);
      const grant = oauth.authenticate(request.headers.authorization, query);
      const perHour = sim.perHour();
      if (perHour !== undefined && !hourly.tryHit(grant.id, perHour, Date.now())) return sendFault(reply, 429);
      if (!hasScope(grant.scopes, scope)) {
        // The real body also carries `detail: {required, granted}` as an object, which the spec
        // types as a string; only the message is simulated so responses stay spec-valid.
        throw new ApiError(403, 'Your credentials lack one or more required privilege scopes.');
      }
      const selfUrl = sim.siteUrl() + splitUrl(request.url).path;
      return reply.send(handler({ query, params: request.params as Params, grant, selfUrl }));
    });
  };

  const workspaceOr404 = (id: string | undefined) => {
    const ws = id === undefined ? undefined : world.findWorkspace(id);
    if (!ws) throw new ApiError(404, `No workspace with identifier '${id ?? ''}'.`);
    return ws;
  };
  const repoOrError = (params: Params) => {
    const ws = workspaceOr404(params.workspace);
    const repo = world.findRepo(ws, params.repo ?? '');
    if (!repo || repo.access === 'not_found') throw new ApiError(404, `Repository ${ws.slug}/${params.repo ?? ''} not found`);
    if (repo.access === 'forbidden') throw new ApiError(403, 'Forbidden');
    return repo;
  };
  /** Applies `q` and `sort` to rendered items, so field names are exactly the API's. */
  const filterAndSort = (items: Json[], query: URLSearchParams, fields: string[], defaultSort?: string) => {
    const allow = (f: string) => fields.includes(f.split('.')[0] ?? f);
    const q = query.get('q');
    let out = q ? items.filter(compileFilter(q, allow)) : items;
    const sort = query.get('sort') ?? defaultSort;
    if (sort) out = sortItems(out, sort, allow);
    return out;
  };

  route('/user', 'account', () => sim.render().fullUser(world.me));

  route('/user/workspaces', 'account', ({ query, selfUrl }) => {
    const admin = query.get('administrator');
    let items: Json[] = world.workspaces
      .filter((ws) => admin === null || String(ws.adminUuids.has(world.me.uuid)) === admin)
      .map((ws) => ({
        type: 'workspace_access',
        administrator: ws.adminUuids.has(world.me.uuid),
        workspace: sim.render().workspaceBase(ws),
      }));
    // The only sort this endpoint supports is the workspace slug (https://api.bitbucket.org/swagger.json, parameter description).
    const sort = query.get('sort');
    if (sort !== null && sort !== 'slug' && sort !== '-slug') throw new ApiError(400, `Invalid sort: ${sort}`);
    const q = new URLSearchParams(query);
    if (sort) q.set('sort', sort.replace('slug', 'workspace.slug'));
    items = filterAndSort(items, q, ['workspace', 'administrator']);
    return pageBased(items, { maxPagelen: 100, selfUrl, query });
  });

  route('/workspaces/:workspace/members', 'account', ({ params, query, selfUrl }) => {
    const ws = workspaceOr404(params.workspace);
    // `q=user.email IN (…)` filters on e-mail addresses, which only appear in the response when
    // asked for with `fields=+values.user.email` (https://api.bitbucket.org/swagger.json, operation description).
    const showEmail = (query.get('fields') ?? '').includes('values.user.email');
    const items = ws.members.map((m) => ({
      type: 'workspace_membership',
      user: { ...sim.render().user(m), email: m.email },
      workspace: sim.render().workspace(ws),
      links: { self: { href: `${sim.siteUrl()}${API_BASE}/workspaces/${ws.slug}/members/${encodeURIComponent(m.uuid)}` } },
    }));
    const values = filterAndSort(items, query, ['user']).map((item) => {
      if (showEmail || !isRecord(item.user)) return item;
      const { email: _email, ...user } = item.user;
      return { ...item, user };
    });
    return pageBased(values, { maxPagelen: 100, selfUrl, query });
  });

  const REPO_FIELDS = [
    'name',
    'slug',
    'full_name',
    'uuid',
    'created_on',
    'updated_on',
    'language',
    'is_private',
    'description',
    'project',
    'size',
  ];
  route('/repositories/:workspace', 'repository', ({ params, query, selfUrl }) => {
    const ws = workspaceOr404(params.workspace);
    const items = ws.repos.filter((r) => r.access !== 'not_found').map(sim.render().repository);
    return pageBased(filterAndSort(items, query, REPO_FIELDS), { maxPagelen: 100, selfUrl, query });
  });

  route('/repositories/:workspace/:repo', 'repository', ({ params }) => sim.render().repository(repoOrError(params)));

  const PR_FIELDS = [
    'id',
    'title',
    'description',
    'state',
    'author',
    'source',
    'destination',
    'created_on',
    'updated_on',
    'comment_count',
    'task_count',
    'draft',
    'reason',
    'closed_by',
  ];
  route('/repositories/:workspace/:repo/pullrequests', 'pullrequest', ({ params, query, selfUrl }) => {
    const repo = repoOrError(params);
    const states = query.getAll('state');
    const bad = states.find((s) => !PR_STATES.includes(s as PullRequestState));
    if (bad) throw new ApiError(400, `Invalid state: ${bad}`);
    // Default is OPEN only; `state` may be repeated (https://api.bitbucket.org/swagger.json, operation description).
    const wanted = new Set(states.length ? states : ['OPEN']);
    // `participants` and `reviewers` are only on the single-PR resource unless requested through
    // partial responses (`fields=+values.participants`).
    const fields = query.get('fields') ?? '';
    const expand = { participants: fields.includes('participants'), reviewers: fields.includes('reviewers') };
    const items = repo.pullRequests.filter((pr) => wanted.has(pr.state)).map((pr) => sim.render().pullRequest(repo, pr, expand));
    return pageBased(filterAndSort(items, query, PR_FIELDS, '-id'), { maxPagelen: 50, selfUrl, query });
  });

  route('/repositories/:workspace/:repo/commits', 'repository', ({ params, query, selfUrl }) => {
    const repo = repoOrError(params);
    const newestFirst = [...repo.commits].reverse();
    // Iterator pagination (https://api.bitbucket.org/swagger.json, x-atlassian-narrative): `next` carries an opaque token, here the hash the
    // next page starts at, so commits pushed while a client pages do not shift the pages.
    const token = query.get('page');
    const start = token === null ? 0 : newestFirst.findIndex((c) => c.hash === token);
    if (start < 0) throw new ApiError(404, 'Invalid page');
    const pagelen = Math.min(Math.max(intParam(query, 'pagelen', 10), 1), 100);
    const slice = newestFirst.slice(start, start + pagelen);
    const body: Json = { values: slice.map((c) => sim.render().commit(repo, c)), pagelen };
    const following = newestFirst[start + pagelen];
    if (following) {
      const q = new URLSearchParams(query);
      q.set('page', following.hash);
      body.next = `${selfUrl}?${encodeQuery(q)}`;
    }
    return body;
  });

  route('/repositories/:workspace/:repo/pipelines', 'pipeline', ({ params, query, selfUrl }) => {
    const repo = repoOrError(params);
    // Pipelines take their own filter parameters instead of `q` (https://api.bitbucket.org/swagger.json, operation parameters).
    const branch = query.get('target.branch');
    const trigger = query.get('trigger_type');
    const status = query.get('status');
    const statusMatches = (p: Pipeline) => {
      const map: Record<string, (p: Pipeline) => boolean> = {
        PENDING: (x) => x.state === 'PENDING',
        BUILDING: (x) => x.state === 'IN_PROGRESS',
        PASSED: (x) => x.result === 'SUCCESSFUL',
        FAILED: (x) => x.result === 'FAILED',
        ERROR: (x) => x.result === 'ERROR',
        STOPPED: (x) => x.result === 'STOPPED',
      };
      return !status || (map[status]?.(p) ?? false);
    };
    let pipelines = repo.pipelines.filter(
      (p) => (!branch || p.branch === branch) && (!trigger || p.trigger === trigger) && statusMatches(p),
    );
    const sort = query.get('sort') ?? 'created_on';
    const sortField = sort.replace(/^-/, '');
    if (!['created_on', 'run_creation_date', 'creator.uuid'].includes(sortField)) throw new ApiError(400, `Invalid sort: ${sort}`);
    // Oldest first unless asked otherwise: clients that want the latest must send sort=-created_on.
    pipelines = [...pipelines].sort((a, b) =>
      sortField === 'creator.uuid'
        ? a.creator.uuid.localeCompare(b.creator.uuid) || a.buildNumber - b.buildNumber
        : a.createdOn - b.createdOn || a.buildNumber - b.buildNumber,
    );
    if (sort.startsWith('-')) pipelines.reverse();
    return pageBased(
      pipelines.map((p) => sim.render().pipeline(repo, p)),
      { maxPagelen: 100, selfUrl, query },
    );
  });
}
