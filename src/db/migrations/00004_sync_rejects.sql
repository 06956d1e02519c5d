-- Provider records that fail their schema are quarantined here instead of failing the page they
-- came on: the good records of the page commit, the run counts the rejects, and an operator (or a
-- later fix to the schema plus a backfill) can see exactly what was refused and why. One row per
-- record, refreshed each time a run meets it again.
create table sync_rejects (
  connection_id uuid not null references connections (id),
  resource text not null,
  -- The record's own id when it has a usable one, else a digest of its payload.
  record_key text not null,
  record_id text,
  run_id uuid not null,
  reason text not null,
  raw jsonb not null,
  first_seen_at timestamptz not null default now(),
  last_seen_at timestamptz not null default now(),
  seen_count int not null default 1,
  primary key (connection_id, resource, record_key)
);

alter table sync_runs add column rejected int not null default 0;
