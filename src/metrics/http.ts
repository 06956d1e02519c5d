import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { requireMetricsToken } from '../api/auth';
import type { ApiDeps } from '../api/deps';
import { errorResponses } from '../api/schemas';
import { countConnectionsByStatus } from '../db/connections';
import { httpRequestDuration, httpRequests, observeConnections, registry } from '.';

/**
 * The API's side of the metrics: every answered request counted and timed by its route pattern
 * (`/v1/connections/:id`, never the URL, so ids and query strings stay out of the labels), and
 * `GET /metrics` for the operators' scraper, behind METRICS_TOKEN.
 */

/** An `onResponse` hook for the root app, so it sees every route (and unmatched URLs). */
export async function countRequest(req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const labels = { method: req.method, route: req.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) };
  httpRequests.inc(labels);
  httpRequestDuration.observe(labels, reply.elapsedTime / 1000);
}

export const metricsRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, deps) => {
  // The document-only app (OpenAPI generation) has no database.
  if (deps.sql) observeConnections(() => countConnectionsByStatus(deps.sql));

  app.get(
    '/metrics',
    {
      schema: {
        tags: ['operations'],
        summary:
          'Prometheus metrics of this API process (request counts and latencies by route, connections by provider and status); for operators, with METRICS_TOKEN',
        security: [{ metricsToken: [] }],
        response: {
          200: { description: 'Prometheus text exposition format 0.0.4', content: { 'text/plain': { schema: z.string() } } },
          ...errorResponses(401, 404),
        },
      },
      onRequest: requireMetricsToken(deps.config.metrics.token),
    },
    async (_req, reply) =>
      reply
        .type(registry.contentType)
        .header('cache-control', 'no-store')
        .send(await registry.metrics()),
  );
};
