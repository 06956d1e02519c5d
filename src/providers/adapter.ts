import type { ProviderInsights } from '../insights/types';
import type { SyncContext } from '../sync/context';
import type { TableSpec } from '../sync/store';
import type { Sql } from '../db/sql';
import type { Provider, SyncResource } from './manifests';
import type { RequestMeter } from './http';
import { type MANIFESTS } from './manifests';

/**
 * Everything Conduit does that depends on which provider it talks to, behind one interface. Each
 * provider implements it in its own folder (src/providers/<id>/index.ts); ./registry.ts lists them.
 * No code outside a provider's folder names a provider.
 */

export interface ProviderAccount {
  /** The provider's stable id of whoever the credential belongs to. */
  id: string;
  name: string;
}

export interface OAuthClientCredentials {
  clientId: string;
  clientSecret: string;
}

export interface OAuthTokens {
  accessToken: string;
  refreshToken: string;
  /** Absolute expiry, computed from `expires_in` when the response arrived. */
  expiresAt: string;
  scopes: string[];
}

/** The OAuth 2.0 authorization-code flow with rotating refresh tokens. */
export interface OAuthFlow {
  /** The consumer used when a connection brings none of its own. */
  platformClient?: OAuthClientCredentials;
  /**
   * How long a rotated-out refresh token keeps working at the provider (its grace window): while it
   * lasts after a refresh that may have been lost, a refusal is retried rather than parking.
   */
  refreshGraceMs?: number;
  authorizeUrl(clientId: string, state: string, redirectUri: string): string;
  exchangeCode(client: OAuthClientCredentials, code: string, redirectUri: string, now?: number): Promise<OAuthTokens>;
  /** Throws ProviderError `invalid_grant` for a refused refresh token, `invalid_client` for a refused consumer. */
  refresh(client: OAuthClientCredentials, refreshToken: string, now?: number): Promise<OAuthTokens>;
}

export interface ProviderAdapter<P extends Provider = Provider, Store = unknown> {
  manifest: (typeof MANIFESTS)[P];
  /** The API's base URL; next links are followed only on its origin. */
  apiUrl: string;
  /** Pace per rate-limited party (see `rateParty`). */
  requestsPerHour: number;
  /** Present exactly when `manifest.auth` is `oauth2`. */
  oauth?: OAuthFlow;
  /** Request headers carrying an access token. */
  authHeaders(token: string): Record<string, string>;
  /** Whose account a token belongs to: the `account` step of every run, and credential checks. */
  getAccount(token: string, meter?: RequestMeter): Promise<ProviderAccount>;
  /**
   * Who the provider counts a connection's requests against: every connection sharing the party
   * shares one request budget. `oauthClientId` is the consumer the connection uses, if any.
   */
  rateParty(connectionId: string, oauthClientId: string | undefined): string;
  /** Where each resource is stored (and served from by the records API). */
  tables: { readonly [R in SyncResource<P>]: TableSpec };
  /** Reads the syncers need from what earlier steps stored (parents of per-parent listings). */
  createStore(sql: Sql, connectionId: string): Store;
  syncers: { readonly [R in SyncResource<P>]: (ctx: SyncContext<Store>) => Promise<void> };
  /** The insight figures this provider offers (GET /v1/connections/:id/insights/*); SQL in its insights.ts. */
  insights?: ProviderInsights;
}
