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
}

/** A record ready to store: the provider's id, its raw JSON, and the typed column values. */
export interface RecordRow {
  id: string;
  raw: unknown;
  values: Record<string, unknown>;
}

export interface CursorWrite {
  resource: string;
  scope?: string;
  value: unknown;
}

// Postgres allows 65,535 bind parameters per statement; stay well below.
const MAX_PARAMS = 60_000;

type Db = Sql | TransactionSql;

export async function upsertRecords(db: Db, spec: TableSpec, connectionId: string, rows: RecordRow[]): Promise<number> {
  if (rows.length === 0) return 0;
  const columns = ['connection_id', 'id', 'raw', ...spec.columns];
  const perChunk = Math.max(1, Math.floor(MAX_PARAMS / columns.length));
  // The last copy of an id in one batch wins, as it would had the rows arrived one by one.
  const unique = [...new Map(rows.map((r) => [r.id, r])).values()];
  let written = 0;
  for (let i = 0; i < unique.length; i += perChunk) {
    const chunk = unique.slice(i, i + perChunk).map((r) => {
      const row: Record<string, unknown> = { connection_id: connectionId, id: r.id, raw: db.json(r.raw as never) };
      for (const c of spec.columns) row[c] = r.values[c] ?? null;
      return row;
    });
    const sets = spec.columns.map((c) => `${c} = excluded.${c}`).join(', ');
    // Identifiers come from TableSpec constants; values are always bound parameters.
    const result = await db`
      insert into ${db(spec.table)} ${db(chunk as never, columns as never)}
      on conflict (connection_id, id) do update set
        raw = excluded.raw,
        ${db.unsafe(sets ? `${sets},` : '')}
        updated_at = case when ${db(spec.table)}.raw is distinct from excluded.raw then now() else ${db(spec.table)}.updated_at end`;
    written += result.count;
  }
  return written;
}

export async function readCursor<T>(db: Db, connectionId: string, resource: string, scope = ''): Promise<T | undefined> {
  const [row] = await db<{ value: T }[]>`
    select value from sync_cursors where connection_id = ${connectionId} and resource = ${resource} and scope = ${scope}`;
  return row?.value;
}

export async function writeCursor(db: Db, connectionId: string, cursor: CursorWrite): Promise<void> {
  await db`
    insert into sync_cursors (connection_id, resource, scope, value)
    values (${connectionId}, ${cursor.resource}, ${cursor.scope ?? ''}, ${db.json(cursor.value as never)})
    on conflict (connection_id, resource, scope) do update set value = excluded.value, updated_at = now()`;
}

/** Forgets cursors so the next run backfills; records stay (upserts make the refetch harmless). */
export async function resetCursors(db: Db, connectionId: string, resources: string[]): Promise<void> {
  await db`delete from sync_cursors where connection_id = ${connectionId} and resource in ${db(resources)}`;
}

/**
 * One page of rows and the cursor that follows them, committed together, plus the run's progress
 * mark (what stall detection watches).
 */
export async function commitPage(
  sql: Sql,
  page: { connectionId: string; runId: string; spec: TableSpec; rows: RecordRow[]; cursor?: CursorWrite; extra?: (tx: TransactionSql) => Promise<void> },
): Promise<number> {
  return (await sql.begin(async (tx) => {
    const n = await upsertRecords(tx, page.spec, page.connectionId, page.rows);
    if (page.cursor) await writeCursor(tx, page.connectionId, page.cursor);
    if (page.extra) await page.extra(tx);
    await tx`update sync_runs set last_progress_at = now() where id = ${page.runId}`;
    return n;
  })) as number;
}
