import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';

/**
 * Pieces both provider simulators share: the request log, fault injection, the registry of
 * secrets handed out, deterministic data helpers, rate-limit windows, the `/_sim` control
 * routes and Bitbucket's filter/sort language (kept here so simulators/bitbucket/ stays readable).
 *
 * The simulators are test doubles for real HTTP clients, so everything here favours being
 * predictable (seeded data, monotonic clocks) over being clever.
 */

// ---------------------------------------------------------------------------------------------
// Request log

export interface RequestLogEntry {
  method: string;
  /** Path without the query string. */
  path: string;
  /** The raw query string as sent (no leading `?`), so tests can see exactly what a client put there. */
  query: string;
  status: number;
  /** Epoch milliseconds. */
  at: number;
}

export class RequestLog {
  private entries: RequestLogEntry[] = [];

  record(entry: RequestLogEntry): void {
    this.entries.push(entry);
  }

  list(): RequestLogEntry[] {
    return this.entries.map((e) => ({ ...e }));
  }

  clear(): void {
    this.entries = [];
  }
}

// ---------------------------------------------------------------------------------------------
// Fault injection

export type FaultStatus = 429 | 500 | 502 | 503;
export const FAULT_STATUSES: readonly FaultStatus[] = [429, 500, 502, 503];

export interface FaultSpec {
  status: FaultStatus;
  /** How many matching API requests fail before the fault is used up. */
  count: number;
  /**
   * Only requests whose path starts with this fail. Either the full path (`/2.0/repositories`)
   * or one relative to the API base (`/repositories`) is accepted.
   */
  pathPrefix?: string;
  /** Delay before the failing response is sent, to exercise client timeouts. */
  latencyMs?: number;
  /** Fail only every n-th matching request (5 = 20 %), deterministically, until `count` are spent. */
  everyNth?: number;
}

/**
 * A hostile or broken answer, for the sync engine's defences: the next `count` API responses whose
 * path starts with `pathPrefix` are altered. `records` appends raw records to the page's list
 * (`values` or `data`), `nullList` sends that list as `null`, `next` replaces the page's `next`
 * link (Bitbucket) or `paging.next` (Bitrise), and `redirect` answers with a 3xx to `location`.
 */
export type TamperSpec = { pathPrefix?: string; count?: number } & (
  | { kind: 'records'; records: unknown[] }
  | { kind: 'nullList' }
  | { kind: 'next'; next: string }
  | { kind: 'redirect'; status?: 301 | 302 | 303 | 307 | 308; location: string }
);

/** The controls both simulators share: their request log, fault switches and issued secrets. */
export interface CommonControl {
  requests(): RequestLogEntry[];
  clearRequests(): void;
  injectFaults(fault: FaultSpec): void;
  /** Alters the next matching API responses (see TamperSpec). Cleared by `reset`. */
  tamper(spec: TamperSpec): void;
  setLatency(ms: number): void;
  /** Turns on random faults, all kinds at once (see ChaosSpec); `null` turns them off. Cleared by `reset`. */
  setChaos(spec: ChaosSpec | null): void;
  /** How many faults of each kind chaos has served since it was last turned on. */
  chaosStats(): ChaosStats;
  /** Clears faults, latency, chaos and rate limits (and simulator-specific switches). Data and tokens are kept. */
  reset(): void;
  issuedSecrets(): string[];
}

export class FaultPlan {
  private pending: { spec: FaultSpec; remaining: number; seen: number }[] = [];
  private tampers: { spec: TamperSpec; remaining: number }[] = [];
  latencyMs = 0;

  tamper(spec: TamperSpec): void {
    const count = spec.count ?? 1;
    if (!Number.isInteger(count) || count < 1) throw new Error('count must be a positive integer');
    if (!['records', 'nullList', 'next', 'redirect'].includes(spec.kind))
      throw new Error('kind must be records, nullList, next or redirect');
    if (spec.kind === 'records' && !Array.isArray(spec.records)) throw new Error('records must be an array');
    if (spec.kind === 'next' && typeof spec.next !== 'string') throw new Error('next must be a string');
    if (spec.kind === 'redirect' && typeof spec.location !== 'string') throw new Error('location must be a string');
    this.tampers.push({ spec: { ...spec }, remaining: count });
  }

  /** Consumes one use of the first tamper matching `path` whose kind is one of `kinds`. */
  takeTamper(path: string, kinds: readonly TamperSpec['kind'][]): TamperSpec | undefined {
    const hit = this.tampers.find((t) => t.remaining > 0 && kinds.includes(t.spec.kind) && this.matches(t.spec.pathPrefix, path));
    if (!hit) return undefined;
    hit.remaining -= 1;
    this.tampers = this.tampers.filter((t) => t.remaining > 0);
    return hit.spec;
  }

  constructor(private readonly apiBase: string) {}

  inject(spec: FaultSpec): void {
    if (!FAULT_STATUSES.includes(spec.status)) {
      throw new Error(`status must be one of ${FAULT_STATUSES.join(', ')}`);
    }
    if (!Number.isInteger(spec.count) || spec.count < 1) throw new Error('count must be a positive integer');
    if (spec.latencyMs !== undefined && !(spec.latencyMs >= 0)) throw new Error('latencyMs must be >= 0');
    if (spec.everyNth !== undefined && !(Number.isInteger(spec.everyNth) && spec.everyNth >= 1))
      throw new Error('everyNth must be a positive integer');
    this.pending.push({ spec: { ...spec }, remaining: spec.count, seen: 0 });
  }

  setLatency(ms: number): void {
    if (!(ms >= 0)) throw new Error('latency must be >= 0');
    this.latencyMs = ms;
  }

  /** Consumes one use of the first fault matching `path`, FIFO, so queued faults fire in order. */
  take(path: string): { status: FaultStatus; latencyMs: number } | undefined {
    const hit = this.pending.find((f) => f.remaining > 0 && this.matches(f.spec.pathPrefix, path) && this.due(f));
    if (!hit) return undefined;
    hit.remaining -= 1;
    this.pending = this.pending.filter((f) => f.remaining > 0);
    return { status: hit.spec.status, latencyMs: hit.spec.latencyMs ?? 0 };
  }

  reset(): void {
    this.pending = [];
    this.tampers = [];
    this.latencyMs = 0;
  }

  /** Counts a matching request against an every-n-th fault; true when this one should fail. */
  private due(f: { spec: FaultSpec; seen: number }): boolean {
    if (!f.spec.everyNth) return true;
    f.seen += 1;
    return f.seen % f.spec.everyNth === 0;
  }

  private matches(prefix: string | undefined, path: string): boolean {
    if (!prefix) return true;
    return path.startsWith(prefix) || path.startsWith(this.apiBase + prefix);
  }
}

// ---------------------------------------------------------------------------------------------
// Secrets

/**
 * Every secret a simulator issued or accepted. Tests scan logs, the database and workflow
 * history for these strings to prove nothing leaks in plaintext.
 */
export class SecretRegistry {
  private readonly secrets = new Set<string>();

  add(secret: string): string {
    this.secrets.add(secret);
    return secret;
  }

  list(): string[] {
    return [...this.secrets];
  }
}

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** Crypto-random secret over `alphabet`; secrets must not be guessable even in a simulator. */
export function randomSecret(length: number, alphabet = ALNUM): string {
  const bytes = randomBytes(length * 2);
  let out = '';
  for (let i = 0; out.length < length && i < bytes.length; i += 2) {
    const n = ((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0);
    // Reject the biased tail so every character is equally likely.
    if (n < Math.floor(65536 / alphabet.length) * alphabet.length) out += alphabet[n % alphabet.length];
  }
  return out.length === length ? out : out + randomSecret(length - out.length, alphabet);
}

// ---------------------------------------------------------------------------------------------
// Deterministic data

/** mulberry32: tiny seeded PRNG, so seeded datasets are identical on every run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Rand = () => number;

export function pick<T>(rand: Rand, items: readonly T[]): T {
  const item = items[Math.floor(rand() * items.length)];
  if (item === undefined) throw new Error('pick from an empty list');
  return item;
}

export function intBetween(rand: Rand, min: number, max: number): number {
  return min + Math.floor(rand() * (max - min + 1));
}

export function hex(rand: Rand, length: number): string {
  let out = '';
  while (out.length < length) out += Math.floor(rand() * 16).toString(16);
  return out;
}

/** RFC 4122 v4-shaped UUID from the seeded stream. */
export function uuid(rand: Rand): string {
  const h = hex(rand, 32);
  const variant = ((parseInt(h[16] ?? '0', 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/**
 * Hands out strictly increasing timestamps no earlier than `floor`, so data created by a
 * mutation control is always newer than everything seeded or created before it, even when two
 * mutations land in the same millisecond. Incremental-sync tests rely on that ordering.
 */
export class MonotonicClock {
  private last: number;

  constructor(floor: number) {
    this.last = floor;
  }

  now(): number {
    this.last = Math.max(Date.now(), this.last + 1);
    return this.last;
  }

  /** Wall time without consuming a tick: for expiry checks, not for stamping data. */
  peek(): number {
    return Math.max(Date.now(), this.last);
  }
}

export function parseAnchor(anchor: string | undefined): number {
  if (anchor === undefined) return Math.floor(Date.now() / 1000) * 1000;
  const ms = Date.parse(anchor);
  if (Number.isNaN(ms)) throw new Error(`seed.anchor is not a date: ${anchor}`);
  return ms;
}

/** Bitbucket style: microseconds and an explicit `+00:00` offset. */
export function isoMicros(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000+00:00');
}

/** Bitrise builds style: whole seconds and `Z`. */
export function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Bitrise pipelines style: microseconds and `Z`. */
export function isoMicrosZ(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

// ---------------------------------------------------------------------------------------------
// Chaos: random faults of every kind at once, for the chaos suite

/**
 * Random faults, each request drawing at most one, from a seeded generator (a run can be replayed,
 * as far as request order allows). Rates are shares of provider API requests (0–1).
 */
export interface ChaosSpec {
  seed?: number;
  /** Answered 500, 502 or 503 with the provider's own error body. */
  errorRate?: number;
  /** The connection is reset: half of them before any byte is sent, half after the headers and half the body. */
  resetRate?: number;
  /** Answered late, after a delay drawn uniformly from 0…`slowMs`. */
  slowRate?: number;
  slowMs?: number;
  /**
   * Recurring 429 storms: during the first `lastsMs` of every `everyMs` (counted from when chaos was
   * turned on), this share of requests answers the provider's own 429 (Bitbucket's carries no
   * Retry-After, Bitrise's does).
   */
  storm?: { everyMs: number; lastsMs: number; rate: number };
  /**
   * OAuth providers: this share of refresh-token grants fails, half with a 503 before anything
   * happens, half after the refresh token was rotated, with the answer lost (the connection is
   * reset before the answer or halfway through its body): the client must then retry with the old
   * token inside the provider's grace window.
   */
  tokenFaultRate?: number;
}

export const CHAOS_FAULT_KINDS = [
  '5xx',
  'reset_before_response',
  'reset_mid_body',
  'slow',
  '429_storm',
  'token_5xx',
  'token_answer_lost',
] as const;
export type ChaosFaultKind = (typeof CHAOS_FAULT_KINDS)[number];
export type ChaosStats = Record<ChaosFaultKind, number>;

/** What chaos does to one API request. */
export type ChaosAction =
  | { kind: '5xx'; status: 500 | 502 | 503 }
  | { kind: 'reset_before_response' | 'reset_mid_body' | '429_storm' }
  | { kind: 'slow'; ms: number };

const emptyStats = (): ChaosStats => Object.fromEntries(CHAOS_FAULT_KINDS.map((k) => [k, 0])) as ChaosStats;

export class ChaosPlan {
  private spec?: ChaosSpec;
  private rand: Rand = seededRandom(1);
  private since = 0;
  private served = emptyStats();

  set(spec: ChaosSpec | null, now = Date.now()): void {
    if (spec === null) {
      this.spec = undefined;
      return;
    }
    const rates = ['errorRate', 'resetRate', 'slowRate', 'tokenFaultRate'] as const;
    for (const key of rates) {
      const v = spec[key];
      if (v !== undefined && !(typeof v === 'number' && v >= 0 && v <= 1)) throw new Error(`${key} must be a number from 0 to 1`);
    }
    const total = (spec.errorRate ?? 0) + (spec.resetRate ?? 0) + (spec.slowRate ?? 0);
    if (total > 1) throw new Error('errorRate + resetRate + slowRate must not exceed 1');
    if (spec.slowMs !== undefined && !(spec.slowMs >= 0)) throw new Error('slowMs must be >= 0');
    const storm = spec.storm;
    if (storm && !(storm.everyMs > 0 && storm.lastsMs >= 0 && storm.lastsMs <= storm.everyMs && storm.rate >= 0 && storm.rate <= 1))
      throw new Error('storm needs everyMs > 0, 0 <= lastsMs <= everyMs and a rate from 0 to 1');
    this.spec = { ...spec };
    this.rand = seededRandom(spec.seed ?? 1);
    this.since = now;
    this.served = emptyStats();
  }

  /** Draws the fault for one API request, if any, and counts it. */
  pick(now = Date.now()): ChaosAction | undefined {
    const spec = this.spec;
    if (!spec) return undefined;
    const action = this.draw(spec, now);
    if (action) this.served[action.kind] += 1;
    return action;
  }

  /** Draws the fault for one refresh-token grant, if any, and counts it. */
  pickToken(): { kind: 'token_5xx' } | { kind: 'token_answer_lost'; midBody: boolean } | undefined {
    const rate = this.spec?.tokenFaultRate ?? 0;
    if (rate === 0 || this.rand() >= rate) return undefined;
    if (this.rand() < 0.5) {
      this.served.token_5xx += 1;
      return { kind: 'token_5xx' };
    }
    this.served.token_answer_lost += 1;
    return { kind: 'token_answer_lost', midBody: this.rand() < 0.5 };
  }

  stats(): ChaosStats {
    return { ...this.served };
  }

  reset(): void {
    this.spec = undefined;
    this.served = emptyStats();
  }

  private draw(spec: ChaosSpec, now: number): ChaosAction | undefined {
    const storm = spec.storm;
    if (storm && (now - this.since) % storm.everyMs < storm.lastsMs && this.rand() < storm.rate) return { kind: '429_storm' };
    // One draw, split into consecutive bands: [0, errorRate) is a 5xx, then resets, then slow answers.
    const u = this.rand();
    const errors = spec.errorRate ?? 0;
    const resets = errors + (spec.resetRate ?? 0);
    const slow = resets + (spec.slowRate ?? 0);
    if (u < errors) return { kind: '5xx', status: pick(this.rand, [500, 502, 503] as const) };
    if (u < resets) return { kind: this.rand() < 0.5 ? 'reset_before_response' : 'reset_mid_body' };
    if (u < slow) return { kind: 'slow', ms: Math.round(this.rand() * (spec.slowMs ?? 1000)) };
    return undefined;
  }
}

/** Drops the connection without an answer, the way a reset or a dying proxy looks to the client. */
export function resetConnection(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  reply.hijack();
  request.raw.socket.destroy();
  return reply;
}

/**
 * Lets the answer's status line, headers (with the full Content-Length) and half its body out, then
 * resets the connection: what a connection dropped mid-transfer looks like to the client.
 */
export function cutMidBody(reply: FastifyReply): void {
  const raw = reply.raw;
  raw.end = ((chunk?: unknown) => {
    const body = typeof chunk === 'string' || Buffer.isBuffer(chunk) ? Buffer.from(chunk) : Buffer.alloc(0);
    raw.write(body.subarray(0, Math.floor(body.length / 2)), () => raw.destroy());
    return raw;
  }) as typeof raw.end;
}

// ---------------------------------------------------------------------------------------------
// Rate-limit windows

/** Rolling window (Bitbucket: "1,000 per rolling hour"). */
export class RollingWindow {
  private readonly hits = new Map<string, number[]>();

  constructor(private readonly windowMs: number) {}

  /** Records a hit unless the key is already at `limit` in the window. */
  tryHit(key: string, limit: number, now: number): boolean {
    const recent = (this.hits.get(key) ?? []).filter((t) => t > now - this.windowMs);
    const allowed = recent.length < limit;
    if (allowed) recent.push(now);
    this.hits.set(key, recent);
    return allowed;
  }

  clear(): void {
    this.hits.clear();
  }
}

/** Fixed window, which is what a `X-RateLimit-Reset` + `Retry-After` pair describes. */
export class FixedWindow {
  private readonly windows = new Map<string, { start: number; count: number }>();

  constructor(private readonly windowMs: number) {}

  hit(key: string, limit: number, now: number): { allowed: boolean; remaining: number; resetAt: number } {
    let w = this.windows.get(key);
    if (!w || now >= w.start + this.windowMs) {
      w = { start: now, count: 0 };
      this.windows.set(key, w);
    }
    const allowed = w.count < limit;
    if (allowed) w.count += 1;
    return { allowed, remaining: Math.max(0, limit - w.count), resetAt: w.start + this.windowMs };
  }

  clear(): void {
    this.windows.clear();
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP plumbing

export const SIM_PREFIX = '/_sim';

export function splitUrl(url: string): { path: string; query: string } {
  const i = url.indexOf('?');
  return i < 0 ? { path: url, query: '' } : { path: url.slice(0, i), query: url.slice(i + 1) };
}

/** Query parsing with form semantics (`+` is a space), which is what real servers do. */
export function queryParams(url: string): URLSearchParams {
  return new URLSearchParams(splitUrl(url).query);
}

/** Encodes with `%20` rather than `+`, the way Bitbucket's own `next` links look. */
export function encodeQuery(params: URLSearchParams): string {
  return [...params].map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Fastify with no logger: the simulators see secrets in headers and bodies and must not print them. */
export function createSimApp(): FastifyInstance {
  const app = Fastify({ logger: false, routerOptions: { ignoreTrailingSlash: true } });
  // The OAuth token endpoint takes a form body; other content types reach handlers as raw text so
  // they can answer the way the provider would instead of Fastify's 415.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(String(body))));
  });
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));
  return app;
}

export interface TrafficHooks {
  log: RequestLog;
  faults: FaultPlan;
  chaos: ChaosPlan;
  /** Faults and latency only apply to provider API paths (not OAuth, not `/_sim`). */
  isApiPath(path: string): boolean;
  /** Sends the provider's own response for an injected fault and returns the reply. */
  sendFault(reply: FastifyReply, status: FaultStatus): FastifyReply;
}

export function installTrafficHooks(app: FastifyInstance, hooks: TrafficHooks): void {
  app.addHook('onRequest', async (request, reply) => {
    const { path } = splitUrl(request.url);
    if (!hooks.isApiPath(path)) return;
    const redirect = hooks.faults.takeTamper(path, ['redirect']);
    if (redirect?.kind === 'redirect')
      return reply
        .code(redirect.status ?? 302)
        .header('location', redirect.location)
        .send();
    const fault = hooks.faults.take(path);
    if (fault) {
      if (fault.latencyMs > 0) await sleep(fault.latencyMs);
      // Returning the reply (which sendFault hands back) tells Fastify the hook answered the request.
      return hooks.sendFault(reply, fault.status);
    }
    const chaos = hooks.chaos.pick();
    if (chaos?.kind === '5xx') return hooks.sendFault(reply, chaos.status);
    if (chaos?.kind === '429_storm') return hooks.sendFault(reply, 429);
    if (chaos?.kind === 'reset_before_response') return resetConnection(request, reply);
    if (chaos?.kind === 'reset_mid_body') cutMidBody(reply);
    if (chaos?.kind === 'slow') await sleep(chaos.ms);
    if (hooks.faults.latencyMs > 0) await sleep(hooks.faults.latencyMs);
  });
  app.addHook('onSend', async (request, reply, payload) => {
    const { path } = splitUrl(request.url);
    if (!hooks.isApiPath(path) || reply.statusCode !== 200 || typeof payload !== 'string') return payload;
    const t = hooks.faults.takeTamper(path, ['records', 'nullList', 'next']);
    if (!t) return payload;
    return JSON.stringify(tamperBody(JSON.parse(payload) as unknown, t));
  });
  app.addHook('onResponse', async (request, reply) => {
    const { path, query } = splitUrl(request.url);
    if (path.startsWith(SIM_PREFIX)) return;
    hooks.log.record({ method: request.method, path, query, status: reply.statusCode, at: Date.now() });
  });
}

/** Applies a body tamper to a list page (`values` for Bitbucket, `data` for Bitrise). */
export function tamperBody(body: unknown, t: TamperSpec): unknown {
  if (!isRecord(body)) return body;
  const key = 'values' in body ? 'values' : 'data';
  const out: Record<string, unknown> = { ...body };
  if (t.kind === 'records' && Array.isArray(body[key])) out[key] = [...(body[key] as unknown[]), ...t.records];
  if (t.kind === 'nullList') out[key] = null;
  if (t.kind === 'next') {
    if (key === 'values') out.next = t.next;
    else out.paging = { ...(isRecord(body.paging) ? body.paging : {}), next: t.next };
  }
  return out;
}

export class SimInputError extends Error {}
export class SimNotFoundError extends Error {}

export interface SimRoute {
  method: 'GET' | 'POST';
  /** Relative to `/_sim`. */
  url: string;
  handler(body: Record<string, unknown>, params: Record<string, string>): unknown;
}

/**
 * Exposes control methods as JSON routes under `/_sim`, so a demo or a child process can drive a
 * simulator it did not start in-process. Handlers return plain values; `undefined` becomes `{ok:true}`.
 */
export function registerSimRoutes(app: FastifyInstance, routes: SimRoute[]): void {
  for (const route of routes) {
    app.route({
      method: route.method,
      url: SIM_PREFIX + route.url,
      handler: async (request, reply) => {
        const body = isRecord(request.body) ? request.body : {};
        try {
          const result = route.handler(body, (request.params ?? {}) as Record<string, string>);
          return reply.code(200).send(result === undefined ? { ok: true } : result);
        } catch (err) {
          const status = err instanceof SimNotFoundError ? 404 : 400;
          return reply.code(status).send({ error: err instanceof Error ? err.message : String(err) });
        }
      },
    });
  }
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function num(body: Record<string, unknown>, key: string): number {
  const v = body[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new SimInputError(`body.${key} must be a number`);
  return v;
}

export function optNum(body: Record<string, unknown>, key: string): number | undefined {
  return body[key] === undefined || body[key] === null ? undefined : num(body, key);
}

export function str(body: Record<string, unknown>, key: string): string {
  const v = body[key];
  if (typeof v !== 'string') throw new SimInputError(`body.${key} must be a string`);
  return v;
}

export function optStr(body: Record<string, unknown>, key: string): string | undefined {
  return body[key] === undefined || body[key] === null ? undefined : str(body, key);
}

export function faultSpecFrom(body: Record<string, unknown>): FaultSpec {
  const status = num(body, 'status');
  if (!FAULT_STATUSES.includes(status as FaultStatus)) throw new SimInputError('unsupported fault status');
  return {
    status: status as FaultStatus,
    count: num(body, 'count'),
    pathPrefix: optStr(body, 'pathPrefix'),
    latencyMs: optNum(body, 'latencyMs'),
  };
}

export async function listen(app: FastifyInstance, host: string, port: number): Promise<string> {
  await app.listen({ host, port });
  const address = app.server.address() as AddressInfo;
  const publicHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return `http://${publicHost}:${address.port}`;
}

// ---------------------------------------------------------------------------------------------
// Bitbucket's filter and sort language (the "Filter and sort" guide of https://api.bitbucket.org/swagger.json,
// also at https://developer.atlassian.com/cloud/bitbucket/rest/intro/#filtering): `q=` with
// `= != ~ !~ > >= < <= IN`, `AND`, `OR`, parentheses; strings double-quoted, datetimes unquoted.

export class QueryError extends Error {}

type Literal = string | number | boolean | null | { datetime: number };
type Node =
  | { kind: 'and' | 'or'; left: Node; right: Node }
  | { kind: 'cmp'; field: string; op: string; value: Literal }
  | { kind: 'in'; field: string; negate: boolean; values: Literal[] };

const DATETIME = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/;
const OPERATORS = ['!=', '!~', '>=', '<=', '=', '~', '>', '<'];

function tokenize(q: string): string[] {
  const tokens: string[] = [];
  let i = 0;
  while (i < q.length) {
    const c = q[i] ?? '';
    if (/\s/.test(c)) {
      i += 1;
    } else if (c === '"') {
      let j = i + 1;
      let value = '';
      while (j < q.length && q[j] !== '"') {
        if (q[j] === '\\' && j + 1 < q.length) j += 1;
        value += q[j];
        j += 1;
      }
      if (j >= q.length) throw new QueryError('unterminated string');
      tokens.push(JSON.stringify(value));
      i = j + 1;
    } else if (c === '(' || c === ')' || c === ',') {
      tokens.push(c);
      i += 1;
    } else {
      const op = OPERATORS.find((o) => q.startsWith(o, i));
      if (op) {
        tokens.push(op);
        i += op.length;
      } else {
        let j = i;
        while (j < q.length && !/[\s()",!=~<>]/.test(q[j] ?? '')) j += 1;
        if (j === i) throw new QueryError(`unexpected character '${c}'`);
        tokens.push(q.slice(i, j));
        i = j;
      }
    }
  }
  return tokens;
}

function parseLiteral(token: string | undefined): Literal {
  if (token === undefined) throw new QueryError('expected a value');
  if (token.startsWith('"')) return JSON.parse(token) as string;
  if (token === 'true' || token === 'false') return token === 'true';
  if (token === 'null') return null;
  if (/^-?\d+(\.\d+)?$/.test(token)) return Number(token);
  if (DATETIME.test(token)) {
    const ms = Date.parse(token);
    if (!Number.isNaN(ms)) return { datetime: ms };
  }
  throw new QueryError(`unexpected token '${token}'`);
}

function parseQuery(tokens: string[], allowField: (field: string) => boolean): Node {
  let pos = 0;
  const peek = () => tokens[pos];
  const next = () => tokens[pos++];
  const parseOr = (): Node => {
    let left = parseAnd();
    while (peek()?.toUpperCase() === 'OR') {
      next();
      left = { kind: 'or', left, right: parseAnd() };
    }
    return left;
  };
  const parseAnd = (): Node => {
    let left = parseFactor();
    while (peek()?.toUpperCase() === 'AND') {
      next();
      left = { kind: 'and', left, right: parseFactor() };
    }
    return left;
  };
  const parseFactor = (): Node => {
    if (peek() === '(') {
      next();
      const inner = parseOr();
      if (next() !== ')') throw new QueryError("expected ')'");
      return inner;
    }
    const field = next();
    if (!field || !/^[a-z_][a-z0-9_.]*$/i.test(field)) throw new QueryError(`expected a field name, got '${field ?? ''}'`);
    if (field.startsWith('values.')) throw new QueryError(`Invalid field name '${field}': do not prefix fields with 'values.'`);
    if (!allowField(field)) throw new QueryError(`Invalid field name '${field}'`);
    let op = next();
    if (op?.toUpperCase() === 'NOT' && peek()?.toUpperCase() === 'IN') {
      next();
      op = 'NOT IN';
    }
    if (op?.toUpperCase() === 'IN' || op === 'NOT IN') {
      if (next() !== '(') throw new QueryError("expected '(' after IN");
      const values: Literal[] = [parseLiteral(next())];
      while (peek() === ',') {
        next();
        values.push(parseLiteral(next()));
      }
      if (next() !== ')') throw new QueryError("expected ')'");
      return { kind: 'in', field, negate: op === 'NOT IN', values };
    }
    if (!op || !OPERATORS.includes(op)) throw new QueryError(`expected an operator after '${field}'`);
    return { kind: 'cmp', field, op, value: parseLiteral(next()) };
  };
  const tree = parseOr();
  if (pos !== tokens.length) throw new QueryError(`unexpected token '${tokens[pos] ?? ''}'`);
  return tree;
}

export function getField(item: unknown, dotted: string): unknown {
  let cur: unknown = item;
  for (const key of dotted.split('.')) {
    if (!isRecord(cur)) return undefined;
    cur = cur[key];
  }
  return cur;
}

function compare(actual: unknown, op: string, value: Literal, field: string): boolean {
  if (isRecord(value)) {
    // Datetimes must be compared as instants, never as strings: offsets differ between writers.
    const t = typeof actual === 'string' ? Date.parse(actual) : NaN;
    if (Number.isNaN(t)) return false;
    return cmpNumbers(t, op, value.datetime);
  }
  if (typeof value === 'string' && ['>', '>=', '<', '<='].includes(op) && /(_on|date)$/.test(field)) {
    throw new QueryError(`'${field}' is a datetime: compare it with an unquoted ISO-8601 value`);
  }
  if (op === '~' || op === '!~') {
    const contains = typeof actual === 'string' && typeof value === 'string' && actual.toLowerCase().includes(value.toLowerCase());
    return op === '~' ? contains : !contains;
  }
  if (op === '=') return actual === value;
  if (op === '!=') return actual !== value;
  if (typeof actual === 'number' && typeof value === 'number') return cmpNumbers(actual, op, value);
  if (typeof actual === 'string' && typeof value === 'string') return cmpNumbers(actual.localeCompare(value), op, 0);
  return false;
}

function cmpNumbers(a: number, op: string, b: number): boolean {
  switch (op) {
    case '>':
      return a > b;
    case '>=':
      return a >= b;
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    default:
      return a === b;
  }
}

function evaluate(node: Node, item: unknown): boolean {
  switch (node.kind) {
    case 'and':
      return evaluate(node.left, item) && evaluate(node.right, item);
    case 'or':
      return evaluate(node.left, item) || evaluate(node.right, item);
    case 'in': {
      const actual = getField(item, node.field);
      const found = node.values.some((v) => v === actual);
      return node.negate ? !found : found;
    }
    case 'cmp':
      return compare(getField(item, node.field), node.op, node.value, node.field);
  }
}

/** Throws QueryError (→ 400) for anything the real parser would reject, so client bugs surface. */
export function compileFilter(q: string, allowField: (field: string) => boolean): (item: unknown) => boolean {
  const tree = parseQuery(tokenize(q), allowField);
  return (item) => evaluate(tree, item);
}

/** `sort=field` ascending or `sort=-field` descending; one field only, as on Bitbucket. */
export function sortItems<T>(items: T[], sort: string, allowField: (field: string) => boolean): T[] {
  const desc = sort.startsWith('-');
  const field = desc ? sort.slice(1) : sort;
  if (!allowField(field) || field.includes(',')) throw new QueryError(`Invalid sort field '${sort}'`);
  const key = (item: T): number | string => {
    const v = getField(item, field);
    if (typeof v === 'number') return v;
    if (typeof v === 'string' && /(_on|date)$/.test(field)) return Date.parse(v);
    return typeof v === 'string' ? v : '';
  };
  return [...items].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    const c = typeof ka === 'number' && typeof kb === 'number' ? ka - kb : String(ka).localeCompare(String(kb));
    return desc ? -c : c;
  });
}

/**
 * The shared half of both simulators' controls: request log, fault switches, issued secrets.
 * `resetOwn` clears what only that simulator has (rate limits, pending denials).
 */
export function commonControl(parts: {
  log: RequestLog;
  faults: FaultPlan;
  chaos: ChaosPlan;
  secrets: SecretRegistry;
  resetOwn(): void;
}): CommonControl {
  return {
    requests: () => parts.log.list(),
    clearRequests: () => parts.log.clear(),
    injectFaults: (fault) => parts.faults.inject(fault),
    tamper: (spec) => parts.faults.tamper(spec),
    setLatency: (ms) => parts.faults.setLatency(ms),
    setChaos: (spec) => parts.chaos.set(spec),
    chaosStats: () => parts.chaos.stats(),
    reset: () => {
      parts.faults.reset();
      parts.chaos.reset();
      parts.resetOwn();
    },
    issuedSecrets: () => parts.secrets.list(),
  };
}

/** The `/_sim` routes for the shared controls. */
export function commonSimRoutes(c: CommonControl): SimRoute[] {
  return [
    { method: 'GET', url: '/requests', handler: () => c.requests() },
    { method: 'POST', url: '/requests/clear', handler: () => c.clearRequests() },
    { method: 'POST', url: '/faults', handler: (b) => c.injectFaults(faultSpecFrom(b)) },
    {
      method: 'POST',
      url: '/tamper',
      handler: (b) => {
        try {
          c.tamper(b as unknown as TamperSpec);
        } catch (err) {
          throw new SimInputError(err instanceof Error ? err.message : String(err));
        }
      },
    },
    { method: 'POST', url: '/latency', handler: (b) => c.setLatency(num(b, 'ms')) },
    {
      method: 'POST',
      url: '/chaos',
      handler: (b) => {
        try {
          c.setChaos(b.off === true ? null : b);
        } catch (err) {
          throw new SimInputError(err instanceof Error ? err.message : String(err));
        }
      },
    },
    { method: 'GET', url: '/chaos', handler: () => c.chaosStats() },
    { method: 'POST', url: '/reset', handler: () => c.reset() },
    { method: 'GET', url: '/secrets', handler: () => c.issuedSecrets() },
  ];
}
