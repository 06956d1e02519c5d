import { randomBytes, randomUUID } from 'node:crypto';
import { sha256 } from '../crypto/tokens';
import { ATTACH_CREDENTIAL_DEADLINE_MS } from '../workflows/messages';
import type { Sql } from './sql';

/**
 * Invites: single-use links a tenant sends to the provider's admin (src/api/routes/invites.ts,
 * invite-pages.ts). The secret is shown once, in the link; only its SHA-256 is stored.
 *
 * Single use is enforced with a claim: using a link first claims it (one conditional UPDATE, so two
 * racing uses cannot both win), then the credential is verified; success marks the link used, a
 * refusal releases the claim so the admin can try again. A claim whose process died is taken over
 * once its lease has passed: longer than the longest verification the API waits for.
 */

export const INVITE_STATUSES = ['pending', 'used', 'revoked', 'expired'] as const;
export type InviteStatus = (typeof INVITE_STATUSES)[number];

export interface Invite {
  id: string;
  tenantId: string;
  connectionId: string;
  status: InviteStatus;
  createdAt: Date;
  expiresAt: Date;
  usedAt: Date | null;
  revokedAt: Date | null;
  /** Set while a use is in progress (and for a while after one died). */
  claimedAt: Date | null;
}

export const CLAIM_LEASE_SECONDS = Math.ceil(ATTACH_CREDENTIAL_DEADLINE_MS / 1000) + 45;

// Used wins over revoked: a link revoked while its use was already in progress, which then
// succeeded, was used.
const COLUMNS = (sql: Sql) => sql`
  id, tenant_id, connection_id, created_at, expires_at, used_at, revoked_at, claimed_at,
  case when used_at is not null then 'used'
       when revoked_at is not null then 'revoked'
       when expires_at <= now() then 'expired'
       else 'pending' end as status`;

/** Creates an invite; the secret is returned once and never stored. */
export async function createInvite(
  sql: Sql,
  input: { tenantId: string; connectionId: string; expiresInSeconds: number },
): Promise<{ invite: Invite; secret: string }> {
  // 256 random bits, URL-safe.
  const secret = randomBytes(32).toString('base64url');
  const [invite] = await sql<Invite[]>`
    insert into connection_invites (id, tenant_id, connection_id, secret_hash, expires_at)
    values (${randomUUID()}, ${input.tenantId}, ${input.connectionId}, ${sha256(secret)},
            now() + make_interval(secs => ${input.expiresInSeconds}))
    returning ${COLUMNS(sql)}`;
  return { invite: invite!, secret };
}

/** A connection's invites, newest first. */
export async function listInvites(sql: Sql, tenantId: string, connectionId: string, limit: number): Promise<Invite[]> {
  return sql<Invite[]>`
    select ${COLUMNS(sql)} from connection_invites
    where tenant_id = ${tenantId} and connection_id = ${connectionId}
    order by created_at desc, id desc
    limit ${limit}`;
}

/**
 * Revokes an invite that has not been used (revoking again changes nothing). Returns whether the
 * tenant's connection has such an invite at all.
 */
export async function revokeInvite(sql: Sql, tenantId: string, connectionId: string, inviteId: string): Promise<boolean> {
  const [found] = await sql<{ id: string }[]>`
    select id from connection_invites where id = ${inviteId} and tenant_id = ${tenantId} and connection_id = ${connectionId}`;
  if (!found) return false;
  await sql`update connection_invites set revoked_at = now() where id = ${inviteId} and used_at is null and revoked_at is null`;
  return true;
}

export async function findInviteBySecret(sql: Sql, secret: string): Promise<Invite | undefined> {
  const [invite] = await sql<Invite[]>`select ${COLUMNS(sql)} from connection_invites where secret_hash = ${sha256(secret)}`;
  return invite;
}

export async function getInvite(sql: Sql, id: string): Promise<Invite | undefined> {
  const [invite] = await sql<Invite[]>`select ${COLUMNS(sql)} from connection_invites where id = ${id}`;
  return invite;
}

/**
 * Claims a pending invite for one use (to the millisecond, so the claim round-trips through a JS Date). Returns the claim (pass it to `markInviteUsed` or
 * `releaseInvite`), or undefined when the invite is used, revoked, expired or being used right now.
 */
export async function claimInvite(sql: Sql, id: string): Promise<Date | undefined> {
  const [claimed] = await sql<{ claimedAt: Date }[]>`
    update connection_invites set claimed_at = date_trunc('milliseconds', clock_timestamp())
    where id = ${id} and used_at is null and revoked_at is null and expires_at > now()
      and (claimed_at is null or claimed_at < now() - make_interval(secs => ${CLAIM_LEASE_SECONDS}))
    returning claimed_at`;
  return claimed?.claimedAt;
}

/** The claimed use gave the connection its credential. */
export async function markInviteUsed(sql: Sql, id: string, claim: Date): Promise<void> {
  await sql`update connection_invites set used_at = now(), claimed_at = null where id = ${id} and claimed_at = ${claim}`;
}

/** The claimed use failed: the link can be used again (unless it was revoked or expired meanwhile). */
export async function releaseInvite(sql: Sql, id: string, claim: Date): Promise<void> {
  await sql`update connection_invites set claimed_at = null where id = ${id} and claimed_at = ${claim}`;
}
