import type { Sql } from '../db/sql';
import type { Fragment, InsightRange } from './types';

/** SQL building blocks shared by the insight queries. Every bucket is computed in UTC. */

/** A percentile of a float8 expression, rounded to milliseconds so results are exact in JSON. */
export const pct = (sql: Sql, p: number, expr: Fragment): Fragment =>
  sql`round((percentile_cont(${p}::float8) within group (order by ${expr}))::numeric, 3)::float8`;

/** A Monday, 00:00 UTC: days and ISO weeks are counted from it. */
const BUCKET_ORIGIN = '2000-01-03T00:00:00Z';

/**
 * The bucket a timestamptz falls into: midnight UTC of its day, or Monday 00:00 UTC of its ISO
 * week. `date_bin` on absolute time gives what `date_trunc(…, 'UTC')` gives, without a time zone
 * conversion per row (a third of the cost).
 */
export const bucketOf = (sql: Sql, range: InsightRange, expr: Fragment): Fragment =>
  sql`date_bin(${range.bucket === 'day' ? '1 day' : '7 days'}::interval, ${expr}, ${BUCKET_ORIGIN}::timestamptz)`;

/**
 * Every bucket start from the one holding `from` to the one holding the last instant before `to`
 * (column `b`), so empty buckets are listed too. Steps are in hours, which do not move with DST.
 */
export const bucketSeries = (sql: Sql, range: InsightRange): Fragment => sql`
  select g as b from generate_series(
    date_trunc(${range.bucket}, ${range.from}::timestamptz, 'UTC'),
    ${range.to}::timestamptz - interval '1 microsecond',
    ${range.bucket === 'day' ? '24 hours' : '168 hours'}::interval) g`;

export const isoText = (sql: Sql, expr: Fragment): Fragment => sql`to_char(${expr} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')`;

export const seconds = (sql: Sql, later: Fragment, earlier: Fragment): Fragment => sql`extract(epoch from (${later} - ${earlier}))::float8`;

/** a / b rounded to 4 places; null when b is 0. */
export const ratio = (sql: Sql, a: Fragment, b: Fragment): Fragment => sql`round((${a})::numeric / nullif(${b}, 0), 4)::float8`;
