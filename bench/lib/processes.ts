import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import type { Cleanup } from './report';

const ROOT = path.resolve(__dirname, '../..');

export interface NodeProcess {
  pid: number;
  /** Where its stdout and stderr go. */
  logFile: string;
  stop(): Promise<void>;
}

/**
 * A TypeScript entry point in a process of its own, run by node with tsx's loader (as the tests
 * run the worker), so its CPU and memory are its own. Output goes to `logFile`. Stopped by the
 * cleanup (SIGTERM, then SIGKILL after 10 s), by its own pid.
 */
export function startNodeScript(cleanup: Cleanup, script: string, env: Record<string, string>, logFile: string): NodeProcess {
  const log = createWriteStream(logFile);
  // BENCH_PROFILE_DIR=<dir> writes a V8 CPU profile of each such process there (on a clean exit).
  const profile = process.env.BENCH_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`] : [];
  const child = spawn(process.execPath, [...profile, '--require', 'tsx/cjs', path.join(ROOT, script)], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  cleanup.defer(stop);
  return { pid: child.pid!, logFile, stop };
}

/** Polls `url` until it answers 200 (or the deadline passes). */
export async function waitForHttp(url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await fetch(url)).status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer 200 within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
