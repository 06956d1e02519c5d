import { hkdfSync, randomBytes } from 'node:crypto';
import { constantTimeEqual, hmac, sha256 } from '../crypto/tokens';
import type { Sql } from '../db/sql';
import { ApiError } from './errors';

/**
 * OAuth `state`: a random nonce plus our HMAC of it. The signature rejects forgeries without a
 * database read; the nonce's digest in `oauth_states` binds it to one connection, expires it, and
 * makes it single-use (consumed with one conditional UPDATE, so two racing callbacks can't both win).
 */
export function stateSigningKey(encryptionKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', encryptionKey, Buffer.alloc(0), 'conduit oauth state v1', 32));
}

export async function issueState(sql: Sql, signingKey: Buffer, connectionId: string, ttlSeconds: number): Promise<string> {
  const nonce = randomBytes(24).toString('base64url');
  await sql`
    insert into oauth_states (nonce_hash, connection_id, expires_at)
    values (${sha256(nonce)}, ${connectionId}, now() + make_interval(secs => ${ttlSeconds}))`;
  return `${nonce}.${hmac(signingKey, nonce)}`;
}

const invalidState = (code: string, message: string) => new ApiError(400, code, message);

/** Returns the connection the state was issued for, or throws a 400 that changes nothing. */
export async function consumeState(sql: Sql, signingKey: Buffer, state: string | undefined): Promise<string> {
  const [nonce, signature, extra] = (state ?? '').split('.');
  if (!nonce || !signature || extra !== undefined || !constantTimeEqual(signature, hmac(signingKey, nonce))) {
    throw invalidState('invalid_state', 'The OAuth state is missing or was not issued by us.');
  }
  const digest = sha256(nonce);
  const [consumed] = await sql<{ connectionId: string }[]>`
    update oauth_states set used_at = now()
    where nonce_hash = ${digest} and used_at is null and expires_at > now()
    returning connection_id`;
  if (consumed) return consumed.connectionId;

  const [row] = await sql<{ usedAt: Date | null }[]>`select used_at from oauth_states where nonce_hash = ${digest}`;
  if (!row) throw invalidState('invalid_state', 'The OAuth state is unknown.');
  if (row.usedAt) throw invalidState('state_already_used', 'This authorization link was already used; start again from the app.');
  throw invalidState('state_expired', 'This authorization link has expired; start again from the app.');
}
