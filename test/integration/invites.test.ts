import type { AddressInfo } from 'node:net';
import { buildApp } from '../../src/api/app';
import { createApiDeps } from '../../src/api/deps';
import { loadConfig } from '../../src/config';
import { sha256 } from '../../src/crypto/tokens';
import { dumpDatabase, findLeaks } from '../helpers/leaks';
import { completeOAuth, startStack, waitFor, waitForStatus, type Stack } from '../helpers/stack';

/**
 * Invite links for the provider's admin, over real HTTP against the real stack (Postgres, Temporal,
 * the worker, both provider simulators): the tenant's API (create, list, revoke, isolation), the
 * pages the admin sees (escaped, under a strict policy), both ways to connect through a link (a
 * Bitrise token verified by the workflow; Bitbucket's OAuth round trip through the simulator), links
 * that cannot be used (expired, used, revoked, unknown), single use under concurrency, the secret
 * stored only as a digest and never logged, and the per-IP rate limit.
 */

const ORIGIN = 'https://app.example.com';
const TENANT_NAME = '<script>alert("t")</script> & Sons';
let stack: Stack;
let tenant: { id: string; apiKey: string };
let other: { id: string; apiKey: string };
/** Every invite secret handed out, for the leak scan at the end. */
const secrets: string[] = [];

beforeAll(async () => {
  stack = await startStack();
  tenant = await stack.createTenant(TENANT_NAME, [ORIGIN]);
  other = await stack.createTenant('Other');
});

afterAll(async () => {
  await stack?.stop();
});

const api = (method: string, path: string, body?: unknown, apiKey = tenant.apiKey) => stack.request(method, path, { apiKey, body });

async function createConnection(provider: 'bitrise' | 'bitbucket', body: Record<string, unknown> = {}, apiKey = tenant.apiKey) {
  const res = await api('POST', '/v1/connections', { provider, ...body }, apiKey);
  expect(res.status).toBe(201);
  return res.body as { id: string; status: string };
}

async function invite(connId: string, body?: unknown) {
  const res = await api('POST', `/v1/connections/${connId}/invites`, body);
  expect(res.status).toBe(201);
  const created = res.body as { id: string; inviteUrl: string; expiresAt: string };
  secrets.push(secretOf(created.inviteUrl));
  return created;
}

const secretOf = (inviteUrl: string) => new URL(inviteUrl).pathname.split('/')[2]!;
const listInvites = async (connId: string, apiKey = tenant.apiKey) =>
  (await api('GET', `/v1/connections/${connId}/invites`, undefined, apiKey)).body.items as any[];
const inviteStatus = async (connId: string, inviteId: string) => (await listInvites(connId)).find((i) => i.id === inviteId)?.status;

async function openPage(url: string) {
  const res = await fetch(url, { redirect: 'manual' });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

async function postForm(url: string, fields: Record<string, string>, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(fields).toString(),
    redirect: 'manual',
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

const connectionOf = async (id: string) => (await api('GET', `/v1/connections/${id}`)).body;
const bitriseMeCalls = () => stack.bitrise.control.requests().filter((r) => r.path === '/v0.1/me').length;
const tokenExchanges = () => stack.bitbucket.control.requests().filter((r) => r.path.endsWith('/access_token')).length;

function expectHtmlError(res: { status: number; headers: Headers; text: string }, status: number, code: string) {
  expect({ status: res.status, type: res.headers.get('content-type') }).toEqual({ status, type: 'text/html; charset=utf-8' });
  expect(res.text).toContain(`<code>${code}</code>`);
}

describe('the tenant’s API', () => {
  it('creates a single-use link (default 7 days) and lists it without its secret', async () => {
    const conn = await createConnection('bitrise');
    const before = Date.now();
    const res = await api('POST', `/v1/connections/${conn.id}/invites`);
    expect(res.status).toBe(201);
    expect(Object.keys(res.body).sort()).toEqual(['expiresAt', 'id', 'inviteUrl']);
    const { id, inviteUrl, expiresAt } = res.body;
    secrets.push(secretOf(inviteUrl));
    // PUBLIC_URL/invite/<256 random bits, base64url>
    expect(inviteUrl).toMatch(new RegExp(`^${stack.apiUrl}/invite/[A-Za-z0-9_-]{43}$`));
    const sevenDays = 7 * 86400_000;
    expect(Date.parse(expiresAt)).toBeGreaterThanOrEqual(before + sevenDays - 5_000);
    expect(Date.parse(expiresAt)).toBeLessThanOrEqual(Date.now() + sevenDays + 5_000);

    const items = await listInvites(conn.id);
    expect(items).toEqual([{ id, status: 'pending', createdAt: expect.any(String), expiresAt, usedAt: null, revokedAt: null }]);
    expect(JSON.stringify(items)).not.toContain(secretOf(inviteUrl));
  });

  it('stores only the SHA-256 digest of the secret', async () => {
    const conn = await createConnection('bitrise');
    const { id, inviteUrl } = await invite(conn.id);
    const secret = secretOf(inviteUrl);
    const [row] = await stack.sql`select * from connection_invites where id = ${id}`;
    expect(Buffer.compare(row!.secretHash as Buffer, sha256(secret))).toBe(0);
    expect(JSON.stringify(row)).not.toContain(secret);
    expect(findLeaks({ database: await dumpDatabase(stack.sql) }, [secret])).toEqual([]);
  });

  it('expiresInSeconds is 300 … 2592000; anything else is 400 and creates nothing', async () => {
    const conn = await createConnection('bitrise');
    const short = await invite(conn.id, { expiresInSeconds: 300 });
    expect(Date.parse(short.expiresAt) - Date.now()).toBeLessThanOrEqual(300_000);
    expect(Date.parse(short.expiresAt) - Date.now()).toBeGreaterThan(240_000);
    const long = await invite(conn.id, { expiresInSeconds: 30 * 86400 });
    expect(Date.parse(long.expiresAt) - Date.now()).toBeGreaterThan(30 * 86400_000 - 60_000);
    for (const body of [
      { expiresInSeconds: 299 },
      { expiresInSeconds: 2592001 },
      { expiresInSeconds: 600.5 },
      { expiresInSeconds: '600' },
      { colour: 'red' },
    ]) {
      const res = await api('POST', `/v1/connections/${conn.id}/invites`, body);
      expect({ body, status: res.status, code: res.body.error?.code }).toEqual({ body, status: 400, code: 'invalid_request' });
    }
    expect(await listInvites(conn.id)).toHaveLength(2);
  });

  it('a connection that cannot take a credential gets no invite (409 connection_<status>)', async () => {
    const conn = await createConnection('bitrise');
    expect((await api('PUT', `/v1/connections/${conn.id}/credentials`, { token: stack.bitrise.control.createToken() })).status).toBe(200);
    // An invite made while it could, opened after it was paused, says so and offers nothing.
    const early = await invite(conn.id);
    expect((await api('POST', `/v1/connections/${conn.id}/pause`)).status).toBe(200);
    const paused = await api('POST', `/v1/connections/${conn.id}/invites`);
    expect({ status: paused.status, code: paused.body.error.code }).toEqual({ status: 409, code: 'connection_paused' });
    const page = await openPage(early.inviteUrl);
    expectHtmlError(page, 409, 'connection_paused');
    expect(page.text).not.toContain('<form');

    expect((await api('DELETE', `/v1/connections/${conn.id}`)).status).toBe(200);
    await waitForStatus(stack, tenant.apiKey, conn.id, 'disconnected');
    const gone = await api('POST', `/v1/connections/${conn.id}/invites`);
    expect({ status: gone.status, code: gone.body.error.code }).toEqual({ status: 409, code: 'connection_disconnected' });

    // provisioning: its workflow is not started yet (the row is what the API reads).
    const young = await createConnection('bitrise');
    // After the workflow's first snapshot, which would otherwise overwrite the status set here.
    await waitFor(
      async () => Number((await stack.sql`select state_revision from connections where id = ${young.id}`)[0]!.stateRevision) > 0,
    );
    await stack.sql`update connections set status = 'provisioning' where id = ${young.id}`;
    const res = await api('POST', `/v1/connections/${young.id}/invites`);
    expect({ status: res.status, code: res.body.error.code }).toEqual({ status: 409, code: 'connection_provisioning' });
    await stack.sql`update connections set status = 'awaiting_credentials' where id = ${young.id}`;
    expect(await listInvites(young.id)).toEqual([]);
  });

  it('another tenant can neither create, list nor revoke (404), and the invite is untouched', async () => {
    const conn = await createConnection('bitrise');
    const mine = await invite(conn.id);
    const theirs = await createConnection('bitrise', {}, other.apiKey);
    const attempts = [
      await api('POST', `/v1/connections/${conn.id}/invites`, undefined, other.apiKey),
      await api('GET', `/v1/connections/${conn.id}/invites`, undefined, other.apiKey),
      await api('DELETE', `/v1/connections/${conn.id}/invites/${mine.id}`, undefined, other.apiKey),
      // Its own connection's path with my invite's id.
      await api('DELETE', `/v1/connections/${theirs.id}/invites/${mine.id}`, undefined, other.apiKey),
    ];
    expect(attempts.map((r) => [r.status, r.body.error?.code])).toEqual(Array(4).fill([404, 'not_found']));
    expect(await listInvites(theirs.id, other.apiKey)).toEqual([]);
    expect(await inviteStatus(conn.id, mine.id)).toBe('pending');
    expect((await openPage(mine.inviteUrl)).status).toBe(200);
    // Without a key at all: 401.
    expect((await stack.request('GET', `/v1/connections/${conn.id}/invites`)).status).toBe(401);
  });

  it('revoking stops the link at once; again is harmless; unknown ids are 404', async () => {
    const conn = await createConnection('bitrise');
    const inv = await invite(conn.id);
    const del = await api('DELETE', `/v1/connections/${conn.id}/invites/${inv.id}`);
    expect(del.status).toBe(204);
    const [item] = await listInvites(conn.id);
    expect(item).toMatchObject({ id: inv.id, status: 'revoked', usedAt: null, revokedAt: expect.any(String) });

    const page = await openPage(inv.inviteUrl);
    expectHtmlError(page, 410, 'invite_revoked');
    expect(page.text).toContain('withdrawn');
    const calls = bitriseMeCalls();
    expectHtmlError(await postForm(`${inv.inviteUrl}/token`, { token: stack.bitrise.control.createToken() }), 410, 'invite_revoked');
    expect(bitriseMeCalls()).toBe(calls);
    expect((await connectionOf(conn.id)).status).toBe('awaiting_credentials');

    expect((await api('DELETE', `/v1/connections/${conn.id}/invites/${inv.id}`)).status).toBe(204);
    expect((await listInvites(conn.id))[0].revokedAt).toBe(item.revokedAt);
    for (const id of ['00000000-0000-4000-8000-000000000000', 'not-a-uuid']) {
      const res = await api('DELETE', `/v1/connections/${conn.id}/invites/${id}`);
      expect({ status: res.status, code: res.body.error.code }).toEqual({ status: 404, code: 'not_found' });
    }
  });
});

describe('the page the admin opens', () => {
  it('says who asks for which access, escaped, under a strict policy, never indexed or leaked by Referer', async () => {
    const conn = await createConnection('bitrise', { name: '<img src=x onerror=alert(1)>' });
    const inv = await invite(conn.id);
    const page = await openPage(inv.inviteUrl);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('referrer-policy')).toBe('same-origin'); // a Referer to ourselves only: forms post with their Origin
    expect(page.headers.get('x-robots-tag')).toContain('noindex');
    expect(page.headers.get('cache-control')).toBe('no-store');
    const csp = page.headers.get('content-security-policy')!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("form-action 'self'");
    expect(csp).not.toContain('script-src');

    expect(page.text).not.toContain('<script');
    expect(page.text).not.toContain('<img');
    expect(page.text).toContain('&#60;script&#62;alert(&#34;t&#34;)&#60;/script&#62; &#38; Sons asks for read-only access to Bitrise');
    expect(page.text).toContain('&#60;img src=x onerror=alert(1)&#62;');
    expect(page.text).toContain('What is synced: workspaces, apps, builds and pipelines');
    // Where to create a token, with Bitrise's own docs.
    expect(page.text).toContain('Account settings → Security → Personal access tokens');
    expect(page.text).toContain('https://docs.bitrise.io/en/bitrise-platform/accounts/personal-access-tokens');
    expect(page.text).toContain('https://docs.bitrise.io/en/bitrise-platform/workspaces/workspace-api-token.html');
    expect(page.text).toContain(`<form method="post" action="/invite/${secretOf(inv.inviteUrl)}/token">`);
    expect(page.text).toContain('<meta name="robots" content="noindex, nofollow">');
    // Opening it changes nothing.
    expect(await inviteStatus(conn.id, inv.id)).toBe('pending');
  });

  it('an unknown link is a 404 page that looks the same whatever was asked', async () => {
    const pages = await Promise.all(
      [`/invite/${'A'.repeat(43)}`, '/invite/x', `/invite/${'b'.repeat(300)}`, '/invite/%E0%A4%A', '/invite/x/y/z', '/invite/'].map((p) =>
        openPage(`${stack.apiUrl}${p}`),
      ),
    );
    for (const page of pages) expectHtmlError(page, 404, 'invite_not_found');
    expect(new Set(pages.map((p) => p.text)).size).toBe(1);
    expect(pages[0]!.headers.get('x-robots-tag')).toContain('noindex');
  });
});

describe('paths the router refuses before any route', () => {
  // Fastify answers these itself (414 and 400 in a shape of its own), which no operation documents;
  // the fuzzer is free to send an {inviteId} or {secret} that long.
  it('answer in our error shape with a documented status: an over-long id is 404, a broken escape 400', async () => {
    const conn = await createConnection('bitrise');
    for (const [path, status, code] of [
      [`/v1/connections/${'x'.repeat(300)}`, 404, 'not_found'],
      [`/v1/connections/${conn.id}/invites/${'x'.repeat(300)}`, 404, 'not_found'],
      ['/v1/connections/%E0%A4%A', 400, 'invalid_request'],
    ] as const) {
      const res = await api(path.includes('/invites/') ? 'DELETE' : 'GET', path);
      expect({ path, status: res.status, body: res.body }).toEqual({
        path,
        status,
        body: { error: { code, message: expect.any(String) } },
      });
    }
  });
});

describe('Bitrise: the admin pastes a token', () => {
  it('a refused token shows the provider’s refusal and leaves the link usable; a good one connects and uses it up', async () => {
    const conn = await createConnection('bitrise', { name: 'CI' });
    const inv = await invite(conn.id);
    const tokenUrl = `${inv.inviteUrl}/token`;

    const refused = await postForm(tokenUrl, { token: 'not-a-real-token' });
    expect(refused.status).toBe(422);
    expect(refused.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(refused.text).toContain('Bitrise refused this token');
    expect(refused.text).toContain('<form method="post"'); // the form again
    expect(await inviteStatus(conn.id, inv.id)).toBe('pending');
    expect((await connectionOf(conn.id)).status).toBe('awaiting_credentials');

    // Not a token at all: refused before asking Bitrise.
    const calls = bitriseMeCalls();
    for (const token of ['', 'two words', 'tök€n']) {
      const bad = await postForm(tokenUrl, { token });
      expect({ token, status: bad.status }).toEqual({ token, status: 400 });
      expect(bad.text).toContain('That is not a token');
    }
    expect(bitriseMeCalls()).toBe(calls);

    const token = stack.bitrise.control.createToken();
    const ok = await postForm(tokenUrl, { token });
    expect(ok.status).toBe(200);
    expect(ok.text).toContain('<h1>Connected</h1>');
    expect(ok.text).not.toContain(token);
    expect((await connectionOf(conn.id)).status).toBe('active');
    const [item] = await listInvites(conn.id);
    expect(item).toMatchObject({ status: 'used', usedAt: expect.any(String), revokedAt: null });

    // Used up: the page and the form say so and change nothing.
    const credentials = await stack.sql`select id, state from credentials where connection_id = ${conn.id} order by id`;
    expectHtmlError(await openPage(inv.inviteUrl), 410, 'invite_used');
    const again = await postForm(tokenUrl, { token: stack.bitrise.control.createToken() });
    expectHtmlError(again, 410, 'invite_used');
    expect(await stack.sql`select id, state from credentials where connection_id = ${conn.id} order by id`).toEqual(credentials);
    // Revoking a used invite leaves it used.
    expect((await api('DELETE', `/v1/connections/${conn.id}/invites/${inv.id}`)).status).toBe(204);
    expect(await listInvites(conn.id)).toEqual([item]);
  });

  it('two admins posting at once: exactly one use wins', async () => {
    const conn = await createConnection('bitrise');
    const inv = await invite(conn.id);
    const results = await Promise.all([1, 2].map(() => postForm(`${inv.inviteUrl}/token`, { token: stack.bitrise.control.createToken() })));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses[0]).toBe(200);
    expect([409, 410]).toContain(statuses[1]);
    const loser = results.find((r) => r.status !== 200)!;
    expect(loser.text).toMatch(/<code>invite_(in_use|used)<\/code>/);
    expect((await listInvites(conn.id))[0].status).toBe('used');
  });

  it('a use in progress holds the link; a claim left by a dead process is taken over after its lease', async () => {
    const conn = await createConnection('bitrise');
    const inv = await invite(conn.id);
    await stack.sql`update connection_invites set claimed_at = now() where id = ${inv.id}`;
    expectHtmlError(await postForm(`${inv.inviteUrl}/token`, { token: stack.bitrise.control.createToken() }), 409, 'invite_in_use');
    // Still pending: the page opens.
    expect((await openPage(inv.inviteUrl)).status).toBe(200);
    await stack.sql`update connection_invites set claimed_at = now() - interval '1 hour' where id = ${inv.id}`;
    expect((await postForm(`${inv.inviteUrl}/token`, { token: stack.bitrise.control.createToken() })).status).toBe(200);
    expect((await listInvites(conn.id))[0].status).toBe('used');
  });

  it('an expired link says so and changes nothing', async () => {
    const conn = await createConnection('bitrise');
    const inv = await invite(conn.id, { expiresInSeconds: 300 });
    expect((await openPage(inv.inviteUrl)).status).toBe(200);
    // Age it instead of waiting.
    await stack.sql`update connection_invites set expires_at = now() - interval '1 second' where id = ${inv.id}`;
    const page = await openPage(inv.inviteUrl);
    expectHtmlError(page, 410, 'invite_expired');
    expect(page.text).toContain('has expired');
    const calls = bitriseMeCalls();
    expectHtmlError(await postForm(`${inv.inviteUrl}/token`, { token: stack.bitrise.control.createToken() }), 410, 'invite_expired');
    expect(bitriseMeCalls()).toBe(calls);
    expect(await listInvites(conn.id)).toEqual([expect.objectContaining({ id: inv.id, status: 'expired', usedAt: null })]);
    expect((await connectionOf(conn.id)).status).toBe('awaiting_credentials');
  });

  it('a cross-site post of the form is refused (403 cross_site_request) and changes nothing', async () => {
    const conn = await createConnection('bitrise');
    const inv = await invite(conn.id);
    const calls = bitriseMeCalls();
    for (const headers of [{ origin: 'https://attacker.example' }, { 'sec-fetch-site': 'cross-site' }] as Record<string, string>[]) {
      const res = await postForm(`${inv.inviteUrl}/token`, { token: stack.bitrise.control.createToken() }, headers);
      expectHtmlError(res, 403, 'cross_site_request');
    }
    expect(bitriseMeCalls()).toBe(calls);
    expect(await inviteStatus(conn.id, inv.id)).toBe('pending');
    // The same site is fine.
    const res = await postForm(
      `${inv.inviteUrl}/token`,
      { token: stack.bitrise.control.createToken() },
      { origin: stack.apiUrl, 'sec-fetch-site': 'same-origin' },
    );
    expect(res.status).toBe(200);
  });
});

describe('Bitbucket: the admin goes through OAuth', () => {
  /** The invite page's Continue, as the admin's browser sends it: returns the provider URL and the binding cookie. */
  async function continueFromInvite(inviteUrl: string) {
    const res = await postForm(`${inviteUrl}/authorize`, {});
    expect(res.status).toBe(302);
    const cookie = res.headers
      .getSetCookie()
      .map((c) => c.split(';')[0])
      .join('; ');
    return { providerUrl: res.headers.get('location')!, cookie };
  }

  async function toCallback(inviteUrl: string) {
    const { providerUrl, cookie } = await continueFromInvite(inviteUrl);
    const toProvider = await fetch(providerUrl, { redirect: 'manual' });
    return { callbackUrl: toProvider.headers.get('location')!, cookie };
  }

  it('page → Continue → Bitbucket → callback: connected, the admin lands on our page, the link is used up', async () => {
    const conn = await createConnection('bitbucket', { name: 'Insights', returnUrl: `${ORIGIN}/integrations` });
    const inv = await invite(conn.id);
    const page = await openPage(inv.inviteUrl);
    expect(page.status).toBe(200);
    expect(page.text).toContain('asks for read-only access to Bitbucket');
    expect(page.text).toContain('Pull requests (read)');
    expect(page.text).toContain(`<form method="post" action="/invite/${secretOf(inv.inviteUrl)}/authorize">`);
    expect(page.text).toContain('Continue to Bitbucket');
    expect(page.headers.get('content-security-policy')).toContain(`form-action 'self' ${new URL(stack.bitbucket.oauthUrl).origin}`);

    const { providerUrl, cookie } = await continueFromInvite(inv.inviteUrl);
    const provider = new URL(providerUrl);
    expect(`${provider.origin}${provider.pathname}`).toBe(`${stack.bitbucket.oauthUrl}/authorize`);
    expect(cookie).toMatch(/^conduit_oauth_[0-9a-f]+=/);
    // The state belongs to the invite, and lives no longer than OAUTH_STATE_TTL_SECONDS.
    const states = await stack.sql`select invite_id, expires_at from oauth_states where connection_id = ${conn.id}`;
    expect(states).toEqual([{ inviteId: inv.id, expiresAt: expect.any(Date) }]);
    expect((states[0]!.expiresAt as Date).getTime()).toBeLessThanOrEqual(Date.now() + stack.config.oauthStateTtlSeconds * 1000);

    const toProvider = await fetch(providerUrl, { redirect: 'manual' });
    const back = await fetch(toProvider.headers.get('location')!, { redirect: 'manual', headers: { cookie } });
    expect(back.status).toBe(302);
    const landing = new URL(back.headers.get('location')!);
    // Not the tenant's returnUrl: the admin is not a user of the tenant's app.
    expect(`${landing.origin}${landing.pathname}`).toBe(`${stack.apiUrl}/v1/oauth/result`);
    expect(Object.fromEntries(landing.searchParams)).toEqual({ connection: conn.id, result: 'connected', via: 'invite' });
    const result = await openPage(landing.toString());
    expect(result.status).toBe(200);
    expect(result.text).toContain('<h1>Connected</h1>');

    expect((await connectionOf(conn.id)).status).toBe('active');
    expect((await listInvites(conn.id))[0]).toMatchObject({ id: inv.id, status: 'used', usedAt: expect.any(String) });
    // A second use is refused, before anything reaches Bitbucket.
    expectHtmlError(await openPage(inv.inviteUrl), 410, 'invite_used');
    expectHtmlError(await postForm(`${inv.inviteUrl}/authorize`, {}), 410, 'invite_used');
  });

  it('a refusal at Bitbucket leaves the link usable; the next try connects', async () => {
    const conn = await createConnection('bitbucket');
    const inv = await invite(conn.id);
    stack.bitbucket.control.denyNextAuthorization();
    const denied = await toCallback(inv.inviteUrl);
    const back = await fetch(denied.callbackUrl, { redirect: 'manual', headers: { cookie: denied.cookie } });
    const landing = new URL(back.headers.get('location')!);
    expect(Object.fromEntries(landing.searchParams)).toMatchObject({ result: 'error', error: 'access_denied', via: 'invite' });
    expect(await openPage(landing.toString()).then((p) => p.text)).toContain('Open the invite link again');
    expect(await inviteStatus(conn.id, inv.id)).toBe('pending');

    const retry = await toCallback(inv.inviteUrl);
    const ok = await fetch(retry.callbackUrl, { redirect: 'manual', headers: { cookie: retry.cookie } });
    expect(new URL(ok.headers.get('location')!).searchParams.get('result')).toBe('connected');
    expect(await inviteStatus(conn.id, inv.id)).toBe('used');
  });

  it('a link revoked while the admin is at Bitbucket spends no code and connects nothing', async () => {
    const conn = await createConnection('bitbucket');
    const inv = await invite(conn.id);
    const { callbackUrl, cookie } = await toCallback(inv.inviteUrl);
    expect((await api('DELETE', `/v1/connections/${conn.id}/invites/${inv.id}`)).status).toBe(204);
    const exchanges = tokenExchanges();
    const back = await fetch(callbackUrl, { redirect: 'manual', headers: { cookie } });
    expect(Object.fromEntries(new URL(back.headers.get('location')!).searchParams)).toMatchObject({
      result: 'error',
      error: 'invite_revoked',
    });
    expect(tokenExchanges()).toBe(exchanges);
    expect((await connectionOf(conn.id)).status).toBe('awaiting_credentials');
    expect(await inviteStatus(conn.id, inv.id)).toBe('revoked');
  });

  it('Continue is refused cross-site, and for a token provider', async () => {
    const conn = await createConnection('bitbucket');
    const inv = await invite(conn.id);
    const res = await postForm(`${inv.inviteUrl}/authorize`, {}, { 'sec-fetch-site': 'cross-site' });
    expectHtmlError(res, 403, 'cross_site_request');
    expect(res.headers.getSetCookie()).toEqual([]);
    expect(await stack.sql`select 1 from oauth_states where connection_id = ${conn.id}`).toEqual([]);
    // The wrong form for the provider.
    expectHtmlError(await postForm(`${inv.inviteUrl}/token`, { token: 'abc' }), 400, 'unsupported_for_provider');
    const bitrise = await invite((await createConnection('bitrise')).id);
    expectHtmlError(await postForm(`${bitrise.inviteUrl}/authorize`, {}), 400, 'unsupported_for_provider');
  });

  it('the tenant’s own authorize flow still returns to its returnUrl', async () => {
    const conn = await createConnection('bitbucket', { returnUrl: `${ORIGIN}/cb` });
    const landing = await completeOAuth(stack, tenant.apiKey, conn.id);
    expect(`${landing.origin}${landing.pathname}`).toBe(`${ORIGIN}/cb`);
    expect(landing.searchParams.get('via')).toBeNull();
  });
});

describe('rate limit', () => {
  it('opening links and posting tokens is limited per IP: 429 page with Retry-After', async () => {
    const deps = await createApiDeps(loadConfig({ ...stack.env, RATE_LIMIT_INVITE_PER_MINUTE: '2' }));
    const app = await buildApp(deps);
    await app.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    try {
      const conn = await createConnection('bitrise');
      const inv = await invite(conn.id);
      const path = new URL(inv.inviteUrl).pathname;
      expect((await openPage(`${url}${path}`)).status).toBe(200);
      expect((await openPage(`${url}/invite/unknown`)).status).toBe(404);
      for (const res of [await openPage(`${url}${path}`), await postForm(`${url}${path}/token`, { token: 'abc' })]) {
        expectHtmlError(res, 429, 'rate_limited');
        const retryAfter = Number(res.headers.get('retry-after'));
        expect(retryAfter).toBeGreaterThan(0);
        expect(retryAfter).toBeLessThanOrEqual(60);
      }
      // The tenant's API is metered per key, not by the invite pages' budget.
      expect(
        (await fetch(`${url}/v1/connections/${conn.id}/invites`, { headers: { authorization: `Bearer ${tenant.apiKey}` } })).status,
      ).toBe(200);
      expect(await inviteStatus(conn.id, inv.id)).toBe('pending');
    } finally {
      await app.close();
      await deps.close();
    }
  });
});

describe('secrets', () => {
  it('no invite secret reaches the logs or the database; paths are logged as /invite/:secret', async () => {
    expect(secrets.length).toBeGreaterThan(10);
    const logs = stack.apiLogs.join('');
    expect(logs).toContain('"path":"/invite/:secret"');
    expect(logs).toContain('"path":"/invite/:secret/token"');
    expect(findLeaks({ logs, database: await dumpDatabase(stack.sql) }, secrets)).toEqual([]);
  });
});
