/**
 * `npm run bench`: every scale benchmark, one after another, each a process of its own that starts
 * and stops everything it needs (so one cannot inherit another's heap, servers or load), all
 * recording into one results file (default bench/results.json), then a summary of every goal.
 *
 *   npm run bench                  full sizes (10,000 parked connections: allow an hour or more)
 *   npm run bench -- --quick       small sizes, a few minutes: checks the scripts, not the figures
 *   npm run bench -- --only=api,reaction
 *
 * Included: bench:parked, bench:ingest, bench:api, bench:reaction. Not included: bench:sync (the
 * per-step engine report under faults; bench:ingest reuses its engine runner and baseline) and
 * bench:insights (the insights queries); run those on their own.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadAverage, progress, RESULTS_FILE, runMain, table, UsageError, type Verdict } from './lib/report';

const BENCHES = {
  parked: { full: [], quick: ['--connections=300'] },
  ingest: { full: [], quick: ['--scale=0.25', '--accounts=20'] },
  api: { full: [], quick: ['--duration=3', '--rounds=1'] },
  reaction: { full: [], quick: ['--tries=5'] },
} as const;
type Bench = keyof typeof BENCHES;
const USAGE = `Usage: npm run bench [-- --quick] [--only=${Object.keys(BENCHES).join(',')}] [--out=bench/results.json]`;

async function main(): Promise<number> {
  let values: { quick?: boolean; only?: string; out?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: process.argv.slice(2),
      options: { quick: { type: 'boolean' }, only: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const names = (values.only?.split(',').map((s) => s.trim()) ?? Object.keys(BENCHES)) as Bench[];
  const unknown = names.filter((n) => !(n in BENCHES));
  if (unknown.length) throw new UsageError(`unknown benchmark(s): ${unknown.join(', ')}`);
  const out = values.out ? path.resolve(values.out) : RESULTS_FILE;

  const failed: string[] = [];
  for (const name of names) {
    const args = [...BENCHES[name][values.quick ? 'quick' : 'full'], `--out=${out}`];
    progress(`=== bench:${name} ${args.join(' ')} (load average ${loadAverage().join(' / ')})`);
    const code = await run(path.join(__dirname, `${name}.ts`), args);
    if (code !== 0) failed.push(`${name} (exit ${code})`);
  }

  const results = JSON.parse(await fs.readFile(out, 'utf8')) as Record<
    string,
    { verdicts: Verdict[]; loadAverage: { before: number[] }; measuredAt: string }
  >;
  const rows = names.flatMap((name) => {
    const r = results[name];
    if (!r) return [[name, '(no result)', '', '', '']];
    return r.verdicts.map((v) => [name, v.goal, v.measured, v.met ? 'yes' : 'NO', r.loadAverage.before.join(' / ')]);
  });
  process.stdout.write(`\n== summary (${out})\n\n${table(['bench', 'goal', 'measured', 'met', 'load avg before'], rows, 5)}\n`);
  if (failed.length) process.stdout.write(`\nfailed: ${failed.join(', ')}\n`);
  return failed.length ? 1 : 0;
}

/** One benchmark under the same loader as this process; its output goes straight through. */
function run(script: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, script, ...args], { stdio: 'inherit' });
    // Ctrl-C reaches the child too (same process group); it cleans up after itself.
    child.on('error', reject);
    child.on('close', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

runMain(main, USAGE);
