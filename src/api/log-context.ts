import type { FastifyRequest } from 'fastify';
import { workflowIdFor } from '../db/connections';

/**
 * Every log line of a request — the request line itself and anything a handler or the error
 * handler logs — names the tenant, the connection and its workflow once they are known, so one
 * connection can be followed through api and worker logs (the worker adds the same fields, see
 * src/activities/log-context.ts). Ids only: never a key, token or query string.
 */
export function logWith(req: FastifyRequest, fields: { tenantId?: string; connectionId?: string }): void {
  const { tenantId, connectionId } = fields;
  req.log = req.log.child({
    ...(tenantId ? { tenantId } : {}),
    ...(connectionId ? { connectionId, workflowId: workflowIdFor(connectionId) } : {}),
  });
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Root `onRequest` hook: a connection named in the path (`/v1/connections/:id…`) is in every line, even a refused request's. */
export async function logConnectionFromPath(req: FastifyRequest): Promise<void> {
  const id = (req.params as { id?: unknown } | undefined)?.id;
  if (req.routeOptions.url?.startsWith('/v1/connections/:id') && typeof id === 'string' && UUID.test(id))
    logWith(req, { connectionId: id });
}
