import type { FastifyReply } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { getConnection } from '../../db/connections';
import { getTenant } from '../../db/tenants';
import type { ConnectionRow } from '../../domain/connection';
import { adapterOf } from '../../providers/registry';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { claimInviteForUse } from '../invite-use';
import { cookieOf, createOAuthBrowser } from '../oauth-browser';
import { logWith } from '../log-context';
import { browserCookieMatches, browserCookieName, consumeState, verifyStateSignature } from '../oauth-state';
import { assertSameSite, escapeHtml, htmlPage } from '../pages';
import { returnUrlAllowed } from '../return-origins';
import { errorResponses, oauthCallbackQuery, oauthContinueBody, oauthStartQuery } from '../schemas';

/** Provider error codes are echoed to the return URL, so only a safe, short token is passed on. */
const safeCode = (s: string) => (/^[a-z0-9_.-]{1,64}$/i.test(s) ? s : 'authorization_failed');

/**
 * The browser side of OAuth, in three steps:
 *
 * 1. `GET /v1/oauth/start?state=…` (the `authorizeUrl` the API hands out) shows a consent page
 *    naming the tenant and connection that ask, with a Continue button.
 * 2. `POST /v1/oauth/start` (that button) sets a short-lived `HttpOnly`, `SameSite=Lax` cookie bound
 *    to the state (an HMAC of it) and redirects to the provider's authorize URL.
 * 3. `GET /v1/oauth/callback` accepts the provider's answer only from the browser holding that
 *    cookie: a provider URL lifted from step 2 and sent to someone else fails with
 *    `oauth_browser_mismatch`, before the state is used or any code exchanged.
 *
 * An invite's page (./invite-pages.ts) enters at step 2 with a state bound to the invite: its
 * callback uses the invite up when the credential is adopted and lands on our result page.
 */
export const oauthRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, deps) => {
  const { sql, config, vault, connections } = deps;
  const browser = createOAuthBrowser(deps);
  const { redirectUri, startable } = browser;
  const publicOrigin = new URL(config.http.publicUrl).origin;

  // The consent form posts url-encoded; only routes in this plugin accept it.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 4096 }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });

  app.get(
    '/v1/oauth/start',
    {
      schema: {
        tags: ['oauth'],
        summary: 'Consent page (HTML) naming the tenant and connection asking for access; its Continue button posts to /v1/oauth/start',
        querystring: oauthStartQuery,
        response: {
          200: { description: 'The consent page', content: { 'text/html': { schema: z.string() } } },
          ...errorResponses(400, 409, 429),
        },
      },
    },
    async (req, reply) => {
      const state = req.query.state;
      const { row, manifest, providerUrl } = await startable(state);
      logWith(req, { tenantId: row.tenantId, connectionId: row.id });
      const tenant = await getTenant(sql, row.tenantId);
      const asker = escapeHtml(tenant?.name ?? 'An application');
      const product = row.name ? `’s “${escapeHtml(row.name)}”` : '';
      const provider = escapeHtml(manifest.displayName);
      const back =
        row.returnUrl && tenant && returnUrlAllowed(row.returnUrl, tenant.allowedReturnOrigins, config.http.publicUrl)
          ? new URL(row.returnUrl).origin
          : null;
      return htmlPage(
        reply,
        `Connect your ${provider} account`,
        `<h1>Connect your ${provider} account</h1>` +
          `<p><strong>${asker}</strong>${product} wants read access to your ${provider} account.</p>` +
          `<p>Continuing takes you to ${provider}, where you approve or refuse.` +
          (back ? ` Afterwards you return to <strong>${escapeHtml(back)}</strong>.` : '') +
          `</p><form method="post" action="/v1/oauth/start">` +
          `<input type="hidden" name="state" value="${escapeHtml(state!)}">` +
          `<button type="submit" style="font-size:1rem;padding:.5rem 1.25rem">Continue to ${provider}</button></form>` +
          `<p><small>If you did not expect this request, close this window.</small></p>`,
        // The form posts to us and we redirect to the provider: form-action must allow both.
        `form-action 'self' ${new URL(providerUrl).origin}`,
      );
    },
  );

  app.post(
    '/v1/oauth/start',
    {
      schema: {
        tags: ['oauth'],
        summary: 'The consent page’s Continue: binds this browser to the flow (cookie) and redirects to the provider',
        consumes: ['application/x-www-form-urlencoded'],
        body: oauthContinueBody,
        response: {
          302: z.null().describe('Redirect to the provider’s authorize page, with a Set-Cookie binding this browser to the state'),
          ...errorResponses(400, 403, 409, 413, 415, 429),
        },
      },
    },
    async (req, reply) => {
      // A cross-site form post could otherwise skip the consent page and bind the victim's browser.
      assertSameSite(req, publicOrigin, 'Continue from the consent page itself.');
      return browser.continueToProvider(reply, req.body.state);
    },
  );

  app.get(
    '/v1/oauth/callback',
    {
      schema: {
        tags: ['oauth'],
        summary:
          'Where the OAuth provider sends the customer back; the `state` authenticates the request and the cookie set by /v1/oauth/start must match it',
        querystring: oauthCallbackQuery,
        response: {
          // `type: 'null'` tells @fastify/swagger the redirect has no body (no content in the document).
          302: z.null().meta({
            type: 'null',
            description:
              'Redirect to the connection’s returnUrl (or /v1/oauth/result, always for a flow begun at an invite) with ?connection=&result=connected|error&error=',
          }),
          ...errorResponses(400, 429),
        },
      },
    },
    async (req, reply) => {
      // Some providers repeat `state` in their redirects; all copies must agree.
      const states = ([] as string[]).concat(req.query.state ?? []);
      if (new Set(states).size > 1) throw new ApiError(400, 'invalid_state', 'Conflicting OAuth state values.');
      const state = states[0];
      const nonce = verifyStateSignature(deps.stateKeys, state);
      const cookieName = browserCookieName(nonce);
      if (!browserCookieMatches(deps.browserKeys, state!, cookieOf(req, cookieName))) {
        throw new ApiError(
          400,
          'oauth_browser_mismatch',
          'This authorization was not started in this browser; open the link from the app again and finish it in the same browser.',
        );
      }
      const { connectionId, inviteId } = await consumeState(sql, deps.stateKeys, state);
      browser.clearBinding(reply, cookieName);
      const row = await getConnection(sql, connectionId);
      if (!row) throw new ApiError(400, 'invalid_state', 'The connection for this state no longer exists.');
      logWith(req, { tenantId: row.tenantId, connectionId: row.id });
      const tenant = await getTenant(sql, row.tenantId);
      // The origin is checked again: the tenant may have removed it since the connection was created.
      // The provider's admin, sent by an invite, is not a user of the tenant's app: our own result page.
      const returnUrl =
        !inviteId && row.returnUrl && tenant && returnUrlAllowed(row.returnUrl, tenant.allowedReturnOrigins, config.http.publicUrl)
          ? row.returnUrl
          : null;

      const back = (result: 'connected' | 'error', error?: string) => redirectBack(reply, row, returnUrl, result, error, inviteId !== null);

      if (req.query.error) return back('error', safeCode(req.query.error));
      if (!req.query.code) return back('error', 'missing_code');

      const { oauth, manifest } = adapterOf(deps.providers, row.provider);
      if (!oauth) return back('error', 'unsupported_for_provider');
      // Checked before the exchange, so a paused or disconnected connection never spends a code.
      try {
        connections.assertAllowed(row, 'set_credentials');
      } catch (err) {
        if (err instanceof ApiError) return back('error', err.code);
        throw err;
      }
      const client = await vault.openOAuthClient(row.id);
      // The connection's own consumer if it brought one (a destroyed secret means none), else the platform's.
      const consumer = client
        ? client.clientSecret != null
          ? { clientId: client.clientId, clientSecret: client.clientSecret }
          : undefined
        : oauth.platformClient;
      if (!consumer) return back('error', 'oauth_client_required');

      // An invite is used once: claimed before the code is spent, used when the credential is adopted.
      let use;
      try {
        use = inviteId ? await claimInviteForUse(sql, inviteId) : undefined;
      } catch (err) {
        if (err instanceof ApiError) return back('error', err.code);
        throw err;
      }
      let tokens;
      try {
        tokens = await oauth.exchangeCode(consumer, req.query.code, redirectUri);
      } catch (err) {
        await use?.release();
        req.log.warn({ reason: (err as Error).message }, 'oauth code exchange failed');
        return back('error', 'token_exchange_failed');
      }
      try {
        await connections.attachCredential(row, () =>
          vault.storePending(
            row.id,
            manifest.credentialKind,
            { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken },
            tokens.expiresAt,
          ),
        );
      } catch (err) {
        await use?.release();
        if (err instanceof ApiError) return back('error', err.code);
        throw err;
      }
      await use?.markUsed();
      return back('connected');
    },
  );

  function redirectBack(
    reply: FastifyReply,
    row: ConnectionRow,
    returnUrl: string | null,
    result: 'connected' | 'error',
    error: string | undefined,
    viaInvite: boolean,
  ) {
    const target = new URL(returnUrl ?? `${config.http.publicUrl}/v1/oauth/result`);
    target.searchParams.set('connection', row.id);
    target.searchParams.set('result', result);
    if (error) target.searchParams.set('error', error);
    if (viaInvite) target.searchParams.set('via', 'invite');
    return reply.redirect(target.toString(), 302);
  }

  app.get(
    '/v1/oauth/result',
    {
      schema: {
        tags: ['oauth'],
        summary: 'A minimal page shown after authorizing when the connection has no returnUrl',
        querystring: z.object({
          connection: z.string().max(100).optional(),
          result: z.string().max(20).optional(),
          error: z.string().max(100).optional(),
          via: z.enum(['invite']).optional().describe('`invite` when the flow began at an invite link (its retry advice differs)'),
        }),
        response: {
          200: { description: 'A small HTML page saying whether it worked', content: { 'text/html': { schema: z.string() } } },
          ...errorResponses(400, 429),
        },
      },
    },
    async (req, reply) => {
      const ok = req.query.result === 'connected';
      const title = ok ? 'Connected' : 'Connection failed';
      const retry = req.query.via === 'invite' ? 'Open the invite link again to retry, or ask for a new one.' : 'Start again from the app.';
      const detail = ok ? 'You can close this window.' : `Reason: ${escapeHtml(req.query.error ?? 'unknown')}. ${retry}`;
      return htmlPage(reply, title, `<h1>${title}</h1><p>${detail}</p>`);
    },
  );
};
