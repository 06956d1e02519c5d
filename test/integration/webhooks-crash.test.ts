import { randomBytes } from 'node:crypto';
import { keyIdOf } from '../../src/crypto/keyring';
import { insertEvents, purgeEvents } from '../../src/db/events';
import type { ConnectionRow } from '../../src/domain/connection';
import { toConnectionView } from '../../src/domain/schemas';
import { webhookSweeperWorkflowId, sweepNowSignal } from '../../src/workflows/webhook-sweeper';
import { startWebhookReceiver, type WebhookReceiver } from '../helpers/webhook-receiver';
import { startStack, waitFor, waitForStatus, type Stack } from '../helpers/stack';

/**
 * Webhook delivery survives what can go wrong between an event and its receiver: the worker
 * SIGKILLed while a delivery waits to be retried; a crash between the event's commit and its
 * dispatch (no delivery, or a delivery without its workflow), which the sweeper repairs; a
 * receiver that never answers 2xx within the retry window (given up). Old events are purged.
 */

let stack: Stack;
let tenant: { id: string; apiKey: string };
let receiver: WebhookReceiver;
let hookId: string;
let connectionId: string;

beforeAll(async () => {
  stack = await startStack({
    env: {
      ALLOW_INSECURE_WEBHOOK_URLS: 'true',
      WEBHOOK_RETRY_INITIAL_SECONDS: '2',
      WEBHOOK_RETRY_MAX_INTERVAL_SECONDS: '2',
      // The tests wake the sweeper themselves, as a worker start does.
      WEBHOOK_SWEEP_INTERVAL_SECONDS: '3600',
    },
  });
  tenant = await stack.createTenant('Crash');
  receiver = await startWebhookReceiver();
  const created = await api('POST', '/v1/webhooks', {
    url: receiver.url,
    events: ['connection.paused', 'connection.active', 'connection.updated'],
  });
  hookId = created.body.id;
  receiver.secrets.push(created.body.secret);
  connectionId = (await api('POST', '/v1/connections', { provider: 'bitrise' })).body.id;
  await api('PUT', `/v1/connections/${connectionId}/credentials`, { token: stack.bitrise.control.createToken() });
  await waitForStatus(stack, tenant.apiKey, connectionId, 'active');
});

afterAll(async () => {
  await stack?.stop();
  await receiver?.close();
});

const api = (method: string, path: string, body?: unknown) => stack.request(method, path, { apiKey: tenant.apiKey, body });
const deliveriesOf = async (eventId: string) =>
  (await api('GET', `/v1/webhooks/${hookId}/deliveries?limit=100`)).body.items.filter((d: any) => d.eventId === eventId);
const pausedEventIds = async () =>
  (await stack.sql<{ id: string }[]>`select id from events where connection_id = ${connectionId} and type = 'connection.paused'`).map(
    (r) => r.id,
  );

/** Wakes the sweeper and waits until that sweep has finished. */
async function sweepNow(): Promise<void> {
  const handle = stack.temporal.workflow.getHandle(webhookSweeperWorkflowId(stack.env.TEMPORAL_TASK_QUEUE!));
  const sweeps = async () => ((await handle.fetchHistory()).events ?? []).filter((e) => e.activityTaskCompletedEventAttributes).length;
  const before = await sweeps();
  await handle.signal(sweepNowSignal);
  await waitFor(async () => (await sweeps()) > before, 60_000, 'a sweep');
}

it('a delivery waiting for its retry while the worker is SIGKILLed arrives after the restart', async () => {
  receiver.defaultStatus = 500;
  const before = new Set(await pausedEventIds());
  expect((await api('POST', `/v1/connections/${connectionId}/pause`)).status).toBe(200);
  const eventId = (await pausedEventIds()).find((id) => !before.has(id))!;
  await waitFor(async () => (await deliveriesOf(eventId))[0]?.attempts.length > 0, 60_000, 'a failed attempt recorded');

  await stack.worker.kill();
  receiver.defaultStatus = 200;
  const failedAttempts = receiver.received.filter((r) => r.body.id === eventId).length;
  await stack.worker.start();

  await waitFor(() => receiver.received.some((r) => r.body.id === eventId && r.status === 200), 90_000, 'the delivery after the restart');
  const tries = receiver.received.filter((r) => r.body.id === eventId);
  expect(tries.filter((r) => r.status === 200)).toHaveLength(1);
  expect(tries.length).toBeGreaterThanOrEqual(failedAttempts + 1);
  expect(new Set(tries.map((r) => r.rawBody)).size).toBe(1);
  await waitFor(async () => (await deliveriesOf(eventId))[0]?.status === 'delivered', 30_000, 'the delivery recorded');
  await api('POST', `/v1/connections/${connectionId}/resume`);
});

it('the sweeper dispatches an event a crash left undispatched, and starts a delivery left without its workflow', async () => {
  // As if the process died right after committing: the event is in the table, nothing was dispatched.
  const [row] = await stack.sql<ConnectionRow[]>`select * from connections where id = ${connectionId}`;
  const [eventId] = await stack.sql.begin((tx) =>
    insertEvents(tx, connectionId, [{ type: 'connection.updated', data: { connection: toConnectionView(row!) } }]),
  );
  await stack.sql`update events set created_at = now() - interval '1 minute' where id = ${eventId!}`;
  // As if it died between creating a delivery and starting its workflow: a second endpoint's delivery.
  const second = await startWebhookReceiver();
  try {
    const created = await api('POST', '/v1/webhooks', { url: second.url, events: ['connection.updated'] });
    second.secrets.push(created.body.secret);
    const [old] = await stack.sql<{ id: string }[]>`
      select id from events where connection_id = ${connectionId} and type = 'connection.updated' and id <> ${eventId!}
      order by sequence limit 1`;
    await stack.sql`
      insert into webhook_deliveries (id, endpoint_id, event_id, created_at)
      values (gen_random_uuid(), ${created.body.id}, ${old!.id}, now() - interval '1 minute')`;

    await sweepNow();
    await waitFor(() => receiver.received.some((r) => r.body.id === eventId && r.status === 200), 60_000, 'the undispatched event');
    await waitFor(() => second.received.some((r) => r.body.id === old!.id && r.status === 200), 60_000, 'the unstarted delivery');
    // Dispatched once: a second sweep finds nothing left and sends nothing again.
    expect(await stack.sql`select 1 from events where id = ${eventId!} and dispatched_at is not null`).toHaveLength(1);
    const sent = receiver.received.length + second.received.length;
    await sweepNow();
    expect(receiver.received.filter((r) => r.body.id === eventId)).toHaveLength(1);
    expect(receiver.received.length + second.received.length).toBe(sent);
  } finally {
    await second.close();
  }
});

it('gives a delivery up once the retry window is over', async () => {
  await stack.worker.restart({ WEBHOOK_RETRY_WINDOW_SECONDS: '10' });
  receiver.defaultStatus = 503;
  const before = new Set(await pausedEventIds());
  await api('POST', `/v1/connections/${connectionId}/pause`);
  const eventId = (await pausedEventIds()).find((id) => !before.has(id))!;
  await waitFor(async () => (await deliveriesOf(eventId))[0]?.status === 'failed', 60_000, 'the delivery given up');
  const [delivery] = await deliveriesOf(eventId);
  expect(delivery.attempts.length).toBeGreaterThanOrEqual(2);
  expect(delivery.attempts.every((x: any) => x.responseStatus === 503)).toBe(true);
  expect(delivery.finishedAt).not.toBeNull();
  receiver.defaultStatus = 200;
  await api('POST', `/v1/connections/${connectionId}/resume`);
});

it('purges events past their retention with their deliveries', async () => {
  const [event] = await stack.sql<{ id: string }[]>`
    select e.id from events e join webhook_deliveries d on d.event_id = e.id where e.connection_id = ${connectionId} limit 1`;
  await stack.sql`update events set created_at = now() - interval '40 days' where id = ${event!.id}`;
  expect(await purgeEvents(stack.sql, 30)).toBe(1);
  expect(await stack.sql`select 1 from events where id = ${event!.id}`).toHaveLength(0);
  expect(await stack.sql`select 1 from webhook_deliveries where event_id = ${event!.id}`).toHaveLength(0);
});

it('after an ENCRYPTION_KEY rotation the sweeper re-seals every secret under the new key, and deliveries still verify', async () => {
  const oldKey = stack.env.ENCRYPTION_KEY!;
  const newKey = randomBytes(32);
  await stack.worker.restart({ ENCRYPTION_KEY: `${newKey.toString('base64')},${oldKey}` });
  await sweepNow();
  const keyIds = await stack.sql<{ secretKeyId: string }[]>`select secret_key_id from webhook_endpoints`;
  expect(keyIds.length).toBeGreaterThan(0);
  for (const { secretKeyId } of keyIds) expect(secretKeyId).toBe(keyIdOf(newKey));

  // The receiver still holds the secret it was shown at creation: the re-sealed one is the same.
  const before = new Set(await pausedEventIds());
  await api('POST', `/v1/connections/${connectionId}/pause`);
  const eventId = (await pausedEventIds()).find((id) => !before.has(id))!;
  await waitFor(
    () => receiver.received.some((r) => r.body.id === eventId && r.status === 200),
    60_000,
    'a delivery signed after the re-seal',
  );
  await api('POST', `/v1/connections/${connectionId}/resume`);
});
