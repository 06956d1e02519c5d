import { sha256 } from '../crypto/tokens';
import type { Sql } from '../db/sql';
import { findTenantByApiKeyDigest, TENANT_CHANGES_CHANNEL, type Tenant } from '../db/tenants';

/**
 * API keys → tenants, kept in memory for `ttlMs`, so an authenticated request costs one Postgres
 * round trip (its own read) instead of two. What keeps it true:
 *
 * - **Changes are announced.** Every statement that changes a tenant notifies
 *   TENANT_CHANGES_CHANNEL when it commits (src/db/tenants.ts); every API process listens and
 *   drops that tenant at once, so a PATCH on one replica is seen by all of them.
 * - **A missed announcement is bounded.** The listening connection re-subscribes after a drop and
 *   the whole cache is cleared then (announcements may have been missed meanwhile); and no entry
 *   outlives `ttlMs` (API_KEY_CACHE_SECONDS) whatever happens.
 * - **No stale write-back.** A lookup that started before an announcement is not cached.
 * - **Misses are never cached** (a stream of wrong keys cannot fill memory or pin a 401), and the
 *   cache holds at most `maxEntries` keys, keyed by their SHA-256 (no raw key is kept).
 */
export interface TenantCache {
  byApiKey(apiKey: string): Promise<Tenant | undefined>;
  /** Drops what is cached about a tenant (announced changes call this). */
  forget(tenantId: string): void;
  close(): Promise<void>;
}

export interface TenantCacheOptions {
  ttlMs: number;
  maxEntries?: number;
  now?: () => number;
}

export async function createTenantCache(sql: Sql, opts: TenantCacheOptions): Promise<TenantCache> {
  const now = opts.now ?? Date.now;
  const maxEntries = opts.maxEntries ?? 10_000;
  const entries = new Map<string, { tenant: Tenant; expiresAt: number }>();
  // Grows with every announcement: a lookup that straddles one must not store what it read.
  let generation = 0;

  const forget = (tenantId: string) => {
    generation += 1;
    for (const [key, entry] of entries) if (entry.tenant.id === tenantId) entries.delete(key);
  };
  const clear = () => {
    generation += 1;
    entries.clear();
  };

  // onlisten runs on every (re)subscription: whatever was announced while unsubscribed is lost.
  const listening = opts.ttlMs > 0 ? await sql.listen(TENANT_CHANGES_CHANNEL, forget, clear) : undefined;

  return {
    async byApiKey(apiKey) {
      const digest = sha256(apiKey);
      if (opts.ttlMs <= 0) return findTenantByApiKeyDigest(sql, digest);
      const key = digest.toString('base64url');
      const cached = entries.get(key);
      if (cached && cached.expiresAt > now()) return cached.tenant;
      if (cached) entries.delete(key);
      const seen = generation;
      const tenant = await findTenantByApiKeyDigest(sql, digest);
      if (tenant && seen === generation) {
        if (entries.size >= maxEntries) entries.delete(entries.keys().next().value!);
        entries.set(key, { tenant, expiresAt: now() + opts.ttlMs });
      }
      return tenant;
    },
    forget,
    async close() {
      await listening?.unlisten();
    },
  };
}
