import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

/**
 * The installed postgres driver carries dev/patch-dependencies.cjs's fix. Unpatched (3.4.9), a query
 * sent on a connection whose backend was terminated (a Postgres restart, an operator's
 * pg_terminate_backend) is written from a setImmediate to a socket already gone: an uncatchable
 * TypeError that kills the process. That is how the worker died under
 * sync-bitrise.test.ts's "dropped database" case. Patched, the query fails with CONNECTION_CLOSED,
 * which our retries handle. Run in a child process, because the unpatched failure is a crash.
 */

const ROOT = path.resolve(__dirname, '../..');

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const SCRIPT = `
const postgres = require('postgres');
(async () => {
  const sql = postgres(process.env.URL, { max: 2, onnotice: () => {} });
  const admin = postgres(process.env.URL, { max: 1, onnotice: () => {} });
  const reserved = await sql.reserve();
  const [{ pid }] = await reserved\`select pg_backend_pid() as pid\`;
  await admin\`select pg_terminate_backend(\${pid})\`;
  await new Promise((r) => setTimeout(r, 300));
  try {
    await reserved\`select 1\`;
    console.log('answered');
  } catch (err) {
    console.log('rejected ' + err.code);
  }
  reserved.release();
  await sql.end({ timeout: 1 });
  await admin.end({ timeout: 1 });
})();
`;

test('a query on a connection whose backend was terminated fails with CONNECTION_CLOSED; the process lives on', () => {
  const child = spawnSync(process.execPath, ['-e', SCRIPT], {
    cwd: ROOT,
    env: { ...process.env, URL: db.url },
    encoding: 'utf8',
    timeout: 30_000,
  });
  expect(child.stderr).not.toMatch(/TypeError/);
  expect(child.stdout.trim().split('\n')).toEqual(['rejected CONNECTION_CLOSED']);
  expect(child.status).toBe(0);
});
