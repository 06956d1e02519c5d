/**
 * What can go wrong talking to a provider, as small classes the activities turn into Temporal
 * failures. Messages never include tokens or response bodies that might echo them.
 */
export type ProviderErrorKind =
  | 'unauthorized' // 401 from the API: the access token is expired or revoked
  | 'invalid_grant' // the token endpoint refused a code or refresh token
  | 'invalid_client' // the OAuth consumer's key/secret were refused
  | 'forbidden'
  | 'not_found'
  | 'rate_limited'
  | 'transient' // 5xx, timeouts, resets: worth retrying
  | 'bad_request' // any other 4xx: our request is wrong, retrying will not help
  | 'protocol'; // an answer we must not act on (a 3xx, a link to another origin): final, never retried

export class ProviderError extends Error {
  constructor(
    readonly kind: ProviderErrorKind,
    message: string,
    readonly status?: number,
    /** From Retry-After or X-RateLimit-Reset when the provider sent one. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'ProviderError';
  }
}

export const isProviderError = (e: unknown, kind?: ProviderErrorKind): e is ProviderError =>
  e instanceof ProviderError && (kind === undefined || e.kind === kind);
