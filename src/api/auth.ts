import type { FastifyRequest } from 'fastify';
import { constantTimeEqual } from '../crypto/tokens';
import { findTenantByApiKey, type Tenant } from '../db/tenants';
import type { Sql } from '../db/sql';
import { ApiError } from './errors';

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

export function requireTenant(sql: Sql) {
  return async (req: FastifyRequest): Promise<void> => {
    const tenant = await findTenantByApiKey(sql, bearer(req));
    if (!tenant) throw new ApiError(401, 'unauthorized', 'The API key is not valid.');
    req.tenant = tenant;
  };
}

export const tenantOf = (req: FastifyRequest): Tenant => {
  if (!req.tenant) throw new ApiError(401, 'unauthorized', 'Authentication required.');
  return req.tenant;
};
