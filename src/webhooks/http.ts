import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { guardedLookup, isForbiddenAddress, WebhookTargetError } from './targets';

/** One attempt's deadline, connect to response headers (README: "10 s timeout per attempt"). */
export const ATTEMPT_TIMEOUT_MS = 10_000;

/**
 * POSTs one webhook body and returns the response's status. Redirects are not followed (a 3xx is
 * a failed attempt), the response body is not read, and the addresses connected to are checked
 * (`guardedLookup`) at this moment, so a host re-pointed at an internal address is refused.
 */
export function postWebhook(
  url: URL,
  body: string,
  headers: Record<string, string>,
  opts: { allowLoopback: boolean; timeoutMs?: number },
): Promise<number> {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (isIP(host) !== 0 && isForbiddenAddress(host, opts.allowLoopback))
    return Promise.reject(new WebhookTargetError('webhook_url_not_allowed', `${host} is not an address webhooks may reach`));
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(
      url,
      {
        method: 'POST',
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        lookup: guardedLookup(opts.allowLoopback),
        // A fresh connection per attempt: its address is the one just checked.
        agent: false,
        signal: AbortSignal.timeout(opts.timeoutMs ?? ATTEMPT_TIMEOUT_MS),
      },
      (res) => {
        resolve(res.statusCode ?? 0);
        res.destroy();
      },
    );
    req.once('error', reject);
    req.end(body);
  });
}
