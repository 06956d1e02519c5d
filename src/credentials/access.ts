import { isProviderError } from '../providers/errors';
import type { BitbucketClient, OAuthClientCredentials } from '../providers/bitbucket';
import type { Provider } from '../domain/connection';
import type { CredentialKind, OpenCredential, Vault } from './vault';

/**
 * Hands activities a working access token for a connection: refreshes Bitbucket tokens shortly
 * before they expire and once more on a 401, serialized through the vault's row lock. A lost
 * grant becomes an AuthLostError, which the workflow turns into `needs_reconnect`.
 */

export class AuthLostError extends Error {
  constructor(
    readonly code: 'no_credentials' | 'token_revoked' | 'refresh_failed' | 'oauth_client_invalid',
    message: string,
  ) {
    super(message);
    this.name = 'AuthLostError';
  }
}

export interface AccessToken {
  token: string;
  credentialId: string;
  version: number;
}

export interface AccessBrokerDeps {
  vault: Vault;
  bitbucket: BitbucketClient;
  platformOAuthClient?: OAuthClientCredentials;
  /** Refresh this long before `expires_in` runs out, so a long page fetch never starts on a dying token. */
  refreshMarginMs?: number;
  now?: () => number;
}

export function createAccessBroker(deps: AccessBrokerDeps) {
  const now = deps.now ?? Date.now;
  const margin = deps.refreshMarginMs ?? 5 * 60_000;

  const toAccess = (c: OpenCredential): AccessToken => ({
    token: c.kind === 'bitrise_token' ? (c as OpenCredential<'bitrise_token'>).secret.token : (c as OpenCredential<'bitbucket_oauth'>).secret.accessToken,
    credentialId: c.id,
    version: c.version,
  });

  const expiresSoon = (c: OpenCredential) => c.accessExpiresAt !== null && c.accessExpiresAt.getTime() - now() < margin;

  async function oauthClientFor(connectionId: string): Promise<OAuthClientCredentials> {
    const own = await deps.vault.openOAuthClient(connectionId);
    if (own) {
      if (!own.clientSecret) throw new AuthLostError('oauth_client_invalid', 'The connection’s OAuth consumer secret was destroyed.');
      return { clientId: own.clientId, clientSecret: own.clientSecret };
    }
    if (!deps.platformOAuthClient) throw new AuthLostError('oauth_client_invalid', 'No Bitbucket OAuth consumer is configured.');
    return deps.platformOAuthClient;
  }

  /**
   * Refreshes unless someone else already did since `seen` was read. Holding the row lock across
   * the token call is deliberate: it is what keeps two refreshers from both spending the same
   * rotating refresh token.
   */
  async function refresh(connectionId: string, seen?: { credentialId: string; version: number }): Promise<AccessToken> {
    const client = await oauthClientFor(connectionId);
    return deps.vault.withLockedActive<'bitbucket_oauth', AccessToken>(connectionId, async (current, save) => {
      if (!current) throw new AuthLostError('no_credentials', 'The connection has no active credential.');
      const movedOn = seen && (current.id !== seen.credentialId || current.version !== seen.version);
      if (movedOn && !expiresSoon(current)) return toAccess(current);
      try {
        const tokens = await deps.bitbucket.refresh(client, current.secret.refreshToken, now());
        const version = await save({ accessToken: tokens.accessToken, refreshToken: tokens.refreshToken }, tokens.expiresAt);
        return { token: tokens.accessToken, credentialId: current.id, version };
      } catch (err) {
        if (isProviderError(err, 'invalid_grant')) throw new AuthLostError('refresh_failed', 'Bitbucket refused the refresh token; the grant was revoked or expired.');
        if (isProviderError(err, 'invalid_client')) throw new AuthLostError('oauth_client_invalid', 'Bitbucket refused the OAuth consumer’s key or secret.');
        throw err;
      }
    });
  }

  async function current(connectionId: string, provider: Provider): Promise<AccessToken> {
    const cred = await deps.vault.openActive<CredentialKind>(connectionId);
    if (!cred) throw new AuthLostError('no_credentials', 'The connection has no active credential.');
    if (provider === 'bitbucket' && expiresSoon(cred)) return refresh(connectionId, { credentialId: cred.id, version: cred.version });
    return toAccess(cred);
  }

  /**
   * Runs `fn` with a token. On a 401 a Bitbucket token is refreshed and `fn` retried once;
   * a second 401, or any 401 for Bitrise (whose tokens cannot be refreshed), means access is lost.
   */
  async function withAccess<T>(connectionId: string, provider: Provider, fn: (token: string) => Promise<T>): Promise<T> {
    const access = await current(connectionId, provider);
    try {
      return await fn(access.token);
    } catch (err) {
      if (!isProviderError(err, 'unauthorized')) throw err;
      if (provider !== 'bitbucket') throw new AuthLostError('token_revoked', 'Bitrise rejected the access token (401); it was revoked or has expired.');
    }
    const fresh = await refresh(connectionId, access);
    try {
      return await fn(fresh.token);
    } catch (err) {
      if (isProviderError(err, 'unauthorized')) throw new AuthLostError('token_revoked', 'Bitbucket rejected a freshly refreshed access token (401).');
      throw err;
    }
  }

  /** The OAuth consumer a Bitbucket connection's requests are counted against. */
  async function consumerKey(connectionId: string): Promise<string> {
    return (await deps.vault.oauthClientId(connectionId)) ?? deps.platformOAuthClient?.clientId ?? 'unconfigured';
  }

  return { withAccess, refresh, current, consumerKey };
}

export type AccessBroker = ReturnType<typeof createAccessBroker>;
