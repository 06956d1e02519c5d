import type { ConnectionRow, ConnectionSnapshot, Provider } from '../domain/connection';
import { toConnectionView } from '../domain/schemas';
import { connectionEventFor, rateLimitStarted, type NewEvent } from '../events/model';
import { insertEvents } from './events';
import { microsText, type Sql, type TransactionSql } from './sql';
import { runEventData, runningRun } from './sync-runs';

export const workflowIdFor = (connectionId: string) => `connection-${connectionId}`;

export async function insertConnection(
  sql: Sql,
  c: { id: string; tenantId: string; provider: Provider; name: string | null; syncIntervalSeconds: number; returnUrl: string | null },
): Promise<ConnectionRow> {
  const [row] = await sql<ConnectionRow[]>`
    insert into connections (id, tenant_id, provider, name, status, sync_interval_seconds, return_url, workflow_id)
    values (${c.id}, ${c.tenantId}, ${c.provider}, ${c.name}, 'provisioning', ${c.syncIntervalSeconds},
            ${c.returnUrl}, ${workflowIdFor(c.id)})
    returning *`;
  return row!;
}

/**
 * Once its workflow is started, a new connection awaits its credential (unless a snapshot already
 * said more). Returns the row, and the event the change wrote if it was this call that made it.
 */
export async function markProvisioned(sql: Sql, id: string): Promise<AppliedChange | null> {
  return sql.begin(async (tx) => {
    const [before] = await tx<ConnectionRow[]>`select * from connections where id = ${id} for update`;
    if (!before) return null;
    if (before.status !== 'provisioning') return { row: before, eventIds: [] };
    const [after] = await tx<ConnectionRow[]>`
      update connections set status = 'awaiting_credentials' where id = ${id} returning *`;
    return { row: after!, eventIds: await insertEvents(tx, id, await changeEvents(tx, before, after!)) };
  });
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

/** A change of a connection that was applied, and the events it wrote (to dispatch once committed). */
export interface AppliedChange {
  row: ConnectionRow;
  eventIds: string[];
}

/**
 * Applies a workflow snapshot unless a newer one is already there (a retried activity arriving
 * late), and writes the events the change causes in the same transaction: a retry that finds its
 * revision applied changes nothing and writes nothing.
 */
export async function applySnapshot(sql: Sql, id: string, s: ConnectionSnapshot): Promise<AppliedChange | null> {
  return sql.begin(async (tx) => {
    const [before] = await tx<ConnectionRow[]>`select * from connections where id = ${id} for update`;
    if (!before || BigInt(before.stateRevision) >= BigInt(s.revision)) return null;
    const [after] = await tx<ConnectionRow[]>`
      update connections set
        status = ${s.status},
        sync_interval_seconds = ${s.syncIntervalSeconds},
        last_sync_at = ${s.lastSyncAt},
        next_sync_at = ${s.nextSyncAt},
        last_error = ${s.lastError ? tx.json(s.lastError) : null},
        sync_state = ${tx.json(s.syncState)},
        state_revision = ${s.revision},
        -- A snapshot that changes nothing the API shows (e.g. the workflow's first publish) keeps updated_at.
        updated_at = case
          when (status, sync_interval_seconds, last_sync_at, next_sync_at, last_error)
               is distinct from (${s.status}, ${s.syncIntervalSeconds}::int, ${s.lastSyncAt}::timestamptz, ${s.nextSyncAt}::timestamptz,
                                 ${s.lastError ? tx.json(s.lastError) : null}::jsonb)
          then now() else updated_at end
      where id = ${id}
      returning *`;
    return { row: after!, eventIds: await insertEvents(tx, id, await changeEvents(tx, before, after!)) };
  });
}

/** What a change of the connection row tells the product: one connection.* event at most, and a rate-limit wait starting. */
async function changeEvents(tx: TransactionSql, before: ConnectionRow, after: ConnectionRow): Promise<NewEvent[]> {
  const [was, is] = [toConnectionView(before), toConnectionView(after)];
  const events: NewEvent[] = [];
  const type = connectionEventFor(was, is);
  if (type) events.push({ type, data: { connection: is } });
  const wait = rateLimitStarted(was, is);
  const run = wait && (await runningRun(tx, after.id));
  if (wait && run) events.push({ type: 'sync.rate_limited', data: runEventData(run, wait) });
  return events;
}

export async function setAccount(sql: Sql, id: string, account: { id: string; name: string }): Promise<void> {
  await sql`update connections set account = ${sql.json(account)}, updated_at = now() where id = ${id}`;
}

/** How many connections each provider has in each status (the operators' gauge). */
export async function countConnectionsByStatus(sql: Sql): Promise<{ provider: string; status: string; count: number }[]> {
  return sql<{ provider: string; status: string; count: number }[]>`
    select provider, status, count(*)::int as count from connections group by provider, status`;
}
