import fc from 'fast-check';
import {
  budgetLimits,
  EPSILON,
  fairShare,
  leaveSplit,
  returnToken,
  takeToken,
  type Asker,
  type BucketState,
  type BudgetLimits,
  type FlowState,
} from '../../src/sync/budget';

/**
 * The shared request budget's arithmetic (src/sync/budget.ts): the deficit is bounded and nobody
 * waits longer than the limit for a token, what is sent stays within the budget in every window, a
 * refused caller told to come back is served then, a returned token is there for the next caller,
 * and flows that keep asking get their fair share (equal per tenant, then per connection) while
 * nothing is wasted when everyone is busy.
 */

interface World {
  bucket?: BucketState;
  flows: Map<string, FlowState>;
}

function ask(limits: BudgetLimits, world: World, asker: Asker, now: number) {
  const outcome = takeToken(limits, world.bucket, world.flows, asker, now);
  if (outcome.bucket) world.bucket = outcome.bucket;
  if (outcome.flow) world.flows.set(asker.flow, outcome.flow);
  return outcome.decision;
}

const unit = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });

/** Asks (and now and then a cancelled wait) at arbitrary moments by arbitrary flows of a few tenants. */
const history = fc
  .array(
    fc.record({
      dt: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 30, noNaN: true })),
      flow: fc.integer({ min: 0, max: 7 }),
      draw: unit,
      cancel: fc.boolean(),
    }),
    { minLength: 1, maxLength: 300 },
  )
  .map((steps) => {
    let now = 1_000;
    return steps.map(({ dt, flow, draw, cancel }) => ({
      now: (now += dt),
      asker: { flow: `f${flow}`, tenant: `t${flow % 3}`, draw },
      cancel,
    }));
  });
const limitsArb = fc.record({ perHour: fc.integer({ min: 1, max: 100_000 }), maxWait: fc.integer({ min: 0, max: 120 }) });

describe('the bucket', () => {
  it('never goes below -rate × the longest wait nor above its burst; no token is granted further out than that wait', () => {
    fc.assert(
      fc.property(limitsArb, history, ({ perHour, maxWait }, asks) => {
        const limits = budgetLimits(perHour, maxWait);
        const world: World = { flows: new Map() };
        for (const { asker, now, cancel } of asks) {
          const decision = ask(limits, world, asker, now);
          if (decision.granted) expect(decision.waitSeconds).toBeLessThanOrEqual(maxWait + EPSILON);
          if (decision.granted && decision.waitSeconds > 0 && cancel) {
            world.bucket = returnToken(limits, world.bucket!);
            world.flows.set(asker.flow, leaveSplit(world.flows.get(asker.flow)!, now));
          }
          // Not written yet: the bucket starts full.
          const tokens = world.bucket?.tokens ?? limits.burst;
          expect(tokens).toBeGreaterThanOrEqual(-limits.perSecond * maxWait - EPSILON);
          expect(tokens).toBeLessThanOrEqual(limits.burst);
          for (const f of world.flows.values()) {
            expect(f.credit).toBeGreaterThanOrEqual(-EPSILON);
            expect(f.credit).toBeLessThanOrEqual(1);
          }
        }
      }),
    );
  });

  it('sends at most burst + rate × window in every window (one more per token returned)', () => {
    fc.assert(
      fc.property(limitsArb, history, ({ perHour, maxWait }, asks) => {
        const limits = budgetLimits(perHour, maxWait);
        const world: World = { flows: new Map() };
        const sends: number[] = [];
        let returned = 0;
        for (const { asker, now, cancel } of asks) {
          const decision = ask(limits, world, asker, now);
          if (!decision.granted) continue;
          if (decision.waitSeconds > 0 && cancel) {
            world.bucket = returnToken(limits, world.bucket!);
            returned += 1;
          } else sends.push(now + decision.waitSeconds);
        }
        sends.sort((a, b) => a - b);
        for (let i = 0; i < sends.length; i++) {
          for (let j = i; j < sends.length; j++) {
            expect(j - i + 1).toBeLessThanOrEqual(limits.burst + limits.perSecond * (sends[j]! - sends[i]!) + returned + 1e-6);
          }
        }
      }),
    );
  });

  it('a spare token goes to whoever asks; when none is spare, only a flow owed its share, waiting in line', () => {
    const limits = budgetLimits(3600, 60); // one a second, a minute's worth banked
    const world: World = { flows: new Map() };
    const a = { flow: 'a', tenant: 't', draw: 0.75 };
    for (let i = 0; i < 60; i++) expect(ask(limits, world, a, 0)).toMatchObject({ granted: true, waitSeconds: 0 });
    // None spare: a joins the split a quarter of a round before its first token (alone, its share is the whole rate).
    expect(ask(limits, world, a, 0)).toEqual({ granted: false, againSeconds: 0.25 });
    expect(ask(limits, world, a, 0.25)).toEqual({ granted: true, waitSeconds: 0.75, againSeconds: 1 });
    expect(ask(limits, world, a, 0.25)).toEqual({ granted: false, againSeconds: 1 });
    // b joins owed its first token, and waits in line behind a's; each now has half the rate.
    expect(ask(limits, world, { flow: 'b', tenant: 't', draw: 1 - 1e-12 }, 0.25)).toMatchObject({ granted: true, waitSeconds: 1.75 });
    // a's credit refills at half the rate since: 0.125 at 0.5, so it is owed again 1.75 s later.
    expect(ask(limits, world, a, 0.5)).toMatchObject({ granted: false, againSeconds: 1.75 });
  });

  it('queues owed callers behind the bucket’s balance, each a token’s time after the previous', () => {
    const limits = budgetLimits(3600, 5); // 1 a second, waits up to 5 s
    const world: World = { bucket: { tokens: 0.5, at: 0 }, flows: new Map() };
    const waits = Array.from({ length: 6 }, (_, i) => ask(limits, world, { flow: `f${i}`, tenant: `t${i}`, draw: 1 - 1e-12 }, 0));
    expect(waits.slice(0, 5).map((d) => d.granted && d.waitSeconds)).toEqual([0.5, 1.5, 2.5, 3.5, 4.5]);
    // The sixth would wait 5.5 s: it takes nothing and is told to come back once a token within 5 s
    // is free (0.5 s), plus its part of the line's length, so those turned away do not all come back at once.
    expect(waits[5]).toEqual({ granted: false, againSeconds: expect.closeTo(0.5 + (1 - 1e-12) * 5, 9) });
  });

  it('takes back a cancelled wait’s token: the next caller gets its slot', () => {
    const limits = budgetLimits(3600, 10);
    const world: World = { bucket: { tokens: 0, at: 0 }, flows: new Map() };
    const owed = (flow: string) => ({ flow, tenant: flow, draw: 1 - 1e-12 });
    expect(ask(limits, world, owed('a'), 0)).toMatchObject({ granted: true, waitSeconds: 1 });
    world.bucket = returnToken(limits, world.bucket!);
    world.flows.set('a', leaveSplit(world.flows.get('a')!, 0.5));
    expect(world.bucket.tokens).toBe(0);
    // a has left the split: b is alone, and owed.
    expect(fairShare(1, owed('b'), world.flows, 0.5)).toBe(1);
    expect(ask(limits, world, owed('b'), 0.5)).toMatchObject({ granted: true, waitSeconds: 0.5 });
  });
});

describe('a refused caller', () => {
  it('is served when it comes back as told, if nobody else asked meanwhile', () => {
    fc.assert(
      fc.property(limitsArb, history, fc.integer({ min: 0, max: 7 }), ({ perHour, maxWait }, asks, who) => {
        const limits = budgetLimits(perHour, maxWait);
        const world: World = { flows: new Map() };
        for (const { asker, now } of asks) ask(limits, world, asker, now);
        const asker = { flow: `f${who}`, tenant: `t${who % 3}`, draw: 0.5 };
        const now = asks.at(-1)!.now;
        const first = ask(limits, world, asker, now);
        if (!first.granted) expect(ask(limits, world, asker, now + first.againSeconds).granted).toBe(true);
      }),
    );
  });
});

describe('fair shares', () => {
  it('split the rate equally per active tenant, then per active connection of the tenant', () => {
    const flows = new Map<string, FlowState>([
      ['a1', { tenant: 'A', credit: 0, at: 0, activeUntil: 100 }],
      ['a2', { tenant: 'A', credit: 0, at: 0, activeUntil: 100 }],
      ['a3', { tenant: 'A', credit: 0, at: 0, activeUntil: 100 }],
      ['b1', { tenant: 'B', credit: 0, at: 0, activeUntil: 100 }],
      ['c1', { tenant: 'C', credit: 0, at: 0, activeUntil: 5 }], // no longer active at 10
    ]);
    expect(fairShare(6, { flow: 'a1', tenant: 'A' }, flows, 10)).toBeCloseTo(1, 12);
    expect(fairShare(6, { flow: 'b1', tenant: 'B' }, flows, 10)).toBeCloseTo(3, 12);
    expect(fairShare(6, { flow: 'c1', tenant: 'C' }, flows, 10)).toBeCloseTo(2, 12);
    expect(fairShare(6, { flow: 'x', tenant: 'A' }, flows, 10)).toBeCloseTo(0.75, 12);
  });
});

interface SimFlow extends Omit<Asker, 'draw'> {
  /** Seconds from sending a request to asking for the next (the request and its page's commit). */
  busy: number;
  /** Requests it needs; Infinity keeps it asking. */
  requests: number;
}

/** A small seeded PRNG, so a failing simulation replays exactly. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Flows that ask whenever they are told to (and no sooner than `busy` after sending), from a bucket
 * that starts empty: what a backfill of many connections on one consumer does.
 */
function simulate(limits: BudgetLimits, flows: SimFlow[], until: number, seed = 1) {
  const world: World = { bucket: { tokens: 0, at: 0 }, flows: new Map() };
  const random = mulberry32(seed);
  const next = new Map(flows.map((f) => [f.flow, random() * 1e-3]));
  const left = new Map(flows.map((f) => [f.flow, f.requests]));
  const sends: { flow: string; tenant: string; at: number }[] = [];
  const finished = new Map<string, number>();
  let asks = 0;
  for (;;) {
    let flow: SimFlow | undefined;
    for (const f of flows) if (next.has(f.flow) && (!flow || next.get(f.flow)! < next.get(flow.flow)!)) flow = f;
    if (!flow || next.get(flow.flow)! > until) break;
    const now = next.get(flow.flow)!;
    asks += 1;
    const decision = ask(limits, world, { ...flow, draw: random() }, now);
    if (!decision.granted) {
      next.set(flow.flow, now + decision.againSeconds);
      continue;
    }
    const at = now + decision.waitSeconds;
    sends.push({ flow: flow.flow, tenant: flow.tenant, at });
    left.set(flow.flow, left.get(flow.flow)! - 1);
    if (left.get(flow.flow)! <= 0) {
      // Its run is over: it leaves the split (the sync step does so after a run's last step).
      world.flows.set(flow.flow, leaveSplit(world.flows.get(flow.flow) ?? { tenant: flow.tenant, credit: 0, at, activeUntil: at }, at));
      next.delete(flow.flow);
      finished.set(flow.flow, at);
    } else next.set(flow.flow, Math.max(at + flow.busy, now + decision.againSeconds));
  }
  return { sends, finished, asks };
}

const layout = fc.record({
  seed: fc.integer(),
  tenants: fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 4 }),
  perHour: fc.integer({ min: 360, max: 36_000 }),
  maxWait: fc.integer({ min: 0, max: 60 }),
  // Each connection alone could go faster than the whole budget (10/s at most here).
  busy: fc.double({ min: 0.001, max: 0.05, noNaN: true }),
});

function flowsOf(tenants: number[], busy: number, requests = Infinity): SimFlow[] {
  return tenants.flatMap((n, t) => Array.from({ length: n }, (_, i) => ({ flow: `t${t}c${i}`, tenant: `t${t}`, busy, requests })));
}

describe('many busy connections on one consumer', () => {
  it('every tenant gets its equal share, every connection its equal part of it, nothing is wasted, about one ask per request', () => {
    fc.assert(
      fc.property(layout, ({ tenants, perHour, maxWait, busy, seed }) => {
        // Room in line for ten tokens or more (the defaults leave fifteen; README "Pacing"): in a shorter
        // line, owed callers more often find it full, come back and ask again.
        const limits = budgetLimits(perHour, Math.max(maxWait, Math.ceil((10 * 3600) / perHour)));
        const flows = flowsOf(tenants, busy);
        // Long enough for every connection to be served a hundred times and more at its share, so the
        // start (everyone joining at once) weighs little.
        const horizon = (80 * tenants.length * Math.max(...tenants)) / limits.perSecond;
        const { sends, asks } = simulate(limits, flows, horizon, seed);
        // Nothing wasted: the bucket started empty, so everything sent is what refilled.
        expect(sends.length).toBeGreaterThanOrEqual(limits.perSecond * horizon - flows.length - 1);
        // Waiting in line for a token saves asking again: about one ask per request.
        expect(asks).toBeLessThanOrEqual(1.15 * sends.length + flows.length);
        const perTenant = tenants.map((_, t) => sends.filter((s) => s.tenant === `t${t}`).length);
        const fair = sends.length / tenants.length;
        for (const n of perTenant) expect(Math.abs(n - fair)).toBeLessThanOrEqual(0.15 * fair + 2);
        for (const [t, n] of tenants.entries()) {
          const counts = flows.filter((f) => f.tenant === `t${t}`).map((f) => sends.filter((s) => s.flow === f.flow).length);
          const part = perTenant[t]! / n;
          for (const c of counts) expect(Math.abs(c - part)).toBeLessThanOrEqual(0.1 * part + 2);
        }
      }),
      { numRuns: 25 },
    );
  });

  it('a small tenant’s sync finishes long before a big tenant’s backfill, which then gets the whole rate', () => {
    const limits = budgetLimits(3600, 60);
    const big = Array.from({ length: 30 }, (_, i) => ({ flow: `big${i}`, tenant: 'big', busy: 0.05, requests: 20 }));
    const small = { flow: 'small', tenant: 'small', busy: 0.05, requests: 20 };
    const { finished, sends } = simulate(limits, [...big, small], 10_000);
    const smallDone = finished.get('small')!;
    expect(big.every((b) => finished.get(b.flow)! > smallDone)).toBe(true);
    // It had half the rate while each big connection had 1/60 of it.
    expect(sends.filter((s) => s.at <= smallDone && s.tenant === 'big').length).toBeLessThanOrEqual(22);
    // All 620 went out at about the full rate (one a second) from an empty bucket.
    expect(Math.max(...finished.values())).toBeLessThanOrEqual(620 * 1.05);
  });

  it('connections that ask rarely leave their unused share to the busy ones', () => {
    const limits = budgetLimits(3600, 60);
    // Tenant "slow": its connections hold a share each but use one request every 100 s.
    const slow = Array.from({ length: 5 }, (_, i) => ({ flow: `slow${i}`, tenant: 'slow', busy: 100, requests: Infinity }));
    const busy = Array.from({ length: 5 }, (_, i) => ({ flow: `busy${i}`, tenant: 'busy', busy: 0.05, requests: Infinity }));
    const horizon = 3_000;
    const { sends } = simulate(limits, [...slow, ...busy], horizon);
    expect(sends.filter((s) => s.tenant === 'slow').length).toBeLessThanOrEqual((5 * horizon) / 100 + 5);
    // The busy tenant gets nearly everything else: the budget is not left unspent.
    expect(sends.length).toBeGreaterThanOrEqual(limits.perSecond * horizon - limits.burst);
  });
});
