import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import type { Sql } from '../db/sql';

/**
 * Every log line an activity writes — the SDK's own ("Activity failed", with the workflow id, run
 * id and attempt) and ours through `log` from `@temporalio/activity` — also names the tenant, the
 * connection and the sync run it worked for, read from the activity's arguments (ids only: no
 * argument carries a secret). An operator can then follow one connection through api and worker
 * logs with one filter.
 */

export interface ActivityLogFields {
  tenantId?: string;
  connectionId?: string;
  syncRunId?: string;
  resource?: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** The activities whose second argument is the sync run's id (and, for syncStep, the third its step). */
const RUN_ACTIVITIES = new Set(['beginRun', 'syncStep', 'completeRun', 'failRun']);

/** Pure: what an activity's arguments say about what it works on. Every connection activity takes the connection id first. */
export function activityLogFields(activityType: string, args: readonly unknown[]): Omit<ActivityLogFields, 'tenantId'> {
  const [first, second, third] = args;
  if (typeof first !== 'string' || !UUID.test(first)) return {};
  const fields: Omit<ActivityLogFields, 'tenantId'> = { connectionId: first };
  if (RUN_ACTIVITIES.has(activityType) && typeof second === 'string') fields.syncRunId = second;
  if (activityType === 'syncStep' && typeof third === 'string') fields.resource = third;
  return fields;
}

/** A connection's tenant never changes, so it is read once per connection and remembered (bounded). */
export function tenantLookup(sql: Sql, maxEntries = 10_000): (connectionId: string) => Promise<string | undefined> {
  const known = new Map<string, string>();
  return async (connectionId) => {
    const hit = known.get(connectionId);
    if (hit) return hit;
    try {
      const [row] = await sql<{ tenantId: string }[]>`select tenant_id from connections where id = ${connectionId}`;
      if (!row) return undefined;
      if (known.size >= maxEntries) known.delete(known.keys().next().value!);
      known.set(connectionId, row.tenantId);
      return row.tenantId;
    } catch {
      // Logging context is never worth failing or delaying the activity for (Postgres may be down).
      return undefined;
    }
  };
}

export function logContextInterceptors(tenantOf: (connectionId: string) => Promise<string | undefined>): ActivityInterceptorsFactory {
  return (ctx) => {
    let fields: ActivityLogFields = {};
    return {
      inbound: {
        async execute(input, next) {
          const found = activityLogFields(ctx.info.activityType, input.args);
          const tenantId = found.connectionId ? await tenantOf(found.connectionId) : undefined;
          fields = { ...(tenantId ? { tenantId } : {}), ...found };
          return next(input);
        },
      },
      outbound: {
        getLogAttributes: (attributes, next) => next({ ...attributes, ...fields }),
      },
    };
  };
}
