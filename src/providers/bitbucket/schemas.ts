import { z } from 'zod';
import { pgInt, storableInstant } from '../fields';
import { isoMicros } from './cursors';

/**
 * Bitbucket Cloud REST 2.0 responses Conduit consumes, as zod schemas.
 *
 * Written from the official Swagger document (https://api.bitbucket.org/swagger.json; definition
 * names are given per schema) and the REST reference built from it
 * (https://developer.atlassian.com/cloud/bitbucket/rest/intro/), plus the real-world differences
 * cited where they apply. `npm run test:conformance` checks every field declared here against that
 * document, with a commented allow-list for the fields reality adds.
 *
 * Rules:
 * - One record schema validates one record. Page envelopes are separate (`bitbucketRawPage`,
 *   `bitbucketPage`) so a sync can validate records one by one and quarantine the bad ones.
 * - What storage relies on is strict: ids and keys are required and typed (uuid strings, the pull
 *   request `id` an integer, commit hashes hex), and the timestamps cursors compare are ISO-8601.
 * - Everything else is optional, as in the spec (its definitions list no required properties
 *   beyond `type`), and `.nullish()` where the real API is known to send `null`.
 * - Objects are loose (`z.looseObject`): unknown fields pass through, so a field Bitbucket adds
 *   never breaks a sync, and `raw` keeps the whole record.
 *
 * Node only: not for workflow code.
 */

/**
 * An ISO-8601 instant with an offset. Bitbucket sends microseconds and `+00:00`
 * (`2021-02-15T18:39:37.593077+00:00`); pipelines have been seen with `Z` (see the pipeline
 * capture below). Both are accepted; a date alone or a local time without offset is not.
 */
const isoDateTime = storableInstant.refine((s) => Number.isFinite(isoMicros(s)), 'a datetime with seconds and at most 9 fractional digits');

/**
 * A (possibly abbreviated) git commit hash. The spec's pattern is `[0-9a-f]{7,}?`; pull request
 * endpoints send 12-digit abbreviations, commits the full 40.
 */
const gitHash = z.string().regex(/^[0-9a-f]{7,}$/, 'a hexadecimal git hash');

/** A link to another page of the same listing: absolute, and opaque to the client. */
const pageLink = z.url();

// ---------------------------------------------------------------------------------------------
// Page envelope

/**
 * The fields every paginated listing shares (`paginated_*` definitions; the "Pagination" guide:
 * https://developer.atlassian.com/cloud/bitbucket/rest/intro/#pagination). Only `values` and
 * `next` are guaranteed; `next` is absent on the last page (`null` is treated the same). Iterator
 * listings such as commits send only `values`, `pagelen` and `next`.
 */
const pageFields = {
  next: pageLink.nullish(),
  previous: pageLink.nullish(),
  size: z.int().nonnegative().optional(),
  page: z.int().positive().optional(),
  pagelen: z.int().positive().optional(),
};

/** A page whose records are not validated yet: validate each with its record schema. */
/**
 * `values: null` is accepted here (a broken page, not a broken sync): the sync treats it as an empty
 * page and quarantines it with a reason (see `SyncContext.accept`).
 */
export const bitbucketRawPage = z.looseObject({ values: z.array(z.unknown()).nullable(), ...pageFields });
export type BitbucketRawPage = z.infer<typeof bitbucketRawPage>;

/** A page whose records all satisfy `item` (one bad record fails the whole page). */
export function bitbucketPage<T extends z.ZodType>(item: T) {
  return bitbucketRawPage.extend({ values: z.array(item) });
}
export type BitbucketPage<T> = Omit<BitbucketRawPage, 'values'> & { values: T[] };

// ---------------------------------------------------------------------------------------------
// Accounts and workspaces

/**
 * An account: what `GET /user` returns and what is embedded as an author, creator, reviewer or
 * member (definition `account`, whose `type` discriminates `user`, `team` and `app_user`; the last
 * four fields come from `user`).
 * https://developer.atlassian.com/cloud/bitbucket/rest/api-group-users/#api-user-get
 */
export const bitbucketAccountSchema = z.looseObject({
  uuid: z.string().min(1),
  display_name: z.string().optional(),
  created_on: isoDateTime.optional(),
  account_id: z.string().optional(),
  nickname: z.string().optional(),
  account_status: z.string().optional(),
});
export type BitbucketAccount = z.infer<typeof bitbucketAccountSchema>;

/**
 * One entry of `GET /user/workspaces` (definition `workspace_access`, its `workspace` a
 * `workspace_base`).
 * https://developer.atlassian.com/cloud/bitbucket/rest/api-group-workspaces/#api-user-workspaces-get
 *
 * `workspace_base` has only `uuid`, `slug` and `links`, and the operation's own example carries
 * nothing else: `name` and `is_private` are declared (optional) because the sync stores them when
 * present, but a client must not count on them here. The full `workspace` definition has both
 * (`GET /workspaces/{workspace}`).
 */
export const bitbucketWorkspaceAccessSchema = z.looseObject({
  administrator: z.boolean().optional(),
  workspace: z.looseObject({
    uuid: z.string().min(1),
    slug: z.string().min(1),
    name: z.string().optional(),
    is_private: z.boolean().optional(),
  }),
});
export type BitbucketWorkspaceAccess = z.infer<typeof bitbucketWorkspaceAccessSchema>;

/**
 * One entry of `GET /workspaces/{workspace}/members` (definition `workspace_membership`).
 * https://developer.atlassian.com/cloud/bitbucket/rest/api-group-workspaces/#api-workspaces-workspace-members-get
 */
export const bitbucketWorkspaceMembershipSchema = z.looseObject({
  user: bitbucketAccountSchema,
});
export type BitbucketWorkspaceMembership = z.infer<typeof bitbucketWorkspaceMembershipSchema>;

// ---------------------------------------------------------------------------------------------
// Repositories

/**
 * A repository: one entry of `GET /repositories/{workspace}` or the body of
 * `GET /repositories/{workspace}/{repo_slug}` (definition `repository`).
 * https://developer.atlassian.com/cloud/bitbucket/rest/api-group-repositories/#api-repositories-workspace-get
 *
 * Real-world differences:
 * - `slug` is sent although the definition lacks it (it is the URL segment the API itself links to).
 *   Optional: `full_name` (`workspace/slug`) carries it too.
 * - `mainbranch` is `null` for a repository without commits.
 * - `language` is `""` when unknown.
 *
 * Both are seen in a captured real response:
 * https://github.com/ACenterA/acentera-cms/blob/04ce2732337b15b2eb7e9e75aaf82dc260f0a21a/client/views/modals/CreateSiteModal.vue
 * and `slug` in https://github.com/SonarSource/sonar-loc-count/pull/22.
 */
export const bitbucketRepositorySchema = z.looseObject({
  uuid: z.string().min(1),
  full_name: z.string().regex(/^[^/]+\/[^/]+$/, 'workspace/repo_slug'),
  slug: z.string().min(1).optional(),
  name: z.string().optional(),
  description: z.string().optional(),
  is_private: z.boolean().optional(),
  scm: z.string().optional(),
  language: z.string().optional(),
  project: z.looseObject({ key: z.string().optional(), uuid: z.string().optional(), name: z.string().optional() }).optional(),
  mainbranch: z.looseObject({ name: z.string() }).nullish(),
  created_on: isoDateTime.optional(),
  /** The cursor of the incremental listing (`q=updated_on > …`). */
  updated_on: isoDateTime,
});
export type BitbucketRepository = z.infer<typeof bitbucketRepositorySchema>;

// ---------------------------------------------------------------------------------------------
// Pull requests

/** `source` / `destination` of a pull request (definition `pullrequest_endpoint`). */
const pullRequestEndpoint = z.looseObject({
  branch: z.looseObject({ name: z.string() }).optional(),
  commit: z.looseObject({ hash: gitHash }).optional(),
  repository: z.looseObject({ uuid: z.string().optional(), full_name: z.string().optional() }).optional(),
});

/**
 * A participant of a pull request (definition `participant`). `role` is `PARTICIPANT` or
 * `REVIEWER`; `state` is `approved`, `changes_requested` or `null` (the spec's own enum), and
 * `participated_on` is `null` for a reviewer who has not acted yet (the spec's description).
 */
export const bitbucketParticipantSchema = z.looseObject({
  user: bitbucketAccountSchema.optional(),
  role: z.string().optional(),
  approved: z.boolean().optional(),
  state: z.string().nullish(),
  participated_on: isoDateTime.nullish(),
});
export type BitbucketParticipant = z.infer<typeof bitbucketParticipantSchema>;

/**
 * One entry of `GET /repositories/{workspace}/{repo_slug}/pullrequests` (definition `pullrequest`).
 * https://developer.atlassian.com/cloud/bitbucket/rest/api-group-pullrequests/#api-repositories-workspace-repo-slug-pullrequests-get
 *
 * `id` is unique per repository only. `state` is `OPEN`, `MERGED`, `DECLINED` or `SUPERSEDED`
 * today; kept a string so a new state is stored rather than quarantined. `merge_commit` is `null`
 * until the pull request is merged (captured real response:
 * https://github.com/scala-steward-org/scala-steward/blob/eae30d0ce47334c04e94dd47410e2992d2c3e5eb/modules/core/src/test/scala/org/scalasteward/core/forge/bitbucket/JsonCodecTest.scala).
 * `participants` and `reviewers` come only when asked for (`fields=+values.participants`).
 */
export const bitbucketPullRequestSchema = z.looseObject({
  id: pgInt().positive(),
  title: z.string().optional(),
  state: z.string().min(1),
  author: bitbucketAccountSchema.optional(),
  source: pullRequestEndpoint.optional(),
  destination: pullRequestEndpoint.optional(),
  merge_commit: z.looseObject({ hash: gitHash }).nullish(),
  comment_count: pgInt().nonnegative().optional(),
  task_count: pgInt().nonnegative().optional(),
  draft: z.boolean().optional(),
  created_on: isoDateTime,
  /** The cursor of the incremental listing (`q=updated_on > …`). */
  updated_on: isoDateTime,
  participants: z.array(bitbucketParticipantSchema).optional(),
  reviewers: z.array(bitbucketAccountSchema).optional(),
});
export type BitbucketPullRequest = z.infer<typeof bitbucketPullRequestSchema>;

// ---------------------------------------------------------------------------------------------
// Commits

/**
 * One entry of `GET /repositories/{workspace}/{repo_slug}/commits` (definition `commit`, built on
 * `base_commit`). Newest first, iterator-paginated. `author.user` is absent when the raw author
 * matches no Bitbucket account.
 * https://developer.atlassian.com/cloud/bitbucket/rest/api-group-commits/#api-repositories-workspace-repo-slug-commits-get
 */
export const bitbucketCommitSchema = z.looseObject({
  hash: gitHash,
  date: isoDateTime,
  author: z.looseObject({ raw: z.string().optional(), user: bitbucketAccountSchema.optional() }).optional(),
  message: z.string().optional(),
  parents: z.array(z.looseObject({ hash: gitHash })).optional(),
});
export type BitbucketCommit = z.infer<typeof bitbucketCommitSchema>;

// ---------------------------------------------------------------------------------------------
// Pipelines

/**
 * One entry of `GET /repositories/{workspace}/{repo_slug}/pipelines` (definition `pipeline`).
 * https://developer.atlassian.com/cloud/bitbucket/rest/api-group-pipelines/#api-repositories-workspace-repo-slug-pipelines-get
 *
 * `state`, `result`, `trigger` and `target` are discriminated by `type`
 * (`pipeline_state_completed`, `pipeline_state_completed_failed`, `pipeline_trigger_push`,
 * `pipeline_ref_target`…). `state.name` is `PENDING`, `IN_PROGRESS` or `COMPLETED` and
 * `state.result.name` (completed only) `SUCCESSFUL`, `FAILED`, `ERROR`, `STOPPED` or `EXPIRED`;
 * both are required because the sync decides from them whether a pipeline is still running.
 * `completed_on` is absent while it runs.
 *
 * `trigger.name` (`PUSH`, `MANUAL`, `SCHEDULE`…, the vocabulary of the `trigger_type` filter) is
 * sent although no trigger definition declares it; captured real response:
 * https://github.com/tuhrig/tuhrig.github.io/blob/9fcd83c349d214c9b06c108cad1935f8bb3b7ae8/_posts/2023/2023-03-06-plotting-test-results-to-see-regressions.md
 */
export const bitbucketPipelineSchema = z.looseObject({
  uuid: z.string().min(1),
  build_number: pgInt().nonnegative(),
  state: z.looseObject({
    type: z.string().optional(),
    name: z.string().min(1),
    result: z.looseObject({ type: z.string().optional(), name: z.string().min(1) }).optional(),
  }),
  trigger: z.looseObject({ type: z.string().optional(), name: z.string().optional() }).optional(),
  target: z
    .looseObject({
      type: z.string().optional(),
      ref_type: z.string().optional(),
      ref_name: z.string().optional(),
      commit: z.looseObject({ hash: gitHash }).optional(),
    })
    .optional(),
  creator: bitbucketAccountSchema.optional(),
  /** The cursor of the newest-first listing. */
  created_on: isoDateTime,
  completed_on: isoDateTime.optional(),
  build_seconds_used: pgInt().nonnegative().optional(),
});
export type BitbucketPipeline = z.infer<typeof bitbucketPipelineSchema>;

// ---------------------------------------------------------------------------------------------
// OAuth 2.0 (https://bitbucket.org/site/oauth2/access_token; not part of the REST spec)

/**
 * The token endpoint's success body.
 * https://developer.atlassian.com/cloud/bitbucket/oauth-2/ and RFC 6749 §5.1
 * (https://www.rfc-editor.org/rfc/rfc6749#section-5.1).
 *
 * - The granted scopes were in `scopes` until 2026-05-04 and are in `scope` since; both are
 *   accepted (space-separated):
 *   https://community.developer.atlassian.com/t/oauth-2-0-and-api-authentication-changes-for-bitbucket-cloud/99003
 * - `expires_in` is 7200 in practice although older docs say one hour: compute the expiry from it.
 *   https://community.developer.atlassian.com/t/oauth2-token-lifetime-expiration-clarification/22136
 * - `refresh_token` is absent for client_credentials grants since 2026-05-04 (same announcement),
 *   and rotates on every refresh.
 * - `state` carries the grant type in observed bodies; unused.
 */
export const bitbucketTokenResponseSchema = z.looseObject({
  access_token: z.string().min(1),
  token_type: z.string().optional(),
  expires_in: z.int().positive().optional(),
  refresh_token: z.string().min(1).optional(),
  scopes: z.string().optional(),
  scope: z.string().optional(),
  state: z.string().optional(),
});
export type BitbucketTokenResponse = z.infer<typeof bitbucketTokenResponseSchema>;

/**
 * The token endpoint's error body (RFC 6749 §5.2, https://www.rfc-editor.org/rfc/rfc6749#section-5.2).
 * A rotated-out refresh token has been answered with `invalid_request` rather than
 * `invalid_grant`, so `error` is any code.
 */
export const bitbucketOAuthErrorSchema = z.looseObject({
  error: z.string().min(1),
  error_description: z.string().optional(),
});
export type BitbucketOAuthError = z.infer<typeof bitbucketOAuthErrorSchema>;

// ---------------------------------------------------------------------------------------------
// Errors

/**
 * The JSON error body of the REST API (definition `error`): `{type: "error", error: {message}}`.
 * The spec types `detail` as a string, but a scope failure sends an object
 * (`{"granted": [...], "required": [...]}`), as captured in
 * https://github.com/SonarSource/sonarqube/blob/172b54f60683aa3ddd7c75587bdd65fd41f5d12f/server/sonar-alm-client/src/test/java/org/sonar/alm/client/bitbucket/bitbucketcloud/BitbucketCloudRestClientTest.java
 * A 429 is plain text, not this body.
 */
export const bitbucketErrorSchema = z.looseObject({
  type: z.literal('error'),
  error: z.looseObject({
    message: z.string(),
    detail: z.union([z.string(), z.record(z.string(), z.unknown())]).optional(),
    data: z.record(z.string(), z.unknown()).optional(),
  }),
});
export type BitbucketError = z.infer<typeof bitbucketErrorSchema>;
