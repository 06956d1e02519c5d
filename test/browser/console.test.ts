import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { launchChromium } from '../helpers/chromium';
import { startStack, waitForStatus, type Stack } from '../helpers/stack';

/**
 * The console (src/console) in a real headless Chromium against the real stack: the API serving the
 * page, Temporal, Postgres, the worker and the Bitbucket and Bitrise simulators. Nothing in the page
 * is stubbed; the only thing faked is one network failure, at the browser's edge.
 */

// Code passed to page.evaluate runs in Chromium; this program has no DOM types (lib: ES2022 only).
declare const document: any, window: any, navigator: any, getComputedStyle: any, createImageBitmap: any, OffscreenCanvas: any;

const SCREENSHOT = path.resolve(__dirname, '../../docs/console.png');
const LONG = 60_000;

let stack: Stack;
let browser: Browser;
let apiKey: string;

beforeAll(async () => {
  // Enough pipelines over the last days for a chart with several buckets.
  [stack, browser] = await Promise.all([startStack({ bitbucket: { seed: { pipelinesPerRepo: 30 } } }), launchChromium()]);
  // No registered return origins: the console's own origin (PUBLIC_URL) is always allowed.
  ({ apiKey } = await stack.createTenant('Console Co'));
});

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

/** A fresh browser profile (its own sessionStorage), in UTC so the status wording is predictable. */
async function openConsole(
  origin = stack.apiUrl,
): Promise<{ context: BrowserContext; page: Page; problems: string[]; requests: { url: string; authorization?: string }[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 }, timezoneId: 'UTC', locale: 'en-GB' });
  const page = await context.newPage();
  const problems: string[] = [];
  const requests: { url: string; authorization?: string }[] = [];
  page.on('request', (req) => requests.push({ url: req.url(), authorization: req.headers().authorization }));
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  // A CSP violation is reported on the console as an error.
  page.on('console', (msg) => {
    if (msg.type() === 'error' && /Content.Security.Policy|Refused to/i.test(msg.text())) problems.push(`csp: ${msg.text()}`);
  });
  await page.goto(`${origin}/`);
  return { context, page, problems, requests };
}

async function signIn(page: Page, key = apiKey) {
  await page.getByLabel('Tenant API key').fill(key);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

const card = (page: Page, name: string): Locator => page.locator('li.card', { has: page.getByRole('heading', { name, exact: false }) });

async function statusOf(c: Locator): Promise<string> {
  return (await c.locator('.status').textContent()) ?? '';
}

/** Waits until the card's status line matches (the page updates it by itself: no reload, no polling). */
async function waitForStatusText(c: Locator, re: RegExp, timeout = LONG) {
  const status = c.locator('.status');
  await status
    .filter({ hasText: re })
    .waitFor({ timeout })
    .catch(async (err: Error) => {
      throw new Error(`${err.message}\nstatus was: ${await statusOf(c)}`);
    });
}

/** From the consent page through the Bitbucket simulator and our callback, back to the console. */
async function finishOAuth(page: Page) {
  await page.waitForURL((url) => url.pathname === '/v1/oauth/start');
  await page.getByRole('button', { name: 'Continue to Bitbucket', exact: true }).click();
  await page
    .waitForURL((url) => url.pathname === '/' && url.origin === stack.apiUrl, { timeout: LONG })
    .catch(async (err: Error) => {
      throw new Error(`${err.message}\nthe browser is at ${page.url()}: ${(await page.locator('body').innerText()).slice(0, 500)}`);
    });
}

/** Distinct colours and the share of pixels unlike the most common one, decoded by Chromium itself. */
async function screenshotStats(context: BrowserContext, png: Buffer): Promise<{ width: number; colours: number; inked: number }> {
  const page = await context.newPage();
  try {
    return await page.evaluate(async (b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const bitmap = await createImageBitmap(new Blob([bytes], { type: 'image/png' }));
      const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
      const ctx = canvas.getContext('2d')!;
      ctx.drawImage(bitmap, 0, 0);
      const { data } = ctx.getImageData(0, 0, bitmap.width, bitmap.height);
      const counts = new Map<number, number>();
      for (let i = 0; i < data.length; i += 4) {
        const key = (data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      const top = Math.max(...counts.values());
      const pixels = data.length / 4;
      return { width: bitmap.width, colours: counts.size, inked: (pixels - top) / pixels };
    }, png.toString('base64'));
  } finally {
    await page.close();
  }
}

it('serves the page under its own strict CSP, and cacheable, versioned assets with their content types', async () => {
  const res = await fetch(`${stack.apiUrl}/`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
  const csp = res.headers.get('content-security-policy') ?? '';
  for (const directive of ["script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "default-src 'none'"])
    expect(csp).toContain(directive);
  expect(csp).not.toContain('unsafe-inline');
  expect(res.headers.get('cache-control')).toBe('no-cache');
  const html = await res.text();
  expect(html).not.toMatch(/<script(?![^>]*\bsrc=)/); // no inline script
  const app = /src="(\/console\/[^/]+\/)app\.js"/.exec(html)?.[1];
  expect(app).toBeDefined();

  const again = await fetch(`${stack.apiUrl}/`, { headers: { 'if-none-match': res.headers.get('etag')! } });
  expect(again.status).toBe(304);

  for (const [file, type] of [
    ['app.js', 'text/javascript; charset=utf-8'],
    ['console.css', 'text/css; charset=utf-8'],
    ['uPlot.iife.min.js', 'text/javascript; charset=utf-8'],
    ['model.js', 'text/javascript; charset=utf-8'],
  ]) {
    const asset = await fetch(`${stack.apiUrl}${app}${file}`);
    expect({ file, status: asset.status, type: asset.headers.get('content-type') }).toEqual({ file, status: 200, type });
    expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(asset.headers.get('content-encoding')).toBe('gzip'); // fetch asks for it and inflates
  }
  // The action rules are the API's own table, not a copy.
  const model = await (await fetch(`${stack.apiUrl}${app}model.js`)).text();
  expect(model).toContain(JSON.stringify((await import('../../src/domain/connection')).ALLOWED));
  expect((await fetch(`${stack.apiUrl}/console/stale-version/app.js`)).status).toBe(404);
  expect((await fetch(`${stack.apiUrl}${app}nope.js`)).status).toBe(404);
});

it('Bitbucket: sign in, create, connect through OAuth, lose access live, reconnect, open a chart, screenshot', async () => {
  const { context, page, problems, requests } = await openConsole();
  try {
    await signIn(page);
    await page.getByText('Signed in as').waitFor();
    await page.getByText('No connections yet').waitFor();

    await page.getByLabel('Provider').selectOption('bitbucket');
    await page.getByLabel('Name').fill('Platform repos');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    const repos = card(page, 'Platform repos');
    await waitForStatusText(repos, /^Waiting for credentials$/);

    // Connect: our consent page, the simulator's authorize page, our callback, back to the console.
    await repos.getByRole('button', { name: 'Connect', exact: true }).click();
    await finishOAuth(page);
    await page.getByText('Platform repos (Bitbucket) is connected.').waitFor();
    expect(new URL(page.url()).search).toBe(''); // the landing answer is shown once, not kept in the URL
    // From here on the page is never reloaded: a marker on the window would not survive it.
    await page.evaluate(() => (window.marker = 'same document'));
    await waitForStatusText(repos, /^Connected · last synced just now$/);
    const id = (await repos.getAttribute('data-id'))!;
    expect((await stack.request('GET', `/v1/connections/${id}`, { apiKey })).body.status).toBe('active');

    // Revoked at Bitbucket: the next sync notices, and the card says so by itself.
    stack.bitbucket.control.revokeAll();
    stack.bitbucket.control.expireAccessTokens();
    await repos.getByRole('button', { name: 'Sync now', exact: true }).click();
    await waitForStatusText(repos, /^Needs reconnect: Bitbucket refused the refresh token on \d{1,2} \w{3}, \d\d:\d\d$/);
    expect(await page.evaluate(() => window.marker)).toBe('same document');
    expect(await repos.getByRole('button', { name: 'Sync now', exact: true }).isHidden()).toBe(true);
    // Announced to assistive technology.
    await page.locator('#live').filter({ hasText: 'Needs reconnect' }).waitFor();

    await repos.getByRole('button', { name: 'Reconnect', exact: true }).click();
    await finishOAuth(page);
    await page.getByText('Platform repos (Bitbucket) is connected.').waitFor();
    await waitForStatusText(repos, /^Connected · last synced/);
    await waitForStatus(stack, apiKey, id, 'active');

    // A full resync, watched as it goes: every wording the status line takes is recorded by the page.
    await page.evaluate((connectionId: string) => {
      window.statusLog = [];
      const line = document.querySelector(`li.card[data-id="${connectionId}"] .status`);
      new window.MutationObserver(() => window.statusLog.push(line.textContent)).observe(line, {
        childList: true,
        characterData: true,
        subtree: true,
      });
    }, id);
    stack.bitbucket.control.setLatency(200); // a slower provider: each step takes a while
    try {
      expect((await stack.request('POST', `/v1/connections/${id}/sync`, { apiKey, body: { full: true } })).status).toBe(202);
      await page.waitForFunction(() => window.statusLog.some((t: string) => /^Syncing /.test(t)), undefined, { timeout: LONG });
      await waitForStatusText(repos, /^Connected · last synced just now$/);
    } finally {
      stack.bitbucket.control.setLatency(0);
    }
    const seen: string[] = await page.evaluate(() => window.statusLog);
    // The running step's count comes from sync.progress (stream only), with the step from connection.updated.
    expect(
      seen.filter((t) => /^Syncing (workspaces|members|repositories|pull requests|commits|pipelines): [\d,]+ so far$/.test(t)),
    ).not.toEqual([]);

    // Run history: the runs with their figures.
    await repos.getByRole('button', { name: 'Run history', exact: true }).click();
    const runs = repos.getByRole('table', { name: 'Sync runs, newest first' });
    await runs.waitFor();
    expect(await runs.getByRole('row').count()).toBeGreaterThanOrEqual(3); // header + at least two runs
    await runs.getByText('succeeded').first().waitFor();

    // Insights: builds per day and success rate, drawn by uPlot, with its table alternative.
    await repos.getByRole('button', { name: 'Insights', exact: true }).click();
    await repos.getByRole('img', { name: /^Builds per day: \d+ builds in the period/ }).waitFor();
    await repos.getByLabel('Period', { exact: true }).selectOption('7'); // the seeded pipelines span the last few days
    const chart = repos.getByRole('img', { name: /^Builds per day: \d+ builds in the period/ });
    await chart.locator('canvas').first().waitFor();
    const summary = await chart.getAttribute('aria-label');
    expect(Number(/(\d+) builds/.exec(summary!)![1])).toBeGreaterThan(0);
    await repos.getByText('Table: builds and success rate').click();
    const days = repos.getByRole('table', { name: 'Builds per day' });
    expect(await days.getByRole('row').count()).toBeGreaterThanOrEqual(8); // header + 7 or 8 days

    await page.getByRole('button', { name: 'Run history', exact: true }).click(); // folded again, for a tidy picture
    const png = await page.screenshot({ fullPage: true });
    const stats = await screenshotStats(context, png);
    expect(stats.width).toBe(1280);
    expect(stats.colours).toBeGreaterThan(50); // text, chart strokes and fills, not one flat colour
    expect(stats.inked).toBeGreaterThan(0.02);
    const out = process.env.UPDATE_SCREENSHOTS ? SCREENSHOT : path.join(os.tmpdir(), `conduit-console-${process.pid}.png`);
    await fs.mkdir(path.dirname(out), { recursive: true });
    await fs.writeFile(out, png);

    // The key travels as a bearer token on every API call (the stream's included), never in a URL.
    expect(requests.filter((r) => r.url.includes(apiKey))).toEqual([]);
    const apiCalls = requests.filter(
      (r) => new URL(r.url).pathname.startsWith('/v1/') && !new URL(r.url).pathname.startsWith('/v1/oauth/'),
    );
    expect(apiCalls.map((r) => new URL(r.url).pathname)).toContain('/v1/events/stream');
    expect(apiCalls.filter((r) => r.authorization !== `Bearer ${apiKey}`)).toEqual([]);
    expect(problems).toEqual([]);
  } finally {
    await context.close();
  }
});

it('Bitrise: the token form shows the API’s own refusal, then connects with a good token', async () => {
  const created = await stack.request('POST', '/v1/connections', { apiKey, body: { provider: 'bitrise', name: 'Mobile CI' } });
  expect(created.status).toBe(201);
  const refusal = await stack.request('PUT', `/v1/connections/${created.body.id}/credentials`, {
    apiKey,
    body: { token: 'not-a-real-token' },
  });
  expect(refusal.status).toBe(422);

  const { context, page, problems } = await openConsole();
  try {
    await signIn(page);
    const ci = card(page, 'Mobile CI');
    await waitForStatusText(ci, /^Waiting for credentials$/);
    await ci.getByRole('button', { name: 'Connect', exact: true }).click();
    const token = ci.getByLabel('Bitrise access token');
    await token.fill('not-a-real-token');
    await ci.getByRole('button', { name: 'Save token', exact: true }).click();
    await ci.getByRole('alert').filter({ hasText: refusal.body.error.message }).waitFor();
    expect(await token.getAttribute('aria-invalid')).toBe('true');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe(await token.getAttribute('id'));

    await token.fill(stack.bitrise.control.createToken());
    await ci.getByRole('button', { name: 'Save token', exact: true }).click();
    await waitForStatusText(ci, /^Connected · /);
    expect(await token.isHidden()).toBe(true);

    // Sign out forgets the key and everything shown with it.
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await page.getByLabel('Tenant API key').waitFor();
    expect(await page.evaluate(() => window.sessionStorage.length)).toBe(0);
    expect(await page.locator('li.card').count()).toBe(0);
    expect(problems).toEqual([]);
  } finally {
    await context.close();
  }
});

it('Invite admin: a link with Copy; the admin connects from the invite page in their own browser; the card turns active live', async () => {
  const created = await stack.request('POST', '/v1/connections', { apiKey, body: { provider: 'bitrise', name: 'Vendor CI' } });
  expect(created.status).toBe(201);
  const { context, page, problems } = await openConsole();
  const admin = await browser.newContext();
  try {
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: stack.apiUrl });
    await signIn(page);
    const vendor = card(page, 'Vendor CI');
    await waitForStatusText(vendor, /^Waiting for credentials$/);
    await page.evaluate(() => (window.marker = 'same document'));
    await vendor.getByRole('button', { name: 'Invite admin', exact: true }).click();
    const link = vendor.getByLabel(/^Invite link for an admin \(expires \d{1,2} \w{3}, \d\d:\d\d\)$/);
    const url = await link.inputValue();
    expect(url.startsWith(`${stack.apiUrl}/invite/`)).toBe(true);
    await vendor.getByRole('button', { name: 'Copy', exact: true }).click();
    await vendor.getByText('Copied.').waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(url);

    // The provider account's admin, in a browser of their own, with no API key.
    const adminPage = await admin.newPage();
    await adminPage.goto(url);
    await adminPage.getByLabel('Bitrise access token').fill(stack.bitrise.control.createToken());
    await adminPage.getByRole('button', { name: 'Connect Bitrise', exact: true }).click();
    await adminPage.getByRole('heading', { name: 'Connected' }).waitFor();

    await waitForStatusText(vendor, /^Connected · /);
    expect(await page.evaluate(() => window.marker)).toBe('same document');
    expect(problems).toEqual([]);
  } finally {
    await admin.close();
    await context.close();
  }
});

it('API errors and network failures are shown in words; the page never blanks', async () => {
  expect((await stack.request('POST', '/v1/connections', { apiKey, body: { provider: 'bitrise', name: 'Spare' } })).status).toBe(201);
  // Opened under another name for the same server: sessionStorage and the return origin follow the origin.
  const other = stack.apiUrl.replace('127.0.0.1', 'localhost');
  const { context, page, problems } = await openConsole(other);
  try {
    await signIn(page, 'not-a-key');
    await page.getByRole('alert').filter({ hasText: 'The API key is not valid.' }).waitFor();
    expect(await page.getByLabel('Tenant API key').isVisible()).toBe(true);

    await signIn(page);
    await page.getByText('Signed in as').waitFor();
    // This origin is neither the API's PUBLIC_URL nor registered: the API refuses the return URL.
    await page.getByLabel('Provider').selectOption('bitbucket');
    await page.getByLabel('Name').fill('Elsewhere');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await page
      .locator('#create-error')
      .filter({ hasText: /returnUrl’s origin is neither this API’s own nor one of your allowedReturnOrigins/ })
      .waitFor();

    // The network fails (faked at the browser's edge, the one part we do not own).
    const first = page.locator('li.card').first();
    await first.waitFor();
    await page.route('**/v1/connections/*/runs', (route) => route.abort('failed'));
    await first.getByRole('button', { name: 'Run history', exact: true }).click();
    await first.getByText('Could not load the run history: Cannot reach the Conduit API: the network request failed.').waitFor();

    expect(await page.locator('main').isVisible()).toBe(true);
    expect((await page.locator('body').innerText()).length).toBeGreaterThan(200);
    expect(problems).toEqual([]);
  } finally {
    await context.close();
  }
});

it('is usable from the keyboard: every main button is reached, focus is visible, the confirm dialog is modal', async () => {
  // One connection waiting for credentials (Connect) beside the active ones of the tests above.
  expect((await stack.request('POST', '/v1/connections', { apiKey, body: { provider: 'bitrise', name: 'Waiting' } })).status).toBe(201);
  const { context, page } = await openConsole();
  try {
    // The sign-in page puts focus in its one field.
    await page.waitForFunction(() => document.activeElement?.id === 'api-key');
    await page.keyboard.type(apiKey);
    await page.keyboard.press('Enter');
    await page.getByText('Signed in as').waitFor();
    await page.locator('li.card[data-status="active"]').first().waitFor();

    // What each Tab lands on, recorded by the page itself (one round trip, not one per key).
    await page.evaluate(() => {
      window.focusLog = [];
      document.addEventListener('focusin', (e: any) => {
        const style = getComputedStyle(e.target);
        window.focusLog.push({
          text: (e.target.textContent ?? '').trim() || e.target.id,
          visible: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2,
        });
      });
    });
    for (let i = 0; i < 60; i += 1) await page.keyboard.press('Tab');
    const log: { text: string; visible: boolean }[] = await page.evaluate(() => window.focusLog);
    const reached = new Set(log.map((f) => f.text));
    const outlines = log.filter((f) => f.visible).length;
    for (const name of ['Sign out', 'Create', 'Sync now', 'Pause', 'Disconnect', 'Run history', 'Insights', 'Connect'])
      expect([...reached]).toContain(name);
    expect(outlines).toBeGreaterThan(10);

    // Disconnect asks first, in a modal dialog that Escape cancels.
    const active = page.locator('li.card[data-status="active"]').first();
    const id = (await active.getAttribute('data-id'))!;
    await active.getByRole('button', { name: 'Disconnect', exact: true }).focus();
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: 'Disconnect?' });
    await dialog.waitFor();
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('confirm-cancel');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Disconnect');
    expect((await stack.request('GET', `/v1/connections/${id}`, { apiKey })).body.status).toBe('active');
  } finally {
    await context.close();
  }
});

it('words each status as the brief asks, and offers the buttons the API’s rules allow (the page’s own modules)', async () => {
  const { context, page } = await openConsole();
  try {
    // The modules the page loaded, from its own versioned URLs (a string: Jest's transform would rewrite import()).
    const modules = await page.evaluateHandle(`(async () => {
      const base = new URL('.', document.querySelector('script[type=module]').src).href;
      const loaded = await Promise.all(['status.js', 'model.js', 'events.js'].map((f) => import(base + f)));
      return Object.assign({}, ...loaded);
    })()`);
    const results = await modules.evaluate((m: any) => {
      const { describeStatus, availableActions, ALLOWED, PROVIDERS, SseParser, backoffMs } = m;
      const model = { allowed: ALLOWED, providers: PROVIDERS };
      const now = Date.parse('2025-12-02T14:35:00Z');
      const conn = (over: object) => ({
        provider: 'bitbucket',
        status: 'active',
        syncState: { state: 'idle' },
        lastError: null,
        lastSyncAt: null,
        ...over,
      });
      const say = (over: object, run?: object) => describeStatus(conn(over), { ...model, run, now }).text;

      const parser = new SseParser();
      const events = [
        ...parser.push(': keep-alive\r\nid: 41\r\nevent: connection.updated\r\ndata: {"a":'),
        ...parser.push('1}\r'),
        ...parser.push('\n\r\nid: 42\nevent: sync.progress\ndata: line one\ndata: line two\n\n'),
        ...parser.push('retry: 5000\nid: 43\n\n'),
      ];
      return {
        wording: [
          say({ status: 'needs_reconnect', lastError: { code: 'refresh_failed', message: 'x', at: '2025-12-02T14:05:00Z' } }),
          say({ syncState: { state: 'rate_limited', resource: 'commits', until: '2025-12-02T14:05:00Z' } }),
          say({ syncState: { state: 'provider_unavailable', resource: 'commits', until: '2025-12-02T14:05:00Z' } }),
          say({ syncState: { state: 'running', resource: 'pullRequests' } }, { status: 'running', counts: { pullRequests: 3200 } }),
          say({ syncState: { state: 'running', resource: 'pullRequests' } }),
          say({ lastSyncAt: '2025-12-02T14:30:00Z' }),
          say({ status: 'awaiting_credentials' }),
          say({ status: 'paused' }),
          say({ status: 'provisioning' }),
        ],
        actions: Object.fromEntries(
          ['provisioning', 'awaiting_credentials', 'active', 'needs_reconnect', 'paused', 'disconnected'].map((s) => [
            s,
            availableActions(conn({ status: s }), model),
          ]),
        ),
        events,
        lastEventId: parser.lastEventId,
        retry: parser.retry,
        backoff: [0, 1, 5, 20].map((n) => [backoffMs(n, () => 0), backoffMs(n, () => 0.999)]),
      };
    });
    expect(results.wording).toEqual([
      'Needs reconnect: Bitbucket refused the refresh token on 2 Dec, 14:05',
      'Waiting for the rate limit until 14:05',
      'Bitbucket unavailable, retrying at 14:05',
      'Syncing pull requests: 3,200 so far',
      'Syncing pull requests…',
      'Connected · last synced 5 min ago',
      'Waiting for credentials',
      'Paused',
      'Setting up…',
    ]);
    expect(results.actions).toEqual({
      provisioning: [],
      awaiting_credentials: ['connect', 'invite', 'disconnect'],
      active: ['sync', 'pause', 'invite', 'disconnect'],
      needs_reconnect: ['reconnect', 'invite', 'disconnect'],
      paused: ['resume', 'disconnect'],
      disconnected: [],
    });
    expect(results.events).toEqual([
      { id: '41', type: 'connection.updated', data: '{"a":1}' },
      { id: '42', type: 'sync.progress', data: 'line one\nline two' },
    ]);
    expect(results.lastEventId).toBe('43');
    expect(results.retry).toBe(5000);
    expect(results.backoff).toEqual([
      [500, 1000],
      [1000, 1999],
      [15000, 29985],
      [15000, 29985],
    ]);
  } finally {
    await context.close();
  }
});
