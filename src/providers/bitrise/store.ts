import type { Sql } from '../../db/sql';
import type { AccessTracked } from '../../sync/access';

/** The SQL the Bitrise syncers need beyond the generic page commit. Syncers reach it as `ctx.store`. */
export function createBitriseStore(sql: Sql, connectionId: string) {
  return {
    /**
     * Every app still listed, inaccessible ones included: an app whose access comes back is only
     * noticed by asking it (one request), since the apps list carries no change time. A deleted app
     * is not asked (the apps listing, complete every run, unmarks it if it comes back).
     */
    async apps(): Promise<AccessTracked[]> {
      return sql<AccessTracked[]>`
        select id, accessible from bitrise_apps where connection_id = ${connectionId} and deleted_at is null order by id`;
    },

    /** Builds of the app that were still running when last seen and were triggered before `before` (Unix seconds). */
    async runningBuilds(app: string, before: number): Promise<string[]> {
      const rows = await sql<{ id: string }[]>`
        select id from bitrise_builds where connection_id = ${connectionId} and app_id = ${app} and status = 0
          and triggered_at < to_timestamp(${before})`;
      return rows.map((r) => r.id);
    },
  };
}

export type BitriseStore = ReturnType<typeof createBitriseStore>;
