/**
 * The Bitbucket URLs Conduit builds. Page sizes: `pagelen` runs 10–100, and pull request lists
 * are capped at 50 (https://developer.atlassian.com/cloud/bitbucket/rest/intro/#pagination,
 * https://jira.atlassian.com/browse/BCLOUD-9659).
 */
export const PAGELEN = 100;
export const PR_PAGELEN = 50;
/** The pull request listing returns OPEN only unless each state is asked for. */
/** Participants (reviews, approvals) come only when asked for; insights need them. */
export const PR_FIELDS = '+values.participants';
export const PR_STATES = ['OPEN', 'MERGED', 'DECLINED', 'SUPERSEDED'] as const;

/** A query string, `%20` for spaces as in Bitbucket's own links; repeated keys come from arrays. */
export function queryString(params: Record<string, string | number | readonly string[] | undefined>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(String(one))}`);
  }
  return parts.join('&');
}

const seg = (s: string) => encodeURIComponent(s);

export const workspacesUrl = (api: string) => `${api}/user/workspaces?${queryString({ pagelen: PAGELEN })}`;

export const membersUrl = (api: string, workspaceSlug: string) =>
  `${api}/workspaces/${seg(workspaceSlug)}/members?${queryString({ pagelen: PAGELEN })}`;

export const repositoriesUrl = (api: string, workspaceSlug: string, q: string | undefined) =>
  `${api}/repositories/${seg(workspaceSlug)}?${queryString({ pagelen: PAGELEN, sort: 'updated_on', q })}`;

export interface RepoPath {
  workspaceSlug: string;
  slug: string;
}

const repoUrl = (api: string, r: RepoPath) => `${api}/repositories/${seg(r.workspaceSlug)}/${seg(r.slug)}`;

export const pullRequestsUrl = (api: string, r: RepoPath, q: string | undefined) =>
  `${repoUrl(api, r)}/pullrequests?${queryString({ state: PR_STATES, sort: 'updated_on', pagelen: PR_PAGELEN, q, fields: PR_FIELDS })}`;

export const commitsUrl = (api: string, r: RepoPath) => `${repoUrl(api, r)}/commits?${queryString({ pagelen: PAGELEN })}`;

/** Newest first by page number (the pipelines endpoint has its own parameters, not `q`). */
export const pipelinesUrl = (api: string, r: RepoPath, page: number) =>
  `${repoUrl(api, r)}/pipelines?${queryString({ sort: '-created_on', pagelen: PAGELEN, page })}`;
