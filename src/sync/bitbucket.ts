import type { TransactionSql } from '../db/sql';
import { isProviderError, ProviderError } from '../providers/errors';
import type { SyncContext } from './context';
import type { RecordRow, TableSpec } from './store';

/**
 * Bitbucket Cloud 2.0 resources (provider-notes §A). Page-based lists use `{values, next}` with an
 * absolute `next`; commits use iterator pagination (an opaque `next`); `q` datetimes are unquoted
 * ISO-8601; pull requests cap `pagelen` at 50. Syncers run in the order of SYNC_RESOURCES, so the
 * per-repository ones read their repositories (and those the workspaces) from the database.
 * Cursor resources are the syncer names, which is what a backfill resets.
 */

export const BITBUCKET_TABLES = {
  workspaces: { table: 'bitbucket_workspaces', columns: ['slug', 'name', 'is_private', 'is_admin'] },
  members: { table: 'bitbucket_members', columns: ['workspace_id', 'user_id', 'display_name', 'account_id', 'nickname', 'active', 'last_seen_at'] },
  repositories: {
    table: 'bitbucket_repositories',
    columns: ['workspace_id', 'slug', 'full_name', 'name', 'is_private', 'language', 'project_key', 'mainbranch', 'created_on', 'updated_on', 'accessible', 'inaccessible_since'],
  },
  pullRequests: {
    table: 'bitbucket_pull_requests',
    columns: ['repository_id', 'number', 'title', 'state', 'author_id', 'source_branch', 'destination_branch', 'merge_commit', 'comment_count', 'task_count', 'draft', 'created_on', 'updated_on'],
  },
  commits: { table: 'bitbucket_commits', columns: ['repository_id', 'hash', 'committed_at', 'author_raw', 'author_id', 'message', 'parent_hashes'] },
  pipelines: {
    table: 'bitbucket_pipelines',
    columns: ['repository_id', 'build_number', 'state', 'result', 'trigger_type', 'branch', 'commit_hash', 'creator_id', 'created_on', 'completed_on', 'build_seconds_used'],
  },
} as const satisfies Record<string, TableSpec>;

type Json = Record<string, any>;
interface Page {
  values?: Json[];
  next?: string | null;
  /** Total across pages; page-based lists only, and not guaranteed (provider-notes A4). */
  size?: number;
}

const PAGELEN = 100;
/** Pull request lists are capped at 50 (provider-notes A4). */
const PR_PAGELEN = 50;
const PR_STATES = ['OPEN', 'MERGED', 'DECLINED', 'SUPERSEDED'] as const;

// ---------------------------------------------------------------------------------------------
// Pure helpers (unit-tested in test/unit/sync-bitbucket-cursors.test.ts)

const ISO_DATETIME = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

/**
 * An ISO-8601 instant as epoch microseconds, the precision Bitbucket stamps `updated_on` with
 * (Date.parse keeps only milliseconds, which would make distinct instants compare equal).
 * NaN for anything that is not a full ISO-8601 datetime with an offset, the only form it sends.
 */
export function isoMicros(iso: string | null | undefined): number {
  if (typeof iso !== 'string') return Number.NaN;
  const m = ISO_DATETIME.exec(iso);
  if (!m) return Number.NaN;
  const seconds = Date.parse(`${m[1]}${m[3]}`);
  return seconds * 1000 + Number((m[2] ?? '').padEnd(6, '0').slice(0, 6));
}

/**
 * `q` for "changed after this instant". Bitbucket wants datetimes unquoted (a quoted value is a
 * string and does not compare as a time), e.g. `updated_on > 2024-01-01T00:00:00.000000+00:00`.
 * The provider's own string is kept (microseconds included); `Z` is spelled `+00:00` as in the
 * docs. The caller URL-encodes the result (the `+` of the offset must travel as %2B).
 */
export function updatedSinceQuery(iso: string): string {
  const m = ISO_DATETIME.exec(iso);
  // Never let anything but a datetime into the query language (Date.parse is far too lenient).
  if (!m) throw new Error(`Not an ISO-8601 datetime: ${JSON.stringify(iso)}`);
  return `updated_on > ${m[1]}${m[2] !== undefined ? `.${m[2]}` : ''}${m[3] === 'Z' ? '+00:00' : m[3]}`;
}

/**
 * Where an `updated_on`-ascending listing can resume after one page, given the page's
 * `updated_on` values and whether more pages follow.
 *
 * On the last page it is the page's newest value. With more to come it is the newest value that is
 * strictly older than the page's newest, because rows sharing that newest instant may spill over
 * to the next page and `updated_on > x` would skip them (the next query re-fetches those few rows
 * instead). `previous` is returned when the page brings no progress: the caller must then step
 * through with the page's `next` link.
 */
export function updatedResumePoint(updatedOn: readonly (string | null | undefined)[], more: boolean, previous?: string): string | undefined {
  const known = updatedOn.filter((t): t is string => Number.isFinite(isoMicros(t)));
  const latest = (xs: string[]) => xs.reduce<string | undefined>((a, b) => (a === undefined || isoMicros(b) > isoMicros(a) ? b : a), undefined);
  const newest = latest(known);
  if (newest === undefined) return previous;
  const candidate = more ? latest(known.filter((t) => isoMicros(t) < isoMicros(newest))) : newest;
  if (candidate === undefined) return previous;
  return previous !== undefined && isoMicros(previous) >= isoMicros(candidate) ? previous : candidate;
}

/**
 * Running pipelines older than this (relative to the repository's newest pipeline) no longer
 * hold the watermark back: a pipeline parked for weeks (a paused manual step) would otherwise make
 * every run re-read everything created since.
 */
export const RUNNING_HOLD_MS = 7 * 24 * 3600 * 1000;

/**
 * The pipelines watermark (epoch ms): everything created at or before it is known and finished.
 * It is the newest pipeline seen, held back to just before the oldest one still running so that
 * pipeline is listed again until it completes.
 */
export function pipelineWatermark(newest: number | undefined, oldestRunning: number | undefined, holdMs = RUNNING_HOLD_MS): number | undefined {
  if (newest === undefined) return undefined;
  if (oldestRunning === undefined || oldestRunning < newest - holdMs) return newest;
  return Math.min(newest, oldestRunning - 1);
}

/** The commits of a newest-first page that are newer than `stopAt`, and whether `stopAt` was on it. */
export function commitsBefore<T extends { hash?: unknown }>(values: readonly T[], stopAt: string | undefined): { fresh: T[]; reached: boolean } {
  const at = stopAt === undefined ? -1 : values.findIndex((c) => c.hash === stopAt);
  return at < 0 ? { fresh: [...values], reached: false } : { fresh: values.slice(0, at), reached: true };
}

/** A query string, `%20` for spaces as in Bitbucket's own links; repeated keys come from arrays. */
export function queryString(params: Record<string, string | number | readonly string[] | undefined>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(String(one))}`);
  }
  return parts.join('&');
}

// ---------------------------------------------------------------------------------------------
// Plumbing

const seg = (s: string) => encodeURIComponent(s);

/**
 * `next` links are absolute and followed as given, but only on the API's own origin: the request
 * carries the connection's token, which must not go anywhere else.
 */
function followable(ctx: SyncContext, next: string): string {
  if (new URL(next).origin !== new URL(ctx.apiUrl).origin) {
    throw new ProviderError('bad_request', `Bitbucket sent a next link to another origin (${new URL(next).origin}); not following it`);
  }
  return next;
}

const isInaccessible = (err: unknown) => isProviderError(err, 'forbidden') || isProviderError(err, 'not_found');

interface RepoRef {
  id: string;
  slug: string;
  workspaceSlug: string;
  accessible: boolean;
}

/**
 * The repositories to visit. The workspace slug comes from the workspaces table (refreshed every
 * run) rather than `full_name`, which goes stale when a workspace is renamed and the repository
 * itself is not updated.
 */
async function repositories(ctx: SyncContext, onlyAccessible: boolean): Promise<RepoRef[]> {
  return ctx.sql<RepoRef[]>`
    select r.id, r.slug, r.accessible, coalesce(w.slug, split_part(r.full_name, '/', 1)) as workspace_slug
    from bitbucket_repositories r
    left join bitbucket_workspaces w on w.connection_id = r.connection_id and w.id = r.workspace_id
    where r.connection_id = ${ctx.connectionId} ${onlyAccessible ? ctx.sql`and r.accessible` : ctx.sql``}
    order by r.id`;
}

const repoUrl = (ctx: SyncContext, r: RepoRef) => `${ctx.apiUrl}/repositories/${seg(r.workspaceSlug)}/${seg(r.slug)}`;

/**
 * 403 or 404 from any of a repository's endpoints marks it inaccessible (provider-notes A6: a
 * private repository we lost may answer either) and lets the run go on; a repository that answers
 * again is accessible again. The flag is written through `commit`, so it counts as progress for
 * stall detection, and a flip moves `updated_at` because the records API serves `accessible`.
 */
async function withRepoAccess(ctx: SyncContext, repo: RepoRef, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (!isInaccessible(err)) throw err;
    await ctx.commit(BITBUCKET_TABLES.repositories, [], undefined, async (tx) => {
      await tx`update bitbucket_repositories
               set accessible = false, inaccessible_since = coalesce(inaccessible_since, now()),
                   updated_at = case when accessible then now() else updated_at end
               where connection_id = ${ctx.connectionId} and id = ${repo.id}`;
    });
    return;
  }
  if (!repo.accessible) {
    await ctx.commit(BITBUCKET_TABLES.repositories, [], undefined, async (tx) => {
      await tx`update bitbucket_repositories set accessible = true, inaccessible_since = null, updated_at = now()
               where connection_id = ${ctx.connectionId} and id = ${repo.id} and not accessible`;
    });
    repo.accessible = true;
  }
}

/** Where an `updated_on` listing stands: rows changed after `updatedAfter` are still to fetch. */
interface UpdatedCursor {
  updatedAfter?: string;
}

/**
 * Incremental listing sorted by `updated_on` ascending, resumed with `q=updated_on > cursor`.
 * Each next page is asked for again with the committed cursor (keyset pagination) rather than by
 * page number: a row updated while we page moves to the end of the ordering, which shifts numbered
 * pages and would skip a row that slid onto a page already read. The cursor is committed with each
 * page, so a crash re-fetches at most that one page.
 */
async function syncUpdatedSince(
  ctx: SyncContext,
  o: { resource: string; scope: string; spec: TableSpec; url: (q: string | undefined) => string; row: (item: Json) => RecordRow | undefined },
): Promise<void> {
  let after = (await ctx.cursor<UpdatedCursor>(o.resource, o.scope))?.updatedAfter;
  let url = o.url(after === undefined ? undefined : updatedSinceQuery(after));
  // Rows at the resume point that the previous page already committed; the re-query returns them.
  let committed = new Map<string, string>();
  for (;;) {
    const page = await ctx.get<Page>(url);
    const items = page.values ?? [];
    const more = Boolean(page.next) && items.length > 0;
    const resume = updatedResumePoint(items.map((i) => i.updated_on), more, after);
    const rows = items.map(o.row).filter((r): r is RecordRow => r !== undefined);
    const fresh = rows.filter((r) => committed.get(r.id) !== (r.raw as Json).updated_on);
    await ctx.commit(o.spec, fresh, resume === undefined ? undefined : { resource: o.resource, scope: o.scope, value: { updatedAfter: resume } satisfies UpdatedCursor });
    if (!more) return;
    const resumeAt = resume === undefined ? Number.NEGATIVE_INFINITY : isoMicros(resume);
    committed = new Map(
      rows.map((r) => [r.id, (r.raw as Json).updated_on] as const).filter(([, updatedOn]) => isoMicros(updatedOn) > resumeAt),
    );
    // No progress (a whole page sharing one instant): step through by page number instead.
    url = resume !== after && resume !== undefined ? o.url(updatedSinceQuery(resume)) : followable(ctx, page.next!);
    after = resume;
  }
}

// ---------------------------------------------------------------------------------------------
// Row mappers

const prRow = (repoId: string, p: Json): RecordRow => ({
  id: `${repoId}/${p.id}`,
  raw: p,
  values: {
    repository_id: repoId,
    number: p.id,
    title: p.title,
    state: p.state,
    author_id: p.author?.uuid,
    source_branch: p.source?.branch?.name,
    destination_branch: p.destination?.branch?.name,
    merge_commit: p.merge_commit?.hash,
    comment_count: p.comment_count,
    task_count: p.task_count,
    draft: p.draft,
    created_on: p.created_on,
    updated_on: p.updated_on,
  },
});

const commitRow = (repoId: string, c: Json): RecordRow => ({
  id: `${repoId}/${c.hash}`,
  raw: c,
  values: {
    repository_id: repoId,
    hash: c.hash,
    committed_at: c.date,
    author_raw: c.author?.raw,
    author_id: c.author?.user?.uuid,
    message: c.message,
    parent_hashes: Array.isArray(c.parents) ? c.parents.map((p: Json) => p?.hash).filter((h: unknown) => typeof h === 'string') : [],
  },
});

const pipelineRow = (repoId: string, p: Json): RecordRow => ({
  id: p.uuid,
  raw: p,
  values: {
    repository_id: repoId,
    build_number: p.build_number,
    state: p.state?.name,
    result: p.state?.result?.name,
    // `name` (PUSH, MANUAL, SCHEDULE…) is the vocabulary of the `trigger_type` filter; `type` is the
    // schema discriminator (pipeline_trigger_push), kept as a fallback.
    trigger_type: p.trigger?.name ?? p.trigger?.type,
    branch: p.target?.ref_name,
    commit_hash: p.target?.commit?.hash,
    creator_id: p.creator?.uuid,
    created_on: p.created_on,
    completed_on: p.completed_on,
    build_seconds_used: p.build_seconds_used,
  },
});

/** Not COMPLETED: PENDING, IN_PROGRESS (running, paused, halted), or a state we don't know yet. */
const isRunning = (p: Json) => p.state?.name !== 'COMPLETED';

/**
 * The cursor of the commits listing. `stopAt` is the newest hash a finished pass stored; while a
 * pass is under way, `next` is the page to fetch and `newest` the first hash of the pass, so a
 * retried activity carries on from the last committed page without a gap or a second pass.
 */
interface CommitsCursor {
  stopAt?: string;
  next?: string;
  newest?: string;
}

/**
 * The cursor of the pipelines listing (epoch ms). `after` is the watermark finished passes have
 * reached; while a pass is under way, `page` is the next page number and `newest`/`oldestRunning`
 * what the pass has seen so far (as in the Bitrise pipelines syncer).
 */
interface PipelinesCursor {
  after?: number;
  page?: number;
  newest?: number;
  oldestRunning?: number;
}

// ---------------------------------------------------------------------------------------------
// Syncers

export const bitbucketSyncers = {
  async workspaces(ctx: SyncContext): Promise<void> {
    // Few and without a change time: listed in full each run. `/workspaces` is deprecated.
    let url: string | undefined = `${ctx.apiUrl}/user/workspaces?${queryString({ pagelen: PAGELEN })}`;
    while (url) {
      const page: Page = await ctx.get<Page>(url);
      await ctx.commit(
        BITBUCKET_TABLES.workspaces,
        (page.values ?? [])
          .filter((a) => a.workspace?.uuid)
          .map((a) => ({
            id: a.workspace.uuid,
            raw: a,
            values: { slug: a.workspace.slug, name: a.workspace.name, is_private: a.workspace.is_private, is_admin: a.administrator },
          })),
      );
      url = page.next ? followable(ctx, page.next) : undefined;
    }
  },

  async members(ctx: SyncContext): Promise<void> {
    const workspaces = await ctx.sql<{ id: string; slug: string }[]>`
      select id, slug from bitbucket_workspaces where connection_id = ${ctx.connectionId} order by id`;
    for (const ws of workspaces) {
      // The full list each pass: whoever is missing at the end has left (a seat freed). A crashed
      // pass simply starts over, so the seen set needs no cursor.
      const seen = new Set<string>();
      let listed = 0;
      const seenAt = new Date();
      let url: string | undefined = `${ctx.apiUrl}/workspaces/${seg(ws.slug)}/members?${queryString({ pagelen: PAGELEN })}`;
      try {
        while (url) {
          const page: Page = await ctx.get<Page>(url);
          const rows: RecordRow[] = (page.values ?? [])
            .filter((m) => m.user?.uuid)
            .map((m) => ({
              id: `${ws.id}/${m.user.uuid}`,
              raw: m,
              values: {
                workspace_id: ws.id,
                user_id: m.user.uuid,
                display_name: m.user.display_name,
                account_id: m.user.account_id,
                nickname: m.user.nickname,
                active: true,
                last_seen_at: seenAt,
              },
            }));
          const ids = rows.map((r) => r.id);
          for (const id of ids) seen.add(id);
          if (typeof page.size === 'number') listed = Math.max(listed, page.size);
          // The upsert does not move updated_at when only `active` changes, but consumers
          // following changes must see a returning member.
          const returning = ids.length
            ? (await ctx.sql<{ id: string }[]>`
                select id from bitbucket_members
                where connection_id = ${ctx.connectionId} and id = any(${ctx.sql.array(ids)}::text[]) and not active`).map((r) => r.id)
            : [];
          // Someone leaving while we page shifts a not-yet-read member onto a page already read;
          // fewer members seen than listed means the list moved under us: mark nobody this time.
          const deactivate = !page.next && seen.size >= listed;
          await ctx.commit(BITBUCKET_TABLES.members, rows, undefined, async (tx: TransactionSql) => {
            if (returning.length) {
              await tx`update bitbucket_members set updated_at = now()
                       where connection_id = ${ctx.connectionId} and id = any(${tx.array(returning)}::text[])`;
            }
            if (deactivate) {
              await tx`update bitbucket_members set active = false, updated_at = now()
                       where connection_id = ${ctx.connectionId} and workspace_id = ${ws.id} and active
                         and not (id = any(${tx.array([...seen])}::text[]))`;
            }
          });
          url = page.next ? followable(ctx, page.next) : undefined;
        }
      } catch (err) {
        // A workspace whose members we may not list (or no longer see) does not fail the run,
        // and nobody is marked as gone on the strength of a partial list.
        if (!isInaccessible(err)) throw err;
      }
    }
  },

  async repositories(ctx: SyncContext): Promise<void> {
    const workspaces = await ctx.sql<{ id: string; slug: string }[]>`
      select id, slug from bitbucket_workspaces where connection_id = ${ctx.connectionId} order by id`;
    for (const ws of workspaces) {
      try {
        await syncUpdatedSince(ctx, {
          resource: 'repositories',
          scope: ws.id,
          spec: BITBUCKET_TABLES.repositories,
          url: (q) => `${ctx.apiUrl}/repositories/${seg(ws.slug)}?${queryString({ pagelen: PAGELEN, sort: 'updated_on', q })}`,
          row: (r) =>
            r.uuid
              ? {
                  id: r.uuid,
                  raw: r,
                  values: {
                    workspace_id: ws.id,
                    slug: r.slug ?? String(r.full_name ?? '').split('/')[1],
                    full_name: r.full_name,
                    name: r.name,
                    is_private: r.is_private,
                    language: r.language || null,
                    project_key: r.project?.key,
                    mainbranch: r.mainbranch?.name,
                    created_on: r.created_on,
                    updated_on: r.updated_on,
                    // Listed means readable: a repository that was inaccessible comes back.
                    accessible: true,
                    inaccessible_since: null,
                  },
                }
              : undefined,
        });
      } catch (err) {
        // A workspace we can no longer read (left, or removed) does not fail the run; its
        // repositories are marked inaccessible when their own endpoints refuse us.
        if (!isInaccessible(err)) throw err;
      }
    }
  },

  async pullRequests(ctx: SyncContext): Promise<void> {
    // Inaccessible repositories are asked too (one request each): the repositories listing is
    // incremental, so a repository whose access comes back without an update would never be
    // listed again. Answering here makes it accessible before commits and pipelines run.
    for (const repo of await repositories(ctx, false)) {
      await withRepoAccess(ctx, repo, () =>
        syncUpdatedSince(ctx, {
          resource: 'pullRequests',
          scope: repo.id,
          spec: BITBUCKET_TABLES.pullRequests,
          url: (q) => `${repoUrl(ctx, repo)}/pullrequests?${queryString({ state: PR_STATES, sort: 'updated_on', pagelen: PR_PAGELEN, q })}`,
          row: (p) => (p.id === undefined || p.id === null ? undefined : prRow(repo.id, p)),
        }),
      );
    }
  },

  async commits(ctx: SyncContext): Promise<void> {
    for (const repo of await repositories(ctx, true)) {
      await withRepoAccess(ctx, repo, async () => {
        const cursor = (await ctx.cursor<CommitsCursor>('commits', repo.id)) ?? {};
        const { stopAt } = cursor;
        const first = `${repoUrl(ctx, repo)}/commits?${queryString({ pagelen: PAGELEN })}`;
        let newest = cursor.newest;
        let url = cursor.next ?? first;
        let resuming = cursor.next !== undefined;
        for (;;) {
          let page: Page;
          try {
            page = await ctx.get<Page>(url);
          } catch (err) {
            // An iterator token can die (history rewritten meanwhile); that is no reason to call the
            // repository inaccessible. Start the pass over from the top instead.
            if (!resuming || !isProviderError(err, 'not_found')) throw err;
            resuming = false;
            newest = undefined;
            url = first;
            continue;
          }
          resuming = false;
          const { fresh, reached } = commitsBefore((page.values ?? []).filter((c) => typeof c.hash === 'string'), stopAt);
          newest ??= fresh[0]?.hash;
          const next = reached ? undefined : (page.next ?? undefined);
          const value: CommitsCursor = next ? { stopAt, next, newest } : { stopAt: newest ?? stopAt };
          await ctx.commit(
            BITBUCKET_TABLES.commits,
            fresh.map((c) => commitRow(repo.id, c)),
            { resource: 'commits', scope: repo.id, value },
          );
          if (!next) return;
          url = followable(ctx, next);
        }
      });
    }
  },

  async pipelines(ctx: SyncContext): Promise<void> {
    for (const repo of await repositories(ctx, true)) {
      await withRepoAccess(ctx, repo, async () => {
        const cursor = (await ctx.cursor<PipelinesCursor>('pipelines', repo.id)) ?? {};
        const { after } = cursor;
        let page = cursor.page ?? 1;
        let newest = cursor.newest ?? after;
        let oldestRunning = cursor.oldestRunning;
        let resuming = cursor.page !== undefined;
        for (;;) {
          // Newest first by page number: pipelines created meanwhile push rows to later pages,
          // which only repeats a few rows, never skips one.
          let body: Page;
          try {
            body = await ctx.get<Page>(`${repoUrl(ctx, repo)}/pipelines?${queryString({ sort: '-created_on', pagelen: PAGELEN, page })}`);
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
          const values = (body.values ?? []).filter((p) => p.uuid);
          let reached = false;
          for (const p of values) {
            const at = Date.parse(p.created_on);
            if (Number.isNaN(at)) continue;
            newest = newest === undefined ? at : Math.max(newest, at);
            if (isRunning(p)) oldestRunning = oldestRunning === undefined ? at : Math.min(oldestRunning, at);
            if (after !== undefined && at <= after) reached = true;
          }
          const more = Boolean(body.next) && values.length > 0 && !reached;
          const value: PipelinesCursor = more ? { after, page: page + 1, newest, oldestRunning } : { after: pipelineWatermark(newest, oldestRunning) };
          // Rows at or below the watermark are stored and finished already; rewriting them every run
          // (the page that reaches the watermark is mostly such rows) would only churn.
          const fresh = after === undefined ? values : values.filter((p) => !(Date.parse(p.created_on) <= after));
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
  },
};
