import { withParentAccess } from '../../../sync/access';
import type { SyncContext } from '../../../sync/context';
import { participantRows, pullRequestRow } from '../rows';
import { bitbucketPullRequestSchema } from '../schemas';
import type { BitbucketStore } from '../store';
import { BITBUCKET_TABLES } from '../tables';
import { pullRequestsUrl } from '../urls';
import { syncUpdatedSince } from './updated-since';

export async function syncPullRequests(ctx: SyncContext<BitbucketStore>): Promise<void> {
  // Inaccessible repositories are asked too (one request each): the repositories listing is
  // incremental, so a repository whose access comes back without an update would never be
  // listed again. Answering here makes it accessible before commits and pipelines run.
  for (const repo of await ctx.store.repositories(false)) {
    await withParentAccess(ctx, BITBUCKET_TABLES.repositories, repo, () =>
      syncUpdatedSince(ctx, {
        resource: 'pullRequests',
        scope: repo.id,
        spec: BITBUCKET_TABLES.pullRequests,
        schema: bitbucketPullRequestSchema,
        url: (q) => pullRequestsUrl(ctx.apiUrl, repo, q),
        row: (p) => pullRequestRow(repo.id, p),
        extra: (prs) =>
          ctx.store.replaceParticipants(
            prs.map((p) => ({ id: pullRequestRow(repo.id, p).id, rows: p.participants ? participantRows(p) : undefined })),
          ),
      }),
    );
  }
}
