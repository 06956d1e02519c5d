-- A connection is created as 'provisioning' (the row commits first), then its workflow is started;
-- the reconciler finishes what a failed start or a crash left half-made.
alter table connections drop constraint connections_status_check;
alter table connections add constraint connections_status_check
  check (status in ('provisioning', 'awaiting_credentials', 'active', 'needs_reconnect', 'paused', 'disconnected'));
alter table connections alter column status set default 'provisioning';

-- A refresh in doubt: set (before the token request) to when a refresh of this credential began,
-- cleared by the save of the new pair. Still set means the holder died or its save failed after the
-- provider may have rotated the token, so the next refresher retries with the stored refresh token
-- at once, inside the provider's grace window, and never parks on a refusal while it is in doubt.
alter table credentials add column refresh_started_at timestamptz;

-- What the reconciler last did (one row per task queue it owns), for /readyz and operators.
create table reconciler_runs (
  task_queue text primary key,
  finished_at timestamptz not null,
  report jsonb not null
);
