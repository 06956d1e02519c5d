import { isProviderError } from '../errors';
import { withParentAccess } from '../../sync/access';
import type { SyncContext } from '../../sync/context';
import { CompleteListing, markUnlisted } from '../../sync/deletions';
import { buildsCursor, listUrl, newestBuildSeconds, pipelinesCursor, pipelinesSeen, readNewestFirstCursor } from './cursors';
import { appRow, buildRow, organizationRow, pipelineRow, redactBitriseRecord } from './rows';
import {
  bitriseAppSchema,
  bitriseBuildSchema,
  bitriseOrganizationSchema,
  bitrisePipelineListItemSchema,
  bitriseRawData,
  bitriseRawPage,
} from './schemas';
import type { BitriseStore } from './store';
import { BITRISE_TABLES } from './tables';

/**
 * Bitrise v0.1 resources (https://api-docs.bitrise.io/). Lists use `{data, paging:{next}}` with at
 * most 50 per page (https://docs.bitrise.io/en/bitrise-ci/api/pagination-of-api-calls.html);
 * builds carry an integer status (0 = not finished) and Unix-second `after`/`before` filters;
 * pipelines page by time.
 */

const PAGE_LIMIT = 50;

const seg = encodeURIComponent;

const isPipeline = (v: unknown) => typeof v === 'object' && v !== null && (v as { is_pipeline?: unknown }).is_pipeline === true;

export const bitriseSyncers = {
  async organizations(ctx: SyncContext<BitriseStore>): Promise<void> {
    // One unpaged list (`v0.OrganizationListRespModel` has no paging): complete when readable.
    const page = await ctx.get(listUrl(ctx.apiUrl, '/organizations', {}), bitriseRawPage);
    const rows = ctx.accept('organizations', page.data, bitriseOrganizationSchema, redactBitriseRecord).map(organizationRow);
    const listing = new CompleteListing();
    listing.page(
      rows.map((r) => r.id),
      page.data?.length ?? null,
    );
    const gone = listing.complete(true) ? markUnlisted(BITRISE_TABLES.organizations, ctx.connectionId, listing.ids()) : undefined;
    await ctx.commit(BITRISE_TABLES.organizations, rows, undefined, gone);
  },

  async apps(ctx: SyncContext<BitriseStore>): Promise<void> {
    // Apps are few and carry no change time, so each run lists them all (discovering new ones), and
    // an app a complete listing no longer returns is marked deleted.
    const listing = new CompleteListing();
    let next: string | undefined;
    do {
      const page = await ctx.get(listUrl(ctx.apiUrl, '/apps', { limit: PAGE_LIMIT, sort_by: 'created_at', next }), bitriseRawPage);
      const rows = ctx.accept('apps', page.data, bitriseAppSchema, redactBitriseRecord).map(appRow);
      next = page.paging?.next ?? undefined;
      listing.page(
        rows.map((r) => r.id),
        page.data?.length ?? null,
        page.paging?.total_item_count,
      );
      const gone = listing.complete(!next) ? markUnlisted(BITRISE_TABLES.apps, ctx.connectionId, listing.ids()) : undefined;
      await ctx.commit(BITRISE_TABLES.apps, rows, undefined, gone);
    } while (next);
  },

  async builds(ctx: SyncContext<BitriseStore>): Promise<void> {
    for (const app of await ctx.store.apps()) {
      await withParentAccess(ctx, BITRISE_TABLES.apps, app, async () => {
        const cursor = readNewestFirstCursor(await ctx.cursor<unknown>('builds', app.id));
        let { next } = cursor;
        let newest = cursor.newest ?? cursor.after ?? 0;
        do {
          const page = await ctx.get(
            listUrl(ctx.apiUrl, `/apps/${seg(app.id)}/builds`, { limit: PAGE_LIMIT, after: cursor.after, next }),
            bitriseRawPage,
          );
          const builds = ctx.accept('builds', page.data, bitriseBuildSchema, redactBitriseRecord);
          newest = newestBuildSeconds(
            newest,
            builds.map((b) => b.triggered_at),
          );
          next = page.paging?.next ?? undefined;
          await ctx.commit(
            BITRISE_TABLES.builds,
            builds.map((b) => buildRow(app.id, b)),
            { resource: 'builds', scope: app.id, value: buildsCursor(cursor.after, next, newest) },
          );
        } while (next);

        // Builds that were running last time are fetched one by one until they finish; `after`
        // only brings builds triggered since, and those are already up to date.
        for (const id of await ctx.store.runningBuilds(app.id, cursor.after ?? 0)) {
          try {
            const one = await ctx.get(listUrl(ctx.apiUrl, `/apps/${seg(app.id)}/builds/${seg(id)}`, {}), bitriseRawData);
            const [build] = ctx.accept('builds', [one.data], bitriseBuildSchema, redactBitriseRecord);
            await ctx.commit(BITRISE_TABLES.builds, build ? [buildRow(app.id, build)] : []);
          } catch (err) {
            if (!isProviderError(err, 'not_found')) throw err;
          }
        }
      });
    }
  },

  async pipelines(ctx: SyncContext<BitriseStore>): Promise<void> {
    for (const app of await ctx.store.apps()) {
      await withParentAccess(ctx, BITRISE_TABLES.apps, app, async () => {
        const cursor = readNewestFirstCursor(await ctx.cursor<unknown>('pipelines', app.id));
        let before = cursor.next;
        const after = cursor.after !== undefined ? new Date(cursor.after).toISOString() : undefined;
        let seen = { newest: cursor.newest ?? cursor.after ?? 0, oldestRunning: cursor.oldestRunning ?? Number.POSITIVE_INFINITY };
        for (;;) {
          const page = await ctx.get(
            listUrl(ctx.apiUrl, `/apps/${seg(app.id)}/pipelines`, { limit: PAGE_LIMIT, after, before }),
            bitriseRawPage,
          );
          // The list mixes pipelines with standalone builds; builds are synced from their own endpoint.
          const pipelines = ctx.accept(
            'pipelines',
            page.data === null ? null : page.data.filter(isPipeline),
            bitrisePipelineListItemSchema,
            redactBitriseRecord,
          );
          seen = pipelinesSeen(seen, pipelines);
          before = page.paging?.next ?? undefined;
          // Running pipelines are re-listed next time: the watermark stops just before the oldest.
          await ctx.commit(
            BITRISE_TABLES.pipelines,
            pipelines.map((p) => pipelineRow(app.id, p)),
            { resource: 'pipelines', scope: app.id, value: pipelinesCursor(cursor.after, before, seen) },
          );
          if (!before) break;
        }
      });
    }
  },
};
