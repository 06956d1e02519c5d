import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/**
 * Custom search attributes operators filter on in the Temporal UI and CLI, e.g.
 * `temporal workflow list --query 'ConnectionStatus="needs_reconnect"'`.
 * Search attributes are stored unencrypted, so only ids and enums go here, never names or secrets.
 */
export const connectionStatusKey = defineSearchAttributeKey('ConnectionStatus', SearchAttributeType.KEYWORD);
export const providerKey = defineSearchAttributeKey('Provider', SearchAttributeType.KEYWORD);
export const tenantIdKey = defineSearchAttributeKey('TenantId', SearchAttributeType.KEYWORD);
/**
 * idle | running | rate_limited | paced | provider_unavailable: finds the connections sleeping out a
 * provider's rate limit, waiting for their share of a shared request budget, or waiting for a
 * provider that keeps failing.
 */
export const syncStateKey = defineSearchAttributeKey('SyncState', SearchAttributeType.KEYWORD);

export const SEARCH_ATTRIBUTE_KEYS = [connectionStatusKey, providerKey, tenantIdKey, syncStateKey] as const;
