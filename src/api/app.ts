import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { consoleRoutes } from '../console/plugin';
import { countRequest, metricsRoutes } from '../metrics/http';
import { MANIFESTS } from '../providers/manifests';
import type { ApiDeps } from './deps';
import { errorBody, registerErrorHandlers } from './errors';
import { logConnectionFromPath } from './log-context';
import { startPurger } from './purge';
import { openapiTransformObject } from './schemas';
import { registerSecurity } from './security';
import { connectionRoutes } from './routes/connections';
import { eventRoutes } from './routes/events';
import { healthRoutes } from './routes/health';
import { insightRoutes } from './routes/insights';
import { invitePageRoutes, unknownInvitePage } from './routes/invite-pages';
import { inviteRoutes } from './routes/invites';
import { oauthRoutes } from './routes/oauth';
import { recordRoutes } from './routes/records';
import { tenantRoutes } from './routes/tenants';
import { webhookRoutes } from './routes/webhooks';

/**
 * One log line per request, without the query string: the OAuth callback's code and state ride in
 * it. Fastify's default lines would log the whole URL. An invite link's secret rides in its path,
 * so that part is logged as `:secret`.
 */
class RequestLog extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(_err: Error | null | undefined, req: FastifyRequest, reply: FastifyReply): void {
    req.log.info(
      { method: req.method, path: loggedPath(req.url), statusCode: reply.statusCode, ms: Math.round(reply.elapsedTime) },
      'request',
    );
  }
}

const loggedPath = (url: string) => url.split('?')[0]!.replace(/^\/invite\/[^/]*/, '/invite/:secret');

export interface BuildAppOptions {
  logger?: FastifyServerOptions['loggerInstance'];
}

/**
 * The API as an app that does not listen, so tests and the embedded stack can mount it and
 * `server.ts` alone owns the socket.
 */
export async function buildApp(deps: ApiDeps, opts: BuildAppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: opts.logger,
    // Connection bodies are tiny; anything larger is a mistake or an attack.
    bodyLimit: 64 * 1024,
    // Ids in paths are UUIDs; long paths are never ours.
    routerOptions: { maxParamLength: 200 },
    // Behind the proxy (TRUST_PROXY), per-IP rate limits see the client's address, not the proxy's.
    trustProxy: deps.config.http.trustProxy,
    logController: new RequestLog(),
    // A path the router refuses before any route sees it still answers in our shapes and with a
    // documented status: an id over maxParamLength names nothing (404), a broken %-escape is bad
    // input (400); under /invite/ either is an unknown link's page.
    frameworkErrors: (err, req, res) => {
      const reply = res as FastifyReply;
      if (req.url.startsWith('/invite/')) void unknownInvitePage(reply);
      else if (err.code === 'FST_ERR_MAX_PARAM_LENGTH')
        void reply.code(404).send(errorBody('not_found', 'No resource has an id that long.'));
      else void reply.code(400).send(errorBody('invalid_request', 'The URL is not valid.'));
    },
  }).withTypeProvider<ZodTypeProvider>();

  // JSON only: a text/plain body is refused with 415 rather than reaching validation as a string.
  app.removeContentTypeParser('text/plain');
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerErrorHandlers(app);
  app.addHook('onRequest', logConnectionFromPath);
  app.addHook('onResponse', countRequest);
  await registerSecurity(app, deps.config);

  await app.register(fastifySwagger, {
    openapi: {
      info: {
        title: 'Conduit API',
        version: '1.0.0',
        description: `Connect ${Object.values(MANIFESTS)
          .map((m) => m.displayName)
          .join(' and ')} accounts and keep them synced.`,
      },
      components: {
        securitySchemes: {
          apiKey: { type: 'http', scheme: 'bearer', description: 'A tenant API key from POST /v1/tenants' },
          adminToken: { type: 'http', scheme: 'bearer', description: 'ADMIN_TOKEN' },
          metricsToken: { type: 'http', scheme: 'bearer', description: 'METRICS_TOKEN (operators only)' },
        },
      },
    },
    transform: jsonSchemaTransform,
    // components/schemas for the `$ref`s, optional bodies (src/api/schemas.ts).
    transformObject: openapiTransformObject,
  });
  await app.register(fastifySwaggerUi, {
    routePrefix: '/docs',
    // swagger-ui's own policy (its scripts and styles from 'self'), never framed.
    staticCSP: true,
    transformStaticCSP: (header) =>
      header
        .replace("frame-ancestors 'self'", "frame-ancestors 'none'")
        .replace(/\s*upgrade-insecure-requests;?/, '')
        .trim(),
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  await app.register(healthRoutes, deps);
  await app.register(metricsRoutes, deps);
  await app.register(tenantRoutes, deps);
  await app.register(oauthRoutes, deps);
  await app.register(connectionRoutes, deps);
  await app.register(recordRoutes, deps);
  await app.register(insightRoutes, deps);
  await app.register(eventRoutes, deps);
  await app.register(inviteRoutes, deps);
  await app.register(invitePageRoutes, { ...deps, prefix: '/invite' });
  await app.register(webhookRoutes, deps);
  await app.register(consoleRoutes, deps);

  let stopPurger: (() => void) | undefined;
  app.addHook('onReady', async () => {
    stopPurger = startPurger(
      deps.sql,
      deps.vault,
      {
        intervalSeconds: deps.config.purgeIntervalSeconds,
        pendingCredentialTtlSeconds: deps.config.pendingCredentialTtlSeconds,
        eventRetentionDays: deps.config.events.retentionDays,
      },
      app.log,
    );
  });
  app.addHook('onClose', async () => stopPurger?.());
  return app;
}
