import { z } from 'zod';
import type { OAuthClientCredentials, OAuthFlow, OAuthTokens } from '../adapter';
import { ProviderError } from '../errors';
import { providerFetch } from '../http';

/**
 * Bitbucket Cloud's OAuth 2.0 endpoints (https://developer.atlassian.com/cloud/bitbucket/oauth-2/):
 * the consumer authenticates with HTTP Basic, grants are form-encoded, and every refresh rotates
 * the refresh token.
 */

const tokenResponseSchema = z.looseObject({
  access_token: z.string().min(1),
  refresh_token: z.string().min(1).optional(),
  expires_in: z.number().optional(),
  // Renamed from `scopes` to `scope` on 2026-05-04; both are accepted
  // (https://community.developer.atlassian.com/t/oauth-2-0-and-api-authentication-changes-for-bitbucket-cloud/99003).
  scopes: z.string().optional(),
  scope: z.string().optional(),
});

/**
 * Bitbucket's docs say access tokens live an hour, Atlassian staff say two
 * (https://community.developer.atlassian.com/t/oauth2-token-lifetime-expiration-clarification/22136):
 * `expires_in` is believed, this is only the fallback when it is missing.
 */
const DEFAULT_EXPIRES_IN_SECONDS = 3600;

export function createBitbucketOAuth(
  urls: { oauthUrl: string; refreshGraceMs?: number },
  platformClient?: OAuthClientCredentials,
): OAuthFlow {
  async function tokenRequest(client: OAuthClientCredentials, form: Record<string, string>, now: number): Promise<OAuthTokens> {
    let res: Response;
    try {
      res = await providerFetch({
        url: `${urls.oauthUrl}/access_token`,
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
        },
        body: new URLSearchParams(form).toString(),
      });
    } catch (err) {
      // The token endpoint answers 400 for a bad or rotated refresh token or code (the observed body
      // says `invalid_request` as often as `invalid_grant`,
      // https://community.atlassian.com/t5/Bitbucket-questions/How-do-I-refresh-a-token/qaq-p/1545002)
      // and 401 for a bad consumer.
      if (err instanceof ProviderError && err.kind === 'bad_request') throw new ProviderError('invalid_grant', err.message, err.status);
      if (err instanceof ProviderError && err.kind === 'unauthorized') throw new ProviderError('invalid_client', err.message, err.status);
      throw err;
    }
    let body: unknown;
    try {
      body = await res.json();
    } catch {
      // A 200 whose body was cut short (a reset mid-transfer) or is not JSON: Bitbucket may well
      // have rotated the refresh token already, so this is a refresh in doubt (retried with the
      // stored token inside the grace window), never a refusal.
      throw new ProviderError('transient', 'Bitbucket token response could not be read (cut short or not JSON)');
    }
    const parsed = tokenResponseSchema.safeParse(body);
    if (!parsed.success || !parsed.data.refresh_token) {
      throw new ProviderError('invalid_grant', 'Bitbucket token response carried no access and refresh token');
    }
    const tokens = parsed.data;
    const expiresIn = typeof tokens.expires_in === 'number' && tokens.expires_in > 0 ? tokens.expires_in : DEFAULT_EXPIRES_IN_SECONDS;
    return {
      accessToken: tokens.access_token,
      refreshToken: tokens.refresh_token!,
      expiresAt: new Date(now + expiresIn * 1000).toISOString(),
      scopes: (tokens.scope ?? tokens.scopes ?? '').split(/[\s,]+/).filter(Boolean),
    };
  }

  return {
    platformClient,
    refreshGraceMs: urls.refreshGraceMs,

    authorizeUrl(clientId, state, redirectUri) {
      const u = new URL(`${urls.oauthUrl}/authorize`);
      u.searchParams.set('client_id', clientId);
      u.searchParams.set('response_type', 'code');
      u.searchParams.set('state', state);
      u.searchParams.set('redirect_uri', redirectUri);
      return u.toString();
    },

    exchangeCode(client, code, redirectUri, now = Date.now()) {
      return tokenRequest(client, { grant_type: 'authorization_code', code, redirect_uri: redirectUri }, now);
    },

    refresh(client, refreshToken, now = Date.now()) {
      return tokenRequest(client, { grant_type: 'refresh_token', refresh_token: refreshToken }, now);
    },
  };
}
