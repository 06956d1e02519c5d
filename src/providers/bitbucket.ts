import { ProviderError } from './errors';
import { providerFetch, providerJson, type RequestMeter } from './http';

/** Bitbucket Cloud 2.0 and its OAuth 2.0 endpoints (see ../shared/provider-notes.md §A). */

export interface OAuthClientCredentials {
  clientId: string;
  clientSecret: string;
}

export interface BitbucketTokens {
  accessToken: string;
  refreshToken: string;
  /** Absolute expiry, computed from `expires_in`: Bitbucket's docs and reality disagree on the lifetime. */
  expiresAt: string;
  scopes: string[];
}

export interface BitbucketAccount {
  id: string;
  name: string;
}

interface TokenResponse {
  access_token: string;
  refresh_token?: string;
  expires_in?: number;
  // Renamed from `scopes` to `scope` on 2026-05-04; accept both.
  scopes?: string;
  scope?: string;
  token_type?: string;
}

export function createBitbucketClient(urls: { apiUrl: string; oauthUrl: string }, meter?: RequestMeter) {
  async function tokenRequest(client: OAuthClientCredentials, form: Record<string, string>, now: number): Promise<BitbucketTokens> {
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
        meter,
      });
    } catch (err) {
      // The token endpoint answers 400 for a bad/rotated refresh token or code (observed bodies
      // say `invalid_request` as often as `invalid_grant`) and 401 for a bad consumer.
      if (err instanceof ProviderError && err.kind === 'bad_request') throw new ProviderError('invalid_grant', err.message, err.status);
      if (err instanceof ProviderError && err.kind === 'unauthorized') throw new ProviderError('invalid_client', err.message, err.status);
      throw err;
    }
    const body = (await res.json()) as TokenResponse;
    if (!body.access_token || !body.refresh_token) {
      throw new ProviderError('invalid_grant', 'Bitbucket token response carried no refresh token');
    }
    const expiresIn = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 3600;
    return {
      accessToken: body.access_token,
      refreshToken: body.refresh_token,
      expiresAt: new Date(now + expiresIn * 1000).toISOString(),
      scopes: (body.scope ?? body.scopes ?? '').split(/[\s,]+/).filter(Boolean),
    };
  }

  return {
    authorizeUrl(clientId: string, state: string, redirectUri: string): string {
      const u = new URL(`${urls.oauthUrl}/authorize`);
      u.searchParams.set('client_id', clientId);
      u.searchParams.set('response_type', 'code');
      u.searchParams.set('state', state);
      u.searchParams.set('redirect_uri', redirectUri);
      return u.toString();
    },

    exchangeCode(client: OAuthClientCredentials, code: string, redirectUri: string, now = Date.now()): Promise<BitbucketTokens> {
      return tokenRequest(client, { grant_type: 'authorization_code', code, redirect_uri: redirectUri }, now);
    },

    refresh(client: OAuthClientCredentials, refreshToken: string, now = Date.now()): Promise<BitbucketTokens> {
      return tokenRequest(client, { grant_type: 'refresh_token', refresh_token: refreshToken }, now);
    },

    async getAccount(accessToken: string): Promise<BitbucketAccount> {
      const user = await providerJson<{ uuid: string; display_name?: string; username?: string }>({
        url: `${urls.apiUrl}/user`,
        headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json' },
        meter,
      });
      return { id: user.uuid, name: user.display_name ?? user.username ?? user.uuid };
    },
  };
}

export type BitbucketClient = ReturnType<typeof createBitbucketClient>;
