import { isProviderError } from '../../../providers/errors';
import { withParentAccess } from '../../../sync/access';
import type { SyncContext } from '../../../sync/context';
import { commitsBefore, type CommitsCursor } from '../cursors';
import { commitRow, redactBitbucketRecord } from '../rows';
import { bitbucketCommitSchema, bitbucketRawPage } from '../schemas';
import type { BitbucketStore } from '../store';
import { BITBUCKET_TABLES } from '../tables';
import { commitsUrl } from '../urls';

const withHash = (v: unknown): { hash?: unknown } => (typeof v === 'object' && v !== null ? v : {});

/**
 * Commits page newest first with iterator pagination (an opaque `next`) and cannot be filtered by
 * date (https://jira.atlassian.com/browse/BCLOUD-22613): a pass stops at the newest hash the
 * previous pass stored.
 */
export async function syncCommits(ctx: SyncContext<BitbucketStore>): Promise<void> {
  for (const repo of await ctx.store.repositories(true)) {
    await withParentAccess(ctx, BITBUCKET_TABLES.repositories, repo, async () => {
      const cursor = (await ctx.cursor<CommitsCursor>('commits', repo.id)) ?? {};
      const { stopAt } = cursor;
      const first = commitsUrl(ctx.apiUrl, repo);
      let newest = cursor.newest;
      // A stored link is checked again: it may predate a change of the API's URL.
      let url = cursor.next !== undefined ? ctx.follow(cursor.next) : first;
      let resuming = cursor.next !== undefined;
      for (;;) {
        let page;
        try {
          page = await ctx.get(url, bitbucketRawPage);
        } catch (err) {
          // An iterator token can die (history rewritten meanwhile); that is no reason to call the
          // repository inaccessible. Start the pass over from the top instead.
          if (!resuming || !isProviderError(err, 'not_found')) throw err;
          resuming = false;
          newest = undefined;
          url = first;
          continue;
        }
        resuming = false;
        // Where the previous pass stopped is looked for among all records, valid or not.
        const { fresh, reached } = commitsBefore((page.values ?? []).map(withHash), stopAt);
        const commits = ctx.accept('commits', page.values === null ? null : fresh, bitbucketCommitSchema, redactBitbucketRecord);
        newest ??= commits[0]?.hash;
        // Checked before it is stored: a link we would refuse must never become a cursor.
        const next = reached || !page.next ? undefined : ctx.follow(page.next);
        const value: CommitsCursor = next ? { stopAt, next, newest } : { stopAt: newest ?? stopAt };
        await ctx.commit(
          BITBUCKET_TABLES.commits,
          commits.map((c) => commitRow(repo.id, c)),
          { resource: 'commits', scope: repo.id, value },
        );
        if (!next) return;
        url = next;
      }
    });
  }
}
