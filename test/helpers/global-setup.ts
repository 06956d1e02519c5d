import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedPostgres } from '../../src/dev/embedded-postgres';
import { resolveTemporalCli } from '../../src/dev/temporal-cli';
import { startTemporalDevServer } from '../../src/dev/temporal-dev-server';
import { setTestServers, type TestServers } from './global-state';
import { stopTestServers } from './global-teardown';

/**
 * Starts what every integration test shares, once per `jest` run:
 *
 * - one embedded Postgres (fresh data directory under the OS temp dir, free port, durability off),
 *   unless TEST_DATABASE_URL is set. Test files create their own database on it (`createTestDatabase`).
 * - one Temporal dev server (temporary SQLite file, headless, free port), unless TEST_TEMPORAL_ADDRESS
 *   is set. Test files isolate themselves with their own task queue and workflow ids.
 *
 * The coordinates reach the test files through the environment (Jest workers are forked after this
 * runs): TEST_DATABASE_URL, TEST_TEMPORAL_ADDRESS, TEMPORAL_CLI_PATH.
 */
export default async function globalSetup(): Promise<void> {
  const started = Date.now();
  const tmpDir = await fs.mkdtemp(path.join(os.tmpdir(), 'conduit-test-'));
  // mkdtemp makes it 0700; as root, Postgres runs as the `postgres` user and must be able to enter it.
  await fs.chmod(tmpDir, 0o755);
  const servers: TestServers = { tmpDir, stops: [] };
  setTestServers(servers);

  try {
    const cli = await step('resolving the Temporal CLI', () => resolveTemporalCli());
    process.env.TEMPORAL_CLI_PATH = cli;

    const summary = await Promise.all([
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
