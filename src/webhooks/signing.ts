import { createHmac, randomBytes } from 'node:crypto';

/**
 * Webhook signatures, Stripe's convention: `Conduit-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>]`
 * where each v1 is HMAC-SHA256, keyed with one of the endpoint's secrets (the whole `whsec_…`
 * string, as UTF-8), over `<t>.<raw body>`. While a rotated secret is still valid both sign, so a
 * receiver holding either one verifies. The README shows the receiver's side.
 */

export const SIGNATURE_HEADER = 'Conduit-Signature';
export const EVENT_ID_HEADER = 'Conduit-Event-Id';
export const EVENT_TYPE_HEADER = 'Conduit-Event-Type';

/** A new signing secret: 32 random bytes, shown to the customer once. */
export const newWebhookSecret = () => `whsec_${randomBytes(32).toString('base64url')}`;

export const signPayload = (secret: string, timestamp: number, body: string) =>
  createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');

/** The header value for `body` sent at `timestamp`, one v1 per secret (current first). */
export function signatureHeader(secrets: readonly string[], timestamp: number, body: string): string {
  return [`t=${timestamp}`, ...secrets.map((s) => `v1=${signPayload(s, timestamp, body)}`)].join(',');
}
