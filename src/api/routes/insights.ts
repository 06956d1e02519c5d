import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ConnectionRow } from '../../domain/schemas';
import { toConnectionView } from '../../domain/schemas';
import { ciHeadline, computeCi, computeFlakiness } from '../../insights/ci';
import {
  ciResponseSchema,
  deliveryResponseSchema,
  flakinessResponseSchema,
  overviewResponseSchema,
  seatsResponseSchema,
  type OverviewFigures,
} from '../../insights/schemas';
import type { CiFilters, InsightRange, InsightSettings, ProviderInsights } from '../../insights/types';
import { adapterOf } from '../../providers/registry';
import { requireTenant, tenantOf } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError, badRequest } from '../errors';
import { connectionIdParams, connectionSchema, errorResponses } from '../schemas';

/**
 * Insights computed in Postgres from the synced tables. Provider-neutral: each provider's adapter
 * says which figures it offers (`adapter.insights`) and brings their SQL (src/providers/<id>/insights.ts).
 */

const DAY_MS = 86_400_000;
const MAX_DAYS = 366;
const errors = errorResponses(400, 401, 404, 429);
const security = [{ apiKey: [] }];

const instant = z.union([z.iso.date(), z.iso.datetime({ offset: true })]).describe('ISO date (midnight UTC) or date-time');

const rangeQuery = z.object({
  from: instant.optional().describe('Inclusive start; default `to` minus 30 days'),
  to: instant.optional().describe('Exclusive end; default now'),
  bucket: z.enum(['day', 'week']).default('day').describe('UTC buckets: days, or ISO weeks starting Monday'),
});

const ciQuery = rangeQuery.extend({
  app: z.string().max(200).optional().describe('Bitrise app slug'),
  repository: z.string().max(200).optional().describe('Bitbucket repository uuid'),
  workflow: z.string().max(200).optional().describe('Bitrise workflow / Bitbucket pipeline target'),
  branch: z.string().max(500).optional(),
});

const settingsBody = z
  .object({
    insights: z
      .object({
        deploymentPattern: z
          .string()
          .min(1)
          .max(200)
          .nullable()
          .describe('Postgres regex matched against pipeline target refs (as DevLake’s deploymentPattern); null clears it'),
      })
      .strict(),
  })
  .strict();

const insightSettingsSchema = z.object({ deploymentPattern: z.string().nullable() });

export function parseRange(q: { from?: string; to?: string; bucket: 'day' | 'week' }, now = Date.now()): InsightRange {
  const to = q.to ? Date.parse(q.to) : now;
  const from = q.from ? Date.parse(q.from) : to - 30 * DAY_MS;
  if (!(from < to)) throw badRequest('invalid_range', '`from` must be before `to`.');
  if (to - from > MAX_DAYS * DAY_MS) throw badRequest('invalid_range', `\`to - from\` must be at most ${MAX_DAYS} days.`);
  return { from: new Date(from).toISOString(), to: new Date(to).toISOString(), bucket: q.bucket };
}

export const insightRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, deps) => {
  const { sql, connections } = deps;
  // onRequest, as every authenticated route: an unauthenticated caller is refused before its body is read.
  app.addHook('onRequest', requireTenant(deps.tenants));

  const insightsOf = (row: ConnectionRow): ProviderInsights => adapterOf(deps.providers, row.provider).insights ?? {};
  const unsupported = (row: ConnectionRow, what: string) =>
    new ApiError(
      400,
      'unsupported_for_provider',
      `${adapterOf(deps.providers, row.provider).manifest.displayName} connections have no ${what} insights.`,
    );

  async function settingsOf(connectionId: string): Promise<InsightSettings> {
    const [r] = await sql<{ insightsSettings: InsightSettings }[]>`select insights_settings from connections where id = ${connectionId}`;
    return r?.insightsSettings ?? {};
  }

  function ciFilters(row: ConnectionRow, q: z.infer<typeof ciQuery>, groupKind: 'app' | 'repository'): CiFilters {
    const other = groupKind === 'app' ? 'repository' : 'app';
    if (q[other] !== undefined) throw badRequest('unsupported_filter', `A ${row.provider} connection has no \`${other}\` filter.`);
    return { group: q[groupKind], workflow: q.workflow, branch: q.branch };
  }

  app.get(
    '/v1/connections/:id/insights/ci',
    {
      schema: {
        tags: ['insights'],
        summary: 'CI performance: builds, outcome rates, duration and queue percentiles, cost, breakdowns and trends',
        security,
        params: connectionIdParams,
        querystring: ciQuery,
        response: { 200: ciResponseSchema, ...errors },
      },
    },
    async (req) => {
      const row = await connections.load(tenantOf(req).id, req.params.id);
      const range = parseRange(req.query);
      const source = insightsOf(row).ci;
      if (!source) throw unsupported(row, 'CI');
      const figures = await computeCi(sql, source, row.id, range, ciFilters(row, req.query, source.groupKind));
      return { connectionId: row.id, provider: row.provider, range, ...figures };
    },
  );

  app.get(
    '/v1/connections/:id/insights/flakiness',
    {
      schema: {
        tags: ['insights'],
        summary: 'Flaky workflows: succeeded and failed on the same commit; sorted by time lost',
        security,
        params: connectionIdParams,
        querystring: ciQuery,
        response: { 200: flakinessResponseSchema, ...errors },
      },
    },
    async (req) => {
      const row = await connections.load(tenantOf(req).id, req.params.id);
      const range = parseRange(req.query);
      const source = insightsOf(row).ci;
      if (!source) throw unsupported(row, 'flakiness');
      const figures = await computeFlakiness(sql, source, row.id, range, ciFilters(row, req.query, source.groupKind));
      return { connectionId: row.id, provider: row.provider, range, ...figures };
    },
  );

  app.get(
    '/v1/connections/:id/insights/seats',
    {
      schema: {
        tags: ['insights'],
        summary: 'Seat utilization: members active in the 30 and 90 days before `to`, inactive members',
        security,
        params: connectionIdParams,
        querystring: rangeQuery,
        response: { 200: seatsResponseSchema, ...errors },
      },
    },
    async (req) => {
      const row = await connections.load(tenantOf(req).id, req.params.id);
      const range = parseRange(req.query);
      const seats = insightsOf(row).seats;
      if (!seats) throw unsupported(row, 'seat');
      return { connectionId: row.id, ...(await seats(sql, row.id, range)) };
    },
  );

  app.get(
    '/v1/connections/:id/insights/delivery',
    {
      schema: {
        tags: ['insights'],
        summary: 'Delivery: pull request throughput and cycle time, review load, DORA figures',
        security,
        params: connectionIdParams,
        querystring: rangeQuery,
        response: { 200: deliveryResponseSchema, ...errors },
      },
    },
    async (req) => {
      const row = await connections.load(tenantOf(req).id, req.params.id);
      const range = parseRange(req.query);
      const delivery = insightsOf(row).delivery;
      if (!delivery) throw unsupported(row, 'delivery');
      return { connectionId: row.id, range, ...(await delivery(sql, row.id, range, await settingsOf(row.id))) };
    },
  );

  app.get(
    '/v1/insights/overview',
    {
      schema: {
        tags: ['insights'],
        summary: 'Headline figures of every connection of the tenant (not disconnected), plus totals',
        security,
        querystring: rangeQuery,
        response: { 200: overviewResponseSchema, ...errorResponses(400, 401, 429) },
      },
    },
    async (req) => {
      const range = parseRange(req.query);
      const rows = await sql<ConnectionRow[]>`
        select * from connections where tenant_id = ${tenantOf(req).id} and status <> 'disconnected'
        order by created_at, id limit 500`;
      const items = await Promise.all(
        rows.map(async (row) => {
          const insights = insightsOf(row);
          const [ci, extra] = await Promise.all([
            insights.ci ? ciHeadline(sql, insights.ci, row.id, range) : undefined,
            insights.overview ? insights.overview(sql, row.id, range) : undefined,
          ]);
          const figures: OverviewFigures = {
            builds: ci?.builds ?? null,
            successRate: ci?.successRate ?? null,
            durationP50: ci?.durationP50 ?? null,
            cost: ci?.cost ?? null,
            costUnit: ci?.costUnit ?? null,
            members: null,
            active30: null,
            mergedPullRequests: null,
            cycleTimeP50: null,
            ...extra,
          };
          return { connectionId: row.id, provider: row.provider, name: row.name, status: row.status, ...figures };
        }),
      );
      const sum = (k: 'builds' | 'members' | 'active30' | 'mergedPullRequests') => items.reduce((n, i) => n + (i[k] ?? 0), 0);
      return {
        range,
        connections: items,
        totals: {
          connections: items.length,
          builds: sum('builds'),
          members: sum('members'),
          active30: sum('active30'),
          mergedPullRequests: sum('mergedPullRequests'),
        },
      };
    },
  );

  app.patch(
    '/v1/connections/:id',
    {
      schema: {
        tags: ['connections'],
        summary: 'Change a connection’s insight settings (the deployment rule of the DORA figures)',
        security,
        params: connectionIdParams,
        body: settingsBody,
        response: { 200: connectionSchema.extend({ insights: insightSettingsSchema }), ...errors, ...errorResponses(409, 413, 415, 503) },
      },
    },
    async (req) => {
      const row = await connections.load(tenantOf(req).id, req.params.id);
      const pattern = req.body.insights.deploymentPattern;
      if (pattern !== null) {
        // The pattern runs in Postgres (`~`), so Postgres is the judge of its syntax.
        try {
          await sql`select '' ~ ${pattern}`;
        } catch (err) {
          throw badRequest('invalid_pattern', `deploymentPattern is not a valid regular expression: ${(err as Error).message}`);
        }
      }
      const [updated] = await sql<{ insightsSettings: InsightSettings }[]>`
        update connections set insights_settings = insights_settings || ${sql.json({ deploymentPattern: pattern })}
        where id = ${row.id} returning insights_settings`;
      return {
        ...toConnectionView(await connections.load(row.tenantId, row.id)),
        insights: { deploymentPattern: updated!.insightsSettings.deploymentPattern ?? null },
      };
    },
  );
};
