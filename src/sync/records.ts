import { createHash } from 'node:crypto';
import type { z } from 'zod';
import type { RejectRow } from './store';

/** Fields providers name their records' ids with, in the order they are tried. */
const ID_FIELDS = ['uuid', 'slug', 'id', 'hash'] as const;

function recordIdOf(raw: unknown): string | null {
  if (typeof raw !== 'object' || raw === null) return null;
  for (const field of ID_FIELDS) {
    const v = (raw as Record<string, unknown>)[field];
    if ((typeof v === 'string' && v.length > 0 && v.length <= 200) || (typeof v === 'number' && Number.isFinite(v))) return String(v);
  }
  return null;
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((i) => `${i.path.join('.') || '(record)'}: ${i.message}`)
    .join('; ')
    .slice(0, 500);
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

export interface AcceptOptions {
  /**
   * Applied to a rejected record before it is kept: the provider's redaction (secret values), so
   * `sync_rejects.raw` never holds what the record tables may not.
   */
  redact?: (raw: unknown) => unknown;
  /** Where the page came from (its URL): names a page whose list is null. */
  page?: string;
  /** The page's URL as it may be shown (no query string). */
  pageShown?: string;
}

/**
 * Splits a page's records into those that satisfy `schema` and rejects to quarantine: one bad
 * record never fails the page, and never reaches the typed columns or the cursor. A page whose
 * list is `null` (or missing) is taken as an empty page and quarantined itself, with a reason.
 */
export function acceptRecords<S extends z.ZodType>(
  resource: string,
  items: readonly unknown[] | null | undefined,
  schema: S,
  options: AcceptOptions = {},
): { accepted: z.output<S>[]; rejects: RejectRow[] } {
  const accepted: z.output<S>[] = [];
  const rejects: RejectRow[] = [];
  if (!Array.isArray(items)) {
    rejects.push({
      resource,
      recordKey: `page:${sha256(options.page ?? '')}`,
      recordId: null,
      reason: `the page's record list is ${items === null ? 'null' : 'missing'}; taken as an empty page`,
      raw: { page: options.pageShown ?? null, records: items ?? null },
    });
    return { accepted, rejects };
  }
  const redact = options.redact ?? ((raw: unknown) => raw);
  for (const raw of items as readonly unknown[]) {
    const parsed = schema.safeParse(raw);
    if (parsed.success) {
      accepted.push(parsed.data);
      continue;
    }
    const recordId = recordIdOf(raw);
    const recordKey = recordId ?? `sha256:${sha256(JSON.stringify(raw ?? null))}`;
    rejects.push({ resource, recordKey, recordId, reason: describeIssues(parsed.error), raw: redact(raw ?? null) ?? null });
  }
  return { accepted, rejects };
}
