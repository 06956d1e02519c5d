import { timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { type MonotonicClock, type SecretRegistry, SimInputError, SimNotFoundError, isRecord, randomSecret } from '../shared';
import { ApiError } from './errors';
import type { Json } from './render';
import { type BitbucketConsumer, type BitbucketGrantInfo, DEFAULT_BITBUCKET_CONSUMER } from './types';

// ---------------------------------------------------------------------------------------------
// OAuth 2.0

const CODE_TTL_MS = 10 * 60 * 1000;
/** "A refresh token which is not used … will expire after 3 months" (https://api.bitbucket.org/swagger.json, x-atlassian-narrative). */
const REFRESH_TOKEN_IDLE_MS = 90 * 24 * 3600 * 1000;
const MSG_EXPIRED = 'Access token expired. Use your refresh token to obtain a new access token.';
const MSG_INVALID = 'Token is invalid, expired, or not supported for this endpoint.';

export interface Grant {
  id: string;
  clientId: string;
  kind: 'authorization_code' | 'client_credentials';
  scopes: string[];
  createdAt: number;
  revoked: boolean;
  refreshCount: number;
}

interface AuthCode {
  clientId: string;
  redirectUri?: string;
  expiresAt: number;
  used: boolean;
}

interface AccessToken {
  grantId: string;
  expiresAt: number;
}

interface RefreshToken {
  grantId: string;
  issuedAt: number;
  /** Set when a refresh used this token; it stays usable for the grace period after. */
  rotatedAt?: number;
}

type OAuthResult = { status: number; body: Json; headers?: Record<string, string> };

export class OAuthServer {
  readonly consumers = new Map<string, BitbucketConsumer>();
  private readonly grants = new Map<string, Grant>();
  private readonly codes = new Map<string, AuthCode>();
  private readonly accessTokens = new Map<string, AccessToken>();
  private readonly refreshTokens = new Map<string, RefreshToken>();
  private denial?: string;
  private reuse = 0;
  ttlSeconds: number;

  constructor(
    private readonly secrets: SecretRegistry,
    private readonly clock: MonotonicClock,
    public graceSeconds: number,
    private readonly scopeField: 'scope' | 'scopes',
    ttlSeconds: number,
  ) {
    this.ttlSeconds = ttlSeconds;
  }

  addConsumer(c: BitbucketConsumer): void {
    if (!c.clientId || !c.clientSecret) throw new SimInputError('clientId and clientSecret are required');
    this.consumers.set(c.clientId, { ...c, scopes: c.scopes ?? [...DEFAULT_BITBUCKET_CONSUMER.scopes] });
    this.secrets.add(c.clientSecret);
  }

  denyNext(description: string): void {
    this.denial = description;
  }

  clearDenial(): void {
    this.denial = undefined;
  }

  /** No human is in the loop, so the consent screen approves at once (unless a denial is queued). */
  authorize(query: URLSearchParams): { redirect: string } | { status: number; html: string } {
    const consumer = this.consumers.get(query.get('client_id') ?? '');
    if (!consumer) return { status: 400, html: errorPage('Invalid client_id', 'No OAuth consumer with this key exists.') };
    const requested = query.get('redirect_uri') ?? undefined;
    // A callback URL sent with the request must extend the configured one
    // (https://support.atlassian.com/bitbucket-cloud/docs/use-oauth-on-bitbucket-cloud/).
    if (requested && consumer.callbackUrl && !requested.startsWith(consumer.callbackUrl)) {
      return { status: 400, html: errorPage('Invalid redirect_uri', 'The redirect_uri does not match the consumer callback URL.') };
    }
    const target = requested ?? consumer.callbackUrl;
    if (!target) return { status: 400, html: errorPage('Missing callback URL', 'This consumer has no callback URL configured.') };
    let url: URL;
    try {
      url = new URL(target);
    } catch {
      return { status: 400, html: errorPage('Invalid redirect_uri', 'The redirect_uri is not a URL.') };
    }
    const params: [string, string][] = [];
    if (this.denial !== undefined) {
      params.push(['error', 'access_denied'], ['error_description', this.denial]);
      this.denial = undefined;
    } else if (query.get('response_type') !== 'code') {
      params.push(['error', 'unsupported_response_type'], ['error_description', 'Only response_type=code is supported.']);
    } else {
      const code = this.secrets.add(randomSecret(18));
      this.codes.set(code, {
        clientId: consumer.clientId,
        redirectUri: requested,
        expiresAt: this.clock.peek() + CODE_TTL_MS,
        used: false,
      });
      params.push(['code', code]);
    }
    // `state` is echoed as sent, repeats included.
    for (const s of query.getAll('state')) params.push(['state', s]);
    for (const [k, v] of params) url.searchParams.append(k, v);
    return { redirect: url.toString() };
  }

  /** How long a rotated-out refresh token keeps working (Bitbucket: "shortly after"). */
  setRefreshTokenGrace(seconds: number): void {
    if (!Number.isFinite(seconds) || seconds < 0) throw new SimInputError('seconds must be a number >= 0');
    this.graceSeconds = seconds;
  }

  token(request: FastifyRequest): OAuthResult {
    const contentType = String(request.headers['content-type'] ?? '');
    if (!contentType.startsWith('application/x-www-form-urlencoded') || !isRecord(request.body)) {
      return oauthError(400, 'invalid_request', 'The request body must be application/x-www-form-urlencoded.');
    }
    const form = request.body as Record<string, string>;
    const client = this.authenticateClient(request.headers.authorization, form);
    if ('status' in client) return client;
    switch (form.grant_type) {
      case 'authorization_code':
        return this.exchangeCode(client, form);
      case 'refresh_token':
        return this.refresh(client, form.refresh_token);
      case 'client_credentials':
        // Since 2026-05-04 this grant gets no refresh token
        // (https://community.developer.atlassian.com/t/oauth-2-0-and-api-authentication-changes-for-bitbucket-cloud/99003).
        return this.issue(this.newGrant(client, 'client_credentials'), 'client_credentials', false);
      case undefined:
        return oauthError(400, 'invalid_request', 'Missing grant_type parameter.');
      default:
        return oauthError(400, 'unsupported_grant_type', `Unsupported grant type: ${form.grant_type}`);
    }
  }

  private authenticateClient(header: string | undefined, form: Record<string, string>): BitbucketConsumer | OAuthResult {
    let id = form.client_id;
    let secret = form.client_secret;
    if (header && /^basic /i.test(header)) {
      const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon > 0) {
        id = decoded.slice(0, colon);
        secret = decoded.slice(colon + 1);
      }
    }
    const consumer = id ? this.consumers.get(id) : undefined;
    if (!consumer || secret === undefined || !sameSecret(consumer.clientSecret, secret)) {
      return {
        ...oauthError(401, 'invalid_client', 'Invalid client_id or client_secret.'),
        headers: { 'www-authenticate': 'Basic realm="Bitbucket.org HTTP"' },
      };
    }
    return consumer;
  }

  private exchangeCode(client: BitbucketConsumer, form: Record<string, string>): OAuthResult {
    const code = form.code ? this.codes.get(form.code) : undefined;
    const now = this.clock.peek();
    if (!code || code.used || code.expiresAt <= now || code.clientId !== client.clientId) {
      if (code && code.clientId === client.clientId) code.used = true;
      return oauthError(400, 'invalid_grant', 'The specified code is not valid.');
    }
    if (form.redirect_uri && code.redirectUri && form.redirect_uri !== code.redirectUri) {
      return oauthError(400, 'invalid_grant', 'The redirect_uri does not match the one used to authorize.');
    }
    code.used = true;
    return this.issue(this.newGrant(client, 'authorization_code'), 'authorization_code', true);
  }

  private refresh(client: BitbucketConsumer, presented: string | undefined): OAuthResult {
    const invalid = () => ({ status: 400, body: { error_description: 'Invalid refresh_token', error: 'invalid_request' } });
    const token = presented ? this.refreshTokens.get(presented) : undefined;
    if (!token) return invalid();
    const grant = this.grants.get(token.grantId);
    if (!grant || grant.revoked || grant.clientId !== client.clientId) return invalid();
    const now = this.clock.peek();
    if (token.rotatedAt !== undefined) {
      // A rotated-out token coming back means two refreshes raced (or a stale copy was used):
      // exactly what Conduit's serialized refresh must never do, so count it either way.
      this.reuse += 1;
      if (now > token.rotatedAt + this.graceSeconds * 1000) return invalid();
    } else if (now > token.issuedAt + REFRESH_TOKEN_IDLE_MS) {
      return invalid();
    }
    token.rotatedAt ??= now;
    grant.refreshCount += 1;
    return this.issue(grant, 'refresh_token', true);
  }

  private newGrant(client: BitbucketConsumer, kind: Grant['kind']): Grant {
    const grant: Grant = {
      id: `grant-${this.grants.size + 1}`,
      clientId: client.clientId,
      kind,
      scopes: [...(client.scopes ?? [])],
      createdAt: this.clock.peek(),
      revoked: false,
      refreshCount: 0,
    };
    this.grants.set(grant.id, grant);
    return grant;
  }

  private issue(grant: Grant, grantType: string, withRefresh: boolean): OAuthResult {
    const now = this.clock.peek();
    const accessToken = this.secrets.add(randomSecret(96, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'));
    this.accessTokens.set(accessToken, { grantId: grant.id, expiresAt: now + this.ttlSeconds * 1000 });
    // Observed shape (https://github.com/terrakube-io/terrakube/issues/47): `state` carries the grant type.
    const body: Json = {
      access_token: accessToken,
      [this.scopeField]: grant.scopes.join(' '),
      expires_in: this.ttlSeconds,
      token_type: 'bearer',
      state: grantType,
    };
    if (withRefresh) {
      const refreshToken = this.secrets.add(randomSecret(24));
      this.refreshTokens.set(refreshToken, { grantId: grant.id, issuedAt: now });
      body.refresh_token = refreshToken;
    }
    return { status: 200, body };
  }

  /** Resolves the bearer token of an API request to its grant, or throws the provider's 401. */
  authenticate(authorization: string | undefined, query: URLSearchParams): Grant {
    // Since 2026-05-04 tokens are accepted only in the Authorization header
    // (https://community.developer.atlassian.com/t/oauth-2-0-and-api-authentication-changes-for-bitbucket-cloud/99003).
    if (query.has('access_token')) throw new ApiError(401, MSG_INVALID);
    if (!authorization) throw new ApiError(401, 'Authentication required. Send the access token as a Bearer token.');
    if (/^basic /i.test(authorization)) {
      // Username + password style credentials are not simulated; Bitbucket answers them in plain text.
      throw new ApiError(401, 'Login failed due to incorrect login credentials or method.', true);
    }
    // The scheme name is case-insensitive (RFC 7235), the token is not.
    const match = /^bearer (\S+)$/i.exec(authorization);
    const token = match?.[1] ? this.accessTokens.get(match[1]) : undefined;
    const grant = token && this.grants.get(token.grantId);
    if (!token || !grant || grant.revoked) throw new ApiError(401, MSG_INVALID);
    if (token.expiresAt <= this.clock.peek()) throw new ApiError(401, MSG_EXPIRED);
    return grant;
  }

  expireAccessTokens(): void {
    const past = this.clock.peek() - 1;
    for (const t of this.accessTokens.values()) t.expiresAt = Math.min(t.expiresAt, past);
  }

  revokeAll(): void {
    for (const g of this.grants.values()) g.revoked = true;
  }

  refreshCount(grantId?: string): number {
    if (grantId !== undefined) {
      const grant = this.grants.get(grantId);
      if (!grant) throw new SimNotFoundError(`no grant ${grantId}`);
      return grant.refreshCount;
    }
    return [...this.grants.values()].reduce((sum, g) => sum + g.refreshCount, 0);
  }

  reuseCount(): number {
    return this.reuse;
  }

  grantList(): BitbucketGrantInfo[] {
    return [...this.grants.values()].map((g) => ({ ...g, scopes: [...g.scopes] }));
  }
}

export function oauthError(status: number, error: string, description: string): OAuthResult {
  return { status, body: { error, error_description: description } };
}

function sameSecret(expected: string, actual: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(actual);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function errorPage(title: string, detail: string): string {
  return `<!DOCTYPE html><html><head><title>${title} — Bitbucket</title></head><body><h1>${title}</h1><p>${detail}</p></body></html>`;
}

/** `pullrequest` implies `repository`; `x:write`/`x:admin` imply `x` (https://api.bitbucket.org/swagger.json, securityDefinitions). */
export function hasScope(granted: string[], required: string): boolean {
  const implied = new Set(granted.flatMap((s) => [s, s.split(':')[0] ?? s, ...(s.startsWith('pullrequest') ? ['repository'] : [])]));
  return implied.has(required);
}
