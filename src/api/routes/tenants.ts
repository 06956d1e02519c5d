import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { createTenant, setAllowedReturnOrigins, type Tenant } from '../../db/tenants';
import { requireAdmin, requireTenant, tenantOf } from '../auth';
import { normalizeReturnOrigin } from '../return-origins';
import { errorResponses, tenantCreateSchema, tenantCreatedSchema, tenantSchema, tenantUpdateSchema } from '../schemas';
import type { ApiDeps } from '../deps';
import { logWith } from '../log-context';

const toTenantView = (t: Tenant) => ({
  id: t.id,
  name: t.name,
  allowedReturnOrigins: t.allowedReturnOrigins,
  createdAt: t.createdAt.toISOString(),
});

export const tenantRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, deps) => {
  app.post(
    '/v1/tenants',
    {
      // onRequest: refused before the body is read, parsed or validated.
      onRequest: requireAdmin(deps.config.adminToken),
      schema: {
        tags: ['admin'],
        summary: 'Create a tenant and its API key (admin token required)',
        security: [{ adminToken: [] }],
        body: tenantCreateSchema,
        response: { 201: tenantCreatedSchema, ...errorResponses(400, 401, 413, 415, 429) },
      },
    },
    async (req, reply) => {
      const { tenant, apiKey } = await createTenant(deps.sql, req.body.name);
      logWith(req, { tenantId: tenant.id });
      return reply.code(201).send({ id: tenant.id, name: tenant.name, apiKey });
    },
  );

  app.get(
    '/v1/tenants/me',
    {
      onRequest: requireTenant(deps.tenants),
      schema: {
        tags: ['tenants'],
        summary: 'The tenant the API key belongs to',
        security: [{ apiKey: [] }],
        response: { 200: tenantSchema, ...errorResponses(400, 401, 429) },
      },
    },
    async (req) => toTenantView(tenantOf(req)),
  );

  app.patch(
    '/v1/tenants/me',
    {
      onRequest: requireTenant(deps.tenants),
      schema: {
        tags: ['tenants'],
        summary: 'Update the tenant: `allowedReturnOrigins` replaces the origins a connection’s returnUrl may point at',
        security: [{ apiKey: [] }],
        body: tenantUpdateSchema,
        response: { 200: tenantSchema, ...errorResponses(400, 401, 413, 415, 429) },
      },
    },
    async (req) => {
      const tenant = tenantOf(req);
      if (req.body.allowedReturnOrigins === undefined) return toTenantView(tenant);
      const origins = [
        ...new Set(req.body.allowedReturnOrigins.map((o) => normalizeReturnOrigin(o, deps.config.allowInsecureReturnOrigins))),
      ];
      return toTenantView(await setAllowedReturnOrigins(deps.sql, tenant.id, origins));
    },
  );
};
