import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A real HTTP server playing a customer's webhook receiver. It verifies every request's signature
 * the way the README tells receivers to (written here independently of src/, so the documented
 * recipe is what is proven), and answers with whatever status the test scripts.
 */

/** README "Verifying a webhook": true when one v1 signature matches `secret` and the timestamp is recent. */
export function verifySignature(header: string | undefined, rawBody: string, secret: string, toleranceSeconds = 300): boolean {
  if (!header) return false;
  const parts = header.split(',').map((p) => p.split('=') as [string, string]);
  const t = Number(parts.find(([k]) => k === 't')?.[1]);
  if (!Number.isInteger(t) || Math.abs(Date.now() / 1000 - t) > toleranceSeconds) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${rawBody}`).digest();
  return parts
    .filter(([k]) => k === 'v1')
    .some(([, v]) => {
      const got = Buffer.from(v, 'hex');
      return got.length === expected.length && timingSafeEqual(got, expected);
    });
}

export interface ReceivedWebhook {
  headers: http.IncomingHttpHeaders;
  rawBody: string;
  body: any;
  status: number;
  /** Which of the receiver's secrets verified it (indexes into `secrets`), empty when none. */
  verifiedBy: number[];
}

export interface WebhookReceiver {
  url: string;
  /** Every request, in arrival order. */
  received: ReceivedWebhook[];
  /** The secrets signatures are checked against (set once the endpoint is created, extended on rotation). */
  secrets: string[];
  /** The status of each next answer, consumed in order; afterwards `defaultStatus`. */
  script: number[];
  defaultStatus: number;
  /** Successfully answered (2xx) requests' bodies, deduplicated by event id. */
  deliveredEvents(): any[];
  close(): Promise<void>;
}

export async function startWebhookReceiver(path = '/hooks'): Promise<WebhookReceiver> {
  const receiver: Omit<WebhookReceiver, 'url' | 'close'> = {
    received: [],
    secrets: [],
    script: [],
    defaultStatus: 200,
    deliveredEvents() {
      const seen = new Map<string, any>();
      for (const r of this.received) if (r.status >= 200 && r.status < 300 && !seen.has(r.body.id)) seen.set(r.body.id, r.body);
      return [...seen.values()];
    },
  };
  const server = http.createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (raw += c));
    req.on('end', () => {
      const header = req.headers['conduit-signature'] as string | undefined;
      const verifiedBy = receiver.secrets.flatMap((s, i) => (verifySignature(header, raw, s) ? [i] : []));
      // An unverifiable request is refused like a real receiver would (and the test sees it).
      const status = verifiedBy.length ? (receiver.script.shift() ?? receiver.defaultStatus) : 400;
      let body: unknown = raw;
      try {
        body = JSON.parse(raw);
      } catch {
        // keep the text
      }
      receiver.received.push({ headers: req.headers, rawBody: raw, body, status, verifiedBy });
      res.writeHead(status, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(receiver, {
    url: `http://127.0.0.1:${port}${path}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}
