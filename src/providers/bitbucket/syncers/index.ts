import type { SyncContext } from '../../../sync/context';
import type { BitbucketStore } from '../store';
import { syncCommits } from './commits';
import { syncMembers } from './members';
import { syncPipelines } from './pipelines';
import { syncPullRequests } from './pull-requests';
import { syncRepositories } from './repositories';
import { syncWorkspaces } from './workspaces';

/** One syncer per resource of the manifest; they run in its order, parents first. */
export const bitbucketSyncers = {
  workspaces: syncWorkspaces,
  members: syncMembers,
  repositories: syncRepositories,
  pullRequests: syncPullRequests,
  commits: syncCommits,
  pipelines: syncPipelines,
} satisfies Record<string, (ctx: SyncContext<BitbucketStore>) => Promise<void>>;
