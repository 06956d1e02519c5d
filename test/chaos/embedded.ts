/**
 * The embedded stack after a crash: `npm start` (its real entry point, through npm) is SIGKILLed
 * and started again on the same data directory, twice.
 *
 * 1. Only its node processes die (npm, tsx, the process running worker and API): the Temporal dev
 *    server still holds its port and SQLite file, Postgres still runs on the data directory. The
 *    next `npm start` must stop both (they are recorded: Temporal's pid file, postmaster.pid) and
 *    start clean.
 * 2. The whole process tree dies at once, Temporal and Postgres included: a stale postmaster.pid
 *    (here naming a live process that is no postgres, as after pid reuse), a SQLite file with its
 *    write-ahead log. The next `npm start` must come up on them.
 *
 * After each restart every connection carries on: still `active`, a sync asked for through the API
 * succeeds, and the records match the simulators.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { makeReachableTempDir, postgresUser } from '../../dev/embedded-postgres';
import { getFreePort } from '../../dev/ports';
import { isAlive } from '../../dev/processes';
import { completeSyncCounts as bitbucketCounts, startBitbucketSimulator } from '../../simulators/bitbucket';
import { completeSyncCounts as bitriseCounts, startBitriseSimulator } from '../../simulators/bitrise';
import { apiRequester, completeOAuth, PLATFORM_CLIENT, waitFor, type ApiRequest } from '../helpers/stack';
import { commandLine, killTree, processTree } from './processes';

const ROOT = path.resolve(__dirname, '../..');
const START_TIMEOUT_MS = 240_000;

interface Started {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

export async function runEmbeddedStackTest(o: { log: (line: string) => void }): Promise<boolean> {
  const started = Date.now();
  const say = (line: string) => o.log(`[npm start] ${line}`);
  const dir = await makeReachableTempDir('conduit-npm-start-');
  const bitbucket = await startBitbucketSimulator({
    consumers: [PLATFORM_CLIENT],
    seed: { workspaces: 1, reposPerWorkspace: 1, pullRequestsPerRepo: 60, commitsPerRepo: 120, pipelinesPerRepo: 60 },
  });
  const bitrise = await startBitriseSimulator({
    seed: { organizations: 1, appsPerOrganization: 1, buildsPerApp: 60, pipelinesPerApp: 30 },
  });
  const [apiPort, pgPort, temporalPort, uiPort] = [await getFreePort(), await getFreePort(), await getFreePort(), await getFreePort()];
  const adminToken = `admin-${randomBytes(16).toString('hex')}`;
  const env: Record<string, string> = {
    PORT: String(apiPort),
    PUBLIC_URL: `http://127.0.0.1:${apiPort}`,
    ADMIN_TOKEN: adminToken,
    BITBUCKET_CLIENT_ID: PLATFORM_CLIENT.clientId,
    BITBUCKET_CLIENT_SECRET: PLATFORM_CLIENT.clientSecret,
    BITBUCKET_API_URL: bitbucket.apiUrl,
    BITBUCKET_OAUTH_URL: bitbucket.oauthUrl,
    BITRISE_API_URL: bitrise.apiUrl,
    BITBUCKET_REQUESTS_PER_HOUR: '3600000',
    BITRISE_REQUESTS_PER_HOUR: '3600000',
    LOG_PRETTY: 'false',
    LOG_LEVEL: 'warn',
  };
  // Whatever the environment of this process says about a stack of its own must not leak in.
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !/^(DATABASE_URL|TEMPORAL_ADDRESS|TEMPORAL_NAMESPACE|TEMPORAL_TASK_QUEUE|ENCRYPTION_KEY|WORKFLOW_BUNDLE_PATH)$/.test(k),
    ),
  );
  const args = [
    'start',
    '--',
    `--data-dir=${dir}`,
    `--postgres-port=${pgPort}`,
    `--temporal-port=${temporalPort}`,
    `--temporal-ui-port=${uiPort}`,
  ];
  const logFile = await fs.open(path.join(dir, 'npm-start.log'), 'a');
  let current: Started | undefined;

  const start = async (what: string): Promise<Started> => {
    const t = Date.now();
    const child = spawn('npm', args, { cwd: ROOT, env: { ...inherited, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    const onData = (d: Buffer) => {
      output += d.toString();
      void logFile.write(d);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const s: Started = { child, output: () => output, exited };
    current = s;
    await waitFor(() => output.includes('Conduit is running') || child.exitCode !== null, START_TIMEOUT_MS, `npm start (${what})`);
    if (!output.includes('Conduit is running')) throw new Error(`npm start (${what}) failed:\n${output.slice(-4000)}`);
    say(`${what}: up in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    return s;
  };

  const request = apiRequester(env.PUBLIC_URL!, { timeoutMs: 45_000 });
  const failures: string[] = [];
  try {
    let stack = await start('first start');
    const tenant = await request('POST', '/v1/tenants', { headers: { authorization: `Bearer ${adminToken}` }, body: { name: 'Crash' } });
    if (tenant.status !== 201) throw new Error(`tenant: ${tenant.status} ${JSON.stringify(tenant.body)}`);
    const apiKey = tenant.body.apiKey as string;
    const ids = await connect(request, apiKey, bitrise.control.createToken());
    const expected = { bitbucket: bitbucketCounts(bitbucket.control.dataset()), bitrise: bitriseCounts(bitrise.control.dataset()) };
    await carriesOn(request, apiKey, ids, expected, 'after the first start');

    // 1. The node processes die; Temporal and Postgres are left running.
    const leftovers = stackServers(stack.child.pid!);
    if (!leftovers.temporal || !leftovers.postgres) throw new Error(`could not find the stack's servers: ${JSON.stringify(leftovers)}`);
    const nodes = processTree(stack.child.pid!).filter(
      (p) => !processTree(leftovers.temporal!).includes(p) && !processTree(leftovers.postgres!).includes(p),
    );
    for (const p of nodes) process.kill(p, 'SIGKILL');
    await stack.exited;
    if (!isAlive(leftovers.temporal) || !isAlive(leftovers.postgres))
      failures.push('the node processes took Temporal or Postgres down with them: nothing was left behind to test');
    say(
      `SIGKILLed npm start's ${nodes.length} node processes; Temporal (pid ${leftovers.temporal}) and Postgres (pid ${leftovers.postgres}) still run`,
    );
    stack = await start('restart with Temporal and Postgres left running');
    for (const [name, pid] of Object.entries(leftovers))
      if (pid !== undefined && isAlive(pid) && processTree(stack.child.pid!).every((p) => p !== pid))
        failures.push(`the leftover ${name} (pid ${pid}) still runs beside the new stack`);
    await carriesOn(request, apiKey, ids, expected, 'after the restart over the leftovers');

    // 2. The whole tree dies at once; the lock file's pid is then taken by an unrelated process.
    const killed = killTree(stack.child.pid!);
    await stack.exited;
    const lockFile = path.join(dir, 'postgres', 'postmaster.pid');
    const stranger = spawn('sleep', ['600'], { stdio: 'ignore', ...(await postgresUser()) });
    try {
      const lines = (await fs.readFile(lockFile, 'utf8')).split('\n');
      lines[0] = String(stranger.pid);
      await fs.writeFile(lockFile, lines.join('\n'));
      say(`SIGKILLed npm start's whole tree (${killed.length} processes); postmaster.pid now names pid ${stranger.pid} (sleep)`);
      stack = await start('restart after the whole tree was killed');
    } finally {
      stranger.kill('SIGKILL');
    }
    await carriesOn(request, apiKey, ids, expected, 'after the restart over the dead tree');

    // Ctrl-C (the terminal signals the whole foreground group) stops everything in order.
    const servers = stackServers(stack.child.pid!);
    const tree = processTree(stack.child.pid!);
    process.kill(-stack.child.pid!, 'SIGINT');
    await stack.exited;
    const stoppedAll = /Stopped API, worker, (Temporal, Postgres|Postgres, Temporal)\./;
    await waitFor(() => stoppedAll.test(stack.output()), 60_000, 'npm start to stop').catch(() =>
      failures.push(`npm start did not say it stopped everything on Ctrl-C:\n${stack.output().slice(-2000)}`),
    );
    await waitFor(() => tree.every((p) => !isAlive(p)), 30_000, 'every process of npm start to exit').catch(() =>
      failures.push(`Ctrl-C left processes running: ${tree.filter((p) => isAlive(p)).join(', ')}`),
    );
    await waitFor(() => Object.values(servers).every((p) => !p || !isAlive(p)), 30_000, 'Temporal and Postgres to stop').catch(() =>
      failures.push(`Ctrl-C left a server running: ${JSON.stringify(servers)}`),
    );
  } catch (err) {
    failures.push(err instanceof Error ? err.message : String(err));
  } finally {
    if (current?.child.pid && current.child.exitCode === null) killTree(current.child.pid);
    await logFile.close();
    await Promise.all([bitbucket.close(), bitrise.close()]);
  }
  if (failures.length) {
    console.error(`[chaos] [npm start] FAILED:\n  ${failures.join('\n  ')}\n  (output in ${path.join(dir, 'npm-start.log')})`);
    return false;
  }
  await fs.rm(dir, { recursive: true, force: true });
  say(`green: two crashes survived, every connection carried on (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  return true;
}

/** The Temporal dev server and the postmaster of a running `npm start`, by their command lines. */
function stackServers(root: number): { temporal?: number; postgres?: number } {
  const tree = processTree(root);
  return {
    temporal: tree.find((p) => commandLine(p).includes('start-dev')),
    postgres: tree.find((p) => / -D /.test(commandLine(p)) && commandLine(p).includes('postgres')),
  };
}

async function connect(
  request: ApiRequest,
  apiKey: string,
  bitriseToken: string,
): Promise<{ id: string; provider: 'bitbucket' | 'bitrise' }[]> {
  const bb = await request('POST', '/v1/connections', { apiKey, body: { provider: 'bitbucket' } });
  await completeOAuth({ request }, apiKey, bb.body.id);
  const br = await request('POST', '/v1/connections', { apiKey, body: { provider: 'bitrise' } });
  const put = await request('PUT', `/v1/connections/${br.body.id}/credentials`, { apiKey, body: { token: bitriseToken } });
  if (put.status !== 200) throw new Error(`Bitrise token: ${put.status} ${JSON.stringify(put.body)}`);
  return [
    { id: bb.body.id, provider: 'bitbucket' },
    { id: br.body.id, provider: 'bitrise' },
  ];
}

/** Active, a sync asked for now succeeds, and every resource holds what the simulator has. */
async function carriesOn(
  request: ApiRequest,
  apiKey: string,
  ids: { id: string; provider: 'bitbucket' | 'bitrise' }[],
  expected: Record<'bitbucket' | 'bitrise', Record<string, number>>,
  when: string,
): Promise<void> {
  for (const { id, provider } of ids) {
    const asked = Date.now();
    await waitFor(
      async () => (await request('POST', `/v1/connections/${id}/sync`, { apiKey }).catch(() => ({ status: 0 }))).status === 202,
      120_000,
      `${when}: ${provider} to take a sync`,
    );
    await waitFor(
      async () => {
        const runs = (await request('GET', `/v1/connections/${id}/runs`, { apiKey })).body.items as { status: string; startedAt: string }[];
        return runs.some((r) => r.status === 'succeeded' && Date.parse(r.startedAt) >= asked - 1_000);
      },
      120_000,
      `${when}: ${provider}'s sync to succeed`,
    );
    const view = (await request('GET', `/v1/connections/${id}`, { apiKey })).body;
    if (view.status !== 'active') throw new Error(`${when}: ${provider} is ${view.status}`);
    for (const [resource, want] of Object.entries(expected[provider])) {
      let got = 0;
      for (let cursor: string | undefined, page = 0; page === 0 || cursor; page++) {
        const res = await request('GET', `/v1/connections/${id}/records/${resource}?limit=100${cursor ? `&cursor=${cursor}` : ''}`, {
          apiKey,
        });
        got += (res.body.items as unknown[]).length;
        cursor = res.body.nextCursor ?? undefined;
      }
      if (got !== want) throw new Error(`${when}: ${provider} ${resource} has ${got} records, the simulator ${want}`);
    }
  }
}
