import { ProviderError, type ProviderErrorKind } from './errors';

export interface RequestMeter {
  /** Called once per HTTP request actually sent, for run statistics. */
  onRequest?(): void;
  /** Called once per request with the answer's status, or `undefined` when none came (metrics). */
  onAnswer?(status: number | undefined): void;
}

export interface ProviderRequest {
  url: string;
  method?: 'GET' | 'POST' | 'DELETE';
  headers?: Record<string, string>;
  body?: string;
  timeoutMs?: number;
  meter?: RequestMeter;
  /** Aborts the request early (activity cancellation, stall watchdog). */
  signal?: AbortSignal;
}

const DEFAULT_TIMEOUT_MS = 20_000;

/**
 * Pure: what an HTTP status means for us. 408/425 are transient by definition. Redirects are never
 * followed (`redirect: 'manual'`: the request carries the token) nor taken for an answer.
 */
export function classifyStatus(status: number): ProviderErrorKind | null {
  if (status >= 300 && status < 400) return 'protocol';
  if (status < 400) return null;
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not_found';
  if (status === 429) return 'rate_limited';
  if (status === 408 || status === 425 || status >= 500) return 'transient';
  return 'bad_request';
}

/**
 * Pure: how long the provider asked us to wait. Bitbucket's 429 usually has no header (then the
 * caller backs off exponentially); Bitrise sends Retry-After and X-RateLimit-Reset.
 */
export function parseRetryAfter(headers: Headers, now = Date.now()): number | undefined {
  const retryAfter = headers.get('retry-after');
  if (retryAfter) {
    const seconds = Number(retryAfter);
    if (Number.isFinite(seconds) && seconds >= 0) return Math.ceil(seconds * 1000);
    const date = Date.parse(retryAfter);
    if (!Number.isNaN(date)) return Math.max(0, date - now);
  }
  const reset = Number(headers.get('x-ratelimit-reset'));
  if (headers.get('x-ratelimit-remaining') === '0' && Number.isFinite(reset) && reset > 0) {
    // Reset is a Unix timestamp in seconds when large, a delta in seconds when small.
    return reset > 1e9 ? Math.max(0, reset * 1000 - now) : reset * 1000;
  }
  return undefined;
}

/** Sends one request; turns every failure into a ProviderError with no secret in its message. */
export async function providerFetch(req: ProviderRequest): Promise<Response> {
  const method = req.method ?? 'GET';
  const where = `${method} ${redactUrl(req.url)}`;
  let res: Response;
  try {
    req.meter?.onRequest?.();
    res = await fetch(req.url, {
      method,
      headers: req.headers,
      body: req.body,
      redirect: 'manual',
      signal: req.signal
        ? AbortSignal.any([req.signal, AbortSignal.timeout(req.timeoutMs ?? DEFAULT_TIMEOUT_MS)])
        : AbortSignal.timeout(req.timeoutMs ?? DEFAULT_TIMEOUT_MS),
    });
  } catch (err) {
    req.meter?.onAnswer?.(undefined);
    if (req.signal?.aborted) throw req.signal.reason;
    const reason = err instanceof Error && err.name === 'TimeoutError' ? 'timed out' : 'failed to connect';
    throw new ProviderError('transient', `${where} ${reason}`);
  }
  req.meter?.onAnswer?.(res.status);
  const kind = classifyStatus(res.status);
  if (!kind) return res;
  const detail = await safeErrorDetail(res);
  throw new ProviderError(kind, `${where} answered ${res.status}${detail ? `: ${detail}` : ''}`, res.status, parseRetryAfter(res.headers));
}

export async function providerJson<T>(req: ProviderRequest): Promise<T> {
  const res = await providerFetch(req);
  try {
    return (await res.json()) as T;
  } catch {
    throw new ProviderError('transient', `${req.method ?? 'GET'} ${redactUrl(req.url)} answered with a body that is not JSON`);
  }
}

/** Query strings can carry codes or tokens; error messages keep only the path. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '(invalid url)';
  }
}

/**
 * The provider's own error message, when it is one of the documented shapes. Only the message
 * field is kept and it is cut short, so an echoed request can't carry a secret into logs.
 */
async function safeErrorDetail(res: Response): Promise<string | undefined> {
  const text = await res.text().catch(() => '');
  let message: unknown;
  try {
    const body = JSON.parse(text) as Record<string, unknown> | null;
    const nested = body?.error;
    const nestedMessage = typeof nested === 'object' && nested !== null ? (nested as { message?: unknown }).message : undefined;
    message = nestedMessage ?? body?.error_description ?? body?.message ?? body?.error_msg ?? nested;
  } catch {
    message = text;
  }
  return typeof message === 'string' && message ? message.slice(0, 200) : undefined;
}
