import type { ProviderAdapter } from '../adapter';
import { bitriseAuthHeaders, getBitriseAccount } from './account';
import { bitriseManifest } from './manifest';
import { bitriseEnv, bitriseSettings, type BitriseSettings } from './settings';
import { createBitriseStore, type BitriseStore } from './store';
import { bitriseInsights } from './insights';
import { bitriseSyncers } from './syncers';
import { BITRISE_TABLES } from './tables';

/** Bitrise API v0.1 over a personal or workspace access token (https://api-docs.bitrise.io/). */
export function createBitriseAdapter(settings: BitriseSettings): ProviderAdapter<'bitrise', BitriseStore> {
  return {
    manifest: bitriseManifest,
    apiUrl: settings.apiUrl,
    requestsPerHour: settings.requestsPerHour,
    authHeaders: bitriseAuthHeaders,
    getAccount: (token, meter) => getBitriseAccount(settings.apiUrl, token, meter),
    // Each token has its own budget, and each connection its own token.
    rateParty: (connectionId) => connectionId,
    tables: BITRISE_TABLES,
    createStore: createBitriseStore,
    syncers: bitriseSyncers,
    insights: bitriseInsights,
  };
}

export const bitriseProvider = {
  env: bitriseEnv,
  settings: bitriseSettings,
  createAdapter: createBitriseAdapter,
};
