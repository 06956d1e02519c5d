import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

/**
 * What every benchmark shares: reading its size flags, percentiles, printing a table, and recording
 * its figures in the results file (`bench/results.json` unless `--out=<file>`). A benchmark is a
 * report, never a test: it prints each figure beside its baseline, measured in the same run, and
 * the ratio between them; it judges only correctness (counts), never time.
 */

export const RESULTS_FILE = path.join(__dirname, '..', 'results.json');

export const progress = (message: string) => process.stderr.write(`[bench] ${message}\n`);

/** A mistake on the command line: reported as one line plus usage, without a stack trace. */
export class UsageError extends Error {}

/**
 * `--name=value` flags, each a positive number with a default, plus `--out`. Unknown flags are a
 * usage error, so a typo never silently runs the default size.
 */
export function parseSizes<K extends string>(
  argv: string[],
  defaults: Record<K, number>,
): { sizes: Record<K, number>; out: string; help: boolean } {
  const options = Object.fromEntries(Object.keys(defaults).map((k) => [k, { type: 'string' as const }]));
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { ...options, out: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const sizes = { ...defaults };
  for (const key of Object.keys(defaults) as K[]) {
    const raw = values[key];
    if (raw === undefined) continue;
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${key} must be a positive number, got ${JSON.stringify(raw)}`);
    sizes[key] = n;
  }
  const out = typeof values.out === 'string' ? path.resolve(values.out) : RESULTS_FILE;
  return { sizes, out, help: values.help === true };
}

export function usageLine(script: string, defaults: Record<string, number>): string {
  return `Usage: npm run ${script} [-- ${Object.entries(defaults)
    .map(([k, v]) => `--${k}=${v}`)
    .join(' ')}] [--out=bench/results.json]`;
}

/** The p-th percentile (0–100) by linear interpolation, as the insights use; NaN for no values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const pos = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** The machine's 1/5/15-minute load averages: absolute figures mean little without them. */
export const loadAverage = (): number[] => os.loadavg().map((l) => Math.round(l * 100) / 100);

export function table(header: string[], rows: string[][], rightAlignFrom = 1): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i >= rightAlignFrom ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
export const fixed = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
export const ratio = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}x` : 'n/a');
export const mib = (bytes: number) => `${Math.round(bytes / 2 ** 20)} MiB`;

/** One goal and what was measured against it, for the summary and the README tables. */
export interface Verdict {
  goal: string;
  measured: string;
  met: boolean;
}

export interface BenchResult {
  /** Figures (numbers, nested objects) as measured. */
  figures: Record<string, unknown>;
  verdicts: Verdict[];
  sizes: Record<string, number>;
}

/**
 * Records one benchmark's result under its name in the results file, keeping the others' (each
 * benchmark can run alone), with when it ran, the load average before and after, and the machine.
 */
export async function recordResult(out: string, name: string, result: BenchResult, loadBefore: number[]): Promise<void> {
  let all: Record<string, unknown> = {};
  try {
    all = JSON.parse(await fs.readFile(out, 'utf8')) as Record<string, unknown>;
  } catch {
    // First result in this file.
  }
  all[name] = {
    measuredAt: new Date().toISOString(),
    loadAverage: { before: loadBefore, after: loadAverage() },
    machine: { cpus: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
    ...result,
  };
  await fs.mkdir(path.dirname(out), { recursive: true });
  await fs.writeFile(out, `${JSON.stringify(all, null, 2)}\n`);
}

export function printVerdicts(name: string, verdicts: Verdict[], loadBefore: number[]): void {
  const lines = [
    '',
    `== ${name}: goals (load average before ${loadBefore.join(' / ')}, after ${loadAverage().join(' / ')})`,
    table(
      ['goal', 'measured', 'met'],
      verdicts.map((v) => [v.goal, v.measured, v.met ? 'yes' : 'NO']),
      3,
    ),
    '',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

/**
 * Teardown in reverse order of setup, run once, on success, on error and on Ctrl-C alike. A signal
 * handler exits after cleaning up, since the interrupted work would otherwise go on. The handler
 * stays installed and ignores repeats: under `npm run` the same Ctrl-C arrives several times (from
 * the terminal, then relayed by npm and by tsx), and tsx's preflight exits the process at once if a
 * signal finds no listener, which would cut the teardown short and leave Postgres' data behind.
 */
export function createCleanup() {
  const steps: (() => Promise<unknown>)[] = [];
  let running: Promise<void> | undefined;
  const run = () =>
    (running ??= (async () => {
      for (const step of steps.reverse())
        await step().catch((err: unknown) => progress(`cleanup step failed: ${err instanceof Error ? err.message : String(err)}`));
    })());
  const onSignal = (signal: NodeJS.Signals) => {
    if (running) return;
    progress(`${signal}: cleaning up`);
    void run().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    defer: (step: () => Promise<unknown>) => void steps.push(step),
    async run() {
      await run();
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
    },
  };
}
export type Cleanup = ReturnType<typeof createCleanup>;

/**
 * Runs a benchmark's `main` with its exit code: 0 unless it failed or found wrong counts. Usage
 * errors print one line and the usage; anything else its stack.
 */
export function runMain(main: () => Promise<number>, usage: string): void {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      if (err instanceof UsageError) process.stderr.write(`${err.message}\n${usage}\n`);
      else process.stderr.write(`[bench] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}

/** Runs `fn` over `items` with at most `concurrency` at once; results in input order. */
export async function mapConcurrent<T, R>(items: readonly T[], concurrency: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  });
  await Promise.all(lanes);
  return results;
}

/** The resident set size of a process (Linux /proc), current and peak, in bytes. */
export async function processRss(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kib('VmRSS'), peak: kib('VmHWM') };
}
