import { Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker, type LogLevel } from '@temporalio/worker';
import { createActivities } from './activities';
import { loadConfig, type Config } from './config';
import { createAccessBroker } from './credentials/access';
import { createVault } from './credentials/vault';
import { Keyring } from './crypto/keyring';
import { createSql } from './db/sql';
import { createLogger } from './logger';
import { PROVIDERS, syncTaskQueue } from './domain/connection';
import { createBitbucketClient } from './providers/bitbucket';
import { ensureSearchAttributes } from './temporal/register-search-attributes';

const TEMPORAL_LOG_LEVELS: Record<string, LogLevel> = { trace: 'TRACE', debug: 'DEBUG', info: 'INFO', warn: 'WARN', error: 'ERROR', fatal: 'ERROR' };

/** The Runtime is a per-process singleton; the embedded stack and tests may start several workers. */
function installRuntimeOnce(config: Config): void {
  const log = createLogger(config.logLevel, 'worker');
  try {
    Runtime.install({
      logger: new DefaultLogger(TEMPORAL_LOG_LEVELS[config.logLevel] ?? 'INFO', (entry) => {
        // The per-provider sync queues run activities only, by design; the SDK warns about that.
        if (entry.message === 'No workflows registered, not polling for workflow tasks') return;
        const level = entry.level.toLowerCase() as 'info';
        log[level in log ? level : 'info']({ ...entry.meta }, entry.message);
      }),
    });
  } catch {
    // Already installed in this process.
  }
}

export interface RunningWorker {
  /** Resolves when the worker has stopped (after `stop()` or a fatal error). */
  done: Promise<void>;
  stop(): Promise<void>;
}

export async function startWorker(config: Config): Promise<RunningWorker> {
  installRuntimeOnce(config);
  const admin = await Connection.connect({ address: config.temporal.address });
  try {
    await ensureSearchAttributes(admin, config.temporal.namespace);
  } finally {
    await admin.close();
  }

  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const sql = createSql(config.databaseUrl, { applicationName: 'conduit-worker' });
  const vault = createVault(sql, new Keyring(config.encryptionKeys));
  const { clientId, clientSecret } = config.bitbucket;
  const broker = createAccessBroker({
    vault,
    bitbucket: createBitbucketClient(config.bitbucket),
    platformOAuthClient: clientId && clientSecret ? { clientId, clientSecret } : undefined,
  });

  const activities = createActivities({ sql, vault, broker, providers: { bitbucket: config.bitbucket, bitrise: config.bitrise }, settings: config.sync });
  const common = {
    connection,
    namespace: config.temporal.namespace,
    activities,
    // Lets a step in progress commit its page and heartbeat before a deploy takes the worker away.
    shutdownGraceTime: '10 seconds',
  } as const;
  // Workflows and bookkeeping on the main queue; each provider's sync steps on a queue of their own
  // with bounded slots, so one provider's slow pages cannot starve the other or the workflows.
  const workers = [
    await Worker.create({ ...common, taskQueue: config.temporal.taskQueue, workflowsPath: require.resolve('./workflows') }),
    ...(await Promise.all(
      PROVIDERS.map((provider) =>
        Worker.create({
          ...common,
          taskQueue: syncTaskQueue(config.temporal.taskQueue, provider),
          maxConcurrentActivityTaskExecutions: config.sync.maxConcurrentPerProvider,
        }),
      ),
    )),
  ];

  const done = Promise.all(workers.map((w) => w.run()))
    .then(() => undefined)
    .finally(async () => {
      // One worker failing takes the others down with it, so the process exits and is restarted whole.
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await sql.end({ timeout: 5 });
      await connection.close();
    });
  return {
    done,
    async stop() {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await done;
    },
  };
}

if (require.main === module) {
  startWorker(loadConfig())
    .then((w) => w.done)
    .catch((err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    });
}
