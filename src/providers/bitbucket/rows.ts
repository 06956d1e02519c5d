import { redactRecord } from '../../sync/redact';
import type { RecordRow } from '../../sync/store';
import type {
  BitbucketCommit,
  BitbucketPipeline,
  BitbucketPullRequest,
  BitbucketRepository,
  BitbucketWorkspaceAccess,
  BitbucketWorkspaceMembership,
} from './schemas';

/**
 * What is never stored from a Bitbucket record (in `raw`, in `sync_rejects.raw`): the values of a
 * pipeline's `variables` (a secured variable's value is empty, but an unsecured one can still be a
 * credential someone typed into a custom run; keys and `secured` are kept) and any password in a
 * link (`href`). Commit messages, titles and branch names are data and kept as sent.
 */
export const BITBUCKET_REDACTION = { variableLists: ['variables'], urlKeySuffixes: ['href'] } as const;
export const redactBitbucketRecord = <T>(raw: T): T => redactRecord(raw, BITBUCKET_REDACTION);

/** Validated Bitbucket records as rows: the provider's id, the raw record (redacted), and the typed columns. */

export const workspaceRow = (a: BitbucketWorkspaceAccess): RecordRow => ({
  id: a.workspace.uuid,
  raw: redactBitbucketRecord(a),
  values: { slug: a.workspace.slug, name: a.workspace.name, is_private: a.workspace.is_private, is_admin: a.administrator },
});

export const memberRow = (workspaceId: string, m: BitbucketWorkspaceMembership, seenAt: Date): RecordRow => ({
  id: `${workspaceId}/${m.user.uuid}`,
  raw: redactBitbucketRecord(m),
  values: {
    workspace_id: workspaceId,
    user_id: m.user.uuid,
    display_name: m.user.display_name,
    account_id: m.user.account_id,
    nickname: m.user.nickname,
    last_seen_at: seenAt,
  },
});

export const repositoryRow = (workspaceId: string, r: BitbucketRepository): RecordRow => ({
  id: r.uuid,
  raw: redactBitbucketRecord(r),
  values: {
    workspace_id: workspaceId,
    slug: r.slug ?? r.full_name.split('/')[1],
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
});

export const pullRequestRow = (repoId: string, p: BitbucketPullRequest): RecordRow => ({
  // Pull request ids are unique per repository only.
  id: `${repoId}/${p.id}`,
  raw: redactBitbucketRecord(p),
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

export const commitRow = (repoId: string, c: BitbucketCommit): RecordRow => ({
  id: `${repoId}/${c.hash}`,
  raw: redactBitbucketRecord(c),
  values: {
    repository_id: repoId,
    hash: c.hash,
    committed_at: c.date,
    author_raw: c.author?.raw,
    author_id: c.author?.user?.uuid,
    message: c.message,
    parent_hashes: (c.parents ?? []).map((p) => p.hash),
  },
});

export const pipelineRow = (repoId: string, p: BitbucketPipeline): RecordRow => ({
  id: p.uuid,
  raw: redactBitbucketRecord(p),
  values: {
    repository_id: repoId,
    build_number: p.build_number,
    state: p.state.name,
    result: p.state.result?.name,
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
export const isRunning = (p: BitbucketPipeline) => p.state.name !== 'COMPLETED';

/** A pull request participant as a `bitbucket_pr_participants` row (migration 00008_insights.sql). */
export interface ParticipantRow {
  userId: string;
  role: string | null;
  approved: boolean;
  participatedOn: string | null;
}

/** The participants of a pull request, one per user (the latest activity wins). */
export function participantRows(p: BitbucketPullRequest): ParticipantRow[] {
  const byUser = new Map<string, ParticipantRow>();
  for (const x of p.participants ?? []) {
    const userId = x.user?.uuid;
    if (!userId) continue;
    const row = { userId, role: x.role ?? null, approved: x.approved ?? false, participatedOn: x.participated_on ?? null };
    const seen = byUser.get(userId);
    if (!seen || (row.participatedOn ?? '') > (seen.participatedOn ?? '')) byUser.set(userId, row);
  }
  return [...byUser.values()];
}
