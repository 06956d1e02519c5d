import type { ConnectionView } from '../../src/domain/schemas';
import { connectionEventFor, rateLimitStarted } from '../../src/events/model';
import { signatureHeader } from '../../src/webhooks/signing';
import { verifySignature } from '../helpers/webhook-receiver';

/** Which event a change of a connection causes, and the signature a receiver verifies. */

const view = (over: Partial<ConnectionView> = {}): ConnectionView => ({
  id: '00000000-0000-4000-8000-000000000001',
  provider: 'bitrise',
  name: null,
  status: 'active',
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
  syncIntervalSeconds: 3600,
  lastSyncAt: null,
  nextSyncAt: null,
  lastError: null,
  workflowId: 'connection-1',
  syncState: { state: 'idle' },
  ...over,
});

describe('connectionEventFor', () => {
  it.each([
    ['awaiting_credentials', 'active', 'connection.active'],
    ['paused', 'active', 'connection.active'],
    ['needs_reconnect', 'active', 'connection.recovered'],
    ['active', 'needs_reconnect', 'connection.needs_reconnect'],
    ['active', 'paused', 'connection.paused'],
    ['needs_reconnect', 'disconnected', 'connection.disconnected'],
    ['provisioning', 'awaiting_credentials', 'connection.updated'],
  ] as const)('%s → %s is %s', (from, to, type) => {
    expect(connectionEventFor(view({ status: from }), view({ status: to }))).toBe(type);
  });

  it('is connection.updated for any other visible change, and nothing when nothing changed', () => {
    expect(connectionEventFor(view(), view())).toBeNull();
    expect(connectionEventFor(view(), view({ syncState: { state: 'running', resource: 'builds' } }))).toBe('connection.updated');
    expect(connectionEventFor(view(), view({ lastSyncAt: '2026-01-02T00:00:00.000Z' }))).toBe('connection.updated');
    expect(connectionEventFor(view(), view({ lastError: { code: 'x', message: 'y', at: '2026-01-02T00:00:00.000Z' } }))).toBe(
      'connection.updated',
    );
  });
});

describe('rateLimitStarted', () => {
  const limited = (until: string) => view({ syncState: { state: 'rate_limited', resource: 'builds', until } });
  it('fires when a wait starts or its end moves, not while it goes on or ends', () => {
    expect(rateLimitStarted(view({ syncState: { state: 'running', resource: 'builds' } }), limited('2026-01-01T14:05:00Z'))).toEqual({
      resource: 'builds',
      until: '2026-01-01T14:05:00Z',
    });
    expect(rateLimitStarted(limited('2026-01-01T14:05:00Z'), limited('2026-01-01T14:05:00Z'))).toBeNull();
    expect(rateLimitStarted(limited('2026-01-01T14:05:00Z'), limited('2026-01-01T15:00:00Z'))?.until).toBe('2026-01-01T15:00:00Z');
    expect(rateLimitStarted(limited('2026-01-01T14:05:00Z'), view())).toBeNull();
  });
});

describe('signatures', () => {
  const body = JSON.stringify({ id: 'e1', type: 'sync.completed' });
  it('one v1 per secret, each verifiable with its own secret by the README recipe', () => {
    const header = signatureHeader(['whsec_new', 'whsec_old'], Math.floor(Date.now() / 1000), body);
    expect(header).toMatch(/^t=\d+,v1=[0-9a-f]{64},v1=[0-9a-f]{64}$/);
    expect(verifySignature(header, body, 'whsec_new')).toBe(true);
    expect(verifySignature(header, body, 'whsec_old')).toBe(true);
    expect(verifySignature(header, body, 'whsec_other')).toBe(false);
    expect(verifySignature(header, `${body} `, 'whsec_new')).toBe(false);
  });

  it('a receiver rejects a replay older than five minutes', () => {
    const now = Math.floor(Date.now() / 1000);
    expect(verifySignature(signatureHeader(['s'], now - 290, body), body, 's')).toBe(true);
    expect(verifySignature(signatureHeader(['s'], now - 301, body), body, 's')).toBe(false);
  });
});
