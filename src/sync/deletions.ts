import type { TransactionSql } from '../db/sql';
import type { PageExtra, TableSpec } from './store';

/**
 * Deletion tracking, as Nango's: a record a *complete* listing no longer returns is marked
 * `deleted_at` (kept, for history and the records API), and a record listed again is unmarked by
 * its upsert (`upsertRecords`). Only a listing that provably saw everything may mark: every page
 * read to the end in one pass, nothing quarantined (a rejected record or a `null` page is someone we
 * could not read), and no fewer records seen than the provider said it had (page-number listings
 * shift when someone disappears while we page). A listing that stopped early, a parent answering
 * 403/404, or an incremental `updated_on > cursor` listing never reaches `markUnlisted`.
 */
export class CompleteListing {
  private readonly seen = new Set<string>();
  private unreadable = 0;
  private listed = 0;

  /**
   * One page: the ids of its accepted records, how many records the provider put on it (`null`
   * for a `null` list), and the listing's total size where the provider says it.
   */
  page(ids: readonly string[], onPage: number | null, size?: number | null): void {
    for (const id of ids) this.seen.add(id);
    this.unreadable += onPage === null ? 1 : Math.max(0, onPage - ids.length);
    if (typeof size === 'number') this.listed = Math.max(this.listed, size);
  }

  /** Whether a listing that reached its last page (`ended`) saw everything it lists. */
  complete(ended: boolean): boolean {
    return ended && this.unreadable === 0 && this.seen.size >= this.listed;
  }

  /** The ids seen, for `markUnlisted`. */
  ids(): string[] {
    return [...this.seen];
  }
}

/**
 * Marks the records of a tracked table (`spec.tracksDeletion`) that a complete listing did not
 * return, within the listing's scope (a column and value: the workspace whose members were listed),
 * in the transaction of the listing's last page. The mark moves `updated_at`: consumers following
 * changes through the records API see it.
 */
export function markUnlisted(
  spec: TableSpec,
  connectionId: string,
  seen: readonly string[],
  scope?: { column: string; value: string },
): PageExtra {
  if (!spec.tracksDeletion) throw new Error(`${spec.table} does not track deletions`);
  return async (tx: TransactionSql) => {
    // Identifiers come from TableSpec constants and syncer code, never from input.
    await tx`
      update ${tx(spec.table)} set deleted_at = now(), updated_at = now()
      where connection_id = ${connectionId} and deleted_at is null and not (id = any(${tx.array([...seen])}::text[]))
        ${scope ? tx`and ${tx(scope.column)} = ${scope.value}` : tx``}`;
  };
}

/** Two page extras in one transaction, in order. */
export function bothExtras(a: PageExtra | undefined, b: PageExtra | undefined): PageExtra | undefined {
  if (!a || !b) return a ?? b;
  return async (tx) => {
    await a(tx);
    await b(tx);
  };
}
