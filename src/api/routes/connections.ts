import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { listConnections } from '../../db/connections';
import { listRuns } from '../../db/sync-runs';
import { toConnectionView } from '../../domain/schemas';
import { adapterOf } from '../../providers/registry';
import { requireTenant, tenantOf } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError, badRequest } from '../errors';
import { decodeConnectionCursor, encodeConnectionCursor } from '../inputs';
import { logWith } from '../log-context';
import { issueState } from '../oauth-state';
import { returnUrlAllowed } from '../return-origins';
import {
  authorizeResponseSchema,
  connectionCreateSchema,
  connectionIdParams,
  connectionListSchema,
  connectionSchema,
  credentialsSchema,
  emptyBodySchema,
  errorResponses,
  listQuerySchema,
  syncRequestSchema,
  syncRunSchema,
} from '../schemas';

const security = [{ apiKey: [] }];

/** What every route here can answer: bad input, no or a wrong API key, rate limited. */
const read = errorResponses(400, 401, 429);
/** Routes that accept a body (or could be sent one): too large, not JSON. */
const withBody = errorResponses(400, 401, 413, 415, 429);
/** Actions on one connection: unknown or another tenant's (404), refused in its status (409), its workflow not answering (503). */
const action = errorResponses(400, 401, 404, 409, 413, 415, 429, 503);

export const connectionRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, deps) => {
  const { connections, sql, config } = deps;
  // onRequest, not preHandler: an unauthenticated caller is refused before its body is read,
  // parsed or validated.
  app.addHook('onRequest', requireTenant(deps.tenants));

  app.post(
    '/v1/connections',
    {
      schema: {
        tags: ['connections'],
        summary: 'Create a connection',
        security,
        body: connectionCreateSchema,
        response: { 201: connectionSchema, ...withBody, ...errorResponses(503) },
      },
    },
    async (req, reply) => {
      const tenant = tenantOf(req);
      if (req.body.returnUrl !== undefined && !returnUrlAllowed(req.body.returnUrl, tenant.allowedReturnOrigins, config.http.publicUrl)) {
        throw badRequest(
          'return_url_not_allowed',
          'The returnUrl’s origin is neither this API’s own nor one of your allowedReturnOrigins; register it with PATCH /v1/tenants/me.',
        );
      }
      const row = await connections.create(tenant.id, req.body);
      logWith(req, { connectionId: row.id });
      return reply.code(201).send(toConnectionView(row));
    },
  );

  app.get(
    '/v1/connections',
    {
      schema: {
        tags: ['connections'],
        summary: 'List connections, newest first',
        security,
        querystring: listQuerySchema,
        response: { 200: connectionListSchema, ...read },
      },
    },
    async (req) => {
      const after = req.query.cursor ? decodeConnectionCursor(req.query.cursor) : undefined;
      const rows = await listConnections(sql, tenantOf(req).id, req.query.limit + 1, after);
      const page = rows.slice(0, req.query.limit);
      const last = page[page.length - 1];
      const nextCursor = rows.length > req.query.limit && last ? encodeConnectionCursor({ createdAt: last.pageCursor, id: last.id }) : null;
      return { items: page.map(toConnectionView), nextCursor };
    },
  );

  app.get(
    '/v1/connections/:id',
    {
      schema: {
        tags: ['connections'],
        summary: 'Get a connection',
        security,
        params: connectionIdParams,
        response: { 200: connectionSchema, ...read, ...errorResponses(404) },
      },
    },
    async (req) => toConnectionView(await connections.load(tenantOf(req).id, req.params.id)),
  );

  app.post(
    '/v1/connections/:id/authorize',
    {
      schema: {
        tags: ['connections'],
        summary: 'Start (or redo) the OAuth flow of an OAuth provider: returns our consent page’s URL to open in the customer’s browser',
        security,
        params: connectionIdParams,
        response: { 200: authorizeResponseSchema, ...action },
      },
    },
    async (req) => {
      const row = await connections.load(tenantOf(req).id, req.params.id);
      const { oauth, manifest } = adapterOf(deps.providers, row.provider);
      if (!oauth) {
        throw new ApiError(
          400,
          'unsupported_for_provider',
          `${manifest.displayName} connections use an access token: set it with PUT /credentials.`,
        );
      }
      connections.assertAllowed(row, 'authorize');
      const client = await deps.vault.openOAuthClient(row.id);
      const clientId = client?.clientId ?? oauth.platformClient?.clientId;
      if (!clientId)
        throw new ApiError(400, 'oauth_client_required', `No ${manifest.displayName} OAuth consumer is configured for this connection.`);
      const state = await issueState(sql, deps.stateKeys, row.id, config.oauthStateTtlSeconds);
      // Our own start page, never the provider's URL: the browser that opens it is the one bound to
      // the flow (see routes/oauth.ts), and the customer sees who is asking before consenting.
      const start = new URL(`${config.http.publicUrl}/v1/oauth/start`);
      start.searchParams.set('state', state);
      return { authorizeUrl: start.toString() };
    },
  );

  app.put(
    '/v1/connections/:id/credentials',
    {
      schema: {
        tags: ['connections'],
        summary: 'Set the access token of a token provider, verified with the provider before it is accepted',
        security,
        params: connectionIdParams,
        body: credentialsSchema,
        response: { 200: connectionSchema, ...action, ...errorResponses(422) },
      },
    },
    async (req) => {
      const row = await connections.load(tenantOf(req).id, req.params.id);
      await connections.setToken(row, req.body.token);
      return toConnectionView(await connections.load(row.tenantId, row.id));
    },
  );

  app.post(
    '/v1/connections/:id/sync',
    {
      schema: {
        tags: ['connections'],
        summary: 'Sync now; `{"full":true}` backfills from scratch, `resources` limits the backfill to those named',
        security,
        params: connectionIdParams,
        body: syncRequestSchema,
        response: { 202: connectionSchema, ...action },
      },
    },
    async (req, reply) => {
      const row = await connections.load(tenantOf(req).id, req.params.id);
      await connections.syncNow(row, req.body ?? {});
      return reply.code(202).send(toConnectionView(await connections.load(row.tenantId, row.id)));
    },
  );

  for (const [name, summary] of [
    ['pause', 'Pause syncing'],
    ['resume', 'Resume syncing'],
  ] as const) {
    app.post(
      `/v1/connections/:id/${name}`,
      {
        schema: {
          tags: ['connections'],
          summary,
          security,
          params: connectionIdParams,
          body: emptyBodySchema,
          response: { 200: connectionSchema, ...action },
        },
      },
      async (req) => {
        const row = await connections.load(tenantOf(req).id, req.params.id);
        await connections.act(row, name);
        return toConnectionView(await connections.load(row.tenantId, row.id));
      },
    );
  }

  app.delete(
    '/v1/connections/:id',
    {
      schema: {
        tags: ['connections'],
        summary: 'Disconnect: destroys the stored secrets and ends the workflow; the connection stays readable',
        security,
        params: connectionIdParams,
        response: { 200: connectionSchema, ...action },
      },
    },
    async (req) => {
      const row = await connections.load(tenantOf(req).id, req.params.id);
      await connections.act(row, 'disconnect');
      return toConnectionView(await connections.load(row.tenantId, row.id));
    },
  );

  app.get(
    '/v1/connections/:id/runs',
    {
      schema: {
        tags: ['connections'],
        summary: 'Sync runs, newest first',
        security,
        params: connectionIdParams,
        response: { 200: z.object({ items: z.array(syncRunSchema) }), ...read, ...errorResponses(404) },
      },
    },
    async (req) => {
      const row = await connections.load(tenantOf(req).id, req.params.id);
      const runs = await listRuns(sql, row.id);
      return {
        items: runs.map((r) => ({
          id: r.id,
          status: r.status,
          startedAt: r.startedAt.toISOString(),
          finishedAt: r.finishedAt?.toISOString() ?? null,
          counts: r.counts,
          requests: r.requests,
          rateLimitWaits: r.rateLimitWaits,
          retries: r.retries,
          rejected: r.rejected,
          rejects: r.rejects,
          error: r.error,
        })),
      };
    },
  );
};
