import { randomUUID } from 'node:crypto';
import type { Keyring } from '../crypto/keyring';
import type { Sql, TransactionSql } from '../db/sql';

/**
 * Sealed storage for provider credentials and OAuth consumer secrets. Plaintext exists only in
 * memory of the process using it; the database holds AES-256-GCM ciphertext bound (as associated
 * data) to its connection and row.
 */

/** A token pasted by the customer (`token` providers). */
export interface TokenSecret {
  token: string;
}
/** An OAuth 2.0 grant (`oauth2` providers); the refresh token rotates on every refresh. */
export interface OAuthSecret {
  accessToken: string;
  refreshToken: string;
}
export type CredentialSecret = TokenSecret | OAuthSecret;

/** The token requests are sent with, whichever kind of secret holds it. */
export const accessTokenOf = (secret: CredentialSecret): string => ('token' in secret ? secret.token : secret.accessToken);

export interface OpenCredential<S extends CredentialSecret = CredentialSecret> {
  id: string;
  connectionId: string;
  /** The provider manifest's `credentialKind`, bound into the ciphertext's associated data. */
  kind: string;
  version: number;
  accessExpiresAt: Date | null;
  /**
   * When the stored secret last changed (stored, activated, refreshed or re-sealed). A token is at
   * least this old, so `accessExpiresAt - storedAt` never overstates how long it lives.
   */
  storedAt: Date;
  /** Set while a refresh is in doubt (begun, its new pair not saved yet): see `markRefreshStarted`. */
  refreshStartedAt: Date | null;
  secret: S;
}

interface CredentialRow {
  id: string;
  connectionId: string;
  kind: string;
  state: 'pending' | 'active' | 'retired';
  keyId: string;
  ciphertext: Buffer;
  version: number;
  accessExpiresAt: Date | null;
  refreshStartedAt: Date | null;
  updatedAt: Date;
}

const credentialAad = (connectionId: string, id: string, kind: string) => `credential:${connectionId}:${id}:${kind}`;
const clientAad = (connectionId: string) => `oauth-client:${connectionId}`;

/** The advisory-lock namespace (first key) of refresh leases; the second key is hashtext(connection id). */
const REFRESH_LOCK_CLASS = 731_429_602;

/**
 * `openLeaseSession` opens the one-connection database session a refresh lease is held on (see
 * `withRefreshLease`); the worker passes `() => createSql(url, { max: 1 })`. Without it a connection
 * is reserved from `sql`, which suits tools and tests (the driver does not survive a reserved
 * connection being cut under it).
 */
export function createVault(sql: Sql, keyring: Keyring, openLeaseSession?: () => Sql) {
  function open<S extends CredentialSecret>(row: CredentialRow): OpenCredential<S> {
    const plaintext = keyring.open({ keyId: row.keyId, blob: row.ciphertext }, credentialAad(row.connectionId, row.id, row.kind));
    return {
      id: row.id,
      connectionId: row.connectionId,
      kind: row.kind,
      version: row.version,
      accessExpiresAt: row.accessExpiresAt,
      storedAt: row.updatedAt,
      refreshStartedAt: row.refreshStartedAt ?? null,
      secret: JSON.parse(plaintext) as S,
    };
  }

  return {
    /** Stores a credential the workflow has not verified yet; returns the reference passed to it. */
    async storePending(
      connectionId: string,
      kind: string,
      secret: CredentialSecret,
      accessExpiresAt: string | null = null,
    ): Promise<string> {
      const id = randomUUID();
      const sealed = keyring.seal(JSON.stringify(secret), credentialAad(connectionId, id, kind));
      await sql`
        insert into credentials (id, connection_id, kind, state, key_id, ciphertext, access_expires_at)
        values (${id}, ${connectionId}, ${kind}, 'pending', ${sealed.keyId}, ${sealed.blob}, ${accessExpiresAt})`;
      return id;
    },

    async openPending(connectionId: string, id: string): Promise<OpenCredential | undefined> {
      const [row] = await sql<CredentialRow[]>`
        select * from credentials where id = ${id} and connection_id = ${connectionId} and state = 'pending'`;
      return row && open(row);
    },

    /** Makes a verified credential the one in use and wipes the one it replaces, atomically. */
    async activate(connectionId: string, id: string): Promise<boolean> {
      return sql.begin(async (tx) => {
        const [row] = await tx`
          select id from credentials where id = ${id} and connection_id = ${connectionId} and state in ('pending', 'active')
          for update`;
        if (!row) return false;
        await retire(tx, sql`connection_id = ${connectionId} and state = 'active' and id <> ${id}`);
        await tx`update credentials set state = 'active', updated_at = now() where id = ${id}`;
        return true;
      });
    },

    /**
     * Wipes credentials left `pending` for longer than `ttlSeconds`: ones no workflow adopted,
     * because the API stopped waiting for the verification (it never discards then, since the
     * workflow may still apply it) or the process died between storing and asking. Ciphertext
     * nulled, row retired. Pass a connection id to sweep only that connection. Returns how many.
     */
    async wipeStalePending(ttlSeconds: number, connectionId?: string): Promise<number> {
      const wiped = await sql`
        update credentials set state = 'retired', key_id = null, ciphertext = null, updated_at = now()
        where state = 'pending' and created_at < now() - make_interval(secs => ${ttlSeconds})
          ${connectionId ? sql`and connection_id = ${connectionId}` : sql``}`;
      return wiped.count;
    },

    async discard(connectionId: string, id: string): Promise<void> {
      await retire(sql, sql`id = ${id} and connection_id = ${connectionId} and state = 'pending'`);
    },

    async openActive<S extends CredentialSecret = CredentialSecret>(connectionId: string): Promise<OpenCredential<S> | undefined> {
      const [row] = await sql<CredentialRow[]>`
        select * from credentials where connection_id = ${connectionId} and state = 'active'`;
      if (!row) return undefined;
      const credential = open<S>(row);
      if (keyring.isStale({ keyId: row.keyId, blob: row.ciphertext })) {
        // Key rotation: whatever is read under an old key is re-sealed under the current one, so
        // the old key can be dropped once every connection has synced once. The version guard
        // leaves a concurrent refresh's newer ciphertext alone.
        const sealed = keyring.seal(JSON.stringify(credential.secret), credentialAad(connectionId, row.id, row.kind));
        await sql`update credentials set key_id = ${sealed.keyId}, ciphertext = ${sealed.blob}, updated_at = now()
                  where id = ${row.id} and version = ${row.version} and key_id = ${row.keyId}`;
      }
      return credential;
    },

    /**
     * Runs `fn` holding the connection's refresh lease: a session-level Postgres advisory lock on a
     * database session of its own (`openLeaseSession`: a one-connection client opened for this
     * refresh and closed after it; refreshes are rare, every couple of hours per connection). It is
     * what serializes refreshes of rotating OAuth tokens across activities and workers, and it
     * survives no crash: when the holder dies, or its session is cut, Postgres releases the lock
     * with the session. No transaction is held across the provider call, and nothing `fn` saves
     * goes through the lease's session. Gives up after `waitMs` (a retryable error).
     */
    async withRefreshLease<T>(connectionId: string, fn: () => Promise<T>, waitMs = 60_000): Promise<T> {
      const deadline = Date.now() + waitMs;
      const tryLock = async (session: Sql) =>
        (await session<{ ok: boolean }[]>`select pg_try_advisory_lock(${REFRESH_LOCK_CLASS}, hashtext(${connectionId})) as ok`)[0]?.ok ===
        true;
      const wait = async (delay: number) => {
        if (Date.now() > deadline) throw new Error(`Timed out waiting for the refresh lease of connection ${connectionId}`);
        await new Promise((r) => setTimeout(r, delay));
      };
      if (openLeaseSession) {
        const session = openLeaseSession();
        try {
          for (let delay = 25; ; delay = Math.min(delay * 2, 500)) {
            if (await tryLock(session)) return await fn();
            await wait(delay);
          }
        } finally {
          // Closing the session releases the lock (and a session that died took it with it).
          await session.end({ timeout: 2 }).catch(() => undefined);
        }
      }
      // Without a session factory (tools, tests): a connection reserved from the pool, and given
      // back between attempts, so waiters never hold the connections the holder's queries need.
      for (let delay = 25; ; delay = Math.min(delay * 2, 500)) {
        const reserved = await sql.reserve();
        let held = false;
        try {
          held = await tryLock(reserved);
          if (held) return await fn();
        } finally {
          if (held) await reserved`select pg_advisory_unlock(${REFRESH_LOCK_CLASS}, hashtext(${connectionId}))`.catch(() => undefined);
          reserved.release();
        }
        await wait(delay);
      }
    },

    /**
     * Records, before the provider is asked, that a refresh of this credential version is under way.
     * Keeps the earliest start: the provider's grace window runs from the first rotation. Returns
     * when the refresh began, or undefined when the credential moved on (nothing to refresh).
     */
    async markRefreshStarted(credentialId: string, version: number): Promise<Date | undefined> {
      const [row] = await sql<{ refreshStartedAt: Date }[]>`
        update credentials set refresh_started_at = coalesce(refresh_started_at, now())
        where id = ${credentialId} and version = ${version} and state = 'active' returning refresh_started_at`;
      return row?.refreshStartedAt;
    },

    /** Connections whose active credential has had a refresh in doubt for longer than `olderThanMs`. */
    async refreshesInDoubt(olderThanMs: number): Promise<{ connectionId: string; provider: string }[]> {
      return sql<{ connectionId: string; provider: string }[]>`
        select k.connection_id, c.provider from credentials k join connections c on c.id = k.connection_id
        where k.state = 'active' and k.refresh_started_at < now() - make_interval(secs => ${olderThanMs / 1000})`;
    },

    /** A refresh that was definitely refused (or whose doubt expired) is no longer in doubt. */
    async clearRefreshDoubt(credentialId: string, version: number): Promise<void> {
      await sql`update credentials set refresh_started_at = null where id = ${credentialId} and version = ${version}`;
    },

    /**
     * Saves a refreshed pair at once, in one autocommitted statement on whatever pool connection is
     * free (never the lease's), guarded by the version it was refreshed from, and clears the doubt.
     * Retried in place with backoff (`attempts` times): the provider has already rotated the token,
     * so giving up here is what would lose it. Returns the new version, or undefined when the
     * credential had moved on meanwhile (its newer pair is kept).
     */
    async saveRefreshed(
      current: OpenCredential<OAuthSecret>,
      secret: OAuthSecret,
      accessExpiresAt: string,
      attempts = 8,
    ): Promise<number | undefined> {
      const sealed = keyring.seal(JSON.stringify(secret), credentialAad(current.connectionId, current.id, current.kind));
      for (let attempt = 1; ; attempt++) {
        try {
          const [updated] = await sql<{ version: number }[]>`
            update credentials set key_id = ${sealed.keyId}, ciphertext = ${sealed.blob},
              access_expires_at = ${accessExpiresAt}, version = version + 1, refresh_started_at = null, updated_at = now()
            where id = ${current.id} and version = ${current.version} and state = 'active' returning version`;
          return updated?.version;
        } catch (err) {
          if (attempt >= attempts) throw err;
          await new Promise((r) => setTimeout(r, Math.min(200 * 2 ** (attempt - 1), 5_000)));
        }
      }
    },

    /** Disconnect: every credential and the consumer secret are wiped, not just flagged. */
    async destroyAll(connectionId: string): Promise<void> {
      await sql.begin(async (tx) => {
        await retire(tx, sql`connection_id = ${connectionId} and state <> 'retired'`);
        await tx`update oauth_clients set secret_key_id = null, secret_ciphertext = null where connection_id = ${connectionId}`;
      });
    },

    async storeOAuthClient(connectionId: string, clientId: string, clientSecret: string, tx: Sql | TransactionSql = sql): Promise<void> {
      const sealed = keyring.seal(clientSecret, clientAad(connectionId));
      await tx`
        insert into oauth_clients (connection_id, client_id, secret_key_id, secret_ciphertext)
        values (${connectionId}, ${clientId}, ${sealed.keyId}, ${sealed.blob})`;
    },

    /** The key (not the secret) of the connection's own consumer, if it brought one. */
    async oauthClientId(connectionId: string): Promise<string | undefined> {
      const [row] = await sql<{ clientId: string }[]>`select client_id from oauth_clients where connection_id = ${connectionId}`;
      return row?.clientId;
    },

    /** The connection's own consumer, if it brought one; `undefined` means use the platform's. */
    async openOAuthClient(connectionId: string): Promise<{ clientId: string; clientSecret: string | null } | undefined> {
      const [row] = await sql<{ clientId: string; secretKeyId: string | null; secretCiphertext: Buffer | null }[]>`
        select client_id, secret_key_id, secret_ciphertext from oauth_clients where connection_id = ${connectionId}`;
      if (!row) return undefined;
      if (!row.secretKeyId || !row.secretCiphertext) return { clientId: row.clientId, clientSecret: null };
      const clientSecret = keyring.open({ keyId: row.secretKeyId, blob: row.secretCiphertext }, clientAad(connectionId));
      if (keyring.isStale({ keyId: row.secretKeyId, blob: row.secretCiphertext })) {
        const sealed = keyring.seal(clientSecret, clientAad(connectionId));
        await sql`update oauth_clients set secret_key_id = ${sealed.keyId}, secret_ciphertext = ${sealed.blob}
                  where connection_id = ${connectionId} and secret_key_id = ${row.secretKeyId}`;
      }
      return { clientId: row.clientId, clientSecret };
    },
  };
}

async function retire(tx: Sql | TransactionSql, where: ReturnType<Sql>): Promise<void> {
  await tx`update credentials set state = 'retired', key_id = null, ciphertext = null, updated_at = now() where ${where}`;
}

export type Vault = ReturnType<typeof createVault>;
