import { z } from 'zod';
import { baseUrl, emptyAsUndefined, optionalString, positiveInt } from './providers/env';
import type { Provider } from './providers/manifests';
import { PROVIDER_MODULES, providerEnvShape, providerSettings, type ProviderModule } from './providers/registry';

/**
 * The one place environment variables are read. Every process (api, worker, dev stack) parses the
 * environment once at start-up with `loadConfig` and passes the typed result down; nothing else
 * touches `process.env` for configuration. Each provider contributes its own variables
 * (src/providers/<id>/settings.ts).
 */

const base64Key = z
  .string()
  .trim()
  .refine((s) => Buffer.from(s, 'base64').length === 32, 'must be base64 of exactly 32 bytes');

const coreEnv = {
  DATABASE_URL: z
    .string()
    .trim()
    .url()
    .refine((s) => /^postgres(ql)?:\/\//.test(s), 'must be a postgres:// URL'),
  TEMPORAL_ADDRESS: z.string().trim().min(1).default('localhost:7233'),
  TEMPORAL_NAMESPACE: z.string().trim().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().trim().min(1).default('conduit'),
  /**
   * TLS to Temporal: `true` / `false`, or empty to decide from the rest (on when a client certificate,
   * a CA or an API key is configured). Temporal Cloud always needs it.
   */
  TEMPORAL_TLS: z.enum(['', 'true', 'false']).default(''),
  /** mTLS client certificate and key (PEM file paths), set together. */
  TEMPORAL_TLS_CERT: optionalString,
  TEMPORAL_TLS_KEY: optionalString,
  /** The CA that signed the server's certificate (PEM file path); unset trusts the system's CAs. */
  TEMPORAL_TLS_CA: optionalString,
  /** Overrides the server name checked against the certificate (SNI), when it differs from the address' host. */
  TEMPORAL_TLS_SERVER_NAME: optionalString,
  /** An API key (Temporal Cloud), sent as a bearer token on every call. */
  TEMPORAL_API_KEY: optionalString,
  PORT: positiveInt(0, 65535).default(3000),
  HOST: z.string().trim().min(1).default('0.0.0.0'),
  /**
   * Which proxies in front of the API to believe about the client's address (X-Forwarded-For), for
   * the per-IP rate limits: empty trusts none, a number trusts that many hops, otherwise a
   * comma-separated list of proxy addresses or CIDR ranges.
   */
  TRUST_PROXY: z
    .string()
    .trim()
    .default('')
    .refine((s) => s === '' || /^\d{1,2}$/.test(s) || s.split(',').every((p) => /^[0-9a-fA-F:.]+(\/\d{1,3})?$/.test(p.trim())), {
      message: 'must be empty, a hop count, or comma-separated addresses/CIDR ranges',
    }),
  /**
   * Bearer token for `GET /metrics` (the API) and the worker's metrics port. Unset: the API's
   * `/metrics` answers 404 and the worker's port (if open) asks for no token.
   */
  METRICS_TOKEN: z.preprocess(emptyAsUndefined, z.string().min(16, 'must be at least 16 characters').optional()),
  /** Port of the worker's Prometheus endpoint (ours and the Temporal SDK's metrics); 0 or unset: off. */
  WORKER_METRICS_PORT: positiveInt(0, 65535).default(0),
  PUBLIC_URL: baseUrl.default('http://localhost:3000'),
  ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters'),
  /** The first key encrypts; the rest (comma-separated) only decrypt, so keys can be rotated. */
  ENCRYPTION_KEY: z
    .string()
    .transform((s) =>
      s
        .split(',')
        .map((k) => k.trim())
        .filter(Boolean),
    )
    .pipe(z.array(base64Key).min(1, 'must hold at least one key')),
  SYNC_INTERVAL_SECONDS: positiveInt(60, 86400).default(3600),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Human-readable logs (pino-pretty) instead of JSON lines; `npm start` turns it on. */
  LOG_PRETTY: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true'),
  /** How long an OAuth `state` stays valid. */
  OAUTH_STATE_TTL_SECONDS: positiveInt(30, 3600).default(600),
  /**
   * Continue-as-new once a connection workflow's history has this many events, even when the
   * server has not suggested it yet. Lowered in tests to exercise the path.
   */
  WORKFLOW_MAX_HISTORY_EVENTS: positiveInt(100, 50000).default(5000),
  /**
   * A workflow bundle built ahead of time (`npm run build` writes dist/workflow-bundle.js). Unset, the
   * worker bundles the workflow code itself at every start: seconds of CPU before it takes any work.
   */
  WORKFLOW_BUNDLE_PATH: optionalString,
  /** How often the reconciler checks that every connection row has its workflow and vice versa (it also runs at worker start-up). */
  RECONCILE_INTERVAL_SECONDS: positiveInt(1, 86400).default(300),
  /** A run that commits no page for this long is stopped and flagged `stalled`. */
  SYNC_STALL_TIMEOUT_SECONDS: positiveInt(10, 86400).default(600),
  /** Rate-limit waits up to this long retry the activity; longer ones are a durable workflow sleep. */
  SYNC_MAX_INLINE_RATE_LIMIT_WAIT_SECONDS: positiveInt(0, 3600).default(60),
  /** First wait after a 429 that names no wait (Bitbucket's usually don't); doubles each time. */
  SYNC_RATE_LIMIT_BACKOFF_SECONDS: positiveInt(1, 3600).default(10),
  /**
   * Connection workflows one worker keeps in memory between their tasks (Temporal's sticky cache,
   * `maxCachedWorkflows`). A parked or sleeping workflow not in it costs nothing until its next
   * task, which then replays its (short) history first. The SDK's default grows with the heap
   * (~2,300 at a 4 GiB heap, ~0.5 MiB each); see README "Benchmarks" for the figures behind ours.
   */
  WORKER_MAX_CACHED_WORKFLOWS: positiveInt(2, 100_000).default(500),
  /** Sync steps one worker runs at once per provider (each connection runs one step at a time). */
  SYNC_MAX_CONCURRENT_PER_PROVIDER: positiveInt(1, 1000).default(20),
  /**
   * Development only: lets tenants register `http://localhost` / `http://127.0.0.1` (any port) as
   * return origins. Production accepts https origins only.
   */
  ALLOW_INSECURE_RETURN_ORIGINS: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true'),
  /**
   * How long an API process keeps an API key's tenant in memory (0: never). Tenant changes are
   * announced to every API process at once (Postgres LISTEN/NOTIFY); this bounds a missed one.
   */
  API_KEY_CACHE_SECONDS: positiveInt(0, 3600).default(60),
  /** Requests per minute per tenant API key (keyed by the key's digest). */
  RATE_LIMIT_API_KEY_PER_MINUTE: positiveInt(1, 1_000_000).default(600),
  /** Requests per minute per client IP to the admin route (`POST /v1/tenants`). */
  RATE_LIMIT_ADMIN_PER_MINUTE: positiveInt(1, 1_000_000).default(30),
  /** Requests per minute per client IP to the OAuth start and callback routes. */
  RATE_LIMIT_OAUTH_PER_MINUTE: positiveInt(1, 1_000_000).default(60),
  /** Requests per minute per client IP to the invite pages (opening a link, posting a token, Continue). */
  RATE_LIMIT_INVITE_PER_MINUTE: positiveInt(1, 1_000_000).default(30),
  /** Browser origins allowed to call the API cross-origin (comma-separated); empty sends no CORS headers. */
  CORS_ORIGINS: z
    .string()
    .default('')
    .transform((s) =>
      s
        .split(',')
        .map((o) => o.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.url({ protocol: /^https?$/ }))),
  /**
   * A credential still `pending` (never verified by its workflow) this long after it was stored is
   * wiped. Far longer than any verification: an update waits while the worker is down and is applied
   * when it returns, so a pending credential is only stale once nothing can still apply it.
   */
  PENDING_CREDENTIAL_TTL_SECONDS: positiveInt(600, 30 * 86400).default(86400),
  /** How often the API purges expired OAuth states and stale pending credentials. */
  PURGE_INTERVAL_SECONDS: positiveInt(1, 86400).default(300),
  /** How long one GET keeps retrying a transient fault in place (5xx, timeout, reset) before the step fails. */
  SYNC_REQUEST_RETRY_SECONDS: positiveInt(1, 3600).default(120),
  /** First durable wait for a provider that keeps failing (`provider_unavailable`); doubles per wait, up to an hour. */
  SYNC_PROVIDER_UNAVAILABLE_WAIT_SECONDS: positiveInt(1, 86400).default(300),
  /** A comment line on every open event stream this often, so proxies and clients see it alive. */
  EVENTS_HEARTBEAT_SECONDS: positiveInt(1, 300).default(15),
  /** Events (and their webhook deliveries) are kept this long; a stream can resume within it. */
  EVENTS_RETENTION_DAYS: positiveInt(4, 3650).default(30),
  /**
   * Development only: lets tenants register `http://localhost` / `http://127.0.0.1` webhook URLs and
   * deliveries reach loopback addresses. Production accepts https URLs to public addresses only.
   */
  ALLOW_INSECURE_WEBHOOK_URLS: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true'),
  /** First wait before a failed webhook delivery is tried again; doubles per attempt. */
  WEBHOOK_RETRY_INITIAL_SECONDS: positiveInt(1, 3600).default(10),
  /** The longest wait between two attempts of a webhook delivery. */
  WEBHOOK_RETRY_MAX_INTERVAL_SECONDS: positiveInt(1, 86400).default(3600),
  /** A webhook delivery is given up (status `failed`) this long after it was first tried. */
  WEBHOOK_RETRY_WINDOW_SECONDS: positiveInt(10, 30 * 86400).default(3 * 86400),
  /** How often the webhook sweeper dispatches events and deliveries a crash left undispatched. */
  WEBHOOK_SWEEP_INTERVAL_SECONDS: positiveInt(1, 86400).default(60),
  /** Webhook HTTP attempts one worker runs at once (task queue `<TEMPORAL_TASK_QUEUE>-webhooks`). */
  WEBHOOK_MAX_CONCURRENT_DELIVERIES: positiveInt(1, 1000).default(50),
};

export const envShape = { ...coreEnv, ...providerEnvShape() };

/** The environment itself, parsed and checked (defaults applied), keyed by variable name. */
export const envSchema = z.object(envShape).superRefine((e, ctx) => {
  if (Boolean(e.TEMPORAL_TLS_CERT) !== Boolean(e.TEMPORAL_TLS_KEY)) {
    ctx.addIssue({ code: 'custom', path: ['TEMPORAL_TLS_KEY'], message: 'TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY must be set together' });
  }
  for (const module of Object.values(PROVIDER_MODULES) as ProviderModule<Provider>[]) module.check?.(e as never, ctx);
});

/** The environment turned into the configuration every process is handed. */
export const configSchema = envSchema.transform((e) => {
  const core = e as unknown as z.output<z.ZodObject<typeof coreEnv>>;
  return {
    databaseUrl: core.DATABASE_URL,
    temporal: {
      address: core.TEMPORAL_ADDRESS,
      namespace: core.TEMPORAL_NAMESPACE,
      taskQueue: core.TEMPORAL_TASK_QUEUE,
      tls: {
        enabled: core.TEMPORAL_TLS === '' ? undefined : core.TEMPORAL_TLS === 'true',
        certPath: core.TEMPORAL_TLS_CERT,
        keyPath: core.TEMPORAL_TLS_KEY,
        caPath: core.TEMPORAL_TLS_CA,
        serverName: core.TEMPORAL_TLS_SERVER_NAME,
      },
      apiKey: core.TEMPORAL_API_KEY,
    },
    workflowBundlePath: core.WORKFLOW_BUNDLE_PATH,
    http: { port: core.PORT, host: core.HOST, publicUrl: core.PUBLIC_URL, trustProxy: trustProxyOf(core.TRUST_PROXY) },
    metrics: { token: core.METRICS_TOKEN, workerPort: core.WORKER_METRICS_PORT },
    adminToken: core.ADMIN_TOKEN,
    encryptionKeys: core.ENCRYPTION_KEY.map((k) => Buffer.from(k, 'base64')),
    providers: providerSettings(e),
    syncIntervalSeconds: core.SYNC_INTERVAL_SECONDS,
    log: { level: core.LOG_LEVEL, pretty: core.LOG_PRETTY },
    oauthStateTtlSeconds: core.OAUTH_STATE_TTL_SECONDS,
    allowInsecureReturnOrigins: core.ALLOW_INSECURE_RETURN_ORIGINS,
    rateLimit: {
      apiKeyPerMinute: core.RATE_LIMIT_API_KEY_PER_MINUTE,
      adminPerMinute: core.RATE_LIMIT_ADMIN_PER_MINUTE,
      oauthPerMinute: core.RATE_LIMIT_OAUTH_PER_MINUTE,
      invitePerMinute: core.RATE_LIMIT_INVITE_PER_MINUTE,
    },
    apiKeyCacheSeconds: core.API_KEY_CACHE_SECONDS,
    corsOrigins: core.CORS_ORIGINS.map((o) => new URL(o).origin),
    pendingCredentialTtlSeconds: core.PENDING_CREDENTIAL_TTL_SECONDS,
    purgeIntervalSeconds: core.PURGE_INTERVAL_SECONDS,
    workflowMaxHistoryEvents: core.WORKFLOW_MAX_HISTORY_EVENTS,
    reconcileIntervalSeconds: core.RECONCILE_INTERVAL_SECONDS,
    worker: { maxCachedWorkflows: core.WORKER_MAX_CACHED_WORKFLOWS },
    sync: {
      stallTimeoutSeconds: core.SYNC_STALL_TIMEOUT_SECONDS,
      maxInlineRateLimitWaitMs: core.SYNC_MAX_INLINE_RATE_LIMIT_WAIT_SECONDS * 1000,
      rateLimitBackoffMs: core.SYNC_RATE_LIMIT_BACKOFF_SECONDS * 1000,
      maxConcurrentPerProvider: core.SYNC_MAX_CONCURRENT_PER_PROVIDER,
      requestRetryMaxMs: core.SYNC_REQUEST_RETRY_SECONDS * 1000,
      providerUnavailableWaitMs: core.SYNC_PROVIDER_UNAVAILABLE_WAIT_SECONDS * 1000,
    },
    events: {
      heartbeatSeconds: core.EVENTS_HEARTBEAT_SECONDS,
      retentionDays: core.EVENTS_RETENTION_DAYS,
    },
    webhooks: {
      allowInsecureUrls: core.ALLOW_INSECURE_WEBHOOK_URLS,
      retry: {
        initialIntervalMs: core.WEBHOOK_RETRY_INITIAL_SECONDS * 1000,
        maximumIntervalMs: core.WEBHOOK_RETRY_MAX_INTERVAL_SECONDS * 1000,
        giveUpAfterMs: core.WEBHOOK_RETRY_WINDOW_SECONDS * 1000,
      },
      sweepIntervalSeconds: core.WEBHOOK_SWEEP_INTERVAL_SECONDS,
      maxConcurrentDeliveries: core.WEBHOOK_MAX_CONCURRENT_DELIVERIES,
    },
  };
});

/** Fastify's `trustProxy`: false, a hop count (as the function Fastify makes of one), or the proxies' addresses. */
function trustProxyOf(value: string): false | string[] | ((address: string, hop: number) => boolean) {
  if (value === '') return false;
  if (/^\d+$/.test(value)) {
    const hops = Number(value);
    return (_address, hop) => hop < hops;
  }
  return value.split(',').map((p) => p.trim());
}

export type Config = z.output<typeof configSchema>;
export type LogLevel = Config['log']['level'];

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Missing or invalid environment variables:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Parses the environment, listing every bad variable at once (never their values: some are secrets). */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const parsed = configSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`));
  }
  return parsed.data;
}

/** Every variable the service reads, for docs and the docker-compose consistency test. */
export const CONFIG_VARIABLES = Object.keys(envShape) as (keyof typeof envShape)[];
