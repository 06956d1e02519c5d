import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from './errors';

/**
 * What the API's few HTML pages (the OAuth consent and result pages, the invite pages) share: one
 * small, script-free layout under a strict policy, escaping, and the check that a form post came
 * from one of our own pages.
 */

/**
 * A small, script-free HTML page; everything interpolated into `body` is escaped by the caller.
 * Pages are never cached, never indexed and never send a Referer to anyone else (their URLs can
 * carry a state or an invite's secret). `same-origin`, not `no-referrer`: under `no-referrer` a
 * browser posts the page's forms with `Origin: null`, which `assertSameSite` must refuse (a real
 * Chromium could not get past the consent page: test/browser/console.test.ts).
 */
export function htmlPage(reply: FastifyReply, title: string, body: string, extraCsp = "form-action 'none'") {
  return reply
    .type('text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .header('referrer-policy', 'same-origin')
    .header('x-robots-tag', 'noindex, nofollow')
    .header(
      'content-security-policy',
      `default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; ${extraCsp}`,
    )
    .send(
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
        `<meta name="robots" content="noindex, nofollow"><title>${title} · Conduit</title></head>` +
        `<body style="font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;line-height:1.5"><main>${body}</main></body></html>`,
    );
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Refuses a form post the browser says came from another site (`Origin`, `Sec-Fetch-Site`): a
 * hostile page could otherwise post our forms on a visitor's behalf and skip the page that explains
 * what is being granted. Clients that send neither header (curl) are not browsers being abused.
 */
export function assertSameSite(req: FastifyRequest, publicOrigin: string, message: string): void {
  const origin = req.headers.origin;
  const site = req.headers['sec-fetch-site'];
  if ((origin && origin !== publicOrigin) || (site && site !== 'same-origin' && site !== 'none')) {
    throw new ApiError(403, 'cross_site_request', message);
  }
}
