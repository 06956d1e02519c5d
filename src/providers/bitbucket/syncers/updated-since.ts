import type { z } from 'zod';
import type { SyncContext } from '../../../sync/context';
import { bothExtras, CompleteListing, markUnlisted } from '../../../sync/deletions';
import type { PageExtra, RecordRow, TableSpec } from '../../../sync/store';
import { isoMicros, updatedResumePoint, updatedSinceQuery, type UpdatedCursor } from '../cursors';
import { redactBitbucketRecord } from '../rows';
import { bitbucketRawPage } from '../schemas';

/**
 * Incremental listing sorted by `updated_on` ascending, resumed with `q=updated_on > cursor`.
 * Each next page is asked for again with the committed cursor (keyset pagination) rather than by
 * page number: a row updated while we page moves to the end of the ordering, which shifts numbered
 * pages and would skip a row that slid onto a page already read. The cursor is committed with each
 * page, so a crash re-fetches at most that one page.
 *
 * A pass that starts without a cursor (the first sync, a backfill) lists everything: with
 * `deletionScope`, if it reads every page in this one attempt, its last page marks the scope's
 * records it did not see as deleted. A pass resumed from a cursor, and every incremental one,
 * marks nothing.
 */
export async function syncUpdatedSince<S extends z.ZodType<{ updated_on: string }>>(
  ctx: SyncContext<unknown>,
  o: {
    resource: string;
    scope: string;
    spec: TableSpec;
    schema: S;
    url: (q: string | undefined) => string;
    row: (item: z.output<S>) => RecordRow;
    /** Further writes committed with each page (child rows of the page's records). */
    extra?: (items: z.output<S>[]) => PageExtra | undefined;
    /** Where a full pass marks what it did not list (a table with `tracksDeletion`). */
    deletionScope?: { column: string; value: string };
  },
): Promise<void> {
  let after = (await ctx.cursor<UpdatedCursor>(o.resource, o.scope))?.updatedAfter;
  const listing = after === undefined && o.deletionScope ? new CompleteListing() : undefined;
  let url = o.url(after === undefined ? undefined : updatedSinceQuery(after));
  // Rows at the resume point that the previous page already committed; the re-query returns them.
  let committed = new Map<string, string>();
  for (;;) {
    const page = await ctx.get(url, bitbucketRawPage);
    const items = ctx.accept(o.resource, page.values, o.schema, redactBitbucketRecord);
    const more = Boolean(page.next) && (page.values?.length ?? 0) > 0;
    const next = more ? ctx.follow(page.next!) : undefined;
    const resume = updatedResumePoint(
      items.map((i) => i.updated_on),
      more,
      after,
    );
    const rows = items.map((item) => ({ row: o.row(item), updatedOn: item.updated_on }));
    const fresh = rows.filter(({ row, updatedOn }) => committed.get(row.id) !== updatedOn).map(({ row }) => row);
    listing?.page(
      rows.map(({ row }) => row.id),
      page.values?.length ?? null,
      page.size,
    );
    const gone = listing?.complete(!page.next) ? markUnlisted(o.spec, ctx.connectionId, listing.ids(), o.deletionScope) : undefined;
    await ctx.commit(
      o.spec,
      fresh,
      resume === undefined ? undefined : { resource: o.resource, scope: o.scope, value: { updatedAfter: resume } satisfies UpdatedCursor },
      bothExtras(o.extra?.(items), gone),
    );
    if (!next) return;
    const resumeAt = resume === undefined ? Number.NEGATIVE_INFINITY : isoMicros(resume);
    committed = new Map(rows.filter(({ updatedOn }) => isoMicros(updatedOn) > resumeAt).map(({ row, updatedOn }) => [row.id, updatedOn]));
    // No progress (a whole page sharing one instant): step through by page number instead.
    url = resume !== after && resume !== undefined ? o.url(updatedSinceQuery(resume)) : next;
    after = resume;
  }
}
