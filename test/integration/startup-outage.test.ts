import net from 'node:net';
import { getFreePort } from '../../dev/ports';
import { startBitbucketSimulator, type BitbucketSimulator } from '../../simulators/bitbucket';
import { startBitriseSimulator, type BitriseSimulator } from '../../simulators/bitrise';
import { startOwnPostgres, type OwnPostgres } from '../helpers/own-postgres';
import { ApiProcess, PLATFORM_CLIENT, serviceEnv, waitFor, WorkerProcess } from '../helpers/stack';

/**
 * An API or worker (re)started while Postgres or Temporal is down waits for it and comes up when it
 * returns, instead of exiting (src/startup.ts). Before, the API exited with `connect ECONNREFUSED`
 * and the worker with a TransportError, leaving recovery to a supervisor's restart back-off.
 */

let pg: OwnPostgres;
let bitbucket: BitbucketSimulator;
let bitrise: BitriseSimulator;
const started: (ApiProcess | WorkerProcess)[] = [];
const gates: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  pg = await startOwnPostgres();
  bitbucket = await startBitbucketSimulator({ consumers: [PLATFORM_CLIENT] });
  bitrise = await startBitriseSimulator();
});

afterAll(async () => {
  await Promise.all(started.map((p) => p.kill('SIGTERM')));
  await Promise.all(gates.map((g) => g.close()));
  await Promise.all([bitbucket?.close(), bitrise?.close()]);
  await pg?.stop();
});

async function envFor(extra: Record<string, string> = {}) {
  return serviceEnv({ databaseUrl: pg.url, port: await getFreePort(), bitbucket, bitrise, extra });
}

const exited = (p: ApiProcess | WorkerProcess) => p.pid === undefined;

test('an API started while Postgres is down waits for it, then serves', async () => {
  const restarted = pg.restart(6_000);
  await waitFor(async () => !(await pg.isUp()), 10_000, 'Postgres to go down');
  const api = new ApiProcess(await envFor());
  started.push(api);
  const up = api.start();
  await restarted;
  await up;

  expect(api.output.join('')).toMatch(/waiting for Postgres and Temporal: .*ECONNREFUSED/);
  const ready = await fetch(`${api.url}/readyz`);
  expect(ready.status).toBe(200);
  expect(exited(api)).toBe(false);
});

test('an API and a worker started while Temporal is unreachable wait for it, then run', async () => {
  // Temporal's address points at a port where nothing listens until the forwarder below opens.
  const gate = await tcpForwarderLater(process.env.TEST_TEMPORAL_ADDRESS!);
  gates.push(gate);
  const env = await envFor({ TEMPORAL_ADDRESS: gate.address });
  const api = new ApiProcess(env);
  const worker = new WorkerProcess(env);
  started.push(api, worker);
  const up = Promise.all([api.start(), worker.start()]);
  await waitFor(
    () => /waiting for Temporal/.test(worker.output.join('')) && /waiting for Postgres and Temporal/.test(api.output.join('')),
    60_000,
    `both to say they wait; api: ${api.output.join('')}; worker: ${worker.output.join('')}`,
  );
  expect(exited(api) || exited(worker)).toBe(false);
  await gate.open();
  await up;

  expect((await fetch(`${api.url}/readyz`)).status).toBe(200);
  expect(exited(worker)).toBe(false);
});

/** A loopback port that refuses connections until `open()`, then forwards each one to `target`. */
async function tcpForwarderLater(target: string) {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const listenPort = await getFreePort();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => s.destroy());
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  return {
    address: `127.0.0.1:${listenPort}`,
    open: () => new Promise<void>((resolve) => server.listen(listenPort, '127.0.0.1', resolve)),
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
