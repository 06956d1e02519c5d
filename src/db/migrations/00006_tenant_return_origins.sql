-- Origins a tenant's connections may send customers back to after OAuth (`returnUrl`); a
-- returnUrl whose origin is not listed is refused. Empty: no returnUrl is accepted.
alter table tenants add column allowed_return_origins text[] not null default '{}';
