import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { runMigrations } from '../../src/db/migrate';

export interface TestDatabase {
  /** URL of the new, migrated database. */
  url: string;
  /** Drops the database (closing any connections still open on it). */
  drop(): Promise<void>;
}

/**
 * A fresh, uniquely named and fully migrated database on the shared test server
 * (TEST_DATABASE_URL, started by the global setup), so test files never see each other's rows.
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  const serverUrl = process.env.TEST_DATABASE_URL;
  if (!serverUrl) {
    throw new Error('TEST_DATABASE_URL is not set: run the tests through jest (its global setup starts Postgres)');
  }
  const name = `conduit_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  await withAdmin(serverUrl, (sql) => sql`create database ${sql(name)}`);
  const url = withDatabase(serverUrl, name);
  const drop = () => withAdmin(serverUrl, (sql) => sql`drop database if exists ${sql(name)} with (force)`).then(() => undefined);
  try {
    await runMigrations(url);
  } catch (err) {
    await drop().catch(() => undefined);
    throw err;
  }
  return { url, drop };
}

async function withAdmin<T>(serverUrl: string, fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(serverUrl, { max: 1, onnotice: () => undefined });
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

function withDatabase(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}
