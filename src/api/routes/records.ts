import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { isSyncResource, syncResources } from '../../domain/connection';
import { MANIFESTS } from '../../providers/manifests';
import { adapterOf } from '../../providers/registry';
import { microsText } from '../../db/sql';
import { requireTenant, tenantOf } from '../auth';
import type { TableSpec } from '../../sync/store';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { decodeRecordCursor, encodeRecordCursor, isoInstantParam } from '../inputs';
import { errorResponses } from '../schemas';

const querySchema = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(100),
  cursor: z.string().max(1000).optional(),
  updatedSince: isoInstantParam
    .optional()
    .describe('Only records whose content changed at or after this time (ISO-8601; Z or an offset within ±14:00)'),
});

const recordSchema = z
  .object({
    id: z.string().describe('The provider’s id (composite ids joined with `/`)'),
    deletedAt: z
      .string()
      .nullable()
      .optional()
      .describe(
        'Resources the provider may delete (Bitbucket workspaces, members, repositories; Bitrise organizations, apps) only: ' +
          'when a complete listing stopped returning the record (kept, left out of insights), null while it is listed. ' +
          'Setting or clearing it moves `updatedAt`.',
      ),
  })
  .catchall(z.unknown())
  .meta({ id: 'SyncedRecord', description: 'The typed columns of the resource (camelCase), `raw` (the provider’s JSON) and `updatedAt`' });

/**
 * Synced records, oldest change first, so a consumer can follow changes with `updatedSince` and
 * page with the keyset cursor on (updated_at, id) without gaps while syncs keep writing.
 */
export const recordRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, deps) => {
  const { sql, connections } = deps;
  // Authenticated before anything else is looked at (see connections.ts).
  app.addHook('onRequest', requireTenant(deps.tenants));

  app.get(
    '/v1/connections/:id/records/:resource',
    {
      schema: {
        tags: ['records'],
        summary: `Synced records of one resource (${Object.values(MANIFESTS)
          .map((m) => `${m.displayName}: ${m.resources.join(', ')}`)
          .join('; ')})`,
        security: [{ apiKey: [] }],
        params: z.object({ id: z.string(), resource: z.string().max(50) }),
        querystring: querySchema,
        response: {
          200: z.object({ items: z.array(recordSchema), nextCursor: z.string().nullable() }),
          ...errorResponses(400, 401, 404, 429),
        },
      },
    },
    async (req) => {
      const row = await connections.load(tenantOf(req).id, req.params.id);
      const { resource } = req.params;
      if (!isSyncResource(row.provider, resource)) {
        throw new ApiError(
          404,
          'unknown_resource',
          `A ${row.provider} connection has no resource "${resource}". Known: ${syncResources(row.provider).join(', ')}.`,
        );
      }
      const spec = (adapterOf(deps.providers, row.provider).tables as Record<string, TableSpec>)[resource]!;
      const after = req.query.cursor ? decodeRecordCursor(req.query.cursor) : undefined;
      const limit = req.query.limit;
      // Table and column names come from the adapter's table specs, never from the request. Instants
      // go in as text for Postgres to parse: postgres.js would otherwise round-trip a timestamptz
      // parameter through JS Date (milliseconds only, and a RangeError for what Date cannot parse).
      // `raw` comes as text: the pool camelCases the keys inside JSON values, and the provider's JSON
      // must reach the caller as the provider wrote it (`updated_on`, not `updatedOn`).
      const rows = await sql<Record<string, unknown>[]>`
        select id, ${sql(spec.columns as string[])}, ${spec.tracksDeletion ? sql`deleted_at,` : sql``} raw::text as raw_json, updated_at,
               ${microsText(sql, 'updated_at')} as cursor_at
        from ${sql(spec.table)}
        where connection_id = ${row.id}
          ${req.query.updatedSince ? sql`and updated_at >= ${req.query.updatedSince}::text::timestamptz` : sql``}
          ${after ? sql`and (updated_at, id) > (${after.u}::text::timestamptz, ${after.i}::text)` : sql``}
        order by updated_at, id
        limit ${limit + 1}`;
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      const nextCursor = rows.length > limit && last ? encodeRecordCursor({ u: String(last.cursorAt), i: String(last.id) }) : null;
      const items = page.map(({ cursorAt: _c, rawJson, ...typed }) => {
        const item: Record<string, unknown> = { ...typed, raw: JSON.parse(String(rawJson)) as unknown };
        return spec.tracksDeletion ? { ...item, deletedAt: (item.deletedAt as Date | null)?.toISOString() ?? null } : item;
      });
      return { items: items as unknown as z.infer<typeof recordSchema>[], nextCursor };
    },
  );
};
