import type { FastifyRequest } from 'fastify';
import { constantTimeEqual } from '../crypto/tokens';
import type { Tenant } from '../db/tenants';
import { ApiError } from './errors';
import { logWith } from './log-context';
import type { TenantCache } from './tenant-cache';

declare module 'fastify' {
  interface FastifyRequest {
    tenant?: Tenant;
  }
}

function bearer(req: FastifyRequest): string {
  const header = req.headers.authorization;
  const match = header?.match(/^Bearer\s+(\S+)\s*$/i);
  if (!match) throw new ApiError(401, 'unauthorized', 'Send your API key as `Authorization: Bearer <apiKey>`.');
  return match[1]!;
}

export function requireAdmin(adminToken: string) {
  return async (req: FastifyRequest): Promise<void> => {
    if (!constantTimeEqual(bearer(req), adminToken)) throw new ApiError(401, 'unauthorized', 'The admin token is not valid.');
  };
}

/**
 * `GET /metrics` is for the operators' scraper, never for tenants: it needs METRICS_TOKEN, and
 * without one configured it is not served at all.
 */
export function requireMetricsToken(token: string | undefined) {
  return async (req: FastifyRequest): Promise<void> => {
    if (!token) throw new ApiError(404, 'not_found', 'Metrics are not served here: set METRICS_TOKEN to enable GET /metrics.');
    if (!constantTimeEqual(bearer(req), token)) throw new ApiError(401, 'unauthorized', 'The metrics token is not valid.');
  };
}

export function requireTenant(tenants: TenantCache) {
  return async (req: FastifyRequest): Promise<void> => {
    const tenant = await tenants.byApiKey(bearer(req));
    if (!tenant) throw new ApiError(401, 'unauthorized', 'The API key is not valid.');
    req.tenant = tenant;
    logWith(req, { tenantId: tenant.id });
  };
}

export const tenantOf = (req: FastifyRequest): Tenant => {
  if (!req.tenant) throw new ApiError(401, 'unauthorized', 'Authentication required.');
  return req.tenant;
};
