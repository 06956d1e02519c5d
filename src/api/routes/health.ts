import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ApiDeps } from '../deps';

const reconcilerSchema = z
  .object({
    lastRunAt: z.string().describe('when the reconciler last finished (ISO-8601)'),
    provisioned: z.number().int(),
    recreated: z.number().int(),
    ended: z.number().int(),
    failed: z.number().int(),
    rows: z.number().int(),
    workflows: z.number().int(),
  })
  .nullable()
  .describe('What the reconciler repaired in its last run (null: it has not run yet on this task queue)');

const checkSchema = z.object({
  status: z.enum(['ok', 'unavailable']),
  checks: z.record(z.string(), z.enum(['ok', 'unavailable'])),
  reconciler: reconcilerSchema.optional(),
});

/** Liveness says the process answers; readiness says it can do its job (Postgres and Temporal reachable). */
export const healthRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, deps) => {
  app.get('/healthz', { schema: { tags: ['health'], response: { 200: z.object({ status: z.literal('ok') }) } } }, async () => ({
    status: 'ok' as const,
  }));

  async function lastReconcile(): Promise<z.infer<typeof reconcilerSchema>> {
    const [row] = await deps.sql<{ finishedAt: Date; report: Record<string, number> }[]>`
      select finished_at, report from reconciler_runs where task_queue = ${deps.config.temporal.taskQueue}`;
    if (!row) return null;
    const n = (k: string) => Number(row.report[k] ?? 0);
    return {
      lastRunAt: row.finishedAt.toISOString(),
      provisioned: n('provisioned'),
      recreated: n('recreated'),
      ended: n('ended'),
      failed: n('failed'),
      rows: n('rows'),
      workflows: n('workflows'),
    };
  }

  app.get('/readyz', { schema: { tags: ['health'], response: { 200: checkSchema, 503: checkSchema } } }, async (_req, reply) => {
    const within = <T>(p: Promise<T>) =>
      Promise.race([p, new Promise<never>((_, rej) => setTimeout(() => rej(new Error('timeout')), 3000).unref())]);
    const [postgres, temporal] = await Promise.all([
      within(deps.sql`select 1`).then(
        () => 'ok' as const,
        () => 'unavailable' as const,
      ),
      within(deps.temporalConnection.healthService.check({})).then(
        () => 'ok' as const,
        () => 'unavailable' as const,
      ),
    ]);
    const ready = postgres === 'ok' && temporal === 'ok';
    // Informational: the reconciler's last report never makes the API unready.
    const reconciler = postgres === 'ok' ? await within(lastReconcile()).catch(() => undefined) : undefined;
    return reply
      .code(ready ? 200 : 503)
      .send({ status: ready ? 'ok' : 'unavailable', checks: { postgres, temporal }, ...(reconciler !== undefined ? { reconciler } : {}) });
  });
};
