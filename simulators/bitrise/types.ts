import type { CommonControl } from '../shared';

// Public types of the Bitrise simulator, re-exported from `simulators/bitrise`.

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

/**
 * 0 not finished, 1 success, 2 failed, 3 aborted with failure, 4 aborted with success (the `status`
 * filter of `GET /apps/{app-slug}/builds` in https://api-docs.bitrise.io/docs/swagger.json).
 */
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
