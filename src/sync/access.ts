import { isProviderError } from '../providers/errors';
import type { SyncContext } from './context';
import type { TableSpec } from './store';

/** A parent whose endpoints may stop answering us: a repository, an app. */
export interface AccessTracked {
  id: string;
  accessible: boolean;
}

/** 403 or 404: the provider answers either for a private resource we lost (https://github.com/badges/shields/issues/8520). */
export const isInaccessible = (err: unknown) => isProviderError(err, 'forbidden') || isProviderError(err, 'not_found');

/**
 * Runs one parent's part of a step under the access rule both providers share: a 403/404 marks
 * the parent inaccessible and lets the run go on with the next; a parent that answers again is
 * marked accessible. Either mark counts as progress for stall detection.
 */
export async function withParentAccess(
  ctx: SyncContext<unknown>,
  spec: TableSpec,
  parent: AccessTracked,
  fn: () => Promise<void>,
): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (!isInaccessible(err)) throw err;
    await ctx.markAccess(spec, parent.id, false);
    parent.accessible = false;
    return;
  }
  if (!parent.accessible) {
    await ctx.markAccess(spec, parent.id, true);
    parent.accessible = true;
  }
}
