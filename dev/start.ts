/**
 * `npm start`: the whole stack in one command, nothing to install by hand.
 *
 *   Postgres   embedded (real Postgres binaries from npm), data in .data/postgres, unless DATABASE_URL is set
 *              (as root, when the `postgres` user cannot reach the checkout: .data/postgres links to a
 *              directory under /var/lib/conduit; see dev/embedded-postgres.ts)
 *   Temporal   `temporal server start-dev` with SQLite in .data/temporal, UI on :8233, unless TEMPORAL_ADDRESS is set
 *   secrets    ADMIN_TOKEN / ENCRYPTION_KEY generated once into .data/dev-secrets.json, unless set
 *   then       migrations, the worker and the API, in this process
 *
 * `npm run demo` (`--demo`) also starts the Bitbucket and Bitrise simulators, points the config at
 * them and runs a scripted walkthrough through the public API (dev/demo.ts).
 *
 * Environment variables that are already set always win; this file only fills in local defaults
 * before `loadConfig()` reads the environment like the production entry points do.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startServer } from '../src/api/server';
import { loadConfig } from '../src/config';
import { runMigrations } from '../src/db/migrate';
import { startWorker } from '../src/worker';
import { runDemoWalkthrough } from './demo';
import { startEmbeddedPostgres } from './embedded-postgres';
import { REPO_ROOT } from './temporal-cli';
import { startTemporalDevServer, type TemporalDevServer } from './temporal-dev-server';

/**
 * Where the stack keeps its state and which ports it takes; the flags exist so a second stack (the
 * chaos suite's `npm start` test) can run beside a developer's own.
 *   --data-dir <dir>          default .data
 *   --postgres-port <n>       default 15432: not 5432, so an installed Postgres does not get in the
 *                             way; below the Linux ephemeral range (32768+), so no outgoing connection
 *                             holds it; stable, so the URL can be bookmarked (a free one if it is taken)
 *   --temporal-port <n>       default 7233
 *   --temporal-ui-port <n>    default 8233
 */
const { values: flags } = parseArgs({
  options: {
    demo: { type: 'boolean', default: false },
    'data-dir': { type: 'string', default: path.join(REPO_ROOT, '.data') },
    'postgres-port': { type: 'string', default: '15432' },
    'temporal-port': { type: 'string', default: '7233' },
    'temporal-ui-port': { type: 'string', default: '8233' },
  },
});
const DATA_DIR = path.resolve(flags['data-dir']);
const SECRETS_FILE = path.join(DATA_DIR, 'dev-secrets.json');
const POSTGRES_DATA_DIR = path.join(DATA_DIR, 'postgres');
const POSTGRES_PORT = portFlag('postgres-port');
const TEMPORAL_PORT = portFlag('temporal-port');
const TEMPORAL_UI_PORT = portFlag('temporal-ui-port');

function portFlag(name: 'postgres-port' | 'temporal-port' | 'temporal-ui-port'): number {
  const port = Number(flags[name]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    process.stderr.write(`--${name} must be a port number (got ${flags[name]})\n`);
    process.exit(2);
  }
  return port;
}

const say = (line = '') => process.stdout.write(`${line}\n`);
const warn = (line: string) => process.stderr.write(`${line}\n`);

/** Things to stop on the way out, stopped last-started-first (API, worker, …, Temporal, Postgres). */
const running: { name: string; stop: () => Promise<void> }[] = [];
let shuttingDown: Promise<never> | undefined;
/** Start-up work in flight: shutting down waits for it, so nothing that is half-started is left behind. */
const starting = new Set<Promise<unknown>>();

async function main(): Promise<void> {
  const demo = flags.demo;
  const env = process.env;
  installSignalHandlers();

  await fs.mkdir(DATA_DIR, { recursive: true, mode: 0o755 });
  const secrets = await loadOrCreateDevSecrets();
  env.ADMIN_TOKEN ??= secrets.adminToken;
  env.ENCRYPTION_KEY ??= secrets.encryptionKey;
  env.PORT ??= '3000';
  env.HOST ??= '127.0.0.1'; // a dev stack with a printed admin token stays off the LAN
  env.PUBLIC_URL ??= `http://localhost:${env.PORT}`;
  env.LOG_PRETTY ??= 'true'; // a person reads these; production keeps JSON lines
  env.ALLOW_INSECURE_RETURN_ORIGINS ??= 'true'; // tenants may register http://localhost return origins in development
  env.ALLOW_INSECURE_WEBHOOK_URLS ??= 'true'; // a local receiver (http://localhost) can get webhooks in development
  if (demo) env.LOG_LEVEL ??= 'warn'; // keep the walkthrough readable

  const [postgres, temporal] = await Promise.all([
    env.DATABASE_URL ? undefined : step('Starting embedded Postgres', startPostgres, 'or set DATABASE_URL to use another server'),
    env.TEMPORAL_ADDRESS
      ? undefined
      : step('Starting the Temporal dev server', startTemporal, 'or set TEMPORAL_ADDRESS to use a running server'),
  ]);
  if (postgres) env.DATABASE_URL = postgres.url;
  if (temporal) env.TEMPORAL_ADDRESS = temporal.address;

  const simulators = demo ? await step('Starting the provider simulators', startSimulators) : undefined;

  const config = await step('Reading the configuration', async () => loadConfig());
  await step('Running database migrations', () => runMigrations(config.databaseUrl));
  const worker = await step('Starting the worker', () => startWorker(config));
  running.push({ name: 'worker', stop: () => worker.stop() });
  watchWorker(worker);
  const api = await step('Starting the API', () => startServer(config), `is port ${config.http.port} free? (set PORT)`);
  running.push({ name: 'API', stop: () => api.close() });

  say();
  say(`Conduit is running${demo ? ' (demo: simulated Bitbucket and Bitrise)' : ''}`);
  say();
  say(`  Console       ${config.http.publicUrl}/  (sign in with a tenant API key)`);
  say(`  API           ${api.url}`);
  say(`  API docs      ${api.url}/docs`);
  say(`  Temporal UI   ${temporal?.uiUrl ?? `(external Temporal at ${config.temporal.address})`}`);
  say(`  Postgres      ${redactUrl(config.databaseUrl)}${postgres ? ` (embedded, data in ${describeDataDir(postgres.dataDir)})` : ''}`);
  say(`  Admin token   ${config.adminToken}${env.ADMIN_TOKEN === secrets.adminToken ? `  (kept in ${displayPath(SECRETS_FILE)})` : ''}`);
  say();
  say('Create a tenant:');
  say(`  curl -s -X POST ${api.url}/v1/tenants \\`);
  say(`    -H 'Authorization: Bearer ${config.adminToken}' \\`);
  say(`    -H 'Content-Type: application/json' -d '{"name":"Acme"}'`);
  say();

  if (simulators) {
    try {
      const result = await runDemoWalkthrough({
        apiUrl: api.url,
        adminToken: config.adminToken,
        bitriseToken: simulators.bitriseToken(),
      });
      say();
      say(`[demo] Done: ${result.connections.map((c) => `${c.provider} ${c.id} is ${c.status}`).join(', ')}.`);
      say(`[demo] Try: curl -s ${api.url}/v1/connections -H 'Authorization: Bearer ${result.tenant.apiKey}'`);
    } catch (err) {
      warn(`[demo] The walkthrough failed: ${err instanceof Error ? err.message : String(err)}`);
      warn('[demo] The stack keeps running so you can look around.');
    }
  }
  say('Press Ctrl-C to stop.');
}

// ---------------------------------------------------------------------------------------------

async function startPostgres() {
  // A Postgres a killed run left on this data directory is stopped first, so it frees the port too.
  const pg = await startEmbeddedPostgres({
    dataDir: POSTGRES_DATA_DIR,
    port: POSTGRES_PORT,
    fallbackToFreePort: true,
    database: 'conduit',
    // Own process group, as Temporal's: a terminal Ctrl-C must not stop Postgres under the API and worker.
    detached: true,
  });
  running.push({ name: 'Postgres', stop: pg.stop });
  return pg;
}

/** `.data/postgres`, or where it links to (as root, when the `postgres` user cannot reach the checkout). */
function describeDataDir(dataDir: string): string {
  const shown = displayPath(POSTGRES_DATA_DIR);
  return dataDir === POSTGRES_DATA_DIR ? shown : `${dataDir}, linked from ${shown}`;
}

/** Relative to the checkout when inside it (`.data/postgres`), else absolute. */
function displayPath(p: string): string {
  const relative = path.relative(REPO_ROOT, p);
  return relative.startsWith('..') || path.isAbsolute(relative) ? p : relative;
}

async function startTemporal(): Promise<TemporalDevServer> {
  let ready = false; // until then, output only matters if start-up fails, and is part of that error
  const temporal = await startTemporalDevServer({
    dbFilename: path.join(DATA_DIR, 'temporal', 'temporal.db'),
    port: TEMPORAL_PORT,
    uiPort: TEMPORAL_UI_PORT,
    namespace: process.env.TEMPORAL_NAMESPACE ?? 'default',
    logLevel: 'error',
    // Own process group: a terminal Ctrl-C reaches only us, so the worker can finish before Temporal stops.
    detached: true,
    onOutput: (line) => {
      if (ready) warn(`[temporal] ${line}`);
    },
  });
  ready = true;
  running.push({ name: 'Temporal', stop: () => temporal.stop() });
  void temporal.exited.then(({ code, signal }) => {
    if (shuttingDown) return;
    warn(`Temporal dev server exited unexpectedly (${signal ?? `exit code ${code}`}):\n${temporal.outputTail()}`);
    void shutdown(1);
  });
  return temporal;
}

/** Demo only: both simulators in-process, and the config pointed at them. */
async function startSimulators() {
  const env = process.env;
  const { startBitbucketSimulator } = await import('../simulators/bitbucket');
  const { startBitriseSimulator } = await import('../simulators/bitrise');
  const consumer = { clientId: 'conduit-demo', clientSecret: randomBytes(18).toString('base64url') };
  const bitbucket = await startBitbucketSimulator({ consumers: [consumer] });
  running.push({ name: 'Bitbucket simulator', stop: () => bitbucket.close() });
  const bitrise = await startBitriseSimulator();
  running.push({ name: 'Bitrise simulator', stop: () => bitrise.close() });

  const overridden = ['BITBUCKET_API_URL', 'BITBUCKET_OAUTH_URL', 'BITRISE_API_URL', 'BITBUCKET_CLIENT_ID'].filter((k) => env[k]);
  if (overridden.length) warn(`[demo] Ignoring ${overridden.join(', ')}: the demo talks to the simulators.`);
  Object.assign(env, {
    BITBUCKET_API_URL: bitbucket.apiUrl,
    BITBUCKET_OAUTH_URL: bitbucket.oauthUrl,
    BITRISE_API_URL: bitrise.apiUrl,
    BITBUCKET_CLIENT_ID: consumer.clientId,
    BITBUCKET_CLIENT_SECRET: consumer.clientSecret,
  });
  // The simulators have no rate limit to respect: let the first sync finish in seconds, not minutes.
  env.BITBUCKET_REQUESTS_PER_HOUR ??= '360000';
  env.BITRISE_REQUESTS_PER_HOUR ??= '360000';
  return { bitriseToken: () => bitrise.control.createToken() };
}

interface DevSecrets {
  adminToken: string;
  encryptionKey: string;
}

/**
 * Generated on the first run and reused afterwards: the embedded database keeps credentials
 * encrypted with this key, so a new key on every start would make them unreadable.
 */
async function loadOrCreateDevSecrets(): Promise<DevSecrets> {
  const fresh: DevSecrets = {
    adminToken: randomBytes(24).toString('base64url'),
    encryptionKey: randomBytes(32).toString('base64'),
  };
  try {
    await fs.writeFile(SECRETS_FILE, `${JSON.stringify(fresh, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    return fresh;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  await fs.chmod(SECRETS_FILE, 0o600);
  let stored: Partial<DevSecrets>;
  try {
    stored = JSON.parse(await fs.readFile(SECRETS_FILE, 'utf8')) as Partial<DevSecrets>;
  } catch (err) {
    throw new Error(`${SECRETS_FILE} is not valid JSON (${(err as Error).message}); fix it, or delete .data/ to start over`, {
      cause: err,
    });
  }
  if (typeof stored.adminToken !== 'string' || typeof stored.encryptionKey !== 'string') {
    throw new Error(`${SECRETS_FILE} lacks adminToken/encryptionKey; fix it, or delete .data/ to start over`);
  }
  return { adminToken: stored.adminToken, encryptionKey: stored.encryptionKey };
}

function watchWorker(worker: { stop(): Promise<void>; done?: Promise<void> }): void {
  worker.done?.then(
    () => {
      if (shuttingDown) return;
      warn('The worker stopped unexpectedly.');
      void shutdown(1);
    },
    (err: unknown) => {
      if (shuttingDown) return;
      warn(`The worker failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      void shutdown(1);
    },
  );
}

/** Runs a start-up step; on failure says which step failed (and what to try) before shutting down. */
async function step<T>(what: string, fn: () => Promise<T>, hint?: string): Promise<T> {
  const work = fn();
  starting.add(work);
  try {
    return await work;
  } catch (err) {
    // Our own errors explain themselves; a stack only helps with programming errors.
    const bug = err instanceof TypeError || err instanceof ReferenceError || err instanceof SyntaxError;
    const message = err instanceof Error ? (bug ? (err.stack ?? err.message) : err.message) : String(err);
    warn(`${what} failed${hint ? ` (${hint})` : ''}:\n${message}`);
    return shutdown(1);
  } finally {
    starting.delete(work);
  }
}

function installSignalHandlers(): void {
  let firstSignalAt = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    // npm and tsx both forward the terminal's Ctrl-C, so one key press can arrive twice.
    if (!firstSignalAt) {
      firstSignalAt = Date.now();
      say(`\n${signal}: shutting down (API, worker, Temporal, Postgres)... press Ctrl-C again to force.`);
      void shutdown(0);
    } else if (Date.now() - firstSignalAt > 1500) {
      warn('Forced exit: some services may still be running (they are stopped on the next start).');
      process.exit(130);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

function shutdown(code: number): Promise<never> {
  shuttingDown ??= (async () => {
    // e.g. Temporal failed while Postgres is still starting: let it finish, then stop it too.
    await withTimeout(Promise.allSettled([...starting]), 60_000, 'waiting for start-up steps').catch(() => undefined);
    const stopped: string[] = [];
    for (const { name, stop } of running.reverse()) {
      try {
        await withTimeout(stop(), 30_000, `stopping ${name}`);
        stopped.push(name);
      } catch (err) {
        warn(`Could not stop ${name} cleanly: ${err instanceof Error ? err.message : String(err)}`);
        code ||= 1;
      }
    }
    if (stopped.length) say(`Stopped ${stopped.join(', ')}.`);
    // Native handles (Temporal core) can outlive everything we stopped; don't wait for them.
    process.exit(code);
  })();
  return shuttingDown;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out ${what} after ${ms / 1000} s`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

const redactUrl = (url: string) => url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');

main().catch((err: unknown) => {
  warn(err instanceof Error ? (err.stack ?? err.message) : String(err));
  void shutdown(1);
});
