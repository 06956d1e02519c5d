import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { buildApp } from '../../src/api/app';
import { createApiDeps } from '../../src/api/deps';
import {
  browserCookieKeys,
  browserCookieMatches,
  browserCookieValue,
  consumeState,
  issueState,
  stateKeys,
} from '../../src/api/oauth-state';
import { purgeExpired } from '../../src/api/purge';
import { loadConfig } from '../../src/config';
import { createVault } from '../../src/credentials/vault';
import { Keyring } from '../../src/crypto/keyring';
import { startOAuthInBrowser, startStack, waitFor, waitForStatus, type Stack } from '../helpers/stack';

/**
 * The security properties of the public API, over real HTTP against the real stack: OAuth consent
 * cannot be phished or finished in another browser, return URLs stay on registered origins, rate
 * limits, security headers, CORS, expiry of states and pending credentials, and state keys that
 * survive an ENCRYPTION_KEY rotation.
 */

const ORIGIN = 'https://app.example.com';
let stack: Stack;
let tenant: { id: string; apiKey: string };

beforeAll(async () => {
  stack = await startStack();
  tenant = await stack.createTenant('Acme', [ORIGIN]);
});

afterAll(async () => {
  await stack?.stop();
});

const api = (method: string, path: string, body?: unknown, apiKey = tenant.apiKey) => stack.request(method, path, { apiKey, body });

function expectError(res: { status: number; body: any }, status: number, code: string) {
  expect({ status: res.status, code: res.body?.error?.code }).toEqual({ status, code });
  expect(typeof res.body.error.message).toBe('string');
}

async function createBitbucket(body: Record<string, unknown> = {}, apiKey = tenant.apiKey) {
  const res = await api('POST', '/v1/connections', { provider: 'bitbucket', ...body }, apiKey);
  expect(res.status).toBe(201);
  return res.body;
}

/** authorize → consent page → Continue → provider; returns the callback URL and the browser's cookie. */
async function toCallback(connId: string, apiKey = tenant.apiKey) {
  const auth = await api('POST', `/v1/connections/${connId}/authorize`, undefined, apiKey);
  expect(auth.status).toBe(200);
  const started = await startOAuthInBrowser(auth.body.authorizeUrl);
  const toProvider = await fetch(started.providerUrl, { redirect: 'manual' });
  return { ...started, authorizeUrl: auth.body.authorizeUrl as string, callbackUrl: toProvider.headers.get('location')! };
}

const tokenRequests = () => stack.bitbucket.control.requests().filter((r) => r.path.endsWith('/access_token')).length;
const stateRow = async (connId: string) => (await stack.sql`select used_at from oauth_states where connection_id = ${connId}`)[0];

/** Another instance of the API on the same database and Temporal, with some configuration changed. */
async function variantApi(envChanges: Record<string, string>) {
  const deps = await createApiDeps(loadConfig({ ...stack.env, ...envChanges }));
  const app = await buildApp(deps);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  return {
    url,
    deps,
    async close() {
      await app.close();
      await deps.close();
    },
  };
}

describe('the browser that started the flow must finish it', () => {
  it('authorizeUrl is our start page; only its Continue leads to the provider, setting a binding cookie', async () => {
    const conn = await createBitbucket();
    const auth = await api('POST', `/v1/connections/${conn.id}/authorize`);
    const url = new URL(auth.body.authorizeUrl);
    expect(`${url.origin}${url.pathname}`).toBe(`${stack.apiUrl}/v1/oauth/start`);

    const state = url.searchParams.get('state')!;
    const proceed = await fetch(`${stack.apiUrl}/v1/oauth/start`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ state }).toString(),
      redirect: 'manual',
    });
    expect(proceed.status).toBe(302);
    expect(new URL(proceed.headers.get('location')!).origin).toBe(new URL(stack.bitbucket.oauthUrl).origin);
    const [cookie, ...more] = proceed.headers.getSetCookie();
    expect(more).toEqual([]);
    const attrs = cookie!.split(';').map((a) => a.trim());
    expect(attrs[0]).toMatch(/^conduit_oauth_[0-9a-f]+=[\w-]{20,}$/);
    expect(attrs).toEqual(expect.arrayContaining(['HttpOnly', 'SameSite=Lax', 'Path=/v1/oauth']));
    const maxAge = Number(attrs.find((a) => a.startsWith('Max-Age='))!.slice(8));
    expect(maxAge).toBeGreaterThan(0);
    expect(maxAge).toBeLessThanOrEqual(stack.config.oauthStateTtlSeconds);
    // PUBLIC_URL is http in the tests; with https the cookie is Secure.
    expect(attrs).not.toContain('Secure');
  });

  it('a callback without the cookie is 400 oauth_browser_mismatch: state not used, no code exchanged', async () => {
    const conn = await createBitbucket({ returnUrl: `${ORIGIN}/done` });
    const { callbackUrl, cookie } = await toCallback(conn.id);
    const exchangesBefore = tokenRequests();

    // The victim's browser: the provider URL was lifted from someone else's Continue.
    const res = await fetch(callbackUrl, { redirect: 'manual' });
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).error.code).toBe('oauth_browser_mismatch');
    expect(tokenRequests()).toBe(exchangesBefore);
    expect((await stateRow(conn.id))!.usedAt).toBeNull();
    expect((await api('GET', `/v1/connections/${conn.id}`)).body.status).toBe('awaiting_credentials');

    // A cookie of another flow, or a forged one, does not match either.
    const other = await toCallback((await createBitbucket()).id);
    for (const wrong of [other.cookie, `${cookie.split('=')[0]}=AAAAforgedAAAA`, `${cookie.split('=')[0]}=`]) {
      const r = await fetch(callbackUrl, { redirect: 'manual', headers: { cookie: wrong } });
      expect(r.status).toBe(400);
      expect(((await r.json()) as any).error.code).toBe('oauth_browser_mismatch');
    }
    expect(tokenRequests()).toBe(exchangesBefore);

    // The browser that started it still can, and the cookie is cleared on the way back.
    const ok = await fetch(callbackUrl, { redirect: 'manual', headers: { cookie: `unrelated=1; ${cookie}` } });
    expect(ok.status).toBe(302);
    expect(new URL(ok.headers.get('location')!).searchParams.get('result')).toBe('connected');
    expect(ok.headers.getSetCookie().some((c) => c.startsWith(`${cookie.split('=')[0]}=;`) && c.includes('Max-Age=0'))).toBe(true);
    await waitForStatus(stack, tenant.apiKey, conn.id, 'active');
  });

  it('a cross-site post to Continue is refused (it would skip the consent page)', async () => {
    const conn = await createBitbucket();
    const auth = await api('POST', `/v1/connections/${conn.id}/authorize`);
    const state = new URL(auth.body.authorizeUrl).searchParams.get('state')!;
    for (const headers of [{ origin: 'https://attacker.example' }, { 'sec-fetch-site': 'cross-site' }] as Record<string, string>[]) {
      const res = await fetch(`${stack.apiUrl}/v1/oauth/start`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
        body: new URLSearchParams({ state }).toString(),
        redirect: 'manual',
      });
      expect(res.status).toBe(403);
      expect(((await res.json()) as any).error.code).toBe('cross_site_request');
      expect(res.headers.getSetCookie()).toEqual([]);
    }
  });

  it('a tampered, used or expired state is refused by the start page', async () => {
    const conn = await createBitbucket();
    const { authorizeUrl, callbackUrl, cookie } = await toCallback(conn.id);
    const tampered = new URL(authorizeUrl);
    tampered.searchParams.set('state', `${tampered.searchParams.get('state')!.split('.')[0]}.forged`);
    expectError(await stack.request('GET', `${tampered.pathname}${tampered.search}`), 400, 'invalid_state');
    expectError(await stack.request('GET', '/v1/oauth/start'), 400, 'invalid_state');

    expect((await fetch(callbackUrl, { redirect: 'manual', headers: { cookie } })).status).toBe(302);
    const start = new URL(authorizeUrl);
    expectError(await stack.request('GET', `${start.pathname}${start.search}`), 400, 'state_already_used');
  });
});

describe('the consent page says who is asking', () => {
  it('names the tenant and the connection, escaped, under a strict CSP, with a Continue button', async () => {
    const evil = await stack.createTenant('<script>alert("t")</script> & Co');
    const conn = await createBitbucket({ name: '<img src=x onerror=alert(1)>' }, evil.apiKey);
    const auth = await api('POST', `/v1/connections/${conn.id}/authorize`, undefined, evil.apiKey);
    const res = await fetch(auth.body.authorizeUrl, { redirect: 'manual' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain(`form-action 'self' ${new URL(stack.bitbucket.oauthUrl).origin}`);
    expect(csp).not.toContain('script-src');
    const page = await res.text();
    expect(page).not.toContain('<script');
    expect(page).not.toContain('<img');
    expect(page).toContain('&#60;script&#62;alert(&#34;t&#34;)&#60;/script&#62; &#38; Co');
    expect(page).toContain('&#60;img src=x onerror=alert(1)&#62;');
    expect(page).toContain('wants read access to your Bitbucket account');
    expect(page).toMatch(/<form method="post" action="\/v1\/oauth\/start">/);
    expect(page).toMatch(/<button type="submit"[^>]*>Continue to Bitbucket<\/button>/);
    expect(page).toContain('lang="en"');
  });

  it('shows the origin the customer will return to', async () => {
    const conn = await createBitbucket({ name: 'Insights', returnUrl: `${ORIGIN}/integrations` });
    const auth = await api('POST', `/v1/connections/${conn.id}/authorize`);
    const page = await (await fetch(auth.body.authorizeUrl)).text();
    expect(page).toContain('<strong>Acme</strong>’s “Insights” wants read access to your Bitbucket account.');
    expect(page).toContain(`you return to <strong>${ORIGIN}</strong>`);
  });
});

describe('return URLs stay on the tenant’s registered origins', () => {
  it('GET/PATCH /v1/tenants/me read and replace allowedReturnOrigins, normalized', async () => {
    const t = await stack.createTenant('Origins');
    const me = await api('GET', '/v1/tenants/me', undefined, t.apiKey);
    expect(me.status).toBe(200);
    expect(me.body).toEqual({ id: t.id, name: 'Origins', allowedReturnOrigins: [], createdAt: expect.any(String) });
    const patched = await api(
      'PATCH',
      '/v1/tenants/me',
      { allowedReturnOrigins: ['https://App.Example.com/', 'https://app.example.com:443', 'http://localhost:5173'] },
      t.apiKey,
    );
    expect(patched.status).toBe(200);
    expect(patched.body.allowedReturnOrigins).toEqual(['https://app.example.com', 'http://localhost:5173']);
    expect((await api('GET', '/v1/tenants/me', undefined, t.apiKey)).body.allowedReturnOrigins).toEqual(patched.body.allowedReturnOrigins);
    expectError(await stack.request('GET', '/v1/tenants/me'), 401, 'unauthorized');
  });

  it.each([
    ['http on a public host', 'http://app.example.com'],
    ['a path', 'https://app.example.com/cb'],
    ['credentials', 'https://user:pw@app.example.com'],
    ['a query', 'https://app.example.com?x=1'],
    ['javascript:', 'javascript:alert(1)'],
    ['data:', 'data:text/html,hi'],
    ['not a URL', 'app.example.com'],
  ])('PATCH refuses an origin with %s (400 invalid_return_origin, nothing changed)', async (_name, origin) => {
    expectError(await api('PATCH', '/v1/tenants/me', { allowedReturnOrigins: [ORIGIN, origin] }), 400, 'invalid_return_origin');
    expect((await api('GET', '/v1/tenants/me')).body.allowedReturnOrigins).toEqual([ORIGIN]);
  });

  it('http://localhost origins need ALLOW_INSECURE_RETURN_ORIGINS (off by default)', async () => {
    const prod = await variantApi({ ALLOW_INSECURE_RETURN_ORIGINS: 'false' });
    try {
      for (const origin of ['http://localhost:3000', 'http://127.0.0.1:8080']) {
        const res = await fetch(`${prod.url}/v1/tenants/me`, {
          method: 'PATCH',
          headers: { authorization: `Bearer ${tenant.apiKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({ allowedReturnOrigins: [origin] }),
        });
        expect(res.status).toBe(400);
        expect(((await res.json()) as any).error.code).toBe('invalid_return_origin');
      }
    } finally {
      await prod.close();
    }
    expect(loadConfig({ ...stack.env, ALLOW_INSECURE_RETURN_ORIGINS: undefined }).allowInsecureReturnOrigins).toBe(false);
  });

  const countConnections = async () => (await stack.sql`select count(*)::int as n from connections`)[0]!.n as number;

  it.each([
    ['another origin', 'https://attacker.example/phish', 400, 'return_url_not_allowed'],
    ['a look-alike host', 'https://app.example.com.attacker.example/', 400, 'return_url_not_allowed'],
    ['credentials before the host', 'https://app.example.com@attacker.example/', 400, 'return_url_not_allowed'],
    ['another port', 'https://app.example.com:8443/cb', 400, 'return_url_not_allowed'],
    ['http on the same host', 'http://app.example.com/cb', 400, 'return_url_not_allowed'],
    ['javascript:', 'javascript:alert(document.domain)', 400, 'invalid_request'],
    ['data:', 'data:text/html,<script>alert(1)</script>', 400, 'invalid_request'],
  ])('POST /v1/connections refuses a returnUrl on %s and creates nothing', async (_name, returnUrl, status, code) => {
    const before = await countConnections();
    expectError(await api('POST', '/v1/connections', { provider: 'bitbucket', returnUrl }), status, code);
    expect(await countConnections()).toBe(before);
  });

  it('a tenant with no registered origins cannot set a returnUrl at all', async () => {
    const t = await stack.createTenant('No origins');
    expectError(
      await api('POST', '/v1/connections', { provider: 'bitbucket', returnUrl: `${ORIGIN}/x` }, t.apiKey),
      400,
      'return_url_not_allowed',
    );
  });

  it('an origin removed after the connection was created is no longer redirected to', async () => {
    const t = await stack.createTenant('Removes origins', ['https://old.example.com']);
    const conn = await createBitbucket({ returnUrl: 'https://old.example.com/cb' }, t.apiKey);
    const { callbackUrl, cookie } = await toCallback(conn.id, t.apiKey);
    expect((await api('PATCH', '/v1/tenants/me', { allowedReturnOrigins: [] }, t.apiKey)).status).toBe(200);
    const back = await fetch(callbackUrl, { redirect: 'manual', headers: { cookie } });
    expect(back.status).toBe(302);
    const landing = new URL(back.headers.get('location')!);
    expect(`${landing.origin}${landing.pathname}`).toBe(`${stack.apiUrl}/v1/oauth/result`);
  });
});

describe('the code is exchanged only when the connection may take a credential', () => {
  async function connectedWithPendingCallback() {
    const conn = await createBitbucket({ returnUrl: `${ORIGIN}/cb` });
    // Connect once, so the connection can be paused.
    const first = await toCallback(conn.id);
    expect((await fetch(first.callbackUrl, { redirect: 'manual', headers: { cookie: first.cookie } })).status).toBe(302);
    await waitForStatus(stack, tenant.apiKey, conn.id, 'active');
    // A second flow is started, and reaches the callback only after the connection changed.
    return { conn, ...(await toCallback(conn.id)) };
  }

  const spent = () => ({ grants: stack.bitbucket.control.grants().length, exchanges: tokenRequests() });

  it('after pause: the callback spends no code, says why, and changes nothing', async () => {
    const { conn, callbackUrl, cookie } = await connectedWithPendingCallback();
    expect((await api('POST', `/v1/connections/${conn.id}/pause`)).status).toBe(200);
    const before = await api('GET', `/v1/connections/${conn.id}`);
    expect(before.body.status).toBe('paused');
    const spentBefore = spent();

    const back = await fetch(callbackUrl, { redirect: 'manual', headers: { cookie } });
    expect(back.status).toBe(302);
    const landing = new URL(back.headers.get('location')!);
    expect(Object.fromEntries(landing.searchParams)).toEqual({ connection: conn.id, result: 'error', error: 'connection_paused' });
    expect(spent()).toEqual(spentBefore);
    // (a sync the pause interrupted may still be winding down, so only what the callback could change is compared)
    const after = (await api('GET', `/v1/connections/${conn.id}`)).body;
    expect({ status: after.status, lastError: after.lastError }).toEqual({ status: 'paused', lastError: before.body.lastError });
    expect(await stack.sql`select id from credentials where connection_id = ${conn.id} and state = 'pending'`).toEqual([]);
  });

  it('after disconnect: the callback spends no code (the state is gone with the connection)', async () => {
    const { conn, callbackUrl, cookie } = await connectedWithPendingCallback();
    expect((await api('DELETE', `/v1/connections/${conn.id}`)).status).toBe(200);
    await waitForStatus(stack, tenant.apiKey, conn.id, 'disconnected');
    const spentBefore = spent();
    const back = await fetch(callbackUrl, { redirect: 'manual', headers: { cookie } });
    expect([302, 400]).toContain(back.status);
    if (back.status === 302) expect(new URL(back.headers.get('location')!).searchParams.get('error')).toBe('connection_disconnected');
    expect(spent()).toEqual(spentBefore);
    expect(await stack.sql`select id from credentials where connection_id = ${conn.id} and state <> 'retired'`).toEqual([]);
  });
});

describe('rate limits', () => {
  let limited: Awaited<ReturnType<typeof variantApi>>;
  beforeAll(async () => {
    limited = await variantApi({ RATE_LIMIT_API_KEY_PER_MINUTE: '3', RATE_LIMIT_ADMIN_PER_MINUTE: '2', RATE_LIMIT_OAUTH_PER_MINUTE: '2' });
  });
  afterAll(async () => {
    await limited?.close();
  });

  async function expect429(res: Response) {
    expect(res.status).toBe(429);
    const retryAfter = Number(res.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    const body = (await res.json()) as any;
    expect(body).toEqual({ error: { code: 'rate_limited', message: expect.any(String) } });
  }

  it('per API key: one key’s budget does not spend another’s', async () => {
    const other = await stack.createTenant('Other key');
    const get = (key: string) => fetch(`${limited.url}/v1/connections`, { headers: { authorization: `Bearer ${key}` } });
    for (let i = 0; i < 3; i++) expect((await get(tenant.apiKey)).status).toBe(200);
    await expect429(await get(tenant.apiKey));
    expect((await get(other.apiKey)).status).toBe(200);
  });

  it('per IP on the admin route', async () => {
    const post = () =>
      fetch(`${limited.url}/v1/tenants`, {
        method: 'POST',
        headers: { authorization: `Bearer ${stack.env.ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'Limited' }),
      });
    expect((await post()).status).toBe(201);
    expect((await post()).status).toBe(201);
    await expect429(await post());
  });

  it('per IP on the OAuth routes', async () => {
    const callback = () => fetch(`${limited.url}/v1/oauth/callback?code=x`, { redirect: 'manual' });
    expect((await callback()).status).toBe(400);
    expect((await callback()).status).toBe(400);
    await expect429(await callback());
    await expect429(await fetch(`${limited.url}/v1/oauth/start?state=x`));
  });

  it('health checks and docs are not metered', async () => {
    for (let i = 0; i < 5; i++) expect((await fetch(`${limited.url}/healthz`)).status).toBe(200);
  });
});

describe('security headers and CORS', () => {
  it('every response carries HSTS, nosniff and frame-ancestors none', async () => {
    for (const path of ['/healthz', '/v1/connections', '/v1/nothing-here']) {
      const res = await stack.request('GET', path, { apiKey: tenant.apiKey });
      expect(res.headers.get('strict-transport-security')).toMatch(/max-age=\d+/);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
      expect(res.headers.get('x-frame-options')).toBe('DENY');
    }
  });

  it('/docs still loads: swagger-ui’s own scripts are allowed, inline scripts and framing are not', async () => {
    const docs = await fetch(`${stack.apiUrl}/docs`, { redirect: 'follow' });
    expect(docs.status).toBe(200);
    const html = await docs.text();
    expect(html).toContain('swagger-ui');
    const csp = docs.headers.get('content-security-policy')!;
    expect(csp).toMatch(/script-src 'self'/);
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain("'unsafe-eval'");
    // Every script the page loads is served (from 'self').
    const scripts = [...html.matchAll(/<script src="([^"]+)"/g)].map((m) => m[1]!);
    expect(scripts.length).toBeGreaterThan(0);
    for (const src of scripts) {
      const res = await fetch(new URL(src, docs.url));
      expect(res.status).toBe(200);
    }
    expect(html).not.toMatch(/<script>(?!\s*<\/script>)/);
  });

  const preflight = (url: string, origin: string) =>
    fetch(`${url}/v1/connections`, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });

  it('no CORS headers by default', async () => {
    const pre = await preflight(stack.apiUrl, ORIGIN);
    expect(pre.headers.get('access-control-allow-origin')).toBeNull();
    const get = await stack.request('GET', '/v1/connections', { apiKey: tenant.apiKey, headers: { origin: ORIGIN } });
    expect(get.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('CORS_ORIGINS allows exactly the configured origins', async () => {
    const cors = await variantApi({ CORS_ORIGINS: `${ORIGIN}, https://admin.example.com` });
    try {
      const pre = await preflight(cors.url, ORIGIN);
      expect(pre.status).toBe(204);
      expect(pre.headers.get('access-control-allow-origin')).toBe(ORIGIN);
      expect(pre.headers.get('access-control-allow-headers')).toMatch(/authorization/);
      const get = await fetch(`${cors.url}/v1/connections`, { headers: { origin: ORIGIN, authorization: `Bearer ${tenant.apiKey}` } });
      expect(get.headers.get('access-control-allow-origin')).toBe(ORIGIN);
      const other = await preflight(cors.url, 'https://attacker.example');
      expect(other.headers.get('access-control-allow-origin')).toBeNull();
    } finally {
      await cors.close();
    }
  });
});

describe('expiry', () => {
  const vault = () => createVault(stack.sql, new Keyring(stack.config.encryptionKeys));

  it('purges expired OAuth states and wipes stale pending credentials, leaving fresh ones', async () => {
    const conn = await createBitbucket();
    const keys = stateKeys(stack.config.encryptionKeys);
    await issueState(stack.sql, keys, conn.id, 600);
    await issueState(stack.sql, keys, conn.id, 600);
    await stack.sql`update oauth_states set expires_at = now() - interval '1 second'
                    where nonce_hash = (select nonce_hash from oauth_states where connection_id = ${conn.id} limit 1)`;
    const stale = await vault().storePending(conn.id, 'bitbucket_oauth', { accessToken: 'a-stale', refreshToken: 'r-stale' });
    const fresh = await vault().storePending(conn.id, 'bitbucket_oauth', { accessToken: 'a-fresh', refreshToken: 'r-fresh' });
    await stack.sql`update credentials set created_at = now() - interval '2 hours' where id = ${stale}`;

    const purged = await purgeExpired(stack.sql, vault(), { pendingCredentialTtlSeconds: 3600, eventRetentionDays: 30 });
    expect(purged.states).toBeGreaterThanOrEqual(1);
    expect(purged.credentials).toBeGreaterThanOrEqual(1);
    const states = await stack.sql`select expires_at from oauth_states where connection_id = ${conn.id}`;
    expect(states).toHaveLength(1);
    expect((states[0]!.expiresAt as Date).getTime()).toBeGreaterThan(Date.now());
    const creds = await stack.sql`select id, state, key_id, ciphertext from credentials where connection_id = ${conn.id} order by id`;
    expect(creds.find((c) => c.id === stale)).toMatchObject({ state: 'retired', keyId: null, ciphertext: null });
    expect(creds.find((c) => c.id === fresh)).toMatchObject({ state: 'pending' });
    expect(creds.find((c) => c.id === fresh)!.ciphertext).not.toBeNull();
  });

  it('the API process purges periodically', async () => {
    const conn = await createBitbucket();
    await issueState(stack.sql, stateKeys(stack.config.encryptionKeys), conn.id, 600);
    await stack.sql`update oauth_states set expires_at = now() - interval '1 second' where connection_id = ${conn.id}`;
    const purging = await variantApi({ PURGE_INTERVAL_SECONDS: '1' });
    try {
      await waitFor(async () => (await stack.sql`select 1 from oauth_states where connection_id = ${conn.id}`).length === 0, 10_000);
    } finally {
      await purging.close();
    }
  });
});

describe('state keys survive ENCRYPTION_KEY rotation', () => {
  const keyA = stackKey;
  function stackKey() {
    return stack.config.encryptionKeys[0]!;
  }
  const keyB = randomBytes(32);

  it('a state issued under key A verifies after the config becomes B,A; not under B alone', async () => {
    const conn = await createBitbucket();
    const underA = stateKeys([keyA()]);
    const rotated = stateKeys([keyB, keyA()]);
    const state = await issueState(stack.sql, underA, conn.id, 600);
    await expect(consumeState(stack.sql, stateKeys([keyB]), state)).rejects.toMatchObject({ code: 'invalid_state' });
    await expect(consumeState(stack.sql, rotated, state)).resolves.toEqual({ connectionId: conn.id, inviteId: null });
    // After rotation, new states are signed with B.
    const newer = await issueState(stack.sql, rotated, conn.id, 600);
    await expect(consumeState(stack.sql, stateKeys([keyB]), newer)).resolves.toEqual({ connectionId: conn.id, inviteId: null });
    // The browser cookie rotates the same way.
    const cookie = browserCookieValue(browserCookieKeys([keyA()]), state);
    expect(browserCookieMatches(browserCookieKeys([keyB, keyA()]), state, cookie)).toBe(true);
    expect(browserCookieMatches(browserCookieKeys([keyB]), state, cookie)).toBe(false);
  });

  it('an authorize link handed out before the rotation still opens on the rotated API', async () => {
    const conn = await createBitbucket();
    const auth = await api('POST', `/v1/connections/${conn.id}/authorize`);
    const start = new URL(auth.body.authorizeUrl);
    const rotated = await variantApi({ ENCRYPTION_KEY: `${keyB.toString('base64')},${stack.env.ENCRYPTION_KEY}` });
    try {
      const page = await fetch(`${rotated.url}${start.pathname}${start.search}`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('Continue to Bitbucket');
    } finally {
      await rotated.close();
    }
  });
});
