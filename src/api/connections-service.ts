import { randomUUID } from 'node:crypto';
import { WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError, type Client } from '@temporalio/client';
import { ApplicationFailure, WorkflowNotFoundError, type UpdateDefinition } from '@temporalio/common';
import type { Config } from '../config';
import type { Vault } from '../credentials/vault';
import { getConnection, insertConnection, type ConnectionRow } from '../db/connections';
import type { Sql } from '../db/sql';
import { describeRefusal, refusalCode, type ConnectionAction, type Provider } from '../domain/connection';
import { connectionStatusKey, providerKey, syncStateKey, tenantIdKey } from '../temporal/search-attributes';
import type { connectionWorkflow } from '../workflows/connection';
import {
  FailureTypes,
  attachCredentialUpdate,
  disconnectUpdate,
  pauseUpdate,
  resumeUpdate,
  syncNowUpdate,
  type ConnectionState,
  type SyncRequest,
} from '../workflows/messages';
import { ApiError, conflict, notFound } from './errors';
import type { ConnectionDto } from './schemas';


export interface ConnectionServiceDeps {
  config: Config;
  sql: Sql;
  temporal: Client;
  vault: Vault;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** How long the API waits for a connection's workflow to answer before giving the caller a 503. */
const UPDATE_DEADLINE_MS = 30_000;

export function toConnectionDto(row: ConnectionRow): ConnectionDto {
  return {
    id: row.id,
    provider: row.provider,
    name: row.name,
    status: row.status,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
    syncIntervalSeconds: row.syncIntervalSeconds,
    lastSyncAt: row.lastSyncAt?.toISOString() ?? null,
    nextSyncAt: row.nextSyncAt?.toISOString() ?? null,
    lastError: row.lastError,
    workflowId: row.workflowId,
    syncState: row.syncState,
  };
}

export function createConnectionService(deps: ConnectionServiceDeps) {
  const { config, sql, temporal, vault } = deps;

  /** A tenant's connection, or 404 for ids that are malformed, missing or another tenant's. */
  async function load(tenantId: string, id: string): Promise<ConnectionRow> {
    const row = UUID.test(id) ? await getConnection(sql, id, tenantId) : undefined;
    if (!row) throw notFound('Connection');
    return row;
  }

  function assertAllowed(row: ConnectionRow, action: ConnectionAction): void {
    const code = refusalCode(action, row.status);
    if (code) throw conflict(code, describeRefusal(action, row.status));
  }

  /** Sends an update and maps what the workflow answered onto the API's errors. */
  async function update<Args extends unknown[]>(row: ConnectionRow, def: UpdateDefinition<ConnectionState, Args>, ...args: Args): Promise<ConnectionState> {
    const handle = temporal.workflow.getHandle(row.workflowId);
    try {
      // The SDK overloads split on arity; this helper serves both shapes.
      return await temporal.withDeadline(Date.now() + UPDATE_DEADLINE_MS, () => handle.executeUpdate(def as unknown as UpdateDefinition<ConnectionState, [unknown]>, { args: args as unknown as [unknown] }));
    } catch (err) {
      throw toApiError(err);
    }
  }

  return {
    load,

    async create(
      tenantId: string,
      input: { provider: Provider; name?: string; syncIntervalSeconds?: number; returnUrl?: string; oauthClient?: { clientId: string; clientSecret: string } },
    ): Promise<ConnectionRow> {
      if (input.oauthClient && input.provider !== 'bitbucket') {
        throw new ApiError(400, 'oauth_client_not_supported', 'oauthClient applies to Bitbucket connections only.');
      }
      if (input.provider === 'bitbucket' && !input.oauthClient && !config.bitbucket.clientId) {
        throw new ApiError(400, 'oauth_client_required', 'This deployment has no Bitbucket OAuth consumer; pass oauthClient with your own consumer’s key and secret.');
      }
      const id = randomUUID();
      const syncIntervalSeconds = input.syncIntervalSeconds ?? config.syncIntervalSeconds;
      // The row and the workflow are created together: if starting the workflow fails, the
      // transaction rolls back and nothing half-made is left behind.
      return sql.begin(async (tx) => {
        const row = await insertConnection(tx as unknown as Sql, {
          id,
          tenantId,
          provider: input.provider,
          name: input.name ?? null,
          syncIntervalSeconds,
          returnUrl: input.returnUrl ?? null,
        });
        if (input.oauthClient) await vault.storeOAuthClient(id, input.oauthClient.clientId, input.oauthClient.clientSecret, tx);
        await temporal.workflow.start<typeof connectionWorkflow>('connectionWorkflow', {
          workflowId: row.workflowId,
          taskQueue: config.temporal.taskQueue,
          args: [{ connectionId: id, tenantId, provider: input.provider, syncIntervalSeconds, maxHistoryEvents: config.workflowMaxHistoryEvents }],
          typedSearchAttributes: [
            { key: connectionStatusKey, value: 'awaiting_credentials' },
            { key: providerKey, value: input.provider },
            { key: tenantIdKey, value: tenantId },
            { key: syncStateKey, value: 'idle' },
          ],
        });
        return row;
      }) as Promise<ConnectionRow>;
    },

    /** Stores the credential sealed, then asks the workflow to verify and adopt it. */
    async attachCredential(row: ConnectionRow, store: () => Promise<string>): Promise<ConnectionState> {
      assertAllowed(row, 'set_credentials');
      const credentialId = await store();
      try {
        return await update(row, attachCredentialUpdate, { credentialId });
      } catch (err) {
        await vault.discard(row.id, credentialId);
        throw err;
      }
    },

    async act(row: ConnectionRow, action: 'pause' | 'resume' | 'disconnect'): Promise<ConnectionState> {
      assertAllowed(row, action);
      return update(row, ACTION_UPDATES[action]);
    },

    async syncNow(row: ConnectionRow, request: SyncRequest): Promise<ConnectionState> {
      assertAllowed(row, 'sync');
      return update(row, syncNowUpdate, request);
    },

    assertAllowed,
  };
}

const ACTION_UPDATES = { pause: pauseUpdate, resume: resumeUpdate, disconnect: disconnectUpdate } as const;

export type ConnectionService = ReturnType<typeof createConnectionService>;

function toApiError(err: unknown): unknown {
  if (err instanceof WorkflowNotFoundError) return conflict('connection_disconnected', 'The connection is disconnected.');
  if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError || (err as { code?: number })?.code === 4) {
    return new ApiError(503, 'workflow_unavailable', 'The connection did not answer in time; the request may still be applied. Try again shortly.');
  }
  if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
    const failure = err.cause;
    switch (failure.type) {
      case FailureTypes.refused:
        return conflict(String(failure.details?.[0] ?? 'invalid_connection_state'), failure.message);
      case FailureTypes.invalidCredentials:
        return new ApiError(422, 'invalid_credentials', failure.message);
      case FailureTypes.providerUnavailable:
        return new ApiError(503, 'provider_unavailable', failure.message);
      case 'BadRequest':
        return new ApiError(400, 'invalid_request', failure.message);
    }
  }
  return err;
}
