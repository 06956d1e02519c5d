import closeWithGrace from 'close-with-grace';
import { loadConfig, type Config } from '../config';
import { createLogger } from '../logger';
import { startWhenReachable } from '../startup';
import { buildApp } from './app';
import { createApiDeps } from './deps';

export interface RunningServer {
  url: string;
  close(): Promise<void>;
}

export async function startServer(config: Config, logger = createLogger(config.log, 'api')): Promise<RunningServer> {
  const deps = await createApiDeps(config);
  const app = await buildApp(deps, { logger });
  app.addHook('onClose', async () => deps.close());
  await app.listen({ port: config.http.port, host: config.http.host });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.http.port;
  return { url: `http://localhost:${port}`, close: () => app.close() };
}

if (require.main === module) {
  const config = loadConfig();
  const log = createLogger(config.log, 'api');
  startWhenReachable(() => startServer(config, log), {
    onWait: ({ delayMs, reason }) => log.warn({ retryInMs: delayMs }, `waiting for Postgres and Temporal: ${reason}`),
  })
    .then((server) => {
      closeWithGrace({ delay: 10_000 }, async ({ err }) => {
        if (err) console.error(err);
        await server.close();
      });
    })
    .catch((err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    });
}
