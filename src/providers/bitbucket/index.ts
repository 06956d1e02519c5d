import type { ProviderAdapter } from '../adapter';
import { bitbucketAuthHeaders, getBitbucketAccount } from './account';
import { bitbucketManifest } from './manifest';
import { createBitbucketOAuth } from './oauth';
import { bitbucketEnv, bitbucketSettings, checkBitbucketEnv, type BitbucketSettings } from './settings';
import { createBitbucketStore, type BitbucketStore } from './store';
import { bitbucketInsights } from './insights';
import { bitbucketSyncers } from './syncers';
import { BITBUCKET_TABLES } from './tables';

/**
 * Bitbucket Cloud REST 2.0 (https://developer.atlassian.com/cloud/bitbucket/rest/intro/) over
 * OAuth 2.0 with rotating refresh tokens, our consumer or the customer's own.
 */
export function createBitbucketAdapter(settings: BitbucketSettings): ProviderAdapter<'bitbucket', BitbucketStore> {
  return {
    manifest: bitbucketManifest,
    apiUrl: settings.apiUrl,
    requestsPerHour: settings.requestsPerHour,
    oauth: createBitbucketOAuth(settings, settings.platformOAuthClient),
    authHeaders: bitbucketAuthHeaders,
    getAccount: (token, meter) => getBitbucketAccount(settings.apiUrl, token, meter),
    // OAuth calls count against the consumer, across all its users
    // (https://support.atlassian.com/bitbucket-cloud/kb/bitbucket-cloud-rate-limit-troubleshooting/).
    rateParty: (_connectionId, oauthClientId) => oauthClientId ?? 'unconfigured',
    tables: BITBUCKET_TABLES,
    createStore: createBitbucketStore,
    syncers: bitbucketSyncers,
    insights: bitbucketInsights,
  };
}

export const bitbucketProvider = {
  env: bitbucketEnv,
  check: checkBitbucketEnv,
  settings: bitbucketSettings,
  createAdapter: createBitbucketAdapter,
};
