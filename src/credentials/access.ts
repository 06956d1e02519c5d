import { countTokenRefresh } from '../metrics';
import { isProviderError } from '../providers/errors';
import type { OAuthClientCredentials, OAuthFlow, OAuthTokens } from '../providers/adapter';
import type { Provider } from '../providers/manifests';
import { adapterOf, type Providers } from '../providers/registry';
import { accessTokenOf, type OAuthSecret, type OpenCredential, type Vault } from './vault';

/**
 * Hands activities a working access token for a connection: refreshes OAuth tokens shortly
 * before they expire and once more on a 401, serialized through the vault's refresh lease. A lost
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
  /** When the provider said the token expires (OAuth); `null` for tokens that do not expire. */
  expiresAt: Date | null;
  /** When it was stored (at most its issue time), so its whole life is known. */
  storedAt: Date;
}

/**
 * Where one sync step keeps the token it was handed (`createTokenCache`), so a step of hundreds
 * of requests reads and decrypts the credential once instead of once per request.
 */
export interface TokenCache {
  get(): AccessToken | undefined;
  set(access: AccessToken): void;
}

export function createTokenCache(): TokenCache {
  let kept: AccessToken | undefined;
  return {
    get: () => kept,
    set: (access) => void (kept = access),
  };
}

export interface AccessBrokerDeps {
  vault: Vault;
  providers: Providers;
  /**
   * Refresh this long before `expires_in` runs out, so a long page fetch never starts on a dying
   * token; at most a quarter of the token's life, so a short-lived token is not refreshed before
   * every request.
   */
  refreshMarginMs?: number;
  now?: () => number;
  /** Told when a refresh finds an earlier one in doubt (for the logs). */
  onRefreshInDoubt?: (connectionId: string) => void;
  /**
   * TEST ONLY: runs between the provider's token response and the save of the new pair, so the
   * integration tests can kill a worker exactly there (`CONDUIT_TEST_CRASH_AFTER_TOKEN_RESPONSE`).
   */
  afterTokenResponse?: (connectionId: string) => Promise<void>;
}

/** A refusal while an earlier refresh is in doubt: retryable, never lost access. */
export class RefreshInDoubtError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RefreshInDoubtError';
  }
}

export function createAccessBroker(deps: AccessBrokerDeps) {
  const now = deps.now ?? Date.now;
  const margin = deps.refreshMarginMs ?? 5 * 60_000;

  const toAccess = (c: OpenCredential): AccessToken => ({
    token: accessTokenOf(c.secret),
    credentialId: c.id,
    version: c.version,
    expiresAt: c.accessExpiresAt,
    storedAt: c.storedAt,
  });

  /** Refreshed ahead by the margin, or a quarter of the token's life when that is shorter (tokens that live seconds). */
  const expiresSoon = (c: { accessExpiresAt: Date | null; storedAt: Date }) => {
    if (c.accessExpiresAt === null) return false;
    const expiresAt = c.accessExpiresAt.getTime();
    const life = Math.max(0, expiresAt - c.storedAt.getTime());
    return expiresAt - now() < Math.min(margin, life / 4);
  };

  async function oauthClientFor(connectionId: string, oauth: OAuthFlow): Promise<OAuthClientCredentials> {
    const own = await deps.vault.openOAuthClient(connectionId);
    if (own) {
      if (!own.clientSecret) throw new AuthLostError('oauth_client_invalid', 'The connection’s OAuth consumer secret was destroyed.');
      return { clientId: own.clientId, clientSecret: own.clientSecret };
    }
    if (!oauth.platformClient) throw new AuthLostError('oauth_client_invalid', 'No OAuth consumer is configured for this provider.');
    return oauth.platformClient;
  }

  /**
   * Refreshes unless someone else already did since `seen` was read. Serialized by the vault's
   * refresh lease (an advisory lock that dies with its holder), never by a transaction held across
   * the token call. The refresh is marked in doubt before the provider is asked and the new pair is
   * saved at once, version-checked, retried in place; a marker still set when the next refresher
   * comes (a dead holder, a failed save) means the rotated pair may be lost, so that refresher
   * retries at once with the stored refresh token, inside the provider's grace window, and a
   * refusal then is retried rather than parking the connection. Only a definite refusal with no
   * refresh in doubt (or after the grace window ran out) is lost access.
   */
  async function refresh(
    connectionId: string,
    provider: Provider,
    seen?: { credentialId: string; version: number },
    opts: { onlyInDoubt?: boolean; leaseWaitMs?: number } = {},
  ): Promise<AccessToken> {
    const { oauth, manifest } = adapterOf(deps.providers, provider);
    if (!oauth) throw new AuthLostError('token_revoked', `${manifest.displayName} tokens cannot be refreshed.`);
    const client = await oauthClientFor(connectionId, oauth);
    const graceMs = oauth.refreshGraceMs ?? 0;
    return deps.vault.withRefreshLease(
      connectionId,
      async () => {
        const current = await deps.vault.openActive<OAuthSecret>(connectionId);
        if (!current) throw new AuthLostError('no_credentials', 'The connection has no active credential.');
        let doubtSince = current.refreshStartedAt;
        if (doubtSince && now() - doubtSince.getTime() > graceMs) {
          // The grace window is over: whatever was lost is lost, and a refusal now is definite.
          await deps.vault.clearRefreshDoubt(current.id, current.version);
          doubtSince = null;
        }
        if (opts.onlyInDoubt && !doubtSince) return toAccess(current);
        const movedOn = seen && (current.id !== seen.credentialId || current.version !== seen.version);
        if (movedOn && !doubtSince && !expiresSoon(current)) {
          countTokenRefresh(provider, 'reused');
          return toAccess(current);
        }
        if (doubtSince) deps.onRefreshInDoubt?.(connectionId);

        const startedAt = await deps.vault.markRefreshStarted(current.id, current.version);
        if (!startedAt) throw new Error('The credential changed while its refresh was starting; retry.');
        let tokens: OAuthTokens;
        try {
          tokens = await oauth.refresh(client, current.secret.refreshToken, now());
        } catch (err) {
          const refused = isProviderError(err, 'invalid_grant');
          countTokenRefresh(
            provider,
            refused && doubtSince ? 'in_doubt' : refused || isProviderError(err, 'invalid_client') ? 'refused' : 'failed',
          );
          if (refused && doubtSince) {
            // A refresh before this one may have rotated the token and died before saving it. Not a
            // reason to park while the provider's grace window lasts: the activity retries.
            throw new RefreshInDoubtError(
              `${manifest.displayName} refused the stored refresh token while an earlier refresh is in doubt; retrying.`,
            );
          }
          if (refused || isProviderError(err, 'invalid_client')) {
            // Definite: nothing was rotated by this request.
            await deps.vault.clearRefreshDoubt(current.id, current.version);
            if (refused)
              throw new AuthLostError(
                'refresh_failed',
                `${manifest.displayName} refused the refresh token; the grant was revoked or expired.`,
              );
            throw new AuthLostError('oauth_client_invalid', `${manifest.displayName} refused the OAuth consumer’s key or secret.`);
          }
          // A timeout or a 5xx: the provider may or may not have rotated; the marker stays set.
          throw err;
        }
        countTokenRefresh(provider, 'refreshed');
        await deps.afterTokenResponse?.(connectionId);
        const version = await deps.vault.saveRefreshed(
          current,
          { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken },
          tokens.expiresAt,
        );
        return {
          token: tokens.accessToken,
          credentialId: current.id,
          version: version ?? current.version,
          expiresAt: new Date(tokens.expiresAt),
          storedAt: new Date(now()),
        };
      },
      opts.leaseWaitMs,
    );
  }

  async function current(connectionId: string, provider: Provider): Promise<AccessToken> {
    const cred = await deps.vault.openActive(connectionId);
    if (!cred) throw new AuthLostError('no_credentials', 'The connection has no active credential.');
    if (adapterOf(deps.providers, provider).oauth && expiresSoon(cred))
      return refresh(connectionId, provider, { credentialId: cred.id, version: cred.version });
    return toAccess(cred);
  }

  /**
   * Runs `fn` with a token. On a 401 an OAuth token is refreshed and `fn` retried once; a second
   * 401, or any 401 for a pasted token (which cannot be refreshed), means access is lost.
   *
   * With a `cache` (one sync step's), a token kept there is used without reading the vault, unless
   * an OAuth token is about to expire. A 401 on a kept token first reads the stored credential
   * again: if it moved on meanwhile (a credential attached, another process's refresh), `fn` is
   * retried with it, exactly as if the token had been read for this request, and only a 401 on the
   * current credential counts.
   */
  async function withAccess<T>(
    connectionId: string,
    provider: Provider,
    fn: (token: string) => Promise<T>,
    cache?: TokenCache,
  ): Promise<T> {
    const { oauth, manifest } = adapterOf(deps.providers, provider);
    let kept = cache?.get();
    if (kept && oauth && expiresSoon({ accessExpiresAt: kept.expiresAt, storedAt: kept.storedAt })) kept = undefined;
    let access = kept ?? (await current(connectionId, provider));
    cache?.set(access);
    for (;;) {
      try {
        return await fn(access.token);
      } catch (err) {
        if (!isProviderError(err, 'unauthorized')) throw err;
      }
      if (access !== kept) break;
      kept = undefined;
      const latest = await current(connectionId, provider);
      cache?.set(latest);
      if (latest.credentialId === access.credentialId && latest.version === access.version) break;
      access = latest;
    }
    if (!oauth)
      throw new AuthLostError('token_revoked', `${manifest.displayName} rejected the access token (401); it was revoked or has expired.`);
    const fresh = await refresh(connectionId, provider, access);
    cache?.set(fresh);
    try {
      return await fn(fresh.token);
    } catch (err) {
      if (isProviderError(err, 'unauthorized'))
        throw new AuthLostError('token_revoked', `${manifest.displayName} rejected a freshly refreshed access token (401).`);
      throw err;
    }
  }

  /**
   * Refreshes left in doubt by a holder that is gone (a killed worker, a save that failed) are
   * retried now with the stored refresh token by whichever worker gets here first, rather than when
   * the step that began them is retried: a heartbeat timeout and a backoff later, which may be past
   * the provider's grace window for the rotated-out token. A refresh under way holds its lease and is
   * skipped. Returns how many were looked at; failures are left for the next sweep or the step.
   */
  async function retryRefreshesInDoubt(olderThanMs = 2_000): Promise<number> {
    const inDoubt = await deps.vault.refreshesInDoubt(olderThanMs);
    for (const { connectionId, provider } of inDoubt) {
      await refresh(connectionId, provider as Provider, undefined, { onlyInDoubt: true, leaseWaitMs: 0 }).catch(() => undefined);
    }
    return inDoubt.length;
  }

  /** The OAuth consumer a connection's requests are counted against, if its provider uses OAuth. */
  async function consumerKey(connectionId: string, provider: Provider): Promise<string | undefined> {
    const { oauth } = adapterOf(deps.providers, provider);
    if (!oauth) return undefined;
    return (await deps.vault.oauthClientId(connectionId)) ?? oauth.platformClient?.clientId;
  }

  return { withAccess, refresh, current, consumerKey, retryRefreshesInDoubt };
}

export type AccessBroker = ReturnType<typeof createAccessBroker>;
