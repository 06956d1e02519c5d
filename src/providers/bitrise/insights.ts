import type { Sql } from '../../db/sql';
import { seconds } from '../../insights/sql';
import type { CiFilters, CiSource, ProviderInsights } from '../../insights/types';

/**
 * Bitrise builds as CI runs. Outcome from `status`: 0 running, 1 success, 2 failure, 3 and 4
 * (aborted with failure / success) abort. Queue time = triggered_at → started_on_worker_at;
 * duration = started_on_worker_at → finished_at; cost = credit_cost (credits). Builds of an app
 * the provider deleted are left out.
 */
export const bitriseCiSource: CiSource = {
  groupKind: 'app',
  costUnit: 'credits',
  runs(sql: Sql, connectionId: string, from: string, to: string, f: CiFilters) {
    return sql`
      select b.id, b.app_id as group_id, coalesce(b.triggered_workflow, '') as workflow,
             b.branch, b.commit_hash,
             case b.status when 0 then 'running' when 1 then 'success' when 2 then 'failure' else 'abort' end as outcome,
             b.triggered_at as at,
             ${seconds(sql, sql`b.started_on_worker_at`, sql`b.triggered_at`)} as queue_s,
             case when b.status <> 0 then ${seconds(sql, sql`b.finished_at`, sql`b.started_on_worker_at`)} end as duration_s,
             b.credit_cost::float8 as cost,
             'https://app.bitrise.io/build/' || b.id as url
      from bitrise_builds b
      where b.connection_id = ${connectionId} and b.triggered_at >= ${from}::timestamptz and b.triggered_at < ${to}::timestamptz
        and b.app_id not in (select id from bitrise_apps where connection_id = ${connectionId} and deleted_at is not null)
        ${f.group ? sql`and b.app_id = ${f.group}` : sql``}
        ${f.workflow ? sql`and b.triggered_workflow = ${f.workflow}` : sql``}
        ${f.branch ? sql`and b.branch = ${f.branch}` : sql``}`;
  },
  groups(sql: Sql, connectionId: string) {
    return sql`select id as group_id, title as group_name from bitrise_apps where connection_id = ${connectionId}`;
  },
};

export const bitriseInsights: ProviderInsights = { ci: bitriseCiSource };
