import { type MonotonicClock, type Rand, SimInputError, SimNotFoundError, hex, intBetween, pick, uuid } from '../shared';
import type { AppAccess, BitriseDataset, BitriseSeed, BuildStatus } from './types';

// ---------------------------------------------------------------------------------------------
// Data model and seed

export interface User {
  slug: string;
  username: string;
  email: string;
  dataId: number;
  createdAt: number;
}

export interface Organization {
  slug: string;
  name: string;
  concurrency: number;
  owners: User[];
  apps: App[];
}

export interface Build {
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

export interface Pipeline {
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

export interface App {
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

export class BitriseWorld {
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
