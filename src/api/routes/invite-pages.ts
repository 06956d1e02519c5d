import type { FastifyError, FastifyReply } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { getConnection } from '../../db/connections';
import type { Invite } from '../../db/invites';
import { getTenant } from '../../db/tenants';
import type { ConnectionRow } from '../../domain/connection';
import type { ProviderManifest } from '../../providers/manifest';
import { adapterOf } from '../../providers/registry';
import type { ApiDeps } from '../deps';
import { ApiError, errorAnswer, type ErrorAnswer } from '../errors';
import { claimInviteForUse, unknownInvite, usableInvite } from '../invite-use';
import { createOAuthBrowser } from '../oauth-browser';
import { issueState } from '../oauth-state';
import { assertSameSite, escapeHtml, htmlPage } from '../pages';
import { credentialsSchema, invitePageParams, inviteTokenForm } from '../schemas';

/**
 * The pages behind an invite link (`PUBLIC_URL/invite/<secret>`), for the provider's admin, who
 * has no API key: the link's secret is the credential. Opening it shows who asks for what; the admin
 * then connects — Bitbucket through the OAuth round trip, Bitrise by pasting a token — and the link
 * is used up. Everything here answers HTML (errors too, with their stable code on the page), under
 * the same script-free policy as the OAuth consent page, never cached, indexed or sent as a Referer.
 */

const html = (description: string) => ({ description, content: { 'text/html': { schema: z.string() } } });
const page = {
  404: html('Unknown link (or a mistyped one): says nothing about whether it exists'),
  409: html('The connection cannot take a credential now (`connection_paused`, …), or the link is being used right now (`invite_in_use`)'),
  410: html('The link was used, revoked or has expired (`invite_used`, `invite_revoked`, `invite_expired`): changes nothing'),
  429: html('Too many requests from this address (`rate_limited`; see Retry-After)'),
};
const post = {
  ...page,
  400: html('Bad form input, or a provider this action does not apply to'),
  403: html('The form was posted from another site (`cross_site_request`)'),
  413: html('Body too large (`payload_too_large`)'),
  415: html('Body not form-encoded (`unsupported_media_type`)'),
};

/** What the page tells the admin for codes whose API message is written for the tenant. */
const ADMIN_MESSAGES: Record<string, string> = {
  connection_paused: 'The connection this link is for is paused. Ask the person who sent it to resume it, then open the link again.',
  connection_disconnected: 'The connection this link is for was disconnected. Ask the person who sent it for a new link.',
  connection_provisioning: 'The connection this link is for is still being set up. Try again in a minute.',
  cross_site_request: 'This form has to be sent from the invite page itself. Open the invite link again.',
  rate_limited: 'Too many attempts from your network. Wait a minute, then try again.',
  workflow_unavailable:
    'The service did not answer in time. Your request may still go through; open the invite link again in a few minutes.',
  temporal_unavailable: 'The service is unavailable right now. Open the invite link again in a few minutes.',
};

const TITLES: Record<number, string> = {
  400: 'That did not work',
  403: 'Request refused',
  404: 'Invite link not valid',
  409: 'Cannot connect right now',
  410: 'Invite link no longer usable',
  429: 'Too many attempts',
};

function errorPage(reply: FastifyReply, e: ErrorAnswer) {
  const title = TITLES[e.statusCode] ?? 'Something went wrong';
  return htmlPage(
    reply.code(e.statusCode),
    title,
    `<h1>${title}</h1><p>${escapeHtml(ADMIN_MESSAGES[e.code] ?? e.message)}</p><p><small>Code: <code>${escapeHtml(e.code)}</code></small></p>`,
  );
}

/** The page for a link we know nothing about (also for one too mangled to route, see app.ts). */
export function unknownInvitePage(reply: FastifyReply) {
  const { statusCode, code, message } = unknownInvite();
  return errorPage(reply, { statusCode, code, message });
}

interface InviteContext {
  secret: string;
  invite: Invite;
  row: ConnectionRow;
  tenantName: string;
  manifest: ProviderManifest;
}

export const invitePageRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, deps) => {
  const { sql, config, connections } = deps;
  const browser = createOAuthBrowser(deps);
  const publicOrigin = new URL(config.http.publicUrl).origin;

  // The token form posts url-encoded; only this plugin's routes accept it (tokens are at most 4 KiB).
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 16 * 1024 }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });
  // The admin's browser gets pages, whatever went wrong (rate limits, bad input, our faults).
  app.setErrorHandler((err: FastifyError, req, reply) => errorPage(reply, errorAnswer(err, req)));
  // A mangled link (a cut-off secret with a slash in it, an over-long one) is an unknown link too.
  app.setNotFoundHandler((_req, reply) => unknownInvitePage(reply));

  /** The invite behind a link that can still be used, and what its page names. */
  async function open(secret: string): Promise<InviteContext> {
    const invite = await usableInvite(sql, secret);
    const row = await getConnection(sql, invite.connectionId);
    if (!row) throw unknownInvite();
    const tenant = await getTenant(sql, row.tenantId);
    const { manifest } = adapterOf(deps.providers, row.provider);
    return { secret, invite, row, tenantName: tenant?.name ?? 'An organisation', manifest };
  }

  /** The invite page: who asks, for what, and the way to grant it; `error` after a refused attempt. */
  function invitePage(reply: FastifyReply, ctx: InviteContext, error?: string) {
    const { manifest, row } = ctx;
    const tenant = escapeHtml(ctx.tenantName);
    const provider = escapeHtml(manifest.displayName);
    const action = (path: string) => `/invite/${encodeURIComponent(ctx.secret)}/${path}`;
    const what = row.name ? ` for their connection “${escapeHtml(row.name)}”` : '';
    let grant: string;
    let formAction = "form-action 'self'";
    if (manifest.auth === 'oauth2') {
      // The Continue post redirects to the provider, so the policy must let the form go there.
      const oauth = adapterOf(deps.providers, row.provider).oauth!;
      formAction += ` ${new URL(oauth.authorizeUrl('', '', browser.redirectUri)).origin}`;
      grant =
        `<form method="post" action="${escapeHtml(action('authorize'))}">` +
        `<button type="submit" style="font-size:1rem;padding:.5rem 1.25rem">Continue to ${provider}</button></form>` +
        `<p>${provider} then shows its own page, where you approve or refuse.</p>`;
    } else {
      const help = (manifest.consent.tokenHelp ?? [])
        .map(
          (h) =>
            `<li><strong>${escapeHtml(h.kind)}</strong>: ${escapeHtml(h.steps)} ` +
            `(<a href="${escapeHtml(h.docsUrl)}" rel="noreferrer noopener">${provider} documentation</a>)</li>`,
        )
        .join('');
      grant =
        `<form method="post" action="${escapeHtml(action('token'))}">` +
        `<p><label for="token">${provider} access token</label><br>` +
        `<input id="token" name="token" type="password" required autocomplete="off" spellcheck="false" maxlength="4096" style="width:100%;font-size:1rem"></p>` +
        `<button type="submit" style="font-size:1rem;padding:.5rem 1.25rem">Connect ${provider}</button></form>` +
        `<h2>Where to get a token</h2><ul>${help}</ul>` +
        `<p>The token is checked with ${provider} before it is accepted, then stored encrypted. Deleting it in ${provider} ends the access at any time.</p>`;
    }
    return htmlPage(
      reply,
      `Connect ${provider} for ${tenant}`,
      `<h1>${tenant} asks for read-only access to ${provider}</h1>` +
        `<p><strong>${tenant}</strong> sent you this link${what}: connecting needs someone who can grant access to your ${provider} account. Nothing is granted until you do it below.</p>` +
        (error
          ? `<p role="alert" style="border:1px solid #b00;padding:.5rem 1rem"><strong>Not connected.</strong> ${escapeHtml(error)}</p>`
          : '') +
        `<h2>What ${tenant} will be able to read</h2><ul>${manifest.consent.access.map((a) => `<li>${escapeHtml(a)}</li>`).join('')}</ul>` +
        `<p>What is synced: ${escapeHtml(manifest.consent.synced)}. Read-only: nothing is changed in ${provider}.</p>` +
        grant +
        `<p><small>This link works once, until ${escapeHtml(ctx.invite.expiresAt.toISOString().replace('T', ' ').slice(0, 16))} UTC. If you did not expect it, close this window.</small></p>`,
      formAction,
    );
  }

  app.get(
    '/:secret',
    {
      schema: {
        tags: ['invite pages'],
        summary: 'The invite page (HTML) for the provider’s admin: who asks for which access, and the form to grant it',
        params: invitePageParams,
        response: { 200: html('The invite page'), ...page },
      },
    },
    async (req, reply) => {
      const ctx = await open(req.params.secret);
      connections.assertAllowed(ctx.row, 'set_credentials');
      return invitePage(reply, ctx);
    },
  );

  app.post(
    '/:secret/token',
    {
      schema: {
        tags: ['invite pages'],
        summary: 'The invite page’s token form (token providers): verified with the provider exactly like PUT /credentials',
        consumes: ['application/x-www-form-urlencoded'],
        params: invitePageParams,
        body: inviteTokenForm,
        response: {
          200: html('Connected: the token was accepted and the link is used up'),
          ...post,
          400: html('Not a token (the page again, saying why; the link stays usable), or a provider that uses OAuth'),
          422: html('The provider refused the token: the page again with its answer; the link stays usable'),
          503: html('The connection’s workflow or Temporal did not answer; the link stays usable'),
        },
      },
    },
    async (req, reply) => {
      assertSameSite(req, publicOrigin, 'Send the token from the invite page itself.');
      const ctx = await open(req.params.secret);
      if (ctx.manifest.auth !== 'token') {
        throw new ApiError(400, 'unsupported_for_provider', `${ctx.manifest.displayName} is connected with the button on the invite page.`);
      }
      // The same rule as PUT /credentials: a token is printable ASCII, as it travels in a header.
      const token = credentialsSchema.shape.token.safeParse(req.body?.token ?? '');
      if (!token.success) return invitePage(reply.code(400), ctx, 'That is not a token: paste the whole token, without spaces.');
      connections.assertAllowed(ctx.row, 'set_credentials');
      const use = await claimInviteForUse(sql, ctx.invite.id);
      try {
        await connections.setToken(ctx.row, token.data);
      } catch (err) {
        await use.release();
        if (err instanceof ApiError && err.code === 'invalid_credentials') {
          return invitePage(reply.code(422), ctx, `${ctx.manifest.displayName} refused this token: ${err.message}`);
        }
        throw err;
      }
      await use.markUsed();
      const tenant = escapeHtml(ctx.tenantName);
      return htmlPage(
        reply,
        'Connected',
        `<h1>Connected</h1><p>${escapeHtml(ctx.manifest.displayName)} is connected for <strong>${tenant}</strong>; the first sync starts now. You can close this window.</p>`,
      );
    },
  );

  app.post(
    '/:secret/authorize',
    {
      schema: {
        tags: ['invite pages'],
        summary: 'The invite page’s Continue (OAuth providers): binds this browser to a new OAuth state and redirects to the provider',
        consumes: ['application/x-www-form-urlencoded'],
        params: invitePageParams,
        response: {
          302: z.null().meta({
            type: 'null',
            description: 'To the provider’s authorize page (with the browser-binding cookie); its callback marks the link used',
          }),
          ...post,
          400: html('A provider that uses a token, or no OAuth consumer configured'),
        },
      },
    },
    async (req, reply) => {
      assertSameSite(req, publicOrigin, 'Continue from the invite page itself.');
      const ctx = await open(req.params.secret);
      if (ctx.manifest.auth !== 'oauth2') {
        throw new ApiError(400, 'unsupported_for_provider', `${ctx.manifest.displayName} is connected with a token on the invite page.`);
      }
      connections.assertAllowed(ctx.row, 'authorize');
      // The flow never outlives the link.
      const secondsLeft = Math.floor((ctx.invite.expiresAt.getTime() - Date.now()) / 1000);
      const ttl = Math.max(1, Math.min(config.oauthStateTtlSeconds, secondsLeft));
      const state = await issueState(sql, deps.stateKeys, ctx.row.id, ttl, ctx.invite.id);
      return browser.continueToProvider(reply, state);
    },
  );
};
