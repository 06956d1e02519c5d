import { randomUUID } from 'node:crypto';
import type { Keyring } from '../crypto/keyring';
import type { EventType } from '../events/model';
import { newWebhookSecret } from '../webhooks/signing';
import type { StoredEvent } from './events';
import { microsText, type Sql, type TransactionSql } from './sql';

/**
 * Webhook endpoints (their signing secrets sealed with the keyring, bound to the endpoint's id),
 * their deliveries and each delivery's attempts.
 */

export interface WebhookEndpoint {
  id: string;
  tenantId: string;
  url: string;
  eventTypes: EventType[];
  description: string | null;
  enabled: boolean;
  disabledReason: 'gone' | 'disabled' | null;
  secretKeyId: string;
  secretCiphertext: Buffer;
  previousSecretKeyId: string | null;
  previousSecretCiphertext: Buffer | null;
  previousSecretExpiresAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed' | 'cancelled';

/** A tenant's endpoints are capped: each event is one delivery workflow per subscribed endpoint. */
export const MAX_ENDPOINTS_PER_TENANT = 20;
/** After a rotation the previous secret keeps signing this long. */
export const PREVIOUS_SECRET_VALID_MS = 24 * 3600_000;

const secretAad = (endpointId: string) => `webhook-secret:${endpointId}`;

export async function createEndpoint(
  sql: Sql,
  keyring: Keyring,
  e: { tenantId: string; url: string; eventTypes: EventType[]; description: string | null },
): Promise<{ endpoint: WebhookEndpoint; secret: string } | 'limit_reached'> {
  const id = randomUUID();
  const secret = newWebhookSecret();
  const sealed = keyring.seal(secret, secretAad(id));
  return sql.begin(async (tx) => {
    // Serializes creations per tenant, so the cap holds under concurrent requests.
    await tx`select 1 from tenants where id = ${e.tenantId} for update`;
    const [count] = await tx<{ n: number }[]>`select count(*)::int as n from webhook_endpoints where tenant_id = ${e.tenantId}`;
    if (count!.n >= MAX_ENDPOINTS_PER_TENANT) return 'limit_reached' as const;
    const [endpoint] = await tx<WebhookEndpoint[]>`
      insert into webhook_endpoints (id, tenant_id, url, event_types, description, secret_key_id, secret_ciphertext)
      values (${id}, ${e.tenantId}, ${e.url}, ${e.eventTypes}::text[], ${e.description}, ${sealed.keyId}, ${sealed.blob})
      returning *`;
    return { endpoint: endpoint!, secret };
  });
}

export async function getEndpoint(sql: Sql, tenantId: string, id: string): Promise<WebhookEndpoint | undefined> {
  const [row] = await sql<WebhookEndpoint[]>`select * from webhook_endpoints where id = ${id} and tenant_id = ${tenantId}`;
  return row;
}

/** Newest first, keyset on (created_at, id). */
export async function listEndpoints(
  sql: Sql,
  tenantId: string,
  limit: number,
  after?: { createdAt: string; id: string },
): Promise<(WebhookEndpoint & { pageCursor: string })[]> {
  return sql<(WebhookEndpoint & { pageCursor: string })[]>`
    select *, ${microsText(sql, 'created_at')} as page_cursor from webhook_endpoints
    where tenant_id = ${tenantId}
    ${after ? sql`and (created_at, id) < (${after.createdAt}::text::timestamptz, ${after.id}::uuid)` : sql``}
    order by created_at desc, id desc
    limit ${limit}`;
}

export async function updateEndpoint(
  sql: Sql,
  tenantId: string,
  id: string,
  patch: { url?: string; eventTypes?: EventType[]; description?: string | null; enabled?: boolean },
): Promise<WebhookEndpoint | undefined> {
  const [row] = await sql<WebhookEndpoint[]>`
    update webhook_endpoints set
      url = coalesce(${patch.url ?? null}::text, url),
      event_types = coalesce(${patch.eventTypes ?? null}::text[], event_types),
      description = ${patch.description === undefined ? sql`description` : patch.description},
      enabled = coalesce(${patch.enabled ?? null}::boolean, enabled),
      disabled_reason = case
        when ${patch.enabled ?? null}::boolean is true then null
        when ${patch.enabled ?? null}::boolean is false and enabled then 'disabled'
        else disabled_reason end,
      updated_at = now()
    where id = ${id} and tenant_id = ${tenantId}
    returning *`;
  return row;
}

export async function deleteEndpoint(sql: Sql, tenantId: string, id: string): Promise<boolean> {
  const deleted = await sql`delete from webhook_endpoints where id = ${id} and tenant_id = ${tenantId}`;
  return deleted.count === 1;
}

/** A new secret signs from now on; the current one becomes the previous and keeps signing for 24 h. */
export async function rotateSecret(
  sql: Sql,
  keyring: Keyring,
  tenantId: string,
  id: string,
): Promise<{ endpoint: WebhookEndpoint; secret: string } | undefined> {
  const secret = newWebhookSecret();
  const sealed = keyring.seal(secret, secretAad(id));
  const [endpoint] = await sql<WebhookEndpoint[]>`
    update webhook_endpoints set
      previous_secret_key_id = secret_key_id,
      previous_secret_ciphertext = secret_ciphertext,
      previous_secret_expires_at = now() + make_interval(secs => ${PREVIOUS_SECRET_VALID_MS / 1000}),
      secret_key_id = ${sealed.keyId},
      secret_ciphertext = ${sealed.blob},
      updated_at = now()
    where id = ${id} and tenant_id = ${tenantId}
    returning *`;
  return endpoint && { endpoint, secret };
}

/**
 * Re-seals under the current ENCRYPTION_KEY every endpoint secret (and a previous one still
 * signing) sealed under an older key, so the old key can be dropped after a rotation. Each update
 * is guarded by the ciphertext it replaces: a rotation of the secret meanwhile wins. Returns how
 * many endpoints were re-sealed.
 */
export async function resealStaleSecrets(sql: Sql, keyring: Keyring): Promise<number> {
  const stale = await sql<WebhookEndpoint[]>`
    select * from webhook_endpoints
    where secret_key_id <> ${keyring.currentKeyId} or previous_secret_key_id <> ${keyring.currentKeyId}`;
  let resealed = 0;
  for (const e of stale) {
    const current = keyring.seal(keyring.open({ keyId: e.secretKeyId, blob: e.secretCiphertext }, secretAad(e.id)), secretAad(e.id));
    const previous =
      e.previousSecretKeyId && e.previousSecretCiphertext
        ? keyring.seal(keyring.open({ keyId: e.previousSecretKeyId, blob: e.previousSecretCiphertext }, secretAad(e.id)), secretAad(e.id))
        : null;
    const updated = await sql`
      update webhook_endpoints set
        secret_key_id = ${current.keyId}, secret_ciphertext = ${current.blob},
        previous_secret_key_id = ${previous?.keyId ?? null}, previous_secret_ciphertext = ${previous?.blob ?? null}
      where id = ${e.id} and secret_ciphertext = ${e.secretCiphertext}
        and previous_secret_ciphertext is not distinct from ${e.previousSecretCiphertext ?? null}`;
    resealed += updated.count;
  }
  return resealed;
}

/** The secrets that sign a delivery now: the current one, then the previous while it is valid. */
export function signingSecrets(keyring: Keyring, e: WebhookEndpoint, now = new Date()): string[] {
  const secrets = [keyring.open({ keyId: e.secretKeyId, blob: e.secretCiphertext }, secretAad(e.id))];
  if (e.previousSecretKeyId && e.previousSecretCiphertext && e.previousSecretExpiresAt && e.previousSecretExpiresAt > now)
    secrets.push(keyring.open({ keyId: e.previousSecretKeyId, blob: e.previousSecretCiphertext }, secretAad(e.id)));
  return secrets;
}

// -------------------------------------------------------------------------------------------------
// Deliveries

export interface DeliveryRef {
  id: string;
  eventId: string;
  endpointId: string;
}

/**
 * Fans committed events out into one delivery per subscribed, enabled endpoint of their tenant and
 * marks the events dispatched, in one transaction. Returns only the deliveries this call created
 * (whoever creates one starts its workflow; the sweeper starts the ones a crash left unstarted).
 */
export async function createDeliveries(sql: Sql, eventIds: readonly string[]): Promise<DeliveryRef[]> {
  if (eventIds.length === 0) return [];
  return sql.begin(async (tx) => {
    const created = await tx<DeliveryRef[]>`
      insert into webhook_deliveries (id, endpoint_id, event_id)
      select gen_random_uuid(), w.id, e.id
      from events e join webhook_endpoints w on w.tenant_id = e.tenant_id and w.enabled and e.type = any (w.event_types)
      where e.id in ${tx(eventIds as string[])} and e.dispatched_at is null
      order by e.tx_id, e.position, w.id
      on conflict (event_id, endpoint_id) do nothing
      returning id, event_id, endpoint_id`;
    await tx`update events set dispatched_at = now() where id in ${tx(eventIds as string[])} and dispatched_at is null`;
    return created;
  });
}

export async function markWorkflowsStarted(sql: Sql, deliveryIds: readonly string[]): Promise<void> {
  if (deliveryIds.length === 0) return;
  await sql`update webhook_deliveries set workflow_started_at = now() where id in ${sql(deliveryIds as string[])}`;
}

/** Events a crash left undispatched (committed, but their deliveries never created). */
export async function undispatchedEvents(sql: Sql, olderThanSeconds: number, limit = 1000): Promise<string[]> {
  const rows = await sql<{ id: string }[]>`
    select id from events where dispatched_at is null and created_at < now() - make_interval(secs => ${olderThanSeconds})
    order by created_at limit ${limit}`;
  return rows.map((r) => r.id);
}

/**
 * Pending deliveries whose workflow was never started, or whose workflow has shown no sign of life
 * for longer than any retry interval (lost with a Temporal database, or terminated by hand).
 */
export async function strandedDeliveries(
  sql: Sql,
  opts: { olderThanSeconds: number; silentForSeconds: number },
  limit = 1000,
): Promise<DeliveryRef[]> {
  return sql<DeliveryRef[]>`
    select id, event_id, endpoint_id from webhook_deliveries
    where status = 'pending' and created_at < now() - make_interval(secs => ${opts.olderThanSeconds})
      and (workflow_started_at is null
           or greatest(workflow_started_at, last_attempt_at) < now() - make_interval(secs => ${opts.silentForSeconds}))
    order by created_at limit ${limit}`;
}

export interface DeliveryToSend {
  id: string;
  status: DeliveryStatus;
  endpoint: WebhookEndpoint;
  event: StoredEvent;
}

export async function deliveryToSend(sql: Sql, deliveryId: string): Promise<DeliveryToSend | undefined> {
  const [delivery] = await sql<{ id: string; status: DeliveryStatus; eventId: string; endpointId: string }[]>`
    select id, status, event_id, endpoint_id from webhook_deliveries where id = ${deliveryId}`;
  if (!delivery) return undefined;
  const [endpoint] = await sql<WebhookEndpoint[]>`select * from webhook_endpoints where id = ${delivery.endpointId}`;
  const [event] = await sql<StoredEvent[]>`
    select id, tenant_id, connection_id, sequence::text, type, data, created_at, tx_id::text as tx_id, position::text as position
    from events where id = ${delivery.eventId}`;
  return endpoint && event && { id: delivery.id, status: delivery.status, endpoint, event };
}

/** An attempt's outcome, kept once per attempt number; a delivered or gone one also settles the delivery. */
export async function recordAttempt(
  sql: Sql,
  a: {
    deliveryId: string;
    endpointId: string;
    attempt: number;
    startedAt: Date;
    durationMs: number;
    responseStatus: number | null;
    error: string | null;
    outcome: 'delivered' | 'failed' | 'gone';
  },
): Promise<void> {
  await sql.begin(async (tx: TransactionSql) => {
    await tx`
      insert into webhook_attempts (delivery_id, attempt, started_at, duration_ms, response_status, error, outcome)
      values (${a.deliveryId}, ${a.attempt}, ${a.startedAt}, ${a.durationMs}, ${a.responseStatus}, ${a.error}, ${a.outcome})
      on conflict (delivery_id, attempt) do nothing`;
    await tx`
      update webhook_deliveries set
        attempts = attempts + 1,
        last_attempt_at = now(),
        status = ${a.outcome === 'delivered' ? 'delivered' : a.outcome === 'gone' ? 'failed' : 'pending'},
        finished_at = case when ${a.outcome} = 'failed' then null else now() end
      where id = ${a.deliveryId} and status = 'pending'`;
    // 410 Gone: the receiver says this endpoint is no more. Nothing more is sent to it until re-enabled.
    if (a.outcome === 'gone')
      await tx`update webhook_endpoints set enabled = false, disabled_reason = 'gone', updated_at = now() where id = ${a.endpointId}`;
  });
}

/** Ends a pending delivery without sending it (given up after the retry window, or its endpoint disabled). */
export async function finishDelivery(sql: Sql, deliveryId: string, status: 'failed' | 'cancelled'): Promise<void> {
  await sql`
    update webhook_deliveries set status = ${status}, finished_at = now() where id = ${deliveryId} and status = 'pending'`;
}

export interface DeliveryView {
  id: string;
  eventId: string;
  eventType: EventType;
  connectionId: string;
  sequence: number;
  status: DeliveryStatus;
  createdAt: string;
  finishedAt: string | null;
  attempts: { attempt: number; at: string; durationMs: number; responseStatus: number | null; error: string | null }[];
}

/** An endpoint's deliveries, newest first (keyset on (created_at, id)), each with its attempts. */
export async function listDeliveries(
  sql: Sql,
  endpointId: string,
  limit: number,
  after?: { createdAt: string; id: string },
): Promise<(DeliveryView & { pageCursor: string })[]> {
  const rows = await sql<
    {
      id: string;
      eventId: string;
      eventType: EventType;
      connectionId: string;
      sequence: string;
      status: DeliveryStatus;
      createdAt: Date;
      finishedAt: Date | null;
      pageCursor: string;
    }[]
  >`
    select d.id, d.event_id, e.type as event_type, e.connection_id, e.sequence::text, d.status, d.created_at, d.finished_at,
           d.page_cursor
    from (select *, ${microsText(sql, 'created_at')} as page_cursor from webhook_deliveries where endpoint_id = ${endpointId}
          ${after ? sql`and (created_at, id) < (${after.createdAt}::text::timestamptz, ${after.id}::uuid)` : sql``}
          order by created_at desc, id desc limit ${limit}) d
    join events e on e.id = d.event_id
    order by d.created_at desc, d.id desc`;
  if (rows.length === 0) return [];
  const attempts = await sql<
    { deliveryId: string; attempt: number; startedAt: Date; durationMs: number; responseStatus: number | null; error: string | null }[]
  >`
    select delivery_id, attempt, started_at, duration_ms, response_status, error from webhook_attempts
    where delivery_id in ${sql(rows.map((r) => r.id))} order by delivery_id, attempt`;
  const byDelivery = new Map<string, DeliveryView['attempts']>();
  for (const a of attempts) {
    const list = byDelivery.get(a.deliveryId) ?? [];
    list.push({
      attempt: a.attempt,
      at: a.startedAt.toISOString(),
      durationMs: a.durationMs,
      responseStatus: a.responseStatus,
      error: a.error,
    });
    byDelivery.set(a.deliveryId, list);
  }
  return rows.map((r) => ({
    id: r.id,
    eventId: r.eventId,
    eventType: r.eventType,
    connectionId: r.connectionId,
    sequence: Number(r.sequence),
    status: r.status,
    createdAt: r.createdAt.toISOString(),
    finishedAt: r.finishedAt?.toISOString() ?? null,
    attempts: byDelivery.get(r.id) ?? [],
    pageCursor: r.pageCursor,
  }));
}
