/**
 * The arithmetic of a shared request budget (README "Pacing"), pure so it can be reasoned about and
 * property-tested. `take_request_token` (migration 00012) runs exactly these rules in Postgres under
 * the bucket's row lock; test/integration/rate-bucket.test.ts replays random histories through both
 * and checks they agree. Times are in seconds.
 *
 * - **The bucket** holds at most `burst` tokens and refills at `perSecond`.
 * - **Spare:** a whole token in the bucket is one nobody is waiting in line for (a token owed to
 *   somebody in line makes the balance negative), so anyone may take it at once, and nobody's share
 *   is looked at. This keeps the budget work-conserving: what busy flows leave unused goes to
 *   whoever asks first.
 * - **Contended:** otherwise only a flow (a connection) whose **fair share** has a token ready (it
 *   is *owed* one) may take one, and waits in line for it: the balance goes negative, and the token
 *   is sent once it is back to zero. The line is never longer than `maxWaitSeconds` (the balance
 *   never drops below -perSecond × maxWaitSeconds): an owed flow that would wait longer takes nothing.
 * - **Fair share:** the flows active now split the rate equally by tenant, and each tenant's share
 *   equally among its active connections: share = perSecond / (tenants × connections of mine). A
 *   flow's credit refills at its share and holds at most one token, so no flow banks an advantage.
 * - **Nobody is kept guessing:** every answer says when to ask again: after a grant, when the flow's
 *   next token of credit is due; after a refusal, when it is owed one and the line has room (those
 *   turned away by a full line are spread over its length, so they do not all come back at once).
 * - A flow is **active** from an ask until `activeGraceSeconds` after the moment it was told to come
 *   back, or until it leaves (its run ended, its wait was cancelled); a flow that stops asking (a
 *   killed worker) leaves the split by itself. A flow joining (or rejoining) the split starts at a
 *   random point of its first round, so connections starting together spread their first requests.
 */

export interface BudgetLimits {
  /** Tokens per second the bucket refills: the party's hourly budget / 3600. */
  perSecond: number;
  /** Most tokens banked: the burst allowed after a quiet spell. */
  burst: number;
  /** Longest wait for a granted token: the balance never drops below -perSecond × this. */
  maxWaitSeconds: number;
  /** How long past its next ask a flow still counts in the split. */
  activeGraceSeconds: number;
}

export interface BucketState {
  tokens: number;
  /** When `tokens` was last brought up to date. */
  at: number;
}

export interface FlowState {
  tenant: string;
  /** Fair-share credit, 0..1, as of `at`. */
  credit: number;
  at: number;
  activeUntil: number;
}

export interface Asker {
  flow: string;
  tenant: string;
  /**
   * Uniform in [0, 1), drawn by the caller for each ask: the credit it starts with if it is not in
   * the split now, and where in a full line's length it comes back if turned away.
   */
  draw: number;
}

/**
 * Granted: send after `waitSeconds` (at most the limit's maxWaitSeconds), and ask for the next token
 * no sooner than `againSeconds` from now. Refused: nothing taken; ask again in `againSeconds`.
 */
export type Decision = { granted: true; waitSeconds: number; againSeconds: number } | { granted: false; againSeconds: number };

export interface Outcome {
  decision: Decision;
  /** The bucket's new state, when it changed. */
  bucket?: BucketState;
  /** The asker's new flow state, when it changed. */
  flow?: FlowState;
}

/** Comparisons allow for float rounding: a token refilled to 0.9999999999 is a token. */
export const EPSILON = 1e-9;

/** A minute's worth of burst; waits in line up to `maxWaitSeconds`. */
export function budgetLimits(perHour: number, maxWaitSeconds: number, activeGraceSeconds = 30): BudgetLimits {
  return { perSecond: perHour / 3600, burst: Math.max(1, perHour / 60), maxWaitSeconds, activeGraceSeconds };
}

/** Tokens after refilling at `rate` from `at` to `now`, capped (a clock that went back refills nothing). */
export function refill(tokens: number, at: number, now: number, rate: number, cap: number): number {
  return Math.min(cap, tokens + rate * Math.max(0, now - at));
}

/**
 * The asker's fair share of `perSecond`: equal per active tenant, then equal per active connection
 * of its tenant. The asker always counts itself.
 */
export function fairShare(perSecond: number, asker: Omit<Asker, 'draw'>, flows: ReadonlyMap<string, FlowState>, now: number): number {
  const tenants = new Set([asker.tenant]);
  let peers = 1;
  for (const [flow, f] of flows) {
    if (flow === asker.flow || f.activeUntil <= now) continue;
    tenants.add(f.tenant);
    if (f.tenant === asker.tenant) peers += 1;
  }
  return perSecond / (tenants.size * peers);
}

/** One ask for a token at `now`. `bucket` is undefined before the bucket's first use (it starts full). */
export function takeToken(
  limits: BudgetLimits,
  bucket: BucketState | undefined,
  flows: ReadonlyMap<string, FlowState>,
  asker: Asker,
  now: number,
): Outcome {
  const { perSecond: rate } = limits;
  const tokens = bucket ? refill(bucket.tokens, bucket.at, now, rate, limits.burst) : limits.burst;
  if (tokens >= 1 - EPSILON) {
    // Ask again when the next whole token is there (at once if one still is).
    const againSeconds = Math.max(0, (2 - tokens) / rate);
    return { decision: { granted: true, waitSeconds: 0, againSeconds }, bucket: { tokens: tokens - 1, at: now } };
  }
  const share = fairShare(rate, asker, flows, now);
  const mine = flows.get(asker.flow);
  const credit = mine && mine.activeUntil > now ? refill(mine.credit, mine.at, now, share, 1) : asker.draw;
  const floor = -rate * limits.maxWaitSeconds;
  const owed = credit >= 1 - EPSILON;
  const flow = (left: number, until: number): FlowState => ({
    tenant: asker.tenant,
    credit: left,
    at: now,
    activeUntil: now + until + limits.activeGraceSeconds,
  });
  if (!owed || tokens - 1 < floor - EPSILON) {
    // Not owed a token yet, or the line is full: ask again once it is owed one and there is room.
    // Those turned away by a full line would all be told the same moment: spread them over its length.
    const room = (floor + 1 - tokens) / rate + (owed ? asker.draw * Math.max(limits.maxWaitSeconds, 1 / rate) : 0);
    const againSeconds = Math.max(owed ? 0 : (1 - credit) / share, room);
    return { decision: { granted: false, againSeconds }, flow: flow(credit, againSeconds) };
  }
  // Owed, and in line: sent once the balance is back to zero.
  const waitSeconds = (1 - tokens) / rate;
  const againSeconds = Math.max(waitSeconds, (2 - credit) / share);
  return {
    decision: { granted: true, waitSeconds, againSeconds },
    bucket: { tokens: tokens - 1, at: now },
    flow: flow(credit - 1, againSeconds),
  };
}

/**
 * A granted token whose wait was cancelled (pause, disconnect, shutdown) goes back to the bucket.
 * Adding before or after the refill is the same once capped, so the stored balance needs no refill.
 */
export function returnToken(limits: BudgetLimits, bucket: BucketState): BucketState {
  return { tokens: Math.min(limits.burst, bucket.tokens + 1), at: bucket.at };
}

/**
 * A flow that is done asking (its run finished, its wait was cancelled) leaves the split at once,
 * rather than holding its share until its grace runs out; asking again rejoins it.
 */
export function leaveSplit(flow: FlowState, now: number): FlowState {
  return { ...flow, activeUntil: Math.min(flow.activeUntil, now) };
}
