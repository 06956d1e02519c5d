import { type MonotonicClock, type Rand, SimInputError, SimNotFoundError, hex, intBetween, pick, uuid } from '../shared';
import { PIPELINE_RESULTS, PR_STATES } from './constants';
import type { BitbucketDataset, BitbucketSeed, PipelineResult, PipelineStateName, PullRequestState, RepositoryAccess } from './types';

// ---------------------------------------------------------------------------------------------
// Data model and seed

export interface User {
  uuid: string;
  accountId: string;
  nickname: string;
  displayName: string;
  email: string;
  createdOn: number;
}

export interface Workspace {
  uuid: string;
  slug: string;
  name: string;
  createdOn: number;
  members: User[];
  /** Members removed from the workspace (`setMemberPresent`), kept so they can come back as themselves. */
  formerMembers: User[];
  adminUuids: Set<string>;
  repos: Repo[];
  projectUuid: string;
  projectKey: string;
}

export interface Commit {
  hash: string;
  date: number;
  author: User;
  message: string;
  parent?: string;
}

export interface PullRequest {
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

export interface Pipeline {
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

export interface Repo {
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

export class BitbucketWorld {
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
        formerMembers: [],
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

  /** Removes a member from a workspace (their seat is freed), or brings a removed one back. */
  setMemberPresent(workspace: string, userUuid: string, present: boolean): void {
    const ws = this.findWorkspace(workspace);
    if (!ws) throw new SimNotFoundError(`no workspace ${workspace}`);
    const [from, to] = present ? [ws.formerMembers, ws.members] : [ws.members, ws.formerMembers];
    const i = from.findIndex((u) => u.uuid === userUuid);
    if (i < 0) {
      if (to.some((u) => u.uuid === userUuid)) return;
      throw new SimNotFoundError(`no member ${userUuid} in ${workspace}`);
    }
    to.push(...from.splice(i, 1));
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
