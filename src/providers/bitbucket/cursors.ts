import { finite } from '../fields';
/**
 * Pure cursor arithmetic of the Bitbucket listings (unit-tested in
 * test/unit/bitbucket-cursors.test.ts). Bitbucket stamps `updated_on` with microseconds and
 * compares datetimes in `q` unquoted
 * (https://developer.atlassian.com/cloud/bitbucket/rest/intro/#filtering).
 */

const ISO_DATETIME = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

/**
 * An ISO-8601 instant as epoch microseconds, the precision Bitbucket stamps `updated_on` with
 * (Date.parse keeps only milliseconds, which would make distinct instants compare equal).
 * NaN for anything that is not a full ISO-8601 datetime with an offset, the only form it sends.
 */
export function isoMicros(iso: string | null | undefined): number {
  if (typeof iso !== 'string') return Number.NaN;
  const m = ISO_DATETIME.exec(iso);
  if (!m) return Number.NaN;
  const seconds = Date.parse(`${m[1]}${m[3]}`);
  return seconds * 1000 + Number((m[2] ?? '').padEnd(6, '0').slice(0, 6));
}

/**
 * `q` for "changed after this instant". Bitbucket wants datetimes unquoted (a quoted value is a
 * string and does not compare as a time), e.g. `updated_on > 2024-01-01T00:00:00.000000+00:00`.
 * The provider's own string is kept (microseconds included); `Z` is spelled `+00:00` as in the
 * docs. The caller URL-encodes the result (the `+` of the offset must travel as %2B).
 */
export function updatedSinceQuery(iso: string): string {
  const m = ISO_DATETIME.exec(iso);
  // Never let anything but a datetime into the query language (Date.parse is far too lenient).
  if (!m) throw new Error(`Not an ISO-8601 datetime: ${JSON.stringify(iso)}`);
  return `updated_on > ${m[1]}${m[2] !== undefined ? `.${m[2]}` : ''}${m[3] === 'Z' ? '+00:00' : m[3]}`;
}

/**
 * Where an `updated_on`-ascending listing can resume after one page, given the page's
 * `updated_on` values and whether more pages follow.
 *
 * On the last page it is the page's newest value. With more to come it is the newest value that is
 * strictly older than the page's newest, because rows sharing that newest instant may spill over
 * to the next page and `updated_on > x` would skip them (the next query re-fetches those few rows
 * instead). `previous` is returned when the page brings no progress: the caller must then step
 * through with the page's `next` link.
 */
export function updatedResumePoint(
  updatedOn: readonly (string | null | undefined)[],
  more: boolean,
  previous?: string,
): string | undefined {
  const known = updatedOn.filter((t): t is string => Number.isFinite(isoMicros(t)));
  const latest = (xs: string[]) =>
    xs.reduce<string | undefined>((a, b) => (a === undefined || isoMicros(b) > isoMicros(a) ? b : a), undefined);
  const newest = latest(known);
  if (newest === undefined) return previous;
  const candidate = more ? latest(known.filter((t) => isoMicros(t) < isoMicros(newest))) : newest;
  if (candidate === undefined) return previous;
  return previous !== undefined && isoMicros(previous) >= isoMicros(candidate) ? previous : candidate;
}

/**
 * Running pipelines older than this (relative to the repository's newest pipeline) no longer
 * hold the watermark back: a pipeline parked for weeks (a paused manual step) would otherwise make
 * every run re-read everything created since.
 */
export const RUNNING_HOLD_MS = 7 * 24 * 3600 * 1000;

/**
 * The pipelines watermark (epoch ms): everything created at or before it is known and finished.
 * It is the newest pipeline seen, held back to just before the oldest one still running so that
 * pipeline is listed again until it completes.
 */
export function pipelineWatermark(
  newest: number | undefined,
  oldestRunning: number | undefined,
  holdMs = RUNNING_HOLD_MS,
): number | undefined {
  if (newest === undefined) return undefined;
  if (oldestRunning === undefined || oldestRunning < newest - holdMs) return newest;
  return Math.min(newest, oldestRunning - 1);
}

/** The commits of a newest-first page that are newer than `stopAt`, and whether `stopAt` was on it. */
export function commitsBefore<T extends { hash?: unknown }>(
  values: readonly T[],
  stopAt: string | undefined,
): { fresh: T[]; reached: boolean } {
  const at = stopAt === undefined ? -1 : values.findIndex((c) => c.hash === stopAt);
  return at < 0 ? { fresh: [...values], reached: false } : { fresh: values.slice(0, at), reached: true };
}

/** Where an `updated_on` listing stands: rows changed after `updatedAfter` are still to fetch. */
export interface UpdatedCursor {
  updatedAfter?: string;
}

/**
 * The cursor of the commits listing. `stopAt` is the newest hash a finished pass stored; while a
 * pass is under way, `next` is the page to fetch and `newest` the first hash of the pass, so a
 * retried activity carries on from the last committed page without a gap or a second pass.
 */
export interface CommitsCursor {
  stopAt?: string;
  next?: string;
  newest?: string;
}

/**
 * The cursor of the pipelines listing (epoch ms). `after` is the watermark finished passes have
 * reached; while a pass is under way, `page` is the next page number and `newest`/`oldestRunning`
 * what the pass has seen so far (as in the Bitrise pipelines syncer).
 */
export interface PipelinesCursor {
  after?: number;
  page?: number;
  newest?: number;
  oldestRunning?: number;
}

/** A stored pipelines cursor, cleaned: a field that is not a finite number (`null`, NaN) is dropped. */
export function readPipelinesCursor(stored: unknown): PipelinesCursor {
  if (typeof stored !== 'object' || stored === null) return {};
  const s = stored as Record<string, unknown>;
  const out: PipelinesCursor = {};
  for (const k of ['after', 'newest', 'oldestRunning'] as const) if (finite(s[k]) !== undefined) out[k] = finite(s[k]);
  const page = finite(s.page);
  if (page !== undefined && Number.isInteger(page) && page >= 1) out.page = page;
  return out;
}

/**
 * What a pipelines pass has seen after one more newest-first page (epoch ms), and whether the page
 * reached the watermark `after`. A `created_on` that does not parse is left out, never NaN.
 */
export function pipelinesPageSeen(
  seen: { newest?: number; oldestRunning?: number },
  pipelines: readonly { createdOn: unknown; running: boolean }[],
  after: number | undefined,
): { newest?: number; oldestRunning?: number; reached: boolean } {
  let { newest, oldestRunning } = seen;
  let reached = false;
  for (const p of pipelines) {
    const at = typeof p.createdOn === 'string' ? Date.parse(p.createdOn) : Number.NaN;
    if (!Number.isFinite(at)) continue;
    newest = newest === undefined ? at : Math.max(newest, at);
    if (p.running) oldestRunning = oldestRunning === undefined ? at : Math.min(oldestRunning, at);
    if (after !== undefined && at <= after) reached = true;
  }
  return { newest, oldestRunning, reached };
}
