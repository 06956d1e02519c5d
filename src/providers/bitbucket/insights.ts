import type { Sql } from '../../db/sql';
import type { DeliveryResponse, SeatsResponse } from '../../insights/schemas';
import { bucketOf, bucketSeries, isoText, pct, ratio, seconds } from '../../insights/sql';
import type { CiFilters, CiSource, Fragment, InsightRange, InsightSettings, ProviderInsights } from '../../insights/types';

/**
 * Bitbucket's insight figures: pipelines as CI runs, seats from members' activity, and delivery
 * (pull request cycle time, review load, DORA from deployment pipelines). Definitions: README,
 * "Insights".
 */

const DAY_MS = 86_400_000;

/**
 * Repositories whose records no longer count: deleted at the provider, or in a workspace that is
 * (a deleted workspace's repositories cannot be listed, so they are never marked themselves).
 */
const deletedRepositories = (sql: Sql, connectionId: string) => sql`
  select r.id from bitbucket_repositories r
  where r.connection_id = ${connectionId}
    and (r.deleted_at is not null or exists (
      select from bitbucket_workspaces w where w.connection_id = r.connection_id and w.id = r.workspace_id and w.deleted_at is not null))`;

/**
 * Workflow: the pipeline's target, its selector's pattern (branch pattern, custom pipeline name) or
 * type, else the ref (`bitbucket_pipelines.workflow`, generated from `raw`; migration 00011).
 * Outcome: not COMPLETED = running; SUCCESSFUL success; FAILED or ERROR failure; anything else
 * (STOPPED, EXPIRED) abort. Duration = created_on → completed_on (Bitbucket stores no step start
 * time, so it includes queueing, and queue time is null). Cost = build_seconds_used / 60 (minutes).
 */
export const bitbucketCiSource: CiSource = {
  groupKind: 'repository',
  costUnit: 'minutes',
  runs(sql: Sql, connectionId: string, from: string, to: string, f: CiFilters) {
    return sql`
      select p.id, p.repository_id as group_id, p.workflow,
             p.branch, p.commit_hash,
             case when p.state <> 'COMPLETED' then 'running' when p.result = 'SUCCESSFUL' then 'success'
                  when p.result in ('FAILED', 'ERROR') then 'failure' else 'abort' end as outcome,
             p.created_on as at,
             null::float8 as queue_s,
             case when p.state = 'COMPLETED' then ${seconds(sql, sql`p.completed_on`, sql`p.created_on`)} end as duration_s,
             (p.build_seconds_used / 60.0)::float8 as cost,
             'https://bitbucket.org/' || coalesce(w.slug, split_part(r.full_name, '/', 1)) || '/' || r.slug
               || '/pipelines/results/' || p.build_number as url
      from bitbucket_pipelines p
      left join bitbucket_repositories r on r.connection_id = p.connection_id and r.id = p.repository_id
      left join bitbucket_workspaces w on w.connection_id = r.connection_id and w.id = r.workspace_id
      where p.connection_id = ${connectionId} and p.created_on >= ${from}::timestamptz and p.created_on < ${to}::timestamptz
        and p.repository_id not in (${deletedRepositories(sql, connectionId)})
        ${f.group ? sql`and p.repository_id = ${f.group}` : sql``}
        ${f.workflow ? sql`and p.workflow = ${f.workflow}` : sql``}
        ${f.branch ? sql`and p.branch = ${f.branch}` : sql``}`;
  },
  groups(sql: Sql, connectionId: string) {
    return sql`select id as group_id, full_name as group_name from bitbucket_repositories where connection_id = ${connectionId}`;
  },
};

/** A participation's repository: participant rows are keyed by the pull request's id, `<repository uuid>/<number>`. */
const participantRepo = (sql: Sql) => sql`split_part(x.pull_request_id, '/', 1)`;

/**
 * Members still in their workspace (not deleted, in a workspace that is not), each with their
 * latest activity before `to`: a commit they authored (committed_at), a pull request they opened
 * (created_on), or a pull request they took part in (participated_on). Activity anywhere in the
 * connection counts, except in deleted repositories.
 */
async function seats(sql: Sql, connectionId: string, range: InsightRange): Promise<Omit<SeatsResponse, 'connectionId'>> {
  const d30 = new Date(Date.parse(range.to) - 30 * DAY_MS).toISOString();
  const d90 = new Date(Date.parse(range.to) - 90 * DAY_MS).toISOString();
  const [row] = await sql`
    with gone as materialized (${deletedRepositories(sql, connectionId)}),
    m as materialized (
      select m.workspace_id, m.user_id, m.display_name, greatest(
        (select max(c.committed_at) from bitbucket_commits c
          where c.connection_id = m.connection_id and c.author_id = m.user_id and c.committed_at < ${range.to}::timestamptz
            and c.repository_id not in (select id from gone)),
        (select max(p.created_on) from bitbucket_pull_requests p
          where p.connection_id = m.connection_id and p.author_id = m.user_id and p.created_on < ${range.to}::timestamptz
            and p.repository_id not in (select id from gone)),
        (select max(x.participated_on) from bitbucket_pr_participants x
          where x.connection_id = m.connection_id and x.user_id = m.user_id and x.participated_on < ${range.to}::timestamptz
            and ${participantRepo(sql)} not in (select id from gone))
      ) as last_activity
      from bitbucket_members m
      where m.connection_id = ${connectionId} and m.deleted_at is null
        and m.workspace_id not in (select id from bitbucket_workspaces where connection_id = ${connectionId} and deleted_at is not null)),
    per_ws as (
      select workspace_id, count(*)::int as members,
             count(*) filter (where last_activity >= ${d30}::timestamptz)::int as active30,
             count(*) filter (where last_activity >= ${d90}::timestamptz)::int as active90,
             count(*) filter (where last_activity is null or last_activity < ${d30}::timestamptz)::int as inactive30
      from m group by workspace_id)
    select
      json_build_object('members', coalesce(sum(members), 0)::int, 'active30', coalesce(sum(active30), 0)::int,
                        'active90', coalesce(sum(active90), 0)::int, 'inactive30', coalesce(sum(inactive30), 0)::int) as totals,
      coalesce(json_agg(json_build_object('workspaceId', per_ws.workspace_id, 'slug', w.slug, 'members', members,
                 'active30', active30, 'active90', active90, 'inactive30', inactive30) order by w.slug, per_ws.workspace_id), '[]') as workspaces,
      (select coalesce(json_agg(json_build_object('workspaceId', workspace_id, 'userId', user_id, 'displayName', display_name,
                 'lastActivityAt', ${isoText(sql, sql`last_activity`)}) order by last_activity nulls first, user_id), '[]')
       from m where last_activity is null or last_activity < ${d30}::timestamptz) as inactive_members
    from per_ws left join bitbucket_workspaces w on w.connection_id = ${connectionId} and w.id = per_ws.workspace_id`;
  return {
    asOf: range.to,
    totals: row!.totals as SeatsResponse['totals'],
    workspaces: row!.workspaces as SeatsResponse['workspaces'],
    inactiveMembers: row!.inactiveMembers as SeatsResponse['inactiveMembers'],
  };
}

type Delivery = Omit<DeliveryResponse, 'connectionId' | 'range'>;

async function delivery(sql: Sql, connectionId: string, range: InsightRange, settings: InsightSettings): Promise<Delivery> {
  const p5090 = (expr: Fragment) => sql`json_build_object('p50', ${pct(sql, 0.5, expr)}, 'p90', ${pct(sql, 0.9, expr)})`;
  const [row] = await sql`
    with gone as materialized (${deletedRepositories(sql, connectionId)}),
    merged as materialized (
      select p.created_on, p.updated_on as merged_at, p.first_review_on as first_review, p.first_approval_on as first_approval
      from bitbucket_pull_requests p
      where p.connection_id = ${connectionId} and p.state = 'MERGED'
        and p.updated_on >= ${range.from}::timestamptz and p.updated_on < ${range.to}::timestamptz
        and p.repository_id not in (select id from gone)),
    ct as (
      select ${seconds(sql, sql`merged_at`, sql`created_on`)} as total,
             ${seconds(sql, sql`first_review`, sql`created_on`)} as to_review,
             ${seconds(sql, sql`first_approval`, sql`first_review`)} as review_to_approval,
             ${seconds(sql, sql`merged_at`, sql`first_approval`)} as approval_to_merge
      from merged),
    buckets as (${bucketSeries(sql, range)}),
    opened as (
      select ${bucketOf(sql, range, sql`created_on`)} as b, count(*)::int as n from bitbucket_pull_requests
      where connection_id = ${connectionId} and created_on >= ${range.from}::timestamptz and created_on < ${range.to}::timestamptz
        and repository_id not in (select id from gone)
      group by 1),
    merged_b as (select ${bucketOf(sql, range, sql`merged_at`)} as b, count(*)::int as n from merged group by 1),
    load as (
      select x.user_id, count(*)::int as reviews, count(*) filter (where x.approved)::int as approvals
      from bitbucket_pr_participants x
      where x.connection_id = ${connectionId} and x.participated_on >= ${range.from}::timestamptz
        and x.participated_on < ${range.to}::timestamptz and not x.is_author
        and ${participantRepo(sql)} not in (select id from gone)
      group by x.user_id),
    names as (
      select distinct on (user_id) user_id, display_name from bitbucket_members
      where connection_id = ${connectionId} order by user_id, deleted_at is not null, id)
    select
      (select json_agg(json_build_object('start', ${isoText(sql, sql`buckets.b`)}, 'opened', coalesce(o.n, 0), 'merged', coalesce(mb.n, 0))
                       order by buckets.b)
       from buckets left join opened o on o.b = buckets.b left join merged_b mb on mb.b = buckets.b) as throughput,
      (select json_build_object('merged', count(*)::int, 'total', ${p5090(sql`total`)}, 'toFirstReview', ${p5090(sql`to_review`)},
                                'reviewToApproval', ${p5090(sql`review_to_approval`)}, 'approvalToMerge', ${p5090(sql`approval_to_merge`)})
       from ct) as cycle_time,
      (select coalesce(json_agg(json_build_object('userId', l.user_id, 'displayName', n.display_name,
                'reviews', l.reviews, 'approvals', l.approvals) order by l.reviews desc, l.approvals desc, l.user_id), '[]')
       from (select * from load order by reviews desc, approvals desc, user_id limit 100) l
       left join names n on n.user_id = l.user_id) as review_load`;
  return {
    throughput: row!.throughput as Delivery['throughput'],
    cycleTimeSeconds: row!.cycleTime as Delivery['cycleTimeSeconds'],
    reviewLoad: row!.reviewLoad as Delivery['reviewLoad'],
    dora: settings.deploymentPattern ? await dora(sql, connectionId, range, settings.deploymentPattern) : null,
  };
}

/**
 * Deployments: COMPLETED pipelines whose target ref (branch) matches the pattern (a Postgres
 * regex, `~`), successful (SUCCESSFUL) or failed (FAILED, ERROR); stopped ones are not deployments.
 */
async function dora(sql: Sql, connectionId: string, range: InsightRange, pattern: string): Promise<NonNullable<Delivery['dora']>> {
  const days = (Date.parse(range.to) - Date.parse(range.from)) / DAY_MS;
  const p5090 = (expr: Fragment) => sql`json_build_object('p50', ${pct(sql, 0.5, expr)}, 'p90', ${pct(sql, 0.9, expr)})`;
  const [row] = await sql`
    with d as materialized (
      select p.id, p.repository_id, p.branch, p.commit_hash, p.created_on, p.completed_on, p.result = 'SUCCESSFUL' as ok
      from bitbucket_pipelines p
      where p.connection_id = ${connectionId} and p.created_on >= ${range.from}::timestamptz and p.created_on < ${range.to}::timestamptz
        and p.state = 'COMPLETED' and p.result in ('SUCCESSFUL', 'FAILED', 'ERROR') and p.branch ~ ${pattern}
        and p.repository_id not in (${deletedRepositories(sql, connectionId)})),
    seq as (
      select d.*, lag(ok) over w as prev_ok,
             min(case when ok then completed_on end) over (w rows between current row and unbounded following) as next_ok_at
      from d window w as (partition by repository_id, branch order by created_on, id)),
    buckets as (${bucketSeries(sql, range)}),
    per_b as (select ${bucketOf(sql, range, sql`created_on`)} as b, count(*)::int as n, count(*) filter (where ok)::int as ok from d group by 1)
    select
      (select count(*)::int from d) as deployments,
      (select count(*) filter (where ok)::int from d) as successful,
      (select count(*) filter (where not ok)::int from d) as failed,
      (select json_agg(json_build_object('start', ${isoText(sql, sql`buckets.b`)}, 'deployments', coalesce(pb.n, 0),
                       'successful', coalesce(pb.ok, 0)) order by buckets.b)
       from buckets left join per_b pb on pb.b = buckets.b) as frequency,
      (select ${p5090(sql`${seconds(sql, sql`d.completed_on`, sql`c.committed_at`)}`)}
       from d join bitbucket_commits c on c.connection_id = ${connectionId} and c.id = d.repository_id || '/' || d.commit_hash
       where d.ok) as lead_time,
      (select ${ratio(sql, sql`count(*) filter (where not ok)`, sql`count(*)`)} from d) as change_failure_rate,
      (select ${p5090(sql`${seconds(sql, sql`next_ok_at`, sql`completed_on`)}`)}
       from seq where not ok and (prev_ok is null or prev_ok) and next_ok_at is not null) as time_to_restore`;
  const r = row!;
  return {
    deploymentPattern: pattern,
    deployments: r.deployments as number,
    successfulDeployments: r.successful as number,
    failedDeployments: r.failed as number,
    deploymentsPerDay: Math.round(((r.successful as number) / days) * 1e4) / 1e4,
    frequency: r.frequency as NonNullable<Delivery['dora']>['frequency'],
    leadTimeSeconds: r.leadTime as NonNullable<Delivery['dora']>['leadTimeSeconds'],
    changeFailureRate: r.changeFailureRate as number | null,
    timeToRestoreSeconds: r.timeToRestore as NonNullable<Delivery['dora']>['timeToRestoreSeconds'],
  };
}

/** Seats and the merged pull requests' count and median cycle time (the full delivery figures are not needed). */
async function overview(sql: Sql, connectionId: string, range: InsightRange) {
  const [s, [m]] = await Promise.all([
    seats(sql, connectionId, range),
    sql<{ merged: number; p50: number | null }[]>`
      select count(*)::int as merged, ${pct(sql, 0.5, seconds(sql, sql`updated_on`, sql`created_on`))} as p50
      from bitbucket_pull_requests
      where connection_id = ${connectionId} and state = 'MERGED'
        and updated_on >= ${range.from}::timestamptz and updated_on < ${range.to}::timestamptz
        and repository_id not in (${deletedRepositories(sql, connectionId)})`,
  ]);
  return { members: s.totals.members, active30: s.totals.active30, mergedPullRequests: m!.merged, cycleTimeP50: m!.p50 };
}

export const bitbucketInsights: ProviderInsights = { ci: bitbucketCiSource, seats, delivery, overview };
