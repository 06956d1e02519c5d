import fs from 'node:fs/promises';
import path from 'node:path';
import { makeReachableTempDir, startEmbeddedPostgres } from '../../dev/embedded-postgres';
import { resolveTemporalCli } from '../../dev/temporal-cli';
import { startTemporalDevServer } from '../../dev/temporal-dev-server';
import { startStack, type Stack, type StackOptions } from '../../test/helpers/stack';
import { progress, type Cleanup } from './report';

/**
 * The whole system for one benchmark, self-contained: an embedded Postgres and a Temporal dev
 * server of its own (fresh temporary data, durability off on both, as in the test suite), then
 * what the integration tests run on them (test/helpers/stack.ts: a migrated database, both
 * simulators, the API on a real port, the worker as its own process). Everything is stopped by the
 * cleanup, on success, failure or Ctrl-C.
 */
export async function startBenchStack(cleanup: Cleanup, opts: StackOptions = {}): Promise<Stack & { temporalAddress: string }> {
  const tmp = await makeReachableTempDir('conduit-bench-');
  cleanup.defer(() => fs.rm(tmp, { recursive: true, force: true }));
  const cli = await resolveTemporalCli();
  process.env.TEMPORAL_CLI_PATH = cli;
  progress(`starting embedded Postgres and a Temporal dev server in ${tmp}`);
  const [pg, temporal] = await Promise.all([
    startEmbeddedPostgres({ dataDir: path.join(tmp, 'postgres'), fast: true }),
    startTemporalDevServer({
      cliPath: cli,
      dbFilename: path.join(tmp, 'temporal', 'temporal.db'),
      sqlitePragmas: { journal_mode: 'WAL', synchronous: 'OFF' },
      uiPort: false,
    }),
  ]);
  cleanup.defer(() => pg.stop());
  cleanup.defer(() => temporal.stop());
  // What the test helpers read (the Jest global setup sets them for the tests).
  process.env.TEST_DATABASE_URL = pg.adminUrl;
  process.env.TEST_TEMPORAL_ADDRESS = temporal.address;
  progress('starting the simulators, the API and the worker process');
  const stack = await startStack(opts);
  cleanup.defer(() => stack.stop());
  return { ...stack, temporalAddress: temporal.address };
}
