import { ApplicationFailure } from '@temporalio/activity';
import { getConnection } from '../db/connections';
import type { Sql } from '../db/sql';
import type { ConnectionRow } from '../domain/connection';
import { FailureTypes } from '../domain/failures';

/** A connection that vanished (its row rolled back after the workflow started) ends the workflow's work. */
export async function connectionOrFail(sql: Sql, connectionId: string): Promise<ConnectionRow> {
  const connection = await getConnection(sql, connectionId);
  if (!connection) {
    throw ApplicationFailure.create({
      type: FailureTypes.connectionMissing,
      message: `Connection ${connectionId} does not exist`,
      nonRetryable: true,
    });
  }
  return connection;
}
