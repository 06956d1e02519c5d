import { activityInfo, ApplicationFailure } from '@temporalio/activity';
import type { AccessBroker } from '../credentials/access';
import { setAccount } from '../db/connections';
import type { Sql } from '../db/sql';
import { addRunStats, finishRun, startRun } from '../db/sync-runs';
import { isSyncResource, syncResources, type ConnectionError } from '../domain/connection';
import { FailureTypes } from '../domain/failures';
import { isProviderError } from '../providers/errors';
import { adapterOf, type Providers } from '../providers/registry';
import { BudgetWaitError, createSyncContext, DEFAULT_REQUEST_RETRY, type RequestRetryPolicy } from '../sync/context';
import { rateBucketKey, requestBudget } from '../sync/rate-bucket';
import { resetCursors } from '../sync/store';
import { countProviderRequest, countSyncRun, countSyncWait } from '../metrics';
import { connectionOrFail } from './connection';
import { rateLimitWaitMs, toActivityFailure } from './failures';

export interface SyncSettings {
  stallTimeoutSeconds: number;
  /** Rate-limit waits up to this long are activity retries; longer ones a durable workflow sleep. */
  maxInlineRateLimitWaitMs: number;
  /** First backoff after a 429 without a wait header. */
  rateLimitBackoffMs: number;
  /**
   * After this many attempts of a step in a row failed on a provider fault without committing a
   * page, the step hands back to the workflow, which waits durably (`provider_unavailable`).
   */
  unavailableAfterAttempts?: number;
  /** The first durable wait for a provider that stays down; the workflow doubles it (up to an hour). */
  providerUnavailableWaitMs?: number;
  /** How long one GET retries a transient fault in place (see src/sync/context.ts). */
  requestRetryMaxMs?: number;
  /** The whole in-place retry policy (tests, the benchmark); overrides `requestRetryMaxMs`. */
  requestRetry?: RequestRetryPolicy;
}

export interface SyncActivityDeps {
  sql: Sql;
  broker: AccessBroker;
  providers: Providers;
  settings: SyncSettings;
  /**
   * Hands events just committed to webhook delivery (src/webhooks/dispatch.ts). Never throws: what
   * it could not dispatch, the webhook sweeper does.
   */
  dispatchEvents?: (eventIds: string[]) => Promise<void>;
}

/** `account`, or one of the provider's resources. */
export type SyncStep = string;

/** What a step reports to the workflow: small numbers only, never the data itself. */
export interface SyncStepResult {
  records: number;
  requests: number;
  /**
   * Set when the provider asked for a long pause, or the shared request budget has no token for this
   * connection for that long (`paced`): the workflow sleeps durably, then runs the step again.
   */
  rateLimitedForMs?: number;
  /** The long wait is for our own shared budget, not the provider's limit (syncState `paced`). */
  paced?: true;
  /**
   * The step committed pages, then failed on a provider fault: the workflow runs it again at once as
   * a fresh activity, so progress resets the retry budget (a partial failure, not a complete one).
   */
  continue?: boolean;
  /** The provider kept failing with no progress: the workflow waits durably this long, then runs the step again. */
  providerUnavailableForMs?: number;
}

const DEFAULT_UNAVAILABLE_AFTER_ATTEMPTS = 3;

/**
 * Runs `call` again in place after a transient fault, with the same policy and backoff as the sync
 * engine's GETs (src/sync/context.ts), sleeping with the activity's cancellable sleep and
 * heartbeating meanwhile. For the requests a step makes outside the engine (the account check).
 */
const DEFAULT_PROVIDER_UNAVAILABLE_WAIT_MS = 5 * 60_000;

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
      const { provider } = connection;
      const adapter = adapterOf(deps.providers, provider);
      const { attempt } = activityInfo();
      const budget = requestBudget(sql, {
        bucket: rateBucketKey(provider, adapter.rateParty(connectionId, await broker.consumerKey(connectionId, provider))),
        connectionId,
        tenantId: connection.tenantId,
        requestsPerHour: adapter.requestsPerHour,
        maxWaitMs: deps.settings.maxInlineRateLimitWaitMs,
      });
      const ctx = createSyncContext({
        sql,
        broker,
        adapter,
        connectionId,
        runId,
        budget,
        stallTimeoutSeconds: deps.settings.stallTimeoutSeconds,
        resource: step,
        retry:
          deps.settings.requestRetry ??
          (deps.settings.requestRetryMaxMs ? { ...DEFAULT_REQUEST_RETRY, maxTotalMs: deps.settings.requestRetryMaxMs } : undefined),
        maxInlineRateLimitWaitMs: deps.settings.maxInlineRateLimitWaitMs,
        rateLimitBackoffMs: deps.settings.rateLimitBackoffMs,
      });
      const record = (extra: { rateLimitWaits?: number } = {}) =>
        addRunStats(sql, runId, {
          resource: step === 'account' ? undefined : step,
          records: ctx.stats.records,
          requests: ctx.stats.requests,
          rejected: ctx.stats.rejected,
          retries: (attempt > 1 ? 1 : 0) + ctx.stats.retries,
          rateLimitWaits: ctx.stats.rateLimitWaits + (extra.rateLimitWaits ?? 0),
        });
      try {
        if (step === 'account') {
          // One request, paced and retried in place like every sync GET: a single 5xx must not cost the step an attempt.
          const account = await ctx.callProvider(() =>
            broker.withAccess(connectionId, provider, (token) =>
              adapter.getAccount(token, { onRequest: () => void ctx.stats.requests++, onAnswer: (s) => countProviderRequest(provider, s) }),
            ),
          );
          if (account.id !== connection.account?.id || account.name !== connection.account?.name)
            await setAccount(sql, connectionId, account);
        } else if (isSyncResource(provider, step)) {
          await (adapter.syncers as Record<string, (c: typeof ctx) => Promise<void>>)[step]!(ctx);
        } else {
          throw ApplicationFailure.create({
            type: FailureTypes.unknownResource,
            message: `No ${provider} resource ${step}`,
            nonRetryable: true,
          });
        }
        await record();
        // The run's last step: this connection stops asking, so its share goes to the others at once.
        if (step === syncResources(provider).at(-1)) await budget.leave();
        return { records: ctx.stats.records, requests: ctx.stats.requests };
      } catch (err) {
        if (err instanceof BudgetWaitError) {
          await record();
          return { records: ctx.stats.records, requests: ctx.stats.requests, rateLimitedForMs: err.waitMs, paced: true };
        }
        if (isProviderError(err, 'rate_limited')) {
          await record({ rateLimitWaits: 1 });
          const wait = rateLimitWaitMs(err, attempt, deps.settings.rateLimitBackoffMs);
          const durable = wait > deps.settings.maxInlineRateLimitWaitMs;
          countSyncWait(provider, 'rate_limited', durable ? 'durable' : 'inline', wait);
          if (durable) return { records: ctx.stats.records, requests: ctx.stats.requests, rateLimitedForMs: wait };
        } else if (isProviderError(err, 'transient')) {
          await record();
          // Partial failure: pages were committed, so a fresh activity carries on with a fresh budget.
          if (ctx.stats.commits > 0) return { records: ctx.stats.records, requests: ctx.stats.requests, continue: true };
          // Complete failure, again and again: the provider is down; wait durably instead of holding a slot.
          if (attempt >= (deps.settings.unavailableAfterAttempts ?? DEFAULT_UNAVAILABLE_AFTER_ATTEMPTS)) {
            const waitMs = deps.settings.providerUnavailableWaitMs ?? DEFAULT_PROVIDER_UNAVAILABLE_WAIT_MS;
            // The first wait; the workflow doubles later ones on the same step, each counted here when it hands back again.
            countSyncWait(provider, 'provider_unavailable', 'durable', waitMs);
            return { records: ctx.stats.records, requests: ctx.stats.requests, providerUnavailableForMs: waitMs };
          }
        } else {
          await record();
        }
        throw toActivityFailure(err, attempt, deps.settings.rateLimitBackoffMs);
      } finally {
        ctx.dispose();
      }
    },

    async completeRun(connectionId: string, runId: string): Promise<{ finishedAt: string }> {
      const { finishedAt, eventIds, provider } = await finishRun(sql, runId, { status: 'succeeded' });
      countSyncRun(provider, 'succeeded');
      await deps.dispatchEvents?.(eventIds);
      return { finishedAt: finishedAt.toISOString() };
    },

    async failRun(connectionId: string, runId: string, error: ConnectionError, status: 'failed' | 'stalled' = 'failed'): Promise<void> {
      await startRun(sql, connectionId, runId);
      const { eventIds, provider } = await finishRun(sql, runId, { status, error });
      countSyncRun(provider, status);
      await deps.dispatchEvents?.(eventIds);
    },
  };
}
