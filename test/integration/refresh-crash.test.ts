import { randomBytes } from 'node:crypto';
import { AuthLostError, createAccessBroker, RefreshInDoubtError } from '../../src/credentials/access';
import { createVault } from '../../src/credentials/vault';
import { Keyring } from '../../src/crypto/keyring';
import { createSql, type Sql } from '../../src/db/sql';
import { isProviderError } from '../../src/providers/errors';
import { createProviders } from '../../src/providers/registry';
import { completeOAuth, startStack, waitFor, WorkerProcess, type Stack } from '../helpers/stack';

/**
 * Bitbucket rotates the refresh token on every refresh, so the new pair exists only in the memory
 * of the refresher until it is saved. A crash, a dropped database connection or a failed save in
 * that gap must not cost the connection its grant: the save is retried in place on a connection
 * of its own, and a refresh left in doubt is retried with the stored token inside Bitbucket's
 * grace window instead of parking the connection.
 */

let stack: Stack;
let apiKey: string;

beforeAll(async () => {
  stack = await startStack();
  ({ apiKey } = await stack.createTenant('Refresh crashes'));
});

afterAll(async () => {
  await stack?.stop();
});

const api = (method: string, path: string, body?: unknown) => stack.request(method, path, { apiKey, body });
const runs = async (id: string) => (await api('GET', `/v1/connections/${id}/runs`)).body.items as any[];
const succeeded = async (id: string) => (await runs(id)).filter((r) => r.status === 'succeeded').length;

async function connectedBitbucket(): Promise<any> {
  const conn = (await api('POST', '/v1/connections', { provider: 'bitbucket' })).body;
  await completeOAuth(stack, apiKey, conn.id);
  await waitFor(async () => (await succeeded(conn.id)) >= 1, 60_000, 'first sync');
  return conn;
}

/** A broker of our own (one "worker"), on a pool whose connections the test can find and cut. */
function broker(name: string, extra: Partial<Parameters<typeof createAccessBroker>[0]> = {}) {
  const sql: Sql = createSql(stack.env.DATABASE_URL!, { max: 3, applicationName: name });
  const providers = createProviders(stack.config.providers);
  // Leases on sessions of their own, as the worker holds them.
  const lease = () => createSql(stack.env.DATABASE_URL!, { max: 1, applicationName: name });
  const vault = createVault(sql, new Keyring(stack.config.encryptionKeys), lease);
  const b = createAccessBroker({ vault, providers, ...extra });
  const account = (connectionId: string) => b.withAccess(connectionId, 'bitbucket', (token) => providers.bitbucket.getAccount(token));
  return { sql, account, close: () => sql.end({ timeout: 5 }) };
}

const doubtOf = async (connectionId: string) =>
  (await stack.sql`select refresh_started_at from credentials where connection_id = ${connectionId} and state = 'active'`)[0]!
    .refreshStartedAt as Date | null;

describe('a refresh interrupted between the token response and the save', () => {
  afterEach(() => stack.bitbucket.control.setRefreshTokenGrace(0));

  it('keeps the new pair when the database connections drop in the gap (the save is retried in place)', async () => {
    const conn = await connectedBitbucket();
    stack.bitbucket.control.setRefreshTokenGrace(0); // no second chance for the old refresh token
    stack.bitbucket.control.expireAccessTokens();
    const reuse = stack.bitbucket.control.refreshTokenReuseCount();
    const refreshes = stack.bitbucket.control.refreshCount();
    const cut = broker('refresh-cut', {
      afterTokenResponse: async () => {
        await stack.sql`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'refresh-cut'`;
      },
    });
    try {
      await expect(cut.account(conn.id)).resolves.toMatchObject({ id: expect.any(String) });
    } finally {
      await cut.close();
    }
    expect(stack.bitbucket.control.refreshCount()).toBe(refreshes + 1);
    expect(stack.bitbucket.control.refreshTokenReuseCount()).toBe(reuse);
    expect(await doubtOf(conn.id)).toBeNull();
    // The saved pair is the live one: the workflow syncs with it.
    const before = await succeeded(conn.id);
    stack.bitbucket.control.expireAccessTokens();
    expect((await api('POST', `/v1/connections/${conn.id}/sync`)).status).toBe(202);
    await waitFor(async () => (await succeeded(conn.id)) > before, 60_000, 'a sync after the cut');
    expect((await api('GET', `/v1/connections/${conn.id}`)).body.status).toBe('active');
  });

  it('a refresh left in doubt by a dead holder is retried at once with the stored token, inside the grace window', async () => {
    const conn = await connectedBitbucket();
    stack.bitbucket.control.setRefreshTokenGrace(60);
    stack.bitbucket.control.expireAccessTokens();
    const dying = broker('refresh-dying', {
      afterTokenResponse: async () => {
        throw new Error('simulated crash after the token response');
      },
    });
    try {
      await expect(dying.account(conn.id)).rejects.toThrow('simulated crash');
    } finally {
      await dying.close();
    }
    expect(await doubtOf(conn.id)).toBeInstanceOf(Date);
    const reuse = stack.bitbucket.control.refreshTokenReuseCount();
    const next = broker('refresh-next');
    try {
      await expect(next.account(conn.id)).resolves.toMatchObject({ id: expect.any(String) });
    } finally {
      await next.close();
    }
    // The stored (rotated-out) refresh token was spent once more, inside the window, and the doubt is gone.
    expect(stack.bitbucket.control.refreshTokenReuseCount()).toBe(reuse + 1);
    expect(await doubtOf(conn.id)).toBeNull();
  });

  it('a refusal while a refresh is in doubt is retried, not lost access; after the grace window it is', async () => {
    const conn = await connectedBitbucket();
    stack.bitbucket.control.setRefreshTokenGrace(0);
    stack.bitbucket.control.expireAccessTokens();
    const dying = broker('refresh-dying-2', {
      afterTokenResponse: async () => {
        throw new Error('simulated crash after the token response');
      },
    });
    const next = broker('refresh-next-2');
    const later = broker('refresh-later', { now: () => Date.now() + 10 * 60_000 });
    try {
      await expect(dying.account(conn.id)).rejects.toThrow('simulated crash');
      const inDoubt = await next.account(conn.id).catch((e: unknown) => e);
      expect(inDoubt).toBeInstanceOf(RefreshInDoubtError);
      expect(inDoubt).not.toBeInstanceOf(AuthLostError);
      const lost = await later.account(conn.id).catch((e: unknown) => e);
      expect(lost).toBeInstanceOf(AuthLostError);
      expect((lost as AuthLostError).code).toBe('refresh_failed');
    } finally {
      await Promise.all([dying.close(), next.close(), later.close()]);
    }
    expect(await doubtOf(conn.id)).toBeNull();
  });

  it('the worker SIGKILLed right after the token response, again and again: never parked, and it syncs afterwards', async () => {
    const conn = await connectedBitbucket();
    // Each retry of the killed step waits for its heartbeat timeout (15 s); Bitbucket's window is
    // "shortly after", the simulator's is set to outlast the kills.
    stack.bitbucket.control.setRefreshTokenGrace(600);
    const refreshes = stack.bitbucket.control.refreshCount();
    const before = await succeeded(conn.id);
    const marker = 'TEST HOOK: token response received';
    const markers = () => stack.worker.output.join('').split(marker).length - 1;
    const seen = markers();

    await stack.worker.restart({ CONDUIT_TEST_CRASH_AFTER_TOKEN_RESPONSE: 'pause' });
    stack.bitbucket.control.expireAccessTokens();
    expect((await api('POST', `/v1/connections/${conn.id}/sync`)).status).toBe(202);
    const KILLS = 3;
    for (let i = 1; i <= KILLS; i++) {
      await waitFor(() => markers() >= seen + i, 90_000, `token response #${i}`);
      await stack.worker.kill();
      const view = (await api('GET', `/v1/connections/${conn.id}`)).body;
      expect(view.status).toBe('active');
      if (i < KILLS) await stack.worker.start();
    }
    expect(await doubtOf(conn.id)).toBeInstanceOf(Date);

    await stack.worker.restart({ CONDUIT_TEST_CRASH_AFTER_TOKEN_RESPONSE: '' });
    await waitFor(async () => (await succeeded(conn.id)) > before, 120_000, 'the sync to finish after the kills');
    const view = (await api('GET', `/v1/connections/${conn.id}`)).body;
    expect(view.status).toBe('active');
    expect(view.lastError).toBeNull();
    expect(await doubtOf(conn.id)).toBeNull();
    // Every killed refresh and the last one reached Bitbucket; the last one's pair is the stored one.
    expect(stack.bitbucket.control.refreshCount()).toBe(refreshes + KILLS + 1);
    expect(stack.worker.output.join('')).toContain('an earlier token refresh is in doubt');

    // And the stored pair works for the next refresh with no grace left to lean on.
    stack.bitbucket.control.setRefreshTokenGrace(0);
    stack.bitbucket.control.expireAccessTokens();
    const after = await succeeded(conn.id);
    expect((await api('POST', `/v1/connections/${conn.id}/sync`)).status).toBe(202);
    await waitFor(async () => (await succeeded(conn.id)) > after, 60_000, 'a sync with the saved pair');
    expect((await api('GET', `/v1/connections/${conn.id}`)).body.status).toBe('active');
  }, 400_000);
});

describe('a token answer that never arrives whole (found by the chaos suite)', () => {
  afterEach(() => stack.bitbucket.control.setRefreshTokenGrace(0));

  it.each(['answer_lost', 'answer_cut'] as const)(
    '%s: the refresh is in doubt, not refused, and the stored token gets a pair inside the grace window',
    async (how) => {
      const conn = await connectedBitbucket();
      stack.bitbucket.control.setRefreshTokenGrace(60);
      stack.bitbucket.control.expireAccessTokens();
      // Bitbucket rotates the refresh token, then the connection drops before or during its answer.
      stack.bitbucket.control.failNextRefreshes(1, how);
      const b = broker(`refresh-${how}`);
      try {
        const first = await b.account(conn.id).catch((e: unknown) => e);
        expect(first).not.toBeInstanceOf(AuthLostError);
        expect(isProviderError(first, 'transient')).toBe(true);
        expect(await doubtOf(conn.id)).toBeInstanceOf(Date);
        const reuse = stack.bitbucket.control.refreshTokenReuseCount();
        await expect(b.account(conn.id)).resolves.toMatchObject({ id: expect.any(String) });
        expect(stack.bitbucket.control.refreshTokenReuseCount()).toBe(reuse + 1);
      } finally {
        await b.close();
      }
      expect(await doubtOf(conn.id)).toBeNull();
    },
  );

  it('a sync whose refresh answer is cut off carries on: the connection stays active', async () => {
    const conn = await connectedBitbucket();
    stack.bitbucket.control.setRefreshTokenGrace(60);
    const before = await succeeded(conn.id);
    stack.bitbucket.control.expireAccessTokens();
    stack.bitbucket.control.failNextRefreshes(1, 'answer_cut');
    expect((await api('POST', `/v1/connections/${conn.id}/sync`)).status).toBe(202);
    await waitFor(async () => (await succeeded(conn.id)) > before, 60_000, 'the sync after the cut answer');
    const view = (await api('GET', `/v1/connections/${conn.id}`)).body;
    expect(view).toMatchObject({ status: 'active', lastError: null });
  });
});

describe('short-lived access tokens (found by the chaos suite)', () => {
  afterEach(() => stack.bitbucket.control.setAccessTokenTtl(7200));

  it('a token living less than the refresh margin is refreshed once in its life, not before every request', async () => {
    const conn = await connectedBitbucket();
    // Two minutes: well under the five-minute margin before expiry.
    stack.bitbucket.control.setAccessTokenTtl(120);
    stack.bitbucket.control.expireAccessTokens();
    const b = broker('short-lived');
    const refreshes = stack.bitbucket.control.refreshCount();
    try {
      for (let i = 0; i < 5; i++) await b.account(conn.id);
    } finally {
      await b.close();
    }
    expect(stack.bitbucket.control.refreshCount()).toBe(refreshes + 1);
  });
});

describe('a refresh left in doubt by a killed worker (found by the chaos suite)', () => {
  afterEach(() => stack.bitbucket.control.setRefreshTokenGrace(0));

  it('is finished at once by any other live worker, not when its step is retried after the grace window', async () => {
    const conn = await connectedBitbucket();
    stack.bitbucket.control.setRefreshTokenGrace(600);
    const before = await succeeded(conn.id);
    const reuse = stack.bitbucket.control.refreshTokenReuseCount();
    const marker = 'TEST HOOK: token response received';
    const seen = stack.worker.output.join('').split(marker).length - 1;
    // Another worker process of the deployment, on a task queue of its own: it takes none of this
    // connection's Temporal work, so only its own timer can finish the refresh.
    const bystander = new WorkerProcess({ ...stack.env, TEMPORAL_TASK_QUEUE: `bystander-${randomBytes(4).toString('hex')}` });
    await bystander.start();
    try {
      await stack.worker.restart({ CONDUIT_TEST_CRASH_AFTER_TOKEN_RESPONSE: 'pause' });
      stack.bitbucket.control.expireAccessTokens();
      expect((await api('POST', `/v1/connections/${conn.id}/sync`)).status).toBe(202);
      await waitFor(() => stack.worker.output.join('').split(marker).length - 1 > seen, 90_000, 'the token response');
      await stack.worker.kill();
      await waitFor(async () => (await doubtOf(conn.id)) === null, 60_000, 'another worker to finish the refresh in doubt');
      expect(stack.bitbucket.control.refreshTokenReuseCount()).toBe(reuse + 1);
      expect(bystander.output.join('')).toContain('an earlier token refresh is in doubt');
    } finally {
      await bystander.kill();
    }
    // The rotated-out token is dead from now on: the step's retry can only work with the saved pair.
    stack.bitbucket.control.setRefreshTokenGrace(0);
    await stack.worker.restart({ CONDUIT_TEST_CRASH_AFTER_TOKEN_RESPONSE: '' });
    await waitFor(async () => (await succeeded(conn.id)) > before, 120_000, 'the sync to finish');
    expect((await api('GET', `/v1/connections/${conn.id}`)).body).toMatchObject({ status: 'active', lastError: null });
  }, 300_000);
});
