import { finishDelivery, recordAttempt } from '../db/webhooks';
import type { Sql } from '../db/sql';
import { recordWebhookDelivery } from '../metrics';

/**
 * The one place every webhook delivery outcome passes through, once each: an HTTP attempt that
 * delivered (2xx), failed (any other status, a timeout, a refused or unreachable target; retried)
 * or was answered 410 Gone (endpoint disabled), and a delivery given up after the retry window or
 * cancelled because its endpoint was disabled; each is stored and counted (`conduit_webhook_deliveries_total`).
 */
export type DeliveryOutcome =
  | {
      kind: 'attempt';
      result: 'delivered' | 'failed' | 'gone';
      deliveryId: string;
      endpointId: string;
      attempt: number;
      startedAt: Date;
      durationMs: number;
      responseStatus: number | null;
      error: string | null;
    }
  | { kind: 'given_up' | 'cancelled'; deliveryId: string };

export async function recordDeliveryOutcome(sql: Sql, o: DeliveryOutcome): Promise<void> {
  if (o.kind === 'attempt') {
    const { kind: _kind, result, ...attempt } = o;
    await recordAttempt(sql, { ...attempt, outcome: result });
    recordWebhookDelivery(result === 'failed' ? 'retried' : result);
  } else {
    await finishDelivery(sql, o.deliveryId, o.kind === 'given_up' ? 'failed' : 'cancelled');
    recordWebhookDelivery(o.kind);
  }
}
