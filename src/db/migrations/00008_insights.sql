-- Insights (GET /v1/connections/:id/insights/*, GET /v1/insights/overview): per-connection settings,
-- pull request participants as rows, and the indexes the insight queries read through.

-- {"deploymentPattern": "<POSIX regex matched against pipeline target refs>"}; see PATCH /v1/connections/:id.
alter table connections add column insights_settings jsonb not null default '{}';

-- Who took part in a pull request (reviewers, commenters, approvers), extracted from the pull
-- request's `participants` at sync time in the same transaction as the pull request's page. One row
-- per (pull request, user). `participated_on` is Bitbucket's time of the participant's latest
-- activity on the pull request.
create table bitbucket_pr_participants (
  connection_id uuid not null references connections (id),
  pull_request_id text not null, -- bitbucket_pull_requests.id
  user_id text not null,
  role text,
  approved boolean not null default false,
  participated_on timestamptz,
  primary key (connection_id, pull_request_id, user_id)
);

-- Backfill from what is already stored.
insert into bitbucket_pr_participants (connection_id, pull_request_id, user_id, role, approved, participated_on)
select distinct on (p.connection_id, p.id, x -> 'user' ->> 'uuid')
       p.connection_id, p.id, x -> 'user' ->> 'uuid', x ->> 'role',
       coalesce((x ->> 'approved')::boolean, false), (x ->> 'participated_on')::timestamptz
from bitbucket_pull_requests p
cross join lateral jsonb_array_elements(
  case when jsonb_typeof(p.raw -> 'participants') = 'array' then p.raw -> 'participants' else '[]'::jsonb end) x
where x -> 'user' ->> 'uuid' is not null
order by p.connection_id, p.id, x -> 'user' ->> 'uuid', (x ->> 'participated_on')::timestamptz desc nulls last;

-- Seats: latest activity per user (backward index scans, one per member).
create index bitbucket_pr_participants_user on bitbucket_pr_participants (connection_id, user_id, participated_on);
-- Delivery's review load: participations in a range.
create index bitbucket_pr_participants_time on bitbucket_pr_participants (connection_id, participated_on);
create index bitbucket_commits_author on bitbucket_commits (connection_id, author_id, committed_at);
create index bitbucket_pull_requests_author on bitbucket_pull_requests (connection_id, author_id, created_on);
-- CI and flakiness: builds / pipelines of a connection in a time range.
create index bitrise_builds_time on bitrise_builds (connection_id, triggered_at);
create index bitbucket_pipelines_time on bitbucket_pipelines (connection_id, created_on);
-- Delivery: pull requests merged in a range (merge time = updated_on of a MERGED pull request).
-- Lead time looks commits up by primary key (id = <repository uuid>/<hash>).
create index bitbucket_pull_requests_merged on bitbucket_pull_requests (connection_id, updated_on) where state = 'MERGED';
create index bitbucket_pull_requests_created on bitbucket_pull_requests (connection_id, created_on);
