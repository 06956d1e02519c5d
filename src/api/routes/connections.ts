import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { listConnections, type PageCursor } from '../../db/connections';
import { listRuns } from '../../db/sync-runs';
import { requireTenant, tenantOf } from '../auth';
import { toConnectionDto } from '../connections-service';
import type { ApiDeps } from '../deps';
import { ApiError, badRequest } from '../errors';
import { issueState } from '../oauth-state';
import {
  authorizeResponseSchema,
  connectionCreateSchema,
  connectionIdParams,
  connectionListSchema,
  connectionSchema,
  credentialsSchema,
  emptyBodySchema,
  errorSchema,
  listQuerySchema,
  syncRequestSchema,
  syncRunSchema,
} from '../schemas';

const errors = { 400: errorSchema, 401: errorSchema, 404: errorSchema, 409: errorSchema, 503: errorSchema };
const security = [{ apiKey: [] }];

const cursorSchema = z.object({ c: z.iso.datetime({ offset: true }), i: z.uuid() });

const encodeCursor = (c: PageCursor) => Buffer.from(JSON.stringify({ c: c.createdAt, i: c.id })).toString('base64url');
function decodeCursor(raw: string): PageCursor {
  try {
    const parsed = cursorSchema.parse(JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')));
    return { createdAt: parsed.c, id: parsed.i };
  } catch {
    throw badRequest('invalid_cursor', 'The cursor is not one this API returned.');
  }
}

export const connectionRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, deps) => {
  const { connections, sql, config } = deps;
  app.addHook('preHandler', requireTenant(sql));

  app.post(
    '/v1/connections',
    { schema: { tags: ['connections'], summary: 'Create a connection', security, body: connectionCreateSchema, response: { 201: connectionSchema, ...errors } } },
    async (req, reply) => {
      const row = await connections.create(tenantOf(req).id, req.body);
      return reply.code(201).send(toConnectionDto(row));
    },
  );

  app.get(
    '/v1/connections',
    { schema: { tags: ['connections'], summary: 'List connections, newest first', security, querystring: listQuerySchema, response: { 200: connectionListSchema, ...errors } } },
    async (req) => {
      const after = req.query.cursor ? decodeCursor(req.query.cursor) : undefined;
      const rows = await listConnections(sql, tenantOf(req).id, req.query.limit + 1, after);
      const page = rows.slice(0, req.query.limit);
      const last = page[page.length - 1];
      const nextCursor = rows.length > req.query.limit && last ? encodeCursor({ createdAt: last.pageCursor, id: last.id }) : null;
      return { items: page.map(toConnectionDto), nextCursor };
    },
  );

  app.get(
    '/v1/connections/:id',
    { schema: { tags: ['connections'], summary: 'Get a connection', security, params: connectionIdParams, response: { 200: connectionSchema, ...errors } } },
    async (req) => toConnectionDto(await connections.load(tenantOf(req).id, req.params.id)),
  );

  app.post(
    '/v1/connections/:id/authorize',
    {
      schema: {
        tags: ['connections'],
        summary: 'Start (or redo) the Bitbucket OAuth flow: returns the URL to send the customer to',
        security,
        params: connectionIdParams,
        response: { 200: authorizeResponseSchema, ...errors },
      },
    },
    async (req) => {
      const row = await connections.load(tenantOf(req).id, req.params.id);
      if (row.provider !== 'bitbucket') throw new ApiError(400, 'unsupported_for_provider', 'Only Bitbucket connections use OAuth; set a Bitrise token with PUT /credentials.');
      connections.assertAllowed(row, 'authorize');
      const client = await deps.vault.openOAuthClient(row.id);
      const clientId = client?.clientId ?? config.bitbucket.clientId;
      if (!clientId) throw new ApiError(400, 'oauth_client_required', 'No Bitbucket OAuth consumer is configured for this connection.');
      const state = await issueState(sql, deps.stateKey, row.id, config.oauthStateTtlSeconds);
      return { authorizeUrl: deps.bitbucket.authorizeUrl(clientId, state, `${config.http.publicUrl}/v1/oauth/callback`) };
    },
  );

  app.put(
    '/v1/connections/:id/credentials',
    {
      schema: {
        tags: ['connections'],
        summary: 'Set the Bitrise access token (verified with Bitrise before it is accepted)',
        security,
        params: connectionIdParams,
        body: credentialsSchema,
        response: { 200: connectionSchema, 422: errorSchema, ...errors },
      },
    },
    async (req) => {
      const row = await connections.load(tenantOf(req).id, req.params.id);
      if (row.provider !== 'bitrise') throw new ApiError(400, 'unsupported_for_provider', 'Bitbucket connections are authorized with OAuth: POST /authorize.');
      await connections.attachCredential(row, () => deps.vault.storePending(row.id, 'bitrise_token', { token: req.body.token }));
      return toConnectionDto(await connections.load(row.tenantId, row.id));
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
        response: { 202: connectionSchema, ...errors },
      },
    },
    async (req, reply) => {
      const row = await connections.load(tenantOf(req).id, req.params.id);
      await connections.syncNow(row, req.body ?? {});
      return reply.code(202).send(toConnectionDto(await connections.load(row.tenantId, row.id)));
    },
  );

  for (const [name, summary] of [
    ['pause', 'Pause syncing'],
    ['resume', 'Resume syncing'],
  ] as const) {
    app.post(
      `/v1/connections/:id/${name}`,
      { schema: { tags: ['connections'], summary, security, params: connectionIdParams, body: emptyBodySchema, response: { 200: connectionSchema, ...errors } } },
      async (req) => {
        const row = await connections.load(tenantOf(req).id, req.params.id);
        await connections.act(row, name);
        return toConnectionDto(await connections.load(row.tenantId, row.id));
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
        response: { 200: connectionSchema, ...errors },
      },
    },
    async (req) => {
      const row = await connections.load(tenantOf(req).id, req.params.id);
      await connections.act(row, 'disconnect');
      return toConnectionDto(await connections.load(row.tenantId, row.id));
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
        response: { 200: z.object({ items: z.array(syncRunSchema) }), ...errors },
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
          error: r.error,
        })),
      };
    },
  );
};
