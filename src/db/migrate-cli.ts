import { z } from 'zod';
import { envShape } from '../config';
import { runMigrations } from './migrate';

// Migrations need only the database, so a migrate job is not handed the app's secrets.
const env = z.object({ DATABASE_URL: envShape.DATABASE_URL });

async function main(): Promise<void> {
  const parsed = env.safeParse(process.env);
  if (!parsed.success) throw new Error(`DATABASE_URL: ${parsed.error.issues[0]?.message}`);
  const applied = await runMigrations(parsed.data.DATABASE_URL);
  console.log(applied.length ? `Applied migrations: ${applied.join(', ')}` : 'Database is up to date');
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
