import type { TableSpec } from '../../sync/store';

/** Where each Bitrise resource is stored (migration 00002_sync_engine.sql) and which columns are typed. */
export const BITRISE_TABLES = {
  organizations: { table: 'bitrise_organizations', columns: ['name', 'concurrency_count'], tracksDeletion: true },
  apps: {
    table: 'bitrise_apps',
    columns: [
      'title',
      'project_type',
      'repo_provider',
      'repo_owner',
      'repo_slug',
      'repo_url',
      'is_public',
      'is_disabled',
      'owner_slug',
      'accessible',
      'inaccessible_since',
    ],
    tracksDeletion: true,
  },
  builds: {
    table: 'bitrise_builds',
    columns: [
      'app_id',
      'build_number',
      'status',
      'status_text',
      'triggered_workflow',
      'branch',
      'commit_hash',
      'machine_type_id',
      'stack_identifier',
      'credit_cost',
      'pipeline_workflow_id',
      'pull_request_id',
      'is_on_hold',
      'triggered_at',
      'started_on_worker_at',
      'environment_prepare_finished_at',
      'finished_at',
    ],
  },
  pipelines: {
    table: 'bitrise_pipelines',
    columns: ['app_id', 'name', 'status', 'triggered_at', 'started_at', 'finished_at', 'credit_cost'],
  },
} as const satisfies Record<string, TableSpec>;
