import { Client, Connection } from '@temporalio/client';
import type { Config } from '../config';
import { createVault, type Vault } from '../credentials/vault';
import { Keyring } from '../crypto/keyring';
import { createSql, type Sql } from '../db/sql';
import { createBitbucketClient, type BitbucketClient } from '../providers/bitbucket';
import { ensureSearchAttributes } from '../temporal/register-search-attributes';
import { createConnectionService, type ConnectionService } from './connections-service';
import { stateSigningKey } from './oauth-state';

/** Everything the routes use, built once per process and closed on shutdown. */
export interface ApiDeps {
  config: Config;
  sql: Sql;
  temporal: Client;
  temporalConnection: Connection;
  vault: Vault;
  connections: ConnectionService;
  bitbucket: BitbucketClient;
  stateKey: Buffer;
  close(): Promise<void>;
}

export async function createApiDeps(config: Config): Promise<ApiDeps> {
  const connection = await Connection.connect({ address: config.temporal.address });
  await ensureSearchAttributes(connection, config.temporal.namespace);
  const temporal = new Client({ connection, namespace: config.temporal.namespace });
  const sql = createSql(config.databaseUrl, { applicationName: 'conduit-api' });
  const vault = createVault(sql, new Keyring(config.encryptionKeys));
  return {
    config,
    sql,
    temporal,
    temporalConnection: connection,
    vault,
    connections: createConnectionService({ config, sql, temporal, vault }),
    bitbucket: createBitbucketClient(config.bitbucket),
    stateKey: stateSigningKey(config.encryptionKeys[0]!),
    async close() {
      await sql.end({ timeout: 5 });
      await connection.close();
    },
  };
}
