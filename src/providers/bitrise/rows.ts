import { redactRecord, stripUrlPassword } from '../../sync/redact';
import type { RecordRow } from '../../sync/store';
import type { BitriseApp, BitriseBuild, BitriseOrganization, BitrisePipelineListItem } from './schemas';

/**
 * What is never stored from a Bitrise record (in `raw`, in `sync_rejects.raw`): the values of
 * trigger-time environment variables — `original_build_params.environments[].value` of a build,
 * `trigger_params…environments[].value` of a pipeline, at any depth — which can be secrets (their
 * keys, `mapped_to` and `is_expand` are kept), and any password in a URL (`repo_url`,
 * `*_repository_url`: `https://user:token@host` keeps `https://user@host`).
 */
export const BITRISE_REDACTION = { variableLists: ['environments'], urlKeySuffixes: ['url'] } as const;
export const redactBitriseRecord = <T>(raw: T): T => redactRecord(raw, BITRISE_REDACTION);

/** Validated Bitrise records as rows: the provider's id, the raw record (redacted), and the typed columns. */

export const organizationRow = (o: BitriseOrganization): RecordRow => ({
  id: o.slug,
  raw: redactBitriseRecord(o),
  values: { name: o.name, concurrency_count: o.concurrency_count },
});

export const appRow = (a: BitriseApp): RecordRow => ({
  id: a.slug,
  raw: redactBitriseRecord(a),
  values: {
    title: a.title,
    project_type: a.project_type,
    repo_provider: a.provider,
    repo_owner: a.repo_owner,
    repo_slug: a.repo_slug,
    repo_url: a.repo_url && stripUrlPassword(a.repo_url),
    is_public: a.is_public,
    is_disabled: a.is_disabled,
    owner_slug: a.owner?.slug,
    // Listed means readable: an app that was inaccessible comes back.
    accessible: true,
    inaccessible_since: null,
  },
});

export const buildRow = (app: string, b: BitriseBuild): RecordRow => ({
  id: b.slug,
  raw: redactBitriseRecord(b),
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
    // 0 means "not triggered by a pull request".
    pull_request_id: b.pull_request_id || null,
    is_on_hold: b.is_on_hold,
    triggered_at: b.triggered_at,
    started_on_worker_at: b.started_on_worker_at,
    environment_prepare_finished_at: b.environment_prepare_finished_at,
    finished_at: b.finished_at,
  },
});

export const pipelineRow = (app: string, p: BitrisePipelineListItem): RecordRow => ({
  id: p.slug,
  raw: redactBitriseRecord(p),
  values: {
    app_id: app,
    name: p.triggered_workflow,
    status: p.status,
    triggered_at: p.triggered_at,
    started_at: p.started_at,
    finished_at: p.finished_at,
    credit_cost: p.credit_cost,
  },
});
