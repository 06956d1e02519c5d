import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker, type LogLevel, type WorkerInterceptors } from '@temporalio/worker';
import { log as activityLog } from '@temporalio/activity';
import { createActivities } from './activities';
import { logContextInterceptors, tenantLookup } from './activities/log-context';
import { loadConfig, type Config } from './config';
import { createAccessBroker } from './credentials/access';
import { createVault } from './credentials/vault';
import { Keyring } from './crypto/keyring';
import { createSql } from './db/sql';
import { startWhenReachable } from './startup';
import { createLogger } from './logger';
import { sdkMetricsTelemetry, startMetricsEndpoint, type MetricsEndpoint } from './metrics/worker-endpoint';
import { getFreePort } from './net/free-port';
import { PROVIDERS, syncTaskQueue } from './domain/connection';
import { createProviders } from './providers/registry';
import { temporalConnectionOptions } from './temporal/connection';
import { ensureSearchAttributes } from './temporal/register-search-attributes';
import { TEMPORAL_CALL_DEADLINE_MS } from './temporal/start-connection';
import { workflowSource } from './temporal/workflow-bundle';
import { createReconcilerActivities, reconcilerWorkflowId } from './reconciler/reconcile';
import { reconcileNowSignal, reconcilerWorkflow } from './workflows/reconciler';
import { webhookTaskQueue } from './workflows/webhook-delivery';
import { sweepNowSignal, webhookSweeperWorkflow, webhookSweeperWorkflowId } from './workflows/webhook-sweeper';
import { createWebhookActivities } from './webhooks/activities';
import { createWebhookDispatcher } from './webhooks/dispatch';

const TEMPORAL_LOG_LEVELS: Record<string, LogLevel> = {
  trace: 'TRACE',
  debug: 'DEBUG',
  info: 'INFO',
  warn: 'WARN',
  error: 'ERROR',
  fatal: 'ERROR',
};

/**
 * The Runtime is a per-process singleton; the embedded stack and tests may start several workers.
 * With metrics on, Core's Prometheus exporter listens on a loopback port (returned) that the
 * worker's metrics endpoint reads and serves beside ours.
 */
async function installRuntimeOnce(config: Config): Promise<number | undefined> {
  const log = createLogger(config.log, 'worker');
  const sdkPort = config.metrics.workerPort ? await getFreePort() : undefined;
  try {
    Runtime.install({
      ...(sdkPort ? { telemetryOptions: sdkMetricsTelemetry(sdkPort) } : {}),
      logger: new DefaultLogger(TEMPORAL_LOG_LEVELS[config.log.level] ?? 'INFO', (entry) => {
        // The per-provider sync queues run activities only, by design; the SDK warns about that.
        if (entry.message === 'No workflows registered, not polling for workflow tasks') return;
        // The bundler logs webpack's multi-kilobyte module report at info; it is for debugging.
        const webpackReport = entry.level === 'INFO' && entry.message.includes('\n');
        const level = (webpackReport ? 'debug' : entry.level.toLowerCase()) as 'info';
        log[level in log ? level : 'info']({ ...entry.meta }, entry.message);
      }),
    });
    return sdkPort;
  } catch {
    // Already installed in this process.
    return undefined;
  }
}

export interface RunningWorker {
  /** Resolves when the worker has stopped (after `stop()` or a fatal error). */
  done: Promise<void>;
  stop(): Promise<void>;
}

export async function startWorker(config: Config): Promise<RunningWorker> {
  const sdkPort = await installRuntimeOnce(config);
  // A client connection too: search attributes, the reconciler's activity and its start-up signal.
  const admin = await Connection.connect(temporalConnectionOptions(config.temporal));
  let metrics: MetricsEndpoint | undefined;
  let workers: Worker[] = [];
  try {
    await ensureSearchAttributes(admin, config.temporal.namespace);
    if (config.metrics.workerPort)
      metrics = await startMetricsEndpoint({
        port: config.metrics.workerPort,
        token: config.metrics.token,
        sdkPort,
        healthy: () => workers.length > 0 && workers.every((w) => w.getState() === 'RUNNING'),
      });
  } catch (err) {
    await admin.close();
    throw err;
  }
  const client = new Client({ connection: admin, namespace: config.temporal.namespace });

  let connection: NativeConnection;
  try {
    connection = await NativeConnection.connect(temporalConnectionOptions(config.temporal));
  } catch (err) {
    // Nothing left open behind a failed start: the caller may try again (src/startup.ts).
    await admin.close();
    await metrics?.close();
    throw err;
  }
  const sql = createSql(config.databaseUrl, { applicationName: 'conduit-worker' });
  // Each refresh lease (an advisory lock) is held on a database session of its own, so a refresh
  // waiting for or holding it never takes the connections its save and the sync need.
  const keyring = new Keyring(config.encryptionKeys);
  const vault = createVault(sql, keyring, () => createSql(config.databaseUrl, { max: 1, applicationName: 'conduit-worker-lease' }));
  const providers = createProviders(config.providers);
  const log = createLogger(config.log, 'worker');
  const broker = createAccessBroker({
    vault,
    providers,
    onRefreshInDoubt: (connectionId) => {
      const message = 'an earlier token refresh is in doubt; retrying at once with the stored refresh token';
      // Inside an activity its logger adds the workflow, run and tenant ids (activities/log-context.ts);
      // the rescue timer (rescueRefreshesInDoubt) runs outside any activity, where it throws.
      try {
        activityLog.warn(message, { connectionId });
      } catch {
        log.warn({ connectionId }, message);
      }
    },
    afterTokenResponse: testCrashHook(log),
  });
  const dispatcher = createWebhookDispatcher({
    sql,
    temporal: client,
    taskQueue: config.temporal.taskQueue,
    retry: config.webhooks.retry,
    log,
  });
  const dispatchEvents = (eventIds: string[]) => dispatcher.dispatch(eventIds);
  const activities = {
    ...createActivities({ sql, vault, broker, providers, settings: config.sync, dispatchEvents }),
    ...createReconcilerActivities({
      sql,
      temporal: client,
      taskQueue: config.temporal.taskQueue,
      maxHistoryEvents: config.workflowMaxHistoryEvents,
      dispatchEvents,
    }),
    ...createWebhookActivities({
      sql,
      keyring,
      dispatcher,
      allowInsecureUrls: config.webhooks.allowInsecureUrls,
      retry: config.webhooks.retry,
    }),
  };
  const interceptors: WorkerInterceptors = { activity: [logContextInterceptors(tenantLookup(sql))] };
  const common = {
    connection,
    namespace: config.temporal.namespace,
    activities,
    interceptors,
    // Lets a step in progress commit its page and heartbeat before a deploy takes the worker away.
    shutdownGraceTime: '10 seconds',
  } as const;
  // Workflows and bookkeeping on the main queue; each provider's sync steps on a queue of their own
  // with bounded slots, so one provider's slow pages cannot starve the other or the workflows.
  workers = [
    await Worker.create({
      ...common,
      taskQueue: config.temporal.taskQueue,
      ...workflowSource(config.workflowBundlePath),
      maxCachedWorkflows: config.worker.maxCachedWorkflows,
    }),
    ...(await Promise.all(
      PROVIDERS.map((provider) =>
        Worker.create({
          ...common,
          taskQueue: syncTaskQueue(config.temporal.taskQueue, provider),
          maxConcurrentActivityTaskExecutions: config.sync.maxConcurrentPerProvider,
        }),
      ),
    )),
    // Webhook HTTP attempts (up to 10 s each) on their own bounded queue.
    await Worker.create({
      ...common,
      taskQueue: webhookTaskQueue(config.temporal.taskQueue),
      maxConcurrentActivityTaskExecutions: config.webhooks.maxConcurrentDeliveries,
    }),
  ];

  const stopRescues = rescueRefreshesInDoubt(broker, log);
  const done = Promise.all([...workers.map((w) => w.run()), kickReconciler(client, config, log), kickWebhookSweeper(client, config, log)])
    .then(() => undefined)
    .finally(async () => {
      stopRescues();
      // One worker failing takes the others down with it, so the process exits and is restarted whole.
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await sql.end({ timeout: 5 });
      await connection.close();
      await admin.close();
      await metrics?.close();
    });
  return {
    done,
    async stop() {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await done;
    },
  };
}

/**
 * Runs the reconciler now: signal-with-start creates its workflow if it is missing (a new
 * deployment, a wiped Temporal database) and wakes it if it sleeps. Failing is not fatal: the
 * workflow's own timer runs it later, and the next worker start tries again.
 */
async function kickReconciler(client: Client, config: Config, log: ReturnType<typeof createLogger>): Promise<void> {
  try {
    await client.withDeadline(Date.now() + TEMPORAL_CALL_DEADLINE_MS, () =>
      client.workflow.signalWithStart(reconcilerWorkflow, {
        workflowId: reconcilerWorkflowId(config.temporal.taskQueue),
        taskQueue: config.temporal.taskQueue,
        args: [{ intervalSeconds: config.reconcileIntervalSeconds }],
        signal: reconcileNowSignal,
        signalArgs: [],
      }),
    );
  } catch (err) {
    log.warn({ err: { message: (err as Error).message } }, 'could not start the reconciler; its timer or the next worker start will');
  }
}

/** Like the reconciler: the webhook sweeper is (re)created and woken at every worker start. */
async function kickWebhookSweeper(client: Client, config: Config, log: ReturnType<typeof createLogger>): Promise<void> {
  try {
    await client.withDeadline(Date.now() + TEMPORAL_CALL_DEADLINE_MS, () =>
      client.workflow.signalWithStart(webhookSweeperWorkflow, {
        workflowId: webhookSweeperWorkflowId(config.temporal.taskQueue),
        taskQueue: config.temporal.taskQueue,
        args: [{ intervalSeconds: config.webhooks.sweepIntervalSeconds }],
        signal: sweepNowSignal,
        signalArgs: [],
      }),
    );
  } catch (err) {
    log.warn({ err: { message: (err as Error).message } }, 'could not start the webhook sweeper; its timer or the next worker start will');
  }
}

/** How often a worker looks for token refreshes left in doubt by a dead worker (see retryRefreshesInDoubt). */
const REFRESH_RESCUE_INTERVAL_MS = 5_000;

/**
 * Every worker finishes token refreshes a dead worker left in doubt, within seconds, on its own
 * timer: not through Temporal (which may be the thing that is down), and well inside the provider's
 * grace window for the rotated-out refresh token. Returns a function that stops it.
 */
function rescueRefreshesInDoubt(broker: ReturnType<typeof createAccessBroker>, log: ReturnType<typeof createLogger>): () => void {
  let running = false;
  const sweep = () => {
    if (running) return;
    running = true;
    broker
      .retryRefreshesInDoubt()
      .catch((err: unknown) => log.debug({ err: { message: (err as Error).message } }, 'could not look for refreshes in doubt'))
      .finally(() => (running = false));
  };
  sweep();
  const timer = setInterval(sweep, REFRESH_RESCUE_INTERVAL_MS);
  return () => clearInterval(timer);
}

/**
 * TEST ONLY. `CONDUIT_TEST_CRASH_AFTER_TOKEN_RESPONSE=pause` makes the worker log a marker and hang
 * right after a token response, before the new pair is saved, so a test can SIGKILL it exactly
 * there; `=exit` makes it SIGKILL itself. Never set it in a deployment.
 */
function testCrashHook(log: ReturnType<typeof createLogger>): ((connectionId: string) => Promise<void>) | undefined {
  const mode = process.env.CONDUIT_TEST_CRASH_AFTER_TOKEN_RESPONSE;
  if (mode !== 'pause' && mode !== 'exit') return undefined;
  return async (connectionId) => {
    log.warn({ connectionId }, 'TEST HOOK: token response received, crashing before the save');
    if (mode === 'exit') process.kill(process.pid, 'SIGKILL');
    await new Promise(() => {});
  };
}

if (require.main === module) {
  const config = loadConfig();
  const log = createLogger(config.log, 'worker');
  startWhenReachable(() => startWorker(config), {
    onWait: ({ delayMs, reason }) => log.warn({ retryInMs: delayMs }, `waiting for Temporal: ${reason}`),
  })
    .then((w) => w.done)
    .catch((err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    });
}
