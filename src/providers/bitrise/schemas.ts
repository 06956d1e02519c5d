import { z } from 'zod';
import { pgInt, storableInstant } from '../fields';

/**
 * Bitrise API v0.1 responses Conduit consumes, as zod schemas.
 *
 * Written from the official Swagger document (https://api-docs.bitrise.io/docs/swagger.json,
 * browsable at https://api-docs.bitrise.io/; definition names are given per schema) and the
 * documented real-world differences. `npm run test:conformance` checks every field declared here
 * against that document.
 *
 * Rules:
 * - One record schema validates one record. Envelopes are separate (`bitriseRawPage`,
 *   `bitrisePage`, `bitriseRawData`, `bitriseData`) so a sync can validate records one by one and
 *   quarantine the bad ones.
 * - What storage relies on is strict: `slug` (every record's id) a non-empty string, build and
 *   pipeline `status` an integer, the timestamps cursors compare ISO-8601.
 * - Everything else is `.nullish()`. The spec declares no required fields and types most of them
 *   as plain strings, but the real API sends `null` for any unset value — strings (`commit_hash`,
 *   `tag`, `finished_at`…) and others too (`credit_cost`, `artifacts`). Captured real responses:
 *   https://github.com/bitrise-io/bitrise-mcp/blob/5247c79f565dd4f9ee2f5bf09c1e4c2e7f5b75bd/devenv/test-responses/before/list_builds.json
 *   https://github.com/bitrise-io/bitrise-mcp/blob/45001641c34d6972a5ae27ca4ac8327e3b08394b/devenv/test-responses/before/list_pipelines.json
 * - Objects are loose (`z.looseObject`): unknown fields pass through, so a field Bitrise adds never
 *   breaks a sync, and `raw` keeps the whole record.
 *
 * Node only: not for workflow code.
 */

/**
 * An ISO-8601 instant with an offset. Builds use whole seconds (`2026-04-03T20:01:53Z`),
 * pipelines microseconds (`2026-04-03T20:02:07.688631Z`); both are accepted, a local time
 * without offset is not.
 */
const isoDateTime = storableInstant;

/** A record's id: app slugs are 16 hex digits, build and pipeline slugs UUIDs. Opaque here. */
const slug = z.string().min(1);

const text = z.string().nullish();
/** Counts and ids stored in `int` columns: bounded so an out-of-range value is quarantined. */
const count = pgInt().nonnegative().nullish();
const flag = z.boolean().nullish();

// ---------------------------------------------------------------------------------------------
// Envelopes

/**
 * `paging` of a list (definition `v0.PagingResponseModel`). Pass `next` back as `?next=` and stop
 * when it is absent ("Empty/not included if there's no next page"; `null` is treated the same).
 * https://docs.bitrise.io/en/bitrise-ci/api/pagination-of-api-calls.html
 *
 * Pipeline lists are the exception: `next` is the trigger time of the page's last item (passed
 * back as `before=`) and both counts are 0 (list_pipelines.json above).
 */
export const bitrisePagingSchema = z.looseObject({
  next: z.string().min(1).nullish(),
  page_item_limit: z.int().nonnegative().optional(),
  total_item_count: z.int().nonnegative().optional(),
});
export type BitrisePaging = z.infer<typeof bitrisePagingSchema>;

/**
 * A list whose records are not validated yet: `{data: [...], paging?}` (`v0.*ListResponseModel`).
 * `GET /organizations` has no `paging`.
 */
/**
 * `data: null` is accepted here (a broken page, not a broken sync): the sync treats it as an empty
 * page and quarantines it with a reason (see `SyncContext.accept`).
 */
export const bitriseRawPage = z.looseObject({ data: z.array(z.unknown()).nullable(), paging: bitrisePagingSchema.optional() });
export type BitriseRawPage = z.infer<typeof bitriseRawPage>;

/** A list whose records all satisfy `item` (one bad record fails the whole page). */
export function bitrisePage<T extends z.ZodType>(item: T) {
  return bitriseRawPage.extend({ data: z.array(item) });
}
export type BitrisePage<T> = Omit<BitriseRawPage, 'data'> & { data: T[] };

/** A single resource whose record is not validated yet: `{data: {...}}` (`v0.*ShowResponseModel`, `/me`). */
export const bitriseRawData = z.looseObject({ data: z.unknown() });
export type BitriseRawData = z.infer<typeof bitriseRawData>;

/** A single resource whose record satisfies `item`. */
export function bitriseData<T extends z.ZodType>(item: T) {
  return z.looseObject({ data: item });
}

// ---------------------------------------------------------------------------------------------
// Account, organizations, apps

/**
 * `data` of `GET /me` (definition `v0.UserProfileDataModel`).
 * https://api-docs.bitrise.io/#/user/user-profile
 */
export const bitriseUserSchema = z.looseObject({
  slug,
  username: text,
  email: text,
  avatar_url: text,
  created_at: isoDateTime.nullish(),
  data_id: z.int().nullish(),
});
export type BitriseUser = z.infer<typeof bitriseUserSchema>;

/**
 * One entry of `GET /organizations` (definition `v0.OrganizationDataModel`; an organization is a
 * workspace in today's UI, the v0.1 paths keep the old name).
 * https://api-docs.bitrise.io/#/organizations/org-list
 */
export const bitriseOrganizationSchema = z.looseObject({
  slug,
  name: text,
  avatar_icon_url: text,
  concurrency_count: count,
  owners: z.array(z.looseObject({ slug: text, username: text, email: text })).nullish(),
});
export type BitriseOrganization = z.infer<typeof bitriseOrganizationSchema>;

/**
 * One entry of `GET /apps`, or `data` of `GET /apps/{app-slug}` (definition
 * `v0.AppResponseItemModel`).
 * https://api-docs.bitrise.io/#/application/app-list
 */
export const bitriseAppSchema = z.looseObject({
  slug,
  title: text,
  project_type: text,
  provider: text,
  repo_owner: text,
  repo_slug: text,
  repo_url: text,
  is_public: flag,
  is_disabled: flag,
  status: z.int().nullish(),
  owner: z.looseObject({ account_type: text, name: text, slug: text }).nullish(),
});
export type BitriseApp = z.infer<typeof bitriseAppSchema>;

// ---------------------------------------------------------------------------------------------
// Builds and pipelines

/**
 * One entry of `GET /apps/{app-slug}/builds`, or `data` of `GET /apps/{app-slug}/builds/{build-slug}`
 * (definition `v0.BuildResponseItemModel`).
 * https://api-docs.bitrise.io/#/builds/build-list
 *
 * `status` is 0 not finished, 1 success, 2 failed, 3 aborted with failure, 4 aborted with success
 * (the endpoint's `status` filter); kept an integer of any value so a new status is stored rather
 * than quarantined. `build_number` is not unique: the builds of one pipeline share it.
 * `credit_cost` is unknown until the build finishes; `pull_request_id` is 0 for builds not
 * triggered by a pull request.
 */
export const bitriseBuildSchema = z.looseObject({
  slug,
  build_number: pgInt().nonnegative(),
  status: pgInt().nonnegative(),
  status_text: text,
  /** The cursor of the newest-first listing (filtered with Unix-second `after`). */
  triggered_at: isoDateTime,
  started_on_worker_at: isoDateTime.nullish(),
  environment_prepare_finished_at: isoDateTime.nullish(),
  finished_at: isoDateTime.nullish(),
  triggered_workflow: text,
  triggered_by: text,
  branch: text,
  tag: text,
  commit_hash: text,
  commit_message: text,
  machine_type_id: text,
  stack_identifier: text,
  credit_cost: count,
  pipeline_workflow_id: text,
  pull_request_id: count,
  is_on_hold: flag,
  abort_reason: text,
  original_build_params: z.record(z.string(), z.unknown()).nullish(),
});
export type BitriseBuild = z.infer<typeof bitriseBuildSchema>;

/**
 * One entry of `GET /apps/{app-slug}/pipelines` (definition `v0.PipelineListResponseItemModel`).
 * The list mixes pipelines (`is_pipeline: true`) with standalone builds; `is_pipeline` is
 * required because the sync tells them apart by it. `triggered_workflow` is the pipeline's name.
 * https://api-docs.bitrise.io/#/pipelines/pipeline-list
 */
export const bitrisePipelineListItemSchema = z.looseObject({
  slug,
  is_pipeline: z.boolean(),
  status: pgInt().nonnegative(),
  /** The cursor of the time-paged listing (`before=`, `after=` RFC 3339). */
  triggered_at: isoDateTime,
  started_at: isoDateTime.nullish(),
  finished_at: isoDateTime.nullish(),
  triggered_workflow: text,
  triggered_by: text,
  build_number: count,
  branch: text,
  commit_hash: text,
  credit_cost: count,
  is_on_hold: flag,
  pull_request_id: count,
});
export type BitrisePipelineListItem = z.infer<typeof bitrisePipelineListItemSchema>;

// ---------------------------------------------------------------------------------------------
// Errors

/**
 * An error body: `{message}` (definition `service.StandardErrorRespModel`, what most endpoints
 * document for 4xx and 5xx) or `{error_msg}` (`service.ProxyErrorRespModel`, used by some). A 429
 * is plain text, not this body.
 */
export const bitriseErrorSchema = z
  .looseObject({ message: z.string().optional(), error_msg: z.string().optional() })
  .refine((b) => b.message !== undefined || b.error_msg !== undefined, { message: 'an error body has `message` or `error_msg`' });
export type BitriseError = z.infer<typeof bitriseErrorSchema>;
