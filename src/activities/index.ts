import { activityInfo, ApplicationFailure, heartbeat } from '@temporalio/activity';
import type { AccessBroker } from '../credentials/access';
import type { Vault } from '../credentials/vault';
import { applySnapshot, getConnection, setAccount, type ConnectionSnapshot } from '../db/connections';
import type { Sql } from '../db/sql';
import { addRunStats, finishRun, startRun } from '../db/sync-runs';
import type { ConnectionError, Provider } from '../domain/connection';
import { createBitbucketClient } from '../providers/bitbucket';
import { createBitriseClient } from '../providers/bitrise';
import { isProviderError } from '../providers/errors';
import type { RequestMeter } from '../providers/http';
import { FailureTypes } from '../workflows/messages';
import { toActivityFailure } from './failures';

export interface ActivityDeps {
  sql: Sql;
  vault: Vault;
  broker: AccessBroker;
  providers: { bitbucket: { apiUrl: string; oauthUrl: string }; bitrise: { apiUrl: string } };
}

/**
 * Activities are built from their dependencies (one pool, one vault) so the worker wires real
 * ones and nothing reaches for globals. Arguments and results are ids, counts and timestamps
 * only: no secret and no synced data ever enters workflow history.
 */
export function createActivities(deps: ActivityDeps) {
  const { sql, vault, broker } = deps;

  const accountClient = (provider: Provider, meter?: RequestMeter) =>
    provider === 'bitbucket' ? createBitbucketClient(deps.providers.bitbucket, meter) : createBitriseClient(deps.providers.bitrise, meter);

  async function connectionOrFail(connectionId: string) {
    const connection = await getConnection(sql, connectionId);
    if (!connection) {
      throw ApplicationFailure.create({ type: FailureTypes.connectionMissing, message: `Connection ${connectionId} does not exist`, nonRetryable: true });
    }
    return connection;
  }

  return {
    async publishState(connectionId: string, snapshot: ConnectionSnapshot): Promise<void> {
      await applySnapshot(sql, connectionId, snapshot);
    },

    /** Verifies a pending credential against the provider and makes it the active one. */
    async activateCredential(connectionId: string, credentialId: string): Promise<{ accountName: string }> {
      const connection = await connectionOrFail(connectionId);
      const pending = await vault.openPending(connectionId, credentialId);
      if (!pending) {
        // A retry after a crash that followed activation finds it already active: done.
        const active = await vault.openActive(connectionId);
        if (active?.id === credentialId && connection.account) return { accountName: connection.account.name };
        throw ApplicationFailure.create({ type: FailureTypes.invalidCredentials, message: 'The credential is unknown or was already used.', nonRetryable: true });
      }
      const token = pending.kind === 'bitrise_token' ? (pending.secret as { token: string }).token : (pending.secret as { accessToken: string }).accessToken;
      try {
        const account = await accountClient(connection.provider).getAccount(token);
        await setAccount(sql, connectionId, account);
        await vault.activate(connectionId, credentialId);
        return { accountName: account.name };
      } catch (err) {
        if (isProviderError(err, 'unauthorized') || isProviderError(err, 'forbidden')) {
          await vault.discard(connectionId, credentialId);
          throw ApplicationFailure.create({
            type: FailureTypes.invalidCredentials,
            message: `${connection.provider === 'bitrise' ? 'Bitrise' : 'Bitbucket'} rejected the credential.`,
            nonRetryable: true,
          });
        }
        throw toActivityFailure(err, activityInfo().attempt);
      }
    },

    /**
     * One sync run. This run proves access and records itself; the sync engine fills it
     * with data. The run id comes from the workflow so a retried attempt resumes the same row.
     */
    async runSync(connectionId: string, runId: string): Promise<{ runId: string; finishedAt: string }> {
      const connection = await connectionOrFail(connectionId);
      await startRun(sql, connectionId, runId);
      const stats = { requests: 0, rateLimitWaits: 0 };
      const meter: RequestMeter = { onRequest: () => void stats.requests++ };
      try {
        heartbeat();
        const account = await broker.withAccess(connectionId, connection.provider, (token) => accountClient(connection.provider, meter).getAccount(token));
        heartbeat();
        if (account.id !== connection.account?.id || account.name !== connection.account?.name) await setAccount(sql, connectionId, account);
        await addRunStats(sql, runId, stats);
        const finishedAt = await finishRun(sql, runId, { status: 'succeeded', counts: {} });
        return { runId, finishedAt: finishedAt.toISOString() };
      } catch (err) {
        if (isProviderError(err, 'rate_limited')) stats.rateLimitWaits++;
        await addRunStats(sql, runId, stats);
        const failure = toActivityFailure(err, activityInfo().attempt);
        if (failure instanceof ApplicationFailure && failure.nonRetryable) {
          await finishRun(sql, runId, { status: 'failed', error: { code: String(failure.details?.[0] ?? 'sync_failed'), message: failure.message, at: new Date().toISOString() } });
        }
        throw failure;
      }
    },

    async finishRunAsFailed(connectionId: string, runId: string, error: ConnectionError): Promise<void> {
      await sql`insert into sync_runs (id, connection_id, status, error, finished_at)
                values (${runId}, ${connectionId}, 'failed', ${sql.json(error as never)}, now())
                on conflict (id) do nothing`;
      await finishRun(sql, runId, { status: 'failed', error });
    },

    /**
     * Neither provider offers revocation of these credentials over its API (Bitbucket Cloud
     * documents no OAuth 2.0 revoke endpoint; Bitrise tokens are deleted in its UI), so
     * disconnecting destroys our copies: ciphertext wiped, unused OAuth states dropped.
     */
    async destroyCredentials(connectionId: string): Promise<void> {
      await vault.destroyAll(connectionId);
      await sql`delete from oauth_states where connection_id = ${connectionId}`;
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
