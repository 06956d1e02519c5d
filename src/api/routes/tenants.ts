import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { createTenant } from '../../db/tenants';
import { requireAdmin } from '../auth';
import { errorSchema, tenantCreateSchema, tenantCreatedSchema } from '../schemas';
import type { ApiDeps } from '../deps';

export const tenantRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, deps) => {
  app.post(
    '/v1/tenants',
    {
      preHandler: requireAdmin(deps.config.adminToken),
      schema: {
        tags: ['admin'],
        summary: 'Create a tenant and its API key (admin token required)',
        security: [{ adminToken: [] }],
        body: tenantCreateSchema,
        response: { 201: tenantCreatedSchema, 400: errorSchema, 401: errorSchema },
      },
    },
    async (req, reply) => {
      const { tenant, apiKey } = await createTenant(deps.sql, req.body.name);
      return reply.code(201).send({ id: tenant.id, name: tenant.name, apiKey });
    },
  );
};
