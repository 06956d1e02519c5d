import type postgres from 'postgres';
import type { Sql } from '../db/sql';
import type { DeliveryResponse, OverviewFigures, SeatsResponse } from './schemas';

/** A piece of SQL built with the `sql` tag, composed into a larger query. */
export type Fragment = postgres.PendingQuery<postgres.Row[]>;

/** A validated period: ISO instants, `from` inclusive, `to` exclusive, and the bucket size (UTC). */
export interface InsightRange {
  from: string;
  to: string;
  bucket: 'day' | 'week';
}

export interface CiFilters {
  /** An app (Bitrise) or repository (Bitbucket) id. */
  group?: string;
  workflow?: string;
  branch?: string;
}

export interface InsightSettings {
  deploymentPattern?: string | null;
}

/**
 * A provider's CI runs normalized into one relation, which the provider-neutral CI and flakiness
 * queries (./ci.ts) read. Columns: id, group_id, workflow (never null), branch, commit_hash, outcome
 * ('running' | 'success' | 'failure' | 'abort'), at (timestamptz the run was triggered), queue_s,
 * duration_s (float8 seconds, null while running or unknown), cost (float8), url. Runs of a group
 * the provider deleted (and of its deleted parents) are not in it.
 */
export interface CiSource {
  groupKind: 'app' | 'repository';
  costUnit: 'credits' | 'minutes';
  /** Runs triggered in [from, to) matching the filters. */
  runs(sql: Sql, connectionId: string, from: string, to: string, filters: CiFilters): Fragment;
  /** The groups' display names: columns group_id, group_name (one row per group). */
  groups(sql: Sql, connectionId: string): Fragment;
}

/** What a provider offers under /insights; each figure is optional. */
export interface ProviderInsights {
  ci?: CiSource;
  seats?: (sql: Sql, connectionId: string, range: InsightRange) => Promise<Omit<SeatsResponse, 'connectionId'>>;
  delivery?: (
    sql: Sql,
    connectionId: string,
    range: InsightRange,
    settings: InsightSettings,
  ) => Promise<Omit<DeliveryResponse, 'connectionId' | 'range'>>;
  /** Provider-specific headline numbers of the overview (CI figures come from `ci`). */
  overview?: (sql: Sql, connectionId: string, range: InsightRange) => Promise<Partial<OverviewFigures>>;
}
