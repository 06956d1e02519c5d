-- Events (the outbox behind GET /v1/events/stream and webhooks), webhook endpoints, their deliveries
-- and each delivery's attempts. See README "Webhooks and events".

-- Each connection numbers its events; the counter is bumped under the row lock of the transaction
-- that changes the connection, so a connection's events are numbered in the order of its changes.
alter table connections add column event_sequence bigint not null default 0;

-- Written in the same transaction as the change that caused it. `tx_id` (the writing transaction's
-- id) and `position` give the stream its gap-free order: a reader only takes rows whose transaction
-- is older than every transaction still running (pg_snapshot_xmin), so a row can never appear
-- behind one already read (src/db/events.ts).
create table events (
  id uuid primary key,
  tenant_id uuid not null references tenants (id),
  connection_id uuid not null references connections (id),
  sequence bigint not null,
  type text not null,
  data jsonb not null,
  created_at timestamptz not null default now(),
  tx_id xid8 not null default pg_current_xact_id(),
  position bigint generated always as identity,
  -- Set once its webhook deliveries exist; the sweeper dispatches events a crash left without.
  dispatched_at timestamptz,
  unique (connection_id, sequence)
);
create index events_stream on events (tx_id, position);
create index events_tenant_stream on events (tenant_id, tx_id, position);
create index events_undispatched on events (created_at) where dispatched_at is null;
create index events_created on events (created_at);

-- A tenant's webhook endpoint. The signing secret must be recoverable to sign, so it is sealed
-- with the keyring (AES-256-GCM, bound to the endpoint's id), never stored in plaintext. After a
-- rotation the previous secret keeps signing until `previous_secret_expires_at`.
create table webhook_endpoints (
  id uuid primary key,
  tenant_id uuid not null references tenants (id),
  url text not null,
  event_types text[] not null,
  description text,
  enabled boolean not null default true,
  -- Why it was disabled: 'gone' (the receiver answered 410) or 'disabled' (PATCH enabled=false).
  disabled_reason text check (disabled_reason in ('gone', 'disabled')),
  secret_key_id text not null,
  secret_ciphertext bytea not null,
  previous_secret_key_id text,
  previous_secret_ciphertext bytea,
  previous_secret_expires_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check ((previous_secret_ciphertext is null) = (previous_secret_expires_at is null))
);
create index webhook_endpoints_tenant_page on webhook_endpoints (tenant_id, created_at desc, id desc);

-- One event for one endpoint, delivered by the Temporal workflow `webhook-<event id>-<endpoint id>`.
create table webhook_deliveries (
  id uuid primary key,
  endpoint_id uuid not null references webhook_endpoints (id) on delete cascade,
  event_id uuid not null references events (id) on delete cascade,
  status text not null default 'pending' check (status in ('pending', 'delivered', 'failed', 'cancelled')),
  attempts int not null default 0,
  created_at timestamptz not null default now(),
  -- When its workflow was last (re)started; the sweeper starts the ones a crash left without.
  workflow_started_at timestamptz,
  last_attempt_at timestamptz,
  finished_at timestamptz,
  unique (event_id, endpoint_id)
);
create index webhook_deliveries_endpoint_page on webhook_deliveries (endpoint_id, created_at desc, id desc);
create index webhook_deliveries_pending on webhook_deliveries (created_at) where status = 'pending';

-- Every HTTP attempt of a delivery (the attempt number is the delivery activity's).
create table webhook_attempts (
  delivery_id uuid not null references webhook_deliveries (id) on delete cascade,
  attempt int not null,
  started_at timestamptz not null,
  duration_ms int not null,
  response_status int,
  error text,
  outcome text not null check (outcome in ('delivered', 'failed', 'gone')),
  primary key (delivery_id, attempt)
);
