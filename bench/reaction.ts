/**
 * Reaction times: `npm run bench:reaction [-- --tries=20]`.
 *
 * On the whole stack (bench/lib/stack.ts), `tries` Bitrise connections, one after another, each:
 *
 *   1. token submitted → active: `PUT /credentials` until it answers `active` (the workflow verified
 *      the token with the simulator and published the state before answering);
 *   2. revocation at the provider → `needs_reconnect` on the next attempt: the token is revoked in
 *      the simulator, `POST /sync` asks for the next attempt, timed until the connection row says
 *      `needs_reconnect`;
 *   3. reconnect → first page synced: a new token through `PUT /credentials`, timed until the run
 *      it starts has committed its first page (`sync_runs.last_progress_at`).
 *
 * Conditions are polled every 10 ms, so each figure is late by at most that. p50/p95 per step.
 */
import type { Stack } from '../test/helpers/stack';
import {
  createCleanup,
  fixed,
  loadAverage,
  parseSizes,
  percentile,
  printVerdicts,
  progress,
  recordResult,
  runMain,
  table,
  usageLine,
  type Verdict,
} from './lib/report';
import { startBenchStack } from './lib/stack';

const DEFAULTS = { tries: 20 };
const USAGE = usageLine('bench:reaction', DEFAULTS);
const SEED = { organizations: 1, appsPerOrganization: 1, buildsPerApp: 20, pipelinesPerApp: 2, seed: 3 };
const POLL_MS = 10;

async function main(): Promise<number> {
  const { sizes, out, help } = parseSizes(process.argv.slice(2), DEFAULTS);
  if (help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const loadBefore = loadAverage();
  const cleanup = createCleanup();
  try {
    const stack = await startBenchStack(cleanup, { bitrise: { seed: SEED } });
    const { apiKey } = await stack.createTenant('reaction');
    const api = (method: string, path: string, body?: unknown) => stack.request(method, path, { apiKey, body });
    const times = { activate: [] as number[], revokedToNeedsReconnect: [] as number[], reconnectToFirstPage: [] as number[] };

    for (let i = 1; i <= sizes.tries; i++) {
      progress(`try ${i} of ${sizes.tries}`);
      const conn = (await api('POST', '/v1/connections', { provider: 'bitrise' })).body as { id: string };
      await until(stack, conn.id, `status = 'awaiting_credentials' and state_revision >= 1`);

      const token = stack.bitrise.control.createToken({ label: `reaction-${i}` });
      let t0 = performance.now();
      const attached = await api('PUT', `/v1/connections/${conn.id}/credentials`, { token });
      if (attached.status !== 200 || attached.body.status !== 'active')
        throw new Error(`attach answered ${attached.status} ${JSON.stringify(attached.body)}`);
      times.activate.push(performance.now() - t0);
      await until(stack, conn.id, `last_sync_at is not null and (sync_state->>'state') = 'idle'`);

      stack.bitrise.control.revokeToken(token);
      t0 = performance.now();
      const synced = await api('POST', `/v1/connections/${conn.id}/sync`);
      if (synced.status !== 202) throw new Error(`sync answered ${synced.status}`);
      await until(stack, conn.id, `status = 'needs_reconnect'`);
      times.revokedToNeedsReconnect.push(performance.now() - t0);

      const runsBefore = await stack.sql<{ id: string }[]>`select id from sync_runs where connection_id = ${conn.id}`;
      t0 = performance.now();
      const again = await api('PUT', `/v1/connections/${conn.id}/credentials`, { token: stack.bitrise.control.createToken() });
      if (again.status !== 200) throw new Error(`reconnect answered ${again.status}`);
      await untilFirstPage(
        stack,
        conn.id,
        runsBefore.map((r) => r.id),
      );
      times.reconnectToFirstPage.push(performance.now() - t0);
    }

    const figures = Object.fromEntries(
      Object.entries(times).map(([k, v]) => [
        k,
        { tries: v.length, p50Ms: percentile(v, 50), p95Ms: percentile(v, 95), maxMs: Math.max(...v) },
      ]),
    );
    const label: Record<string, string> = {
      activate: 'token submitted → active',
      revokedToNeedsReconnect: 'revoked at the provider → needs_reconnect (next attempt)',
      reconnectToFirstPage: 'reconnect → first page synced',
    };
    process.stdout.write(
      `\n== reaction (${sizes.tries} tries each, polled every ${POLL_MS} ms)\n\n${table(
        ['step', 'p50 ms', 'p95 ms', 'max ms'],
        Object.entries(figures).map(([k, f]) => [label[k]!, fixed(f.p50Ms, 0), fixed(f.p95Ms, 0), fixed(f.maxMs, 0)]),
      )}\n`,
    );
    // No numeric goal is set for these; the verdicts only record that every try completed.
    const verdicts: Verdict[] = Object.entries(figures).map(([k, f]) => ({
      goal: `${label[k]}: every try completes`,
      measured: `${f.tries} of ${sizes.tries}, p95 ${fixed(f.p95Ms, 0)} ms`,
      met: f.tries === sizes.tries,
    }));
    printVerdicts('reaction', verdicts, loadBefore);
    await recordResult(out, 'reaction', { figures, verdicts, sizes }, loadBefore);
    return 0;
  } finally {
    await cleanup.run();
  }
}

async function until(stack: Stack, id: string, condition: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [row] = await stack.sql`select 1 from connections where id = ${id} and ${stack.sql.unsafe(condition)}`;
    if (row) return;
    if (Date.now() > deadline) throw new Error(`connection ${id}: timed out waiting for ${condition}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** Until a run other than `before` has committed its first page. */
async function untilFirstPage(stack: Stack, id: string, before: string[], timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [row] = await stack.sql`
      select 1 from sync_runs where connection_id = ${id} and last_progress_at is not null
        ${before.length ? stack.sql`and id not in ${stack.sql(before)}` : stack.sql``}`;
    if (row) return;
    if (Date.now() > deadline) throw new Error(`connection ${id}: timed out waiting for the first page after reconnecting`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

runMain(main, USAGE);
