import type { Provider } from '../providers/manifests';
import type { Sql } from '../db/sql';
import { budgetLimits, type Asker, type BudgetLimits, type Decision } from './budget';

/**
 * The shared request budgets in Postgres (`rate_buckets`, `rate_bucket_flows`): the rules of
 * ./budget.ts run by `take_request_token` as one statement per ask, under the bucket's row lock, so
 * every worker spends the same budget.
 */

/**
 * The bucket of one rate-limited party of a provider (see ProviderAdapter.rateParty): every
 * connection whose requests the provider counts together shares it.
 */
export function rateBucketKey(provider: Provider, party: string): string {
  return `${provider}:${party}`;
}

/** One ask. `at` is for tests only: Postgres's clock, read under the lock, is the one clock of a budget. */
export async function takeRequestToken(sql: Sql, bucket: string, asker: Asker, limits: BudgetLimits, at?: Date): Promise<Decision> {
  const [row] = await sql<{ granted: boolean; waitSeconds: number; againSeconds: number }[]>`
    select * from take_request_token(${bucket}, ${asker.flow}, ${asker.tenant}, ${asker.draw}, ${limits.perSecond},
      ${limits.burst}, ${limits.maxWaitSeconds}, ${limits.activeGraceSeconds}, ${at ?? null})`;
  const { granted, waitSeconds, againSeconds } = row!;
  return granted ? { granted, waitSeconds, againSeconds } : { granted, againSeconds };
}

/** A granted token whose wait was cancelled goes back (see budget.ts returnToken), and its flow leaves the split. */
export async function returnRequestToken(sql: Sql, bucket: string, flow: string, limits: BudgetLimits): Promise<void> {
  await sql`
    with back as (update rate_buckets set tokens = least(${limits.burst}::float8, tokens + 1) where key = ${bucket})
    update rate_bucket_flows set returned = returned + 1, active_until = least(active_until, clock_timestamp())
    where bucket = ${bucket} and flow = ${flow}`;
}

/** The flow is done asking (see budget.ts leaveSplit). */
export async function leaveRequestBudget(sql: Sql, bucket: string, flow: string): Promise<void> {
  await sql`update rate_bucket_flows set active_until = least(active_until, clock_timestamp()) where bucket = ${bucket} and flow = ${flow}`;
}

/** What a sync step's requests spend, in milliseconds. */
export type BudgetAnswer = { granted: true; waitMs: number; againMs: number } | { granted: false; againMs: number };

export interface RequestBudget {
  /** Asks for a token: send after `waitMs`, or ask again in `againMs` (nothing taken). */
  take(): Promise<BudgetAnswer>;
  /** Gives back a granted token whose wait was cancelled. */
  giveBack(): Promise<void>;
  /** This connection is done asking for now (its run ended). */
  leave(): Promise<void>;
}

/**
 * One connection's view of its party's budget. `maxWaitMs` is the longest wait in place: a token is
 * taken only if it is due within it, so nobody holds one while handing the wait to the workflow.
 */
export function requestBudget(
  sql: Sql,
  o: { bucket: string; connectionId: string; tenantId: string; requestsPerHour: number; maxWaitMs: number },
): RequestBudget {
  const limits = budgetLimits(o.requestsPerHour, o.maxWaitMs / 1000);
  const ms = (seconds: number) => Math.ceil(seconds * 1000);
  return {
    async take() {
      const d = await takeRequestToken(sql, o.bucket, { flow: o.connectionId, tenant: o.tenantId, draw: Math.random() }, limits);
      return d.granted
        ? { granted: true, waitMs: ms(d.waitSeconds), againMs: ms(d.againSeconds) }
        : { granted: false, againMs: ms(d.againSeconds) };
    },
    giveBack: () => returnRequestToken(sql, o.bucket, o.connectionId, limits),
    leave: () => leaveRequestBudget(sql, o.bucket, o.connectionId),
  };
}
