import { isInaccessible } from '../../../sync/access';
import type { SyncContext } from '../../../sync/context';
import { repositoryRow } from '../rows';
import { bitbucketRepositorySchema } from '../schemas';
import type { BitbucketStore } from '../store';
import { BITBUCKET_TABLES } from '../tables';
import { repositoriesUrl } from '../urls';
import { syncUpdatedSince } from './updated-since';

export async function syncRepositories(ctx: SyncContext<BitbucketStore>): Promise<void> {
  for (const ws of await ctx.store.workspaces()) {
    try {
      await syncUpdatedSince(ctx, {
        resource: 'repositories',
        scope: ws.id,
        spec: BITBUCKET_TABLES.repositories,
        schema: bitbucketRepositorySchema,
        url: (q) => repositoriesUrl(ctx.apiUrl, ws.slug, q),
        row: (r) => repositoryRow(ws.id, r),
        deletionScope: { column: 'workspace_id', value: ws.id },
      });
    } catch (err) {
      // A workspace we can no longer read (left, or removed) does not fail the run; its
      // repositories are marked inaccessible when their own endpoints refuse us.
      if (!isInaccessible(err)) throw err;
    }
  }
}
