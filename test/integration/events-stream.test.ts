import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/api/app';
import { createApiDeps, type ApiDeps } from '../../src/api/deps';
import { openStream, type SseStream } from '../helpers/sse';
import { PLATFORM_CLIENT, startStack, waitFor, waitForStatus, type Stack } from '../helpers/stack';

/**
 * GET /v1/events/stream against the real stack: a connection's whole life arrives in order with
 * the connection exactly as the API shows it, only to its own tenant; Last-Event-ID resumes with
 * exactly what followed, on another API replica too (fan-out through LISTEN/NOTIFY); bad requests
 * get stable codes; heartbeats; closing the app ends open streams.
 */

let stack: Stack;
let a: { id: string; apiKey: string };
let b: { id: string; apiKey: string };
const streams: SseStream[] = [];
const secrets: string[] = [PLATFORM_CLIENT.clientSecret];

beforeAll(async () => {
  stack = await startStack({ env: { EVENTS_HEARTBEAT_SECONDS: '1' } });
  a = await stack.createTenant('Stream A');
  b = await stack.createTenant('Stream B');
  secrets.push(a.apiKey, b.apiKey);
});

afterAll(async () => {
  for (const s of streams) s.close();
  await stack?.stop();
});

const streamUrl = (base = stack.apiUrl, query = '') => `${base}/v1/events/stream${query}`;

async function open(apiKey: string, opts: { base?: string; query?: string; headers?: Record<string, string> } = {}): Promise<SseStream> {
  const s = await openStream(streamUrl(opts.base, opts.query), { apiKey, headers: opts.headers });
  streams.push(s);
  return s;
}

const ofConnection = (s: SseStream, id: string) => s.events().filter((e) => e.connectionId === id);

/** The tenant's events in stream order, straight from the table. */
const storedIds = async (tenantId: string) =>
  (await stack.sql<{ id: string }[]>`select id from events where tenant_id = ${tenantId} order by tx_id, position`).map((r) => r.id);

let connectionId: string;

describe('the stream', () => {
  it('carries a connection’s life in order, as GET shows it, with progress, to its own tenant only', async () => {
    const sa = await open(a.apiKey);
    const sb = await open(b.apiKey);
    expect(sa.status).toBe(200);
    expect(sa.headers.get('content-type')).toMatch(/^text\/event-stream/);
    await sa.until((m) => m.some((x) => x.comment === 'connected'), 'the stream to open');

    const created = await stack.request('POST', '/v1/connections', { apiKey: a.apiKey, body: { provider: 'bitrise' } });
    connectionId = created.body.id;
    const token = stack.bitrise.control.createToken();
    secrets.push(token);
    expect((await stack.request('PUT', `/v1/connections/${connectionId}/credentials`, { apiKey: a.apiKey, body: { token } })).status).toBe(
      200,
    );
    // B's own connection: B must see it, A must not.
    const other = (await stack.request('POST', '/v1/connections', { apiKey: b.apiKey, body: { provider: 'bitrise' } })).body.id;

    await sa.until((m) => m.some((x) => x.event === 'sync.completed'), 'sync.completed');
    const run = (await stack.request('GET', `/v1/connections/${connectionId}/runs`, { apiKey: a.apiKey })).body.items[0];
    // The run's last snapshot (idle, lastSyncAt) follows its completion.
    const view = async () => (await stack.request('GET', `/v1/connections/${connectionId}`, { apiKey: a.apiKey })).body;
    await sa.until(
      (m) => m.some((x) => x.event === 'connection.updated' && JSON.parse(x.data!).data.connection.lastSyncAt),
      'the snapshot after the run',
    );

    const events = ofConnection(sa, connectionId);
    expect(events.map((e) => e.sequence)).toEqual(events.map((_, i) => i + 1));
    expect(events[0]).toMatchObject({ type: 'connection.updated', data: { connection: { status: 'awaiting_credentials' } } });
    expect(events.filter((e) => e.type === 'connection.active')).toHaveLength(1);
    for (const e of events) {
      expect(Object.keys(e)).toEqual(['id', 'type', 'createdAt', 'tenantId', 'connectionId', 'sequence', 'data']);
      expect(e.tenantId).toBe(a.id);
    }
    // The sync moved from resource to resource, each step a connection.updated naming it.
    const resources = events
      .filter((e) => e.data.connection?.syncState.state === 'running')
      .map((e) => e.data.connection.syncState.resource);
    expect(resources).toEqual(['account', 'organizations', 'apps', 'builds', 'pipelines']);
    const completed = events.filter((e) => e.type === 'sync.completed');
    expect(completed).toHaveLength(1);
    expect(completed[0].data).toMatchObject({ runId: run.id, status: 'succeeded', counts: run.counts, error: null, until: null });
    expect(events[events.length - 1].data.connection).toEqual(await view());

    // Per-page progress: not stored (no id), the running total of the resource in this run.
    const progress = sa.messages.filter((x) => x.event === 'sync.progress').map((x) => JSON.parse(x.data!));
    expect(progress.length).toBeGreaterThan(0);
    expect(sa.messages.filter((x) => x.event === 'sync.progress').every((x) => x.id === undefined)).toBe(true);
    for (const p of progress) {
      expect(p).toMatchObject({ type: 'sync.progress', tenantId: a.id, connectionId, data: { runId: run.id } });
      expect(p.data.records).toBeGreaterThan(0);
      expect(p.data.records).toBeLessThanOrEqual(run.counts[p.data.resource]);
    }

    // Isolation: B sees its own connection's event and nothing of A's.
    await sb.until((m) => m.some((x) => x.data?.includes(other)), "B's own event");
    expect(sb.messages.some((x) => x.data?.includes(connectionId) || x.data?.includes(a.id))).toBe(false);
    expect(sa.messages.some((x) => x.data?.includes(other) || x.data?.includes(b.id))).toBe(false);
    const foreign = await stack.request('GET', `/v1/events/stream?connectionId=${connectionId}`, { apiKey: b.apiKey });
    expect(foreign.status).toBe(404);
    expect(foreign.body.error.code).toBe('not_found');

    // Nothing secret in any event.
    const text = JSON.stringify(sa.messages) + JSON.stringify(sb.messages);
    expect(secrets.filter((s) => text.includes(s))).toEqual([]);
  });

  it('resumes after Last-Event-ID with exactly what followed, on another API replica too; closing it ends its streams', async () => {
    const deps: ApiDeps = await createApiDeps(stack.config);
    const replica: FastifyInstance = await buildApp(deps);
    replica.addHook('onClose', async () => deps.close());
    await replica.listen({ port: 0, host: '127.0.0.1' });
    const address = replica.server.address();
    const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    try {
      const before = await storedIds(a.id);
      expect(before.length).toBeGreaterThan(5);
      const live = await open(a.apiKey, { base, query: `?connectionId=${connectionId}` });
      await live.until((m) => m.some((x) => x.comment === 'connected'), 'the replica’s stream to open');

      // Changes made through the first API reach the replica's stream (each replica listens).
      expect((await stack.request('POST', `/v1/connections/${connectionId}/pause`, { apiKey: a.apiKey })).status).toBe(200);
      expect((await stack.request('POST', `/v1/connections/${connectionId}/resume`, { apiKey: a.apiKey })).status).toBe(200);
      await live.until((m) => m.some((x) => x.event === 'connection.active'), 'connection.active after resume');
      expect(live.events().map((e) => e.type)).toEqual(['connection.paused', 'connection.active']);

      // Resume from the middle of what came before.
      const after = before[Math.floor(before.length / 2)]!;
      const expected = (await storedIds(a.id)).slice(before.indexOf(after) + 1);
      const resumed = await open(a.apiKey, { base, headers: { 'last-event-id': after } });
      await resumed.until((m) => m.filter((x) => x.id).length >= expected.length, 'the backlog');
      expect(resumed.messages.filter((x) => x.id).map((x) => x.id)).toEqual(expected);

      await replica.close();
      await live.ended;
      await resumed.ended;
    } finally {
      if (replica.server.listening) await replica.close();
    }
  });

  it('refuses what it cannot serve with stable codes', async () => {
    const get = (apiKey: string | undefined, query = '', headers: Record<string, string> = {}) =>
      stack.request('GET', `/v1/events/stream${query}`, { apiKey, headers });
    expect((await get(undefined)).body.error.code).toBe('unauthorized');
    expect((await get('cdk_not-a-key')).status).toBe(401);
    const bad = await get(a.apiKey, '', { 'last-event-id': 'not-an-id' });
    expect([bad.status, bad.body.error.code]).toEqual([400, 'invalid_last_event_id']);
    const unknown = await get(a.apiKey, '', { 'last-event-id': '00000000-0000-4000-8000-000000000000' });
    expect([unknown.status, unknown.body.error.code]).toEqual([400, 'unknown_last_event_id']);
    // Another tenant's event id is unknown to this one.
    const [theirs] = await stack.sql<{ id: string }[]>`select id from events where tenant_id = ${b.id} limit 1`;
    const foreign = await get(a.apiKey, '', { 'last-event-id': theirs!.id });
    expect([foreign.status, foreign.body.error.code]).toEqual([400, 'unknown_last_event_id']);
    expect((await get(a.apiKey, '?connectionId=nope')).body.error.code).toBe('invalid_request');
    expect((await get(a.apiKey, '?maxSeconds=-1')).body.error.code).toBe('invalid_request');
  });

  it('sends heartbeats and ends after maxSeconds', async () => {
    const s = await open(a.apiKey, { query: '?maxSeconds=3' });
    await s.ended;
    expect(s.messages.filter((m) => m.comment === 'heartbeat').length).toBeGreaterThanOrEqual(1);
  });

  it('with maxSeconds=0 sends what is stored after Last-Event-ID and ends (catching up without a stream)', async () => {
    const ids = await storedIds(a.id);
    const s = await open(a.apiKey, { query: '?maxSeconds=0', headers: { 'last-event-id': ids[2]! } });
    await s.ended;
    expect(s.messages.filter((m) => m.id).map((m) => m.id)).toEqual(ids.slice(3));
  });
});

describe('a revoke and reconnect', () => {
  it('is exactly one connection.needs_reconnect and one connection.recovered, in order', async () => {
    const s = await open(a.apiKey, { query: `?connectionId=${connectionId}` });
    await s.until((m) => m.some((x) => x.comment === 'connected'), 'the stream to open');
    const token = stack.bitrise.control.createToken();
    expect((await stack.request('PUT', `/v1/connections/${connectionId}/credentials`, { apiKey: a.apiKey, body: { token } })).status).toBe(
      200,
    );
    await waitFor(async () => s.events().some((e) => e.type === 'sync.completed'), 60_000, 'the sync with the new token');
    stack.bitrise.control.revokeToken(token);
    await stack.request('POST', `/v1/connections/${connectionId}/sync`, { apiKey: a.apiKey });
    await waitForStatus(stack, a.apiKey, connectionId, 'needs_reconnect');
    const fresh = stack.bitrise.control.createToken();
    secrets.push(token, fresh);
    expect(
      (await stack.request('PUT', `/v1/connections/${connectionId}/credentials`, { apiKey: a.apiKey, body: { token: fresh } })).status,
    ).toBe(200);
    await s.until((m) => m.some((x) => x.event === 'connection.recovered'), 'connection.recovered');
    const types = s.events().map((e) => e.type);
    expect(types.filter((t) => t === 'connection.needs_reconnect')).toHaveLength(1);
    expect(types.filter((t) => t === 'connection.recovered')).toHaveLength(1);
    expect(types.indexOf('connection.needs_reconnect')).toBeLessThan(types.indexOf('connection.recovered'));
    const parked = s.events().find((e) => e.type === 'connection.needs_reconnect');
    expect(parked.data.connection.lastError).toMatchObject({ code: 'token_revoked' });
    const sequences = s.events().map((e) => e.sequence);
    expect(sequences).toEqual(sequences.map((_, i) => sequences[0] + i));
  });
});
