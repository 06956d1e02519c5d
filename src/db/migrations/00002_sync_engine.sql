-- Where each resource's incremental sync stands. `scope` is '' for connection-wide resources and
-- the parent's id (a repository, an app) otherwise. A cursor is written in the same transaction as
-- the page of rows it follows, so a crash between pages neither loses nor duplicates anything.
create table sync_cursors (
  connection_id uuid not null references connections (id),
  resource text not null,
  scope text not null default '',
  value jsonb not null,
  updated_at timestamptz not null default now(),
  primary key (connection_id, resource, scope)
);

-- What a connection's workflow is doing right now (idle, running, rate_limited until …).
alter table connections add column sync_state jsonb not null default '{"state":"idle"}';

alter table sync_runs add column last_progress_at timestamptz;

-- Synced records: one table per resource, keyed by (connection_id, id) where `id` is the
-- provider's id (composite ids are joined with '/'). Typed columns hold what insights query; `raw`
-- keeps the provider's JSON. `updated_at` moves only when `raw` changes, so consumers can pull
-- changes with ?updatedSince=.

create table bitbucket_workspaces (
  connection_id uuid not null references connections (id),
  id text not null,
  slug text not null,
  name text,
  is_private boolean,
  is_admin boolean,
  raw jsonb not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (connection_id, id)
);

create table bitbucket_members (
  connection_id uuid not null references connections (id),
  id text not null, -- <workspace uuid>/<user uuid>
  workspace_id text not null,
  user_id text not null,
  display_name text,
  account_id text,
  nickname text,
  -- False once a member no longer appears in the workspace (seat freed); kept for history.
  active boolean not null default true,
  last_seen_at timestamptz not null default now(),
  raw jsonb not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (connection_id, id)
);

create table bitbucket_repositories (
  connection_id uuid not null references connections (id),
  id text not null,
  workspace_id text not null,
  slug text not null,
  full_name text,
  name text,
  is_private boolean,
  language text,
  project_key text,
  mainbranch text,
  created_on timestamptz,
  updated_on timestamptz,
  -- A repository we can no longer read is marked, not deleted; it comes back when access does.
  accessible boolean not null default true,
  inaccessible_since timestamptz,
  raw jsonb not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (connection_id, id)
);

create table bitbucket_pull_requests (
  connection_id uuid not null references connections (id),
  id text not null, -- <repository uuid>/<pull request id>
  repository_id text not null,
  number int not null,
  title text,
  state text not null,
  author_id text,
  source_branch text,
  destination_branch text,
  merge_commit text,
  comment_count int,
  task_count int,
  draft boolean,
  created_on timestamptz,
  updated_on timestamptz,
  raw jsonb not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (connection_id, id)
);

create table bitbucket_commits (
  connection_id uuid not null references connections (id),
  id text not null, -- <repository uuid>/<hash>
  repository_id text not null,
  hash text not null,
  committed_at timestamptz,
  author_raw text,
  author_id text,
  message text,
  parent_hashes text[] not null default '{}',
  raw jsonb not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (connection_id, id)
);

create table bitbucket_pipelines (
  connection_id uuid not null references connections (id),
  id text not null, -- pipeline uuid
  repository_id text not null,
  build_number int,
  state text,
  result text,
  trigger_type text,
  branch text,
  commit_hash text,
  creator_id text,
  created_on timestamptz,
  completed_on timestamptz,
  build_seconds_used int,
  raw jsonb not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (connection_id, id)
);

create table bitrise_organizations (
  connection_id uuid not null references connections (id),
  id text not null, -- slug
  name text,
  concurrency_count int,
  raw jsonb not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (connection_id, id)
);

create table bitrise_apps (
  connection_id uuid not null references connections (id),
  id text not null, -- slug
  title text,
  project_type text,
  repo_provider text,
  repo_owner text,
  repo_slug text,
  repo_url text,
  is_public boolean,
  is_disabled boolean,
  owner_slug text,
  accessible boolean not null default true,
  inaccessible_since timestamptz,
  raw jsonb not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (connection_id, id)
);

create table bitrise_builds (
  connection_id uuid not null references connections (id),
  id text not null, -- slug
  app_id text not null,
  build_number int,
  status int not null, -- 0 not finished, 1 success, 2 failed, 3 aborted with failure, 4 aborted with success
  status_text text,
  triggered_workflow text,
  branch text,
  commit_hash text,
  machine_type_id text,
  stack_identifier text,
  credit_cost numeric,
  pipeline_workflow_id text,
  pull_request_id int,
  is_on_hold boolean,
  triggered_at timestamptz,
  started_on_worker_at timestamptz,
  environment_prepare_finished_at timestamptz,
  finished_at timestamptz,
  raw jsonb not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (connection_id, id)
);

create table bitrise_pipelines (
  connection_id uuid not null references connections (id),
  id text not null,
  app_id text not null,
  name text,
  status text,
  triggered_at timestamptz,
  started_at timestamptz,
  finished_at timestamptz,
  credit_cost numeric,
  raw jsonb not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (connection_id, id)
);

create index bitbucket_workspaces_changes on bitbucket_workspaces (connection_id, updated_at, id);
create index bitbucket_members_changes on bitbucket_members (connection_id, updated_at, id);
create index bitbucket_repositories_changes on bitbucket_repositories (connection_id, updated_at, id);
create index bitbucket_pull_requests_changes on bitbucket_pull_requests (connection_id, updated_at, id);
create index bitbucket_commits_changes on bitbucket_commits (connection_id, updated_at, id);
create index bitbucket_pipelines_changes on bitbucket_pipelines (connection_id, updated_at, id);
create index bitrise_organizations_changes on bitrise_organizations (connection_id, updated_at, id);
create index bitrise_apps_changes on bitrise_apps (connection_id, updated_at, id);
create index bitrise_builds_changes on bitrise_builds (connection_id, updated_at, id);
create index bitrise_pipelines_changes on bitrise_pipelines (connection_id, updated_at, id);
-- Insights read builds and pipelines per app/repository over time.
create index bitrise_builds_app_time on bitrise_builds (connection_id, app_id, triggered_at);
create index bitbucket_pipelines_repo_time on bitbucket_pipelines (connection_id, repository_id, created_on);
create index bitbucket_pull_requests_repo_time on bitbucket_pull_requests (connection_id, repository_id, updated_on);
