import type { ConnectionError, ConnectionStatus, Provider, SyncState } from '../domain/connection';
import { microsText, type Sql } from './sql';

export interface ConnectionRow {
  id: string;
  tenantId: string;
  provider: Provider;
  name: string | null;
  status: ConnectionStatus;
  syncIntervalSeconds: number;
  returnUrl: string | null;
  workflowId: string;
  lastSyncAt: Date | null;
  nextSyncAt: Date | null;
  lastError: ConnectionError | null;
  account: { id: string; name: string } | null;
  syncState: SyncState;
  stateRevision: string;
  createdAt: Date;
  updatedAt: Date;
}

/** What the workflow publishes about itself; `revision` only ever grows. */
export interface ConnectionSnapshot {
  status: ConnectionStatus;
  syncIntervalSeconds: number;
  lastSyncAt: string | null;
  nextSyncAt: string | null;
  lastError: ConnectionError | null;
  syncState: SyncState;
  revision: number;
}

export const workflowIdFor = (connectionId: string) => `connection-${connectionId}`;

export async function insertConnection(
  sql: Sql,
  c: { id: string; tenantId: string; provider: Provider; name: string | null; syncIntervalSeconds: number; returnUrl: string | null },
): Promise<ConnectionRow> {
  const [row] = await sql<ConnectionRow[]>`
    insert into connections (id, tenant_id, provider, name, status, sync_interval_seconds, return_url, workflow_id)
    values (${c.id}, ${c.tenantId}, ${c.provider}, ${c.name}, 'awaiting_credentials', ${c.syncIntervalSeconds},
            ${c.returnUrl}, ${workflowIdFor(c.id)})
    returning *`;
  return row!;
}

export async function getConnection(sql: Sql, id: string, tenantId?: string): Promise<ConnectionRow | undefined> {
  const [row] = await sql<ConnectionRow[]>`
    select * from connections where id = ${id} ${tenantId ? sql`and tenant_id = ${tenantId}` : sql``}`;
  return row;
}

export interface PageCursor {
  createdAt: string;
  id: string;
}

/** Newest first; keyset on (created_at, id) so pages stay stable while connections are added. */
export async function listConnections(
  sql: Sql,
  tenantId: string,
  limit: number,
  after?: PageCursor,
): Promise<(ConnectionRow & { pageCursor: string })[]> {
  return sql<(ConnectionRow & { pageCursor: string })[]>`
    select *, ${microsText(sql, 'created_at')} as page_cursor from connections
    where tenant_id = ${tenantId}
    ${after ? sql`and (created_at, id) < (${after.createdAt}::text::timestamptz, ${after.id}::uuid)` : sql``}
    order by created_at desc, id desc
    limit ${limit}`;
}

/** Applies a workflow snapshot unless a newer one is already there (a retried activity arriving late). */
export async function applySnapshot(sql: Sql, id: string, s: ConnectionSnapshot): Promise<boolean> {
  const rows = await sql`
    update connections set
      status = ${s.status},
      sync_interval_seconds = ${s.syncIntervalSeconds},
      last_sync_at = ${s.lastSyncAt},
      next_sync_at = ${s.nextSyncAt},
      last_error = ${s.lastError ? sql.json(s.lastError as never) : null},
      sync_state = ${sql.json(s.syncState as never)},
      state_revision = ${s.revision},
      -- A snapshot that changes nothing the API shows (e.g. the workflow's first publish) keeps updated_at.
      updated_at = case
        when (status, sync_interval_seconds, last_sync_at, next_sync_at, last_error)
             is distinct from (${s.status}, ${s.syncIntervalSeconds}::int, ${s.lastSyncAt}::timestamptz, ${s.nextSyncAt}::timestamptz,
                               ${s.lastError ? sql.json(s.lastError as never) : null}::jsonb)
        then now() else updated_at end
    where id = ${id} and state_revision < ${s.revision}
    returning id`;
  return rows.length === 1;
}

export async function setAccount(sql: Sql, id: string, account: { id: string; name: string }): Promise<void> {
  await sql`update connections set account = ${sql.json(account)}, updated_at = now() where id = ${id}`;
}
