import { connectionStatusKey, providerKey, tenantIdKey } from '../../src/temporal/search-attributes';
import { completeOAuth, startOAuthInBrowser, startStack, waitFor, type Stack } from '../helpers/stack';

/** Both connect flows end to end through the HTTP API, against real Temporal, Postgres and simulators. */

let stack: Stack;
let apiKey: string;
let tenantId: string;

beforeAll(async () => {
  stack = await startStack();
  ({ apiKey, id: tenantId } = await stack.createTenant('Connect flows', ['https://app.example.com']));
});

afterAll(async () => {
  await stack?.stop();
});

const create = async (body: Record<string, unknown>) => {
  const res = await stack.request('POST', '/v1/connections', { apiKey, body });
  expect(res.status).toBe(201);
  return res.body;
};

describe('Bitrise: personal access token', () => {
  it('goes awaiting_credentials → active with a valid token, and records a sync run', async () => {
    const conn = await create({ provider: 'bitrise', name: 'CI' });
    expect(conn).toMatchObject({
      provider: 'bitrise',
      name: 'CI',
      status: 'awaiting_credentials',
      lastError: null,
      workflowId: `connection-${conn.id}`,
    });

    const token = stack.bitrise.control.createToken();
    const res = await stack.request('PUT', `/v1/connections/${conn.id}/credentials`, { apiKey, body: { token } });
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('active');

    // Our client sent the bare token (the simulator refuses `Bearer`), to /me.
    const me = stack.bitrise.control.requests().filter((r) => r.path === '/v0.1/me');
    expect(me.length).toBeGreaterThanOrEqual(1);
    expect(me.every((r) => r.status === 200)).toBe(true);

    await waitFor(
      async () => (await stack.request('GET', `/v1/connections/${conn.id}/runs`, { apiKey })).body.items[0]?.status === 'succeeded',
    );
    const runs = (await stack.request('GET', `/v1/connections/${conn.id}/runs`, { apiKey })).body.items;
    expect(runs[0].requests).toBeGreaterThanOrEqual(1);
    let after: any;
    await waitFor(async () => (after = (await stack.request('GET', `/v1/connections/${conn.id}`, { apiKey })).body).lastSyncAt !== null);
    expect(after.status).toBe('active');
    expect(Date.parse(after.nextSyncAt) - Date.parse(after.lastSyncAt)).toBe(3600 * 1000);
  });

  it('rejects an invalid token with 422 and leaves the connection unchanged', async () => {
    const conn = await create({ provider: 'bitrise' });
    const res = await stack.request('PUT', `/v1/connections/${conn.id}/credentials`, { apiKey, body: { token: 'not-a-real-token' } });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('invalid_credentials');
    const again = await stack.request('GET', `/v1/connections/${conn.id}`, { apiKey });
    expect(again.body).toEqual(conn);
    const [{ count }] =
      (await stack.sql`select count(*)::int as count from credentials where connection_id = ${conn.id} and state <> 'retired'`) as unknown as [
        { count: number },
      ];
    expect(count).toBe(0);
  });

  it('accepts a workspace API token (bitwat_)', async () => {
    const conn = await create({ provider: 'bitrise' });
    const token = stack.bitrise.control.createToken({ kind: 'workspace' });
    expect(token.startsWith('bitwat_')).toBe(true);
    const res = await stack.request('PUT', `/v1/connections/${conn.id}/credentials`, { apiKey, body: { token } });
    expect(res.status).toBe(200);
  });
});

describe('Bitbucket: OAuth 2.0', () => {
  it('with the platform consumer: authorize → consent page → provider → callback → active, back to returnUrl', async () => {
    const conn = await create({ provider: 'bitbucket', returnUrl: 'https://app.example.com/integrations?tab=bb' });
    const auth = await stack.request('POST', `/v1/connections/${conn.id}/authorize`, { apiKey });
    expect(auth.status).toBe(200);
    const start = new URL(auth.body.authorizeUrl);
    expect(`${start.origin}${start.pathname}`).toBe(`${stack.apiUrl}/v1/oauth/start`);
    const { providerUrl, cookie } = await startOAuthInBrowser(auth.body.authorizeUrl);
    const url = new URL(providerUrl);
    expect(`${url.origin}${url.pathname}`).toBe(`${stack.bitbucket.oauthUrl}/authorize`);
    expect(url.searchParams.get('client_id')).toBe(stack.config.providers.bitbucket.platformOAuthClient?.clientId);
    expect(url.searchParams.get('response_type')).toBe('code');
    expect(url.searchParams.get('redirect_uri')).toBe(`${stack.apiUrl}/v1/oauth/callback`);
    expect(url.searchParams.get('state')).toBe(start.searchParams.get('state'));

    const toProvider = await fetch(providerUrl, { redirect: 'manual' });
    const back = await fetch(toProvider.headers.get('location')!, { redirect: 'manual', headers: { cookie } });
    expect(back.status).toBe(302);
    const landing = new URL(back.headers.get('location')!);
    expect(`${landing.origin}${landing.pathname}`).toBe('https://app.example.com/integrations');
    expect(Object.fromEntries(landing.searchParams)).toEqual({ tab: 'bb', connection: conn.id, result: 'connected' });

    const active = await stack.request('GET', `/v1/connections/${conn.id}`, { apiKey });
    expect(active.body.status).toBe('active');
    await waitFor(
      async () => (await stack.request('GET', `/v1/connections/${conn.id}/runs`, { apiKey })).body.items[0]?.status === 'succeeded',
    );
  });

  it('with the customer’s own consumer: its key is used for authorize, exchange and refresh', async () => {
    stack.bitbucket.control.addConsumer('customer-key', 'customer-secret-xyz');
    const conn = await create({ provider: 'bitbucket', oauthClient: { clientId: 'customer-key', clientSecret: 'customer-secret-xyz' } });
    const auth = await stack.request('POST', `/v1/connections/${conn.id}/authorize`, { apiKey });
    expect(new URL((await startOAuthInBrowser(auth.body.authorizeUrl)).providerUrl).searchParams.get('client_id')).toBe('customer-key');
    const landing = await completeOAuth(stack, apiKey, conn.id);
    expect(landing.searchParams.get('result')).toBe('connected');
    expect(stack.bitbucket.control.grants().some((g) => g.clientId === 'customer-key')).toBe(true);

    // Refresh goes through the customer's consumer too.
    stack.bitbucket.control.expireAccessTokens();
    const before = stack.bitbucket.control.grants().find((g) => g.clientId === 'customer-key')!;
    expect((await stack.request('POST', `/v1/connections/${conn.id}/sync`, { apiKey })).status).toBe(202);
    await waitFor(() => stack.bitbucket.control.refreshCount(before.id) === before.refreshCount + 1);
  });

  it('without a returnUrl lands on the built-in result page', async () => {
    const conn = await create({ provider: 'bitbucket' });
    const landing = await completeOAuth(stack, apiKey, conn.id);
    expect(landing.pathname).toBe('/v1/oauth/result');
    const page = await fetch(landing);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('Connected');
  });

  it('a provider error (access_denied) redirects with result=error and changes nothing', async () => {
    const conn = await create({ provider: 'bitbucket', returnUrl: 'https://app.example.com/cb' });
    stack.bitbucket.control.denyNextAuthorization();
    const landing = await completeOAuth(stack, apiKey, conn.id);
    expect(landing.searchParams.get('result')).toBe('error');
    expect(landing.searchParams.get('error')).toBe('access_denied');
    const after = await stack.request('GET', `/v1/connections/${conn.id}`, { apiKey });
    expect(after.body).toEqual(conn);
  });

  it('search attributes are set and kept current for operators', async () => {
    const conn = await create({ provider: 'bitbucket' });
    const handle = stack.temporal.workflow.getHandle(conn.workflowId);
    let sa = (await handle.describe()).typedSearchAttributes;
    expect(sa.get(connectionStatusKey)).toBe('awaiting_credentials');
    expect(sa.get(providerKey)).toBe('bitbucket');
    expect(sa.get(tenantIdKey)).toBe(tenantId);
    await completeOAuth(stack, apiKey, conn.id);
    await waitFor(async () => (await handle.describe()).typedSearchAttributes.get(connectionStatusKey) === 'active');
    sa = (await handle.describe()).typedSearchAttributes;
    expect(sa.get(connectionStatusKey)).toBe('active');

    // Visibility (what `temporal workflow list --query` reads) catches up asynchronously.
    await waitFor(async () => {
      for await (const wf of stack.temporal.workflow.list({
        query: `TenantId="${tenantId}" AND ConnectionStatus="active" AND Provider="bitbucket"`,
      })) {
        if (wf.workflowId === conn.workflowId) return true;
      }
      return false;
    });
  });
});

describe('OAuth state', () => {
  async function freshCallback(): Promise<{ conn: any; callbackUrl: string; cookie: string }> {
    const conn = await create({ provider: 'bitbucket' });
    const auth = await stack.request('POST', `/v1/connections/${conn.id}/authorize`, { apiKey });
    const { providerUrl, cookie } = await startOAuthInBrowser(auth.body.authorizeUrl);
    const toProvider = await fetch(providerUrl, { redirect: 'manual' });
    return { conn, callbackUrl: toProvider.headers.get('location')!, cookie };
  }
  /** The callback as the browser that started the flow sends it (with its cookie). */
  const inBrowser = (cookie: string) => ({ redirect: 'manual' as const, headers: { cookie } });

  const expectUnchanged = async (conn: any) => {
    expect((await stack.request('GET', `/v1/connections/${conn.id}`, { apiKey })).body).toEqual(conn);
  };

  it('rejects a forged state with 400 and changes nothing', async () => {
    const { conn, callbackUrl, cookie } = await freshCallback();
    const forged = new URL(callbackUrl);
    const [nonce] = forged.searchParams.get('state')!.split('.');
    forged.searchParams.set('state', `${nonce}.AAAAforgedsignatureAAAA`);
    const res = await fetch(forged, inBrowser(cookie));
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).error.code).toBe('invalid_state');
    await expectUnchanged(conn);
  });

  it('rejects a missing state', async () => {
    const res = await stack.request('GET', '/v1/oauth/callback?code=abc');
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('invalid_state');
  });

  it('rejects a replayed state', async () => {
    const { callbackUrl, cookie } = await freshCallback();
    expect((await fetch(callbackUrl, inBrowser(cookie))).status).toBe(302);
    const replay = await fetch(callbackUrl, inBrowser(cookie));
    expect(replay.status).toBe(400);
    expect(((await replay.json()) as any).error.code).toBe('state_already_used');
  });

  it('rejects an expired state and changes nothing', async () => {
    const { conn, callbackUrl, cookie } = await freshCallback();
    // Age the state instead of waiting out its TTL.
    await stack.sql`update oauth_states set expires_at = now() - interval '1 second' where connection_id = ${conn.id}`;
    const res = await fetch(callbackUrl, inBrowser(cookie));
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).error.code).toBe('state_expired');
    await expectUnchanged(conn);
  });

  it('lets only one of two racing callbacks with the same state through', async () => {
    const { callbackUrl, cookie } = await freshCallback();
    const statuses = (await Promise.all([fetch(callbackUrl, inBrowser(cookie)), fetch(callbackUrl, inBrowser(cookie))])).map(
      (r) => r.status,
    );
    expect(statuses.sort()).toEqual([302, 400]);
  });
});
