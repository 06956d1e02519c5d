import { startWebhookReceiver, type WebhookReceiver } from '../helpers/webhook-receiver';
import { PLATFORM_CLIENT, startStack, waitFor, waitForStatus, type Stack } from '../helpers/stack';

/**
 * Webhooks against the real stack (API, worker, Temporal, Postgres) and a real receiver that
 * verifies every signature: registration rules and stable refusals, sealed secrets, delivery of a
 * connection's life in per-connection order, retries after failures with the same event id,
 * rotation (both secrets sign), 410 Gone, the deliveries log, and tenant isolation.
 */

let stack: Stack;
let a: { id: string; apiKey: string };
let b: { id: string; apiKey: string };
let receiver: WebhookReceiver;
let other: WebhookReceiver;
let connectionId: string;
const secrets: string[] = [PLATFORM_CLIENT.clientSecret];

beforeAll(async () => {
  stack = await startStack({
    env: {
      ALLOW_INSECURE_WEBHOOK_URLS: 'true',
      WEBHOOK_RETRY_INITIAL_SECONDS: '1',
      WEBHOOK_RETRY_MAX_INTERVAL_SECONDS: '1',
    },
  });
  a = await stack.createTenant('Hooks A');
  b = await stack.createTenant('Hooks B');
  secrets.push(a.apiKey, b.apiKey);
  receiver = await startWebhookReceiver();
  other = await startWebhookReceiver();
});

afterAll(async () => {
  await stack?.stop();
  await receiver?.close();
  await other?.close();
});

const as = (t: { apiKey: string }) => (method: string, path: string, body?: unknown) =>
  stack.request(method, path, { apiKey: t.apiKey, body });
const apiA = (method: string, path: string, body?: unknown) => as(a)(method, path, body);

const ALL = [
  'connection.active',
  'connection.needs_reconnect',
  'connection.recovered',
  'connection.paused',
  'connection.disconnected',
  'connection.updated',
  'sync.completed',
  'sync.failed',
  'sync.stalled',
  'sync.rate_limited',
];

let hookId: string;

describe('registration', () => {
  it('returns the signing secret once and stores it sealed', async () => {
    const created = await apiA('POST', '/v1/webhooks', { url: receiver.url, events: ALL, description: 'console backend' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      url: receiver.url,
      events: ALL,
      enabled: true,
      disabledReason: null,
      previousSecretExpiresAt: null,
    });
    expect(created.body.secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    hookId = created.body.id;
    receiver.secrets.push(created.body.secret);
    secrets.push(created.body.secret);

    const [row] = await stack.sql`select * from webhook_endpoints where id = ${hookId}`;
    expect(JSON.stringify(row)).not.toContain(created.body.secret);
    expect(Buffer.from(row!.secretCiphertext as Buffer).toString('latin1')).not.toContain(created.body.secret.slice(6));
    // Never shown again.
    const got = await apiA('GET', `/v1/webhooks/${hookId}`);
    expect(got.status).toBe(200);
    expect(got.body.secret).toBeUndefined();
    expect((await apiA('GET', '/v1/webhooks')).body.items.map((w: any) => w.id)).toEqual([hookId]);
  });

  it('refuses bad URLs and event types with stable codes, creating nothing', async () => {
    const cases: [unknown, string][] = [
      [{ url: 'not a url', events: ['sync.failed'] }, 'invalid_webhook_url'],
      [{ url: 'ftp://example.com/x', events: ['sync.failed'] }, 'invalid_webhook_url'],
      [{ url: 'https://user:pass@example.com/x', events: ['sync.failed'] }, 'invalid_webhook_url'],
      [{ url: 'http://example.com/x', events: ['sync.failed'] }, 'webhook_url_not_allowed'],
      [{ url: 'https://10.1.2.3/x', events: ['sync.failed'] }, 'webhook_url_not_allowed'],
      [{ url: 'https://169.254.169.254/latest/meta-data', events: ['sync.failed'] }, 'webhook_url_not_allowed'],
      [{ url: 'https://192.168.0.10/x', events: ['sync.failed'] }, 'webhook_url_not_allowed'],
      [{ url: 'https://[fe80::1]/x', events: ['sync.failed'] }, 'webhook_url_not_allowed'],
      [{ url: 'https://[::ffff:10.0.0.1]/x', events: ['sync.failed'] }, 'webhook_url_not_allowed'],
      [{ url: 'https://0x0a.0.0.1/x', events: ['sync.failed'] }, 'webhook_url_not_allowed'],
      [{ url: 'https://hooks.example.com/x', events: ['sync.exploded'] }, 'invalid_request'],
      [{ url: 'https://hooks.example.com/x', events: [] }, 'invalid_request'],
    ];
    const before = (await stack.sql`select count(*)::int as n from webhook_endpoints`)[0]!.n;
    for (const [body, code] of cases) {
      const res = await apiA('POST', '/v1/webhooks', body);
      expect({ body, status: res.status, code: res.body.error?.code }).toEqual({ body, status: 400, code });
    }
    const patch = await apiA('PATCH', `/v1/webhooks/${hookId}`, { url: 'https://172.16.0.1/x' });
    expect([patch.status, patch.body.error.code]).toEqual([400, 'webhook_url_not_allowed']);
    expect((await stack.sql`select count(*)::int as n from webhook_endpoints`)[0]!.n).toBe(before);
    expect((await apiA('GET', `/v1/webhooks/${hookId}`)).body.url).toBe(receiver.url);
  });

  it('is tenant-scoped: another tenant can neither see nor touch it', async () => {
    const apiB = as(b);
    expect((await apiB('GET', '/v1/webhooks')).body.items).toEqual([]);
    for (const [method, path, body] of [
      ['GET', `/v1/webhooks/${hookId}`],
      ['PATCH', `/v1/webhooks/${hookId}`, { enabled: false }],
      ['DELETE', `/v1/webhooks/${hookId}`],
      ['POST', `/v1/webhooks/${hookId}/rotate-secret`],
      ['GET', `/v1/webhooks/${hookId}/deliveries`],
    ] as [string, string, unknown][]) {
      const res = await apiB(method, path, body);
      expect({ method, path, status: res.status, code: res.body.error?.code }).toEqual({ method, path, status: 404, code: 'not_found' });
    }
    expect((await apiA('GET', `/v1/webhooks/${hookId}`)).body).toMatchObject({ enabled: true });
    // B's own endpoint, to prove A's events never reach it.
    const theirs = await apiB('POST', '/v1/webhooks', { url: other.url, events: ALL });
    expect(theirs.status).toBe(201);
    other.secrets.push(theirs.body.secret);
    secrets.push(theirs.body.secret);
  });
});

describe('delivery', () => {
  it('delivers a connection’s life signed, in per-connection sequence, exactly as the stream’s events', async () => {
    connectionId = (await apiA('POST', '/v1/connections', { provider: 'bitrise' })).body.id;
    const token = stack.bitrise.control.createToken();
    secrets.push(token);
    expect((await apiA('PUT', `/v1/connections/${connectionId}/credentials`, { token })).status).toBe(200);
    await waitFor(() => receiver.deliveredEvents().some((e) => e.type === 'sync.completed'), 60_000, 'sync.completed delivered');
    // The snapshot of the finished run is published after sync.completed: wait until the row shows it,
    // so the events compared below are all the connection will have until its next change.
    await waitFor(
      async () => {
        const view = (await apiA('GET', `/v1/connections/${connectionId}`)).body;
        return view.lastSyncAt !== null && view.syncState?.state === 'idle';
      },
      60_000,
      'the finished run published',
    );
    const stored = await stack.sql<{ id: string; sequence: string }[]>`
      select id, sequence::text from events where connection_id = ${connectionId} order by sequence`;
    await waitFor(
      async () => {
        const ids = new Set(receiver.deliveredEvents().map((e) => e.id));
        const all = await stack.sql<{ id: string }[]>`select id from events where connection_id = ${connectionId}`;
        return all.every((e) => ids.has(e.id));
      },
      60_000,
      'every event delivered',
    );

    const delivered = receiver.deliveredEvents().filter((e) => e.connectionId === connectionId);
    expect(delivered.length).toBeGreaterThanOrEqual(stored.length);
    // Each request verified, and its headers agree with its body.
    for (const r of receiver.received) {
      expect(r.verifiedBy).toEqual([0]);
      expect(r.headers['conduit-event-id']).toBe(r.body.id);
      expect(r.headers['conduit-event-type']).toBe(r.body.type);
      expect(r.headers['content-type']).toBe('application/json');
    }
    // Ordering: the sequence numbers are the connection's changes, 1..n, whatever the arrival order.
    const bySequence = [...delivered].sort((x, y) => x.sequence - y.sequence);
    expect(bySequence.map((e) => e.sequence)).toEqual(bySequence.map((_, i) => i + 1));
    expect(bySequence.map((e) => e.id)).toEqual(
      (
        await stack.sql<{ id: string }[]>`
      select id from events where connection_id = ${connectionId} order by sequence`
      ).map((r) => r.id),
    );
    expect(bySequence[0]).toMatchObject({ type: 'connection.updated', tenantId: a.id });
    expect(delivered.filter((e) => e.type === 'connection.active')).toHaveLength(1);
    const view = (await apiA('GET', `/v1/connections/${connectionId}`)).body;
    expect(bySequence[bySequence.length - 1].data.connection).toEqual(view);

    // Tenant isolation: nothing of A's reached B's endpoint; no secret in any body.
    expect(other.received.some((r) => r.rawBody.includes(connectionId) || r.rawBody.includes(a.id))).toBe(false);
    const everything = receiver.received.map((r) => r.rawBody + JSON.stringify(r.headers)).join('\n');
    expect(secrets.filter((s) => everything.includes(s))).toEqual([]);
  });

  it('retries after the receiver fails twice, with the same event id, and logs each attempt', async () => {
    receiver.script.push(500, 503);
    const from = receiver.received.length;
    expect((await apiA('POST', `/v1/connections/${connectionId}/pause`)).status).toBe(200);
    await waitFor(
      () => receiver.received.slice(from).some((r) => r.status === 200 && r.body.type === 'connection.paused'),
      60_000,
      'connection.paused delivered',
    );
    const tries = receiver.received.slice(from).filter((r) => r.body.type === 'connection.paused');
    expect(tries.map((r) => r.status)).toEqual([500, 503, 200]);
    expect(new Set(tries.map((r) => r.body.id)).size).toBe(1);
    expect(new Set(tries.map((r) => r.rawBody)).size).toBe(1);

    const log = await apiA('GET', `/v1/webhooks/${hookId}/deliveries?limit=100`);
    expect(log.status).toBe(200);
    const delivery = log.body.items.find((d: any) => d.eventId === tries[0]!.body.id);
    expect(delivery).toMatchObject({ eventType: 'connection.paused', connectionId, status: 'delivered' });
    expect(delivery.attempts.map((x: any) => x.responseStatus)).toEqual([500, 503, 200]);
    expect(delivery.attempts.map((x: any) => x.attempt)).toEqual([1, 2, 3]);
    for (const x of delivery.attempts) expect(x.durationMs).toBeGreaterThanOrEqual(0);
    expect((await apiA('POST', `/v1/connections/${connectionId}/resume`)).status).toBe(200);
  });

  it('pages the deliveries log with a cursor', async () => {
    const first = await apiA('GET', `/v1/webhooks/${hookId}/deliveries?limit=2`);
    expect(first.body.items).toHaveLength(2);
    const second = await apiA('GET', `/v1/webhooks/${hookId}/deliveries?limit=2&cursor=${first.body.nextCursor}`);
    expect(second.body.items).toHaveLength(2);
    const ids = [...first.body.items, ...second.body.items].map((d: any) => d.id);
    expect(new Set(ids).size).toBe(4);
    const all = (await apiA('GET', `/v1/webhooks/${hookId}/deliveries?limit=100`)).body.items.map((d: any) => d.id);
    expect(all.slice(0, 4)).toEqual(ids);
    expect((await apiA('GET', `/v1/webhooks/${hookId}/deliveries?cursor=garbage`)).body.error.code).toBe('invalid_cursor');
  });

  it('signs with both secrets for a day after a rotation', async () => {
    const rotated = await apiA('POST', `/v1/webhooks/${hookId}/rotate-secret`);
    expect(rotated.status).toBe(200);
    expect(rotated.body.secret).not.toBe(receiver.secrets[0]);
    const expires = Date.parse(rotated.body.previousSecretExpiresAt);
    expect(expires - Date.now()).toBeGreaterThan(23.9 * 3600_000);
    expect(expires - Date.now()).toBeLessThanOrEqual(24 * 3600_000);
    receiver.secrets.push(rotated.body.secret);
    secrets.push(rotated.body.secret);
    const from = receiver.received.length;
    await apiA('POST', `/v1/connections/${connectionId}/pause`);
    await waitFor(
      () => receiver.received.slice(from).some((r) => r.body.type === 'connection.paused'),
      60_000,
      'a delivery after rotation',
    );
    const after = receiver.received.slice(from).find((r) => r.body.type === 'connection.paused')!;
    expect(after.verifiedBy).toEqual([0, 1]);
    expect(String(after.headers['conduit-signature']).match(/v1=/g)).toHaveLength(2);
    await apiA('POST', `/v1/connections/${connectionId}/resume`);
  });

  it('disables the endpoint on 410 Gone and sends nothing more until it is re-enabled', async () => {
    const gone = await startWebhookReceiver();
    try {
      const created = await apiA('POST', '/v1/webhooks', { url: gone.url, events: ['connection.paused', 'connection.active'] });
      gone.secrets.push(created.body.secret);
      gone.defaultStatus = 410;
      await apiA('POST', `/v1/connections/${connectionId}/pause`);
      await waitFor(
        async () => (await apiA('GET', `/v1/webhooks/${created.body.id}`)).body.enabled === false,
        60_000,
        'the endpoint disabled',
      );
      expect((await apiA('GET', `/v1/webhooks/${created.body.id}`)).body.disabledReason).toBe('gone');
      expect(gone.received).toHaveLength(1);
      const [delivery] = (await apiA('GET', `/v1/webhooks/${created.body.id}/deliveries`)).body.items;
      expect(delivery).toMatchObject({ status: 'failed', attempts: [{ responseStatus: 410 }] });

      // The other endpoint still gets the next event; this one does not.
      const seen = receiver.received.length;
      await apiA('POST', `/v1/connections/${connectionId}/resume`);
      await waitFor(
        () => receiver.received.slice(seen).some((r) => r.body.type === 'connection.active'),
        60_000,
        'the next event elsewhere',
      );
      expect(gone.received).toHaveLength(1);
      expect(await stack.sql`select 1 from webhook_deliveries where endpoint_id = ${created.body.id}`).toHaveLength(1);

      gone.defaultStatus = 200;
      expect((await apiA('PATCH', `/v1/webhooks/${created.body.id}`, { enabled: true })).body).toMatchObject({
        enabled: true,
        disabledReason: null,
      });
      await apiA('POST', `/v1/connections/${connectionId}/pause`);
      await waitFor(() => gone.received.some((r) => r.status === 200), 60_000, 'delivery after re-enabling');
      await apiA('POST', `/v1/connections/${connectionId}/resume`);
      expect((await apiA('DELETE', `/v1/webhooks/${created.body.id}`)).status).toBe(200);
      expect((await apiA('GET', `/v1/webhooks/${created.body.id}`)).status).toBe(404);
    } finally {
      await gone.close();
    }
  });

  it('one revoke and reconnect is exactly one connection.needs_reconnect and one connection.recovered', async () => {
    await waitForStatus(stack, a.apiKey, connectionId, 'active');
    const from = receiver.received.length;
    const token = stack.bitrise.control.createToken();
    await apiA('PUT', `/v1/connections/${connectionId}/credentials`, { token });
    stack.bitrise.control.revokeToken(token);
    await apiA('POST', `/v1/connections/${connectionId}/sync`);
    await waitForStatus(stack, a.apiKey, connectionId, 'needs_reconnect');
    const fresh = stack.bitrise.control.createToken();
    secrets.push(token, fresh);
    expect((await apiA('PUT', `/v1/connections/${connectionId}/credentials`, { token: fresh })).status).toBe(200);
    await waitFor(
      () => receiver.received.slice(from).some((r) => r.status === 200 && r.body.type === 'connection.recovered'),
      60_000,
      'connection.recovered delivered',
    );
    const types = receiver
      .deliveredEvents()
      .filter((e) => receiver.received.slice(from).some((r) => r.body.id === e.id))
      .sort((x, y) => x.sequence - y.sequence)
      .map((e) => e.type);
    expect(types.filter((t) => t === 'connection.needs_reconnect')).toHaveLength(1);
    expect(types.filter((t) => t === 'connection.recovered')).toHaveLength(1);
    expect(types.indexOf('connection.needs_reconnect')).toBeLessThan(types.indexOf('connection.recovered'));
  });
});
