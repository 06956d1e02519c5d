import { isProviderError } from '../providers/errors';
import type { SyncContext } from './context';
import type { RecordRow, TableSpec } from './store';

/**
 * Bitrise v0.1 resources (provider-notes §B). Lists use `{data, paging:{next}}`; builds carry an
 * integer status (0 = not finished) and Unix-second `after`/`before` filters; pipelines page by
 * time. Fields the spec types as strings may be null, which the typed columns accept.
 */

export const BITRISE_TABLES = {
  organizations: { table: 'bitrise_organizations', columns: ['name', 'concurrency_count'] },
  apps: {
    table: 'bitrise_apps',
    columns: ['title', 'project_type', 'repo_provider', 'repo_owner', 'repo_slug', 'repo_url', 'is_public', 'is_disabled', 'owner_slug', 'accessible', 'inaccessible_since'],
  },
  builds: {
    table: 'bitrise_builds',
    columns: [
      'app_id', 'build_number', 'status', 'status_text', 'triggered_workflow', 'branch', 'commit_hash', 'machine_type_id', 'stack_identifier',
      'credit_cost', 'pipeline_workflow_id', 'pull_request_id', 'is_on_hold', 'triggered_at', 'started_on_worker_at',
      'environment_prepare_finished_at', 'finished_at',
    ],
  },
  pipelines: { table: 'bitrise_pipelines', columns: ['app_id', 'name', 'status', 'triggered_at', 'started_at', 'finished_at', 'credit_cost'] },
} as const satisfies Record<string, TableSpec>;

type Json = Record<string, any>;
interface Page {
  data: Json[];
  paging?: { next?: string | null };
}

const PAGE_LIMIT = 50;

const q = (params: Record<string, string | number | undefined>) => {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') s.set(k, String(v));
  return s.toString();
};

/**
 * Every app we know, inaccessible ones included: an app whose access comes back is only noticed
 * by asking it (one request), since the apps list carries no change time.
 */
async function knownApps(ctx: SyncContext): Promise<string[]> {
  const rows = await ctx.sql<{ id: string }[]>`
    select id from bitrise_apps where connection_id = ${ctx.connectionId} order by id`;
  return rows.map((r) => r.id);
}

/** 403/404 on one app marks it inaccessible and lets the rest of the run go on. */
async function withAppAccess(ctx: SyncContext, app: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
    // A flip moves updated_at: the records API serves `accessible`.
    await ctx.sql`update bitrise_apps set accessible = true, inaccessible_since = null, updated_at = now()
                  where connection_id = ${ctx.connectionId} and id = ${app} and not accessible`;
  } catch (err) {
    if (!isProviderError(err, 'forbidden') && !isProviderError(err, 'not_found')) throw err;
    await ctx.sql`update bitrise_apps set accessible = false, inaccessible_since = coalesce(inaccessible_since, now()),
                    updated_at = case when accessible then now() else updated_at end
                  where connection_id = ${ctx.connectionId} and id = ${app}`;
  }
}

const buildRow = (app: string, b: Json): RecordRow => ({
  id: b.slug,
  raw: b,
  values: {
    app_id: app,
    build_number: b.build_number,
    status: b.status,
    status_text: b.status_text,
    triggered_workflow: b.triggered_workflow,
    branch: b.branch,
    commit_hash: b.commit_hash,
    machine_type_id: b.machine_type_id,
    stack_identifier: b.stack_identifier,
    credit_cost: b.credit_cost,
    pipeline_workflow_id: b.pipeline_workflow_id,
    pull_request_id: b.pull_request_id || null,
    is_on_hold: b.is_on_hold,
    triggered_at: b.triggered_at,
    started_on_worker_at: b.started_on_worker_at,
    environment_prepare_finished_at: b.environment_prepare_finished_at,
    finished_at: b.finished_at,
  },
});

/**
 * The cursor of a newest-first listing. `after` is the watermark finished runs have reached;
 * while a pass is under way, `next` and `newest` say where it stands, so a retried activity goes
 * on from the last committed page instead of starting over or skipping the older pages.
 */
interface NewestFirstCursor {
  after?: number;
  next?: string | null;
  newest?: number;
  oldestRunning?: number;
}

export const bitriseSyncers = {
  async organizations(ctx: SyncContext): Promise<void> {
    const page = await ctx.get<Page>(`${ctx.apiUrl}/organizations`);
    await ctx.commit(
      BITRISE_TABLES.organizations,
      page.data.map((o) => ({ id: o.slug, raw: o, values: { name: o.name, concurrency_count: o.concurrency_count } })),
    );
  },

  async apps(ctx: SyncContext): Promise<void> {
    // Apps are few and carry no change time, so each run lists them all (discovering new ones).
    let next: string | undefined;
    do {
      const page = await ctx.get<Page>(`${ctx.apiUrl}/apps?${q({ limit: PAGE_LIMIT, sort_by: 'created_at', next })}`);
      await ctx.commit(
        BITRISE_TABLES.apps,
        page.data.map((a) => ({
          id: a.slug,
          raw: a,
          values: {
            title: a.title,
            project_type: a.project_type,
            repo_provider: a.provider,
            repo_owner: a.repo_owner,
            repo_slug: a.repo_slug,
            repo_url: a.repo_url,
            is_public: a.is_public,
            is_disabled: a.is_disabled,
            owner_slug: a.owner?.slug,
            accessible: true,
            inaccessible_since: null,
          },
        })),
      );
      next = page.paging?.next ?? undefined;
    } while (next);
  },

  async builds(ctx: SyncContext): Promise<void> {
    for (const app of await knownApps(ctx)) {
      await withAppAccess(ctx, app, async () => {
        const cursor = (await ctx.cursor<NewestFirstCursor>('builds', app)) ?? {};
        let { next } = cursor;
        let newest = cursor.newest ?? cursor.after ?? 0;
        do {
          const page = await ctx.get<Page>(`${ctx.apiUrl}/apps/${encodeURIComponent(app)}/builds?${q({ limit: PAGE_LIMIT, after: cursor.after, next: next ?? undefined })}`);
          for (const b of page.data) newest = Math.max(newest, Math.floor(Date.parse(b.triggered_at) / 1000));
          next = page.paging?.next ?? null;
          await ctx.commit(
            BITRISE_TABLES.builds,
            page.data.map((b) => buildRow(app, b)),
            { resource: 'builds', scope: app, value: next ? { after: cursor.after, next, newest } : { after: newest } },
          );
        } while (next);

        // Builds that were running last time are fetched one by one until they finish; `after`
        // only brings builds triggered since, and those are already up to date.
        const running = await ctx.sql<{ id: string }[]>`
          select id from bitrise_builds where connection_id = ${ctx.connectionId} and app_id = ${app} and status = 0
            and triggered_at < to_timestamp(${cursor.after ?? 0})`;
        for (const { id } of running) {
          try {
            const one = await ctx.get<{ data: Json }>(`${ctx.apiUrl}/apps/${encodeURIComponent(app)}/builds/${encodeURIComponent(id)}`);
            await ctx.commit(BITRISE_TABLES.builds, [buildRow(app, one.data)]);
          } catch (err) {
            if (!isProviderError(err, 'not_found')) throw err;
          }
        }
      });
    }
  },

  async pipelines(ctx: SyncContext): Promise<void> {
    for (const app of await knownApps(ctx)) {
      await withAppAccess(ctx, app, async () => {
        const cursor = (await ctx.cursor<NewestFirstCursor>('pipelines', app)) ?? {};
        let before = cursor.next ?? undefined;
        const after = cursor.after !== undefined ? new Date(cursor.after).toISOString() : undefined;
        let newest = cursor.newest ?? cursor.after ?? 0;
        let oldestRunning = cursor.oldestRunning ?? Number.POSITIVE_INFINITY;
        for (;;) {
          const page = await ctx.get<Page>(`${ctx.apiUrl}/apps/${encodeURIComponent(app)}/pipelines?${q({ limit: PAGE_LIMIT, after, before })}`);
          // The list mixes pipelines with standalone builds; builds are synced from their own endpoint.
          const pipelines = page.data.filter((p) => p.is_pipeline);
          for (const p of pipelines) {
            const at = Date.parse(p.triggered_at);
            newest = Math.max(newest, at);
            if (!p.finished_at) oldestRunning = Math.min(oldestRunning, at);
          }
          before = page.paging?.next ?? undefined;
          // Running pipelines are re-listed next time: the watermark stops just before the oldest.
          const watermark = Math.min(newest, oldestRunning - 1);
          await ctx.commit(
            BITRISE_TABLES.pipelines,
            pipelines.map((p) => ({
              id: p.slug,
              raw: p,
              values: {
                app_id: app,
                name: p.triggered_workflow,
                status: p.status,
                triggered_at: p.triggered_at,
                started_at: p.started_at,
                finished_at: p.finished_at,
                credit_cost: p.credit_cost,
              },
            })),
            {
              resource: 'pipelines',
              scope: app,
              value: before ? { after: cursor.after, next: before, newest, oldestRunning: Number.isFinite(oldestRunning) ? oldestRunning : undefined } : { after: watermark },
            },
          );
          if (!before) break;
        }
      });
    }
  },
};

