-- Deletion tracking, and what the insights read kept cheap to read.
--
-- Records the provider deleted stay (history, the records API) but are marked `deleted_at`;
-- insights leave them and their children out. Only a complete listing marks a row
-- (src/sync/deletions.ts); a row listed again is unmarked.
alter table bitbucket_workspaces add column deleted_at timestamptz;
alter table bitbucket_repositories add column deleted_at timestamptz;
alter table bitrise_organizations add column deleted_at timestamptz;
alter table bitrise_apps add column deleted_at timestamptz;

-- Members had their own flag (`active`, false once a full listing no longer returned them): one
-- mechanism now. The time they were marked is not known; their last change is the closest.
alter table bitbucket_members add column deleted_at timestamptz;
update bitbucket_members set deleted_at = updated_at where not active;
alter table bitbucket_members drop column active;

-- Insights exclude the few deleted parents of a connection: look them up without scanning the live ones.
create index bitbucket_workspaces_deleted on bitbucket_workspaces (connection_id) where deleted_at is not null;
create index bitbucket_repositories_deleted on bitbucket_repositories (connection_id) where deleted_at is not null;
create index bitrise_apps_deleted on bitrise_apps (connection_id) where deleted_at is not null;

-- Delivery reads two things per pull request that would otherwise cost a lookup per row: whether a
-- participant is the pull request's author (review load: only others' participations count), and
-- the pull request's first review and first approval (cycle time). Both are kept by the database
-- as participants and pull requests are written (by the sync, or anyone else), so they cannot
-- drift from the rows they derive from.

alter table bitbucket_pr_participants add column is_author boolean not null default false;

create function bitbucket_pr_participant_is_author() returns trigger language plpgsql as $$
begin
  new.is_author := exists (
    select from bitbucket_pull_requests p
    where p.connection_id = new.connection_id and p.id = new.pull_request_id and p.author_id = new.user_id);
  return new;
end $$;
create trigger bitbucket_pr_participants_is_author before insert or update on bitbucket_pr_participants
  for each row execute function bitbucket_pr_participant_is_author();

update bitbucket_pr_participants x set is_author = true
from bitbucket_pull_requests p
where p.connection_id = x.connection_id and p.id = x.pull_request_id and p.author_id = x.user_id;

-- First review: the earliest participated_on of a participant other than the author; first
-- approval: the same, of an approving participant; only participations between the pull
-- request's opening and its updated_on (a merged pull request's merge) count.
alter table bitbucket_pull_requests add column first_review_on timestamptz, add column first_approval_on timestamptz;

create function bitbucket_refresh_review_milestones(connection_ids uuid[], pull_request_ids text[]) returns void
language sql as $$
  update bitbucket_pull_requests p set first_review_on = r.first_review, first_approval_on = r.first_approval
  from (
    select q.connection_id, q.id, min(x.participated_on) as first_review,
           min(x.participated_on) filter (where x.approved) as first_approval
    from (select distinct c, i from unnest(connection_ids, pull_request_ids) k(c, i)) k
    join bitbucket_pull_requests q on q.connection_id = k.c and q.id = k.i
    left join bitbucket_pr_participants x on x.connection_id = q.connection_id and x.pull_request_id = q.id
      and not x.is_author and x.participated_on between q.created_on and q.updated_on
    group by q.connection_id, q.id) r
  where p.connection_id = r.connection_id and p.id = r.id
    and (p.first_review_on, p.first_approval_on) is distinct from (r.first_review, r.first_approval)
$$;

-- Participants written or removed: their pull requests' milestones. (A transition table serves one
-- event per trigger, hence three triggers; each names its rows `changed`.)
create function bitbucket_pr_participants_changed() returns trigger language plpgsql as $$
declare cs uuid[]; ids text[];
begin
  select array_agg(connection_id), array_agg(pull_request_id) into cs, ids from changed;
  if ids is not null then perform bitbucket_refresh_review_milestones(cs, ids); end if;
  return null;
end $$;
create trigger bitbucket_pr_participants_inserted after insert on bitbucket_pr_participants
  referencing new table as changed for each statement execute function bitbucket_pr_participants_changed();
create trigger bitbucket_pr_participants_deleted after delete on bitbucket_pr_participants
  referencing old table as changed for each statement execute function bitbucket_pr_participants_changed();
create trigger bitbucket_pr_participants_updated after update on bitbucket_pr_participants
  referencing new table as changed for each statement execute function bitbucket_pr_participants_changed();

-- What is stored already.
select bitbucket_refresh_review_milestones(array_agg(connection_id), array_agg(id)) from bitbucket_pull_requests;

-- A pull request updated (merged, reopened: its bounds moved). The milestones' own update fires
-- this again one level down, where there is nothing left to do.
create function bitbucket_pull_requests_changed() returns trigger language plpgsql as $$
declare cs uuid[]; ids text[];
begin
  if pg_trigger_depth() > 1 then return null; end if;
  select array_agg(connection_id), array_agg(id) into cs, ids from changed;
  if ids is not null then perform bitbucket_refresh_review_milestones(cs, ids); end if;
  return null;
end $$;
create trigger bitbucket_pull_requests_updated after update on bitbucket_pull_requests
  referencing new table as changed for each statement execute function bitbucket_pull_requests_changed();

-- Participations in a range (review load), answered from the index alone.
drop index bitbucket_pr_participants_time;
create index bitbucket_pr_participants_time on bitbucket_pr_participants (connection_id, participated_on)
  include (user_id, approved, is_author, pull_request_id);
-- Pull requests opened / merged in a range, with what delivery reads of them, from the index alone
-- (the repository is checked against the deleted ones).
drop index bitbucket_pull_requests_created;
create index bitbucket_pull_requests_created on bitbucket_pull_requests (connection_id, created_on) include (repository_id);
drop index bitbucket_pull_requests_merged;
create index bitbucket_pull_requests_merged on bitbucket_pull_requests (connection_id, updated_on)
  include (repository_id, created_on, first_review_on, first_approval_on) where state = 'MERGED';

-- CI and flakiness read Bitrise builds in a range: everything they read of a build is in the index
-- (an index-only scan never touches the builds' wide `raw`).
drop index bitrise_builds_time;
create index bitrise_builds_time on bitrise_builds (connection_id, triggered_at)
  include (app_id, status, triggered_workflow, branch, commit_hash, credit_cost, started_on_worker_at, finished_at, id);

-- Seats: each member's latest commit / pull request / participation, skipping deleted repositories,
-- answered from the index alone.
drop index bitbucket_commits_author;
create index bitbucket_commits_author on bitbucket_commits (connection_id, author_id, committed_at) include (repository_id);
drop index bitbucket_pull_requests_author;
create index bitbucket_pull_requests_author on bitbucket_pull_requests (connection_id, author_id, created_on) include (repository_id);
drop index bitbucket_pr_participants_user;
create index bitbucket_pr_participants_user on bitbucket_pr_participants (connection_id, user_id, participated_on)
  include (pull_request_id);

-- CI and flakiness read Bitbucket pipelines in a range. A pipeline's workflow (its target's selector
-- pattern, else the selector type, else the branch; src/providers/bitbucket/insights.ts) lives in
-- `raw`, so it is kept beside it as a generated column, and everything the figures read is in the
-- index.
alter table bitbucket_pipelines add column workflow text not null
  generated always as (coalesce(raw -> 'target' -> 'selector' ->> 'pattern', raw -> 'target' -> 'selector' ->> 'type', branch, '')) stored;
drop index bitbucket_pipelines_time;
create index bitbucket_pipelines_time on bitbucket_pipelines (connection_id, created_on)
  include (repository_id, workflow, state, result, branch, commit_hash, completed_on, build_seconds_used, build_number, id);
