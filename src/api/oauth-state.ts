import { hkdfSync, randomBytes } from 'node:crypto';
import { constantTimeEqual, hmac, sha256 } from '../crypto/tokens';
import type { Sql } from '../db/sql';
import { ApiError } from './errors';

/**
 * OAuth `state`: a random nonce plus our HMAC of it. The signature rejects forgeries without a
 * database read; the nonce's digest in `oauth_states` binds it to one connection, expires it, and
 * makes it single-use (consumed with one conditional UPDATE, so two racing callbacks can't both win).
 *
 * The HMAC keys are derived from ENCRYPTION_KEY. Like the keyring, the first key signs and every
 * key verifies, so a state (or browser cookie) issued just before a key rotation still works.
 */
export interface StateKeys {
  /** Derived from the first ENCRYPTION_KEY. */
  sign: Buffer;
  /** Derived from every ENCRYPTION_KEY, the signing one first. */
  verify: Buffer[];
}

const derive = (encryptionKey: Buffer, info: string) => Buffer.from(hkdfSync('sha256', encryptionKey, Buffer.alloc(0), info, 32));

export function stateSigningKey(encryptionKey: Buffer): Buffer {
  return derive(encryptionKey, 'conduit oauth state v1');
}

export function stateKeys(encryptionKeys: Buffer[]): StateKeys {
  const verify = encryptionKeys.map(stateSigningKey);
  if (!verify[0]) throw new Error('at least one encryption key is required');
  return { sign: verify[0], verify };
}

const verifies = (keys: StateKeys, value: string, signature: string) =>
  // Every key is tried (no early exit), so timing tells nothing about which one matched.
  keys.verify.map((k) => constantTimeEqual(signature, hmac(k, value))).reduce((a, b) => a || b, false);

/** A new state for a connection; `inviteId` when an invite's page started the flow (its callback marks the invite used). */
export async function issueState(sql: Sql, keys: StateKeys, connectionId: string, ttlSeconds: number, inviteId?: string): Promise<string> {
  const nonce = randomBytes(24).toString('base64url');
  await sql`
    insert into oauth_states (nonce_hash, connection_id, expires_at, invite_id)
    values (${sha256(nonce)}, ${connectionId}, now() + make_interval(secs => ${ttlSeconds}), ${inviteId ?? null})`;
  return `${nonce}.${hmac(keys.sign, nonce)}`;
}

const invalidState = (code: string, message: string) => new ApiError(400, code, message);

/** The nonce of a state we signed; a 400 `invalid_state` for anything else. */
export function verifyStateSignature(keys: StateKeys, state: string | undefined): string {
  const [nonce, signature, extra] = (state ?? '').split('.');
  if (!nonce || !signature || extra !== undefined || !verifies(keys, nonce, signature)) {
    throw invalidState('invalid_state', 'The OAuth state is missing or was not issued by us.');
  }
  return nonce;
}

async function explainUnusable(sql: Sql, digest: Buffer): Promise<never> {
  const [row] = await sql<{ usedAt: Date | null }[]>`select used_at from oauth_states where nonce_hash = ${digest}`;
  if (!row) throw invalidState('invalid_state', 'The OAuth state is unknown.');
  if (row.usedAt) throw invalidState('state_already_used', 'This authorization link was already used; start again from the app.');
  throw invalidState('state_expired', 'This authorization link has expired; start again from the app.');
}

/** The connection a still usable state was issued for, without using it up (the start page). */
export async function peekState(sql: Sql, keys: StateKeys, state: string | undefined): Promise<{ connectionId: string; expiresAt: Date }> {
  const digest = sha256(verifyStateSignature(keys, state));
  const [row] = await sql<{ connectionId: string; expiresAt: Date }[]>`
    select connection_id, expires_at from oauth_states where nonce_hash = ${digest} and used_at is null and expires_at > now()`;
  return row ?? explainUnusable(sql, digest);
}

/** The connection (and invite, if any) the state was issued for; or throws a 400 that changes nothing. */
export async function consumeState(
  sql: Sql,
  keys: StateKeys,
  state: string | undefined,
): Promise<{ connectionId: string; inviteId: string | null }> {
  const digest = sha256(verifyStateSignature(keys, state));
  const [consumed] = await sql<{ connectionId: string; inviteId: string | null }[]>`
    update oauth_states set used_at = now()
    where nonce_hash = ${digest} and used_at is null and expires_at > now()
    returning connection_id, invite_id`;
  return consumed ?? explainUnusable(sql, digest);
}

/**
 * Browser binding. The start endpoint sets a cookie whose name is derived from the state's nonce
 * (so two flows in one browser don't overwrite each other) and whose value is an HMAC of the whole
 * state under a key of its own: only the browser that went through our start page holds it.
 */
export function browserCookieKeys(encryptionKeys: Buffer[]): StateKeys {
  const verify = encryptionKeys.map((k) => derive(k, 'conduit oauth browser binding v1'));
  return { sign: verify[0]!, verify };
}

export function browserCookieName(nonce: string): string {
  return `conduit_oauth_${sha256(`cookie:${nonce}`).subarray(0, 12).toString('hex')}`;
}

export const browserCookieValue = (keys: StateKeys, state: string) => hmac(keys.sign, `browser:${state}`);

export const browserCookieMatches = (keys: StateKeys, state: string, cookie: string | undefined) =>
  cookie !== undefined && verifies(keys, `browser:${state}`, cookie);

/** Deletes states that can no longer be used. Returns how many went. */
export async function purgeExpiredStates(sql: Sql): Promise<number> {
  const deleted = await sql`delete from oauth_states where expires_at <= now()`;
  return deleted.count;
}
