import { activityInfo, ApplicationFailure } from '@temporalio/activity';
import type { Vault } from '../credentials/vault';
import { applySnapshot, setAccount, type ConnectionSnapshot } from '../db/connections';
import { isProviderError } from '../providers/errors';
import { FailureTypes } from '../workflows/messages';
import { accountClient, connectionOrFail } from './connection';
import { toActivityFailure } from './failures';
import { createSyncActivities, type SyncActivityDeps } from './sync';

export interface ActivityDeps extends SyncActivityDeps {
  vault: Vault;
}

/**
 * Activities are built from their dependencies (one pool, one vault) so the worker wires real
 * ones and nothing reaches for globals. Arguments and results are ids, counts and timestamps
 * only: no secret and no synced data ever enters workflow history.
 */
export function createActivities(deps: ActivityDeps) {
  const { sql, vault } = deps;

  return {
    ...createSyncActivities(deps),

    async publishState(connectionId: string, snapshot: ConnectionSnapshot): Promise<void> {
      await applySnapshot(sql, connectionId, snapshot);
    },

    /** Verifies a pending credential against the provider and makes it the active one. */
    async activateCredential(connectionId: string, credentialId: string): Promise<{ accountName: string }> {
      const connection = await connectionOrFail(sql, connectionId);
      const pending = await vault.openPending(connectionId, credentialId);
      if (!pending) {
        // A retry after a crash that followed activation finds it already active: done.
        const active = await vault.openActive(connectionId);
        if (active?.id === credentialId && connection.account) return { accountName: connection.account.name };
        throw ApplicationFailure.create({ type: FailureTypes.invalidCredentials, message: 'The credential is unknown or was already used.', nonRetryable: true });
      }
      const token = pending.kind === 'bitrise_token' ? (pending.secret as { token: string }).token : (pending.secret as { accessToken: string }).accessToken;
      try {
        const account = await accountClient(deps.providers, connection.provider).getAccount(token);
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
