-- Tenants authenticate with an API key that is shown once; only its SHA-256 is kept.
create table tenants (
  id uuid primary key,
  name text not null,
  api_key_hash bytea not null unique,
  created_at timestamptz not null default now()
);

-- The row the API reads. The connection workflow is the authority on status; it writes its
-- snapshot here through an activity, tagged with a revision so a late retry never rolls it back.
create table connections (
  id uuid primary key,
  tenant_id uuid not null references tenants (id),
  provider text not null check (provider in ('bitbucket', 'bitrise')),
  name text,
  status text not null check (status in ('awaiting_credentials', 'active', 'needs_reconnect', 'paused', 'disconnected')),
  sync_interval_seconds int not null check (sync_interval_seconds between 60 and 86400),
  return_url text,
  workflow_id text not null unique,
  last_sync_at timestamptz,
  next_sync_at timestamptz,
  last_error jsonb,
  -- Who the credential belongs to at the provider (ids and display names only, never secrets).
  account jsonb,
  state_revision bigint not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index connections_tenant_page on connections (tenant_id, created_at desc, id desc);

-- A connection's own OAuth consumer (Bitbucket), when the customer brings one.
create table oauth_clients (
  connection_id uuid primary key references connections (id),
  client_id text not null,
  secret_key_id text,
  secret_ciphertext bytea,
  created_at timestamptz not null default now()
);

-- Provider credentials, sealed with AES-256-GCM (see src/crypto/keyring.ts). A new credential is
-- 'pending' until the workflow has verified it; at most one is 'active'; a replaced or destroyed
-- one is 'retired' with its ciphertext wiped.
create table credentials (
  id uuid primary key,
  connection_id uuid not null references connections (id),
  kind text not null check (kind in ('bitrise_token', 'bitbucket_oauth')),
  state text not null check (state in ('pending', 'active', 'retired')),
  key_id text,
  ciphertext bytea,
  access_expires_at timestamptz,
  -- Bumped on every refresh, so an activity holding a stale token can tell it was refreshed meanwhile.
  version int not null default 1,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check ((state = 'retired') = (ciphertext is null))
);
create unique index credentials_one_active on credentials (connection_id) where state = 'active';
create index credentials_connection on credentials (connection_id);

-- Single-use OAuth states. Only a digest of the nonce is stored.
create table oauth_states (
  nonce_hash bytea primary key,
  connection_id uuid not null references connections (id),
  expires_at timestamptz not null,
  used_at timestamptz,
  created_at timestamptz not null default now()
);
create index oauth_states_expiry on oauth_states (expires_at);

-- One row per sync run; the id comes from the workflow so a retried activity reuses its row.
create table sync_runs (
  id uuid primary key,
  connection_id uuid not null references connections (id),
  status text not null check (status in ('running', 'succeeded', 'failed', 'stalled')),
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  counts jsonb not null default '{}',
  requests int not null default 0,
  rate_limit_waits int not null default 0,
  retries int not null default 0,
  error jsonb
);
create index sync_runs_connection on sync_runs (connection_id, started_at desc);
