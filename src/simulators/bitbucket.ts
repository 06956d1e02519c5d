/**
 * Bitbucket Cloud simulator. The implementation lives in `./bitbucket/` (world, oauth, render,
 * routes, …); this module keeps the original import path working.
 */
export * from './bitbucket/index';
export {
  DEFAULT_BITBUCKET_CONSUMER,
  completeSyncCounts,
  startBitbucketSimulator,
  type BitbucketConsumer,
  type BitbucketControl,
  type BitbucketDataset,
  type BitbucketGrantInfo,
  type BitbucketRepositoryCounts,
  type BitbucketSeed,
  type BitbucketSimulator,
  type BitbucketSimulatorOptions,
  type PipelineResult,
  type PipelineStateName,
  type PullRequestState,
  type RepositoryAccess,
} from './bitbucket/index';
