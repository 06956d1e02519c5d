import { randomUUID } from 'node:crypto';
import { WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError, type Client } from '@temporalio/client';
import { ApplicationFailure, WorkflowNotFoundError, type UpdateDefinition } from '@temporalio/common';
import type { Config } from '../config';
import type { Vault } from '../credentials/vault';
import { getConnection, insertConnection, markProvisioned } from '../db/connections';
import type { Sql } from '../db/sql';
import {
  describeRefusal,
  refusalCode,
  type ConnectionAction,
  type ConnectionRow,
  type ConnectionState,
  type Provider,
} from '../domain/connection';
import { FailureTypes } from '../domain/failures';
import { adapterOf, type Providers } from '../providers/registry';
import { isTemporalUnavailable, isWorkflowBusy, startConnectionWorkflow } from '../temporal/start-connection';
import {
  attachCredentialUpdate,
  disconnectUpdate,
  pauseUpdate,
  resumeUpdate,
  syncNowUpdate,
  ATTACH_CREDENTIAL_DEADLINE_MS,
  type SyncRequest,
} from '../workflows/messages';
import { ApiError, conflict, notFound, temporalUnavailable } from './errors';
import { isUuid } from './inputs';

export interface ConnectionServiceDeps {
  config: Config;
  sql: Sql;
  temporal: Client;
  vault: Vault;
  providers: Providers;
  /** Hands events just committed to webhook delivery; never throws (the sweeper catches up). */
  dispatchEvents?: (eventIds: string[]) => Promise<void>;
}

/** How long the API waits for a connection's workflow to answer before giving the caller a 503. */
const UPDATE_DEADLINE_MS = 30_000;

export function createConnectionService(deps: ConnectionServiceDeps) {
  const { config, sql, temporal, vault, providers } = deps;

  /** A tenant's connection, or 404 for ids that are malformed, missing or another tenant's. */
  async function load(tenantId: string, id: string): Promise<ConnectionRow> {
    const row = isUuid(id) ? await getConnection(sql, id, tenantId) : undefined;
    if (!row) throw notFound('Connection');
    return row;
  }

  function assertAllowed(row: ConnectionRow, action: ConnectionAction): void {
    const code = refusalCode(action, row.status);
    if (code) throw conflict(code, describeRefusal(action, row.status));
  }

  /** Sends an update and maps what the workflow answered onto the API's errors. */
  async function update<Args extends unknown[]>(
    row: ConnectionRow,
    def: UpdateDefinition<ConnectionState, Args>,
    ...args: Args
  ): Promise<ConnectionState> {
    return updateWithin(UPDATE_DEADLINE_MS, row, def, ...args);
  }

  async function updateWithin<Args extends unknown[]>(
    deadlineMs: number,
    row: ConnectionRow,
    def: UpdateDefinition<ConnectionState, Args>,
    ...args: Args
  ): Promise<ConnectionState> {
    const handle = temporal.workflow.getHandle(row.workflowId);
    try {
      // The SDK overloads split on arity; this helper serves both shapes.
      return await temporal.withDeadline(Date.now() + deadlineMs, () =>
        handle.executeUpdate(def as unknown as UpdateDefinition<ConnectionState, [unknown]>, { args: args as unknown as [unknown] }),
      );
    } catch (err) {
      // An update that timed out means the worker or Temporal itself is away: ask Temporal, briefly.
      if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError && !(await temporalAnswers())) throw temporalUnavailable();
      throw toApiError(err);
    }
  }

  async function temporalAnswers(): Promise<boolean> {
    try {
      await temporal.withDeadline(Date.now() + 2_000, () => temporal.workflowService.getSystemInfo({}));
      return true;
    } catch {
      return false;
    }
  }

  /** Stores the credential sealed, then asks the workflow to verify and adopt it. */
  async function attachCredential(row: ConnectionRow, store: () => Promise<string>): Promise<ConnectionState> {
    assertAllowed(row, 'set_credentials');
    // Pending credentials nobody adopted (PENDING_CREDENTIAL_TTL_SECONDS) go as new ones come.
    await vault.wipeStalePending(config.pendingCredentialTtlSeconds, row.id);
    const credentialId = await store();
    try {
      // As long as the workflow's verification may take, so an answer in time is not mistaken for none.
      return await updateWithin(ATTACH_CREDENTIAL_DEADLINE_MS, row, attachCredentialUpdate, { credentialId });
    } catch (err) {
      // Discarded only when the workflow has answered: after a timeout it may still apply it.
      if (!isUnanswered(err)) await vault.discard(row.id, credentialId);
      throw err;
    }
  }

  return {
    load,

    async create(
      tenantId: string,
      input: {
        provider: Provider;
        name?: string;
        syncIntervalSeconds?: number;
        returnUrl?: string;
        oauthClient?: { clientId: string; clientSecret: string };
      },
    ): Promise<ConnectionRow> {
      const { oauth, manifest } = adapterOf(providers, input.provider);
      if (input.oauthClient && !oauth) {
        throw new ApiError(
          400,
          'oauth_client_not_supported',
          `oauthClient applies to OAuth providers only; ${manifest.displayName} uses an access token.`,
        );
      }
      if (oauth && !input.oauthClient && !oauth.platformClient) {
        throw new ApiError(
          400,
          'oauth_client_required',
          `This deployment has no ${manifest.displayName} OAuth consumer; pass oauthClient with your own consumer’s key and secret.`,
        );
      }
      const id = randomUUID();
      const syncIntervalSeconds = input.syncIntervalSeconds ?? config.syncIntervalSeconds;
      // The row commits first, as `provisioning` (with the connection's own consumer, if any), and
      // only then is the workflow started, idempotently and with a deadline: no transaction or pool
      // connection waits on Temporal. If the start fails or this process dies, the row stays
      // `provisioning` and the reconciler starts its workflow; the caller gets a 503 meanwhile.
      const values = {
        id,
        tenantId,
        provider: input.provider,
        name: input.name ?? null,
        syncIntervalSeconds,
        returnUrl: input.returnUrl ?? null,
      };
      const { oauthClient } = input;
      // One statement needs no transaction (one round trip instead of three); the connection's own
      // consumer must commit with its row.
      const row = oauthClient
        ? await sql.begin<ConnectionRow>(async (tx) => {
            const inserted = await insertConnection(tx as unknown as Sql, values);
            await vault.storeOAuthClient(id, oauthClient.clientId, oauthClient.clientSecret, tx);
            return inserted;
          })
        : await insertConnection(sql, values);
      try {
        await startConnectionWorkflow(
          temporal,
          { taskQueue: config.temporal.taskQueue, maxHistoryEvents: config.workflowMaxHistoryEvents },
          row,
        );
      } catch (err) {
        throw toApiError(err, 'The connection was created but its workflow could not be started yet; it will be, shortly.');
      }
      // The workflow's first snapshot says the same; this just spares the caller a race with it.
      const provisioned = await markProvisioned(sql, id);
      if (provisioned) await deps.dispatchEvents?.(provisioned.eventIds);
      return provisioned?.row ?? row;
    },

    attachCredential,

    /**
     * A token provider's token, verified by the workflow before it is adopted: `PUT /credentials`
     * and an invite's token form both come here. Refused: 422 `invalid_credentials`.
     */
    async setToken(row: ConnectionRow, token: string): Promise<ConnectionState> {
      const { manifest } = adapterOf(providers, row.provider);
      if (manifest.auth !== 'token') {
        throw new ApiError(
          400,
          'unsupported_for_provider',
          `${manifest.displayName} connections are authorized with OAuth: POST /authorize.`,
        );
      }
      return attachCredential(row, () => vault.storePending(row.id, manifest.credentialKind, { token }));
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

/** The workflow did not answer (timeout, Temporal unreachable): the update may still be applied. */
function isUnanswered(err: unknown): boolean {
  if (err instanceof ApiError) return err.code === 'workflow_unavailable' || err.code === 'temporal_unavailable';
  return !(err instanceof WorkflowUpdateFailedError || err instanceof WorkflowNotFoundError);
}

function toApiError(err: unknown, unavailableMessage?: string): unknown {
  if (isTemporalUnavailable(err) && !(err instanceof WorkflowUpdateRPCTimeoutOrCancelledError))
    return temporalUnavailable(unavailableMessage);
  if (err instanceof WorkflowNotFoundError) return conflict('connection_disconnected', 'The connection is disconnected.');
  if (isWorkflowBusy(err)) {
    return new ApiError(
      503,
      'workflow_unavailable',
      'The connection cannot take actions right now (its workflow is recovering). Try again shortly.',
    );
  }
  if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError || (err as { code?: number })?.code === 4) {
    return new ApiError(
      503,
      'workflow_unavailable',
      'The connection did not answer in time; the request may still be applied. Try again shortly.',
    );
  }
  if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
    const failure = err.cause;
    switch (failure.type) {
      case FailureTypes.refused:
        return conflict(typeof failure.details?.[0] === 'string' ? failure.details[0] : 'invalid_connection_state', failure.message);
      case FailureTypes.invalidCredentials:
        return new ApiError(422, 'invalid_credentials', failure.message);
      case FailureTypes.providerUnavailable:
        return new ApiError(503, 'provider_unavailable', failure.message);
      case FailureTypes.badRequest:
        return new ApiError(400, 'invalid_request', failure.message);
    }
  }
  return err;
}
