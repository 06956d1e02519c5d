import type { Sql } from '../db/sql';
import type { CiResponse, FlakinessResponse } from './schemas';
import { bucketOf, bucketSeries, isoText, pct, ratio } from './sql';
import type { CiFilters, CiSource, Fragment, InsightRange } from './types';

/**
 * CI figures and flakiness over a provider's normalized runs (CiSource), computed in one statement
 * each: Postgres aggregates, nothing is loaded into Node but the JSON answer.
 */

/**
 * The figures of one cell (unqualified columns of the runs relation). One `percentile_cont(array[…])` per column
 * sorts its values once for all three percentiles; `statsJson` turns the arrays into objects.
 */
function stats(sql: Sql): Fragment {
  const n = (cond: Fragment) => sql`count(*) filter (where ${cond})`;
  const finished = n(sql`outcome <> 'running'`);
  const arr = (col: Fragment) => sql`percentile_cont(array[0.5, 0.9, 0.95]::float8[]) within group (order by ${col})`;
  return sql`
    count(*)::int as builds,
    ${finished}::int as finished,
    ${n(sql`outcome = 'success'`)}::int as succeeded,
    ${n(sql`outcome = 'failure'`)}::int as failed,
    ${n(sql`outcome = 'abort'`)}::int as aborted,
    ${ratio(sql, n(sql`outcome = 'success'`), finished)} as success_rate,
    ${ratio(sql, n(sql`outcome = 'failure'`), finished)} as failure_rate,
    ${ratio(sql, n(sql`outcome = 'abort'`), finished)} as abort_rate,
    ${arr(sql`duration_s`)} as d_pct,
    ${arr(sql`queue_s`)} as q_pct,
    coalesce(round(sum(cost)::numeric, 3), 0)::float8 as cost`;
}

/** The stats of a cell as the API's object (without its keys); a missing cell (an empty bucket) is zeros and nulls. */
function statsJson(sql: Sql): Fragment {
  const r = (e: Fragment) => sql`round((${e})::numeric, 3)::float8`;
  const obj = (a: Fragment) => sql`json_build_object('p50', ${r(sql`${a}[1]`)}, 'p90', ${r(sql`${a}[2]`)}, 'p95', ${r(sql`${a}[3]`)})`;
  const z = (c: string) => sql`coalesce(${sql(c)}, 0) as ${sql(c)}`;
  return sql`
    ${z('builds')}, ${z('finished')}, ${z('succeeded')}, ${z('failed')}, ${z('aborted')}, success_rate as "successRate",
    failure_rate as "failureRate", abort_rate as "abortRate", ${obj(sql`d_pct`)} as "durationSeconds",
    ${obj(sql`q_pct`)} as "queueSeconds", ${z('cost')}`;
}

/** The previous period of the same length, ending where this one starts. */
function previousFrom(range: InsightRange): string {
  const from = Date.parse(range.from);
  return new Date(from - (Date.parse(range.to) - from)).toISOString();
}

// grouping(bkt, group_id, workflow) of each grouping set: a bit is set for a column aggregated over.
const TOTAL = 7;
const PER_BUCKET = 3;
const PER_GROUP = 5;
const PER_WORKFLOW = 4;

/**
 * Every figure from one pass over the runs of both periods: one GROUPING SETS aggregation yields
 * the totals, the buckets, the groups and the workflows (with the previous period's figures of each
 * workflow beside them, for the trends); the JSON is assembled from its few rows.
 */
export async function computeCi(
  sql: Sql,
  source: CiSource,
  connectionId: string,
  range: InsightRange,
  filters: CiFilters,
): Promise<Omit<CiResponse, 'connectionId' | 'provider' | 'range'>> {
  const j = statsJson(sql);
  const prevFailed = sql`count(*) filter (where r.outcome = 'failure')`;
  const trendCols = sql`
    c.group_id as "groupId", c.group_name as "groupName", c.workflow, c.builds, c.failed, c.failure_rate as "failureRate",
    round(c.d_pct[1]::numeric, 3)::float8 as "durationP50",
    json_build_object('builds', coalesce(p.builds, 0), 'failed', coalesce(p.failed, 0), 'failureRate', p.failure_rate,
                      'durationP50', p.duration_p50) as previous`;
  const p50 = sql`round(d_pct[1]::numeric, 3)::float8`;
  const [row] = await sql`
    with runs as materialized (
      select r.group_id, r.workflow, r.outcome, r.duration_s, r.queue_s, r.cost, ${bucketOf(sql, range, sql`r.at`)} as bkt
      from (${source.runs(sql, connectionId, range.from, range.to, filters)}) r),
    cells as (
      select grouping(bkt, group_id, workflow) as g, bkt, group_id, workflow, ${stats(sql)}
      from runs group by grouping sets ((), (bkt), (group_id), (group_id, workflow))),
    named as (
      select c.*, n.group_name from cells c left join (${source.groups(sql, connectionId)}) n on n.group_id = c.group_id
      where c.g in (${PER_GROUP}, ${PER_WORKFLOW})),
    -- The trends rank workflows by this period's figures alone, so only the ten picked need the previous period's.
    slow as (
      select group_id, workflow from named where g = ${PER_WORKFLOW} and d_pct[1] is not null
      order by ${p50} desc, group_id, workflow limit 5),
    failing as (
      select group_id, workflow from named where g = ${PER_WORKFLOW} and failed > 0
      order by failed desc, failure_rate desc, group_id, workflow limit 5),
    picked as (select * from slow union select * from failing),
    prev as (
      select r.group_id, r.workflow, count(*)::int as builds, ${prevFailed}::int as failed,
             ${ratio(sql, prevFailed, sql`count(*) filter (where r.outcome <> 'running')`)} as failure_rate,
             ${pct(sql, 0.5, sql`r.duration_s`)} as duration_p50
      from (${source.runs(sql, connectionId, previousFrom(range), range.from, filters)}) r
      join picked k on k.group_id = r.group_id and k.workflow = r.workflow
      group by r.group_id, r.workflow),
    trend as (
      select ${trendCols}
      from named c join picked k on k.group_id = c.group_id and k.workflow = c.workflow
      left join prev p on p.group_id = c.group_id and p.workflow = c.workflow
      where c.g = ${PER_WORKFLOW}),
    buckets as (${bucketSeries(sql, range)})
    select
      (select row_to_json(x) from (select ${j} from cells where g = ${TOTAL}) x) as totals,
      (select json_agg(x order by x.start) from (
         select ${isoText(sql, sql`buckets.b`)} as start, ${j}
         from buckets left join cells c on c.g = ${PER_BUCKET} and c.bkt = buckets.b) x) as buckets,
      (select coalesce(json_agg(x order by x.builds desc, x."groupId"), '[]') from (
         select group_id as "groupId", group_name as "groupName", ${j} from named where g = ${PER_GROUP}) x) as by_group,
      (select coalesce(json_agg(x order by x.builds desc, x."groupId", x.workflow), '[]') from (
         select group_id as "groupId", group_name as "groupName", workflow, ${j} from named where g = ${PER_WORKFLOW}) x) as by_workflow,
      (select coalesce(json_agg(x order by x."durationP50" desc, x."groupId", x.workflow), '[]') from (
         select * from trend where "durationP50" is not null order by "durationP50" desc, "groupId", workflow limit 5) x) as slowest,
      (select coalesce(json_agg(x order by x.failed desc, x."failureRate" desc, x."groupId", x.workflow), '[]') from (
         select * from trend where failed > 0 order by failed desc, "failureRate" desc, "groupId", workflow limit 5) x) as most_failing`;
  return {
    groupKind: source.groupKind,
    costUnit: source.costUnit,
    totals: row!.totals as CiResponse['totals'],
    buckets: row!.buckets as CiResponse['buckets'],
    byGroup: row!.byGroup as CiResponse['byGroup'],
    byWorkflow: row!.byWorkflow as CiResponse['byWorkflow'],
    slowest: row!.slowest as CiResponse['slowest'],
    mostFailing: row!.mostFailing as CiResponse['mostFailing'],
  };
}

/**
 * Flaky workflows: a workflow (per group) both succeeded and failed on one commit. A run the provider
 * recorded no commit for ran on its branch's latest commit as far as the runs show (the same branch,
 * no new commit in between): the commit of the latest earlier run of the group on that branch that
 * has one, any workflow, within the period. Runs on an affected commit are ordered by trigger time;
 * a flip is a run whose outcome differs from the run before it on that commit. Aborted and running
 * runs count for nothing but the commits they show.
 */
export async function computeFlakiness(
  sql: Sql,
  source: CiSource,
  connectionId: string,
  range: InsightRange,
  filters: CiFilters,
): Promise<Omit<FlakinessResponse, 'connectionId' | 'provider' | 'range'>> {
  const [row] = await sql`
    with runs as materialized (
      select r.id, r.group_id, r.workflow, r.branch, r.commit_hash, r.outcome, r.at, r.duration_s, r.url
      from (${source.runs(sql, connectionId, range.from, range.to, filters)}) r),
    -- Branches with finished runs that recorded no commit: only their runs are needed to find one.
    blind as (
      select distinct group_id, branch from runs
      where commit_hash is null and branch is not null and outcome in ('success', 'failure')),
    seen as (
      select r.*, count(r.commit_hash) over (partition by r.group_id, r.branch order by r.at, r.id) as commits_seen
      from runs r join blind b on b.group_id = r.group_id and b.branch = r.branch),
    fin as materialized (
      select id, group_id, workflow, outcome, at, duration_s, url, commit_hash from runs
      where outcome in ('success', 'failure') and commit_hash is not null
      union all
      select id, group_id, workflow, outcome, at, duration_s, url, head from (
        select *, first_value(commit_hash) over (partition by group_id, branch, commits_seen order by at, id) as head from seen) s
      where commit_hash is null and outcome in ('success', 'failure') and head is not null),
    flaky as (
      select group_id, workflow, commit_hash from fin group by group_id, workflow, commit_hash
      having bool_or(outcome = 'success') and bool_or(outcome = 'failure')),
    ordered as (
      select f.*, lag(f.outcome) over (partition by f.group_id, f.workflow, f.commit_hash order by f.at, f.id) as prev_outcome
      from fin f join flaky k on k.group_id = f.group_id and k.workflow = f.workflow and k.commit_hash = f.commit_hash),
    per_wf as (
      select group_id, workflow, count(*)::int as runs,
             count(*) filter (where prev_outcome is not null and prev_outcome <> outcome)::int as flips,
             count(distinct commit_hash)::int as commits,
             coalesce(round(sum(duration_s) filter (where outcome = 'failure')::numeric, 3), 0)::float8 as time_lost
      from ordered group by group_id, workflow),
    latest as (
      select distinct on (group_id, workflow) group_id, workflow, commit_hash
      from ordered order by group_id, workflow, at desc, id desc),
    evidence as (
      select l.group_id, l.workflow, json_build_object('commit', l.commit_hash,
        'success', (select json_build_object('id', o.id, 'url', o.url) from ordered o
                    where o.group_id = l.group_id and o.workflow = l.workflow and o.commit_hash = l.commit_hash and o.outcome = 'success'
                    order by o.at desc, o.id desc limit 1),
        'failure', (select json_build_object('id', o.id, 'url', o.url) from ordered o
                    where o.group_id = l.group_id and o.workflow = l.workflow and o.commit_hash = l.commit_hash and o.outcome = 'failure'
                    order by o.at desc, o.id desc limit 1)) as evidence
      from latest l)
    select
      json_build_object('flakyWorkflows', (select count(*) from per_wf)::int,
                        'affectedCommits', (select count(*) from flaky)::int,
                        'timeLostSeconds', coalesce((select sum(time_lost) from per_wf), 0)::float8) as totals,
      (select coalesce(json_agg(x order by x."timeLostSeconds" desc, x.score desc, x."groupId", x.workflow), '[]') from (
         select w.group_id as "groupId", n.group_name as "groupName", w.workflow,
                round(w.flips::numeric / w.runs, 4)::float8 as score, w.flips, w.runs, w.commits as "affectedCommits",
                w.time_lost as "timeLostSeconds", e.evidence
         from per_wf w join evidence e on e.group_id = w.group_id and e.workflow = w.workflow
         left join (${source.groups(sql, connectionId)}) n on n.group_id = w.group_id) x) as workflows`;
  return { totals: row!.totals as FlakinessResponse['totals'], workflows: row!.workflows as FlakinessResponse['workflows'] };
}

/** Headline CI numbers of the overview. */
export async function ciHeadline(sql: Sql, source: CiSource, connectionId: string, range: InsightRange) {
  const [row] = await sql<{ builds: number; successRate: number | null; durationP50: number | null; cost: number }[]>`
    select count(id)::int as builds,
           ${ratio(sql, sql`count(id) filter (where outcome = 'success')`, sql`count(id) filter (where outcome <> 'running')`)} as success_rate,
           ${pct(sql, 0.5, sql`duration_s`)} as duration_p50,
           coalesce(round(sum(cost)::numeric, 3), 0)::float8 as cost
    from (${source.runs(sql, connectionId, range.from, range.to, {})}) r`;
  return { ...row!, costUnit: source.costUnit };
}
