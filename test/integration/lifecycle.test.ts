import { randomBytes } from 'node:crypto';
import { Keyring, keyIdOf } from '../../src/crypto/keyring';
import { createAccessBroker } from '../../src/credentials/access';
import { createVault } from '../../src/credentials/vault';
import { createSql } from '../../src/db/sql';
import { createBitbucketClient } from '../../src/providers/bitbucket';
import { completeOAuth, PLATFORM_CLIENT, startStack, waitFor, waitForStatus, type Stack } from '../helpers/stack';
import { collectHistories, dumpDatabase, findLeaks } from '../helpers/leaks';

/**
 * Token refresh, revocation, reconnect, worker crashes, and finally a scan proving that no
 * secret handled along the way reached the logs, Temporal history or the database in plaintext.
 */

let stack: Stack;
let apiKey: string;
let tenantId: string;
const extraSecrets: string[] = [];

beforeAll(async () => {
  stack = await startStack();
  ({ apiKey, id: tenantId } = await stack.createTenant('Lifecycle'));
  extraSecrets.push(apiKey);
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
  await waitFor(async () => (items = (await runs(id)).filter((r) => r.status === status)).length >= count, timeoutMs, `${count} ${status} run(s)`);
  return items;
}

const grantOf = (conn: any) => {
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
    stack.bitbucket.control.setAccessTokenTtl(120); // well inside the 5-minute refresh margin
    try {
      const conn = await connectedBitbucket();
      const grant = grantOf(conn);
      stack.bitbucket.control.clearRequests();
      await stack.request('POST', `/v1/connections/${conn.id}/sync`, { apiKey });
      await waitForRun(conn.id, 'succeeded', 2);
      expect(stack.bitbucket.control.refreshCount(grant.id)).toBeGreaterThan(grant.refreshCount);
      expect(stack.bitbucket.control.requests().filter((r) => r.status === 401)).toEqual([]);
    } finally {
      stack.bitbucket.control.setAccessTokenTtl(7200);
    }
  });

  it('serializes concurrent refreshes across workers, so the rotating refresh token is spent once', async () => {
    const conn = await connectedBitbucket();
    const grant = grantOf(conn);
    stack.bitbucket.control.expireAccessTokens();
    const reuseBefore = stack.bitbucket.control.refreshTokenReuseCount();

    // Two independent pools stand for two worker processes racing on the same connection.
    const brokers = [0, 1].map(() => {
      const sql = createSql(stack.env.DATABASE_URL!, { max: 2 });
      const broker = createAccessBroker({
        vault: createVault(sql, new Keyring(stack.config.encryptionKeys)),
        bitbucket: createBitbucketClient(stack.config.bitbucket),
        platformOAuthClient: PLATFORM_CLIENT,
      });
      return { sql, broker };
    });
    try {
      const bitbucket = createBitbucketClient(stack.config.bitbucket);
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
      (await stack.sql`select (select count(*) from sync_cursors where connection_id = ${conn.id})::int as cursors,
                              (select count(*) from bitbucket_commits where connection_id = ${conn.id})::int as commits`)[0]!;
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
      for await (const wf of stack.temporal.workflow.list({ query: `TenantId="${tenantId}" AND ConnectionStatus="needs_reconnect"` })) ids.push(wf.workflowId);
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
    const res = await stack.request('PUT', `/v1/connections/${conn.id}/credentials`, { apiKey, body: { token: stack.bitrise.control.createToken() } });
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
    await stack.worker.restart({ ENCRYPTION_KEY: `${newKey.toString('base64')},${stack.env.ENCRYPTION_KEY}` });
    const succeeded = (await runs(conn.id)).filter((r) => r.status === 'succeeded').length;
    await stack.request('POST', `/v1/connections/${conn.id}/sync`, { apiKey });
    await waitForRun(conn.id, 'succeeded', succeeded + 1);
    const [after] = await stack.sql`select key_id from credentials where connection_id = ${conn.id} and state = 'active'`;
    expect(after!.keyId).toBe(keyIdOf(newKey));
    expect((await stack.request('GET', `/v1/connections/${conn.id}`, { apiKey })).body.status).toBe('active');
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
