import { seededRandom, pick, type Rand } from '../../simulators/shared';
import type { Provider } from '../../src/providers/manifests';
import { MANIFESTS } from '../../src/providers/manifests';
import type { ApiRequest } from '../helpers/stack';

/**
 * A customer's integration during the chaos: it pauses, resumes and asks for syncs through the
 * API while things die under it, and keeps a model of what the API accepted. Every 2xx is checked
 * at once against what the API then reads back (the database): an accepted action that is not
 * reflected is a lost update. An answer that never came (the API died, a 503 after the workflow did
 * not answer) may still be applied later, so that connection is left alone for a while before
 * its state is read again.
 */

export interface ConnectionRef {
  id: string;
  provider: Provider;
}

type Action = 'pause' | 'resume' | 'sync' | 'backfill';

interface Model {
  ref: ConnectionRef;
  expected: 'active' | 'paused' | 'unknown';
  busy: boolean;
  /** No action before then: an earlier one's outcome is unknown and may still land. */
  quietUntil: number;
  /** When an action last went unanswered (its outcome unknown; it may land later). */
  lastUnknownAt: number;
  /** When the last accepted sync request was sent (the run it asked for must start after it). */
  lastSyncSentAt?: number;
  log: string[];
}

export interface ClientStats {
  sent: Record<Action, number>;
  accepted: Record<Action, number>;
  refused409: number;
  unavailable503: number;
  /** No answer at all (connection refused or reset, our timeout). */
  noAnswer: number;
  other: Record<string, number>;
  lostUpdates: string[];
  /** Read-backs that disagreed right after an unanswered action, which may have landed in between. */
  inconclusive: number;
}

/** How long a connection is left alone after an action whose outcome is unknown. */
const QUIET_AFTER_UNKNOWN_MS = 30_000;

export class ChaosClient {
  private readonly models: Model[];
  private readonly rand: Rand;
  private stopped = false;
  /** Actions (not reads) in flight, so the API can be killed while one is. */
  inFlight = 0;
  readonly stats: ClientStats = {
    sent: { pause: 0, resume: 0, sync: 0, backfill: 0 },
    accepted: { pause: 0, resume: 0, sync: 0, backfill: 0 },
    refused409: 0,
    unavailable503: 0,
    noAnswer: 0,
    other: {},
    lostUpdates: [],
    inconclusive: 0,
  };

  constructor(
    private readonly request: ApiRequest,
    private readonly apiKey: string,
    connections: ConnectionRef[],
    seed: number,
  ) {
    this.models = connections.map((ref) => ({ ref, expected: 'active', busy: false, quietUntil: 0, lastUnknownAt: 0, log: [] }));
    this.rand = seededRandom(seed ^ 0x5eed);
  }

  /** Runs `slots` action loops until `stop()`. */
  async run(slots: number): Promise<void> {
    await Promise.all(Array.from({ length: slots }, () => this.loop()));
  }

  stop(): void {
    this.stopped = true;
  }

  /**
   * The end of the chaos: every connection is resumed if paused and asked for one more sync, each
   * retried until the API accepts it, so the last accepted action of every connection is a sync.
   * An earlier unanswered action may still land after this (the API said it might): `settle` puts
   * such a connection right again.
   */
  async finish(deadlineMs: number): Promise<void> {
    await Promise.all(this.models.map((m) => this.finalSync(m, Date.now() + deadlineMs)));
  }

  /** Resumes (if paused) and syncs one connection again, e.g. when a late pause landed or a sync left records for the next run. */
  async settle(id: string, deadlineMs: number): Promise<void> {
    const m = this.models.find((x) => x.ref.id === id);
    if (m && !m.busy) await this.finalSync(m, Date.now() + deadlineMs);
  }

  private async finalSync(m: Model, deadline: number): Promise<void> {
    while (m.busy) await sleep(100);
    m.busy = true;
    try {
      for (;;) {
        if (Date.now() > deadline) throw new Error(`connection ${m.ref.id} never took its final sync:\n  ${m.log.slice(-10).join('\n  ')}`);
        await this.refresh(m);
        if (m.expected === 'unknown') continue;
        const action: Action = m.expected === 'paused' ? 'resume' : 'sync';
        const accepted = await this.act(m, action);
        if (accepted && action === 'sync') return;
        if (!accepted) await sleep(500);
      }
    } finally {
      m.busy = false;
    }
  }

  /** Per connection: when its last accepted sync was asked for. */
  lastSyncRequests(): Map<string, number | undefined> {
    return new Map(this.models.map((m) => [m.ref.id, m.lastSyncSentAt]));
  }

  logOf(id: string): string[] {
    return this.models.find((m) => m.ref.id === id)?.log ?? [];
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const now = Date.now();
      const free = this.models.filter((m) => !m.busy && now >= m.quietUntil);
      if (free.length === 0) {
        await sleep(100);
        continue;
      }
      const m = pick(this.rand, free);
      m.busy = true;
      try {
        if (m.expected === 'unknown') await this.refresh(m);
        else await this.act(m, this.choose(m));
      } finally {
        m.busy = false;
      }
      await sleep(100 + Math.floor(this.rand() * 400));
    }
  }

  private choose(m: Model): Action {
    if (m.expected === 'paused') return 'resume';
    const u = this.rand();
    return u < 0.3 ? 'pause' : u < 0.9 ? 'sync' : 'backfill';
  }

  /** Sends one action; on a 2xx checks that the API then reads it back. Returns whether it was accepted. */
  private async act(m: Model, action: Action): Promise<boolean> {
    const { id, provider } = m.ref;
    const path = action === 'pause' || action === 'resume' ? `/v1/connections/${id}/${action}` : `/v1/connections/${id}/sync`;
    const body =
      action === 'backfill' ? { full: true, resources: [pick(this.rand, MANIFESTS[provider].resources as readonly string[])] } : undefined;
    const sentAt = Date.now();
    this.stats.sent[action] += 1;
    this.inFlight += 1;
    let status: number | 'none';
    let answer: unknown;
    try {
      const res = await this.request('POST', path, { apiKey: this.apiKey, body });
      status = res.status;
      answer = res.body;
    } catch {
      status = 'none';
    } finally {
      this.inFlight -= 1;
    }
    const code = (answer as { error?: { code?: string } } | undefined)?.error?.code;
    m.log.push(`${new Date(sentAt).toISOString()} ${action} → ${status}${code ? ` ${code}` : ''}`);
    if (typeof status === 'number' && status >= 200 && status < 300) {
      this.stats.accepted[action] += 1;
      m.expected = action === 'pause' ? 'paused' : 'active';
      if (action === 'sync' || action === 'backfill') m.lastSyncSentAt = sentAt;
      await this.verify(m, action);
      return true;
    }
    if (status === 409) {
      // Our model was wrong (an earlier unanswered action landed after all): read the truth.
      this.stats.refused409 += 1;
      await this.refresh(m);
      return false;
    }
    if (status === 'none') this.stats.noAnswer += 1;
    else if (status === 503) this.stats.unavailable503 += 1;
    else this.stats.other[String(status)] = (this.stats.other[String(status)] ?? 0) + 1;
    m.expected = 'unknown';
    m.quietUntil = Date.now() + QUIET_AFTER_UNKNOWN_MS;
    m.lastUnknownAt = Date.now();
    return false;
  }

  /** An accepted action is in the database by the time the API answers: read it back. */
  private async verify(m: Model, action: Action): Promise<void> {
    const status = await this.readStatus(m, 60_000);
    m.log.push(`  read back: ${status ?? 'unreadable'}`);
    if (status === undefined) return;
    if (status === m.expected) return;
    // An action that went unanswered shortly before may have landed in between: not conclusive.
    if (Date.now() - m.lastUnknownAt < 2 * QUIET_AFTER_UNKNOWN_MS) {
      this.stats.inconclusive += 1;
      m.expected = status === 'active' || status === 'paused' ? status : 'unknown';
      return;
    }
    this.stats.lostUpdates.push(`${m.ref.id}: ${action} was accepted (2xx), then the connection read ${status}`);
  }

  private async refresh(m: Model): Promise<void> {
    const status = await this.readStatus(m, 5_000);
    m.expected = status === 'active' || status === 'paused' ? status : 'unknown';
    if (m.expected === 'unknown') await sleep(500);
  }

  private async readStatus(m: Model, withinMs: number): Promise<string | undefined> {
    const deadline = Date.now() + withinMs;
    while (Date.now() < deadline) {
      try {
        const res = await this.request('GET', `/v1/connections/${m.ref.id}`, { apiKey: this.apiKey });
        if (res.status === 200) return (res.body as { status: string }).status;
      } catch {
        // the API is down: try again
      }
      await sleep(250);
    }
    return undefined;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
