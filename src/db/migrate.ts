import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import postgres from 'postgres';

/**
 * Forward-only migrations in the style of postgres-shift: `migrations/00001_name.sql`, applied in
 * order inside one transaction, recorded in `migrations`. A duplicate number or a gap is a mistake
 * in the repo (a lost or misnumbered file), so it stops start-up rather than guessing.
 */
const MIGRATIONS_DIR = path.join(__dirname, 'migrations');
// Any fixed 64-bit number; it only has to be the same for every process that migrates.
const ADVISORY_LOCK_ID = 7_314_296_001;

export async function listMigrations(dir = MIGRATIONS_DIR): Promise<{ id: number; name: string; file: string }[]> {
  const files = (await readdir(dir)).filter((f) => /^\d{5}_[\w-]+\.sql$/.test(f)).sort();
  let previous = 0;
  return files.map((file) => {
    const id = Number(file.slice(0, 5));
    if (id <= previous) throw new Error(`Migration number ${id} is used twice (${file})`);
    if (id !== previous + 1) throw new Error(`Migration ${String(previous + 1).padStart(5, '0')} is missing (next is ${file})`);
    previous = id;
    return { id, name: file.slice(6, -4), file: path.join(dir, file) };
  });
}

export async function runMigrations(databaseUrl: string): Promise<number[]> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const migrations = await listMigrations();
    return await sql.begin(async (tx) => {
      // Several api/worker replicas may start at once; only one migrates, the rest wait and see it done.
      await tx`select pg_advisory_xact_lock(${ADVISORY_LOCK_ID})`;
      await tx`create table if not exists migrations (
        id int primary key, name text not null, applied_at timestamptz not null default now())`;
      const done = new Set((await tx<{ id: number }[]>`select id from migrations`).map((r) => r.id));
      const applied: number[] = [];
      for (const m of migrations) {
        if (done.has(m.id)) continue;
        await tx.unsafe(await readFile(m.file, 'utf8'));
        await tx`insert into migrations (id, name) values (${m.id}, ${m.name})`;
        applied.push(m.id);
      }
      return applied;
    });
  } finally {
    await sql.end({ timeout: 5 });
  }
}
