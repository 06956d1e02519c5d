import { isInaccessible } from '../../../sync/access';
import type { SyncContext } from '../../../sync/context';
import { CompleteListing, markUnlisted } from '../../../sync/deletions';
import { memberRow, redactBitbucketRecord } from '../rows';
import { bitbucketRawPage, type BitbucketRawPage, bitbucketWorkspaceMembershipSchema } from '../schemas';
import type { BitbucketStore } from '../store';
import { BITBUCKET_TABLES } from '../tables';
import { membersUrl } from '../urls';

/**
 * Each workspace's full member list every pass: whoever a complete listing no longer returns has
 * left (a seat freed) and is marked deleted; someone listed again is unmarked. A crashed pass simply
 * starts over, so the seen set needs no cursor.
 */
export async function syncMembers(ctx: SyncContext<BitbucketStore>): Promise<void> {
  for (const ws of await ctx.store.workspaces()) {
    const listing = new CompleteListing();
    const seenAt = new Date();
    let url: string | undefined = membersUrl(ctx.apiUrl, ws.slug);
    try {
      while (url) {
        const page: BitbucketRawPage = await ctx.get(url, bitbucketRawPage);
        const next: string | undefined = page.next ? ctx.follow(page.next) : undefined;
        const rows = ctx
          .accept('members', page.values, bitbucketWorkspaceMembershipSchema, redactBitbucketRecord)
          .map((m) => memberRow(ws.id, m, seenAt));
        // Someone leaving while we page shifts a not-yet-read member onto a page already read (the
        // listing is by page number): fewer members seen than its `size` keeps anyone from being marked.
        listing.page(
          rows.map((r) => r.id),
          page.values?.length ?? null,
          page.size,
        );
        const gone = listing.complete(!next)
          ? markUnlisted(BITBUCKET_TABLES.members, ctx.connectionId, listing.ids(), { column: 'workspace_id', value: ws.id })
          : undefined;
        await ctx.commit(BITBUCKET_TABLES.members, rows, undefined, gone);
        url = next;
      }
    } catch (err) {
      // A workspace whose members we may not list (or no longer see) does not fail the run,
      // and nobody is marked as gone on the strength of a partial list.
      if (!isInaccessible(err)) throw err;
    }
  }
}
