import type { Sql, TransactionSql } from '../../db/sql';
import type { AccessTracked } from '../../sync/access';
import type { ParticipantRow } from './rows';
import type { RepoPath } from './urls';

/**
 * The SQL the Bitbucket syncers need beyond the generic page commit: reading the parents that
 * earlier steps stored, and pull request participants. Syncers reach it as `ctx.store`.
 */

export interface WorkspaceRef {
  id: string;
  slug: string;
}

export type RepoRef = RepoPath & AccessTracked;

export function createBitbucketStore(sql: Sql, connectionId: string) {
  return {
    /** The workspaces still listed (a deleted one's members and repositories are not asked for). */
    async workspaces(): Promise<WorkspaceRef[]> {
      return sql<WorkspaceRef[]>`
        select id, slug from bitbucket_workspaces where connection_id = ${connectionId} and deleted_at is null order by id`;
    },

    /**
     * The repositories to visit: not deleted, nor in a deleted workspace (a full pass lists them
     * again if they come back). The workspace slug comes from the workspaces table (refreshed every
     * run) rather than `full_name`, which goes stale when a workspace is renamed and the repository
     * itself is not updated.
     */
    async repositories(onlyAccessible: boolean): Promise<RepoRef[]> {
      return sql<RepoRef[]>`
        select r.id, r.slug, r.accessible, coalesce(w.slug, split_part(r.full_name, '/', 1)) as workspace_slug
        from bitbucket_repositories r
        left join bitbucket_workspaces w on w.connection_id = r.connection_id and w.id = r.workspace_id
        where r.connection_id = ${connectionId} and r.deleted_at is null and w.deleted_at is null
          ${onlyAccessible ? sql`and r.accessible` : sql``}
        order by r.id`;
    },

    /**
     * The participants of a page of pull requests replace what was stored for them, in the page's
     * transaction. Only pull requests whose listing carried `participants` are touched. The database
     * derives what delivery reads from them (`is_author`, the pull request's first review and
     * approval; triggers of migration 00011).
     */
    replaceParticipants(prs: { id: string; rows: ParticipantRow[] | undefined }[]) {
      const known = prs.filter((p): p is { id: string; rows: ParticipantRow[] } => p.rows !== undefined);
      if (!known.length) return undefined;
      return async (tx: TransactionSql) => {
        await tx`delete from bitbucket_pr_participants
                 where connection_id = ${connectionId} and pull_request_id = any(${tx.array(known.map((p) => p.id))}::text[])`;
        const rows = known.flatMap((p) => p.rows.map((r) => ({ ...r, pr: p.id })));
        if (!rows.length) return;
        await tx`
          insert into bitbucket_pr_participants (connection_id, pull_request_id, user_id, role, approved, participated_on)
          select ${connectionId}, r.pr, r.user_id, nullif(r.role, ''), r.approved, nullif(r.participated_on, '')::timestamptz
          from unnest(${tx.array(rows.map((r) => r.pr))}::text[], ${tx.array(rows.map((r) => r.userId))}::text[],
                      ${tx.array(rows.map((r) => r.role ?? ''))}::text[], ${tx.array(rows.map((r) => r.approved))}::boolean[],
                      ${tx.array(rows.map((r) => r.participatedOn ?? ''))}::text[])
            as r(pr, user_id, role, approved, participated_on)`;
      };
    },
  };
}

export type BitbucketStore = ReturnType<typeof createBitbucketStore>;
