import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Start-up that outlives an outage. The API and the worker connect to Postgres and Temporal as they
 * start; a process (re)started while either is down (a host reboot, a rolling restart of the
 * database) would exit at once, and an orchestrator restarts a crashing process with a growing
 * back-off (Kubernetes' CrashLoopBackOff reaches 5 minutes), so recovery would wait on that instead
 * of on the outage. Instead the process waits, saying why, and exits only when the dependency has
 * been unreachable for `timeoutMs` or the error is not about reachability (bad credentials, a
 * missing migration: waiting cannot fix those).
 */

export interface StartupRetryOptions {
  /** Gives up after this long; the process then exits and its supervisor decides. Default 5 minutes. */
  timeoutMs?: number;
  /** First wait; doubles per attempt up to `maxDelayMs`. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  onWait?: (info: { attempt: number; delayMs: number; reason: string }) => void;
}

// Node's socket errors, postgres.js's own connection errors, and Postgres answering while it
// starts up or shuts down (57P03 cannot_connect_now, 57P01 admin_shutdown).
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  '57P03',
  '57P01',
]);

// gRPC status UNAVAILABLE, as @temporalio/client reports an unreachable server.
const GRPC_UNAVAILABLE = 14;

/** Whether `err` says a dependency cannot be reached right now (as opposed to refusing us). */
export function isUnreachable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, name, message } = e as { code?: unknown; name?: unknown; message?: unknown };
    if (typeof code === 'string' && UNREACHABLE_CODES.has(code)) return true;
    if (code === GRPC_UNAVAILABLE) return true;
    // The worker's native connection (Rust core) reports a failed connect as a TransportError.
    if (name === 'TransportError') return true;
    if (
      typeof message === 'string' &&
      /\b(ECONNREFUSED|UNAVAILABLE|connection refused|failed to connect before the deadline)\b/i.test(message)
    )
      return true;
  }
  return false;
}

/** Runs `start` until it succeeds, waiting with capped exponential back-off while dependencies are unreachable. */
export async function startWhenReachable<T>(start: () => Promise<T>, o: StartupRetryOptions = {}): Promise<T> {
  const timeoutMs = o.timeoutMs ?? 5 * 60_000;
  const baseDelayMs = o.baseDelayMs ?? 500;
  const maxDelayMs = o.maxDelayMs ?? 10_000;
  const began = Date.now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      const delayMs = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
      if (!isUnreachable(err) || Date.now() - began + delayMs > timeoutMs) throw err;
      o.onWait?.({ attempt, delayMs, reason: err instanceof Error ? err.message : String(err) });
      await sleep(delayMs);
    }
  }
}
