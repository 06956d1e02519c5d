import { z } from 'zod';
import { badRequest } from './errors';

/**
 * Strict parsing of what callers send as text that reaches Postgres: instants, keyset cursors and
 * free text. Anything Postgres would refuse is refused here first with a 400, so malformed input
 * never turns into a database error (the error handler still maps Postgres's invalid-input
 * SQLSTATEs to 400 as a last line of defence).
 */

const INSTANT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z|([+-])(\d{2}):(\d{2}))$/;

/** What `updatedSince` accepts, as a JSON-schema pattern (offsets within ±14:00, like real time zones). */
export const INSTANT_PATTERN = '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,6})?(Z|[+-](0\\d|1[0-3]):[0-5]\\d|[+-]14:00)$';

/** The instants the API writes into cursors: UTC, microseconds, `Z` (`to_char(… 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`). */
const CURSOR_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Ids in paths are UUIDs; anything else is looked up as nothing (404), never handed to Postgres's uuid parser. */
export const isUuid = (s: string) => UUID.test(s);

const daysIn = (year: number, month: number) => new Date(Date.UTC(year, month, 0)).getUTCDate();

/**
 * True for an ISO-8601 instant that exists on the calendar: year 0001–9999, a real day of the month,
 * hours 00–23, minutes and seconds 00–59, up to microseconds, `Z` or an offset within ±14:00.
 */
export function isIsoInstant(s: string): boolean {
  const m = INSTANT.exec(s);
  if (!m) return false;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return false;
  if (hour > 23 || minute > 59 || second > 59) return false;
  if (m[8] !== 'Z') {
    const offH = Number(m[10]);
    const offM = Number(m[11]);
    if (offM > 59 || offH * 60 + offM > 14 * 60) return false;
  }
  return true;
}

/** A query parameter holding an instant, checked as strictly as {@link isIsoInstant}. */
export const isoInstantParam = z
  .string()
  .max(40)
  .regex(new RegExp(INSTANT_PATTERN))
  .refine(isIsoInstant, { message: 'Invalid ISO-8601 instant (a real date and time, with Z or an offset within ±14:00)' })
  .meta({ format: 'date-time' });

/** Free text we store: no NUL (Postgres text cannot hold it). */
export const storedText = (max: number) =>
  z
    .string()
    .max(max)
    .refine((s) => !s.includes('\u0000'), { message: 'Must not contain NUL characters' });

// -------------------------------------------------------------------------------------------------
// Keyset cursors: base64url JSON the API wrote. A cursor that is not exactly that shape is a 400.

const invalidCursor = () => badRequest('invalid_cursor', 'The cursor is not one this API returned.');

const cursorInstant = z.string().regex(CURSOR_INSTANT).refine(isIsoInstant);

function decode<T>(raw: string, schema: z.ZodType<T>): T {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    throw invalidCursor();
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw invalidCursor();
  return parsed.data;
}

const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** The connections list: (created_at, id) of the last connection of the page. */
const connectionCursorSchema = z.object({ c: cursorInstant, i: z.uuid() }).strict();
export const encodeConnectionCursor = (c: { createdAt: string; id: string }) => encode({ c: c.createdAt, i: c.id });
export function decodeConnectionCursor(raw: string): { createdAt: string; id: string } {
  const { c, i } = decode(raw, connectionCursorSchema);
  return { createdAt: c, id: i };
}

/** Records: (updated_at, provider id) of the last record of the page. */
const recordCursorSchema = z.object({ u: cursorInstant, i: storedText(500) }).strict();
export const encodeRecordCursor = (c: { u: string; i: string }) => encode({ u: c.u, i: c.i });
export const decodeRecordCursor = (raw: string): { u: string; i: string } => decode(raw, recordCursorSchema);
