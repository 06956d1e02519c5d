import type { FastifyReply } from 'fastify';
import {
  FaultPlan,
  type CommonControl,
  type FaultStatus,
  FixedWindow,
  MonotonicClock,
  type Rand,
  RequestLog,
  SecretRegistry,
  SimInputError,
  SimNotFoundError,
  type SimRoute,
  createSimApp,
  commonControl,
  commonSimRoutes,
  hex,
  installTrafficHooks,
  intBetween,
  isoMicrosZ,
  isoSeconds,
  listen,
  num,
  optNum,
  optStr,
  parseAnchor,
  pick,
  queryParams,
  randomSecret,
  registerSimRoutes,
  seededRandom,
  str,
  uuid,
} from './shared';

/**
 * Bitrise API v0.1 simulator: personal and workspace access tokens sent raw in `Authorization`,
 * the endpoints Conduit syncs under `/v0.1`, `next`-anchor paging, and the real API's habit of
 * sending `null` for unset string fields (see shared/provider-notes.md section B).
 */

// ---------------------------------------------------------------------------------------------
// Public types

export interface BitriseSeed {
  organizations?: number;
  appsPerOrganization?: number;
  buildsPerApp?: number;
  pipelinesPerApp?: number;
  /** PRNG seed for names, slugs and hashes. */
  seed?: number;
  /** Instant the seeded history ends at; defaults to start-up time. */
  anchor?: string;
  /** Tokens accepted from the start, for setups that must know a token before the simulator runs. */
  tokens?: string[];
}

export interface BitriseSimulatorOptions {
  port?: number;
  host?: string;
  seed?: BitriseSeed;
}

/** 0 not finished, 1 success, 2 failed, 3 aborted with failure, 4 aborted with success (BR-spec). */
export type BuildStatus = 0 | 1 | 2 | 3 | 4;
export type AppAccess = 'ok' | 'forbidden' | 'not_found';

export interface BitriseAppCounts {
  slug: string;
  title: string;
  access: AppAccess;
  builds: { total: number; running: number; byStatus: Record<BuildStatus, number> };
  pipelines: { total: number; running: number };
}

export interface BitriseDataset {
  user: { slug: string; username: string; email: string };
  organizations: { slug: string; name: string; apps: BitriseAppCounts[] }[];
}

/** How many records a complete sync of this dataset stores per resource (readable apps' builds and pipelines). */
export function completeSyncCounts(ds: BitriseDataset) {
  const apps = ds.organizations.flatMap((o) => o.apps);
  const ok = apps.filter((a) => a.access === 'ok');
  return {
    organizations: ds.organizations.length,
    apps: apps.length,
    builds: ok.reduce((n, a) => n + a.builds.total, 0),
    pipelines: ok.reduce((n, a) => n + a.pipelines.total, 0),
  };
}

export interface BitriseControl extends CommonControl {

  /** A personal access token by default; `kind: 'workspace'` gives a `bitwat_` workspace token. */
  createToken(opts?: { label?: string; kind?: 'personal' | 'workspace' }): string;
  revokeToken(token: string): void;
  /** Per-token budget over fixed one-minute windows; `null` removes it. */
  setRateLimit(limit: { perMinute: number } | null): void;

  addBuilds(app: string, count: number, opts?: { status?: BuildStatus; branch?: string; workflow?: string }): string[];
  /** Finishes every running build (of one app, or of all apps); returns how many. */
  finishRunningBuilds(app?: string, status?: Exclude<BuildStatus, 0>): number;
  addPipelines(app: string, count: number, opts?: { status?: BuildStatus; branch?: string }): string[];
  finishRunningPipelines(app?: string, status?: Exclude<BuildStatus, 0>): number;
  setAppAccess(app: string, access: AppAccess): void;
  dataset(): BitriseDataset;
}

export interface BitriseSimulator {
  url: string;
  apiUrl: string;
  control: BitriseControl;
  close(): Promise<void>;
}

const API_BASE = '/v0.1';
const MAX_LIMIT = 50;
const STATUS_TEXT: Record<BuildStatus, string> = { 0: 'in-progress', 1: 'success', 2: 'error', 3: 'aborted', 4: 'aborted' };
const PIPELINE_STATUS: Record<string, BuildStatus> = {
  running: 0,
  on_hold: 0,
  succeeded: 1,
  failed: 2,
  aborted: 3,
  succeeded_with_abort: 4,
};

// ---------------------------------------------------------------------------------------------
// Data model and seed

interface User {
  slug: string;
  username: string;
  email: string;
  dataId: number;
  createdAt: number;
}

interface Organization {
  slug: string;
  name: string;
  concurrency: number;
  owners: User[];
  apps: App[];
}

interface Build {
  slug: string;
  buildNumber: number;
  status: BuildStatus;
  triggeredAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  branch: string;
  workflow: string;
  triggeredBy: string;
  commitHash: string | null;
  commitMessage: string | null;
  tag: string | null;
  pullRequestId: number;
  machineTypeId: string;
  stack: string;
  creditCost: number;
  abortReason: string | null;
}

interface Pipeline {
  slug: string;
  buildNumber: number;
  status: BuildStatus;
  name: string;
  branch: string;
  commitHash: string | null;
  triggeredAt: number;
  startedAt: number;
  finishedAt: number | null;
  creditCost: number;
}

interface App {
  slug: string;
  title: string;
  projectType: string;
  provider: string;
  repoOwner: string;
  repoSlug: string;
  org: Organization;
  createdAt: number;
  access: AppAccess;
  /** Oldest first; the API serves newest first. */
  builds: Build[];
  pipelines: Pipeline[];
  buildNumber: number;
}

const ORG_NAMES = ['Acme Mobile', 'Globex Apps', 'Initech Labs', 'Umbrella Studio', 'Hooli XYZ'];
const APP_TITLES = ['ios-app', 'android-app', 'flutter-shop', 'react-native-wallet', 'watch-companion', 'tv-app'];
const PROJECT_TYPES: Record<string, string> = {
  ios: 'ios',
  android: 'android',
  flutter: 'flutter',
  react: 'react-native',
  watch: 'ios',
  tv: 'android',
};
const WORKFLOWS = ['primary', 'deploy', 'nightly', 'pr-check'];
const BRANCHES = ['main', 'develop', 'feature/login', 'release/2.4'];
const MESSAGES = ['Fix crash on launch', 'Bump dependencies', 'Add onboarding screen', 'Speed up CI cache'];
const MACHINES = ['g2.mac.medium', 'g2.linux.medium', 'g2.linux.x-large'];
const STACKS = ['osx-xcode-16.0.x', 'linux-docker-android-22.04'];
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

class BitriseWorld {
  readonly me: User;
  readonly organizations: Organization[] = [];

  constructor(
    private readonly rand: Rand,
    private readonly clock: MonotonicClock,
    seed: BitriseSeed,
    anchor: number,
  ) {
    this.me = {
      slug: hex(rand, 16),
      username: 'sim-user',
      email: 'sim-user@example.com',
      dataId: intBetween(rand, 10000, 99999),
      createdAt: anchor - 900 * 24 * HOUR,
    };
    const orgs = seed.organizations ?? 1;
    for (let o = 0; o < orgs; o += 1) {
      const base = ORG_NAMES[o % ORG_NAMES.length] ?? 'Org';
      const org: Organization = {
        slug: hex(rand, 16),
        name: o >= ORG_NAMES.length ? `${base} ${Math.floor(o / ORG_NAMES.length) + 1}` : base,
        concurrency: intBetween(rand, 1, 4),
        owners: [this.me],
        apps: [],
      };
      const apps = seed.appsPerOrganization ?? 2;
      for (let a = 0; a < apps; a += 1) org.apps.push(this.makeApp(org, a, seed, anchor));
      this.organizations.push(org);
    }
  }

  private makeApp(org: Organization, index: number, seed: BitriseSeed, anchor: number): App {
    const rand = this.rand;
    const base = APP_TITLES[index % APP_TITLES.length] ?? 'app';
    const title = index >= APP_TITLES.length ? `${base}-${Math.floor(index / APP_TITLES.length) + 1}` : base;
    const app: App = {
      slug: hex(rand, 16),
      title,
      projectType: PROJECT_TYPES[base.split('-')[0] ?? ''] ?? 'other',
      provider: pick(rand, ['bitbucket', 'github']),
      repoOwner: org.name.split(' ')[0]?.toLowerCase() ?? 'owner',
      repoSlug: title,
      org,
      createdAt: anchor - 200 * 24 * HOUR - index * HOUR,
      access: 'ok',
      builds: [],
      pipelines: [],
      buildNumber: intBetween(rand, 100, 900),
    };
    const builds = seed.buildsPerApp ?? 6;
    for (let b = 0; b < builds; b += 1) {
      const triggered = anchor - (builds - b) * 90 * MINUTE - intBetween(rand, 0, 40) * MINUTE;
      // The newest seeded build is still running, so there is something to finish.
      const running = builds >= 2 && b === builds - 1;
      const n = b + 1;
      const status: BuildStatus = running ? 0 : n % 6 === 0 ? 2 : n % 9 === 0 ? 3 : n % 11 === 0 ? 4 : 1;
      this.pushBuild(app, triggered, status);
    }
    const pipelines = seed.pipelinesPerApp ?? 2;
    for (let p = 0; p < pipelines; p += 1) {
      const triggered = anchor - (pipelines - p) * 4 * HOUR - intBetween(rand, 0, 40) * MINUTE;
      this.pushPipeline(app, triggered, pipelines >= 2 && p === pipelines - 1 ? 0 : 1);
    }
    return app;
  }

  pushBuild(app: App, triggeredAt: number, status: BuildStatus, opts: { branch?: string; workflow?: string } = {}): Build {
    const rand = this.rand;
    const fromPr = rand() < 0.3;
    const fromTag = !fromPr && rand() < 0.1;
    const hasCommit = rand() < 0.8;
    const duration = intBetween(rand, 60, 1200) * 1000;
    app.buildNumber += 1;
    const build: Build = {
      slug: uuid(rand),
      buildNumber: app.buildNumber,
      status,
      triggeredAt,
      startedAt: triggeredAt + intBetween(rand, 1, 30) * 1000,
      finishedAt: status === 0 ? null : triggeredAt + duration,
      branch: opts.branch ?? pick(rand, BRANCHES),
      workflow: opts.workflow ?? pick(rand, WORKFLOWS),
      triggeredBy: fromPr || fromTag || hasCommit ? 'webhook' : 'schedule',
      commitHash: hasCommit ? hex(rand, 40) : null,
      commitMessage: hasCommit && rand() < 0.7 ? pick(rand, MESSAGES) : null,
      tag: fromTag ? `v2.${intBetween(rand, 0, 9)}.${intBetween(rand, 0, 9)}` : null,
      pullRequestId: fromPr ? intBetween(rand, 1, 400) : 0,
      machineTypeId: pick(rand, MACHINES),
      stack: pick(rand, STACKS),
      creditCost: intBetween(rand, 1, 12),
      abortReason: status === 3 || status === 4 ? 'Aborted by user' : null,
    };
    app.builds.push(build);
    return build;
  }

  pushPipeline(app: App, triggeredAt: number, status: BuildStatus, branch?: string): Pipeline {
    const rand = this.rand;
    app.buildNumber += 1;
    const pipeline: Pipeline = {
      slug: uuid(rand),
      buildNumber: app.buildNumber,
      status,
      name: 'build-and-test-pipeline',
      branch: branch ?? pick(rand, BRANCHES),
      commitHash: rand() < 0.8 ? hex(rand, 40) : null,
      triggeredAt,
      startedAt: triggeredAt + intBetween(rand, 1, 30) * 1000,
      finishedAt: status === 0 ? null : triggeredAt + intBetween(rand, 300, 1800) * 1000,
      creditCost: intBetween(rand, 4, 30),
    };
    app.pipelines.push(pipeline);
    return pipeline;
  }

  allApps(): App[] {
    return this.organizations.flatMap((o) => o.apps);
  }

  findApp(slug: string): App | undefined {
    return this.allApps().find((a) => a.slug === slug);
  }

  appOrThrow(slug: string): App {
    const app = this.findApp(slug);
    if (!app) throw new SimNotFoundError(`no app ${slug}`);
    return app;
  }

  addBuilds(slug: string, count: number, opts: { status?: BuildStatus; branch?: string; workflow?: string } = {}): string[] {
    const app = this.appOrThrow(slug);
    const status = checkStatus(opts.status ?? 1);
    return positiveCount(count).map(() => this.pushBuild(app, this.clock.now(), status, opts).slug);
  }

  finishRunningBuilds(slug: string | undefined, status: Exclude<BuildStatus, 0> = 1): number {
    if (checkStatus(status) === 0) throw new SimInputError('a finished status must be 1-4');
    const apps = slug === undefined ? this.allApps() : [this.appOrThrow(slug)];
    const running = apps.flatMap((a) => a.builds.filter((b) => b.status === 0));
    for (const b of running) {
      b.status = status;
      b.finishedAt = this.clock.now();
      if (status === 3 || status === 4) b.abortReason = 'Aborted by user';
    }
    return running.length;
  }

  addPipelines(slug: string, count: number, opts: { status?: BuildStatus; branch?: string } = {}): string[] {
    const app = this.appOrThrow(slug);
    const status = checkStatus(opts.status ?? 1);
    return positiveCount(count).map(() => this.pushPipeline(app, this.clock.now(), status, opts.branch).slug);
  }

  finishRunningPipelines(slug: string | undefined, status: Exclude<BuildStatus, 0> = 1): number {
    if (checkStatus(status) === 0) throw new SimInputError('a finished status must be 1-4');
    const apps = slug === undefined ? this.allApps() : [this.appOrThrow(slug)];
    const running = apps.flatMap((a) => a.pipelines.filter((p) => p.status === 0));
    for (const p of running) {
      p.status = status;
      p.finishedAt = this.clock.now();
    }
    return running.length;
  }

  setAppAccess(slug: string, access: AppAccess): void {
    if (!['ok', 'forbidden', 'not_found'].includes(access)) throw new SimInputError(`unknown access ${access}`);
    this.appOrThrow(slug).access = access;
  }

  dataset(): BitriseDataset {
    return {
      user: { slug: this.me.slug, username: this.me.username, email: this.me.email },
      organizations: this.organizations.map((o) => ({
        slug: o.slug,
        name: o.name,
        apps: o.apps.map((a) => {
          const byStatus = { 0: 0, 1: 0, 2: 0, 3: 0, 4: 0 } as Record<BuildStatus, number>;
          for (const b of a.builds) byStatus[b.status] += 1;
          return {
            slug: a.slug,
            title: a.title,
            access: a.access,
            builds: { total: a.builds.length, running: byStatus[0], byStatus },
            pipelines: { total: a.pipelines.length, running: a.pipelines.filter((p) => p.status === 0).length },
          };
        }),
      })),
    };
  }
}

function checkStatus(status: number): BuildStatus {
  if (![0, 1, 2, 3, 4].includes(status)) throw new SimInputError('status must be 0-4');
  return status as BuildStatus;
}

function positiveCount(count: number): number[] {
  if (!Number.isInteger(count) || count < 1) throw new SimInputError('count must be a positive integer');
  return Array.from({ length: count }, (_, i) => i);
}

// ---------------------------------------------------------------------------------------------
// JSON renderers. Unset string fields are `null`, never omitted or "": the real API does this
// for fields its spec types as plain strings (provider-notes B; bitrise-io/bitrise-mcp
// devenv/test-responses). Non-string fields are never null here.

type Json = Record<string, unknown>;

function renderApp(a: App): Json {
  const host = a.provider === 'github' ? 'github.com' : 'bitbucket.org';
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

function renderBuild(a: App, b: Build): Json {
  const finished = b.status !== 0;
  const host = a.provider === 'github' ? 'github.com' : 'bitbucket.org';
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
function renderPipelineItem(item: { kind: 'pipeline'; p: Pipeline } | { kind: 'build'; b: Build }): Json {
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

// ---------------------------------------------------------------------------------------------
// Server

class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface TokenInfo {
  label: string;
  kind: 'personal' | 'workspace';
  revoked: boolean;
}

function intQuery(query: URLSearchParams, name: string): number | undefined {
  const raw = query.get(name);
  if (raw === null || raw === '') return undefined;
  if (!/^-?\d+$/.test(raw)) throw new ApiError(400, `Invalid ${name} parameter: must be an integer`);
  return Number(raw);
}

function limitOf(query: URLSearchParams, fallback: number): number {
  return Math.min(Math.max(intQuery(query, 'limit') ?? fallback, 1), MAX_LIMIT);
}

/** Anchor paging: `next` is the slug of the first item of the following page (BR-spec paging model). */
function anchorPage<T extends { slug: string }>(
  items: T[],
  query: URLSearchParams,
  fallbackLimit: number,
  render: (item: T) => Json,
): Json {
  const limit = limitOf(query, fallbackLimit);
  const next = query.get('next');
  const start = next ? items.findIndex((i) => i.slug === next) : 0;
  if (start < 0) throw new ApiError(400, 'Invalid next parameter');
  const page = items.slice(start, start + limit);
  const paging: Json = { total_item_count: items.length, page_item_limit: limit };
  const following = items[start + limit];
  if (following) paging.next = following.slug;
  return { data: page.map(render), paging };
}

export async function startBitriseSimulator(opts: BitriseSimulatorOptions = {}): Promise<BitriseSimulator> {
  const seed = opts.seed ?? {};
  const anchor = parseAnchor(seed.anchor);
  const clock = new MonotonicClock(anchor);
  const world = new BitriseWorld(seededRandom(seed.seed ?? 2), clock, seed, anchor);
  const secrets = new SecretRegistry();
  const log = new RequestLog();
  const faults = new FaultPlan(API_BASE);
  const minuteWindow = new FixedWindow(60_000);
  let perMinute: number | undefined;
  const tokens = new Map<string, TokenInfo>();
  for (const t of seed.tokens ?? [])
    tokens.set(secrets.add(t), { label: 'seeded', kind: t.startsWith('bitwat_') ? 'workspace' : 'personal', revoked: false });

  const app = createSimApp();
  installTrafficHooks(app, {
    log,
    faults,
    isApiPath: (path) => path.startsWith(`${API_BASE}/`),
    sendFault: (reply, status) => sendFault(reply, status),
  });
  app.setErrorHandler((err, _request, reply) => {
    if (err instanceof ApiError) return reply.code(err.status).send({ message: err.message });
    const status = (err as { statusCode?: number }).statusCode ?? 500;
    return reply
      .code(status >= 400 && status < 500 ? status : 500)
      .send({ message: status < 500 ? 'Bad Request' : 'Internal Server Error' });
  });
  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ message: 'Not Found' }));

  const route = (path: string, handler: (query: URLSearchParams, params: Record<string, string>) => Json) => {
    app.get(`${API_BASE}${path}`, async (request, reply) => {
      // The token goes in raw, with no scheme (provider-notes B1). `Bearer <token>` is treated as
      // a wrong token so a client that adds the prefix fails loudly here rather than in production.
      const presented = request.headers.authorization;
      const token = presented ? tokens.get(presented) : undefined;
      if (!presented || !token || token.revoked) return reply.code(401).send({ message: 'Unauthorized' });
      if (perMinute !== undefined) {
        const now = Date.now();
        const w = minuteWindow.hit(presented, perMinute, now);
        const reset = Math.ceil(w.resetAt / 1000);
        reply
          .header('x-ratelimit-limit', String(perMinute))
          .header('x-ratelimit-remaining', String(w.remaining))
          .header('x-ratelimit-reset', String(reset));
        if (!w.allowed) return sendRateLimited(reply, Math.max(1, Math.ceil((w.resetAt - now) / 1000)));
      }
      return reply.send(handler(queryParams(request.url), request.params as Record<string, string>));
    });
  };

  const visibleApps = () => world.allApps().filter((a) => a.access !== 'not_found');
  const appOrError = (slug: string | undefined) => {
    const found = slug === undefined ? undefined : world.findApp(slug);
    if (!found || found.access === 'not_found') throw new ApiError(404, 'Not Found');
    if (found.access === 'forbidden') throw new ApiError(403, 'Forbidden');
    return found;
  };
  const lastBuildAt = (a: App) => Math.max(0, ...a.builds.map((b) => b.triggeredAt));

  route('/me', () => ({
    data: {
      avatar_url: null,
      created_at: isoSeconds(world.me.createdAt),
      data_id: world.me.dataId,
      email: world.me.email,
      has_used_organization_trial: false,
      payment_processor: null,
      slug: world.me.slug,
      unconfirmed_email: null,
      username: world.me.username,
    },
  }));

  route('/organizations', () => ({
    data: world.organizations.map((o) => ({
      slug: o.slug,
      name: o.name,
      avatar_icon_url: null,
      concurrency_count: o.concurrency,
      owners: o.owners.map((u) => ({ slug: u.slug, username: u.username, email: u.email })),
    })),
  }));

  route('/apps', (query) => {
    const sortBy = query.get('sort_by') ?? 'last_build_at';
    if (sortBy !== 'last_build_at' && sortBy !== 'created_at') throw new ApiError(400, 'Invalid sort_by parameter');
    const title = query.get('title')?.toLowerCase();
    const projectType = query.get('project_type');
    const apps = visibleApps()
      .filter((a) => (!title || a.title.toLowerCase().includes(title)) && (!projectType || a.projectType === projectType))
      .sort(
        (a, b) => (sortBy === 'created_at' ? b.createdAt - a.createdAt : lastBuildAt(b) - lastBuildAt(a)) || a.slug.localeCompare(b.slug),
      );
    return anchorPage(apps, query, MAX_LIMIT, renderApp);
  });

  route('/apps/:app', (_query, params) => ({ data: renderApp(appOrError(params.app)) }));

  route('/apps/:app/builds', (query, params) => {
    const a = appOrError(params.app);
    const sortBy = query.get('sort_by') ?? 'created_at';
    if (sortBy !== 'created_at' && sortBy !== 'running_first') throw new ApiError(400, 'Invalid sort_by parameter');
    const status = intQuery(query, 'status');
    if (status !== undefined && (status < 0 || status > 4)) throw new ApiError(400, 'Invalid status parameter');
    // `after` and `before` are Unix timestamps in seconds (BR-spec); `after` is inclusive so a
    // client resuming from its newest build sees that build again and must de-duplicate.
    const after = intQuery(query, 'after');
    const before = intQuery(query, 'before');
    const buildNumber = intQuery(query, 'build_number');
    const prId = intQuery(query, 'pull_request_id');
    const branch = query.get('branch');
    const workflow = query.get('workflow');
    const message = query.get('commit_message')?.toLowerCase();
    const event = query.get('trigger_event_type');
    const isPipeline = query.get('is_pipeline_build');
    const eventOf = (b: Build) => (b.tag ? 'tag' : b.pullRequestId ? 'pull-request' : 'push');
    const builds = a.builds
      .filter(
        (b) =>
          (status === undefined || b.status === status) &&
          (after === undefined || b.triggeredAt >= after * 1000) &&
          (before === undefined || b.triggeredAt < before * 1000) &&
          (buildNumber === undefined || b.buildNumber === buildNumber) &&
          (prId === undefined || b.pullRequestId === prId) &&
          (!branch || b.branch === branch) &&
          (!workflow || b.workflow === workflow) &&
          (!message || (b.commitMessage ?? '').toLowerCase().includes(message)) &&
          (!event || eventOf(b) === event) &&
          // Builds here never belong to a pipeline.
          isPipeline !== 'true',
      )
      .sort((x, y) => (sortBy === 'running_first' ? Number(y.status === 0) - Number(x.status === 0) : 0) || y.triggeredAt - x.triggeredAt);
    return anchorPage(builds, query, MAX_LIMIT, (b) => renderBuild(a, b));
  });

  route('/apps/:app/builds/:build', (_query, params) => {
    const a = appOrError(params.app);
    const b = a.builds.find((x) => x.slug === params.build);
    if (!b) throw new ApiError(404, 'Not Found');
    return { data: renderBuild(a, b) };
  });

  route('/apps/:app/pipelines', (query, params) => {
    const a = appOrError(params.app);
    const time = (name: string) => {
      const raw = query.get(name);
      if (!raw) return undefined;
      const ms = Date.parse(raw);
      if (Number.isNaN(ms)) throw new ApiError(400, `Invalid ${name} parameter: must be RFC3339`);
      return ms;
    };
    // Pipelines page by time, not by slug: `before` (formerly `next`) is exclusive (provider-notes B3).
    const before = time('before') ?? time('next');
    const after = time('after');
    const statusName = query.get('status');
    if (statusName && !(statusName in PIPELINE_STATUS)) throw new ApiError(400, 'Invalid status parameter');
    const branch = query.get('branch');
    const pipelineName = query.get('pipeline');
    const limit = limitOf(query, 10);
    const items = [
      ...a.pipelines.map((p) => ({ kind: 'pipeline' as const, p, at: p.triggeredAt, status: p.status, branch: p.branch, name: p.name })),
      ...a.builds.map((b) => ({ kind: 'build' as const, b, at: b.triggeredAt, status: b.status, branch: b.branch, name: b.workflow })),
    ]
      .filter(
        (i) =>
          (before === undefined || i.at < before) &&
          (after === undefined || i.at > after) &&
          (!statusName || i.status === PIPELINE_STATUS[statusName]) &&
          (!branch || i.branch === branch) &&
          (!pipelineName || (i.kind === 'pipeline' && i.name === pipelineName)),
      )
      .sort((x, y) => y.at - x.at);
    const page = items.slice(0, limit);
    const last = page.at(-1);
    // The real list reports zero counts here and pages by the last item's trigger time
    // (bitrise-io/bitrise-mcp devenv/test-responses/before/list_pipelines.json).
    const paging: Json = { total_item_count: 0, page_item_limit: 0 };
    if (items.length > limit && last) paging.next = isoMicrosZ(last.at);
    return { data: page.map(renderPipelineItem), paging };
  });

  const control: BitriseControl = {
    ...commonControl({
      log,
      faults,
      secrets,
      resetOwn: () => {
        perMinute = undefined;
        minuteWindow.clear();
      },
    }),
    createToken: ({ label = 'token', kind = 'personal' } = {}) => {
      // PATs look like long URL-safe random strings; workspace tokens carry the `bitwat_` prefix
      // secret scanners key on (provider-notes B1).
      const token =
        kind === 'workspace'
          ? `bitwat_${randomSecret(64)}`
          : randomSecret(86, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_');
      tokens.set(secrets.add(token), { label, kind, revoked: false });
      return token;
    },
    revokeToken: (token) => {
      const info = tokens.get(token);
      if (!info) throw new SimNotFoundError('unknown token');
      info.revoked = true;
    },
    setRateLimit: (limit) => {
      if (limit !== null && !(Number.isInteger(limit.perMinute) && limit.perMinute >= 0))
        throw new SimInputError('perMinute must be an integer >= 0');
      perMinute = limit?.perMinute;
      minuteWindow.clear();
    },
    addBuilds: (slug, count, o) => world.addBuilds(slug, count, o),
    finishRunningBuilds: (slug, status) => world.finishRunningBuilds(slug, status),
    addPipelines: (slug, count, o) => world.addPipelines(slug, count, o),
    finishRunningPipelines: (slug, status) => world.finishRunningPipelines(slug, status),
    setAppAccess: (slug, access) => world.setAppAccess(slug, access),
    dataset: () => world.dataset(),
  };
  registerSimRoutes(app, bitriseSimRoutes(control));

  const url = await listen(app, opts.host ?? '127.0.0.1', opts.port ?? 0);
  return { url, apiUrl: `${url}${API_BASE}`, control, close: () => app.close() };
}

/** Same 429 the Insights API documents: plain text plus `Retry-After` (provider-notes B4). */
function sendRateLimited(reply: FastifyReply, retryAfterSeconds: number): FastifyReply {
  return reply.code(429).header('retry-after', String(retryAfterSeconds)).type('text/plain; charset=utf-8').send('Too Many Requests');
}

function sendFault(reply: FastifyReply, status: FaultStatus): FastifyReply {
  if (status === 429) return sendRateLimited(reply, 1);
  const messages: Record<number, string> = { 500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable' };
  return reply.code(status).send({ message: messages[status] ?? 'Error' });
}

function bitriseSimRoutes(c: BitriseControl): SimRoute[] {
  const finished = (b: Record<string, unknown>) => optNum(b, 'status') as Exclude<BuildStatus, 0> | undefined;
  return [
    ...commonSimRoutes(c),
    {
      method: 'POST',
      url: '/tokens',
      handler: (b) => {
        const kind = optStr(b, 'kind');
        if (kind !== undefined && kind !== 'personal' && kind !== 'workspace')
          throw new SimInputError('kind must be personal or workspace');
        return { token: c.createToken({ label: optStr(b, 'label'), kind }) };
      },
    },
    { method: 'POST', url: '/tokens/revoke', handler: (b) => c.revokeToken(str(b, 'token')) },
    {
      method: 'POST',
      url: '/rate-limit',
      handler: (b) => c.setRateLimit(b.perMinute === null || b.perMinute === undefined ? null : { perMinute: num(b, 'perMinute') }),
    },
    { method: 'GET', url: '/dataset', handler: () => c.dataset() },
    {
      method: 'POST',
      url: '/apps/:app/builds',
      handler: (b, p) => ({
        slugs: c.addBuilds(p.app ?? '', num(b, 'count'), {
          status: optNum(b, 'status') as BuildStatus | undefined,
          branch: optStr(b, 'branch'),
          workflow: optStr(b, 'workflow'),
        }),
      }),
    },
    { method: 'POST', url: '/finish-running-builds', handler: (b) => ({ finished: c.finishRunningBuilds(undefined, finished(b)) }) },
    {
      method: 'POST',
      url: '/apps/:app/finish-running-builds',
      handler: (b, p) => ({ finished: c.finishRunningBuilds(p.app ?? '', finished(b)) }),
    },
    {
      method: 'POST',
      url: '/apps/:app/pipelines',
      handler: (b, p) => ({
        slugs: c.addPipelines(p.app ?? '', num(b, 'count'), {
          status: optNum(b, 'status') as BuildStatus | undefined,
          branch: optStr(b, 'branch'),
        }),
      }),
    },
    {
      method: 'POST',
      url: '/apps/:app/finish-running-pipelines',
      handler: (b, p) => ({ finished: c.finishRunningPipelines(p.app ?? '', finished(b)) }),
    },
    {
      method: 'POST',
      url: '/apps/:app/access',
      handler: (b, p) => {
        const access = str(b, 'access');
        if (access !== 'ok' && access !== 'forbidden' && access !== 'not_found')
          throw new SimInputError('access must be ok, forbidden or not_found');
        c.setAppAccess(p.app ?? '', access);
      },
    },
  ];
}
