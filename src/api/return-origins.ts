import { ApiError } from './errors';

/**
 * Where a connection may send the customer after OAuth. Tenants register origins; a `returnUrl`
 * must be on one of them, so a connection can never be made into an open redirect.
 */

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/** The canonical form of a registrable origin, or a 400 saying why it is not one. */
export function normalizeReturnOrigin(input: string, allowInsecure: boolean): string {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw invalidOrigin(input, 'is not a URL');
  }
  // Paths, queries, fragments and credentials are not part of an origin.
  if (url.pathname !== '/' || url.search || url.hash || url.username || url.password) {
    throw invalidOrigin(input, 'must be an origin (scheme://host[:port]) with no path, query or credentials');
  }
  if (url.protocol === 'https:') return url.origin;
  if (url.protocol === 'http:' && LOOPBACK.has(url.hostname)) {
    if (allowInsecure) return url.origin;
    throw invalidOrigin(input, 'uses http, allowed only when the deployment sets ALLOW_INSECURE_RETURN_ORIGINS=true (development)');
  }
  throw invalidOrigin(input, 'must use https');
}

const invalidOrigin = (input: string, why: string) =>
  new ApiError(400, 'invalid_return_origin', `${JSON.stringify(input.slice(0, 200))} ${why}.`);

/**
 * Whether `returnUrl` may be used by a tenant with these origins (checked again at the callback).
 * The API's own origin (`PUBLIC_URL`) is always allowed: it is us, serving the console at `/`, so
 * the console can bring the customer back to itself without every tenant registering it.
 */
export function returnUrlAllowed(returnUrl: string, allowedOrigins: readonly string[], publicUrl: string): boolean {
  let url: URL;
  try {
    url = new URL(returnUrl);
  } catch {
    return false;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return false;
  if (url.username || url.password) return false;
  return url.origin === new URL(publicUrl).origin || allowedOrigins.includes(url.origin);
}
