import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { isSyncResource, SYNC_RESOURCES } from '../../domain/connection';
import { microsText } from '../../db/sql';
import { RECORD_TABLES } from '../../sync/registry';
import { requireTenant, tenantOf } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError, badRequest } from '../errors';
import { errorSchema } from '../schemas';

const querySchema = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(100),
  cursor: z.string().max(500).optional(),
  updatedSince: z.iso.datetime({ offset: true }).optional().describe('Only records whose content changed at or after this time'),
});

const cursorSchema = z.object({ u: z.string(), i: z.string() });

/**
 * Synced records, oldest change first, so a consumer can follow changes with `updatedSince` and
 * page with the keyset cursor on (updated_at, id) without gaps while syncs keep writing.
 */
export const recordRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, deps) => {
  const { sql, connections } = deps;
  app.addHook('preHandler', requireTenant(sql));

  app.get(
    '/v1/connections/:id/records/:resource',
    {
      schema: {
        tags: ['records'],
        summary: `Synced records of one resource (Bitbucket: ${SYNC_RESOURCES.bitbucket.join(', ')}; Bitrise: ${SYNC_RESOURCES.bitrise.join(', ')})`,
        security: [{ apiKey: [] }],
        params: z.object({ id: z.string(), resource: z.string().max(50) }),
        querystring: querySchema,
        response: {
          200: z.object({ items: z.array(z.record(z.string(), z.unknown())), nextCursor: z.string().nullable() }),
          400: errorSchema,
          401: errorSchema,
          404: errorSchema,
        },
      },
    },
    async (req) => {
      const row = await connections.load(tenantOf(req).id, req.params.id);
      const { resource } = req.params;
      if (!isSyncResource(row.provider, resource)) {
        throw new ApiError(404, 'unknown_resource', `A ${row.provider} connection has no resource "${resource}". Known: ${SYNC_RESOURCES[row.provider].join(', ')}.`);
      }
      const spec = (RECORD_TABLES[row.provider] as Record<string, { table: string; columns: readonly string[] }>)[resource]!;
      let after: { u: string; i: string } | undefined;
      if (req.query.cursor) {
        try {
          after = cursorSchema.parse(JSON.parse(Buffer.from(req.query.cursor, 'base64url').toString('utf8')));
        } catch {
          throw badRequest('invalid_cursor', 'The cursor is not one this API returned.');
        }
      }
      const limit = req.query.limit;
      // Table and column names come from RECORD_TABLES, never from the request.
      const rows = await sql<Record<string, unknown>[]>`
        select id, ${sql(spec.columns as string[])}, raw, updated_at, ${microsText(sql, 'updated_at')} as cursor_at
        from ${sql(spec.table)}
        where connection_id = ${row.id}
          ${req.query.updatedSince ? sql`and updated_at >= ${req.query.updatedSince}` : sql``}
          ${after ? sql`and (updated_at, id) > (${after.u}::text::timestamptz, ${after.i}::text)` : sql``}
        order by updated_at, id
        limit ${limit + 1}`;
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      const nextCursor = rows.length > limit && last ? Buffer.from(JSON.stringify({ u: last.cursorAt, i: last.id })).toString('base64url') : null;
      return { items: page.map(({ cursorAt: _c, ...item }) => item), nextCursor };
    },
  );
};
