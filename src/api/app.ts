import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { ApiDeps } from './deps';
import { registerErrorHandlers } from './errors';
import { connectionRoutes } from './routes/connections';
import { healthRoutes } from './routes/health';
import { oauthRoutes } from './routes/oauth';
import { recordRoutes } from './routes/records';
import { tenantRoutes } from './routes/tenants';

/**
 * One log line per request, without the query string: the OAuth callback's code and state ride in
 * it. Fastify's default lines would log the whole URL.
 */
class RequestLog extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(_err: Error | null | undefined, req: FastifyRequest, reply: FastifyReply): void {
    req.log.info({ method: req.method, path: req.url.split('?')[0], statusCode: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
  }
}

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
    logController: new RequestLog(),
  }).withTypeProvider<ZodTypeProvider>();

  // JSON only: a text/plain body is refused with 415 rather than reaching validation as a string.
  app.removeContentTypeParser('text/plain');
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerErrorHandlers(app);

  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'Conduit API', version: '1.0.0', description: 'Connect Bitbucket Cloud and Bitrise accounts and keep them synced.' },
      components: {
        securitySchemes: {
          apiKey: { type: 'http', scheme: 'bearer', description: 'A tenant API key from POST /v1/tenants' },
          adminToken: { type: 'http', scheme: 'bearer', description: 'ADMIN_TOKEN' },
        },
      },
    },
    transform: jsonSchemaTransform,
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  await app.register(healthRoutes, deps);
  await app.register(tenantRoutes, deps);
  await app.register(oauthRoutes, deps);
  await app.register(connectionRoutes, deps);
  await app.register(recordRoutes, deps);
  return app;
}
