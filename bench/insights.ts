/**
 * Insights benchmark: `npm run bench:insights`.
 *
 * Generates one tenant with a Bitrise connection (10 apps, 100,000 builds over a year) and a
 * Bitbucket connection (1 workspace, 500 members, 20 repositories, 100,000 pull requests with two
 * participants each, 300,000 commits, 20,000 pipelines), all with set-based SQL (generate_series),
 * then calls every insights endpoint 50 times (after 5 warm-up calls) through the real Fastify app
 * (`inject`: routing, validation, auth, serialization; no socket) with the default range (the last
 * 30 days), and in the same run times a plain indexed `count(*)` over the rows each endpoint reads.
 * Prints p50/p95 per endpoint and the ratio to its baseline. A report, never a test: it asserts
 * nothing about time. `DATABASE_URL` uses an existing server instead of an embedded one.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { buildApp } from '../src/api/app';
import { createConnectionService } from '../src/api/connections-service';
import type { ApiDeps } from '../src/api/deps';
import { createTenantCache } from '../src/api/tenant-cache';
import { stateSigningKey } from '../src/api/oauth-state';
import { loadConfig } from '../src/config';
import { createVault } from '../src/credentials/vault';
import { Keyring } from '../src/crypto/keyring';
import { insertConnection } from '../src/db/connections';
import { runMigrations } from '../src/db/migrate';
import { createSql, type Sql } from '../src/db/sql';
import { createTenant } from '../src/db/tenants';
import { createProviders } from '../src/providers/registry';
import { startEmbeddedPostgres } from '../dev/embedded-postgres';

const CALLS = 50;
const WARMUP = 5;

export async function generate(sql: Sql, bitrise: string, bitbucket: string): Promise<void> {
  const t0 = performance.now();
  await sql`insert into bitrise_apps (connection_id, id, title, raw)
            select ${bitrise}, 'app-' || a, 'App ' || a, '{}' from generate_series(0, 9) a`;
  // 100,000 builds, newest first, one every ~5 minutes over 365 days; ~3 builds per commit so some flip.
  await sql`
    insert into bitrise_builds (connection_id, id, app_id, build_number, status, triggered_workflow, branch, commit_hash,
                                credit_cost, triggered_at, started_on_worker_at, finished_at, raw)
    select ${bitrise}, 'build-' || i, 'app-' || (i % 10), i,
           case when h < 2 then 0 when h < 82 then 1 when h < 96 then 2 when h < 98 then 3 else 4 end,
           (array['primary', 'deploy', 'test', 'nightly', 'release'])[1 + (i / 10) % 5],
           (array['main', 'develop', 'feature/a', 'feature/b'])[1 + (i / 50) % 4],
           md5(((i / 30) * 10 + i % 10)::text), (1 + h % 7)::numeric,
           t, t + (h % 120) * interval '1 second',
           case when h >= 2 then t + (h % 120 + 60 + (h * 37) % 1200) * interval '1 second' end, '{}'
    from generate_series(0, 99999) i
    cross join lateral (select abs(hashtext(i::text)) % 100 as h, now() - i * interval '315 seconds' as t) x`;
  await sql`insert into bitbucket_workspaces (connection_id, id, slug, raw) values (${bitbucket}, '{ws}', 'bench', '{}')`;
  await sql`insert into bitbucket_repositories (connection_id, id, workspace_id, slug, full_name, raw)
            select ${bitbucket}, '{repo-' || r || '}', '{ws}', 'repo-' || r, 'bench/repo-' || r, '{}' from generate_series(0, 19) r`;
  await sql`insert into bitbucket_members (connection_id, id, workspace_id, user_id, display_name, raw)
            select ${bitbucket}, '{ws}/{user-' || u || '}', '{ws}', '{user-' || u || '}', 'User ' || u, '{}' from generate_series(0, 499) u`;
  // Only 400 of the 500 members ever commit or open pull requests: the rest are idle seats.
  await sql`
    insert into bitbucket_commits (connection_id, id, repository_id, hash, committed_at, author_id, raw)
    select ${bitbucket}, '{repo-' || (i % 20) || '}/' || md5('c' || i), '{repo-' || (i % 20) || '}', md5('c' || i),
           now() - i * interval '105 seconds', '{user-' || (i * 7) % 400 || '}', '{}'
    from generate_series(0, 299999) i`;
  await sql`
    insert into bitbucket_pull_requests (connection_id, id, repository_id, number, state, author_id, created_on, updated_on, raw)
    select ${bitbucket}, '{repo-' || (i % 20) || '}/' || i, '{repo-' || (i % 20) || '}', i,
           case when i % 10 < 7 then 'MERGED' when i % 10 < 9 then 'DECLINED' else 'OPEN' end,
           '{user-' || (i * 13) % 400 || '}', t, t + (1 + (i * 17) % 200) * interval '1 hour', '{}'
    from generate_series(0, 99999) i cross join lateral (select now() - i * interval '315 seconds' as t) x`;
  await sql`
    insert into bitbucket_pr_participants (connection_id, pull_request_id, user_id, role, approved, participated_on)
    select ${bitbucket}, p.id, '{user-' || ((p.number * 13 + k * 101 + 1) % 400) || '}', 'REVIEWER', k = 1,
           p.created_on + (k * (1 + p.number % 20)) * interval '1 hour'
    from bitbucket_pull_requests p cross join generate_series(1, 2) k where p.connection_id = ${bitbucket}`;
  await sql`
    insert into bitbucket_pipelines (connection_id, id, repository_id, build_number, state, result, branch, commit_hash,
                                     created_on, completed_on, build_seconds_used, raw)
    select ${bitbucket}, '{pipe-' || i || '}', '{repo-' || (i % 20) || '}', i, 'COMPLETED',
           case when h < 80 then 'SUCCESSFUL' when h < 95 then 'FAILED' else 'STOPPED' end,
           case when i % 3 = 0 then 'main' else 'feature/x' end, md5('c' || (i * 15)),
           t, t + (60 + h * 9) * interval '1 second', 60 + h * 9,
           jsonb_build_object('target', jsonb_build_object('selector', jsonb_build_object('type', 'branches', 'pattern',
             case when i % 3 = 0 then 'main' else 'feature/*' end)))
    from generate_series(0, 19999) i
    cross join lateral (select abs(hashtext('p' || i)) % 100 as h, now() - i * interval '1575 seconds' as t) x`;
  await sql`update connections set insights_settings = '{"deploymentPattern": "^main$"}' where id = ${bitbucket}`;
  // What autovacuum does to tables after bulk inserts (it starts after 1,000 + 20 % new rows): fresh
  // statistics and a visibility map, without which no index-only scan skips the heap.
  await sql`vacuum analyze`;
  process.stdout.write(`generated in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;

async function time(fn: () => Promise<unknown>): Promise<{ p50: number; p95: number }> {
  for (let i = 0; i < WARMUP; i++) await fn();
  const ms: number[] = [];
  for (let i = 0; i < CALLS; i++) {
    const t = performance.now();
    await fn();
    ms.push(performance.now() - t);
  }
  ms.sort((a, b) => a - b);
  return { p50: quantile(ms, 0.5), p95: quantile(ms, 0.95) };
}

async function main(): Promise<void> {
  let databaseUrl = process.env.DATABASE_URL;
  let stop = async () => {};
  if (!databaseUrl) {
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'conduit-bench-insights-'));
    await fs.chmod(tmp, 0o755);
    const pg = await startEmbeddedPostgres({ dataDir: path.join(tmp, 'pg'), fast: true });
    databaseUrl = pg.url;
    stop = async () => {
      await pg.stop();
      await fs.rm(tmp, { recursive: true, force: true });
    };
  }
  try {
    await runMigrations(databaseUrl);
    const config = loadConfig({
      DATABASE_URL: databaseUrl,
      ADMIN_TOKEN: randomBytes(16).toString('hex'),
      ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      LOG_LEVEL: 'warn',
    });
    const sql = createSql(databaseUrl, { max: 4 });
    const providers = createProviders(config.providers);
    const vault = createVault(sql, new Keyring(config.encryptionKeys));
    // No Temporal: the insights routes only read Postgres.
    const temporal = {} as Client;
    const deps = {
      config,
      sql,
      temporal,
      vault,
      providers,
      connections: createConnectionService({ config, sql, temporal, vault, providers }),
      tenants: await createTenantCache(sql, { ttlMs: config.apiKeyCacheSeconds * 1000 }),
      stateKey: stateSigningKey(config.encryptionKeys[0]!),
      close: () => sql.end({ timeout: 5 }),
    } as unknown as ApiDeps;
    const app = await buildApp(deps);

    const { tenant, apiKey } = await createTenant(sql, 'bench');
    const conn = async (provider: 'bitrise' | 'bitbucket') =>
      (
        await insertConnection(sql, {
          id: randomUUID(),
          tenantId: tenant.id,
          provider,
          name: provider,
          syncIntervalSeconds: 3600,
          returnUrl: null,
        })
      ).id;
    const bitrise = await conn('bitrise');
    const bitbucket = await conn('bitbucket');
    await generate(sql, bitrise, bitbucket);

    const call = (url: string) => async () => {
      const res = await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${apiKey}` } });
      if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
    };
    const since = sql`now() - interval '30 days'`;
    const count = (q: () => Promise<unknown>) => q;
    const baselines = {
      bitriseBuilds: count(() => sql`select count(*) from bitrise_builds where connection_id = ${bitrise} and triggered_at >= ${since}`),
      pipelines: count(() => sql`select count(*) from bitbucket_pipelines where connection_id = ${bitbucket} and created_on >= ${since}`),
      prsOpened: count(
        () => sql`select count(*) from bitbucket_pull_requests where connection_id = ${bitbucket} and created_on >= ${since}`,
      ),
      prsMerged: count(
        () =>
          sql`select count(*) from bitbucket_pull_requests where connection_id = ${bitbucket} and state = 'MERGED' and updated_on >= ${since}`,
      ),
    };
    const endpoints: [string, string, keyof typeof baselines][] = [
      ['ci (bitrise)', `/v1/connections/${bitrise}/insights/ci`, 'bitriseBuilds'],
      ['ci (bitrise, week buckets)', `/v1/connections/${bitrise}/insights/ci?bucket=week`, 'bitriseBuilds'],
      ['flakiness (bitrise)', `/v1/connections/${bitrise}/insights/flakiness`, 'bitriseBuilds'],
      ['ci (bitbucket)', `/v1/connections/${bitbucket}/insights/ci`, 'pipelines'],
      ['flakiness (bitbucket)', `/v1/connections/${bitbucket}/insights/flakiness`, 'pipelines'],
      ['seats', `/v1/connections/${bitbucket}/insights/seats`, 'prsOpened'],
      ['delivery (with DORA)', `/v1/connections/${bitbucket}/insights/delivery`, 'prsMerged'],
      ['overview', `/v1/insights/overview`, 'bitriseBuilds'],
    ];
    const base: Record<string, { p50: number; p95: number }> = {};
    for (const [k, q] of Object.entries(baselines)) base[k] = await time(q);
    const rows: { endpoint: string; p50: number; p95: number; baseline: string; baseP50: number; ratio: number }[] = [];
    for (const [name, url, b] of endpoints) {
      const t = await time(call(url));
      rows.push({ endpoint: name, p50: t.p50, p95: t.p95, baseline: b, baseP50: base[b]!.p50, ratio: t.p50 / base[b]!.p50 });
    }
    process.stdout.write(
      `\n${os.cpus().length} cpus, node ${process.version}, ${CALLS} calls each after ${WARMUP} warm-up, default range (30 days)\n`,
    );
    process.stdout.write('baselines (plain indexed count(*) over the same window, driver only):\n');
    for (const [k, t] of Object.entries(base))
      process.stdout.write(`  ${k.padEnd(16)} p50 ${t.p50.toFixed(2)} ms  p95 ${t.p95.toFixed(2)} ms\n`);
    process.stdout.write('endpoints (app.inject):\n');
    for (const r of rows) {
      process.stdout.write(
        `  ${r.endpoint.padEnd(28)} p50 ${r.p50.toFixed(1).padStart(6)} ms  p95 ${r.p95.toFixed(1).padStart(6)} ms  ` +
          `${r.ratio.toFixed(1).padStart(6)}× ${r.baseline} count(*)  ${r.p95 < 100 ? 'p95 < 100 ms' : 'p95 ≥ 100 ms'}\n`,
      );
    }
    process.stdout.write(`BENCH_JSON ${JSON.stringify({ baselines: base, endpoints: rows })}\n`);
    await app.close();
    await sql.end({ timeout: 5 });
  } finally {
    await stop();
  }
}

if (require.main === module)
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
