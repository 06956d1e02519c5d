import { randomBytes } from 'node:crypto';
import { Keyring, keyIdOf } from '../../src/crypto/keyring';
import { createAccessBroker } from '../../src/credentials/access';
import { createVault } from '../../src/credentials/vault';
import { createSql } from '../../src/db/sql';
import { createProviders } from '../../src/providers/registry';
import { getFreePort } from '../../dev/ports';
import { SDK_METRICS } from '../../src/metrics/sdk';
import { completeOAuth, oauthSecretsSeen, PLATFORM_CLIENT, startStack, waitFor, waitForStatus, type Stack } from '../helpers/stack';
import { collectHistories, dumpDatabase, findLeaks } from '../helpers/leaks';
import { scrape, sumOf, type Sample } from '../helpers/metrics';

/**
 * The whole life of connections of both providers — connect, sync, token refresh, revocation,
 * reconnect, worker crashes, key rotation, disconnect — then what operators see of it (metrics,
 * log context), and finally a scan proving that no secret handled along the way reached the logs,
 * Temporal history or the database in plaintext.
 */

let stack: Stack;
let apiKey: string;
let tenantId: string;
const extraSecrets: string[] = [];
const METRICS_TOKEN = `metrics-${randomBytes(16).toString('hex')}`;
let workerMetricsUrl: string;

beforeAll(async () => {
  const workerMetricsPort = await getFreePort();
  workerMetricsUrl = `http://127.0.0.1:${workerMetricsPort}/metrics`;
  stack = await startStack({ env: { METRICS_TOKEN, WORKER_METRICS_PORT: String(workerMetricsPort) } });
  ({ apiKey, id: tenantId } = await stack.createTenant('Lifecycle'));
  extraSecrets.push(apiKey, METRICS_TOKEN, stack.env.ENCRYPTION_KEY!);
});

afterAll(async () => {
  await stack?.stop();
});

async function connectedBitbucket(): Promise<any> {
  const conn = (await stack.request('POST', '/v1/connections', { apiKey, body: { provider: 'bitbucket' } })).body;
  await completeOAuth(stack, apiKey, conn.id);
  await waitForRun(conn.id, 'succeeded');
  return conn;
}

async function connectedBitrise(): Promise<{ conn: any; token: string }> {
  const conn = (await stack.request('POST', '/v1/connections', { apiKey, body: { provider: 'bitrise' } })).body;
  const token = stack.bitrise.control.createToken();
  expect((await stack.request('PUT', `/v1/connections/${conn.id}/credentials`, { apiKey, body: { token } })).status).toBe(200);
  await waitForRun(conn.id, 'succeeded');
  return { conn, token };
}

const runs = async (id: string) => (await stack.request('GET', `/v1/connections/${id}/runs`, { apiKey })).body.items as any[];

async function waitForRun(id: string, status: string, count = 1, timeoutMs = 30_000): Promise<any[]> {
  let items: any[] = [];
  await waitFor(
    async () => (items = (await runs(id)).filter((r) => r.status === status)).length >= count,
    timeoutMs,
    `${count} ${status} run(s)`,
  );
  return items;
}

const grantOf = (_conn: unknown) => {
  // Each completed OAuth round trip creates one grant at the simulator; the newest is this connection's.
  const grants = stack.bitbucket.control.grants().filter((g) => g.clientId === PLATFORM_CLIENT.clientId);
  return grants[grants.length - 1]!;
};

describe('Bitbucket token refresh', () => {
  it('refreshes transparently on a 401 from an expired token', async () => {
    const conn = await connectedBitbucket();
    const grant = grantOf(conn);
    stack.bitbucket.control.expireAccessTokens();
    expect((await stack.request('POST', `/v1/connections/${conn.id}/sync`, { apiKey })).status).toBe(202);
    await waitForRun(conn.id, 'succeeded', 2);
    expect(stack.bitbucket.control.refreshCount(grant.id)).toBe(grant.refreshCount + 1);
    expect((await stack.request('GET', `/v1/connections/${conn.id}`, { apiKey })).body.status).toBe('active');
  });

  it('refreshes before expiry, trusting expires_in, without waiting for a 401', async () => {
    const conn = await connectedBitbucket();
    const grant = grantOf(conn);
    // A two-hour token stored two hours ago: 20 s left, inside the 5-minute margin, still valid at Bitbucket.
    await stack.sql`
      update credentials set access_expires_at = now() + interval '20 seconds', updated_at = now() - interval '2 hours'
      where connection_id = ${conn.id} and state = 'active'`;
    stack.bitbucket.control.clearRequests();
    await stack.request('POST', `/v1/connections/${conn.id}/sync`, { apiKey });
    await waitForRun(conn.id, 'succeeded', 2);
    expect(stack.bitbucket.control.refreshCount(grant.id)).toBeGreaterThan(grant.refreshCount);
    expect(stack.bitbucket.control.requests().filter((r) => r.status === 401)).toEqual([]);
  });

  it('serializes concurrent refreshes across workers, so the rotating refresh token is spent once', async () => {
    const conn = await connectedBitbucket();
    const grant = grantOf(conn);
    stack.bitbucket.control.expireAccessTokens();
    const reuseBefore = stack.bitbucket.control.refreshTokenReuseCount();

    // Two independent pools stand for two worker processes racing on the same connection.
    const providers = createProviders(stack.config.providers);
    expect(providers.bitbucket.oauth?.platformClient).toEqual(PLATFORM_CLIENT);
    const brokers = [0, 1].map(() => {
      const sql = createSql(stack.env.DATABASE_URL!, { max: 2 });
      const broker = createAccessBroker({ vault: createVault(sql, new Keyring(stack.config.encryptionKeys)), providers });
      return { sql, broker };
    });
    try {
      const bitbucket = providers.bitbucket;
      const results = await Promise.all(
        brokers.flatMap(({ broker }) => [1, 2].map(() => broker.withAccess(conn.id, 'bitbucket', (token) => bitbucket.getAccount(token)))),
      );
      expect(new Set(results.map((a) => a.id)).size).toBe(1);
      expect(stack.bitbucket.control.refreshTokenReuseCount()).toBe(reuseBefore);
      expect(stack.bitbucket.control.refreshCount(grant.id)).toBe(grant.refreshCount + 1);
    } finally {
      await Promise.all(brokers.map(({ sql }) => sql.end()));
    }
    expect((await stack.request('GET', `/v1/connections/${conn.id}`, { apiKey })).body.status).toBe('active');
  });
});

describe('revocation and reconnect', () => {
  it('Bitbucket: revoked grant → needs_reconnect (no polling) → OAuth again → active, cursors kept', async () => {
    const conn = await connectedBitbucket();
    const progress = async () =>
      (
        await stack.sql`select (select count(*) from sync_cursors where connection_id = ${conn.id})::int as cursors,
                              (select count(*) from bitbucket_commits where connection_id = ${conn.id})::int as commits`
      )[0]!;
    const before = await progress();
    expect(before.cursors).toBeGreaterThan(0);
    expect(before.commits).toBeGreaterThan(0);
    stack.bitbucket.control.revokeAll();
    stack.bitbucket.control.expireAccessTokens();
    await stack.request('POST', `/v1/connections/${conn.id}/sync`, { apiKey });
    const parked = await waitForStatus(stack, apiKey, conn.id, 'needs_reconnect');
    expect(parked.lastError).toMatchObject({ code: 'refresh_failed' });
    expect(parked.nextSyncAt).toBeNull();

    // Operators find exactly the parked ones.
    await waitFor(async () => {
      const ids: string[] = [];
      for await (const wf of stack.temporal.workflow.list({ query: `TenantId="${tenantId}" AND ConnectionStatus="needs_reconnect"` }))
        ids.push(wf.workflowId);
      return ids.length === 1 && ids[0] === conn.workflowId;
    });

    // Parked means quiet: sync now is refused, and nothing is sent to the provider meanwhile.
    const syncNow = await stack.request('POST', `/v1/connections/${conn.id}/sync`, { apiKey });
    expect(syncNow.status).toBe(409);
    expect(syncNow.body.error.code).toBe('connection_needs_reconnect');

    const succeededBefore = (await runs(conn.id)).filter((r) => r.status === 'succeeded').length;
    const landing = await completeOAuth(stack, apiKey, conn.id);
    expect(landing.searchParams.get('result')).toBe('connected');
    await waitForRun(conn.id, 'succeeded', succeededBefore + 1);
    const back = await waitForStatus(stack, apiKey, conn.id, 'active');
    expect(back.lastError).toBeNull();
    // The same workflow carried on: no new connection, no new workflow id.
    expect(back.workflowId).toBe(conn.workflowId);
    expect(back.createdAt).toBe(conn.createdAt);
    // Where it stopped: the cursors and data survived, so the run after reconnecting was incremental.
    expect(await progress()).toEqual(before);
    const [latest] = await runs(conn.id);
    expect(latest.counts.commits ?? 0).toBe(0);
  });

  it('Bitrise: revoked token → needs_reconnect → new token → active', async () => {
    const { conn, token } = await connectedBitrise();
    stack.bitrise.control.revokeToken(token);
    await stack.request('POST', `/v1/connections/${conn.id}/sync`, { apiKey });
    const parked = await waitForStatus(stack, apiKey, conn.id, 'needs_reconnect');
    expect(parked.lastError).toMatchObject({ code: 'token_revoked' });
    const res = await stack.request('PUT', `/v1/connections/${conn.id}/credentials`, {
      apiKey,
      body: { token: stack.bitrise.control.createToken() },
    });
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('active');
  });

  it('a transient provider error is retried and never parks the connection', async () => {
    const { conn } = await connectedBitrise();
    stack.bitrise.control.injectFaults({ status: 503, count: 1, pathPrefix: '/v0.1/me' });
    await stack.request('POST', `/v1/connections/${conn.id}/sync`, { apiKey });
    const [latest] = await waitForRun(conn.id, 'succeeded', 2);
    expect(latest.retries).toBe(1);
    expect((await stack.request('GET', `/v1/connections/${conn.id}`, { apiKey })).body.status).toBe('active');
  });
});

describe('outages', () => {
  it('an update sent while the worker is down is applied once it restarts', async () => {
    const { conn } = await connectedBitrise();
    await stack.worker.kill();
    const pausing = stack.request('POST', `/v1/connections/${conn.id}/pause`, { apiKey });
    await new Promise((r) => setTimeout(r, 1000));
    await stack.worker.start();
    const res = await pausing;
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('paused');
    expect((await stack.request('POST', `/v1/connections/${conn.id}/resume`, { apiKey })).status).toBe(200);
  });

  it('a worker killed mid-sync is replaced and the run completes', async () => {
    const { conn } = await connectedBitrise();
    stack.bitrise.control.setLatency(3000);
    try {
      stack.bitrise.control.clearRequests();
      await stack.request('POST', `/v1/connections/${conn.id}/sync`, { apiKey });
      await waitForRun(conn.id, 'running');
      // Kill inside a step, not between two: the first request of the run is still in flight.
      await new Promise((r) => setTimeout(r, 1000));
      expect(stack.bitrise.control.requests()).toEqual([]);
      await stack.worker.kill();
    } finally {
      stack.bitrise.control.setLatency(0);
    }
    await stack.worker.start();
    // The heartbeat timeout notices the dead attempt and the retry finishes the same run.
    const done = await waitForRun(conn.id, 'succeeded', 2, 90_000);
    expect(done[0].retries).toBeGreaterThanOrEqual(1);
    expect((await runs(conn.id)).filter((r) => r.status === 'running')).toEqual([]);
  });
});

describe('encryption key rotation', () => {
  it('keeps working with ENCRYPTION_KEY=<new>,<old> and re-seals credentials under the new key', async () => {
    const { conn } = await connectedBitrise();
    const oldKeyId = keyIdOf(stack.config.encryptionKeys[0]!);
    const [before] = await stack.sql`select key_id from credentials where connection_id = ${conn.id} and state = 'active'`;
    expect(before!.keyId).toBe(oldKeyId);

    const newKey = randomBytes(32);
    extraSecrets.push(newKey.toString('base64'));
    await stack.worker.restart({ ENCRYPTION_KEY: `${newKey.toString('base64')},${stack.env.ENCRYPTION_KEY}` });
    const succeeded = (await runs(conn.id)).filter((r) => r.status === 'succeeded').length;
    await stack.request('POST', `/v1/connections/${conn.id}/sync`, { apiKey });
    await waitForRun(conn.id, 'succeeded', succeeded + 1);
    const [after] = await stack.sql`select key_id from credentials where connection_id = ${conn.id} and state = 'active'`;
    expect(after!.keyId).toBe(keyIdOf(newKey));
    expect((await stack.request('GET', `/v1/connections/${conn.id}`, { apiKey })).body.status).toBe('active');
  });
});

describe('disconnect', () => {
  it('a connection on the customer’s own consumer and a Bitrise one, disconnected: secrets wiped, workflows completed', async () => {
    const own = { clientId: 'customer-consumer', clientSecret: `customer-secret-${randomBytes(12).toString('hex')}` };
    stack.bitbucket.control.addConsumer(own.clientId, own.clientSecret);
    extraSecrets.push(own.clientSecret);
    const bitbucket = (await stack.request('POST', '/v1/connections', { apiKey, body: { provider: 'bitbucket', oauthClient: own } })).body;
    await completeOAuth(stack, apiKey, bitbucket.id);
    await waitForRun(bitbucket.id, 'succeeded');
    expect(stack.bitbucket.control.grants().some((g) => g.clientId === own.clientId)).toBe(true);
    const { conn: bitrise } = await connectedBitrise();

    for (const conn of [bitbucket, bitrise]) {
      const res = await stack.request('DELETE', `/v1/connections/${conn.id}`, { apiKey });
      expect(res.status).toBe(200);
      await waitForStatus(stack, apiKey, conn.id, 'disconnected');
      await waitFor(async () => (await stack.temporal.workflow.getHandle(conn.workflowId).describe()).status.name === 'COMPLETED');
    }
    const [left] = await stack.sql`
      select (select count(*) from credentials where connection_id in ${stack.sql([bitbucket.id, bitrise.id])} and ciphertext is not null)::int as credentials,
             (select count(*) from oauth_clients where connection_id = ${bitbucket.id} and secret_ciphertext is not null)::int as consumers`;
    expect(left).toEqual({ credentials: 0, consumers: 0 });
  });
});

describe('what operators see', () => {
  const scrapeWorker = async () => (await scrape(workerMetricsUrl, METRICS_TOKEN)).samples;

  it('metrics: one sync with a refresh and a 429 shows up exactly in the worker’s counters; the API’s need the token', async () => {
    const before = await scrapeWorker();
    const conn = await connectedBitbucket();
    stack.bitbucket.control.expireAccessTokens();
    stack.bitbucket.control.injectFaults({ status: 429, count: 1, pathPrefix: '/2.0/repositories' });
    expect((await stack.request('POST', `/v1/connections/${conn.id}/sync`, { apiKey })).status).toBe(202);
    const done = await waitForRun(conn.id, 'succeeded', 2);
    const after = await scrapeWorker();
    const delta = (name: string, filter: Record<string, string> = {}) => sumOf(after, name, filter) - sumOf(before, name, filter);

    expect(delta('conduit_sync_runs_total', { provider: 'bitbucket', result: 'succeeded' })).toBe(2);
    expect(delta('conduit_token_refreshes_total', { provider: 'bitbucket', outcome: 'refreshed' })).toBe(1);
    expect(delta('conduit_provider_requests_total', { provider: 'bitbucket', status: '401' })).toBe(1);
    expect(delta('conduit_provider_requests_total', { provider: 'bitbucket', status: '429' })).toBe(1);
    expect(delta('conduit_sync_waits_total', { provider: 'bitbucket', reason: 'rate_limited', kind: 'inline' })).toBe(1);
    // The counters and the runs' own figures come from the same requests and pages.
    expect(delta('conduit_provider_requests_total', { provider: 'bitbucket' })).toBe(done.reduce((n, r) => n + r.requests, 0));
    const resources = Object.keys(done[0].counts);
    expect(resources.length).toBeGreaterThan(3);
    for (const resource of resources) {
      expect({ resource, written: delta('conduit_records_written_total', { provider: 'bitbucket', resource }) }).toEqual({
        resource,
        written: done.reduce((n, r) => n + (r.counts[resource] ?? 0), 0),
      });
    }
    // The Temporal SDK's own figures are served on the same port.
    const missing = Object.entries(SDK_METRICS).filter(
      ([name, labels]) => !after.some((s) => s.name === name && labels.every((label) => label in s.labels)),
    );
    expect(missing).toEqual([]);
    // Bounded labels: no connection, run or tenant id in any of them.
    const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;
    expect(after.filter((s) => Object.values(s.labels).some((v) => UUID.test(v)) && s.name.startsWith('conduit_'))).toEqual([]);

    // The worker's health check needs no token; its metrics and the API's answer the operators' token only.
    expect((await fetch(workerMetricsUrl.replace(/\/metrics$/, '/healthz'))).status).toBe(200);
    // The worker's port and the API's /metrics answer the operators' token only.
    expect((await scrape(workerMetricsUrl)).status).toBe(401);
    expect((await scrape(`${stack.apiUrl}/metrics`)).status).toBe(401);
    expect((await scrape(`${stack.apiUrl}/metrics`, 'not-the-metrics-token')).status).toBe(401);
    const api = await scrape(`${stack.apiUrl}/metrics`, METRICS_TOKEN);
    expect(api.status).toBe(200);
    expect(
      sumOf(api.samples, 'conduit_http_requests_total', { method: 'GET', route: '/v1/connections/:id/runs', status: '200' }),
    ).toBeGreaterThan(0);
    expect(sumOf(api.samples, 'conduit_http_request_duration_seconds_count', { route: '/v1/connections/:id/runs' })).toBeGreaterThan(0);
    expect(api.samples.filter((s: Sample) => Object.values(s.labels).some((v) => UUID.test(v)))).toEqual([]);
    // Connections by provider and status, as Postgres has them.
    const rows = await stack.sql<{ provider: string; status: string; count: number }[]>`
      select provider, status, count(*)::int as count from connections group by provider, status`;
    expect(rows.length).toBeGreaterThan(2);
    for (const { provider, status, count } of rows)
      expect({ provider, status, n: sumOf(api.samples, 'conduit_connections', { provider, status }) }).toEqual({
        provider,
        status,
        n: count,
      });
  });

  it('logs: every line about a connection names its tenant, connection and workflow; the worker’s also the sync run', async () => {
    const json = (lines: string[]) =>
      lines
        .join('')
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    const apiLines = json(stack.apiLogs);
    const workerLines = json(stack.worker.output);
    const ID = /^\/v1\/connections\/([0-9a-f-]{36})(\/|$)/;

    const requestLines = apiLines.filter(
      (l) => l.msg === 'request' && typeof l.path === 'string' && ID.test(l.path) && l.statusCode !== 401,
    );
    expect(requestLines.length).toBeGreaterThan(20);
    for (const l of requestLines) {
      const id = ID.exec(l.path as string)![1];
      expect({ path: l.path, tenantId: l.tenantId, connectionId: l.connectionId, workflowId: l.workflowId }).toEqual({
        path: l.path,
        tenantId,
        connectionId: id,
        workflowId: `connection-${id}`,
      });
    }
    const callbacks = apiLines.filter((l) => l.msg === 'request' && l.path === '/v1/oauth/callback' && l.statusCode === 302);
    expect(callbacks.length).toBeGreaterThan(2);
    for (const l of callbacks)
      expect(l).toMatchObject({ tenantId, connectionId: expect.any(String), workflowId: expect.stringMatching(/^connection-/) });

    // Activities' lines (the SDK's "Activity failed" among them): the ids from their arguments.
    const activityLines = workerLines.filter(
      (l) => typeof l.workflowId === 'string' && l.workflowId.startsWith('connection-') && l.activityType,
    );
    expect(activityLines.some((l) => l.msg === 'Activity failed' && l.activityType === 'syncStep')).toBe(true);
    for (const l of activityLines) {
      const id = (l.workflowId as string).slice('connection-'.length);
      expect({ activityType: l.activityType, tenantId: l.tenantId, connectionId: l.connectionId }).toEqual({
        activityType: l.activityType,
        tenantId,
        connectionId: id,
      });
      if (['syncStep', 'beginRun', 'completeRun', 'failRun'].includes(l.activityType as string))
        expect(l.syncRunId).toEqual(expect.stringMatching(/^[0-9a-f-]{36}$/));
    }
  });
});

describe('no plaintext secret anywhere', () => {
  it('scans Temporal history, the database and the logs for every secret handled above', async () => {
    const secrets = [
      ...stack.bitbucket.control.issuedSecrets(),
      ...stack.bitrise.control.issuedSecrets(),
      PLATFORM_CLIENT.clientSecret,
      stack.env.ADMIN_TOKEN!,
      ...extraSecrets,
      ...oauthSecretsSeen,
    ].filter((s) => s.length >= 8);
    expect(secrets.length).toBeGreaterThan(10);

    const histories = await collectHistories(stack.temporal, `TenantId="${tenantId}"`);
    expect(histories.length).toBeGreaterThan(3);
    const database = await dumpDatabase(stack.sql);
    expect(database).toContain('bitbucket_oauth'); // the dump really holds the credentials rows
    const logs = [...stack.apiLogs, ...stack.worker.output].join('');
    // Requests are logged, the OAuth callback among them, but never with its query string.
    expect(stack.apiLogs.join('')).toContain('"path":"/v1/oauth/callback"');
    expect(logs).not.toMatch(/[?&](code|state)=/);

    expect(findLeaks({ histories: histories.join('\n'), database, logs }, secrets)).toEqual([]);
  });
});
