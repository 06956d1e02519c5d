import { randomUUID } from 'node:crypto';
import { randomToken, sha256 } from '../crypto/tokens';
import type { Sql } from './sql';

export interface Tenant {
  id: string;
  name: string;
  createdAt: Date;
}

/** Returns the API key once; only its digest is stored. */
export async function createTenant(sql: Sql, name: string): Promise<{ tenant: Tenant; apiKey: string }> {
  const apiKey = randomToken('cdk_');
  const [tenant] = await sql<Tenant[]>`
    insert into tenants (id, name, api_key_hash) values (${randomUUID()}, ${name}, ${sha256(apiKey)})
    returning id, name, created_at`;
  return { tenant: tenant!, apiKey };
}

export async function findTenantByApiKey(sql: Sql, apiKey: string): Promise<Tenant | undefined> {
  const [tenant] = await sql<Tenant[]>`select id, name, created_at from tenants where api_key_hash = ${sha256(apiKey)}`;
  return tenant;
}
