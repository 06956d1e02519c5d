import { timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import {
  FaultPlan,
  type CommonControl,
  type FaultStatus,
  MonotonicClock,
  QueryError,
  type Rand,
  RequestLog,
  RollingWindow,
  SecretRegistry,
  SimInputError,
  SimNotFoundError,
  type SimRoute,
  compileFilter,
  createSimApp,
  encodeQuery,
  faultSpecFrom,
  hex,
  installTrafficHooks,
  intBetween,
  isRecord,
  isoMicros,
  listen,
  num,
  optStr,
  parseAnchor,
  pick,
  queryParams,
  randomSecret,
  registerSimRoutes,
  seededRandom,
  sortItems,
  splitUrl,
  str,
  uuid,
} from './shared';

/**
 * Bitbucket Cloud simulator: OAuth 2.0 (authorization code + rotating refresh tokens) under
 * `/site/oauth2` and the REST 2.0 endpoints Conduit syncs under `/2.0`, with the real API's
 * response shapes, error bodies and pagination styles (see shared/provider-notes.md section A).
 */

// ---------------------------------------------------------------------------------------------
// Public types

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
  /** The token response's scope field: `scopes` before 2026-05-04, `scope` after (provider-notes A1). */
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

export interface BitbucketControl extends CommonControl {

  denyNextAuthorization(description?: string): void;
  expireAccessTokens(): void;
  revokeAll(): void;
  setAccessTokenTtl(seconds: number): void;
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
  setRepositoryAccess(workspace: string, repo: string, access: RepositoryAccess): void;
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

const API_BASE = '/2.0';
const OAUTH_BASE = '/site/oauth2';
const CODE_TTL_MS = 10 * 60 * 1000;
/** "A refresh token which is not used … will expire after 3 months" (BB-spec narrative). */
const REFRESH_TOKEN_IDLE_MS = 90 * 24 * 3600 * 1000;
const MSG_EXPIRED = 'Access token expired. Use your refresh token to obtain a new access token.';
const MSG_INVALID = 'Token is invalid, expired, or not supported for this endpoint.';
const PR_STATES: readonly PullRequestState[] = ['OPEN', 'MERGED', 'DECLINED', 'SUPERSEDED'];
const PIPELINE_RESULTS: readonly PipelineResult[] = ['SUCCESSFUL', 'FAILED', 'ERROR', 'STOPPED', 'EXPIRED'];

// ---------------------------------------------------------------------------------------------
// Data model and seed

interface User {
  uuid: string;
  accountId: string;
  nickname: string;
  displayName: string;
  email: string;
  createdOn: number;
}

interface Workspace {
  uuid: string;
  slug: string;
  name: string;
  createdOn: number;
  members: User[];
  adminUuids: Set<string>;
  repos: Repo[];
  projectUuid: string;
  projectKey: string;
}

interface Commit {
  hash: string;
  date: number;
  author: User;
  message: string;
  parent?: string;
}

interface PullRequest {
  id: number;
  title: string;
  description: string;
  state: PullRequestState;
  author: User;
  reviewers: User[];
  approvedBy: Set<string>;
  sourceBranch: string;
  sourceHash: string;
  destinationHash: string;
  createdOn: number;
  updatedOn: number;
  commentCount: number;
  taskCount: number;
  draft: boolean;
  mergeHash?: string;
}

interface Pipeline {
  uuid: string;
  buildNumber: number;
  creator: User;
  branch: string;
  commitHash: string;
  trigger: 'PUSH' | 'MANUAL';
  state: PipelineStateName;
  result?: PipelineResult;
  createdOn: number;
  completedOn?: number;
  buildSecondsUsed: number;
}

interface Repo {
  uuid: string;
  slug: string;
  name: string;
  workspace: Workspace;
  description: string;
  language: string;
  createdOn: number;
  updatedOn: number;
  access: RepositoryAccess;
  /** Oldest first; the API serves newest first. */
  commits: Commit[];
  pullRequests: PullRequest[];
  pipelines: Pipeline[];
  mainBranch: string;
}

const FIRST_NAMES = ['Ada', 'Grace', 'Linus', 'Margaret', 'Ken', 'Barbara', 'Dennis', 'Frances', 'Alan', 'Radia', 'Edsger', 'Hedy'];
const LAST_NAMES = ['Lovelace', 'Hopper', 'Torvalds', 'Hamilton', 'Thompson', 'Liskov', 'Ritchie', 'Allen', 'Turing', 'Perlman'];
const WORKSPACE_NAMES = ['Acme', 'Globex', 'Initech', 'Umbrella', 'Hooli', 'Soylent', 'Stark', 'Wayne'];
const REPO_NAMES = ['api', 'web', 'mobile-app', 'infra', 'billing', 'docs', 'search', 'auth-service', 'data-pipeline', 'design-system'];
const LANGUAGES = ['typescript', 'go', 'kotlin', 'python', 'swift', 'java'];
const VERBS = ['Fix', 'Add', 'Refactor', 'Update', 'Remove', 'Improve'];
const TOPICS = ['login flow', 'retry logic', 'CI cache', 'README', 'payment webhook', 'search ranking', 'dark mode', 'rate limiter'];

const braced = (rand: Rand) => `{${uuid(rand)}}`;
const HOUR = 3600 * 1000;

class BitbucketWorld {
  readonly me: User;
  readonly workspaces: Workspace[] = [];
  private userCount = 0;

  constructor(
    private readonly rand: Rand,
    private readonly clock: MonotonicClock,
    seed: BitbucketSeed,
    anchor: number,
  ) {
    this.me = this.makeUser(anchor, 'Sim User', 'sim-user');
    const workspaces = seed.workspaces ?? 2;
    for (let w = 0; w < workspaces; w += 1) {
      const base = WORKSPACE_NAMES[w % WORKSPACE_NAMES.length] ?? 'Workspace';
      const suffix = w >= WORKSPACE_NAMES.length ? `-${Math.floor(w / WORKSPACE_NAMES.length) + 1}` : '';
      const ws: Workspace = {
        uuid: braced(rand),
        slug: `${base.toLowerCase()}${suffix}`,
        name: `${base}${suffix ? ` ${suffix.slice(1)}` : ''}`,
        createdOn: anchor - 400 * 24 * HOUR,
        members: [this.me],
        // The simulated user administers every other workspace, but not the second one, so both
        // values of `administrator` show up.
        adminUuids: new Set(w === 1 ? [] : [this.me.uuid]),
        repos: [],
        projectUuid: braced(rand),
        projectKey: base.slice(0, 3).toUpperCase(),
      };
      for (let m = 1; m < (seed.membersPerWorkspace ?? 3); m += 1) ws.members.push(this.makeUser(anchor));
      for (let r = 0; r < (seed.reposPerWorkspace ?? 2); r += 1) ws.repos.push(this.makeRepo(ws, r, seed, anchor));
      this.workspaces.push(ws);
    }
  }

  private makeUser(anchor: number, displayName?: string, nickname?: string): User {
    const n = this.userCount++;
    const first = FIRST_NAMES[n % FIRST_NAMES.length] ?? 'Sam';
    const last = LAST_NAMES[(n * 7) % LAST_NAMES.length] ?? 'Doe';
    const name = displayName ?? `${first} ${last}`;
    const nick = nickname ?? `${first}.${last}`.toLowerCase() + (n >= FIRST_NAMES.length ? n : '');
    const id = uuid(this.rand);
    return {
      uuid: `{${id}}`,
      accountId: `712020:${id}`,
      nickname: nick,
      displayName: name,
      email: `${nick}@example.com`,
      createdOn: anchor - intBetween(this.rand, 500, 2000) * 24 * HOUR,
    };
  }

  private makeRepo(ws: Workspace, index: number, seed: BitbucketSeed, anchor: number): Repo {
    const rand = this.rand;
    const base = REPO_NAMES[index % REPO_NAMES.length] ?? 'repo';
    const slug = index >= REPO_NAMES.length ? `${base}-${Math.floor(index / REPO_NAMES.length) + 1}` : base;
    const repo: Repo = {
      uuid: braced(rand),
      slug,
      name: slug,
      workspace: ws,
      description: `The ${slug} service of ${ws.name}.`,
      language: pick(rand, LANGUAGES),
      createdOn: anchor - 300 * 24 * HOUR,
      updatedOn: anchor,
      access: 'ok',
      commits: [],
      pullRequests: [],
      pipelines: [],
      mainBranch: 'main',
    };
    // Spread the seeded history over the hours before the anchor, oldest first, a little
    // jittered so sorting by time is meaningful and ties are rare.
    const commits = seed.commitsPerRepo ?? 12;
    for (let c = 0; c < commits; c += 1) {
      this.pushCommit(repo, anchor - (commits - c) * 3 * HOUR - intBetween(rand, 0, 50) * 60_000, ws);
    }
    const prs = seed.pullRequestsPerRepo ?? 5;
    for (let p = 0; p < prs; p += 1) {
      const created = anchor - (prs - p + 1) * 5 * HOUR - intBetween(rand, 0, 50) * 60_000;
      const state = seededPrState(p + 1);
      this.pushPullRequest(repo, state, created, created + intBetween(rand, 5, 240) * 60_000);
    }
    const pipelines = seed.pipelinesPerRepo ?? 4;
    for (let p = 0; p < pipelines; p += 1) {
      const created = anchor - (pipelines - p) * 2 * HOUR - intBetween(rand, 0, 50) * 60_000;
      // The newest seeded pipelines have not finished (the last one is still queued when there
      // are three or more), so "finish running pipelines" has work to do.
      const fromEnd = pipelines - p;
      const state: PipelineStateName =
        fromEnd === 1 && pipelines >= 3 ? 'PENDING' : fromEnd <= 2 && pipelines >= 2 ? 'IN_PROGRESS' : 'COMPLETED';
      const n = p + 1;
      const result: PipelineResult = n % 4 === 0 ? 'FAILED' : n % 5 === 0 ? 'ERROR' : n % 7 === 0 ? 'STOPPED' : 'SUCCESSFUL';
      this.pushPipeline(repo, created, state, state === 'COMPLETED' ? result : undefined);
    }
    repo.updatedOn = Math.max(repo.commits.at(-1)?.date ?? repo.createdOn, repo.createdOn);
    return repo;
  }

  pushCommit(repo: Repo, date: number, ws = repo.workspace): Commit {
    const commit: Commit = {
      hash: hex(this.rand, 40),
      date,
      author: pick(this.rand, ws.members),
      message: `${pick(this.rand, VERBS)} ${pick(this.rand, TOPICS)}\n`,
      parent: repo.commits.at(-1)?.hash,
    };
    repo.commits.push(commit);
    return commit;
  }

  pushPullRequest(repo: Repo, state: PullRequestState, createdOn: number, updatedOn: number): PullRequest {
    const rand = this.rand;
    const members = repo.workspace.members;
    const author = pick(rand, members);
    const reviewers = members.filter((m) => m !== author).slice(0, 2);
    const id = (repo.pullRequests.at(-1)?.id ?? 0) + 1;
    const topic = pick(rand, TOPICS);
    const pr: PullRequest = {
      id,
      title: `${pick(rand, VERBS)} ${topic}`,
      description: `This pull request changes the ${topic}.`,
      state,
      author,
      reviewers,
      approvedBy: new Set(state === 'MERGED' ? reviewers.slice(0, 1).map((r) => r.uuid) : []),
      sourceBranch: `feature/${topic.replace(/\s+/g, '-').toLowerCase()}-${id}`,
      sourceHash: hex(rand, 12),
      destinationHash: (repo.commits.at(-1)?.hash ?? hex(rand, 40)).slice(0, 12),
      createdOn,
      updatedOn,
      commentCount: intBetween(rand, 0, 6),
      taskCount: intBetween(rand, 0, 2),
      draft: false,
      mergeHash: state === 'MERGED' ? hex(rand, 12) : undefined,
    };
    repo.pullRequests.push(pr);
    return pr;
  }

  pushPipeline(repo: Repo, createdOn: number, state: PipelineStateName, result?: PipelineResult, branch?: string): Pipeline {
    const rand = this.rand;
    const seconds = intBetween(rand, 45, 900);
    const pipeline: Pipeline = {
      uuid: braced(rand),
      buildNumber: (repo.pipelines.at(-1)?.buildNumber ?? 0) + 1,
      creator: pick(rand, repo.workspace.members),
      branch: branch ?? repo.mainBranch,
      commitHash: repo.commits.at(-1)?.hash ?? hex(rand, 40),
      trigger: rand() < 0.8 ? 'PUSH' : 'MANUAL',
      state,
      result: state === 'COMPLETED' ? (result ?? 'SUCCESSFUL') : undefined,
      createdOn,
      completedOn: state === 'COMPLETED' ? createdOn + seconds * 1000 : undefined,
      buildSecondsUsed: state === 'COMPLETED' ? seconds : 0,
    };
    repo.pipelines.push(pipeline);
    return pipeline;
  }

  findWorkspace(idOrSlug: string): Workspace | undefined {
    return this.workspaces.find((w) => w.slug === idOrSlug || w.uuid === idOrSlug);
  }

  findRepo(ws: Workspace, idOrSlug: string): Repo | undefined {
    return ws.repos.find((r) => r.slug === idOrSlug || r.uuid === idOrSlug);
  }

  /** For control methods: unknown names are a test bug, so they throw. */
  repoOrThrow(workspace: string, repo: string): Repo {
    const ws = this.findWorkspace(workspace);
    const found = ws && this.findRepo(ws, repo);
    if (!found) throw new SimNotFoundError(`no repository ${workspace}/${repo}`);
    return found;
  }

  touchPullRequests(workspace: string, repoSlug: string, ids: number[]): void {
    const repo = this.repoOrThrow(workspace, repoSlug);
    const prs = ids.map((id) => {
      const pr = repo.pullRequests.find((p) => p.id === id);
      if (!pr) throw new SimNotFoundError(`no pull request #${id} in ${workspace}/${repoSlug}`);
      return pr;
    });
    for (const pr of prs) pr.updatedOn = this.clock.now();
  }

  setPullRequestState(workspace: string, repoSlug: string, id: number, state: PullRequestState): void {
    if (!PR_STATES.includes(state)) throw new SimInputError(`unknown pull request state ${state}`);
    const repo = this.repoOrThrow(workspace, repoSlug);
    const pr = repo.pullRequests.find((p) => p.id === id);
    if (!pr) throw new SimNotFoundError(`no pull request #${id} in ${workspace}/${repoSlug}`);
    pr.state = state;
    pr.updatedOn = this.clock.now();
    if (state === 'MERGED') pr.mergeHash ??= hex(this.rand, 12);
  }

  addPullRequests(workspace: string, repoSlug: string, count: number, state: PullRequestState = 'OPEN'): number[] {
    if (!PR_STATES.includes(state)) throw new SimInputError(`unknown pull request state ${state}`);
    const repo = this.repoOrThrow(workspace, repoSlug);
    return positiveCount(count).map(() => {
      const now = this.clock.now();
      return this.pushPullRequest(repo, state, now, now).id;
    });
  }

  addCommits(workspace: string, repoSlug: string, count: number): string[] {
    const repo = this.repoOrThrow(workspace, repoSlug);
    const hashes = positiveCount(count).map(() => this.pushCommit(repo, this.clock.now()).hash);
    repo.updatedOn = this.clock.now();
    return hashes;
  }

  addPipelines(
    workspace: string,
    repoSlug: string,
    count: number,
    opts: { state?: PipelineStateName; result?: PipelineResult; branch?: string } = {},
  ): number[] {
    const repo = this.repoOrThrow(workspace, repoSlug);
    const state = opts.state ?? 'COMPLETED';
    if (!['PENDING', 'IN_PROGRESS', 'COMPLETED'].includes(state)) throw new SimInputError(`unknown pipeline state ${state}`);
    if (opts.result && !PIPELINE_RESULTS.includes(opts.result)) throw new SimInputError(`unknown result ${opts.result}`);
    return positiveCount(count).map(() => {
      const now = this.clock.now();
      const p = this.pushPipeline(repo, now, state, opts.result, opts.branch);
      if (p.completedOn !== undefined) p.completedOn = now + p.buildSecondsUsed * 1000;
      return p.buildNumber;
    });
  }

  finishRunningPipelines(workspace: string, repoSlug: string, result: PipelineResult = 'SUCCESSFUL'): number {
    if (!PIPELINE_RESULTS.includes(result)) throw new SimInputError(`unknown result ${result}`);
    const repo = this.repoOrThrow(workspace, repoSlug);
    const running = repo.pipelines.filter((p) => p.state !== 'COMPLETED');
    for (const p of running) {
      const now = this.clock.now();
      p.state = 'COMPLETED';
      p.result = result;
      p.completedOn = now;
      p.buildSecondsUsed = Math.max(1, Math.round((now - p.createdOn) / 1000));
    }
    return running.length;
  }

  setRepositoryAccess(workspace: string, repoSlug: string, access: RepositoryAccess): void {
    if (!['ok', 'forbidden', 'not_found'].includes(access)) throw new SimInputError(`unknown access ${access}`);
    this.repoOrThrow(workspace, repoSlug).access = access;
  }

  dataset(): BitbucketDataset {
    return {
      user: { uuid: this.me.uuid, accountId: this.me.accountId, nickname: this.me.nickname, displayName: this.me.displayName },
      workspaces: this.workspaces.map((ws) => ({
        slug: ws.slug,
        uuid: ws.uuid,
        name: ws.name,
        administrator: ws.adminUuids.has(this.me.uuid),
        members: ws.members.length,
        repositories: ws.repos.map((r) => {
          const byState = Object.fromEntries(PR_STATES.map((s) => [s, r.pullRequests.filter((p) => p.state === s).length])) as Record<
            PullRequestState,
            number
          >;
          const running = r.pipelines.filter((p) => p.state !== 'COMPLETED').length;
          return {
            slug: r.slug,
            uuid: r.uuid,
            fullName: `${ws.slug}/${r.slug}`,
            access: r.access,
            pullRequests: { ...byState, total: r.pullRequests.length },
            commits: r.commits.length,
            pipelines: { total: r.pipelines.length, running, completed: r.pipelines.length - running },
          };
        }),
      })),
    };
  }
}

/** Deterministic mix so tests can predict counts per state: OPEN, MERGED, DECLINED, OPEN, SUPERSEDED, … */
function seededPrState(id: number): PullRequestState {
  return (['OPEN', 'MERGED', 'DECLINED', 'OPEN', 'SUPERSEDED'] as const)[(id - 1) % 5] ?? 'OPEN';
}

function positiveCount(count: number): number[] {
  if (!Number.isInteger(count) || count < 1) throw new SimInputError('count must be a positive integer');
  return Array.from({ length: count }, (_, i) => i);
}

// ---------------------------------------------------------------------------------------------
// JSON renderers: shapes follow the BB-spec definitions. Every object that the spec derives from
// `object` carries its `type` discriminator (the definition name), as the real API does.

type Json = Record<string, unknown>;

function renderers(siteUrl: string) {
  const api = `${siteUrl}${API_BASE}`;
  const link = (href: string) => ({ href });

  const user = (u: User): Json => ({
    type: 'user',
    display_name: u.displayName,
    links: {
      self: link(`${api}/users/${encodeURIComponent(u.uuid)}`),
      avatar: link(`${siteUrl}/avatars/${u.accountId}.png`),
      html: link(`${siteUrl}/${encodeURIComponent(u.uuid)}/`),
    },
    nickname: u.nickname,
    uuid: u.uuid,
    account_id: u.accountId,
  });

  const fullUser = (u: User): Json => ({
    ...user(u),
    created_on: isoMicros(u.createdOn),
    account_status: 'active',
    is_staff: false,
  });

  const workspaceLinks = (ws: Workspace) => ({
    avatar: link(`${siteUrl}/workspaces/${ws.slug}/avatar/`),
    self: link(`${api}/workspaces/${ws.slug}`),
  });

  const workspaceBase = (ws: Workspace): Json => ({
    type: 'workspace_base',
    uuid: ws.uuid,
    slug: ws.slug,
    name: ws.name,
    is_private: true,
    links: workspaceLinks(ws),
  });

  const workspace = (ws: Workspace): Json => ({
    type: 'workspace',
    uuid: ws.uuid,
    name: ws.name,
    slug: ws.slug,
    is_private: true,
    is_privacy_enforced: false,
    forking_mode: 'allow_forks',
    created_on: isoMicros(ws.createdOn),
    links: {
      ...workspaceLinks(ws),
      html: link(`${siteUrl}/${ws.slug}/`),
      members: link(`${api}/workspaces/${ws.slug}/members`),
      owners: link(`${api}/workspaces/${ws.slug}/members?q=permission%3D%22owner%22`),
      projects: link(`${api}/workspaces/${ws.slug}/projects`),
      repositories: link(`${api}/repositories/${ws.slug}`),
      snippets: link(`${api}/snippets/${ws.slug}`),
    },
  });

  const repoLinks = (r: Repo) => ({
    self: link(`${api}/repositories/${r.workspace.slug}/${r.slug}`),
    html: link(`${siteUrl}/${r.workspace.slug}/${r.slug}`),
    avatar: link(`${siteUrl}/${r.workspace.slug}/${r.slug}/avatar/32/`),
  });

  /** The abbreviated repository embedded in pull requests, commits and pipelines. */
  const repoMini = (r: Repo): Json => ({
    type: 'repository',
    full_name: `${r.workspace.slug}/${r.slug}`,
    links: repoLinks(r),
    name: r.name,
    uuid: r.uuid,
  });

  const repository = (r: Repo): Json => {
    const ws = r.workspace;
    const self = `${api}/repositories/${ws.slug}/${r.slug}`;
    return {
      type: 'repository',
      full_name: `${ws.slug}/${r.slug}`,
      links: {
        ...repoLinks(r),
        pullrequests: link(`${self}/pullrequests`),
        commits: link(`${self}/commits`),
        forks: link(`${self}/forks`),
        watchers: link(`${self}/watchers`),
        downloads: link(`${self}/downloads`),
        clone: [
          { name: 'https', href: `${siteUrl}/${ws.slug}/${r.slug}.git` },
          { name: 'ssh', href: `ssh://git@127.0.0.1/${ws.slug}/${r.slug}.git` },
        ],
        hooks: link(`${self}/hooks`),
      },
      name: r.name,
      slug: r.slug,
      description: r.description,
      scm: 'git',
      website: null,
      owner: {
        type: 'team',
        display_name: ws.name,
        links: {
          self: link(`${api}/workspaces/${ws.slug}`),
          avatar: link(`${siteUrl}/workspaces/${ws.slug}/avatar/`),
          html: link(`${siteUrl}/${ws.slug}/`),
        },
        uuid: ws.uuid,
        username: ws.slug,
      },
      workspace: workspace(ws),
      is_private: true,
      project: {
        type: 'project',
        key: ws.projectKey,
        uuid: ws.projectUuid,
        name: `${ws.name} Platform`,
        links: {
          html: link(`${siteUrl}/${ws.slug}/workspace/projects/${ws.projectKey}`),
          avatar: link(`${siteUrl}/${ws.slug}/projects/${ws.projectKey}/avatar`),
        },
      },
      fork_policy: 'no_public_forks',
      created_on: isoMicros(r.createdOn),
      updated_on: isoMicros(r.updatedOn),
      size: 1024 * (r.commits.length + 10),
      language: r.language,
      uuid: r.uuid,
      mainbranch: { type: 'branch', name: r.mainBranch },
      has_issues: false,
      has_wiki: false,
    };
  };

  const markup = (raw: string) => ({ raw, markup: 'markdown', html: `<p>${raw}</p>` });

  const pullRequest = (r: Repo, pr: PullRequest, expand: { participants: boolean; reviewers: boolean }): Json => {
    const self = `${api}/repositories/${r.workspace.slug}/${r.slug}/pullrequests/${pr.id}`;
    const closed = pr.state === 'MERGED' || pr.state === 'DECLINED' || pr.state === 'SUPERSEDED';
    const body: Json = {
      type: 'pullrequest',
      id: pr.id,
      title: pr.title,
      description: pr.description,
      rendered: { title: markup(pr.title), description: markup(pr.description) },
      summary: markup(pr.description),
      state: pr.state,
      author: user(pr.author),
      source: { branch: { name: pr.sourceBranch }, commit: { hash: pr.sourceHash }, repository: repoMini(r) },
      destination: { branch: { name: r.mainBranch }, commit: { hash: pr.destinationHash }, repository: repoMini(r) },
      comment_count: pr.commentCount,
      task_count: pr.taskCount,
      close_source_branch: true,
      reason: '',
      created_on: isoMicros(pr.createdOn),
      updated_on: isoMicros(pr.updatedOn),
      draft: pr.draft,
      links: {
        self: link(self),
        html: link(`${siteUrl}/${r.workspace.slug}/${r.slug}/pull-requests/${pr.id}`),
        commits: link(`${self}/commits`),
        approve: link(`${self}/approve`),
        diff: link(`${self}/diff`),
        diffstat: link(`${self}/diffstat`),
        comments: link(`${self}/comments`),
        activity: link(`${self}/activity`),
        merge: link(`${self}/merge`),
        decline: link(`${self}/decline`),
      },
    };
    // The real API sends `null` for these while a PR is open; the spec types them as objects, so
    // the simulator leaves them out instead (absent and null mean the same to a careful client).
    if (closed) body.closed_by = user(pr.author);
    if (pr.mergeHash && pr.state === 'MERGED') body.merge_commit = { hash: pr.mergeHash };
    if (expand.reviewers) body.reviewers = pr.reviewers.map(user);
    if (expand.participants) {
      body.participants = pr.reviewers.map((rv) => {
        const approved = pr.approvedBy.has(rv.uuid);
        return {
          type: 'participant',
          user: user(rv),
          role: 'REVIEWER',
          approved,
          ...(approved ? { state: 'approved', participated_on: isoMicros(pr.updatedOn) } : {}),
        };
      });
    }
    return body;
  };

  const commitLinks = (r: Repo, hash: string) => ({
    self: link(`${api}/repositories/${r.workspace.slug}/${r.slug}/commit/${hash}`),
    html: link(`${siteUrl}/${r.workspace.slug}/${r.slug}/commits/${hash}`),
  });

  const commit = (r: Repo, c: Commit): Json => ({
    type: 'commit',
    hash: c.hash,
    date: isoMicros(c.date),
    author: { type: 'author', raw: `${c.author.displayName} <${c.author.email}>`, user: user(c.author) },
    message: c.message,
    summary: markup(c.message.trim()),
    links: commitLinks(r, c.hash),
    parents: c.parent ? [{ type: 'commit', hash: c.parent, links: commitLinks(r, c.parent) }] : [],
    repository: repoMini(r),
  });

  const pipelineState = (p: Pipeline): Json => {
    if (p.state === 'PENDING') return { type: 'pipeline_state_pending', name: 'PENDING' };
    if (p.state === 'IN_PROGRESS') {
      return {
        type: 'pipeline_state_in_progress',
        name: 'IN_PROGRESS',
        stage: { type: 'pipeline_state_in_progress_running', name: 'RUNNING' },
      };
    }
    const result = p.result ?? 'SUCCESSFUL';
    return {
      type: 'pipeline_state_completed',
      name: 'COMPLETED',
      result: { type: `pipeline_state_completed_${result.toLowerCase()}`, name: result },
    };
  };

  const pipeline = (r: Repo, p: Pipeline): Json => ({
    type: 'pipeline',
    uuid: p.uuid,
    build_number: p.buildNumber,
    creator: user(p.creator),
    repository: repoMini(r),
    target: {
      type: 'pipeline_ref_target',
      ref_type: 'branch',
      ref_name: p.branch,
      selector: { type: 'branches', pattern: p.branch },
      commit: { type: 'commit', hash: p.commitHash, links: commitLinks(r, p.commitHash) },
    },
    trigger: p.trigger === 'PUSH' ? { type: 'pipeline_trigger_push', name: 'PUSH' } : { type: 'pipeline_trigger_manual', name: 'MANUAL' },
    state: pipelineState(p),
    created_on: isoMicros(p.createdOn),
    ...(p.completedOn !== undefined ? { completed_on: isoMicros(p.completedOn) } : {}),
    run_number: 1,
    build_seconds_used: p.buildSecondsUsed,
    variables: [],
  });

  return { user, fullUser, workspaceBase, workspace, repository, pullRequest, commit, pipeline };
}

// ---------------------------------------------------------------------------------------------
// OAuth 2.0

interface Grant {
  id: string;
  clientId: string;
  kind: 'authorization_code' | 'client_credentials';
  scopes: string[];
  createdAt: number;
  revoked: boolean;
  refreshCount: number;
}

interface AuthCode {
  clientId: string;
  redirectUri?: string;
  expiresAt: number;
  used: boolean;
}

interface AccessToken {
  grantId: string;
  expiresAt: number;
}

interface RefreshToken {
  grantId: string;
  issuedAt: number;
  /** Set when a refresh used this token; it stays usable for the grace period after. */
  rotatedAt?: number;
}

/** Provider-shaped failure; the error handler renders it as Bitbucket would. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly plainText = false,
  ) {
    super(message);
  }
}

type OAuthResult = { status: number; body: Json; headers?: Record<string, string> };

class OAuthServer {
  readonly consumers = new Map<string, BitbucketConsumer>();
  private readonly grants = new Map<string, Grant>();
  private readonly codes = new Map<string, AuthCode>();
  private readonly accessTokens = new Map<string, AccessToken>();
  private readonly refreshTokens = new Map<string, RefreshToken>();
  private denial?: string;
  private reuse = 0;
  ttlSeconds: number;

  constructor(
    private readonly secrets: SecretRegistry,
    private readonly clock: MonotonicClock,
    private readonly graceSeconds: number,
    private readonly scopeField: 'scope' | 'scopes',
    ttlSeconds: number,
  ) {
    this.ttlSeconds = ttlSeconds;
  }

  addConsumer(c: BitbucketConsumer): void {
    if (!c.clientId || !c.clientSecret) throw new SimInputError('clientId and clientSecret are required');
    this.consumers.set(c.clientId, { ...c, scopes: c.scopes ?? [...DEFAULT_BITBUCKET_CONSUMER.scopes] });
    this.secrets.add(c.clientSecret);
  }

  denyNext(description: string): void {
    this.denial = description;
  }

  clearDenial(): void {
    this.denial = undefined;
  }

  /** No human is in the loop, so the consent screen approves at once (unless a denial is queued). */
  authorize(query: URLSearchParams): { redirect: string } | { status: number; html: string } {
    const consumer = this.consumers.get(query.get('client_id') ?? '');
    if (!consumer) return { status: 400, html: errorPage('Invalid client_id', 'No OAuth consumer with this key exists.') };
    const requested = query.get('redirect_uri') ?? undefined;
    // A callback URL sent with the request "must extend the configured one" (provider-notes A1).
    if (requested && consumer.callbackUrl && !requested.startsWith(consumer.callbackUrl)) {
      return { status: 400, html: errorPage('Invalid redirect_uri', 'The redirect_uri does not match the consumer callback URL.') };
    }
    const target = requested ?? consumer.callbackUrl;
    if (!target) return { status: 400, html: errorPage('Missing callback URL', 'This consumer has no callback URL configured.') };
    let url: URL;
    try {
      url = new URL(target);
    } catch {
      return { status: 400, html: errorPage('Invalid redirect_uri', 'The redirect_uri is not a URL.') };
    }
    const params: [string, string][] = [];
    if (this.denial !== undefined) {
      params.push(['error', 'access_denied'], ['error_description', this.denial]);
      this.denial = undefined;
    } else if (query.get('response_type') !== 'code') {
      params.push(['error', 'unsupported_response_type'], ['error_description', 'Only response_type=code is supported.']);
    } else {
      const code = this.secrets.add(randomSecret(18));
      this.codes.set(code, {
        clientId: consumer.clientId,
        redirectUri: requested,
        expiresAt: this.clock.peek() + CODE_TTL_MS,
        used: false,
      });
      params.push(['code', code]);
    }
    // `state` is echoed as sent, repeats included.
    for (const s of query.getAll('state')) params.push(['state', s]);
    for (const [k, v] of params) url.searchParams.append(k, v);
    return { redirect: url.toString() };
  }

  token(request: FastifyRequest): OAuthResult {
    const contentType = String(request.headers['content-type'] ?? '');
    if (!contentType.startsWith('application/x-www-form-urlencoded') || !isRecord(request.body)) {
      return oauthError(400, 'invalid_request', 'The request body must be application/x-www-form-urlencoded.');
    }
    const form = request.body as Record<string, string>;
    const client = this.authenticateClient(request.headers.authorization, form);
    if ('status' in client) return client;
    switch (form.grant_type) {
      case 'authorization_code':
        return this.exchangeCode(client, form);
      case 'refresh_token':
        return this.refresh(client, form.refresh_token);
      case 'client_credentials':
        // Since 2026-05-04 this grant gets no refresh token (provider-notes A1).
        return this.issue(this.newGrant(client, 'client_credentials'), 'client_credentials', false);
      case undefined:
        return oauthError(400, 'invalid_request', 'Missing grant_type parameter.');
      default:
        return oauthError(400, 'unsupported_grant_type', `Unsupported grant type: ${form.grant_type}`);
    }
  }

  private authenticateClient(header: string | undefined, form: Record<string, string>): BitbucketConsumer | OAuthResult {
    let id = form.client_id;
    let secret = form.client_secret;
    if (header && /^basic /i.test(header)) {
      const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon > 0) {
        id = decoded.slice(0, colon);
        secret = decoded.slice(colon + 1);
      }
    }
    const consumer = id ? this.consumers.get(id) : undefined;
    if (!consumer || secret === undefined || !sameSecret(consumer.clientSecret, secret)) {
      return {
        ...oauthError(401, 'invalid_client', 'Invalid client_id or client_secret.'),
        headers: { 'www-authenticate': 'Basic realm="Bitbucket.org HTTP"' },
      };
    }
    return consumer;
  }

  private exchangeCode(client: BitbucketConsumer, form: Record<string, string>): OAuthResult {
    const code = form.code ? this.codes.get(form.code) : undefined;
    const now = this.clock.peek();
    if (!code || code.used || code.expiresAt <= now || code.clientId !== client.clientId) {
      if (code && code.clientId === client.clientId) code.used = true;
      return oauthError(400, 'invalid_grant', 'The specified code is not valid.');
    }
    if (form.redirect_uri && code.redirectUri && form.redirect_uri !== code.redirectUri) {
      return oauthError(400, 'invalid_grant', 'The redirect_uri does not match the one used to authorize.');
    }
    code.used = true;
    return this.issue(this.newGrant(client, 'authorization_code'), 'authorization_code', true);
  }

  private refresh(client: BitbucketConsumer, presented: string | undefined): OAuthResult {
    const invalid = () => ({ status: 400, body: { error_description: 'Invalid refresh_token', error: 'invalid_request' } });
    const token = presented ? this.refreshTokens.get(presented) : undefined;
    if (!token) return invalid();
    const grant = this.grants.get(token.grantId);
    if (!grant || grant.revoked || grant.clientId !== client.clientId) return invalid();
    const now = this.clock.peek();
    if (token.rotatedAt !== undefined) {
      // A rotated-out token coming back means two refreshes raced (or a stale copy was used):
      // exactly what Conduit's serialized refresh must never do, so count it either way.
      this.reuse += 1;
      if (now > token.rotatedAt + this.graceSeconds * 1000) return invalid();
    } else if (now > token.issuedAt + REFRESH_TOKEN_IDLE_MS) {
      return invalid();
    }
    token.rotatedAt ??= now;
    grant.refreshCount += 1;
    return this.issue(grant, 'refresh_token', true);
  }

  private newGrant(client: BitbucketConsumer, kind: Grant['kind']): Grant {
    const grant: Grant = {
      id: `grant-${this.grants.size + 1}`,
      clientId: client.clientId,
      kind,
      scopes: [...(client.scopes ?? [])],
      createdAt: this.clock.peek(),
      revoked: false,
      refreshCount: 0,
    };
    this.grants.set(grant.id, grant);
    return grant;
  }

  private issue(grant: Grant, grantType: string, withRefresh: boolean): OAuthResult {
    const now = this.clock.peek();
    const accessToken = this.secrets.add(randomSecret(96, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'));
    this.accessTokens.set(accessToken, { grantId: grant.id, expiresAt: now + this.ttlSeconds * 1000 });
    // Observed shape (terrakube-io/terrakube#47, provider-notes A1): `state` carries the grant type.
    const body: Json = {
      access_token: accessToken,
      [this.scopeField]: grant.scopes.join(' '),
      expires_in: this.ttlSeconds,
      token_type: 'bearer',
      state: grantType,
    };
    if (withRefresh) {
      const refreshToken = this.secrets.add(randomSecret(24));
      this.refreshTokens.set(refreshToken, { grantId: grant.id, issuedAt: now });
      body.refresh_token = refreshToken;
    }
    return { status: 200, body };
  }

  /** Resolves the bearer token of an API request to its grant, or throws the provider's 401. */
  authenticate(authorization: string | undefined, query: URLSearchParams): Grant {
    // Since 2026-05-04 tokens are accepted only in the Authorization header (provider-notes A1).
    if (query.has('access_token')) throw new ApiError(401, MSG_INVALID);
    if (!authorization) throw new ApiError(401, 'Authentication required. Send the access token as a Bearer token.');
    if (/^basic /i.test(authorization)) {
      // Username + password style credentials are not simulated; Bitbucket answers them in plain text.
      throw new ApiError(401, 'Login failed due to incorrect login credentials or method.', true);
    }
    // The scheme name is case-insensitive (RFC 7235), the token is not.
    const match = /^bearer (\S+)$/i.exec(authorization);
    const token = match?.[1] ? this.accessTokens.get(match[1]) : undefined;
    const grant = token && this.grants.get(token.grantId);
    if (!token || !grant || grant.revoked) throw new ApiError(401, MSG_INVALID);
    if (token.expiresAt <= this.clock.peek()) throw new ApiError(401, MSG_EXPIRED);
    return grant;
  }

  expireAccessTokens(): void {
    const past = this.clock.peek() - 1;
    for (const t of this.accessTokens.values()) t.expiresAt = Math.min(t.expiresAt, past);
  }

  revokeAll(): void {
    for (const g of this.grants.values()) g.revoked = true;
  }

  refreshCount(grantId?: string): number {
    if (grantId !== undefined) {
      const grant = this.grants.get(grantId);
      if (!grant) throw new SimNotFoundError(`no grant ${grantId}`);
      return grant.refreshCount;
    }
    return [...this.grants.values()].reduce((sum, g) => sum + g.refreshCount, 0);
  }

  reuseCount(): number {
    return this.reuse;
  }

  grantList(): BitbucketGrantInfo[] {
    return [...this.grants.values()].map((g) => ({ ...g, scopes: [...g.scopes] }));
  }
}

function oauthError(status: number, error: string, description: string): OAuthResult {
  return { status, body: { error, error_description: description } };
}

function sameSecret(expected: string, actual: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(actual);
  return a.length === b.length && timingSafeEqual(a, b);
}

function errorPage(title: string, detail: string): string {
  return `<!DOCTYPE html><html><head><title>${title} — Bitbucket</title></head><body><h1>${title}</h1><p>${detail}</p></body></html>`;
}

/** `pullrequest` implies `repository`; `x:write`/`x:admin` imply `x` (BB-spec securityDefinitions). */
function hasScope(granted: string[], required: string): boolean {
  const implied = new Set(granted.flatMap((s) => [s, s.split(':')[0] ?? s, ...(s.startsWith('pullrequest') ? ['repository'] : [])]));
  return implied.has(required);
}

// ---------------------------------------------------------------------------------------------
// Pagination

interface PageOptions {
  maxPagelen: number;
  /** Absolute URL prefix for `next` / `previous` links. */
  selfUrl: string;
  query: URLSearchParams;
}

function intParam(query: URLSearchParams, name: string, fallback: number): number {
  const raw = query.get(name);
  if (raw === null) return fallback;
  if (!/^\d+$/.test(raw)) throw new ApiError(400, `Invalid ${name}: expected a positive integer`);
  return Number(raw);
}

/**
 * List-based pagination: `{size, page, pagelen, next?, previous?, values}`. `pagelen` is clamped
 * to the endpoint's maximum (pull requests: 50, most others: 100) rather than rejected.
 */
function pageBased<T>(items: T[], opts: PageOptions): Json {
  const pagelen = Math.min(Math.max(intParam(opts.query, 'pagelen', 10), 1), opts.maxPagelen);
  const page = intParam(opts.query, 'page', 1);
  if (page < 1) throw new ApiError(400, 'Invalid page');
  const values = items.slice((page - 1) * pagelen, page * pagelen);
  const link = (n: number) => {
    const q = new URLSearchParams(opts.query);
    q.set('page', String(n));
    return `${opts.selfUrl}?${encodeQuery(q)}`;
  };
  const body: Json = { pagelen, size: items.length, values, page };
  if (page * pagelen < items.length) body.next = link(page + 1);
  if (page > 1) body.previous = link(page - 1);
  return body;
}

// ---------------------------------------------------------------------------------------------
// Server

type Params = Record<string, string>;
interface ApiContext {
  query: URLSearchParams;
  params: Params;
  grant: Grant;
  selfUrl: string;
}

export async function startBitbucketSimulator(opts: BitbucketSimulatorOptions = {}): Promise<BitbucketSimulator> {
  const seed = opts.seed ?? {};
  const anchor = parseAnchor(seed.anchor);
  const clock = new MonotonicClock(anchor);
  const world = new BitbucketWorld(seededRandom(seed.seed ?? 1), clock, seed, anchor);
  const secrets = new SecretRegistry();
  const log = new RequestLog();
  const faults = new FaultPlan(API_BASE);
  const hourly = new RollingWindow(3600 * 1000);
  let perHour: number | undefined;
  const oauth = new OAuthServer(
    secrets,
    clock,
    opts.refreshTokenGraceSeconds ?? 0,
    opts.scopeField ?? 'scope',
    opts.accessTokenTtlSeconds ?? 7200,
  );
  for (const c of opts.consumers ?? [DEFAULT_BITBUCKET_CONSUMER]) oauth.addConsumer(c);

  const app = createSimApp();
  let siteUrl = '';
  let render = renderers('');

  installTrafficHooks(app, {
    log,
    faults,
    isApiPath: (path) => path.startsWith(`${API_BASE}/`),
    sendFault: (reply, status) => sendFault(reply, status),
  });

  app.setErrorHandler((err, request, reply) => {
    if (err instanceof ApiError) return sendApiError(reply, err);
    if (err instanceof QueryError) return sendApiError(reply, new ApiError(400, `Invalid query: ${err.message}`));
    const status = (err as { statusCode?: number }).statusCode ?? 500;
    if (splitUrl(request.url).path.startsWith(OAUTH_BASE)) {
      return reply.code(400).send(oauthError(400, 'invalid_request', 'Malformed request.').body);
    }
    return sendApiError(
      reply,
      new ApiError(status >= 400 && status < 500 ? status : 500, status < 500 ? 'Bad request' : 'Internal Server Error'),
    );
  });

  app.setNotFoundHandler((request, reply) => {
    if (splitUrl(request.url).path.startsWith(`${API_BASE}/`)) return sendApiError(reply, new ApiError(404, 'Resource not found'));
    return reply.code(404).type('text/html').send(errorPage('Page not found', 'The page you were looking for does not exist.'));
  });

  // --- OAuth
  app.get(`${OAUTH_BASE}/authorize`, async (request, reply) => {
    const result = oauth.authorize(queryParams(request.url));
    if ('redirect' in result) return reply.redirect(result.redirect, 302);
    return reply.code(result.status).type('text/html; charset=utf-8').send(result.html);
  });
  app.post(`${OAUTH_BASE}/access_token`, async (request, reply) => {
    const result = oauth.token(request);
    for (const [k, v] of Object.entries(result.headers ?? {})) reply.header(k, v);
    return reply.code(result.status).header('cache-control', 'no-store').send(result.body);
  });

  // --- API
  const route = (path: string, scope: string, handler: (ctx: ApiContext) => Json) => {
    app.get(`${API_BASE}${path}`, async (request, reply) => {
      const query = queryParams(request.url);
      const grant = oauth.authenticate(request.headers.authorization, query);
      if (perHour !== undefined && !hourly.tryHit(grant.id, perHour, Date.now())) return sendFault(reply, 429);
      if (!hasScope(grant.scopes, scope)) {
        // The real body also carries `detail: {required, granted}` as an object, which the spec
        // types as a string; only the message is simulated so responses stay spec-valid.
        throw new ApiError(403, 'Your credentials lack one or more required privilege scopes.');
      }
      const selfUrl = siteUrl + splitUrl(request.url).path;
      return reply.send(handler({ query, params: request.params as Params, grant, selfUrl }));
    });
  };

  const workspaceOr404 = (id: string | undefined) => {
    const ws = id === undefined ? undefined : world.findWorkspace(id);
    if (!ws) throw new ApiError(404, `No workspace with identifier '${id ?? ''}'.`);
    return ws;
  };
  const repoOrError = (params: Params) => {
    const ws = workspaceOr404(params.workspace);
    const repo = world.findRepo(ws, params.repo ?? '');
    if (!repo || repo.access === 'not_found') throw new ApiError(404, `Repository ${ws.slug}/${params.repo ?? ''} not found`);
    if (repo.access === 'forbidden') throw new ApiError(403, 'Forbidden');
    return repo;
  };
  /** Applies `q` and `sort` to rendered items, so field names are exactly the API's. */
  const filterAndSort = (items: Json[], query: URLSearchParams, fields: string[], defaultSort?: string) => {
    const allow = (f: string) => fields.includes(f.split('.')[0] ?? f);
    const q = query.get('q');
    let out = q ? items.filter(compileFilter(q, allow)) : items;
    const sort = query.get('sort') ?? defaultSort;
    if (sort) out = sortItems(out, sort, allow);
    return out;
  };

  route('/user', 'account', () => render.fullUser(world.me));

  route('/user/workspaces', 'account', ({ query, selfUrl }) => {
    const admin = query.get('administrator');
    let items: Json[] = world.workspaces
      .filter((ws) => admin === null || String(ws.adminUuids.has(world.me.uuid)) === admin)
      .map((ws) => ({ type: 'workspace_access', administrator: ws.adminUuids.has(world.me.uuid), workspace: render.workspaceBase(ws) }));
    // The only sort this endpoint supports is the workspace slug (BB-spec parameter description).
    const sort = query.get('sort');
    if (sort !== null && sort !== 'slug' && sort !== '-slug') throw new ApiError(400, `Invalid sort: ${sort}`);
    const q = new URLSearchParams(query);
    if (sort) q.set('sort', sort.replace('slug', 'workspace.slug'));
    items = filterAndSort(items, q, ['workspace', 'administrator']);
    return pageBased(items, { maxPagelen: 100, selfUrl, query });
  });

  route('/workspaces/:workspace/members', 'account', ({ params, query, selfUrl }) => {
    const ws = workspaceOr404(params.workspace);
    // `q=user.email IN (…)` filters on e-mail addresses, which only appear in the response when
    // asked for with `fields=+values.user.email` (BB-spec operation description).
    const showEmail = (query.get('fields') ?? '').includes('values.user.email');
    const items = ws.members.map((m) => ({
      type: 'workspace_membership',
      user: { ...render.user(m), email: m.email },
      workspace: render.workspace(ws),
      links: { self: { href: `${siteUrl}${API_BASE}/workspaces/${ws.slug}/members/${encodeURIComponent(m.uuid)}` } },
    }));
    const values = filterAndSort(items, query, ['user']).map((item) => {
      if (showEmail || !isRecord(item.user)) return item;
      const { email: _email, ...user } = item.user;
      return { ...item, user };
    });
    return pageBased(values, { maxPagelen: 100, selfUrl, query });
  });

  const REPO_FIELDS = [
    'name',
    'slug',
    'full_name',
    'uuid',
    'created_on',
    'updated_on',
    'language',
    'is_private',
    'description',
    'project',
    'size',
  ];
  route('/repositories/:workspace', 'repository', ({ params, query, selfUrl }) => {
    const ws = workspaceOr404(params.workspace);
    const items = ws.repos.filter((r) => r.access !== 'not_found').map(render.repository);
    return pageBased(filterAndSort(items, query, REPO_FIELDS), { maxPagelen: 100, selfUrl, query });
  });

  route('/repositories/:workspace/:repo', 'repository', ({ params }) => render.repository(repoOrError(params)));

  const PR_FIELDS = [
    'id',
    'title',
    'description',
    'state',
    'author',
    'source',
    'destination',
    'created_on',
    'updated_on',
    'comment_count',
    'task_count',
    'draft',
    'reason',
    'closed_by',
  ];
  route('/repositories/:workspace/:repo/pullrequests', 'pullrequest', ({ params, query, selfUrl }) => {
    const repo = repoOrError(params);
    const states = query.getAll('state');
    const bad = states.find((s) => !PR_STATES.includes(s as PullRequestState));
    if (bad) throw new ApiError(400, `Invalid state: ${bad}`);
    // Default is OPEN only; `state` may be repeated (BB-spec operation description).
    const wanted = new Set(states.length ? states : ['OPEN']);
    // `participants` and `reviewers` are only on the single-PR resource unless requested through
    // partial responses (`fields=+values.participants`).
    const fields = query.get('fields') ?? '';
    const expand = { participants: fields.includes('participants'), reviewers: fields.includes('reviewers') };
    const items = repo.pullRequests.filter((pr) => wanted.has(pr.state)).map((pr) => render.pullRequest(repo, pr, expand));
    return pageBased(filterAndSort(items, query, PR_FIELDS, '-id'), { maxPagelen: 50, selfUrl, query });
  });

  route('/repositories/:workspace/:repo/commits', 'repository', ({ params, query, selfUrl }) => {
    const repo = repoOrError(params);
    const newestFirst = [...repo.commits].reverse();
    // Iterator pagination (BB-spec narrative): `next` carries an opaque token, here the hash the
    // next page starts at, so commits pushed while a client pages do not shift the pages.
    const token = query.get('page');
    const start = token === null ? 0 : newestFirst.findIndex((c) => c.hash === token);
    if (start < 0) throw new ApiError(404, 'Invalid page');
    const pagelen = Math.min(Math.max(intParam(query, 'pagelen', 10), 1), 100);
    const slice = newestFirst.slice(start, start + pagelen);
    const body: Json = { values: slice.map((c) => render.commit(repo, c)), pagelen };
    const following = newestFirst[start + pagelen];
    if (following) {
      const q = new URLSearchParams(query);
      q.set('page', following.hash);
      body.next = `${selfUrl}?${encodeQuery(q)}`;
    }
    return body;
  });

  route('/repositories/:workspace/:repo/pipelines', 'pipeline', ({ params, query, selfUrl }) => {
    const repo = repoOrError(params);
    // Pipelines take their own filter parameters instead of `q` (BB-spec operation parameters).
    const branch = query.get('target.branch');
    const trigger = query.get('trigger_type');
    const status = query.get('status');
    const statusMatches = (p: Pipeline) => {
      const map: Record<string, (p: Pipeline) => boolean> = {
        PENDING: (x) => x.state === 'PENDING',
        BUILDING: (x) => x.state === 'IN_PROGRESS',
        PASSED: (x) => x.result === 'SUCCESSFUL',
        FAILED: (x) => x.result === 'FAILED',
        ERROR: (x) => x.result === 'ERROR',
        STOPPED: (x) => x.result === 'STOPPED',
      };
      return !status || (map[status]?.(p) ?? false);
    };
    let pipelines = repo.pipelines.filter(
      (p) => (!branch || p.branch === branch) && (!trigger || p.trigger === trigger) && statusMatches(p),
    );
    const sort = query.get('sort') ?? 'created_on';
    const sortField = sort.replace(/^-/, '');
    if (!['created_on', 'run_creation_date', 'creator.uuid'].includes(sortField)) throw new ApiError(400, `Invalid sort: ${sort}`);
    // Oldest first unless asked otherwise: clients that want the latest must send sort=-created_on.
    pipelines = [...pipelines].sort((a, b) =>
      sortField === 'creator.uuid'
        ? a.creator.uuid.localeCompare(b.creator.uuid) || a.buildNumber - b.buildNumber
        : a.createdOn - b.createdOn || a.buildNumber - b.buildNumber,
    );
    if (sort.startsWith('-')) pipelines.reverse();
    return pageBased(
      pipelines.map((p) => render.pipeline(repo, p)),
      { maxPagelen: 100, selfUrl, query },
    );
  });

  // --- Controls
  const control: BitbucketControl = {
    requests: () => log.list(),
    clearRequests: () => log.clear(),
    injectFaults: (fault) => faults.inject(fault),
    setLatency: (ms) => faults.setLatency(ms),
    reset: () => {
      faults.reset();
      perHour = undefined;
      hourly.clear();
      oauth.clearDenial();
    },
    issuedSecrets: () => secrets.list(),
    denyNextAuthorization: (description = 'The user denied access to this application.') => oauth.denyNext(description),
    expireAccessTokens: () => oauth.expireAccessTokens(),
    revokeAll: () => oauth.revokeAll(),
    setAccessTokenTtl: (seconds) => {
      if (!Number.isInteger(seconds) || seconds < 1) throw new SimInputError('ttl must be a positive integer');
      oauth.ttlSeconds = seconds;
    },
    addConsumer: (clientId, clientSecret, extra = {}) => oauth.addConsumer({ clientId, clientSecret, ...extra }),
    refreshCount: (grantId) => oauth.refreshCount(grantId),
    refreshTokenReuseCount: () => oauth.reuseCount(),
    grants: () => oauth.grantList(),
    setRateLimit: (limit) => {
      if (limit !== null && !(Number.isInteger(limit.perHour) && limit.perHour >= 0))
        throw new SimInputError('perHour must be an integer >= 0');
      perHour = limit?.perHour;
      hourly.clear();
    },
    touchPullRequests: (ws, repo, ids) => world.touchPullRequests(ws, repo, ids),
    setPullRequestState: (ws, repo, id, state) => world.setPullRequestState(ws, repo, id, state),
    addPullRequests: (ws, repo, count, o) => world.addPullRequests(ws, repo, count, o?.state),
    addCommits: (ws, repo, count) => world.addCommits(ws, repo, count),
    addPipelines: (ws, repo, count, o) => world.addPipelines(ws, repo, count, o),
    finishRunningPipelines: (ws, repo, result) => world.finishRunningPipelines(ws, repo, result),
    setRepositoryAccess: (ws, repo, access) => world.setRepositoryAccess(ws, repo, access),
    dataset: () => world.dataset(),
  };
  registerSimRoutes(app, bitbucketSimRoutes(control));

  siteUrl = await listen(app, opts.host ?? '127.0.0.1', opts.port ?? 0);
  render = renderers(siteUrl);
  return {
    url: siteUrl,
    apiUrl: `${siteUrl}${API_BASE}`,
    oauthUrl: `${siteUrl}${OAUTH_BASE}`,
    control,
    close: () => app.close(),
  };
}

function sendApiError(reply: FastifyReply, err: ApiError): FastifyReply {
  if (err.plainText) return reply.code(err.status).type('text/plain; charset=utf-8').send(err.message);
  return reply.code(err.status).send({ type: 'error', error: { message: err.message } });
}

/** 429 is plain text with no Retry-After (provider-notes A3); 5xx get the JSON error envelope. */
function sendFault(reply: FastifyReply, status: FaultStatus): FastifyReply {
  if (status === 429) return reply.code(429).type('text/plain; charset=utf-8').send('Rate limit for this resource has been exceeded');
  const messages: Record<number, string> = { 500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable' };
  return reply.code(status).send({ type: 'error', error: { message: messages[status] ?? 'Error' } });
}

const accessValues: readonly RepositoryAccess[] = ['ok', 'forbidden', 'not_found'];

function bitbucketSimRoutes(c: BitbucketControl): SimRoute[] {
  const ids = (body: Record<string, unknown>) => {
    const v = body.ids;
    if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x))) throw new SimInputError('body.ids must be an array of integers');
    return v as number[];
  };
  return [
    { method: 'GET', url: '/requests', handler: () => c.requests() },
    { method: 'POST', url: '/requests/clear', handler: () => c.clearRequests() },
    { method: 'POST', url: '/faults', handler: (b) => c.injectFaults(faultSpecFrom(b)) },
    { method: 'POST', url: '/latency', handler: (b) => c.setLatency(num(b, 'ms')) },
    { method: 'POST', url: '/reset', handler: () => c.reset() },
    { method: 'GET', url: '/secrets', handler: () => c.issuedSecrets() },
    { method: 'POST', url: '/deny-next-authorization', handler: (b) => c.denyNextAuthorization(optStr(b, 'description')) },
    { method: 'POST', url: '/expire-access-tokens', handler: () => c.expireAccessTokens() },
    { method: 'POST', url: '/revoke-all', handler: () => c.revokeAll() },
    { method: 'POST', url: '/access-token-ttl', handler: (b) => c.setAccessTokenTtl(num(b, 'seconds')) },
    {
      method: 'POST',
      url: '/consumers',
      handler: (b) => {
        const scopes = Array.isArray(b.scopes) ? b.scopes.map(String) : undefined;
        c.addConsumer(str(b, 'clientId'), str(b, 'clientSecret'), { callbackUrl: optStr(b, 'callbackUrl'), scopes });
      },
    },
    { method: 'GET', url: '/refresh-count', handler: () => ({ count: c.refreshCount() }) },
    { method: 'GET', url: '/refresh-token-reuse-count', handler: () => ({ count: c.refreshTokenReuseCount() }) },
    { method: 'GET', url: '/grants', handler: () => c.grants() },
    {
      method: 'POST',
      url: '/rate-limit',
      handler: (b) => c.setRateLimit(b.perHour === null || b.perHour === undefined ? null : { perHour: num(b, 'perHour') }),
    },
    { method: 'GET', url: '/dataset', handler: () => c.dataset() },
    {
      method: 'POST',
      url: '/repositories/:workspace/:repo/touch-pull-requests',
      handler: (b, p) => c.touchPullRequests(p.workspace ?? '', p.repo ?? '', ids(b)),
    },
    {
      method: 'POST',
      url: '/repositories/:workspace/:repo/pull-requests',
      handler: (b, p) => ({
        ids: c.addPullRequests(p.workspace ?? '', p.repo ?? '', num(b, 'count'), {
          state: optStr(b, 'state') as PullRequestState | undefined,
        }),
      }),
    },
    {
      method: 'POST',
      url: '/repositories/:workspace/:repo/pull-requests/:id/state',
      handler: (b, p) => c.setPullRequestState(p.workspace ?? '', p.repo ?? '', Number(p.id), str(b, 'state') as PullRequestState),
    },
    {
      method: 'POST',
      url: '/repositories/:workspace/:repo/commits',
      handler: (b, p) => ({ hashes: c.addCommits(p.workspace ?? '', p.repo ?? '', num(b, 'count')) }),
    },
    {
      method: 'POST',
      url: '/repositories/:workspace/:repo/pipelines',
      handler: (b, p) => ({
        buildNumbers: c.addPipelines(p.workspace ?? '', p.repo ?? '', num(b, 'count'), {
          state: optStr(b, 'state') as PipelineStateName | undefined,
          result: optStr(b, 'result') as PipelineResult | undefined,
          branch: optStr(b, 'branch'),
        }),
      }),
    },
    {
      method: 'POST',
      url: '/repositories/:workspace/:repo/finish-running-pipelines',
      handler: (b, p) => ({
        finished: c.finishRunningPipelines(p.workspace ?? '', p.repo ?? '', optStr(b, 'result') as PipelineResult | undefined),
      }),
    },
    {
      method: 'POST',
      url: '/repositories/:workspace/:repo/access',
      handler: (b, p) => {
        const access = str(b, 'access') as RepositoryAccess;
        if (!accessValues.includes(access)) throw new SimInputError('access must be ok, forbidden or not_found');
        c.setRepositoryAccess(p.workspace ?? '', p.repo ?? '', access);
      },
    },
  ];
}
