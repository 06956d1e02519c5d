import { seededRandom, type Rand } from '../../simulators/shared';

/**
 * When the chaos suite kills what, drawn from one seed so that `CHAOS_SEED=<n>` replays the same
 * kill points (times are relative to the start of the chaos phase).
 */

export type OutageKind = 'worker' | 'temporal' | 'postgres' | 'api';

export type ChaosEvent = { at: number; kind: 'kill'; target: OutageKind; worker?: number; downMs: number } | { at: number; kind: 'mutate' };

export interface ScheduleOptions {
  durationMs: number;
  workers: number;
  workerKills: number;
  apiKills: number;
}

const between = (rand: Rand, min: number, max: number) => Math.round(min + rand() * (max - min));

/** Pure: the events of one run, in time order. */
export function chaosSchedule(seed: number, o: ScheduleOptions): ChaosEvent[] {
  const rand = seededRandom(seed);
  const d = o.durationMs;
  const events: ChaosEvent[] = [];
  // Worker kills spread over the whole phase: one in each of `workerKills` equal slots.
  const first = 3_000;
  const slot = (d - first - 5_000) / o.workerKills;
  for (let i = 0; i < o.workerKills; i++) {
    events.push({
      at: between(rand, first + i * slot, first + (i + 1) * slot),
      kind: 'kill',
      target: 'worker',
      worker: Math.floor(rand() * o.workers),
      downMs: between(rand, 0, 3_000),
    });
  }
  // Temporal and Postgres each go down once, in random order, in windows that do not overlap.
  const [early, late] = rand() < 0.5 ? (['temporal', 'postgres'] as const) : (['postgres', 'temporal'] as const);
  events.push({ at: between(rand, 0.2 * d, 0.4 * d), kind: 'kill', target: early, downMs: between(rand, 2_000, 6_000) });
  events.push({ at: between(rand, 0.55 * d, 0.75 * d), kind: 'kill', target: late, downMs: between(rand, 2_000, 6_000) });
  for (let i = 0; i < o.apiKills; i++) {
    events.push({ at: between(rand, 0.1 * d, 0.9 * d), kind: 'kill', target: 'api', downMs: between(rand, 0, 2_000) });
  }
  // New provider data now and then, so the last syncs are incremental ones with something to fetch.
  for (const share of [0.15, 0.45, 0.7]) events.push({ at: Math.round(share * d), kind: 'mutate' });
  return events.sort((a, b) => a.at - b.at);
}
