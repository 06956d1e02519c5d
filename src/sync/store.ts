import { notifyProgress } from '../db/events';
import type { Sql, TransactionSql } from '../db/sql';

/**
 * Writing synced records: idempotent bulk upserts, and the page-plus-cursor transaction that makes
 * a sync crash-safe. Table and column names come only from the TableSpecs in this codebase, never
 * from input.
 */

export interface TableSpec {
  table: string;
  /** Typed columns besides connection_id, id and raw, in snake_case. */
  columns: readonly string[];
  /**
   * Records the provider may delete, noticed by complete listings (./deletions.ts): the table has
   * `deleted_at`, which a listed record's upsert clears.
   */
  tracksDeletion?: boolean;
}

/** Further writes a page commits with its rows (a provider store's bookkeeping), in the same transaction. */
export type PageExtra = (tx: TransactionSql) => Promise<void>;

/** A record ready to store: the provider's id, its raw JSON, and the typed column values. */
export interface RecordRow {
  id: string;
  raw: unknown;
  values: Record<string, unknown>;
}

/** A provider record that failed its schema, kept with the reason instead of failing its page. */
export interface RejectRow {
  resource: string;
  recordKey: string;
  recordId: string | null;
  reason: string;
  raw: unknown;
}

export interface CursorWrite {
  resource: string;
  scope?: string;
  value: unknown;
}

type Db = Sql | TransactionSql;

/**
 * Rows per statement. A page is one statement (the syncers' pages hold 50–100 records); only a
 * caller passing more is split, so no single JSON parameter grows without bound.
 */
const MAX_ROWS_PER_STATEMENT = 5_000;

/**
 * The upsert of one batch as a statement fragment. The whole batch travels as one `jsonb`
 * parameter expanded by `jsonb_populate_recordset` against the table's own row type, so each
 * column gets its declared type without a cast list here, the statement text is the same for every
 * page of a table (Postgres prepares it once per connection, where a multi-row VALUES list with
 * N×columns parameters was a new statement for every page size), and the driver serializes one
 * value instead of binding thousands. Returns one row per record written.
 */
function upsertStatement(db: Db, spec: TableSpec, connectionId: string, rows: RecordRow[]) {
  const columns = ['connection_id', 'id', 'raw', ...spec.columns];
  const batch = rows.map((r) => {
    const row: Record<string, unknown> = { connection_id: connectionId, id: r.id, raw: r.raw };
    for (const c of spec.columns) row[c] = r.values[c] ?? null;
    return row;
  });
  const list = columns.join(', ');
  const sets = spec.columns.map((c) => `${c} = excluded.${c}`).join(', ');
  // Identifiers come from TableSpec constants; the values are one bound parameter. A record listed
  // again after being marked deleted is unmarked, and that is a change consumers must see.
  return db`
    insert into ${db(spec.table)} (${db.unsafe(list)})
    select ${db.unsafe(list)} from jsonb_populate_recordset(null::${db(spec.table)}, ${db.json(batch as never)})
    on conflict (connection_id, id) do update set
      raw = excluded.raw,
      ${db.unsafe(sets ? `${sets},` : '')}
      ${spec.tracksDeletion ? db`deleted_at = null,` : db``}
      updated_at = case when ${db(spec.table)}.raw is distinct from excluded.raw
                          ${spec.tracksDeletion ? db`or ${db(spec.table)}.deleted_at is not null` : db``}
                        then now() else ${db(spec.table)}.updated_at end
    returning 1`;
}

/** The last copy of an id in one batch wins, as it would had the rows arrived one by one. */
const lastCopies = (rows: RecordRow[]) => [...new Map(rows.map((r) => [r.id, r])).values()];

export async function upsertRecords(db: Db, spec: TableSpec, connectionId: string, rows: RecordRow[]): Promise<number> {
  const unique = lastCopies(rows);
  let written = 0;
  for (let i = 0; i < unique.length; i += MAX_ROWS_PER_STATEMENT) {
    written += (await upsertStatement(db, spec, connectionId, unique.slice(i, i + MAX_ROWS_PER_STATEMENT))).count;
  }
  return written;
}

export async function readCursor<T>(db: Db, connectionId: string, resource: string, scope = ''): Promise<T | undefined> {
  const [row] = await db<{ value: T }[]>`
    select value from sync_cursors where connection_id = ${connectionId} and resource = ${resource} and scope = ${scope}`;
  return row?.value;
}

function cursorStatement(db: Db, connectionId: string, cursor: CursorWrite) {
  return db`
    insert into sync_cursors (connection_id, resource, scope, value)
    values (${connectionId}, ${cursor.resource}, ${cursor.scope ?? ''}, ${db.json(cursor.value as never)})
    on conflict (connection_id, resource, scope) do update set value = excluded.value, updated_at = now()`;
}

export async function writeCursor(db: Db, connectionId: string, cursor: CursorWrite): Promise<void> {
  await cursorStatement(db, connectionId, cursor);
}

/** Forgets cursors so the next run backfills; records stay (upserts make the refetch harmless). */
export async function resetCursors(db: Db, connectionId: string, resources: string[]): Promise<void> {
  await db`delete from sync_cursors where connection_id = ${connectionId} and resource in ${db(resources)}`;
}

/**
 * One page of rows and the cursor that follows them, committed together, plus the run's progress
 * mark (what stall detection watches). A plain page is one statement (data-modifying CTEs run
 * exactly once and commit or fail together): one round trip instead of BEGIN, upsert, cursor,
 * progress and COMMIT. A page with rejects or provider bookkeeping (`extra`) takes a transaction.
 */
export async function commitPage(
  sql: Sql,
  page: {
    connectionId: string;
    runId: string;
    spec: TableSpec;
    rows: RecordRow[];
    cursor?: CursorWrite;
    extra?: PageExtra;
    rejects?: readonly RejectRow[];
    /** Tell stream readers how far the step has got (`sync.progress`), heard only if the page commits. */
    progress?: { resource: string; recordsThisAttempt: number };
  },
): Promise<number> {
  const rows = lastCopies(page.rows);
  if (!page.extra && !page.rejects?.length && rows.length <= MAX_ROWS_PER_STATEMENT) {
    const [result] = await sql<{ n: number }[]>`
      with written as (${upsertStatement(sql, page.spec, page.connectionId, rows)}),
      ${page.cursor ? sql`cursor_written as (${cursorStatement(sql, page.connectionId, page.cursor)}),` : sql``}
      progress as (update sync_runs set last_progress_at = now() where id = ${page.runId})
      select count(*)::int as n from written`;
    return result!.n;
  }
  return sql.begin<number>(async (tx) => {
    const n = await upsertRecords(tx, page.spec, page.connectionId, rows);
    if (page.rejects?.length) await quarantine(tx, page.connectionId, page.runId, page.rejects);
    if (page.cursor) await writeCursor(tx, page.connectionId, page.cursor);
    if (page.extra) await page.extra(tx);
    await tx`update sync_runs set last_progress_at = now() where id = ${page.runId}`;
    if (page.progress) await notifyProgress(tx, { connectionId: page.connectionId, runId: page.runId, ...page.progress });
    return n;
  });
}

/**
 * The one rule for parents we may lose access to (a repository, an app): a 403 or 404 marks it
 * `accessible = false` from `inaccessible_since`, and answering again makes it accessible. A flip
 * moves `updated_at`, because the records API serves `accessible`. Only tables with those two
 * columns are passed here.
 */
export async function markAccess(db: Db, spec: TableSpec, connectionId: string, id: string, accessible: boolean): Promise<void> {
  if (accessible) {
    await db`update ${db(spec.table)} set accessible = true, inaccessible_since = null, updated_at = now()
             where connection_id = ${connectionId} and id = ${id} and not accessible`;
  } else {
    await db`update ${db(spec.table)} set accessible = false, inaccessible_since = coalesce(inaccessible_since, now()),
               updated_at = case when accessible then now() else updated_at end
             where connection_id = ${connectionId} and id = ${id}`;
  }
}

async function quarantine(tx: TransactionSql, connectionId: string, runId: string, rejects: readonly RejectRow[]): Promise<void> {
  // The last copy of a record in one batch wins, as in upsertRecords.
  const unique = [...new Map(rejects.map((r) => [`${r.resource}\u0000${r.recordKey}`, r])).values()];
  await tx`
    insert into sync_rejects (connection_id, resource, record_key, record_id, run_id, reason, raw)
    select ${connectionId}, resource, record_key, nullif(record_id, ''), ${runId}, reason, raw
    from unnest(${tx.array(unique.map((r) => r.resource))}::text[], ${tx.array(unique.map((r) => r.recordKey))}::text[],
                ${tx.array(unique.map((r) => r.recordId ?? ''))}::text[], ${tx.array(unique.map((r) => r.reason))}::text[],
                ${tx.array(unique.map((r) => JSON.stringify(r.raw ?? null)))}::jsonb[])
      as r(resource, record_key, record_id, reason, raw)
    on conflict (connection_id, resource, record_key) do update set
      record_id = nullif(excluded.record_id, ''), run_id = excluded.run_id, reason = excluded.reason, raw = excluded.raw,
      last_seen_at = now(), seen_count = sync_rejects.seen_count + 1`;
}
