import { ApplicationFailure } from '@temporalio/activity';
import { getConnection, type ConnectionRow } from '../db/connections';
import type { Sql } from '../db/sql';
import type { Provider } from '../domain/connection';
import { createBitbucketClient } from '../providers/bitbucket';
import { createBitriseClient } from '../providers/bitrise';
import type { RequestMeter } from '../providers/http';
import { FailureTypes } from '../workflows/messages';

export interface ProviderUrls {
  bitbucket: { apiUrl: string; oauthUrl: string };
  bitrise: { apiUrl: string };
}

/** A connection that vanished (its row rolled back after the workflow started) ends the workflow's work. */
export async function connectionOrFail(sql: Sql, connectionId: string): Promise<ConnectionRow> {
  const connection = await getConnection(sql, connectionId);
  if (!connection) {
    throw ApplicationFailure.create({ type: FailureTypes.connectionMissing, message: `Connection ${connectionId} does not exist`, nonRetryable: true });
  }
  return connection;
}

/** The client that can tell whose account a credential belongs to. */
export function accountClient(urls: ProviderUrls, provider: Provider, meter?: RequestMeter) {
  return provider === 'bitbucket' ? createBitbucketClient(urls.bitbucket, meter) : createBitriseClient(urls.bitrise, meter);
}
