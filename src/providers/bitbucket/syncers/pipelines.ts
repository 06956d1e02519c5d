import { isProviderError } from '../../../providers/errors';
import { withParentAccess } from '../../../sync/access';
import type { SyncContext } from '../../../sync/context';
import { pipelinesPageSeen, pipelineWatermark, readPipelinesCursor, type PipelinesCursor } from '../cursors';
import { isRunning, pipelineRow, redactBitbucketRecord } from '../rows';
import { bitbucketPipelineSchema, bitbucketRawPage } from '../schemas';
import type { BitbucketStore } from '../store';
import { BITBUCKET_TABLES } from '../tables';
import { pipelinesUrl } from '../urls';

/**
 * Pipelines page newest first down to a watermark held back to the oldest pipeline still running
 * last time, so a running pipeline is listed again until it completes.
 */
export async function syncPipelines(ctx: SyncContext<BitbucketStore>): Promise<void> {
  for (const repo of await ctx.store.repositories(true)) {
    await withParentAccess(ctx, BITBUCKET_TABLES.repositories, repo, async () => {
      const cursor = readPipelinesCursor(await ctx.cursor<unknown>('pipelines', repo.id));
      const { after } = cursor;
      let page = cursor.page ?? 1;
      let newest = cursor.newest ?? after;
      let oldestRunning = cursor.oldestRunning;
      let resuming = cursor.page !== undefined;
      for (;;) {
        // Newest first by page number: pipelines created meanwhile push rows to later pages,
        // which only repeats a few rows, never skips one.
        let body;
        try {
          body = await ctx.get(pipelinesUrl(ctx.apiUrl, repo, page), bitbucketRawPage);
        } catch (err) {
          // A saved page number past the end (pipelines deleted meanwhile) is no reason to call the
          // repository inaccessible: start the pass over.
          if (!resuming || !isProviderError(err, 'not_found')) throw err;
          resuming = false;
          page = 1;
          newest = after;
          oldestRunning = undefined;
          continue;
        }
        resuming = false;
        const pipelines = ctx.accept('pipelines', body.values, bitbucketPipelineSchema, redactBitbucketRecord);
        const seen = pipelinesPageSeen(
          { newest, oldestRunning },
          pipelines.map((p) => ({ createdOn: p.created_on, running: isRunning(p) })),
          after,
        );
        ({ newest, oldestRunning } = seen);
        const { reached } = seen;
        const more = Boolean(body.next) && (body.values?.length ?? 0) > 0 && !reached;
        const value: PipelinesCursor = more
          ? { after, page: page + 1, newest, oldestRunning }
          : { after: pipelineWatermark(newest, oldestRunning) };
        // Rows at or below the watermark are stored and finished already; rewriting them every run
        // (the page that reaches the watermark is mostly such rows) would only churn.
        const fresh = after === undefined ? pipelines : pipelines.filter((p) => !(Date.parse(p.created_on) <= after));
        await ctx.commit(
          BITBUCKET_TABLES.pipelines,
          fresh.map((p) => pipelineRow(repo.id, p)),
          { resource: 'pipelines', scope: repo.id, value },
        );
        if (!more) return;
        page += 1;
      }
    });
  }
}
