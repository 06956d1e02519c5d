import { randomUUID } from 'node:crypto';
import type { Keyring } from '../crypto/keyring';
import type { Sql, TransactionSql } from '../db/sql';

/**
 * Sealed storage for provider credentials and OAuth consumer secrets. Plaintext exists only in
 * memory of the process using it; the database holds AES-256-GCM ciphertext bound (as associated
 * data) to its connection and row.
 */

export type CredentialKind = 'bitrise_token' | 'bitbucket_oauth';

export interface BitriseSecret {
  token: string;
}
export interface BitbucketSecret {
  accessToken: string;
  refreshToken: string;
}
export type CredentialSecret<K extends CredentialKind> = K extends 'bitrise_token' ? BitriseSecret : BitbucketSecret;

export interface OpenCredential<K extends CredentialKind = CredentialKind> {
  id: string;
  connectionId: string;
  kind: K;
  version: number;
  accessExpiresAt: Date | null;
  secret: CredentialSecret<K>;
}

interface CredentialRow {
  id: string;
  connectionId: string;
  kind: CredentialKind;
  state: 'pending' | 'active' | 'retired';
  keyId: string;
  ciphertext: Buffer;
  version: number;
  accessExpiresAt: Date | null;
}

const credentialAad = (connectionId: string, id: string, kind: CredentialKind) => `credential:${connectionId}:${id}:${kind}`;
const clientAad = (connectionId: string) => `oauth-client:${connectionId}`;

export function createVault(sql: Sql, keyring: Keyring) {
  function open<K extends CredentialKind>(row: CredentialRow): OpenCredential<K> {
    const plaintext = keyring.open({ keyId: row.keyId, blob: row.ciphertext }, credentialAad(row.connectionId, row.id, row.kind));
    return {
      id: row.id,
      connectionId: row.connectionId,
      kind: row.kind as K,
      version: row.version,
      accessExpiresAt: row.accessExpiresAt,
      secret: JSON.parse(plaintext) as CredentialSecret<K>,
    };
  }

  return {
    /** Stores a credential the workflow has not verified yet; returns the reference passed to it. */
    async storePending<K extends CredentialKind>(
      connectionId: string,
      kind: K,
      secret: CredentialSecret<K>,
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

    async discard(connectionId: string, id: string): Promise<void> {
      await retire(sql, sql`id = ${id} and connection_id = ${connectionId} and state = 'pending'`);
    },

    async openActive<K extends CredentialKind>(connectionId: string): Promise<OpenCredential<K> | undefined> {
      const [row] = await sql<CredentialRow[]>`
        select * from credentials where connection_id = ${connectionId} and state = 'active'`;
      if (!row) return undefined;
      const credential = open<K>(row);
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
     * Runs `fn` holding a row lock on the active credential. This is what serializes Bitbucket
     * refreshes across activities and workers: a second refresher waits here, then sees the
     * version moved on and uses the new token instead of burning the rotated refresh token.
     */
    async withLockedActive<K extends CredentialKind, T>(
      connectionId: string,
      fn: (current: OpenCredential<K> | undefined, save: (secret: CredentialSecret<K>, accessExpiresAt: string) => Promise<number>) => Promise<T>,
    ): Promise<T> {
      return sql.begin(async (tx) => {
        const [row] = await tx<CredentialRow[]>`
          select * from credentials where connection_id = ${connectionId} and state = 'active' for update`;
        const current = row && open<K>(row);
        const save = async (secret: CredentialSecret<K>, accessExpiresAt: string): Promise<number> => {
          const sealed = keyring.seal(JSON.stringify(secret), credentialAad(connectionId, row!.id, row!.kind));
          const [updated] = await tx<{ version: number }[]>`
            update credentials set key_id = ${sealed.keyId}, ciphertext = ${sealed.blob},
              access_expires_at = ${accessExpiresAt}, version = version + 1, updated_at = now()
            where id = ${row!.id} returning version`;
          return updated!.version;
        };
        return fn(current, save);
      }) as Promise<T>;
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
