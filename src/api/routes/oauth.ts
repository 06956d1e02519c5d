import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { getConnection } from '../../db/connections';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { consumeState } from '../oauth-state';
import { errorSchema, oauthCallbackQuery } from '../schemas';

/** Provider error codes are echoed to the return URL, so only a safe, short token is passed on. */
const safeCode = (s: string) => (/^[a-z0-9_.-]{1,64}$/i.test(s) ? s : 'authorization_failed');

export const oauthRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, deps) => {
  const { sql, config, vault, connections } = deps;
  const redirectUri = `${config.http.publicUrl}/v1/oauth/callback`;

  app.get(
    '/v1/oauth/callback',
    {
      schema: {
        tags: ['oauth'],
        summary: 'Where Bitbucket sends the customer back; the `state` authenticates the request',
        querystring: oauthCallbackQuery,
        response: { 302: z.null().describe('Redirect to the connection’s returnUrl'), 400: errorSchema },
      },
    },
    async (req, reply) => {
      // Bitbucket repeats `state` in some redirects; all copies must agree.
      const states = ([] as string[]).concat(req.query.state ?? []);
      if (new Set(states).size > 1) throw new ApiError(400, 'invalid_state', 'Conflicting OAuth state values.');
      const connectionId = await consumeState(sql, deps.stateKey, states[0]);
      const row = await getConnection(sql, connectionId);
      if (!row) throw new ApiError(400, 'invalid_state', 'The connection for this state no longer exists.');

      const back = (result: 'connected' | 'error', error?: string) => {
        const target = new URL(row.returnUrl ?? `${config.http.publicUrl}/v1/oauth/result`);
        target.searchParams.set('connection', row.id);
        target.searchParams.set('result', result);
        if (error) target.searchParams.set('error', error);
        return reply.redirect(target.toString(), 302);
      };

      if (req.query.error) return back('error', safeCode(req.query.error));
      if (!req.query.code) return back('error', 'missing_code');

      const client = await vault.openOAuthClient(row.id);
      const consumer =
        client?.clientSecret != null
          ? { clientId: client.clientId, clientSecret: client.clientSecret }
          : config.bitbucket.clientId && config.bitbucket.clientSecret && !client
            ? { clientId: config.bitbucket.clientId, clientSecret: config.bitbucket.clientSecret }
            : undefined;
      if (!consumer) return back('error', 'oauth_client_required');

      let tokens;
      try {
        tokens = await deps.bitbucket.exchangeCode(consumer, req.query.code, redirectUri);
      } catch (err) {
        req.log.warn({ connectionId: row.id, reason: (err as Error).message }, 'oauth code exchange failed');
        return back('error', 'token_exchange_failed');
      }
      try {
        await connections.attachCredential(row, () =>
          vault.storePending(row.id, 'bitbucket_oauth', { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken }, tokens.expiresAt),
        );
      } catch (err) {
        if (err instanceof ApiError) return back('error', err.code);
        throw err;
      }
      return back('connected');
    },
  );

  app.get(
    '/v1/oauth/result',
    {
      schema: {
        tags: ['oauth'],
        summary: 'A minimal page shown after authorizing when the connection has no returnUrl',
        querystring: z.object({ connection: z.string().max(100).optional(), result: z.string().max(20).optional(), error: z.string().max(100).optional() }),
      },
    },
    async (req, reply) => {
      const ok = req.query.result === 'connected';
      const title = ok ? 'Connected' : 'Connection failed';
      const detail = ok ? 'You can close this window.' : `Reason: ${escapeHtml(req.query.error ?? 'unknown')}. Start again from the app.`;
      return reply
        .type('text/html; charset=utf-8')
        .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'")
        .send(
          `<!doctype html><html lang="en"><meta charset="utf-8"><title>${title} · Conduit</title>` +
            `<body style="font-family:system-ui;max-width:32rem;margin:4rem auto"><h1>${title}</h1><p>${detail}</p></body></html>`,
        );
    },
  );
};

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
