import { DEFAULT_BITBUCKET_CONSUMER, startBitbucketSimulator, type BitbucketSimulator } from '../../simulators/bitbucket';
import { startBitriseSimulator, type BitriseSimulator } from '../../simulators/bitrise';

/**
 * The simulators' chaos switch (random faults of every kind at once, for `npm run test:chaos`):
 * each kind answers the way the provider would, is counted, and the same seed draws the same faults.
 */

const consumer = DEFAULT_BITBUCKET_CONSUMER;
const basic = `Basic ${Buffer.from(`${consumer.clientId}:${consumer.clientSecret}`).toString('base64')}`;

type Outcome = { status: number; body: string; headers: Headers } | { error: string };

/** One GET, read to the end: a reset shows up as an error, before the answer or while reading the body. */
async function get(url: string, headers: Record<string, string> = {}): Promise<Outcome> {
  try {
    const res = await fetch(url, { headers });
    return { status: res.status, body: await res.text(), headers: res.headers };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

const statusOf = (o: Outcome) => ('status' in o ? o.status : 'reset');

async function tokenRequest(sim: BitbucketSimulator, form: Record<string, string>): Promise<Outcome> {
  try {
    const res = await fetch(`${sim.oauthUrl}/access_token`, {
      method: 'POST',
      headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form).toString(),
    });
    return { status: res.status, body: await res.text(), headers: res.headers };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

async function connect(sim: BitbucketSimulator): Promise<{ access_token: string; refresh_token: string }> {
  const res = await fetch(
    `${sim.oauthUrl}/authorize?client_id=${consumer.clientId}&response_type=code&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb`,
    {
      redirect: 'manual',
    },
  );
  const code = new URL(String(res.headers.get('location'))).searchParams.get('code') ?? '';
  const tokens = await tokenRequest(sim, { grant_type: 'authorization_code', code });
  if (!('status' in tokens) || tokens.status !== 200) throw new Error(`no tokens: ${JSON.stringify(tokens)}`);
  return JSON.parse(tokens.body) as { access_token: string; refresh_token: string };
}

describe('simulator chaos', () => {
  let bitbucket: BitbucketSimulator;
  let bitrise: BitriseSimulator;
  let bitriseAuth: Record<string, string>;
  let bitbucketAuth: Record<string, string>;

  beforeAll(async () => {
    bitbucket = await startBitbucketSimulator({ refreshTokenGraceSeconds: 60, seed: { workspaces: 1, reposPerWorkspace: 1 } });
    bitrise = await startBitriseSimulator({ seed: { organizations: 1, appsPerOrganization: 1 } });
    bitriseAuth = { authorization: bitrise.control.createToken() };
    bitbucketAuth = { authorization: `Bearer ${(await connect(bitbucket)).access_token}` };
  });
  afterEach(() => {
    bitbucket.control.reset();
    bitrise.control.reset();
  });
  afterAll(async () => {
    await Promise.all([bitbucket.close(), bitrise.close()]);
  });

  test('errors: every API request answers a 5xx with the provider body; OAuth and /_sim are spared', async () => {
    bitrise.control.setChaos({ errorRate: 1 });
    const answers = await Promise.all(Array.from({ length: 12 }, () => get(`${bitrise.apiUrl}/me`, bitriseAuth)));
    for (const a of answers) {
      expect([500, 502, 503]).toContain(statusOf(a));
      expect(JSON.parse((a as { body: string }).body)).toEqual({ message: expect.any(String) });
    }
    expect(bitrise.control.chaosStats()).toMatchObject({ '5xx': 12, reset_before_response: 0, slow: 0 });
    // The control routes are no API path: chaos never touches them.
    expect(statusOf(await get(`${bitrise.url}/_sim/chaos`))).toBe(200);

    bitbucket.control.setChaos({ errorRate: 1 });
    const answer = await get(`${bitbucket.apiUrl}/user`, bitbucketAuth);
    expect([500, 502, 503]).toContain(statusOf(answer));
    expect(JSON.parse((answer as { body: string }).body)).toEqual({ type: 'error', error: { message: expect.any(String) } });
    // The token endpoint is not an API path: only tokenFaultRate touches it.
    expect(statusOf(await tokenRequest(bitbucket, { grant_type: 'client_credentials' }))).toBe(200);
  });

  test('resets: the connection drops before the answer or halfway through the body', async () => {
    bitrise.control.setChaos({ resetRate: 1, seed: 7 });
    const answers = await Promise.all(Array.from({ length: 20 }, () => get(`${bitrise.apiUrl}/apps?limit=50`, bitriseAuth)));
    expect(answers.every((a) => 'error' in a)).toBe(true);
    const stats = bitrise.control.chaosStats();
    expect(stats.reset_before_response + stats.reset_mid_body).toBe(20);
    expect(stats.reset_before_response).toBeGreaterThan(0);
    expect(stats.reset_mid_body).toBeGreaterThan(0);
  });

  test('a mid-body reset sends the headers and part of the body', async () => {
    // Draw until a mid-body reset comes up, looking at the raw response this time.
    bitbucket.control.setChaos({ resetRate: 1, seed: 3 });
    let sawHeadersThenReset = false;
    for (let i = 0; i < 20 && !sawHeadersThenReset; i++) {
      const before = bitbucket.control.chaosStats().reset_mid_body;
      const res = await fetch(`${bitbucket.apiUrl}/user`, { headers: bitbucketAuth }).catch(() => undefined);
      if (bitbucket.control.chaosStats().reset_mid_body === before) continue;
      expect(res?.status).toBe(200);
      await expect(res!.text()).rejects.toThrow();
      sawHeadersThenReset = true;
    }
    expect(sawHeadersThenReset).toBe(true);
  });

  test('429 storms: Bitbucket answers plain text without Retry-After, Bitrise with it', async () => {
    const storm = { everyMs: 3_600_000, lastsMs: 3_600_000, rate: 1 };
    bitbucket.control.setChaos({ storm });
    bitrise.control.setChaos({ storm });
    const bb = await get(`${bitbucket.apiUrl}/user`, bitbucketAuth);
    const br = await get(`${bitrise.apiUrl}/me`, bitriseAuth);
    expect(statusOf(bb)).toBe(429);
    expect((bb as { headers: Headers }).headers.get('retry-after')).toBeNull();
    expect((bb as { headers: Headers }).headers.get('content-type')).toMatch(/^text\/plain/);
    expect(statusOf(br)).toBe(429);
    expect((br as { headers: Headers }).headers.get('retry-after')).toBe('1');
    expect(bitbucket.control.chaosStats()['429_storm']).toBe(1);

    // Outside the storm's window nothing is drawn from it.
    bitrise.control.setChaos({ storm: { everyMs: 3_600_000, lastsMs: 0, rate: 1 } });
    expect(statusOf(await get(`${bitrise.apiUrl}/me`, bitriseAuth))).toBe(200);
  });

  test('slow answers still answer', async () => {
    bitrise.control.setChaos({ slowRate: 1, slowMs: 50 });
    const answers = await Promise.all(Array.from({ length: 5 }, () => get(`${bitrise.apiUrl}/me`, bitriseAuth)));
    expect(answers.map(statusOf)).toEqual([200, 200, 200, 200, 200]);
    expect(bitrise.control.chaosStats().slow).toBe(5);
  });

  test('token faults: a 503 rotates nothing; a lost answer has rotated, and the old token works within the grace window', async () => {
    const tokens = await connect(bitbucket);
    bitbucket.control.setChaos({ tokenFaultRate: 1, seed: 11 });
    let refreshToken = tokens.refresh_token;
    const seen = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const refreshesBefore = bitbucket.control.refreshCount();
      const answer = await tokenRequest(bitbucket, { grant_type: 'refresh_token', refresh_token: refreshToken });
      expect('error' in answer || statusOf(answer) === 503).toBe(true);
      seen.add(String(statusOf(answer)));
      // A 503 rotated nothing; a lost answer did: the same old token is all the client has either way.
      expect(bitbucket.control.refreshCount() - refreshesBefore).toBe('error' in answer ? 1 : 0);
    }
    expect(seen).toEqual(new Set(['503', 'reset']));
    const stats = bitbucket.control.chaosStats();
    expect(stats.token_5xx + stats.token_answer_lost).toBe(12);

    bitbucket.control.setChaos(null);
    const retried = await tokenRequest(bitbucket, { grant_type: 'refresh_token', refresh_token: refreshToken });
    expect(statusOf(retried)).toBe(200);
    refreshToken = JSON.parse((retried as { body: string }).body).refresh_token;
    expect(refreshToken).not.toBe(tokens.refresh_token);
  });

  test('failNextRefreshes: each way a refresh can fail, in order, before any chaos', async () => {
    const tokens = await connect(bitbucket);
    bitbucket.control.failNextRefreshes(1, 'unavailable');
    bitbucket.control.failNextRefreshes(1, 'answer_lost');
    bitbucket.control.failNextRefreshes(1, 'answer_cut');
    const refresh = () => tokenRequest(bitbucket, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token });
    const before = bitbucket.control.refreshCount();

    expect(statusOf(await refresh())).toBe(503);
    expect(bitbucket.control.refreshCount()).toBe(before);
    expect('error' in (await refresh())).toBe(true);
    expect(bitbucket.control.refreshCount()).toBe(before + 1);
    // Cut off mid-body: the status line and headers arrived, the body did not.
    const cut = await fetch(`${bitbucket.oauthUrl}/access_token`, {
      method: 'POST',
      headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token }).toString(),
    });
    expect(cut.status).toBe(200);
    await expect(cut.json()).rejects.toThrow();
    expect(bitbucket.control.refreshCount()).toBe(before + 2);
    // Used up: the (rotated-out, still in its grace window) token works again.
    expect(statusOf(await refresh())).toBe(200);
    expect(bitbucket.control.chaosStats().token_answer_lost).toBe(0);
    expect(() => bitbucket.control.failNextRefreshes(1, 'nope' as never)).toThrow(/how must be/);
  });

  test('the same seed draws the same faults', async () => {
    const run = async () => {
      bitrise.control.setChaos({ seed: 42, errorRate: 0.3, slowRate: 0.2, slowMs: 1 });
      const statuses: (number | string)[] = [];
      for (let i = 0; i < 30; i++) statuses.push(statusOf(await get(`${bitrise.apiUrl}/me`, bitriseAuth)));
      return { statuses, stats: bitrise.control.chaosStats() };
    };
    const first = await run();
    const second = await run();
    expect(second).toEqual(first);
    expect(first.statuses.some((s) => s !== 200)).toBe(true);
    expect(first.statuses).toContain(200);
  });

  test('over /_sim: turned on, counted, refused when malformed, turned off', async () => {
    const post = (body: unknown) =>
      fetch(`${bitrise.url}/_sim/chaos`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect((await post({ errorRate: 1 })).status).toBe(200);
    expect(statusOf(await get(`${bitrise.apiUrl}/me`, bitriseAuth))).not.toBe(200);
    expect(await (await fetch(`${bitrise.url}/_sim/chaos`)).json()).toMatchObject({ '5xx': 1 });
    expect((await post({ errorRate: 0.8, resetRate: 0.5 })).status).toBe(400);
    expect((await post({ storm: { everyMs: 10, lastsMs: 20, rate: 1 } })).status).toBe(400);
    expect((await post({ off: true })).status).toBe(200);
    expect(statusOf(await get(`${bitrise.apiUrl}/me`, bitriseAuth))).toBe(200);
  });
});
