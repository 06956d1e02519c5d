import postgres from 'postgres';

export type Sql = postgres.Sql<Record<string, unknown>>;
export type TransactionSql = postgres.TransactionSql<Record<string, unknown>>;

export interface SqlOptions {
  max?: number;
  /** Shown in pg_stat_activity, so an operator can tell the api's connections from the worker's. */
  applicationName?: string;
}

/**
 * One pool per process. Columns come back camelCased so rows map onto domain objects without
 * hand-written mappers; notices are dropped because they carry nothing an operator acts on.
 */
export function createSql(databaseUrl: string, opts: SqlOptions = {}): Sql {
  return postgres(databaseUrl, {
    max: opts.max ?? 10,
    transform: postgres.camel,
    onnotice: () => {},
    connection: { application_name: opts.applicationName ?? 'conduit' },
    // Fail fast on a dead server; callers (activities, /readyz) decide about retrying.
    connect_timeout: 10,
  }) as Sql;
}

/**
 * A timestamptz column as ISO text with all six fractional digits. Keyset cursors must use this:
 * a JS Date keeps milliseconds only, and a cursor rounded to the millisecond skips or repeats rows
 * written within the same one. Compare against it with `${value}::text::timestamptz` so the driver
 * does not round the parameter through a Date either.
 */
export function microsText(sql: Sql, column: 'updated_at' | 'created_at') {
  return sql.unsafe(`to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`);
}
