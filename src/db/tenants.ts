import { randomUUID } from 'node:crypto';
import { randomToken, sha256 } from '../crypto/tokens';
import type { Sql } from './sql';

export interface Tenant {
  id: string;
  name: string;
  /** Origins (`https://app.example.com`) a connection's `returnUrl` may point at. */
  allowedReturnOrigins: string[];
  createdAt: Date;
}

/** Returns the API key once; only its digest is stored. */
export async function createTenant(sql: Sql, name: string): Promise<{ tenant: Tenant; apiKey: string }> {
  const apiKey = randomToken('cdk_');
  const [tenant] = await sql<Tenant[]>`
    insert into tenants (id, name, api_key_hash) values (${randomUUID()}, ${name}, ${sha256(apiKey)})
    returning id, name, allowed_return_origins, created_at`;
  return { tenant: tenant!, apiKey };
}

/**
 * Every change to a tenant row is announced on this channel (payload: the tenant id) in the
 * changing statement itself, so it reaches listeners exactly when it commits. API processes drop
 * what they cached about the tenant (src/api/tenant-cache.ts). A new kind of tenant change (a key
 * rotated or revoked, a tenant removed) must announce itself the same way.
 */
export const TENANT_CHANGES_CHANNEL = 'conduit_tenant_changes';

export async function findTenantByApiKey(sql: Sql, apiKey: string): Promise<Tenant | undefined> {
  return findTenantByApiKeyDigest(sql, sha256(apiKey));
}

export async function findTenantByApiKeyDigest(sql: Sql, digest: Buffer): Promise<Tenant | undefined> {
  const [tenant] = await sql<Tenant[]>`
    select id, name, allowed_return_origins, created_at from tenants where api_key_hash = ${digest}`;
  return tenant;
}

export async function getTenant(sql: Sql, id: string): Promise<Tenant | undefined> {
  const [tenant] = await sql<Tenant[]>`select id, name, allowed_return_origins, created_at from tenants where id = ${id}`;
  return tenant;
}

export async function setAllowedReturnOrigins(sql: Sql, id: string, origins: string[]): Promise<Tenant> {
  const [tenant] = await sql<Tenant[]>`
    with changed as (
      update tenants set allowed_return_origins = ${origins}::text[] where id = ${id}
      returning id, name, allowed_return_origins, created_at)
    select changed.*, pg_notify(${TENANT_CHANGES_CHANNEL}, changed.id::text) is null as notified from changed`;
  const { notified: _notified, ...changed } = tenant as Tenant & { notified: boolean };
  return changed;
}
