import { Client, Connection } from '@temporalio/client';
import type { Config } from '../config';
import { createVault, type Vault } from '../credentials/vault';
import { Keyring } from '../crypto/keyring';
import { createSql, type Sql } from '../db/sql';
import { createProviders, type Providers } from '../providers/registry';
import { createLogger } from '../logger';
import { temporalConnectionOptions } from '../temporal/connection';
import { ensureSearchAttributes } from '../temporal/register-search-attributes';
import { createWebhookDispatcher, type WebhookDispatcher } from '../webhooks/dispatch';
import { createConnectionService, type ConnectionService } from './connections-service';
import { browserCookieKeys, stateKeys, type StateKeys } from './oauth-state';
import { createTenantCache, type TenantCache } from './tenant-cache';

/** Everything the routes use, built once per process and closed on shutdown. */
export interface ApiDeps {
  config: Config;
  sql: Sql;
  temporal: Client;
  temporalConnection: Connection;
  vault: Vault;
  /** Seals webhook signing secrets (and opens them to sign), like credentials. */
  keyring: Keyring;
  /** Hands events the API commits (a connection provisioned) to webhook delivery. */
  webhooks: WebhookDispatcher;
  connections: ConnectionService;
  providers: Providers;
  /** API keys → tenants, cached briefly and dropped when a tenant changes. */
  tenants: TenantCache;
  /** HMAC keys of OAuth states: the first ENCRYPTION_KEY signs, all verify. */
  stateKeys: StateKeys;
  /** HMAC keys of the browser-binding cookie, rotated the same way. */
  browserKeys: StateKeys;
  close(): Promise<void>;
}

export async function createApiDeps(config: Config): Promise<ApiDeps> {
  const connection = await Connection.connect(temporalConnectionOptions(config.temporal));
  const sql = createSql(config.databaseUrl, { applicationName: 'conduit-api' });
  let tenants: TenantCache;
  try {
    await ensureSearchAttributes(connection, config.temporal.namespace);
    tenants = await createTenantCache(sql, { ttlMs: config.apiKeyCacheSeconds * 1000 });
  } catch (err) {
    // Nothing left open behind a failed start: the caller may try again (src/startup.ts).
    await sql.end({ timeout: 1 }).catch(() => undefined);
    await connection.close().catch(() => undefined);
    throw err;
  }
  const temporal = new Client({ connection, namespace: config.temporal.namespace });
  const keyring = new Keyring(config.encryptionKeys);
  const vault = createVault(sql, keyring);
  const providers = createProviders(config.providers);
  const webhooks = createWebhookDispatcher({
    sql,
    temporal,
    taskQueue: config.temporal.taskQueue,
    retry: config.webhooks.retry,
    log: createLogger(config.log, 'api'),
  });
  return {
    config,
    sql,
    temporal,
    temporalConnection: connection,
    vault,
    keyring,
    webhooks,
    connections: createConnectionService({
      config,
      sql,
      temporal,
      vault,
      providers,
      dispatchEvents: (eventIds) => webhooks.dispatch(eventIds),
    }),
    providers,
    tenants,
    stateKeys: stateKeys(config.encryptionKeys),
    browserKeys: browserCookieKeys(config.encryptionKeys),
    async close() {
      await tenants.close();
      await sql.end({ timeout: 5 });
      await connection.close();
    },
  };
}
