import { finite } from '../fields';
/**
 * Pure cursor rules of the Bitrise listings (property-tested in test/unit/bitrise-cursors.test.ts).
 * Builds are filtered with Unix-second `after` and paged with an opaque `next` token; pipelines
 * page by time (`before`/`after`, epoch ms in the cursor). No rule here can yield NaN, `null` or
 * Infinity: a value that does not parse is left out, and a stored cursor is cleaned when read.
 */

/**
 * The cursor of a newest-first listing. `after` is the watermark finished runs have reached;
 * while a pass is under way, `next` and `newest` say where it stands, so a retried activity goes
 * on from the last committed page instead of starting over or skipping the older pages.
 */
export interface NewestFirstCursor {
  after?: number;
  next?: string;
  newest?: number;
  oldestRunning?: number;
}

/** A stored cursor, cleaned: a field of the wrong type (an old `{"after": null}`) is dropped. */
export function readNewestFirstCursor(stored: unknown): NewestFirstCursor {
  if (typeof stored !== 'object' || stored === null) return {};
  const s = stored as Record<string, unknown>;
  const out: NewestFirstCursor = {};
  if (finite(s.after) !== undefined) out.after = finite(s.after);
  if (typeof s.next === 'string' && s.next.length > 0) out.next = s.next;
  if (finite(s.newest) !== undefined) out.newest = finite(s.newest);
  if (finite(s.oldestRunning) !== undefined) out.oldestRunning = finite(s.oldestRunning);
  return out;
}

/** Epoch milliseconds of an ISO-8601 instant; undefined when it does not parse. */
export function epochMs(iso: unknown): number | undefined {
  return typeof iso === 'string' ? finite(Date.parse(iso)) : undefined;
}

/** The newest of `previous` and the builds' `triggered_at`, in Unix seconds; never below `previous`. */
export function newestBuildSeconds(previous: number, triggeredAt: readonly unknown[]): number {
  let newest = previous;
  for (const t of triggeredAt) {
    const ms = epochMs(t);
    if (ms !== undefined) newest = Math.max(newest, Math.floor(ms / 1000));
  }
  return newest;
}

/** Where the builds listing stands after a page: mid-pass with `next`, else finished at `newest`. */
export function buildsCursor(after: number | undefined, next: string | null | undefined, newest: number): NewestFirstCursor {
  return next ? { after, next, newest } : { after: newest };
}

/** What a pipelines pass has seen after one more page (epoch ms; `oldestRunning` Infinity for none). */
export function pipelinesSeen(
  seen: { newest: number; oldestRunning: number },
  pipelines: readonly { triggered_at: unknown; finished_at?: unknown }[],
): { newest: number; oldestRunning: number } {
  let { newest, oldestRunning } = seen;
  for (const p of pipelines) {
    const at = epochMs(p.triggered_at);
    if (at === undefined) continue;
    newest = Math.max(newest, at);
    if (!p.finished_at) oldestRunning = Math.min(oldestRunning, at);
  }
  return { newest, oldestRunning };
}

/**
 * Where the pipelines listing stands after a page: mid-pass with `before` (the next page's time
 * bound), else a watermark held back to just before the oldest pipeline still running, so it is
 * listed again until it finishes.
 */
export function pipelinesCursor(
  after: number | undefined,
  before: string | null | undefined,
  seen: { newest: number; oldestRunning: number },
): NewestFirstCursor {
  const oldestRunning = Number.isFinite(seen.oldestRunning) ? seen.oldestRunning : undefined;
  if (before) return { after, next: before, newest: seen.newest, oldestRunning };
  return { after: oldestRunning === undefined ? seen.newest : Math.min(seen.newest, oldestRunning - 1) };
}

/**
 * A listing URL under the API base. Every value from a response (the `next` token, a time bound)
 * goes in as an encoded query value: it can never change the origin or the path the token is sent to.
 */
export function listUrl(apiUrl: string, path: string, params: Record<string, string | number | undefined>): string {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') s.set(k, String(v));
  const query = s.toString();
  return `${apiUrl}${path}${query ? `?${query}` : ''}`;
}
