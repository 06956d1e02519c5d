import type { CommonControl } from '../shared';

// Public types of the Bitbucket simulator, re-exported from `simulators/bitbucket`.

export interface BitbucketSeed {
  workspaces?: number;
  reposPerWorkspace?: number;
  /** Includes the authorizing user, who is a member (and admin) of every workspace. */
  membersPerWorkspace?: number;
  pullRequestsPerRepo?: number;
  commitsPerRepo?: number;
  pipelinesPerRepo?: number;
  /** PRNG seed for names, hashes and uuids. */
  seed?: number;
  /** Instant the seeded history ends at; defaults to start-up time. Fix it for byte-identical data. */
  anchor?: string;
}

export interface BitbucketConsumer {
  clientId: string;
  clientSecret: string;
  /** The consumer's registered callback; a `redirect_uri` sent to authorize must extend it. */
  callbackUrl?: string;
  /** Scopes ticked on the consumer (Bitbucket sets scopes per consumer, not per request). */
  scopes?: string[];
}

export interface BitbucketSimulatorOptions {
  port?: number;
  host?: string;
  accessTokenTtlSeconds?: number;
  /** 0: a rotated-out refresh token dies immediately. */
  refreshTokenGraceSeconds?: number;
  consumers?: BitbucketConsumer[];
  /**
   * The token response's scope field: `scopes` before 2026-05-04, `scope` after
   * (https://community.developer.atlassian.com/t/oauth-2-0-and-api-authentication-changes-for-bitbucket-cloud/99003).
   */
  scopeField?: 'scopes' | 'scope';
  seed?: BitbucketSeed;
}

export type RepositoryAccess = 'ok' | 'forbidden' | 'not_found';
export type PullRequestState = 'OPEN' | 'MERGED' | 'DECLINED' | 'SUPERSEDED';
export type PipelineStateName = 'PENDING' | 'IN_PROGRESS' | 'COMPLETED';
export type PipelineResult = 'SUCCESSFUL' | 'FAILED' | 'ERROR' | 'STOPPED' | 'EXPIRED';

export interface BitbucketGrantInfo {
  id: string;
  clientId: string;
  kind: 'authorization_code' | 'client_credentials';
  scopes: string[];
  refreshCount: number;
  revoked: boolean;
  createdAt: number;
}

export interface BitbucketRepositoryCounts {
  slug: string;
  uuid: string;
  fullName: string;
  access: RepositoryAccess;
  pullRequests: Record<PullRequestState, number> & { total: number };
  commits: number;
  pipelines: { total: number; running: number; completed: number };
}

export interface BitbucketDataset {
  user: { uuid: string; accountId: string; nickname: string; displayName: string };
  workspaces: {
    slug: string;
    uuid: string;
    name: string;
    administrator: boolean;
    members: number;
    repositories: BitbucketRepositoryCounts[];
  }[];
}

/**
 * How many records a complete sync of this dataset stores per resource: every workspace, member
 * and repository, and the pull requests, commits and pipelines of the repositories still readable.
 */
export function completeSyncCounts(ds: BitbucketDataset) {
  const repos = ds.workspaces.flatMap((w) => w.repositories);
  const ok = repos.filter((r) => r.access === 'ok');
  return {
    workspaces: ds.workspaces.length,
    members: ds.workspaces.reduce((n, w) => n + w.members, 0),
    repositories: repos.length,
    pullRequests: ok.reduce((n, r) => n + r.pullRequests.total, 0),
    commits: ok.reduce((n, r) => n + r.commits, 0),
    pipelines: ok.reduce((n, r) => n + r.pipelines.total, 0),
  };
}

/**
 * How a refresh-token grant fails: `unavailable` answers 503 before anything happens; `answer_lost`
 * (the connection is reset before the answer) and `answer_cut` (the answer stops halfway through its
 * body) happen after the refresh token was rotated, so the client holds only the rotated-out one.
 */
export const REFRESH_FAULTS = ['unavailable', 'answer_lost', 'answer_cut'] as const;
export type RefreshFault = (typeof REFRESH_FAULTS)[number];

export interface BitbucketControl extends CommonControl {
  denyNextAuthorization(description?: string): void;
  /** The next `count` refresh-token grants fail this way (before any chaos is drawn). Cleared by `reset`. */
  failNextRefreshes(count: number, how: RefreshFault): void;
  expireAccessTokens(): void;
  revokeAll(): void;
  setAccessTokenTtl(seconds: number): void;
  /**
   * Bitbucket's grace window: a refresh token rotated out by a refresh keeps working this many
   * seconds after ("will expire shortly after", https://community.developer.atlassian.com/t/oauth-2-0-and-api-authentication-changes-for-bitbucket-cloud/99003).
   * 0 (the default) kills it at once.
   */
  setRefreshTokenGrace(seconds: number): void;
  addConsumer(clientId: string, clientSecret: string, extra?: { callbackUrl?: string; scopes?: string[] }): void;
  /** Successful refreshes, for one grant or summed over all. */
  refreshCount(grantId?: string): number;
  /** Times a rotated-out refresh token was presented again (within the grace period or not). */
  refreshTokenReuseCount(): number;
  grants(): BitbucketGrantInfo[];
  /** Per-grant budget over a rolling hour; `null` removes it. */
  setRateLimit(limit: { perHour: number } | null): void;

  touchPullRequests(workspace: string, repo: string, ids: number[]): void;
  setPullRequestState(workspace: string, repo: string, id: number, state: PullRequestState): void;
  addPullRequests(workspace: string, repo: string, count: number, opts?: { state?: PullRequestState }): number[];
  addCommits(workspace: string, repo: string, count: number): string[];
  addPipelines(
    workspace: string,
    repo: string,
    count: number,
    opts?: { state?: PipelineStateName; result?: PipelineResult; branch?: string },
  ): number[];
  finishRunningPipelines(workspace: string, repo: string, result?: PipelineResult): number;
  /**
   * A repository that answers `not_found` is also absent from its workspace's listing: that is what
   * a deleted repository looks like through the API.
   */
  setRepositoryAccess(workspace: string, repo: string, access: RepositoryAccess): void;
  /** Removes a member from the workspace's member list (`present: false`) or brings them back. */
  setMemberPresent(workspace: string, userUuid: string, present: boolean): void;
  dataset(): BitbucketDataset;
}

export interface BitbucketSimulator {
  url: string;
  apiUrl: string;
  oauthUrl: string;
  control: BitbucketControl;
  close(): Promise<void>;
}

/** Used when no consumers are passed, so a demo works out of the box. */
export const DEFAULT_BITBUCKET_CONSUMER: Readonly<Required<Omit<BitbucketConsumer, 'callbackUrl'>>> = {
  clientId: 'SimConsumerKey7xQ2',
  clientSecret: 'SimConsumerSecret4bT9wLz2Qp8Rk6Vd',
  scopes: ['account', 'repository', 'pullrequest', 'pipeline'],
};
