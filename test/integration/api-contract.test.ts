import { startStack, waitFor, waitForStatus, type Stack } from '../helpers/stack';

/**
 * The HTTP contract product UIs build on: error shapes and codes for bad input, tenant
 * isolation, pagination, and the action/state rules (409s), over real HTTP.
 */

let stack: Stack;
let alice: { id: string; apiKey: string };
let bob: { id: string; apiKey: string };

beforeAll(async () => {
  stack = await startStack();
  alice = await stack.createTenant('Alice');
  bob = await stack.createTenant('Bob');
});

afterAll(async () => {
  await stack?.stop();
});

const countRows = async () =>
  (await stack.sql`select (select count(*) from connections)::int as c, (select count(*) from tenants)::int as t`)[0] as {
    c: number;
    t: number;
  };

function expectError(res: { status: number; body: any }, status: number, code: string) {
  expect({ status: res.status, code: res.body?.error?.code }).toEqual({ status, code });
  expect(typeof res.body.error.message).toBe('string');
  expect(res.body.error.message.length).toBeGreaterThan(0);
}

describe('admin', () => {
  it('creates a tenant with a one-time API key, stored hashed', async () => {
    const res = await stack.request('POST', '/v1/tenants', {
      headers: { authorization: `Bearer ${stack.env.ADMIN_TOKEN}` },
      body: { name: 'Carol' },
    });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({ id: expect.any(String), name: 'Carol', apiKey: expect.stringMatching(/^cdk_/) });
    const [row] = await stack.sql`select api_key_hash from tenants where id = ${res.body.id}`;
    expect(Buffer.from(row!.apiKeyHash as Buffer).toString('utf8')).not.toContain(res.body.apiKey);
  });

  it('refuses a missing or wrong admin token, and a tenant key', async () => {
    expectError(await stack.request('POST', '/v1/tenants', { body: { name: 'x' } }), 401, 'unauthorized');
    expectError(
      await stack.request('POST', '/v1/tenants', { headers: { authorization: 'Bearer nope-nope-nope-nope' }, body: { name: 'x' } }),
      401,
      'unauthorized',
    );
    expectError(await stack.request('POST', '/v1/tenants', { apiKey: alice.apiKey, body: { name: 'x' } }), 401, 'unauthorized');
  });
});

describe('bad input gets a clear 4xx and changes nothing', () => {
  const cases: [string, () => Promise<any>, number, string][] = [
    ['no API key', () => stack.request('GET', '/v1/connections'), 401, 'unauthorized'],
    ['unknown API key', () => stack.request('GET', '/v1/connections', { apiKey: 'cdk_unknown' }), 401, 'unauthorized'],
    [
      'malformed JSON',
      () =>
        stack.request('POST', '/v1/connections', {
          apiKey: alice.apiKey,
          rawBody: '{"provider":',
          headers: { 'content-type': 'application/json' },
        }),
      400,
      'invalid_json',
    ],
    [
      'wrong type',
      () => stack.request('POST', '/v1/connections', { apiKey: alice.apiKey, body: { provider: 'bitrise', syncIntervalSeconds: 'often' } }),
      400,
      'invalid_request',
    ],
    [
      'unknown provider',
      () => stack.request('POST', '/v1/connections', { apiKey: alice.apiKey, body: { provider: 'github' } }),
      400,
      'invalid_request',
    ],
    [
      'interval out of range',
      () => stack.request('POST', '/v1/connections', { apiKey: alice.apiKey, body: { provider: 'bitrise', syncIntervalSeconds: 59 } }),
      400,
      'invalid_request',
    ],
    [
      'unknown field',
      () => stack.request('POST', '/v1/connections', { apiKey: alice.apiKey, body: { provider: 'bitrise', colour: 'red' } }),
      400,
      'invalid_request',
    ],
    [
      'non-http returnUrl',
      () =>
        stack.request('POST', '/v1/connections', { apiKey: alice.apiKey, body: { provider: 'bitrise', returnUrl: 'javascript:alert(1)' } }),
      400,
      'invalid_request',
    ],
    [
      'oauthClient on Bitrise',
      () =>
        stack.request('POST', '/v1/connections', {
          apiKey: alice.apiKey,
          body: { provider: 'bitrise', oauthClient: { clientId: 'a', clientSecret: 'b' } },
        }),
      400,
      'oauth_client_not_supported',
    ],
    [
      'body not JSON',
      () =>
        stack.request('POST', '/v1/connections', {
          apiKey: alice.apiKey,
          rawBody: 'provider=bitrise',
          headers: { 'content-type': 'text/plain' },
        }),
      415,
      'unsupported_media_type',
    ],
    [
      'oversized body',
      () => stack.request('POST', '/v1/connections', { apiKey: alice.apiKey, body: { provider: 'bitrise', name: 'x'.repeat(100_000) } }),
      413,
      'payload_too_large',
    ],
    ['array body', () => stack.request('POST', '/v1/connections', { apiKey: alice.apiKey, body: [1, 2] }), 400, 'invalid_request'],
    ['malformed id', () => stack.request('GET', '/v1/connections/not-a-uuid', { apiKey: alice.apiKey }), 404, 'not_found'],
    [
      'unknown id',
      () => stack.request('GET', '/v1/connections/00000000-0000-4000-8000-000000000000', { apiKey: alice.apiKey }),
      404,
      'not_found',
    ],
    ['bad cursor', () => stack.request('GET', '/v1/connections?cursor=garbage', { apiKey: alice.apiKey }), 400, 'invalid_cursor'],
    ['bad limit', () => stack.request('GET', '/v1/connections?limit=1000', { apiKey: alice.apiKey }), 400, 'invalid_request'],
    ['unknown route', () => stack.request('GET', '/v1/nothing-here', { apiKey: alice.apiKey }), 404, 'route_not_found'],
  ];

  it.each(cases)('%s', async (_name, send, status, code) => {
    const before = await countRows();
    expectError(await send(), status, code);
    expect(await countRows()).toEqual(before);
  });

  it('empty token on PUT /credentials is 400 and changes nothing', async () => {
    const conn = (await stack.request('POST', '/v1/connections', { apiKey: alice.apiKey, body: { provider: 'bitrise' } })).body;
    expectError(
      await stack.request('PUT', `/v1/connections/${conn.id}/credentials`, { apiKey: alice.apiKey, body: { token: '   ' } }),
      400,
      'invalid_request',
    );
    expectError(
      await stack.request('PUT', `/v1/connections/${conn.id}/credentials`, { apiKey: alice.apiKey, body: {} }),
      400,
      'invalid_request',
    );
    expect((await stack.request('GET', `/v1/connections/${conn.id}`, { apiKey: alice.apiKey })).body).toEqual(conn);
  });

  it('the wrong provider for an action is 400', async () => {
    const bitrise = (await stack.request('POST', '/v1/connections', { apiKey: alice.apiKey, body: { provider: 'bitrise' } })).body;
    const bitbucket = (await stack.request('POST', '/v1/connections', { apiKey: alice.apiKey, body: { provider: 'bitbucket' } })).body;
    expectError(
      await stack.request('POST', `/v1/connections/${bitrise.id}/authorize`, { apiKey: alice.apiKey }),
      400,
      'unsupported_for_provider',
    );
    expectError(
      await stack.request('PUT', `/v1/connections/${bitbucket.id}/credentials`, { apiKey: alice.apiKey, body: { token: 't' } }),
      400,
      'unsupported_for_provider',
    );
  });
});

describe('tenant isolation', () => {
  it("another tenant's connection is a 404 for every verb, and absent from lists", async () => {
    const conn = (await stack.request('POST', '/v1/connections', { apiKey: alice.apiKey, body: { provider: 'bitrise' } })).body;
    const asBob = { apiKey: bob.apiKey };
    for (const [method, suffix, body] of [
      ['GET', '', undefined],
      ['GET', '/runs', undefined],
      ['POST', '/sync', undefined],
      ['POST', '/pause', undefined],
      ['POST', '/resume', undefined],
      ['POST', '/authorize', undefined],
      ['PUT', '/credentials', { token: 'x' }],
      ['DELETE', '', undefined],
    ] as const) {
      expectError(await stack.request(method, `/v1/connections/${conn.id}${suffix}`, { ...asBob, body }), 404, 'not_found');
    }
    const list = await stack.request('GET', '/v1/connections?limit=100', asBob);
    expect(list.body.items.map((c: any) => c.id)).not.toContain(conn.id);
    expect((await stack.request('GET', `/v1/connections/${conn.id}`, { apiKey: alice.apiKey })).body.status).toBe('awaiting_credentials');
  });
});

describe('listing', () => {
  it('pages newest first with a keyset cursor, without gaps or repeats', async () => {
    const t = await stack.createTenant('Pager');
    const created: string[] = [];
    for (let i = 0; i < 5; i++)
      created.push(
        (await stack.request('POST', '/v1/connections', { apiKey: t.apiKey, body: { provider: 'bitrise', name: `c${i}` } })).body.id,
      );
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: any = await stack.request('GET', `/v1/connections?limit=2${cursor ? `&cursor=${cursor}` : ''}`, { apiKey: t.apiKey });
      expect(page.status).toBe(200);
      expect(page.body.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.items.map((c: any) => c.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual([...created].reverse());
  });
});

describe('actions and the states that allow them', () => {
  it('pause → resume → sync now → disconnect, with 409s for actions the status forbids', async () => {
    const { apiKey } = alice;
    const conn = (await stack.request('POST', '/v1/connections', { apiKey, body: { provider: 'bitrise' } })).body;
    expectError(await stack.request('POST', `/v1/connections/${conn.id}/sync`, { apiKey }), 409, 'connection_awaiting_credentials');
    expectError(await stack.request('POST', `/v1/connections/${conn.id}/resume`, { apiKey }), 409, 'connection_not_paused');

    await stack.request('PUT', `/v1/connections/${conn.id}/credentials`, { apiKey, body: { token: stack.bitrise.control.createToken() } });
    const paused = await stack.request('POST', `/v1/connections/${conn.id}/pause`, { apiKey });
    expect(paused.status).toBe(200);
    expect(paused.body).toMatchObject({ status: 'paused', nextSyncAt: null });
    expectError(await stack.request('POST', `/v1/connections/${conn.id}/sync`, { apiKey }), 409, 'connection_paused');
    expectError(await stack.request('POST', `/v1/connections/${conn.id}/pause`, { apiKey }), 409, 'connection_paused');

    const resumed = await stack.request('POST', `/v1/connections/${conn.id}/resume`, { apiKey });
    expect(resumed.status).toBe(200);
    expect(resumed.body.status).toBe('active');
    expect(resumed.body.nextSyncAt).not.toBeNull();

    const runsBefore = (await stack.request('GET', `/v1/connections/${conn.id}/runs`, { apiKey })).body.items.length;
    const sync = await stack.request('POST', `/v1/connections/${conn.id}/sync`, { apiKey });
    expect(sync.status).toBe(202);
    await waitFor(async () => (await stack.request('GET', `/v1/connections/${conn.id}/runs`, { apiKey })).body.items.length > runsBefore);

    const deleted = await stack.request('DELETE', `/v1/connections/${conn.id}`, { apiKey });
    expect(deleted.status).toBe(200);
    expect(deleted.body.status).toBe('disconnected');
    const creds = await stack.sql`select state, ciphertext from credentials where connection_id = ${conn.id}`;
    expect(creds.length).toBeGreaterThan(0);
    expect(creds.every((c) => c.state === 'retired' && c.ciphertext === null)).toBe(true);
    const handle = stack.temporal.workflow.getHandle(conn.workflowId);
    expect((await handle.describe()).status.name).toBe('COMPLETED');

    // Still readable; every action is now refused.
    expect((await stack.request('GET', `/v1/connections/${conn.id}`, { apiKey })).body.status).toBe('disconnected');
    for (const action of ['sync', 'pause', 'resume', 'authorize']) {
      expectError(
        await stack.request('POST', `/v1/connections/${conn.id}/${action}`, { apiKey }),
        action === 'authorize' ? 400 : 409,
        action === 'authorize' ? 'unsupported_for_provider' : 'connection_disconnected',
      );
    }
    expectError(
      await stack.request('PUT', `/v1/connections/${conn.id}/credentials`, { apiKey, body: { token: 'x' } }),
      409,
      'connection_disconnected',
    );
    expectError(await stack.request('DELETE', `/v1/connections/${conn.id}`, { apiKey }), 409, 'connection_disconnected');
  });

  it('disconnecting a Bitbucket connection with its own consumer wipes the consumer secret too', async () => {
    const { apiKey } = alice;
    const conn = (
      await stack.request('POST', '/v1/connections', {
        apiKey,
        body: { provider: 'bitbucket', oauthClient: { clientId: 'own', clientSecret: 'own-secret-123' } },
      })
    ).body;
    expect((await stack.request('DELETE', `/v1/connections/${conn.id}`, { apiKey })).status).toBe(200);
    const [row] = await stack.sql`select secret_ciphertext from oauth_clients where connection_id = ${conn.id}`;
    expect(row!.secretCiphertext).toBeNull();
    await waitForStatus(stack, apiKey, conn.id, 'disconnected');
  });
});

describe('operations endpoints', () => {
  it('healthz, readyz, openapi.json and docs answer', async () => {
    expect((await stack.request('GET', '/healthz')).body).toEqual({ status: 'ok' });
    expect((await stack.request('GET', '/readyz')).body).toMatchObject({ status: 'ok', checks: { postgres: 'ok', temporal: 'ok' } });
    const spec = await stack.request('GET', '/openapi.json');
    expect(spec.status).toBe(200);
    expect(spec.body.openapi).toMatch(/^3\./);
    for (const p of [
      '/v1/tenants',
      '/v1/connections',
      '/v1/connections/{id}',
      '/v1/connections/{id}/authorize',
      '/v1/connections/{id}/credentials',
      '/v1/oauth/callback',
      '/v1/oauth/start',
      '/v1/tenants/me',
    ]) {
      expect(Object.keys(spec.body.paths)).toContain(p);
    }
    // New statuses are documented per route: rate limits everywhere, and the browser-bound start.
    expect(Object.keys(spec.body.paths['/v1/connections'].post.responses)).toEqual(expect.arrayContaining(['201', '400', '429']));
    expect(Object.keys(spec.body.paths['/v1/oauth/start'].post.responses)).toEqual(expect.arrayContaining(['302', '400', '403', '429']));
    expect(Object.keys(spec.body.paths['/v1/oauth/start'].post.requestBody.content)).toEqual(['application/x-www-form-urlencoded']);
    expect(Object.keys(spec.body.paths['/v1/tenants/me'].patch.responses)).toEqual(expect.arrayContaining(['200', '400', '401', '429']));
    const docs = await fetch(`${stack.apiUrl}/docs`, { redirect: 'follow' });
    expect(docs.status).toBe(200);
    expect(await docs.text()).toContain('swagger');
  });
});
