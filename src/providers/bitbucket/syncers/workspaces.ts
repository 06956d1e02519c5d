import type { SyncContext } from '../../../sync/context';
import { CompleteListing, markUnlisted } from '../../../sync/deletions';
import { redactBitbucketRecord, workspaceRow } from '../rows';
import { bitbucketRawPage, type BitbucketRawPage, bitbucketWorkspaceAccessSchema } from '../schemas';
import type { BitbucketStore } from '../store';
import { BITBUCKET_TABLES } from '../tables';
import { workspacesUrl } from '../urls';

/**
 * Few and without a change time: listed in full each run, and a workspace a complete listing no
 * longer returns (deleted, or the user left it) is marked deleted. `/workspaces` is deprecated in
 * favour of `/user/workspaces`.
 */
export async function syncWorkspaces(ctx: SyncContext<BitbucketStore>): Promise<void> {
  const listing = new CompleteListing();
  let url: string | undefined = workspacesUrl(ctx.apiUrl);
  while (url) {
    const page: BitbucketRawPage = await ctx.get(url, bitbucketRawPage);
    const next: string | undefined = page.next ? ctx.follow(page.next) : undefined;
    const rows = ctx.accept('workspaces', page.values, bitbucketWorkspaceAccessSchema, redactBitbucketRecord).map(workspaceRow);
    listing.page(
      rows.map((r) => r.id),
      page.values?.length ?? null,
      page.size,
    );
    const gone = listing.complete(!next) ? markUnlisted(BITBUCKET_TABLES.workspaces, ctx.connectionId, listing.ids()) : undefined;
    await ctx.commit(BITBUCKET_TABLES.workspaces, rows, undefined, gone);
    url = next;
  }
}
