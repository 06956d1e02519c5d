import fastifyCors from '@fastify/cors';
import fastifyHelmet from '@fastify/helmet';
import fastifyRateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Config } from '../config';
import { sha256 } from '../crypto/tokens';
import { ApiError } from './errors';

/**
 * What every response gets: security headers (helmet), CORS only for configured origins, and rate
 * limits. Registered before the routes so it applies to all of them.
 */

/** Which budget a request spends, decided from its route (buckets are per process, in memory). */
function rateLimitKey(req: FastifyRequest): string {
  const route = req.routeOptions.url ?? '';
  if (route === '/v1/tenants' && req.method === 'POST') return `admin:${req.ip}`;
  if (route.startsWith('/v1/oauth/')) return `oauth:${req.ip}`;
  if (route.startsWith('/invite/')) return `invite:${req.ip}`;
  // Per API key, by its digest: the raw key never sits in the limiter's memory.
  const key = req.headers.authorization?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
  return key ? `key:${sha256(key).toString('base64url')}` : `anon:${req.ip}`;
}

export async function registerSecurity(app: FastifyInstance, config: Config): Promise<void> {
  await app.register(fastifyHelmet, {
    // The API answers JSON; nothing it sends may load anything or be framed. The HTML pages
    // (OAuth consent and result, /docs) set a policy of their own.
    contentSecurityPolicy: {
      useDefaults: false,
      directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"], baseUri: ["'none'"], formAction: ["'none'"] },
    },
    strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: true },
    frameguard: { action: 'deny' },
    // The consent page redirects to the provider; keep the Referer (it carries the state) to ourselves.
    referrerPolicy: { policy: 'no-referrer' },
  });

  if (config.corsOrigins.length > 0) {
    await app.register(fastifyCors, {
      origin: config.corsOrigins,
      methods: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
      // last-event-id: the console resumes its event stream (fetch, not EventSource) with it.
      allowedHeaders: ['authorization', 'content-type', 'last-event-id'],
      maxAge: 600,
    });
  }

  const { apiKeyPerMinute, adminPerMinute, oauthPerMinute, invitePerMinute } = config.rateLimit;
  const perMinute: Record<string, number> = { admin: adminPerMinute, oauth: oauthPerMinute, invite: invitePerMinute };
  await app.register(fastifyRateLimit, {
    global: true,
    timeWindow: 60_000,
    keyGenerator: rateLimitKey,
    max: (_req: FastifyRequest, key: string) => perMinute[key.slice(0, key.indexOf(':'))] ?? apiKeyPerMinute,
    // Health checks, the OpenAPI document and /docs are not metered.
    allowList: (req: FastifyRequest) => !/^\/(v1|invite)\//.test(req.routeOptions.url ?? req.url),
    errorResponseBuilder: (_req, ctx) => new ApiError(429, 'rate_limited', `Too many requests; retry in ${ctx.after} (see Retry-After).`),
  });
}
