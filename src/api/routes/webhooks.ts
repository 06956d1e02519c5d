import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import {
  createEndpoint,
  deleteEndpoint,
  getEndpoint,
  listDeliveries,
  listEndpoints,
  rotateSecret,
  updateEndpoint,
  MAX_ENDPOINTS_PER_TENANT,
  type WebhookEndpoint,
} from '../../db/webhooks';
import { checkResolvedTarget, checkWebhookUrl, WebhookTargetError } from '../../webhooks/targets';
import { requireTenant, tenantOf } from '../auth';
import type { ApiDeps } from '../deps';
import { badRequest, conflict, notFound } from '../errors';
import { decodeConnectionCursor, encodeConnectionCursor } from '../inputs';
import {
  emptyBodySchema,
  errorResponses,
  listQuerySchema,
  webhookCreateSchema,
  webhookDeliveryListSchema,
  webhookIdParams,
  webhookListSchema,
  webhookSchema,
  webhookUpdateSchema,
  webhookWithSecretSchema,
} from '../schemas';

const security = [{ apiKey: [] }];
const read = errorResponses(400, 401, 429);
const withBody = errorResponses(400, 401, 413, 415, 429);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const toWebhookView = (e: WebhookEndpoint) => ({
  id: e.id,
  url: e.url,
  events: e.eventTypes,
  description: e.description,
  enabled: e.enabled,
  disabledReason: e.disabledReason,
  previousSecretExpiresAt: e.previousSecretExpiresAt?.toISOString() ?? null,
  createdAt: e.createdAt.toISOString(),
  updatedAt: e.updatedAt.toISOString(),
});

export const webhookRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, deps) => {
  const { sql } = deps;
  app.addHook('onRequest', requireTenant(deps.tenants));

  /** The registration rules, then the host's current DNS answer (a name that does not resolve yet is accepted). */
  async function allowedUrl(raw: string): Promise<string> {
    const allowInsecure = deps.config.webhooks.allowInsecureUrls;
    try {
      const url = checkWebhookUrl(raw, allowInsecure);
      await checkResolvedTarget(url, allowInsecure);
      return url.toString();
    } catch (err) {
      if (err instanceof WebhookTargetError) throw badRequest(err.code, err.message);
      throw err;
    }
  }

  const uniqueTypes = <T>(xs: T[]) => [...new Set(xs)];

  /** A tenant's endpoint, or 404 for ids that are malformed, missing or another tenant's. */
  async function load(tenantId: string, id: string): Promise<WebhookEndpoint> {
    const row = UUID.test(id) ? await getEndpoint(sql, tenantId, id) : undefined;
    if (!row) throw notFound('Webhook');
    return row;
  }

  app.post(
    '/v1/webhooks',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Register a webhook endpoint; the answer holds its signing secret, shown once',
        security,
        body: webhookCreateSchema,
        response: { 201: webhookWithSecretSchema, ...withBody, ...errorResponses(409) },
      },
    },
    async (req, reply) => {
      const tenant = tenantOf(req);
      const url = await allowedUrl(req.body.url);
      const created = await createEndpoint(sql, deps.keyring, {
        tenantId: tenant.id,
        url,
        eventTypes: uniqueTypes(req.body.events),
        description: req.body.description ?? null,
      });
      if (created === 'limit_reached')
        throw conflict('webhook_limit_reached', `A tenant can have at most ${MAX_ENDPOINTS_PER_TENANT} webhooks; delete one first.`);
      return reply.code(201).send({ ...toWebhookView(created.endpoint), secret: created.secret });
    },
  );

  app.get(
    '/v1/webhooks',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'List webhook endpoints, newest first',
        security,
        querystring: listQuerySchema,
        response: { 200: webhookListSchema, ...read },
      },
    },
    async (req) => {
      const after = req.query.cursor ? decodeConnectionCursor(req.query.cursor) : undefined;
      const rows = await listEndpoints(sql, tenantOf(req).id, req.query.limit + 1, after);
      const page = rows.slice(0, req.query.limit);
      const last = page[page.length - 1];
      const nextCursor = rows.length > req.query.limit && last ? encodeConnectionCursor({ createdAt: last.pageCursor, id: last.id }) : null;
      return { items: page.map(toWebhookView), nextCursor };
    },
  );

  app.get(
    '/v1/webhooks/:id',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Get a webhook endpoint',
        security,
        params: webhookIdParams,
        response: { 200: webhookSchema, ...read, ...errorResponses(404) },
      },
    },
    async (req) => toWebhookView(await load(tenantOf(req).id, req.params.id)),
  );

  app.patch(
    '/v1/webhooks/:id',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Update a webhook endpoint: url, events, description, enabled',
        security,
        params: webhookIdParams,
        body: webhookUpdateSchema,
        response: { 200: webhookSchema, ...withBody, ...errorResponses(404) },
      },
    },
    async (req) => {
      const tenant = tenantOf(req);
      await load(tenant.id, req.params.id);
      const url = req.body.url === undefined ? undefined : await allowedUrl(req.body.url);
      const updated = await updateEndpoint(sql, tenant.id, req.params.id, {
        url,
        eventTypes: req.body.events && uniqueTypes(req.body.events),
        description: req.body.description,
        enabled: req.body.enabled,
      });
      if (!updated) throw notFound('Webhook');
      return toWebhookView(updated);
    },
  );

  app.delete(
    '/v1/webhooks/:id',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Delete a webhook endpoint (pending deliveries are dropped); answers it as it was',
        security,
        params: webhookIdParams,
        response: { 200: webhookSchema, ...withBody, ...errorResponses(404) },
      },
    },
    async (req) => {
      const tenant = tenantOf(req);
      const row = await load(tenant.id, req.params.id);
      if (!(await deleteEndpoint(sql, tenant.id, row.id))) throw notFound('Webhook');
      return toWebhookView(row);
    },
  );

  app.post(
    '/v1/webhooks/:id/rotate-secret',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Rotate the signing secret: the new one (shown once) signs from now on, the previous one too for 24 hours',
        security,
        params: webhookIdParams,
        body: emptyBodySchema,
        response: { 200: webhookWithSecretSchema, ...withBody, ...errorResponses(404) },
      },
    },
    async (req) => {
      const tenant = tenantOf(req);
      await load(tenant.id, req.params.id);
      const rotated = await rotateSecret(sql, deps.keyring, tenant.id, req.params.id);
      if (!rotated) throw notFound('Webhook');
      return { ...toWebhookView(rotated.endpoint), secret: rotated.secret };
    },
  );

  app.get(
    '/v1/webhooks/:id/deliveries',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Deliveries to this endpoint, newest first, each with its attempts (status, latency, response code)',
        security,
        params: webhookIdParams,
        querystring: listQuerySchema,
        response: { 200: webhookDeliveryListSchema, ...read, ...errorResponses(404) },
      },
    },
    async (req) => {
      const row = await load(tenantOf(req).id, req.params.id);
      const after = req.query.cursor ? decodeConnectionCursor(req.query.cursor) : undefined;
      const rows = await listDeliveries(sql, row.id, req.query.limit + 1, after);
      const page = rows.slice(0, req.query.limit);
      const last = page[page.length - 1];
      const nextCursor = rows.length > req.query.limit && last ? encodeConnectionCursor({ createdAt: last.pageCursor, id: last.id }) : null;
      return { items: page.map(({ pageCursor: _c, ...d }) => d), nextCursor };
    },
  );
};
