import type { FastifyReply, FastifyRequest } from 'fastify';
import { getConnection } from '../db/connections';
import { adapterOf } from '../providers/registry';
import type { ApiDeps } from './deps';
import { ApiError } from './errors';
import { browserCookieName, browserCookieValue, peekState, verifyStateSignature } from './oauth-state';

/**
 * Sending a browser to the provider: the one way of doing it, used by the consent page's Continue
 * (`POST /v1/oauth/start`) and by an invite's Continue (`POST /invite/:secret/authorize`).
 */
export function createOAuthBrowser(
  deps: Pick<ApiDeps, 'sql' | 'config' | 'vault' | 'connections' | 'providers' | 'stateKeys' | 'browserKeys'>,
) {
  const { sql, config, vault, connections } = deps;
  const redirectUri = `${config.http.publicUrl}/v1/oauth/callback`;
  const secureCookie = config.http.publicUrl.startsWith('https:');

  /** A state that can still be started, its connection and the provider URL it leads to. */
  async function startable(state: string | undefined) {
    const { connectionId, expiresAt } = await peekState(sql, deps.stateKeys, state);
    const row = await getConnection(sql, connectionId);
    if (!row) throw new ApiError(400, 'invalid_state', 'The connection for this state no longer exists.');
    const { oauth, manifest } = adapterOf(deps.providers, row.provider);
    if (!oauth) throw new ApiError(400, 'unsupported_for_provider', `${manifest.displayName} connections do not use OAuth.`);
    connections.assertAllowed(row, 'authorize');
    const clientId = (await vault.oauthClientId(row.id)) ?? oauth.platformClient?.clientId;
    if (!clientId) throw new ApiError(400, 'oauth_client_required', `No ${manifest.displayName} OAuth consumer is configured.`);
    const providerUrl = oauth.authorizeUrl(clientId, state!, redirectUri);
    return { row, manifest, expiresAt, providerUrl };
  }

  /**
   * Binds this browser to the state with a short-lived cookie (only the browser holding it can
   * finish the flow at the callback) and redirects to the provider's authorize page.
   */
  async function continueToProvider(reply: FastifyReply, state: string) {
    const { expiresAt, providerUrl } = await startable(state);
    const nonce = verifyStateSignature(deps.stateKeys, state);
    const maxAge = Math.max(1, Math.ceil((expiresAt.getTime() - Date.now()) / 1000));
    reply.header('set-cookie', bindingCookie(browserCookieName(nonce), browserCookieValue(deps.browserKeys, state), maxAge, secureCookie));
    return reply.redirect(providerUrl, 302);
  }

  /** Clears the binding cookie (the callback, once the state is used). */
  function clearBinding(reply: FastifyReply, cookieName: string) {
    reply.header('set-cookie', bindingCookie(cookieName, '', 0, secureCookie));
  }

  return { redirectUri, startable, continueToProvider, clearBinding };
}

export type OAuthBrowser = ReturnType<typeof createOAuthBrowser>;

/**
 * The browser-binding cookie: only sent back to /v1/oauth/*, never readable by scripts, sent on the
 * provider's top-level redirect back to us (Lax) but not on cross-site subrequests. Names and
 * values are [0-9a-z_-] only, so they need no encoding.
 */
function bindingCookie(name: string, value: string, maxAgeSeconds: number, secure: boolean): string {
  return `${name}=${value}; Max-Age=${maxAgeSeconds}; Path=/v1/oauth; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`;
}

export function cookieOf(req: FastifyRequest, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
