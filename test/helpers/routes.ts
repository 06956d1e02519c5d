import { loadConfig } from '../../src/config';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/api/app';
import type { ApiDeps } from '../../src/api/deps';

export interface AppRoute {
  method: string;
  /** Fastify's form: `/v1/connections/:id`. */
  url: string;
  /** OpenAPI's form: `/v1/connections/{id}`. */
  path: string;
}

/**
 * Every route the app serves, read from Fastify's own route tree (`printRoutes`), so a route added
 * anywhere shows up here without a list to maintain. HEAD (added by Fastify for each GET) is left out.
 */
export function appRoutes(app: FastifyInstance): AppRoute[] {
  const routes: AppRoute[] = [];
  const stack: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^((?:[│ ] {3})*)(?:├── |└── )(.+?) \(([^)]*)\)$/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 4;
    stack.length = depth;
    const url = (stack[depth - 1] ?? '') + m[2]!;
    stack[depth] = url;
    for (const method of m[3]!.split(',').map((s) => s.trim())) {
      if (method && method !== 'HEAD') routes.push({ method, url, path: url.replace(/:([A-Za-z0-9_]+)/g, '{$1}') });
    }
  }
  return routes;
}

/** The API routes: everything except the documentation UI, the document itself and the console (src/console). */
export const isApiRoute = (r: AppRoute) =>
  !r.url.startsWith('/docs') && r.url !== '/openapi.json' && r.url !== '/' && !r.url.startsWith('/console/');

/** The app built on stand-in dependencies: enough to register routes and generate the document, no servers. */
export async function buildDocumentOnlyApp(): Promise<FastifyInstance> {
  const config = loadConfig({
    DATABASE_URL: 'postgres://nobody:none@127.0.0.1:9/none',
    ADMIN_TOKEN: 'document-only-admin-token',
    ENCRYPTION_KEY: Buffer.alloc(32).toString('base64'),
    PUBLIC_URL: 'http://127.0.0.1:9',
    // Its purger never gets a database: one pass a day keeps it from trying again.
    PURGE_INTERVAL_SECONDS: '86400',
  });
  const deps = { config } as unknown as ApiDeps;
  const app = await buildApp(deps);
  await app.ready();
  return app;
}
