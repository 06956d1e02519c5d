import type { Provider, SyncResource } from '../domain/connection';
import { BITBUCKET_TABLES, bitbucketSyncers } from './bitbucket';
import { BITRISE_TABLES, bitriseSyncers } from './bitrise';
import type { SyncContext } from './context';
import type { TableSpec } from './store';

/** Where each provider's resources are stored and which syncer fills them (see SYNC_RESOURCES). */
export const RECORD_TABLES: { [P in Provider]: Record<SyncResource<P>, TableSpec> } = {
  bitbucket: BITBUCKET_TABLES,
  bitrise: BITRISE_TABLES,
};

type Syncer = (ctx: SyncContext) => Promise<void>;

export const SYNCERS: { [P in Provider]: Record<SyncResource<P>, Syncer> } = {
  bitbucket: bitbucketSyncers,
  bitrise: bitriseSyncers,
};
