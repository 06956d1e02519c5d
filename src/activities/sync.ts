import { activityInfo, ApplicationFailure } from '@temporalio/activity';
import { setAccount } from '../db/connections';
import type { Sql } from '../db/sql';
import { addRunStats, finishRun, startRun } from '../db/sync-runs';
import { isSyncResource, type ConnectionError, type Provider } from '../domain/connection';
import type { AccessBroker } from '../credentials/access';
import { isProviderError } from '../providers/errors';
import { createSyncContext } from '../sync/context';
import { rateBucketKey } from '../sync/rate-bucket';
import { SYNCERS } from '../sync/registry';
import { resetCursors } from '../sync/store';
import { accountClient, connectionOrFail } from './connection';
import { rateLimitWaitMs, toActivityFailure } from './failures';

export interface SyncSettings {
  /** Pace per rate-limited party: per OAuth consumer for Bitbucket, per token for Bitrise. */
  requestsPerHour: Record<Provider, number>;
  stallTimeoutSeconds: number;
  /** Rate-limit waits up to this long are activity retries; longer ones a durable workflow sleep. */
  maxInlineRateLimitWaitMs: number;
  /** First backoff after a 429 without a wait header. */
  rateLimitBackoffMs: number;
}

export interface SyncActivityDeps {
  sql: Sql;
  broker: AccessBroker;
  providers: { bitbucket: { apiUrl: string; oauthUrl: string }; bitrise: { apiUrl: string } };
  settings: SyncSettings;
}

export type SyncStep = 'account' | string;

/** What a step reports to the workflow: small numbers only, never the data itself. */
export interface SyncStepResult {
  records: number;
  requests: number;
  /** Set when the provider asked for a long pause: the workflow sleeps durably, then runs the step again. */
  rateLimitedForMs?: number;
}

export function createSyncActivities(deps: SyncActivityDeps) {
  const { sql, broker } = deps;

  return {
    /** Opens the run row; a backfill forgets the named resources' cursors first. */
    async beginRun(connectionId: string, runId: string, backfill: string[]): Promise<void> {
      await startRun(sql, connectionId, runId);
      if (backfill.length) await resetCursors(sql, connectionId, backfill);
    },

    /**
     * One step of a run: `account` proves access (one cheap request), every other step is a
     * resource syncer. Pages are committed with their cursors as they arrive, so a retry carries
     * on from the last committed page.
     */
    async syncStep(connectionId: string, runId: string, step: SyncStep): Promise<SyncStepResult> {
      const connection = await connectionOrFail(sql, connectionId);
      const { attempt } = activityInfo();
      const apiUrl = deps.providers[connection.provider].apiUrl;
      const rateBucket =
        connection.provider === 'bitbucket' ? rateBucketKey('bitbucket', await broker.consumerKey(connectionId)) : rateBucketKey('bitrise', connectionId);
      const ctx = createSyncContext({
        sql,
        broker,
        rateBucket,
        connectionId,
        runId,
        provider: connection.provider,
        apiUrl,
        requestsPerHour: deps.settings.requestsPerHour[connection.provider],
        stallTimeoutSeconds: deps.settings.stallTimeoutSeconds,
      });
      const record = (extra: { rateLimitWaits?: number } = {}) =>
        addRunStats(sql, runId, { resource: step === 'account' ? undefined : step, records: ctx.stats.records, requests: ctx.stats.requests, retries: attempt > 1 ? 1 : 0, ...extra });
      try {
        if (step === 'account') {
          const client = accountClient(deps.providers, connection.provider, { onRequest: () => void ctx.stats.requests++ });
          const account = await broker.withAccess(connectionId, connection.provider, (token) => client.getAccount(token));
          if (account.id !== connection.account?.id || account.name !== connection.account?.name) await setAccount(sql, connectionId, account);
        } else if (isSyncResource(connection.provider, step)) {
          await (SYNCERS[connection.provider] as Record<string, (c: typeof ctx) => Promise<void>>)[step]!(ctx);
        } else {
          throw ApplicationFailure.create({ type: 'UnknownResource', message: `No ${connection.provider} resource ${step}`, nonRetryable: true });
        }
        await record();
        return { records: ctx.stats.records, requests: ctx.stats.requests };
      } catch (err) {
        if (isProviderError(err, 'rate_limited')) {
          await record({ rateLimitWaits: 1 });
          const wait = rateLimitWaitMs(err, attempt, deps.settings.rateLimitBackoffMs);
          if (wait > deps.settings.maxInlineRateLimitWaitMs) return { records: ctx.stats.records, requests: ctx.stats.requests, rateLimitedForMs: wait };
        } else {
          await record();
        }
        throw toActivityFailure(err, attempt, deps.settings.rateLimitBackoffMs);
      } finally {
        ctx.dispose();
      }
    },

    async completeRun(connectionId: string, runId: string): Promise<{ finishedAt: string }> {
      const finishedAt = await finishRun(sql, runId, { status: 'succeeded' });
      return { finishedAt: finishedAt.toISOString() };
    },

    async failRun(connectionId: string, runId: string, error: ConnectionError, status: 'failed' | 'stalled' = 'failed'): Promise<void> {
      await startRun(sql, connectionId, runId);
      await finishRun(sql, runId, { status, error });
    },
  };
}
