import type { TableSpec } from '../../sync/store';

/** Where each Bitbucket resource is stored (migration 00002_sync_engine.sql) and which columns are typed. */
export const BITBUCKET_TABLES = {
  workspaces: { table: 'bitbucket_workspaces', columns: ['slug', 'name', 'is_private', 'is_admin'], tracksDeletion: true },
  members: {
    table: 'bitbucket_members',
    columns: ['workspace_id', 'user_id', 'display_name', 'account_id', 'nickname', 'last_seen_at'],
    tracksDeletion: true,
  },
  repositories: {
    table: 'bitbucket_repositories',
    columns: [
      'workspace_id',
      'slug',
      'full_name',
      'name',
      'is_private',
      'language',
      'project_key',
      'mainbranch',
      'created_on',
      'updated_on',
      'accessible',
      'inaccessible_since',
    ],
    tracksDeletion: true,
  },
  pullRequests: {
    table: 'bitbucket_pull_requests',
    columns: [
      'repository_id',
      'number',
      'title',
      'state',
      'author_id',
      'source_branch',
      'destination_branch',
      'merge_commit',
      'comment_count',
      'task_count',
      'draft',
      'created_on',
      'updated_on',
    ],
  },
  commits: {
    table: 'bitbucket_commits',
    columns: ['repository_id', 'hash', 'committed_at', 'author_raw', 'author_id', 'message', 'parent_hashes'],
  },
  pipelines: {
    table: 'bitbucket_pipelines',
    columns: [
      'repository_id',
      'build_number',
      'state',
      'result',
      'trigger_type',
      'branch',
      'commit_hash',
      'creator_id',
      'created_on',
      'completed_on',
      'build_seconds_used',
    ],
  },
} as const satisfies Record<string, TableSpec>;
