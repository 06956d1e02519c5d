import { activityInfo, ApplicationFailure } from '@temporalio/activity';
import type { Keyring } from '../crypto/keyring';
import { toEnvelope } from '../db/events';
import type { Sql } from '../db/sql';
import { deliveryToSend, resealStaleSecrets, signingSecrets, strandedDeliveries, undispatchedEvents } from '../db/webhooks';
import type { DeliveryRetry } from '../workflows/webhook-delivery';
import type { WebhookDispatcher } from './dispatch';
import { postWebhook } from './http';
import { recordDeliveryOutcome } from './outcomes';
import { EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, signatureHeader } from './signing';
import { checkWebhookUrl, WebhookTargetError } from './targets';

export interface WebhookActivityDeps {
  sql: Sql;
  keyring: Keyring;
  dispatcher: WebhookDispatcher;
  allowInsecureUrls: boolean;
  retry: DeliveryRetry;
}

/** Events younger than this are still being dispatched by whoever committed them. */
const SWEEP_GRACE_SECONDS = 10;

export const DELIVERY_FAILED = 'WebhookDeliveryFailed';

/** What a failed attempt says about itself: the status, or what went wrong before one (never a URL's secrets: URLs hold none). */
function describeFailure(err: unknown): string {
  if (err instanceof WebhookTargetError) return err.message;
  const e = err as { name?: string; code?: string; message?: string };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'timed out';
  return (e.code ? `${e.code}: ` : '') + (e.message ?? String(err)).slice(0, 300);
}

export function createWebhookActivities(deps: WebhookActivityDeps) {
  const { sql } = deps;

  return {
    /**
     * One HTTP attempt of one delivery. Returns when there is nothing more to do (delivered, 410,
     * already settled, endpoint disabled or deleted); throws to have Temporal retry it later.
     */
    async deliverWebhook(deliveryId: string): Promise<void> {
      const d = await deliveryToSend(sql, deliveryId);
      // Settled by an earlier attempt, or its endpoint deleted (the delivery went with it).
      if (!d || d.status !== 'pending') return;
      if (!d.endpoint.enabled) return recordDeliveryOutcome(sql, { kind: 'cancelled', deliveryId });

      const body = JSON.stringify(toEnvelope(d.event));
      const timestamp = Math.floor(Date.now() / 1000);
      const headers = {
        'content-type': 'application/json',
        'user-agent': 'Conduit-Webhooks/1',
        [SIGNATURE_HEADER]: signatureHeader(signingSecrets(deps.keyring, d.endpoint), timestamp, body),
        [EVENT_ID_HEADER]: d.event.id,
        [EVENT_TYPE_HEADER]: d.event.type,
      };
      const startedAt = new Date();
      let status: number | null = null;
      let error: string | null = null;
      try {
        // The URL is checked again: the rules (or the deployment's flag) may have changed since it was registered.
        const url = checkWebhookUrl(d.endpoint.url, deps.allowInsecureUrls);
        status = await postWebhook(url, body, headers, { allowLoopback: deps.allowInsecureUrls });
      } catch (err) {
        error = describeFailure(err);
      }
      const result = status !== null && status >= 200 && status < 300 ? 'delivered' : status === 410 ? 'gone' : 'failed';
      await recordDeliveryOutcome(sql, {
        kind: 'attempt',
        result,
        deliveryId,
        endpointId: d.endpoint.id,
        attempt: activityInfo().attempt,
        startedAt,
        durationMs: Date.now() - startedAt.getTime(),
        responseStatus: status,
        error,
      });
      if (result !== 'failed') return;
      throw ApplicationFailure.create({
        type: DELIVERY_FAILED,
        message: status !== null ? `The endpoint answered ${status}` : `The request failed: ${error}`,
      });
    },

    /** The retry window is over: the delivery is given up (`failed`). */
    async giveUpDelivery(deliveryId: string): Promise<void> {
      await recordDeliveryOutcome(sql, { kind: 'given_up', deliveryId });
    },

    /**
     * Dispatches what a crash between a commit and its dispatch left behind: events without their
     * deliveries, deliveries without a running workflow. Idempotent, like the dispatch itself.
     */
    async sweepWebhooks(): Promise<{ events: number; deliveries: number; resealed: number }> {
      const events = await undispatchedEvents(sql, SWEEP_GRACE_SECONDS);
      await deps.dispatcher.dispatch(events);
      const stranded = await strandedDeliveries(sql, {
        olderThanSeconds: SWEEP_GRACE_SECONDS,
        // Longer than any wait between two attempts: a workflow that has shown no sign of life for this long is gone.
        silentForSeconds: Math.ceil(deps.retry.maximumIntervalMs / 1000) + 300,
      });
      await deps.dispatcher.start(stranded);
      // After an ENCRYPTION_KEY rotation, secrets move to the new key here, so the old one can go.
      const resealed = await resealStaleSecrets(sql, deps.keyring);
      return { events: events.length, deliveries: stranded.length, resealed };
    },
  };
}

export type WebhookActivities = ReturnType<typeof createWebhookActivities>;
