/**
 * Ingest: `npm run bench:ingest [-- --scale=1 --accounts=100 --parallel=20]`.
 *
 * Records per second from the Bitrise simulator into Postgres through the real sync activities
 * (bench/sync.ts's engine runner: beginRun, every step as the workflow runs it, completeRun), for
 * one big account (bench:sync's Bitrise account, `--scale` grows it) and for `accounts` small
 * accounts synced at once, `parallel` at a time (a worker's SYNC_MAX_CONCURRENT_PER_PROVIDER slots).
 * Two baselines, measured in the same run on the same data:
 *
 *   - fetch: the simulator's own serving rate, the same pages fetched with plain `fetch`
 *     (bench/sync.ts's baseline client), nothing written;
 *   - bulk load: Postgres loading the very rows the sync stored into the same tables (same indexes),
 *     5,000 rows per statement, no conflict handling: what the database alone can take.
 *
 * Goal: the engine at ≥ 0.5 × the lower of the two. Stored counts are checked against the
 * simulator (exit 1 on a mismatch). Everything runs in this one process, as in bench:sync, so both
 * sides of the fetch ratio pay the same simulator costs.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { createSyncActivities } from '../src/activities/sync';
import { createAccessBroker } from '../src/credentials/access';
import { createVault } from '../src/credentials/vault';
import { Keyring } from '../src/crypto/keyring';
import { runMigrations } from '../src/db/migrate';
import { createSql, type Sql } from '../src/db/sql';
import { createTenant } from '../src/db/tenants';
import { BITRISE_TABLES } from '../src/providers/bitrise/tables';
import { createProviders } from '../src/providers/registry';
import type { TableSpec } from '../src/sync/store';
import { makeReachableTempDir, startEmbeddedPostgres } from '../dev/embedded-postgres';
import { completeSyncCounts, startBitriseSimulator, type BitriseSeed, type BitriseSimulator } from '../simulators/bitrise';
import {
  bitriseBaseline,
  bitriseSeed,
  engineRun,
  measured,
  mismatches,
  newConnection,
  SETTINGS,
  storedCounts,
  unusedSettings,
  type Shared,
  type SyncActivities,
} from './sync';
import {
  createCleanup,
  fixed,
  int,
  loadAverage,
  mapConcurrent,
  parseSizes,
  printVerdicts,
  progress,
  ratio,
  recordResult,
  runMain,
  table,
  usageLine,
  type Verdict,
} from './lib/report';

const DEFAULTS = { scale: 1, accounts: 100, parallel: 20 };
const USAGE = usageLine('bench:ingest', DEFAULTS);

/** A small account: ~200 records, every step of a Bitrise sync. */
const SMALL: BitriseSeed = {
  organizations: 1,
  appsPerOrganization: 2,
  buildsPerApp: 100,
  pipelinesPerApp: 5,
  seed: 5,
  anchor: '2026-01-15T12:00:00.000Z',
};

interface Rate {
  records: number;
  seconds: number;
  perSecond: number;
}
const rate = (records: number, seconds: number): Rate => ({ records, seconds, perSecond: records / seconds });

async function main(): Promise<number> {
  const { sizes, out, help } = parseSizes(process.argv.slice(2), DEFAULTS);
  if (help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const loadBefore = loadAverage();
  const cleanup = createCleanup();
  try {
    const tmp = await makeReachableTempDir('conduit-bench-');
    progress(`starting embedded Postgres in ${tmp}`);
    const pg = await startEmbeddedPostgres({ dataDir: path.join(tmp, 'postgres'), fast: true });
    cleanup.defer(() => pg.stop());
    await runMigrations(pg.url);
    const sql = createSql(pg.url, { applicationName: 'conduit-bench-ingest' });
    cleanup.defer(() => sql.end({ timeout: 5 }));
    const vault = createVault(sql, new Keyring([randomBytes(32)]));
    const shared: Shared = {
      sql,
      vault,
      tenantId: (await createTenant(sql, 'bench ingest')).tenant.id,
      activitiesFor: (settings) => {
        const providers = createProviders(settings);
        return createSyncActivities({ sql, broker: createAccessBroker({ vault, providers }), providers, settings: SETTINGS });
      },
      defer: cleanup.defer,
    };

    // --- One big account.
    const bigSeed = bitriseSeed(sizes.scale);
    progress(`big account: ${int(bigSeed.appsPerOrganization! * bigSeed.organizations!)} apps x ${int(bigSeed.buildsPerApp!)} builds`);
    const big = await simulatorWith(shared, bigSeed, 1);
    await bitriseBaseline(big.sim.apiUrl, big.tokens[0]!); // warm-up, untimed
    const bigFetch = await measured(() => bitriseBaseline(big.sim.apiUrl, big.tokens[0]!));
    const bigFetchRecords = Object.values(bigFetch.value.steps).reduce((n, s) => n + s.records, 0);
    progress('big account: engine first sync');
    const bigRun = await engineRun(sql, big.activities, 'bitrise', big.connections[0]!, true);
    const bigProblems = mismatches(big.expected, await storedCounts(sql, 'bitrise', big.connections[0]!));
    progress('big account: bulk load of the same rows');
    const bigBulk = await bulkLoad(shared, big.connections);

    // --- Many small accounts at once.
    const accounts = Math.round(sizes.accounts);
    const parallel = Math.round(sizes.parallel);
    progress(`${int(accounts)} small accounts, ${int(parallel)} at a time`);
    const small = await simulatorWith(shared, SMALL, accounts);
    await mapConcurrent(small.tokens.slice(0, parallel), parallel, (t) => bitriseBaseline(small.sim.apiUrl, t)); // warm-up
    const smallFetch = await measured(() => mapConcurrent(small.tokens, parallel, (t) => bitriseBaseline(small.sim.apiUrl, t)));
    const smallFetchRecords = smallFetch.value.reduce((n, log) => n + Object.values(log.steps).reduce((m, s) => m + s.records, 0), 0);
    progress(`${int(accounts)} small accounts: engine first syncs`);
    const smallRuns = await measured(() =>
      mapConcurrent(small.connections, parallel, (id) => engineRun(sql, small.activities, 'bitrise', id, true)),
    );
    const smallRecords = smallRuns.value.reduce((n, r) => n + r.records, 0);
    const smallProblems: string[] = [];
    for (const id of small.connections) smallProblems.push(...mismatches(small.expected, await storedCounts(sql, 'bitrise', id)));
    progress(`${int(accounts)} small accounts: bulk load of the same rows`);
    const smallBulk = await bulkLoad(shared, small.connections);

    const cases = {
      big: {
        fetch: rate(bigFetchRecords, bigFetch.seconds),
        engine: rate(bigRun.records, bigRun.seconds),
        bulkLoad: bigBulk,
        mismatches: bigProblems,
      },
      small: {
        accounts,
        parallel,
        fetch: rate(smallFetchRecords, smallFetch.seconds),
        engine: rate(smallRecords, smallRuns.seconds),
        bulkLoad: smallBulk,
        mismatches: smallProblems,
      },
    };
    const rows = Object.entries(cases).map(([name, c]) => {
      const floor = Math.min(c.fetch.perSecond, c.bulkLoad.perSecond);
      return { name, c, floor, ratio: c.engine.perSecond / floor };
    });
    const label = {
      big: `one big account (${int(bigRun.records)} records)`,
      small: `${int(accounts)} small accounts at once, ${int(parallel)} in parallel (${int(smallRecords)} records)`,
    };
    process.stdout.write(
      `\n== ingest (Bitrise, records/s)\n\n${table(
        ['case', 'engine', 'fetch baseline', 'bulk-load baseline', 'engine / lower baseline'],
        rows.map((r) => [
          label[r.name as keyof typeof label],
          `${int(r.c.engine.perSecond)} (${fixed(r.c.engine.seconds)} s)`,
          `${int(r.c.fetch.perSecond)} (${fixed(r.c.fetch.seconds)} s)`,
          `${int(r.c.bulkLoad.perSecond)} (${fixed(r.c.bulkLoad.seconds)} s)`,
          ratio(r.ratio),
        ]),
      )}\n`,
    );
    const problems = [...bigProblems, ...smallProblems];
    if (problems.length) process.stdout.write(`!!! MISMATCH: ${problems.slice(0, 5).join('; ')}\n`);
    const verdicts: Verdict[] = [
      ...rows.map((r) => ({ goal: `${r.name}: engine ≥ 0.5 × lower baseline`, measured: ratio(r.ratio), met: r.ratio >= 0.5 })),
      {
        goal: 'stored counts match the simulator',
        measured: problems.length ? `${problems.length} mismatches` : 'all match',
        met: problems.length === 0,
      },
    ];
    printVerdicts('ingest', verdicts, loadBefore);
    await recordResult(out, 'ingest', { figures: cases, verdicts, sizes }, loadBefore);
    return problems.length ? 1 : 0;
  } finally {
    await cleanup.run();
  }
}

/** A simulator with this seed, and `count` connections on it, each with a token of its own. */
async function simulatorWith(
  shared: Shared,
  seed: BitriseSeed,
  count: number,
): Promise<{
  sim: BitriseSimulator;
  tokens: string[];
  connections: string[];
  activities: SyncActivities;
  expected: Record<string, number>;
}> {
  const sim = await startBitriseSimulator({ seed });
  shared.defer(() => sim.close());
  const tokens: string[] = [];
  const connections: string[] = [];
  for (let i = 0; i < count; i++) {
    const token = sim.control.createToken({ label: `ingest-${i}` });
    const id = await newConnection(shared, 'bitrise');
    await shared.vault.activate(id, await shared.vault.storePending(id, 'bitrise_token', { token }));
    tokens.push(token);
    connections.push(id);
  }
  const settings = unusedSettings();
  const activities = shared.activitiesFor({ ...settings, bitrise: { ...settings.bitrise, apiUrl: sim.apiUrl } });
  return { sim, tokens, connections, activities, expected: completeSyncCounts(sim.control.dataset()) };
}

const BULK_ROWS_PER_STATEMENT = 5_000;

/**
 * Postgres's own rate for the rows the sync stored: read them (untimed), then insert them again
 * under fresh connections into the same tables, 5,000 rows per statement, timed.
 */
async function bulkLoad(shared: Shared, from: string[]): Promise<Rate> {
  const { sql } = shared;
  const specs = Object.values(BITRISE_TABLES) as TableSpec[];
  const batches: { spec: TableSpec; json: string }[] = [];
  let records = 0;
  for (const source of from) {
    const target = await newConnection(shared, 'bitrise');
    for (const spec of specs) {
      // As text, so the driver's camelCase transform leaves the rows alone.
      const rows = await sql<{ row: string }[]>`
        select ((to_jsonb(t) - 'created_at' - 'updated_at') || jsonb_build_object('connection_id', ${target}::uuid))::text as row
        from ${sql(spec.table)} t where connection_id = ${source}`;
      records += rows.length;
      for (let i = 0; i < rows.length; i += BULK_ROWS_PER_STATEMENT)
        batches.push({
          spec,
          json: `[${rows
            .slice(i, i + BULK_ROWS_PER_STATEMENT)
            .map((r) => r.row)
            .join(',')}]`,
        });
    }
  }
  const t0 = performance.now();
  for (const { spec, json } of batches) await insertBatch(sql, spec, json);
  return rate(records, (performance.now() - t0) / 1000);
}

async function insertBatch(sql: Sql, spec: TableSpec, json: string): Promise<void> {
  const columns = sql.unsafe(['connection_id', 'id', 'raw', ...spec.columns].join(', '));
  await sql`insert into ${sql(spec.table)} (${columns}) select ${columns} from jsonb_populate_recordset(null::${sql(spec.table)}, ${json}::text::jsonb)`;
}

runMain(main, USAGE);
