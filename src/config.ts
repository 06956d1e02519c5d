import { z } from 'zod';

/**
 * The one place environment variables are read. Every process (api, worker, dev stack) parses the
 * environment once at start-up with `loadConfig` and passes the typed result down; nothing else
 * touches `process.env` for configuration.
 */

const base64Key = z
  .string()
  .trim()
  .refine((s) => Buffer.from(s, 'base64').length === 32, 'must be base64 of exactly 32 bytes');

const positiveInt = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const url = z.string().trim().url();

const emptyAsUndefined = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);

export const envShape = {
    DATABASE_URL: url.refine((s) => /^postgres(ql)?:\/\//.test(s), 'must be a postgres:// URL'),
    TEMPORAL_ADDRESS: z.string().trim().min(1).default('localhost:7233'),
    TEMPORAL_NAMESPACE: z.string().trim().min(1).default('default'),
    TEMPORAL_TASK_QUEUE: z.string().trim().min(1).default('conduit'),
    PORT: positiveInt(0, 65535).default(3000),
    HOST: z.string().trim().min(1).default('0.0.0.0'),
    PUBLIC_URL: url.default('http://localhost:3000'),
    ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters'),
    /** The first key encrypts; the rest (comma-separated) only decrypt, so keys can be rotated. */
    ENCRYPTION_KEY: z
      .string()
      .transform((s) => s.split(',').map((k) => k.trim()).filter(Boolean))
      .pipe(z.array(base64Key).min(1, 'must hold at least one key')),
    BITBUCKET_CLIENT_ID: z.preprocess(emptyAsUndefined, z.string().trim().optional()),
    BITBUCKET_CLIENT_SECRET: z.preprocess(emptyAsUndefined, z.string().trim().optional()),
    BITBUCKET_API_URL: url.default('https://api.bitbucket.org/2.0'),
    BITBUCKET_OAUTH_URL: url.default('https://bitbucket.org/site/oauth2'),
    BITRISE_API_URL: url.default('https://api.bitrise.io/v0.1'),
    SYNC_INTERVAL_SECONDS: positiveInt(60, 86400).default(3600),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** How long an OAuth `state` stays valid. */
    OAUTH_STATE_TTL_SECONDS: positiveInt(30, 3600).default(600),
    /**
     * Continue-as-new once a connection workflow's history has this many events, even when the
     * server has not suggested it yet. Lowered in tests to exercise the path.
     */
    WORKFLOW_MAX_HISTORY_EVENTS: positiveInt(100, 50000).default(5000),
    /**
     * Requests per hour one Bitbucket OAuth consumer may make, across all its connections and
     * workers. Bitbucket allows about 1,000; staying below it means a large backfill finishes
     * without a storm of 429s.
     */
    BITBUCKET_REQUESTS_PER_HOUR: positiveInt(1, 10_000_000).default(900),
    /** Requests per hour per Bitrise token. Bitrise publishes no v0.1 limit; its Insights API allows 60 a minute. */
    BITRISE_REQUESTS_PER_HOUR: positiveInt(1, 10_000_000).default(3000),
    /** A run that commits no page for this long is stopped and flagged `stalled`. */
    SYNC_STALL_TIMEOUT_SECONDS: positiveInt(10, 86400).default(600),
    /** Rate-limit waits up to this long retry the activity; longer ones are a durable workflow sleep. */
    SYNC_MAX_INLINE_RATE_LIMIT_WAIT_SECONDS: positiveInt(0, 3600).default(60),
    /** First wait after a 429 that names no wait (Bitbucket's usually don't); doubles each time. */
    SYNC_RATE_LIMIT_BACKOFF_SECONDS: positiveInt(1, 3600).default(10),
    /** Sync steps one worker runs at once per provider (each connection runs one step at a time). */
    SYNC_MAX_CONCURRENT_PER_PROVIDER: positiveInt(1, 1000).default(20),
};

export const configSchema = z.object(envShape).superRefine((c, ctx) => {
    if (Boolean(c.BITBUCKET_CLIENT_ID) !== Boolean(c.BITBUCKET_CLIENT_SECRET)) {
      ctx.addIssue({
        code: 'custom',
        path: ['BITBUCKET_CLIENT_SECRET'],
        message: 'BITBUCKET_CLIENT_ID and BITBUCKET_CLIENT_SECRET must be set together',
      });
    }
  });

export type Env = z.input<typeof configSchema>;
export type ParsedEnv = z.output<typeof configSchema>;

export interface Config {
  databaseUrl: string;
  temporal: { address: string; namespace: string; taskQueue: string };
  http: { port: number; host: string; publicUrl: string };
  adminToken: string;
  encryptionKeys: Buffer[];
  bitbucket: { clientId?: string; clientSecret?: string; apiUrl: string; oauthUrl: string };
  bitrise: { apiUrl: string };
  syncIntervalSeconds: number;
  logLevel: ParsedEnv['LOG_LEVEL'];
  oauthStateTtlSeconds: number;
  workflowMaxHistoryEvents: number;
  sync: {
    requestsPerHour: { bitbucket: number; bitrise: number };
    stallTimeoutSeconds: number;
    maxInlineRateLimitWaitMs: number;
    rateLimitBackoffMs: number;
    maxConcurrentPerProvider: number;
  };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Missing or invalid environment variables:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const trimSlash = (s: string) => s.replace(/\/+$/, '');

/** Parses the environment, listing every bad variable at once (never their values: some are secrets). */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const parsed = configSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`));
  }
  const e = parsed.data;
  return {
    databaseUrl: e.DATABASE_URL,
    temporal: { address: e.TEMPORAL_ADDRESS, namespace: e.TEMPORAL_NAMESPACE, taskQueue: e.TEMPORAL_TASK_QUEUE },
    http: { port: e.PORT, host: e.HOST, publicUrl: trimSlash(e.PUBLIC_URL) },
    adminToken: e.ADMIN_TOKEN,
    encryptionKeys: e.ENCRYPTION_KEY.map((k) => Buffer.from(k, 'base64')),
    bitbucket: {
      clientId: e.BITBUCKET_CLIENT_ID,
      clientSecret: e.BITBUCKET_CLIENT_SECRET,
      apiUrl: trimSlash(e.BITBUCKET_API_URL),
      oauthUrl: trimSlash(e.BITBUCKET_OAUTH_URL),
    },
    bitrise: { apiUrl: trimSlash(e.BITRISE_API_URL) },
    syncIntervalSeconds: e.SYNC_INTERVAL_SECONDS,
    logLevel: e.LOG_LEVEL,
    oauthStateTtlSeconds: e.OAUTH_STATE_TTL_SECONDS,
    workflowMaxHistoryEvents: e.WORKFLOW_MAX_HISTORY_EVENTS,
    sync: {
      requestsPerHour: { bitbucket: e.BITBUCKET_REQUESTS_PER_HOUR, bitrise: e.BITRISE_REQUESTS_PER_HOUR },
      stallTimeoutSeconds: e.SYNC_STALL_TIMEOUT_SECONDS,
      maxInlineRateLimitWaitMs: e.SYNC_MAX_INLINE_RATE_LIMIT_WAIT_SECONDS * 1000,
      rateLimitBackoffMs: e.SYNC_RATE_LIMIT_BACKOFF_SECONDS * 1000,
      maxConcurrentPerProvider: e.SYNC_MAX_CONCURRENT_PER_PROVIDER,
    },
  };
}

/** Every variable the service reads, for docs and the docker-compose consistency test. */
export const CONFIG_VARIABLES = Object.keys(envShape) as (keyof ParsedEnv)[];
