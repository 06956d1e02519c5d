import { activityInfo, ApplicationFailure } from '@temporalio/activity';
import type { Vault } from '../credentials/vault';
import { applySnapshot, setAccount } from '../db/connections';
import type { ConnectionSnapshot } from '../domain/connection';
import { FailureTypes } from '../domain/failures';
import { accessTokenOf } from '../credentials/vault';
import { isProviderError } from '../providers/errors';
import { adapterOf } from '../providers/registry';
import { connectionOrFail } from './connection';
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

    /** Writes the snapshot (and the events it causes, in one transaction), then hands the events to webhooks. */
    async publishState(connectionId: string, snapshot: ConnectionSnapshot): Promise<void> {
      const applied = await applySnapshot(sql, connectionId, snapshot);
      if (applied) await deps.dispatchEvents?.(applied.eventIds);
    },

    /** Verifies a pending credential against the provider and makes it the active one. */
    async activateCredential(connectionId: string, credentialId: string): Promise<{ accountName: string }> {
      const connection = await connectionOrFail(sql, connectionId);
      const pending = await vault.openPending(connectionId, credentialId);
      if (!pending) {
        // A retry after a crash that followed activation finds it already active: done.
        const active = await vault.openActive(connectionId);
        if (active?.id === credentialId && connection.account) return { accountName: connection.account.name };
        throw ApplicationFailure.create({
          type: FailureTypes.invalidCredentials,
          message: 'The credential is unknown or was already used.',
          nonRetryable: true,
        });
      }
      const adapter = adapterOf(deps.providers, connection.provider);
      let activated: boolean;
      let account: { id: string; name: string };
      try {
        account = await adapter.getAccount(accessTokenOf(pending.secret));
        await setAccount(sql, connectionId, account);
        activated = await vault.activate(connectionId, credentialId);
      } catch (err) {
        if (isProviderError(err, 'unauthorized') || isProviderError(err, 'forbidden')) {
          await vault.discard(connectionId, credentialId);
          throw ApplicationFailure.create({
            type: FailureTypes.invalidCredentials,
            message: `${adapter.manifest.displayName} rejected the credential.`,
            nonRetryable: true,
          });
        }
        throw toActivityFailure(err, activityInfo().attempt);
      }
      // The pending row went away while we asked the provider (discarded, purged as stale, or the
      // connection disconnected): nothing was activated, so the workflow must not say it was.
      if (!activated) {
        throw ApplicationFailure.create({
          type: FailureTypes.invalidCredentials,
          message: 'The credential was withdrawn before it could be activated; send it again.',
          nonRetryable: true,
        });
      }
      return { accountName: account.name };
    },

    /**
     * No provider we support offers revocation of these credentials over its API (Bitbucket Cloud
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
