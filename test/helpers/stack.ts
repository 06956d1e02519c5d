import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Client, Connection } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { loadConfig, type Config } from '../../src/config';
import { buildApp } from '../../src/api/app';
import { createApiDeps, type ApiDeps } from '../../src/api/deps';
import { loggerOptions } from '../../src/logger';
import { createSql, type Sql } from '../../src/db/sql';
import { startBitbucketSimulator, type BitbucketSimulator, type BitbucketSimulatorOptions } from '../../simulators/bitbucket';
import { startBitriseSimulator, type BitriseSeed, type BitriseSimulator } from '../../simulators/bitrise';
import { getFreePort } from '../../dev/ports';
import { createTestDatabase } from './database';

/**
 * The whole system for one test file, all real: a fresh database on the shared Postgres, the
 * shared Temporal dev server (a task queue of our own, so files don't steal each other's work),
 * both provider simulators, the API listening on a port, and the worker as a child process so
 * it can be killed and restarted like a real deployment. Logs of both are captured for the
 * secret-leak scan.
 */

const ROOT = path.resolve(__dirname, '../..');

export const PLATFORM_CLIENT = { clientId: 'conduit-platform', clientSecret: `platform-secret-${randomBytes(8).toString('hex')}` };

export interface StackOptions {
  bitbucket?: BitbucketSimulatorOptions;
  bitrise?: { seed?: BitriseSeed };
  env?: Record<string, string>;
  /** An already migrated database to use instead of a fresh one on the shared server. */
  databaseUrl?: string;
}

export interface ApiResponse<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

/**
 * One of Conduit's entry points (`src/worker.ts`, `src/api/server.ts`) as a child process, the way a
 * deployment runs it, so a test can SIGKILL it. Its output is kept for the log scans.
 */
class ServiceProcess {
  private child?: ChildProcess;
  private exited?: Promise<void>;
  readonly output: string[] = [];

  constructor(
    private readonly script: string,
    protected env: Record<string, string>,
    private readonly isReady: () => boolean | Promise<boolean>,
  ) {}

  /** The OS process id while it runs (a worker's default Temporal identity is `<pid>@<hostname>`; the benchmarks read its RSS from /proc). */
  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  // A process ended by a signal keeps `exitCode` null (its `signalCode` is set instead).
  private get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(): Promise<void> {
    // node itself (with tsx as a loader), not the tsx CLI: the CLI runs node as a grandchild, which
    // a SIGKILL to the CLI would leave running.
    const child = spawn(process.execPath, ['--require', 'tsx/cjs', path.join(ROOT, this.script)], {
      cwd: ROOT,
      env: { ...process.env, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    child.stdout.on('data', (d: Buffer) => this.output.push(d.toString()));
    child.stderr.on('data', (d: Buffer) => this.output.push(d.toString()));
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    try {
      await waitFor(async () => !this.running || (await this.isReady()), 90_000, `${this.script} to start`);
    } catch (err) {
      // Not left running behind a failed start (nothing else holds its handle).
      await this.kill();
      throw err;
    }
    if (!this.running) throw new Error(`${this.script} exited early:\n${this.output.join('')}`);
  }

  /** SIGKILL: no graceful shutdown, like a crashed pod. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return;
    this.child!.kill(signal);
    await this.exited;
  }

  /** Kills and starts the process again, optionally with changed environment (a redeploy). */
  async restart(envChanges: Record<string, string> = {}): Promise<void> {
    await this.kill();
    this.env = { ...this.env, ...envChanges };
    await this.start();
  }
}

export class WorkerProcess extends ServiceProcess {
  constructor(env: Record<string, string>) {
    super('src/worker.ts', env, () => this.output.join('').includes('Worker state changed'));
  }
}

/** An API replica listening on `env.PORT` (ready once `/healthz` answers). */
export class ApiProcess extends ServiceProcess {
  readonly url: string;

  constructor(env: Record<string, string>) {
    const url = `http://127.0.0.1:${env.PORT}`;
    super('src/api/server.ts', env, () =>
      fetch(`${url}/healthz`).then(
        (r) => r.ok,
        () => false,
      ),
    );
    this.url = url;
  }
}

export interface Stack {
  config: Config;
  env: Record<string, string>;
  apiUrl: string;
  sql: Sql;
  temporal: Client;
  bitbucket: BitbucketSimulator;
  bitrise: BitriseSimulator;
  worker: WorkerProcess;
  apiLogs: string[];
  /** Calls the API over HTTP. */
  request<T = any>(
    method: string,
    urlPath: string,
    opts?: { apiKey?: string; body?: unknown; rawBody?: string; headers?: Record<string, string> },
  ): Promise<ApiResponse<T>>;
  /** Creates a tenant (admin route) and registers its return origins (`PATCH /v1/tenants/me`), if any. */
  createTenant(name?: string, allowedReturnOrigins?: string[]): Promise<{ id: string; apiKey: string }>;
  stop(): Promise<void>;
}

/**
 * The environment of the API and worker processes of a test: the shared Temporal server (a task
 * queue of the file's own), its database, the simulators, fresh secrets, and no pacing or API rate
 * limits unless a test asks. `port` is the API's; PUBLIC_URL (the OAuth redirect URI) names it.
 */
export function serviceEnv(o: {
  databaseUrl: string;
  port: number;
  bitbucket: BitbucketSimulator;
  bitrise: BitriseSimulator;
  extra?: Record<string, string>;
}): Record<string, string> {
  const { bitbucket, bitrise, port } = o;
  return {
    DATABASE_URL: o.databaseUrl,
    TEMPORAL_ADDRESS: requiredEnv('TEST_TEMPORAL_ADDRESS'),
    TEMPORAL_NAMESPACE: 'default',
    TEMPORAL_TASK_QUEUE: `conduit-test-${randomBytes(4).toString('hex')}`,
    PORT: String(port),
    HOST: '127.0.0.1',
    // The OAuth redirect_uri names this port, so it is chosen before anything starts.
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    ADMIN_TOKEN: `admin-${randomBytes(16).toString('hex')}`,
    ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    BITBUCKET_CLIENT_ID: PLATFORM_CLIENT.clientId,
    BITBUCKET_CLIENT_SECRET: PLATFORM_CLIENT.clientSecret,
    BITBUCKET_API_URL: bitbucket.apiUrl,
    BITBUCKET_OAUTH_URL: bitbucket.oauthUrl,
    BITRISE_API_URL: bitrise.apiUrl,
    SYNC_INTERVAL_SECONDS: '3600',
    LOG_LEVEL: 'info',
    // Tests measure behaviour, not patience: no pacing and short rate-limit backoff unless a test asks.
    BITBUCKET_REQUESTS_PER_HOUR: '3600000',
    BITRISE_REQUESTS_PER_HOUR: '3600000',
    SYNC_RATE_LIMIT_BACKOFF_SECONDS: '1',
    // Test tenants register http://127.0.0.1 return origins; the API's own limits are tested on their own.
    ALLOW_INSECURE_RETURN_ORIGINS: 'true',
    RATE_LIMIT_API_KEY_PER_MINUTE: '1000000',
    RATE_LIMIT_ADMIN_PER_MINUTE: '1000000',
    RATE_LIMIT_OAUTH_PER_MINUTE: '1000000',
    RATE_LIMIT_INVITE_PER_MINUTE: '1000000',
    ...o.extra,
  };
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const db = opts.databaseUrl ? { url: opts.databaseUrl, drop: async () => {} } : await createTestDatabase();
  const bitbucket = await startBitbucketSimulator({ consumers: [PLATFORM_CLIENT], ...opts.bitbucket });
  const bitrise = await startBitriseSimulator(opts.bitrise);

  const port = await getFreePort();
  const env = serviceEnv({ databaseUrl: db.url, port, bitbucket, bitrise, extra: opts.env });

  const apiLogs: string[] = [];
  const logStream = new Writable({
    write(chunk, _enc, cb) {
      apiLogs.push(chunk.toString());
      cb();
    },
  });
  const config = loadConfig(env);
  const deps: ApiDeps = await createApiDeps(config);
  const app: FastifyInstance = await buildApp(deps, { logger: pino(loggerOptions('info', 'api'), logStream) });
  await app.listen({ port, host: '127.0.0.1' });
  const apiUrl = env.PUBLIC_URL!;

  const worker = new WorkerProcess(env);
  await worker.start();

  const temporalConnection = await Connection.connect({ address: env.TEMPORAL_ADDRESS });
  const temporal = new Client({ connection: temporalConnection, namespace: 'default' });
  const sql = createSql(db.url, { max: 3 });

  const request = apiRequester(apiUrl);

  return {
    config,
    env,
    apiUrl,
    sql,
    temporal,
    bitbucket,
    bitrise,
    worker,
    apiLogs,
    request,
    async createTenant(name = 'Acme', allowedReturnOrigins?: string[]) {
      const res = await request('POST', '/v1/tenants', { headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` }, body: { name } });
      if (res.status !== 201) throw new Error(`tenant creation failed: ${res.status} ${JSON.stringify(res.body)}`);
      if (allowedReturnOrigins) {
        const patched = await request('PATCH', '/v1/tenants/me', { apiKey: res.body.apiKey, body: { allowedReturnOrigins } });
        if (patched.status !== 200) throw new Error(`registering return origins failed: ${patched.status} ${JSON.stringify(patched.body)}`);
      }
      return res.body;
    },
    async stop() {
      await worker.kill('SIGTERM');
      await app.close();
      await deps.close();
      await temporalConnection.close();
      await sql.end({ timeout: 5 });
      await bitbucket.close();
      await bitrise.close();
      await db.drop();
    },
  };
}

export type ApiRequest = Stack['request'];

/** Calls the API at `apiUrl` over HTTP; bodies are sent and read as JSON (text when not JSON). */
export function apiRequester(apiUrl: string, opts: { timeoutMs?: number } = {}): ApiRequest {
  return async (method, urlPath, o = {}) => {
    const headers: Record<string, string> = { ...o.headers };
    if (o.apiKey) headers.authorization = `Bearer ${o.apiKey}`;
    let body: string | undefined = o.rawBody;
    if (o.body !== undefined) {
      body = JSON.stringify(o.body);
      headers['content-type'] = 'application/json';
    }
    const signal = opts.timeoutMs ? AbortSignal.timeout(opts.timeoutMs) : undefined;
    const res = await fetch(`${apiUrl}${urlPath}`, { method, headers, body, redirect: 'manual', signal });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body: parsed as any, headers: res.headers };
  };
}

function requiredEnv(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the tests through jest (globalSetup starts the servers)`);
  return v;
}

export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 30_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Polls the API until the connection reaches `status` (returns the connection). */
export async function waitForStatus(stack: Stack, apiKey: string, id: string, status: string, timeoutMs = 30_000): Promise<any> {
  let last: any;
  await waitFor(
    async () => {
      last = (await stack.request('GET', `/v1/connections/${id}`, { apiKey })).body;
      return last?.status === status;
    },
    timeoutMs,
    `connection ${id} to become ${status} (last: ${JSON.stringify(last)})`,
  );
  return last;
}

/**
 * Every OAuth state and browser-binding cookie value a test's browser handled in this process:
 * secrets the leak scans look for (test/integration/lifecycle.test.ts).
 */
export const oauthSecretsSeen: string[] = [];

/**
 * What a browser does with an `authorizeUrl`: opens our consent page, presses Continue (a form post
 * that sets the binding cookie and redirects to the provider). Returns the provider's authorize URL
 * and the cookie to send back to the callback, as the browser would.
 */
export async function startOAuthInBrowser(authorizeUrl: string): Promise<{ providerUrl: string; cookie: string; page: string }> {
  const consent = await fetch(authorizeUrl, { redirect: 'manual' });
  const page = await consent.text();
  if (consent.status !== 200) throw new Error(`consent page answered ${consent.status}: ${page}`);
  const state = new URL(authorizeUrl).searchParams.get('state') ?? '';
  const proceed = await fetch(new URL('/v1/oauth/start', authorizeUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ state }).toString(),
    redirect: 'manual',
  });
  const providerUrl = proceed.headers.get('location');
  if (proceed.status !== 302 || !providerUrl) throw new Error(`continue answered ${proceed.status}: ${await proceed.text()}`);
  // name=value of each Set-Cookie, the way a browser sends them back.
  const pairs = proceed.headers.getSetCookie().map((c) => c.split(';')[0]!);
  const cookie = pairs.join('; ');
  oauthSecretsSeen.push(state, ...pairs.map((p) => p.slice(p.indexOf('=') + 1)));
  return { providerUrl, cookie, page };
}

/** Runs the Bitbucket OAuth round trip the way a browser would: authorize → consent page → simulator → our callback. */
export async function completeOAuth(stack: Pick<Stack, 'request'>, apiKey: string, connectionId: string): Promise<URL> {
  const auth = await stack.request('POST', `/v1/connections/${connectionId}/authorize`, { apiKey });
  if (auth.status !== 200) throw new Error(`authorize failed: ${auth.status} ${JSON.stringify(auth.body)}`);
  const { providerUrl, cookie } = await startOAuthInBrowser(auth.body.authorizeUrl);
  const toProvider = await fetch(providerUrl, { redirect: 'manual' });
  const callback = toProvider.headers.get('location');
  if (!callback) throw new Error(`provider did not redirect (${toProvider.status})`);
  const back = await fetch(callback, { redirect: 'manual', headers: { cookie } });
  const location = back.headers.get('location');
  if (back.status !== 302 || !location) throw new Error(`callback answered ${back.status}: ${await back.text()}`);
  return new URL(location);
}

/**
 * A tenant's view of the API: `api(method, path, body?)`, its runs, and waiting for finished runs.
 * Takes getters because test files create the stack and tenant in `beforeAll`.
 */
export function tenantApi(stack: () => Stack, apiKey: () => string) {
  const api = (method: string, path: string, body?: unknown) => stack().request(method, path, { apiKey: apiKey(), body });
  const runs = async (id: string) => (await api('GET', `/v1/connections/${id}/runs`)).body.items as any[];
  /** Newest first, once at least `n` runs have finished (succeeded, failed or stalled). */
  async function waitForRuns(id: string, n: number, timeoutMs = 90_000): Promise<any[]> {
    let items: any[] = [];
    await waitFor(async () => (items = await runs(id)).filter((r) => r.status !== 'running').length >= n, timeoutMs, `${n} finished runs`);
    return items;
  }
  return { api, runs, waitForRuns };
}
