import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import postgres from 'postgres';
import { type EmbeddedPostgres, makeReachableTempDir, postgresUser, startEmbeddedPostgres } from '../../dev/embedded-postgres';
import { isAlive } from '../../dev/processes';
import { killTree } from '../chaos/processes';

/**
 * The embedded Postgres after its stack was SIGKILLed (found by the chaos suite): `npm start` must
 * come up again on the same data directory whatever the dead stack left behind: a server still
 * running, or a postmaster.pid whose process is gone — or whose pid now belongs to some unrelated
 * process (pids are reused, after a reboot or in a container all the more), which Postgres itself
 * takes for "another postmaster is running" and refuses to start.
 */

let dir: string;
const started: EmbeddedPostgres[] = [];

beforeAll(async () => {
  dir = await makeReachableTempDir('conduit-pg-crash-');
});

afterAll(async () => {
  for (const pg of started) await pg.stop();
  await fs.rm(dir, { recursive: true, force: true });
});

async function start(port?: number): Promise<EmbeddedPostgres> {
  // Durable, as `npm start` runs it: the test SIGKILLs the server and expects acknowledged commits
  // back (with synchronous_commit off, the last ones can be lost).
  const pg = await startEmbeddedPostgres({ dataDir: path.join(dir, 'data'), port, database: 'conduit' });
  started.push(pg);
  return pg;
}

async function roundTrip(url: string, value?: string): Promise<string[]> {
  const sql = postgres(url, { max: 1, onnotice: () => undefined });
  try {
    await sql`create table if not exists marks (v text)`;
    if (value) await sql`insert into marks values (${value})`;
    return (await sql<{ v: string }[]>`select v from marks order by v`).map((r) => r.v);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

const pidFile = () => path.join(dir, 'data', 'postmaster.pid');

test('a server left running is stopped; a stale postmaster.pid, even naming a live unrelated process, is no obstacle', async () => {
  const first = await start();
  await roundTrip(first.url, 'a');

  // 1. The stack died, its Postgres did not: the next start stops it and takes over its data (and port).
  const second = await start(first.port);
  expect(isAlive(first.pid)).toBe(false);
  expect(await roundTrip(second.url, 'b')).toEqual(['a', 'b']);

  // 2. Everything SIGKILLed at once: postmaster.pid stays behind, its pid dead.
  killTree(second.pid);
  await second.exited;
  await expect(fs.stat(pidFile())).resolves.toBeTruthy();
  const third = await start(first.port);
  expect(await roundTrip(third.url, 'c')).toEqual(['a', 'b', 'c']);

  // 3. Killed again, and its pid reused by a process that is no postgres. Postgres ignores a lock
  //    file naming its parent or a process it may not signal, so the stranger is not this test and
  //    runs as the server's own user.
  killTree(third.pid);
  await third.exited;
  const stranger = spawn('sleep', ['600'], { stdio: 'ignore', ...(await postgresUser()) });
  try {
    const lines = (await fs.readFile(pidFile(), 'utf8')).split('\n');
    lines[0] = String(stranger.pid);
    await fs.writeFile(pidFile(), lines.join('\n'));
    const fourth = await start(first.port);
    expect(isAlive(stranger.pid!)).toBe(true);
    expect(await roundTrip(fourth.url)).toEqual(['a', 'b', 'c']);
  } finally {
    stranger.kill('SIGKILL');
  }
});
