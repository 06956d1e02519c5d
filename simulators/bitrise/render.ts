import { isoMicrosZ, isoSeconds } from '../shared';
import type { BuildStatus } from './types';
import type { App, Build, Organization, Pipeline, User } from './world';

// ---------------------------------------------------------------------------------------------
// JSON renderers. Unset string fields are `null`, never omitted or "": the real API does this
// for fields its spec (https://api-docs.bitrise.io/docs/swagger.json) types as plain strings, as
// the responses recorded in https://github.com/bitrise-io/bitrise-mcp/tree/f5059ef3a6d83b36dae92625c0eb41b4b9ccda2f/devenv/test-responses
// show. Non-string fields are never null here.

export type Json = Record<string, unknown>;

const STATUS_TEXT: Record<BuildStatus, string> = { 0: 'in-progress', 1: 'success', 2: 'error', 3: 'aborted', 4: 'aborted' };

/** A `/pipelines` list item: a pipeline, or a build that ran outside any pipeline. */
export type PipelineListItem = { kind: 'pipeline'; p: Pipeline } | { kind: 'build'; b: Build };

const repoHost = (a: App) => (a.provider === 'github' ? 'github.com' : 'bitbucket.org');

export function renderMe(me: User): Json {
  return {
    avatar_url: null,
    created_at: isoSeconds(me.createdAt),
    data_id: me.dataId,
    email: me.email,
    has_used_organization_trial: false,
    payment_processor: null,
    slug: me.slug,
    unconfirmed_email: null,
    username: me.username,
  };
}

export function renderOrganization(o: Organization): Json {
  return {
    slug: o.slug,
    name: o.name,
    avatar_icon_url: null,
    concurrency_count: o.concurrency,
    owners: o.owners.map((u) => ({ slug: u.slug, username: u.username, email: u.email })),
  };
}

export function renderApp(a: App): Json {
  const host = repoHost(a);
  return {
    slug: a.slug,
    title: a.title,
    project_type: a.projectType,
    provider: a.provider,
    repo_owner: a.repoOwner,
    repo_url: `https://${host}/${a.repoOwner}/${a.repoSlug}.git`,
    repo_slug: a.repoSlug,
    is_disabled: false,
    status: 1,
    is_public: false,
    is_github_checks_enabled: false,
    owner: { account_type: 'organization', name: a.org.name, slug: a.org.slug },
    avatar_url: null,
  };
}

export function renderBuild(a: App, b: Build): Json {
  const finished = b.status !== 0;
  const host = repoHost(a);
  const body: Json = {
    triggered_at: isoSeconds(b.triggeredAt),
    started_on_worker_at: b.startedAt === null ? null : isoSeconds(b.startedAt),
    environment_prepare_finished_at: b.startedAt === null ? null : isoSeconds(b.startedAt + 1000),
    finished_at: b.finishedAt === null ? null : isoSeconds(b.finishedAt),
    slug: b.slug,
    status: b.status,
    status_text: STATUS_TEXT[b.status],
    abort_reason: b.abortReason,
    is_on_hold: false,
    is_processed: finished,
    is_status_sent: finished,
    branch: b.branch,
    build_number: b.buildNumber,
    commit_hash: b.commitHash,
    commit_message: b.commitMessage,
    tag: b.tag,
    triggered_workflow: b.workflow,
    triggered_by: b.triggeredBy,
    machine_type_id: b.machineTypeId,
    stack_identifier: b.stack,
    original_build_params: { branch: b.branch, workflow_id: b.workflow, ...(b.commitHash ? { commit_hash: b.commitHash } : {}) },
    pipeline_workflow_id: null,
    pull_request_id: b.pullRequestId,
    pull_request_target_branch: b.pullRequestId ? 'main' : null,
    pull_request_view_url: b.pullRequestId ? `https://${host}/${a.repoOwner}/${a.repoSlug}/pull/${b.pullRequestId}` : null,
    commit_view_url: b.commitHash ? `https://${host}/${a.repoOwner}/${a.repoSlug}/commit/${b.commitHash}` : null,
    log_format: 'json',
    rebuildable: finished,
  };
  // Cost is only known once a build finished; `credit_cost` is an integer in the spec, so it is
  // left out rather than sent as null while the build runs.
  if (finished) body.credit_cost = b.creditCost;
  return body;
}

function triggerParams(branch: string, commitHash: string | null): Json {
  const blank = [
    'base_repository_url',
    'branch_dest',
    'branch_dest_repo_owner',
    'branch_repo_owner',
    'commit_message',
    'head_repository_url',
    'machine_type_id',
    'pull_request_author',
    'pull_request_comment',
    'pull_request_comment_id',
    'pull_request_head_branch',
    'pull_request_merge_branch',
    'pull_request_ready_state',
    'pull_request_repository_url',
    'pull_request_unverified_merge_branch',
    'stack',
  ];
  return {
    ...Object.fromEntries(blank.map((k) => [k, ''])),
    branch,
    commit_hash: commitHash ?? '',
    commit_messages: [],
    commit_paths: [],
    environments: [],
    priority: 0,
    pull_request_id: '',
    pull_request_labels: [],
    pull_request_labels_added: [],
    skip_git_status_report: false,
    tag: '',
  };
}

/** `/pipelines` lists pipelines and standalone builds together (`is_pipeline` tells them apart). */
export function renderPipelineItem(item: PipelineListItem): Json {
  const common = (x: { buildNumber: number; branch: string; commitHash: string | null; status: BuildStatus; slug: string }) => ({
    artifacts: [],
    branch: x.branch,
    build_number: x.buildNumber,
    commit_hash: x.commitHash,
    commit_message: null,
    is_on_hold: false,
    slug: x.slug,
    status: x.status,
    tag: null,
    pull_request_id: 0,
    pull_request_target_branch: null,
    trigger_params: triggerParams(x.branch, x.commitHash),
  });
  if (item.kind === 'pipeline') {
    const p = item.p;
    return {
      ...common(p),
      ...(p.finishedAt !== null ? { credit_cost: p.creditCost } : {}),
      finished_at: p.finishedAt === null ? null : isoMicrosZ(p.finishedAt),
      is_pipeline: true,
      is_processed: p.status !== 0,
      started_at: isoMicrosZ(p.startedAt),
      triggered_at: isoMicrosZ(p.triggeredAt),
      triggered_by: 'webhook',
      triggered_workflow: p.name,
      rebuildable: p.status !== 0,
    };
  }
  const b = item.b;
  return {
    ...common(b),
    ...(b.finishedAt !== null ? { credit_cost: b.creditCost } : {}),
    finished_at: b.finishedAt === null ? null : isoSeconds(b.finishedAt),
    is_pipeline: false,
    is_processed: b.status !== 0,
    started_at: b.startedAt === null ? null : isoSeconds(b.startedAt),
    triggered_at: isoMicrosZ(b.triggeredAt),
    triggered_by: b.triggeredBy,
    triggered_workflow: b.workflow,
    rebuildable: b.status !== 0,
  };
}
