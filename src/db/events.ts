import { randomUUID } from 'node:crypto';
import type { EventEnvelope, EventType, NewEvent, ProgressNotice } from '../events/model';
import type { Sql, TransactionSql } from './sql';

/**
 * The events table: written in the transaction of the change that causes an event, read by the
 * stream (src/events/hub.ts) and dispatched to webhooks (src/webhooks/dispatch.ts).
 *
 * Order. Rows are read in (tx_id, position) order, and only rows whose writing transaction is older
 * than every transaction still running (`tx_id < pg_snapshot_xmin(pg_current_snapshot())`): such a
 * row is committed for good, and no row can ever appear before it later. A plain identity column
 * alone would not do: positions are handed out at insert, but transactions commit in another
 * order, so a reader resuming after position 11 could miss a position 10 committed a moment later.
 */

/** Postgres NOTIFY channels. The events payload is only a wake-up (readers read the table). */
export const EVENTS_CHANNEL = 'conduit_events';
export const PROGRESS_CHANNEL = 'conduit_progress';

export interface StoredEvent {
  id: string;
  tenantId: string;
  connectionId: string;
  /** bigint, as text */
  sequence: string;
  type: EventType;
  data: EventEnvelope['data'];
  createdAt: Date;
  /** Where the row stands in the stream order: (tx_id, position), both as text. */
  txId: string;
  position: string;
}

/** A place in the stream's order; everything after it is read next. */
export interface StreamKey {
  txId: bigint;
  position: bigint;
}

export const keyOf = (e: Pick<StoredEvent, 'txId' | 'position'>): StreamKey => ({ txId: BigInt(e.txId), position: BigInt(e.position) });
export const isAfter = (a: StreamKey, b: StreamKey) => a.txId > b.txId || (a.txId === b.txId && a.position > b.position);

export function toEnvelope(e: StoredEvent): EventEnvelope {
  return {
    id: e.id,
    type: e.type,
    createdAt: e.createdAt.toISOString(),
    tenantId: e.tenantId,
    connectionId: e.connectionId,
    sequence: Number(e.sequence),
    data: e.data,
  };
}

/**
 * Writes a connection's events inside the transaction that changed it. Numbering bumps the
 * connection's counter, which takes (or already holds) the row's lock, so the connection's events
 * are numbered in the order of its changes. Readers are woken on commit (NOTIFY is transactional).
 */
export async function insertEvents(tx: TransactionSql, connectionId: string, events: readonly NewEvent[]): Promise<string[]> {
  if (events.length === 0) return [];
  const [counter] = await tx<{ eventSequence: string; tenantId: string }[]>`
    update connections set event_sequence = event_sequence + ${events.length} where id = ${connectionId}
    returning event_sequence, tenant_id`;
  if (!counter) throw new Error(`connection ${connectionId} does not exist`);
  const first = BigInt(counter.eventSequence) - BigInt(events.length) + 1n;
  const ids = events.map(() => randomUUID());
  // One row at a time keeps the positions (identity) in the order of `events`.
  for (const [i, e] of events.entries()) {
    await tx`
      insert into events (id, tenant_id, connection_id, sequence, type, data)
      values (${ids[i]!}, ${counter.tenantId}, ${connectionId}, ${String(first + BigInt(i))}, ${e.type}, ${tx.json(e.data)})`;
  }
  await tx`select pg_notify(${EVENTS_CHANNEL}, ${counter.tenantId})`;
  return ids;
}

/**
 * Tells stream readers how far a running sync has got: `records` stored so far for `resource` in
 * this run. Sent from the page's own transaction, so it is heard only if the page committed.
 * Nothing is stored: progress is advisory and superseded by the next notice.
 */
export async function notifyProgress(
  tx: TransactionSql,
  p: { connectionId: string; runId: string; resource: string; recordsThisAttempt: number },
): Promise<void> {
  await tx`
    select pg_notify(${PROGRESS_CHANNEL}, json_build_object(
      'type', 'sync.progress',
      'createdAt', to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
      'tenantId', c.tenant_id,
      'connectionId', c.id,
      'data', json_build_object('runId', r.id, 'resource', ${p.resource}::text,
                                'records', coalesce((r.counts ->> ${p.resource}::text)::int, 0) + ${p.recordsThisAttempt}::int)
    )::text)
    from sync_runs r join connections c on c.id = r.connection_id
    where r.id = ${p.runId} and c.id = ${p.connectionId}`;
}

export function parseProgress(payload: string): ProgressNotice | undefined {
  try {
    return JSON.parse(payload) as ProgressNotice;
  } catch {
    return undefined;
  }
}

const EVENT_COLUMNS = (sql: Sql) =>
  sql`id, tenant_id, connection_id, sequence::text, type, data, created_at, tx_id::text as tx_id, position::text as position`;

/** Where the stream stands now: every event before this key is settled and was committed earlier. */
export async function streamHead(sql: Sql): Promise<StreamKey> {
  const [row] = await sql<{ xmin: string }[]>`select pg_snapshot_xmin(pg_current_snapshot())::text as xmin`;
  return { txId: BigInt(row!.xmin), position: 0n };
}

/**
 * Settled events after `from`, in stream order, optionally of one tenant (and connection).
 * `unsettled` says committed rows were left for later because an older transaction is still
 * running: read again shortly. `full` says the page was full: read again at once.
 */
export async function readEventsAfter(
  sql: Sql,
  from: StreamKey,
  filter: { tenantId?: string; connectionId?: string } = {},
  limit = 500,
): Promise<{ events: StoredEvent[]; unsettled: boolean; full: boolean }> {
  const rows = await sql<(StoredEvent & { settled: boolean })[]>`
    with horizon as (select pg_snapshot_xmin(pg_current_snapshot()) as xmin)
    select ${EVENT_COLUMNS(sql)}, e.tx_id < horizon.xmin as settled
    from events e, horizon
    where (e.tx_id, e.position) > (${String(from.txId)}::xid8, ${String(from.position)}::bigint)
      ${filter.tenantId ? sql`and e.tenant_id = ${filter.tenantId}` : sql``}
      ${filter.connectionId ? sql`and e.connection_id = ${filter.connectionId}` : sql``}
    order by e.tx_id, e.position
    limit ${limit + 1}`;
  const events: StoredEvent[] = [];
  for (const { settled, ...e } of rows) {
    if (!settled) return { events, unsettled: true, full: false };
    if (events.length === limit) return { events, unsettled: false, full: true };
    events.push(e);
  }
  return { events, unsettled: false, full: false };
}

/** A tenant's event, by id (the stream's Last-Event-ID). */
export async function findEvent(sql: Sql, tenantId: string, id: string): Promise<StoredEvent | undefined> {
  const [row] = await sql<StoredEvent[]>`select ${EVENT_COLUMNS(sql)} from events where id = ${id} and tenant_id = ${tenantId}`;
  return row;
}

/** Events older than the retention, with their deliveries and attempts (cascade). */
export async function purgeEvents(sql: Sql, retentionDays: number): Promise<number> {
  const deleted = await sql`delete from events where created_at < now() - make_interval(days => ${retentionDays})`;
  return deleted.count;
}
