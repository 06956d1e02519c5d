import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { createInvite, listInvites, revokeInvite, type Invite } from '../../db/invites';
import { requireTenant, tenantOf } from '../auth';
import type { ApiDeps } from '../deps';
import { notFound } from '../errors';
import { isUuid } from '../inputs';
import {
  connectionIdParams,
  errorResponses,
  inviteCreateSchema,
  inviteCreatedSchema,
  inviteIdParams,
  inviteListSchema,
  INVITE_DEFAULT_EXPIRES_IN_SECONDS,
} from '../schemas';

const security = [{ apiKey: [] }];
/** The list answers the newest invites only; older ones are history nobody pages through. */
const LIST_LIMIT = 100;

const toInviteView = (i: Invite) => ({
  id: i.id,
  status: i.status,
  createdAt: i.createdAt.toISOString(),
  expiresAt: i.expiresAt.toISOString(),
  usedAt: i.usedAt?.toISOString() ?? null,
  revokedAt: i.revokedAt?.toISOString() ?? null,
});

/**
 * Invite links, for the tenant (API key): a single-use link the tenant sends to the provider's admin,
 * who opens it without an API key and connects (src/api/routes/invite-pages.ts).
 */
export const inviteRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, deps) => {
  const { connections, sql, config } = deps;
  // onRequest: an unauthenticated caller is refused before its body is read.
  app.addHook('onRequest', requireTenant(deps.tenants));

  app.post(
    '/v1/connections/:id/invites',
    {
      schema: {
        tags: ['invites'],
        summary: 'Create a single-use invite link for the provider’s admin to connect this connection (no API key needed to use it)',
        security,
        params: connectionIdParams,
        body: inviteCreateSchema,
        response: { 201: inviteCreatedSchema, ...errorResponses(400, 401, 404, 409, 413, 415, 429) },
      },
    },
    async (req, reply) => {
      const row = await connections.load(tenantOf(req).id, req.params.id);
      // Only a connection that could take a credential now is worth inviting someone to.
      connections.assertAllowed(row, 'set_credentials');
      const { invite, secret } = await createInvite(sql, {
        tenantId: row.tenantId,
        connectionId: row.id,
        expiresInSeconds: req.body?.expiresInSeconds ?? INVITE_DEFAULT_EXPIRES_IN_SECONDS,
      });
      return reply.code(201).send({
        id: invite.id,
        inviteUrl: `${config.http.publicUrl}/invite/${secret}`,
        expiresAt: invite.expiresAt.toISOString(),
      });
    },
  );

  app.get(
    '/v1/connections/:id/invites',
    {
      schema: {
        tags: ['invites'],
        summary: `The connection’s invites, newest first (at most ${LIST_LIMIT}); never their secrets`,
        security,
        params: connectionIdParams,
        response: { 200: inviteListSchema, ...errorResponses(400, 401, 404, 429) },
      },
    },
    async (req) => {
      const row = await connections.load(tenantOf(req).id, req.params.id);
      return { items: (await listInvites(sql, row.tenantId, row.id, LIST_LIMIT)).map(toInviteView) };
    },
  );

  app.delete(
    '/v1/connections/:id/invites/:inviteId',
    {
      schema: {
        tags: ['invites'],
        summary: 'Revoke an invite: its link stops working. A used, expired or already revoked invite stays as it is.',
        security,
        params: inviteIdParams,
        response: {
          204: z.null().meta({ type: 'null', description: 'Revoked (or could not be used anyway)' }),
          ...errorResponses(400, 401, 404, 413, 415, 429),
        },
      },
    },
    async (req, reply) => {
      const row = await connections.load(tenantOf(req).id, req.params.id);
      if (!isUuid(req.params.inviteId) || !(await revokeInvite(sql, row.tenantId, row.id, req.params.inviteId))) {
        throw notFound('Invite');
      }
      return reply.code(204).send(null);
    },
  );
};
