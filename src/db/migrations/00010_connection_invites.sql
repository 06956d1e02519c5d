-- Links a tenant sends to the provider's admin (the person who can grant access) so that they can
-- connect a connection without an API key. Only the SHA-256 of the link's secret is stored, like API
-- keys and OAuth state nonces. A link is single-use: `claimed_at` marks a use in progress (a token
-- being verified, an OAuth code being exchanged), `used_at` one that gave the connection its
-- credential; a claim older than its lease is taken to have died with its process.
create table connection_invites (
  id uuid primary key,
  tenant_id uuid not null references tenants (id),
  connection_id uuid not null references connections (id),
  secret_hash bytea not null unique,
  expires_at timestamptz not null,
  claimed_at timestamptz,
  used_at timestamptz,
  revoked_at timestamptz,
  created_at timestamptz not null default now()
);
create index connection_invites_connection on connection_invites (connection_id, created_at desc, id desc);

-- An OAuth state issued from an invite's page: the callback marks that invite used.
alter table oauth_states add column invite_id uuid references connection_invites (id);
