import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ApiDeps } from '../deps';

const checkSchema = z.object({ status: z.enum(['ok', 'unavailable']), checks: z.record(z.string(), z.enum(['ok', 'unavailable'])) });

/** Liveness says the process answers; readiness says it can do its job (Postgres and Temporal reachable). */
export const healthRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, deps) => {
  app.get('/healthz', { schema: { tags: ['health'], response: { 200: z.object({ status: z.literal('ok') }) } } }, async () => ({ status: 'ok' as const }));

  app.get('/readyz', { schema: { tags: ['health'], response: { 200: checkSchema, 503: checkSchema } } }, async (_req, reply) => {
    const within = <T>(p: Promise<T>) => Promise.race([p, new Promise<never>((_, rej) => setTimeout(() => rej(new Error('timeout')), 3000).unref())]);
    const [postgres, temporal] = await Promise.all([
      within(deps.sql`select 1`).then(() => 'ok' as const, () => 'unavailable' as const),
      within(deps.temporalConnection.healthService.check({})).then(() => 'ok' as const, () => 'unavailable' as const),
    ]);
    const ready = postgres === 'ok' && temporal === 'ok';
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ok' : 'unavailable', checks: { postgres, temporal } });
  });
};
