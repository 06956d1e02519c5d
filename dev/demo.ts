/**
 * The `npm run demo` walkthrough: drives the real HTTP API the way a customer integration would,
 * against the provider simulators, and narrates each step. Nothing here reaches into the database or
 * Temporal directly, so a passing walkthrough means the public flow works end to end.
 */

export interface DemoOptions {
  /** Base URL of our API, e.g. http://localhost:3000. */
  apiUrl: string;
  adminToken: string;
  /** A personal access token the Bitrise simulator accepts (`control.createToken()`). */
  bitriseToken: string;
  log?: (line: string) => void;
  /** Per connection, how long to wait for it to become active. Default 60 s. */
  activationTimeoutMs?: number;
}

export interface DemoResult {
  tenant: { id: string; name: string; apiKey: string };
  connections: { provider: 'bitrise' | 'bitbucket'; id: string; status: string }[];
}

interface ConnectionDto {
  id: string;
  provider: 'bitrise' | 'bitbucket';
  status: string;
  lastError: { code: string; message: string } | null;
}

/** Statuses from which a freshly set-up connection will not become active on its own. */
const DEAD_ENDS = new Set(['needs_reconnect', 'disconnected', 'paused']);

export async function runDemoWalkthrough(opts: DemoOptions): Promise<DemoResult> {
  const log = opts.log ?? ((line: string) => console.log(`[demo] ${line}`));
  const api = apiClient(opts.apiUrl);
  const timeoutMs = opts.activationTimeoutMs ?? 60_000;

  log('1. Create a tenant (admin token)');
  const tenant = await api<DemoResult['tenant']>('POST', '/v1/tenants', opts.adminToken, { name: 'Demo Co' }, 201);
  log(`   tenant ${tenant.id} "${tenant.name}", API key ${tenant.apiKey} (shown once)`);

  log('2. Bitrise: create a connection, then hand it a personal access token');
  const bitriseCreated = await api<ConnectionDto>(
    'POST',
    '/v1/connections',
    tenant.apiKey,
    { provider: 'bitrise', name: 'Demo Bitrise' },
    201,
  );
  log(`   connection ${bitriseCreated.id}: ${bitriseCreated.status}`);
  const afterToken = await api<ConnectionDto>(
    'PUT',
    `/v1/connections/${bitriseCreated.id}/credentials`,
    tenant.apiKey,
    { token: opts.bitriseToken },
    200,
  );
  const bitrise = await waitUntilActive(api, tenant.apiKey, bitriseCreated, afterToken, timeoutMs, log);

  log('3. Bitbucket: create a connection and run the OAuth consent round trip');
  const bitbucketCreated = await api<ConnectionDto>(
    'POST',
    '/v1/connections',
    tenant.apiKey,
    { provider: 'bitbucket', name: 'Demo Bitbucket' },
    201,
  );
  log(`   connection ${bitbucketCreated.id}: ${bitbucketCreated.status}`);
  const { authorizeUrl } = await api<{ authorizeUrl: string }>(
    'POST',
    `/v1/connections/${bitbucketCreated.id}/authorize`,
    tenant.apiKey,
    undefined,
    200,
  );
  log(`   authorize URL (our consent page): ${authorizeUrl}`);
  const consent = await fetch(authorizeUrl, { redirect: 'manual' });
  if (consent.status !== 200) throw new Error(`The consent page answered ${consent.status}: ${(await consent.text()).slice(0, 500)}`);
  log('   the consent page names the tenant; pressing Continue binds this browser to the flow (cookie)');
  const proceed = await fetch(new URL('/v1/oauth/start', authorizeUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ state: new URL(authorizeUrl).searchParams.get('state') ?? '' }).toString(),
    redirect: 'manual',
  });
  const providerUrl = proceed.headers.get('location');
  if (proceed.status !== 302 || !providerUrl)
    throw new Error(`Continue answered ${proceed.status}: ${(await proceed.text()).slice(0, 500)}`);
  const cookie = proceed.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .join('; ');
  const callbackUrl = await expectRedirect(providerUrl, 'the Bitbucket simulator');
  if (!callbackUrl.startsWith(`${new URL('/v1/oauth/callback', opts.apiUrl).origin}/v1/oauth/callback`)) {
    log(`   (note: the simulator redirected to ${new URL(callbackUrl).origin}, not ${new URL(opts.apiUrl).origin}; check PUBLIC_URL)`);
  }
  log('   the simulator granted consent and redirected to our /v1/oauth/callback');
  const result = new URL(await expectRedirect(callbackUrl, 'our OAuth callback', cookie));
  if (result.searchParams.get('result') !== 'connected') {
    throw new Error(
      `The OAuth callback reported ${result.searchParams.get('result')}: ${result.searchParams.get('error') ?? 'no error code'}`,
    );
  }
  log(`   callback result: connected (redirected to ${result.origin}${result.pathname})`);
  const afterConsent = await api<ConnectionDto>('GET', `/v1/connections/${bitbucketCreated.id}`, tenant.apiKey, undefined, 200);
  const bitbucket = await waitUntilActive(api, tenant.apiKey, bitbucketCreated, afterConsent, timeoutMs, log);

  return {
    tenant,
    connections: [bitrise, bitbucket].map(({ provider, id, status }) => ({ provider, id, status })),
  };
}

type Api = <T>(method: string, path: string, bearer: string, body: unknown, expected: number) => Promise<T>;

function apiClient(baseUrl: string): Api {
  return async <T>(method: string, path: string, bearer: string, body: unknown, expected: number): Promise<T> => {
    const res = await fetch(new URL(path, baseUrl), {
      method,
      headers: {
        authorization: `Bearer ${bearer}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (res.status !== expected) throw new Error(`${method} ${path} answered ${res.status} (expected ${expected}): ${text}`);
    return (text ? JSON.parse(text) : undefined) as T;
  };
}

/** One hop the way a browser would take it, without following further. Returns the absolute Location. */
async function expectRedirect(url: string, what: string, cookie?: string): Promise<string> {
  const res = await fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} });
  const location = res.headers.get('location');
  if (res.status < 300 || res.status > 399 || !location) {
    throw new Error(`${what} answered ${res.status} instead of a redirect: ${(await res.text()).slice(0, 500)}`);
  }
  return new URL(location, url).toString();
}

/** Polls the connection, printing each status change since `created`, until it is active. */
async function waitUntilActive(
  api: Api,
  apiKey: string,
  created: ConnectionDto,
  latest: ConnectionDto,
  timeoutMs: number,
  log: (line: string) => void,
): Promise<ConnectionDto> {
  const deadline = Date.now() + timeoutMs;
  let current = latest;
  let shown = created.status;
  const label = `${created.provider} ${created.id}`;
  for (;;) {
    if (current.status !== shown) {
      log(`   ${label}: ${shown} → ${current.status}`);
      shown = current.status;
    }
    if (current.status === 'active') return current;
    if (DEAD_ENDS.has(current.status)) {
      const why = current.lastError ? `${current.lastError.code}: ${current.lastError.message}` : 'no error recorded';
      throw new Error(`${label} ended up ${current.status} (${why})`);
    }
    if (Date.now() > deadline) {
      throw new Error(`${label} is still ${current.status} after ${timeoutMs / 1000} s; is the worker running?`);
    }
    await new Promise((r) => setTimeout(r, 250));
    current = await api<ConnectionDto>('GET', `/v1/connections/${created.id}`, apiKey, undefined, 200);
  }
}
