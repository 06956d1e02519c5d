import { z } from 'zod';

/**
 * Field types both providers' schemas share, bounded by what the typed columns can hold: a value
 * Postgres would refuse must be quarantined with its record, never reach the page's transaction
 * (where it would fail every good record of the page with it).
 */

/** The largest value of a Postgres `int` column. */
export const PG_INT_MAX = 2 ** 31 - 1;

/** An integer a Postgres `int` column holds (ids, build numbers, counts). */
export const pgInt = () =>
  z
    .int()
    .min(-PG_INT_MAX - 1)
    .max(PG_INT_MAX);

/**
 * An ISO-8601 instant with an offset that `timestamptz` and `Date.parse` both accept: zod's format
 * (real calendar dates, no leap seconds) minus year 0000, which Postgres has no spelling for.
 */
export const storableInstant = z.iso
  .datetime({ offset: true })
  .refine((s) => !s.startsWith('0000') && Number.isFinite(Date.parse(s)), 'a datetime Postgres can store');

/** A stored cursor's number, or undefined for anything else (`null`, NaN, a string): cursors heal on read. */
export const finite = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
