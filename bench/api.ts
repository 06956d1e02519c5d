/**
 * API throughput: `npm run bench:api [-- --duration=10 --connections=20 --rounds=3]`.
 *
 * Starts the whole stack (bench/lib/stack.ts), creates a tenant with 100 connections, then runs
 * the API as a process of its own (`src/api/server.ts`, as deployed: every plugin, request logs at
 * `info` to a file) and, beside it, a bare Fastify process with the baselines (bench/api-baselines.ts:
 * an empty route, the same single indexed Postgres read, the same list read). autocannon drives
 * each target for `duration` seconds with `connections` sockets, round after round, interleaved so
 * every target meets the same machine load; the median of the rounds is reported.
 *
 * Goal: `GET /v1/connections/:id` at ≥ 0.5× the one-read baseline's requests/s, with p99 ≤ 2× its p99.
 */
import autocannon from 'autocannon';
import os from 'node:os';
import path from 'node:path';
import { getFreePort } from '../dev/ports';
import { startNodeScript, waitForHttp } from './lib/processes';
import {
  createCleanup,
  fixed,
  int,
  loadAverage,
  mapConcurrent,
  parseSizes,
  percentile,
  printVerdicts,
  progress,
  ratio,
  recordResult,
  runMain,
  table,
  usageLine,
  type Verdict,
} from './lib/report';
import { startBenchStack } from './lib/stack';

const DEFAULTS = { duration: 10, connections: 20, rounds: 3, list: 100 };
const USAGE = usageLine('bench:api', DEFAULTS);

interface Target {
  name: string;
  url: string;
  headers?: Record<string, string>;
}

interface Run {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

async function main(): Promise<number> {
  const { sizes, out, help } = parseSizes(process.argv.slice(2), DEFAULTS);
  if (help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const loadBefore = loadAverage();
  const cleanup = createCleanup();
  try {
    const stack = await startBenchStack(cleanup);
    const tenant = await stack.createTenant('api bench');
    progress(`creating ${int(sizes.list)} connections`);
    const ids = await mapConcurrent(Array.from({ length: Math.round(sizes.list) }), 10, async () => {
      const res = await stack.request('POST', '/v1/connections', { apiKey: tenant.apiKey, body: { provider: 'bitrise' } });
      if (res.status !== 201) throw new Error(`create answered ${res.status}`);
      return (res.body as { id: string }).id;
    });
    const id = ids[0]!;

    const [apiPort, basePort] = [await getFreePort(), await getFreePort()];
    const logDir = os.tmpdir();
    progress('starting the API and the baseline server, each in a process of its own');
    startNodeScript(
      cleanup,
      'src/api/server.ts',
      { ...stack.env, PORT: String(apiPort), HOST: '127.0.0.1', LOG_LEVEL: 'info' },
      path.join(logDir, `conduit-bench-api-${apiPort}.log`),
    );
    startNodeScript(
      cleanup,
      'bench/api-baselines.ts',
      { DATABASE_URL: stack.env.DATABASE_URL!, PORT: String(basePort), BENCH_TENANT_ID: tenant.id },
      path.join(logDir, `conduit-bench-baselines-${basePort}.log`),
    );
    await Promise.all([waitForHttp(`http://127.0.0.1:${apiPort}/healthz`), waitForHttp(`http://127.0.0.1:${basePort}/healthz`)]);

    const auth = { authorization: `Bearer ${tenant.apiKey}` };
    const targets: Target[] = [
      { name: 'empty Fastify route', url: `http://127.0.0.1:${basePort}/empty` },
      { name: 'one indexed read (baseline)', url: `http://127.0.0.1:${basePort}/one-read/${id}` },
      { name: 'GET /v1/connections/:id', url: `http://127.0.0.1:${apiPort}/v1/connections/${id}`, headers: auth },
      { name: `list read, ${int(sizes.list)} rows (baseline)`, url: `http://127.0.0.1:${basePort}/list` },
      {
        name: `GET /v1/connections?limit=${int(sizes.list)}`,
        url: `http://127.0.0.1:${apiPort}/v1/connections?limit=${Math.round(sizes.list)}`,
        headers: auth,
      },
    ];
    for (const t of targets) {
      const res = await fetch(t.url, { headers: t.headers });
      if (res.status !== 200) throw new Error(`${t.name} answered ${res.status}: ${await res.text()}`);
    }
    progress('warming up each target for 2 s');
    for (const t of targets) await drive(t, 2, sizes.connections);

    const runs = new Map<string, Run[]>(targets.map((t) => [t.name, []]));
    for (let round = 1; round <= sizes.rounds; round++) {
      for (const t of targets) {
        progress(`round ${round}/${sizes.rounds}: ${t.name}`);
        runs.get(t.name)!.push(await drive(t, sizes.duration, sizes.connections));
      }
    }
    const median = (name: string, key: keyof Run) =>
      percentile(
        runs.get(name)!.map((r) => r[key]),
        50,
      );
    const summary = Object.fromEntries(
      targets.map((t) => [
        t.name,
        {
          rps: median(t.name, 'rps'),
          p50Ms: median(t.name, 'p50'),
          p99Ms: median(t.name, 'p99'),
          non2xx: runs.get(t.name)!.reduce((n, r) => n + r.non2xx + r.errors, 0),
          rounds: runs.get(t.name),
        },
      ]),
    );
    const [empty, oneRead, apiGet, listBase, apiList] = targets.map((t) => summary[t.name]!);
    process.stdout.write(
      `\n== API: ${sizes.connections} connections, ${sizes.duration} s x ${sizes.rounds} rounds per target (medians)\n\n${table(
        ['target', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx', 'vs one read (rps)', 'vs empty (rps)'],
        targets.map((t) => {
          const s = summary[t.name]!;
          return [
            t.name,
            int(s.rps),
            fixed(s.p50Ms, 1),
            fixed(s.p99Ms, 1),
            int(s.non2xx),
            ratio(s.rps / oneRead!.rps),
            ratio(s.rps / empty!.rps),
          ];
        }),
      )}\n`,
    );
    const verdicts: Verdict[] = [
      { goal: 'GET /:id ≥ 0.5 × one-read rps', measured: ratio(apiGet!.rps / oneRead!.rps), met: apiGet!.rps >= 0.5 * oneRead!.rps },
      {
        goal: 'GET /:id p99 ≤ 2 × one-read p99',
        measured: `${fixed(apiGet!.p99Ms, 1)} vs ${fixed(oneRead!.p99Ms, 1)} ms (${ratio(apiGet!.p99Ms / oneRead!.p99Ms)})`,
        met: apiGet!.p99Ms <= 2 * oneRead!.p99Ms,
      },
      { goal: 'list ≥ 0.5 × list-read rps', measured: ratio(apiList!.rps / listBase!.rps), met: apiList!.rps >= 0.5 * listBase!.rps },
      {
        goal: 'list p99 ≤ 2 × list-read p99',
        measured: `${fixed(apiList!.p99Ms, 1)} vs ${fixed(listBase!.p99Ms, 1)} ms (${ratio(apiList!.p99Ms / listBase!.p99Ms)})`,
        met: apiList!.p99Ms <= 2 * listBase!.p99Ms,
      },
      {
        goal: 'no errors',
        measured: int(Object.values(summary).reduce((n, s) => n + s.non2xx, 0)),
        met: Object.values(summary).every((s) => s.non2xx === 0),
      },
    ];
    printVerdicts('api', verdicts, loadBefore);
    await recordResult(out, 'api', { figures: summary, verdicts, sizes }, loadBefore);
    return verdicts.at(-1)!.met ? 0 : 1;
  } finally {
    await cleanup.run();
  }
}

async function drive(target: Target, seconds: number, connections: number): Promise<Run> {
  const r = await autocannon({ url: target.url, headers: target.headers, duration: seconds, connections });
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx, errors: r.errors + r.timeouts };
}

runMain(main, USAGE);
