/**
 * The API benchmark's baselines, as a process of their own (started by bench/api.ts, never alone):
 * a bare Fastify app on `PORT` with
 *
 *   GET /empty               answers `{}`: what Fastify and the socket cost;
 *   GET /one-read/:id        the API's connection read (`select * … where id and tenant_id`), same
 *                            driver and pool settings, the row as JSON: one indexed Postgres read;
 *   GET /list?tenant=…       the API's list read (100 rows, newest first), as JSON.
 *
 * No auth, no rate limit, no security headers, no logging, no response schema: the floor the
 * API's figures are compared to.
 */
import Fastify from 'fastify';
import { getConnection, listConnections } from '../src/db/connections';
import { createSql } from '../src/db/sql';

async function main(): Promise<void> {
  const sql = createSql(process.env.DATABASE_URL!, { applicationName: 'conduit-bench-baseline' });
  const tenant = process.env.BENCH_TENANT_ID!;
  const app = Fastify();
  app.get('/empty', async () => ({}));
  app.get<{ Params: { id: string } }>('/one-read/:id', async (req) => (await getConnection(sql, req.params.id, tenant)) ?? {});
  app.get('/list', async () => ({ items: await listConnections(sql, tenant, 101) }));
  app.get('/healthz', async () => ({ ok: true }));
  await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });
  const stop = async () => {
    await app.close();
    await sql.end({ timeout: 5 });
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
