import { log } from '@temporalio/activity';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { markProvisioned } from '../db/connections';
import { countReconcilerRepairs } from '../metrics';
import type { Sql } from '../db/sql';
import { failLostRuns } from '../db/sync-runs';
import type { ConnectionRow } from '../domain/connection';
import { startConnectionWorkflow, TEMPORAL_CALL_DEADLINE_MS } from '../temporal/start-connection';
import type { InitialConnectionState } from '../workflows/messages';

/**
 * Keeps Postgres and Temporal agreeing that every connection has exactly one workflow: a row
 * without a running workflow (a failed start, a terminated workflow, a wiped Temporal database)
 * gets one, started in the row's state; a connection workflow on our task queue with no row is
 * ended. Idempotent, so it is safe to run at any time and from several workers at once.
 */

export interface ReconcileReport {
  startedAt: string;
  finishedAt: string;
  /** Rows in `provisioning` whose workflow was started. */
  provisioned: number;
  /** Rows whose workflow was missing or closed, recreated in the row's status. */
  recreated: number;
  /** Running workflows with no row, terminated. */
  ended: number;
  /** Repairs that failed this time (retried next run). */
  failed: number;
  /** Rows and running workflows looked at. */
  rows: number;
  workflows: number;
}

export interface ReconcilerDeps {
  sql: Sql;
  temporal: Client;
  taskQueue: string;
  maxHistoryEvents: number;
  /** Hands events just committed to webhook delivery; never throws (the sweeper catches up). */
  dispatchEvents?: (eventIds: string[]) => Promise<void>;
}

type Row = Pick<
  ConnectionRow,
  | 'id'
  | 'tenantId'
  | 'provider'
  | 'syncIntervalSeconds'
  | 'workflowId'
  | 'status'
  | 'lastSyncAt'
  | 'nextSyncAt'
  | 'lastError'
  | 'stateRevision'
> & { hasCredential: boolean };

const CONNECTION_WORKFLOW_ID = /^connection-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;

/** The state a recreated workflow starts in: the row's, with `active` only if it still has a credential. */
export function initialStateOf(row: Row): InitialConnectionState {
  const status = row.status === 'provisioning' || row.status === 'disconnected' ? 'awaiting_credentials' : row.status;
  return {
    status: status === 'active' && !row.hasCredential ? 'awaiting_credentials' : status,
    lastSyncAt: row.lastSyncAt?.toISOString() ?? null,
    nextSyncAt: row.nextSyncAt?.toISOString() ?? null,
    lastError: row.lastError,
    revision: Number(row.stateRevision),
  };
}

export function createReconcilerActivities(deps: ReconcilerDeps) {
  const { sql, temporal, taskQueue } = deps;
  const within = <T>(fn: () => Promise<T>, ms = TEMPORAL_CALL_DEADLINE_MS) => temporal.withDeadline(Date.now() + ms, fn);

  async function runningWorkflowIds(): Promise<Set<string>> {
    const ids = new Set<string>();
    const query = `WorkflowType = 'connectionWorkflow' AND TaskQueue = '${taskQueue.replace(/'/g, "\\'")}' AND ExecutionStatus = 'Running'`;
    await within(async () => {
      for await (const wf of temporal.workflow.list({ query })) ids.add(wf.workflowId);
    }, 60_000);
    return ids;
  }

  async function isRunning(workflowId: string): Promise<boolean> {
    try {
      const d = await within(() => temporal.workflow.getHandle(workflowId).describe());
      return d.status.name === 'RUNNING';
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      throw err;
    }
  }

  async function rowsToCheck(): Promise<Row[]> {
    return sql<Row[]>`
      select c.id, c.tenant_id, c.provider, c.sync_interval_seconds, c.workflow_id, c.status, c.last_sync_at, c.next_sync_at,
             c.last_error, c.state_revision,
             exists (select 1 from credentials k where k.connection_id = c.id and k.state = 'active') as has_credential
      from connections c where c.status <> 'disconnected'`;
  }

  async function provisioned(id: string): Promise<void> {
    const change = await markProvisioned(sql, id);
    if (change) await deps.dispatchEvents?.(change.eventIds);
  }

  async function recreate(row: Row): Promise<'provisioned' | 'recreated' | 'skipped'> {
    // Read again just before acting: a disconnect may have finished since the list was taken.
    const [fresh] = await rowsFor(row.id);
    if (!fresh || fresh.status === 'disconnected') return 'skipped';
    if (fresh.status === 'provisioning') {
      await startConnectionWorkflow(temporal, { taskQueue, maxHistoryEvents: deps.maxHistoryEvents }, fresh);
      await provisioned(fresh.id);
      return 'provisioned';
    }
    // A run the lost workflow had in flight will never finish; say so rather than leave it running.
    const lost = await failLostRuns(sql, fresh.id, {
      code: 'workflow_lost',
      message: 'The connection’s workflow was lost; the reconciler recreated it.',
      at: new Date().toISOString(),
    });
    await deps.dispatchEvents?.(lost);
    await startConnectionWorkflow(temporal, { taskQueue, maxHistoryEvents: deps.maxHistoryEvents }, fresh, initialStateOf(fresh));
    return 'recreated';
  }

  const rowsFor = (id: string) => sql<Row[]>`
    select c.id, c.tenant_id, c.provider, c.sync_interval_seconds, c.workflow_id, c.status, c.last_sync_at, c.next_sync_at,
           c.last_error, c.state_revision,
           exists (select 1 from credentials k where k.connection_id = c.id and k.state = 'active') as has_credential
    from connections c where c.id = ${id}`;

  return {
    async reconcile(): Promise<ReconcileReport> {
      const startedAt = new Date().toISOString();
      const report: ReconcileReport = {
        startedAt,
        finishedAt: startedAt,
        provisioned: 0,
        recreated: 0,
        ended: 0,
        failed: 0,
        rows: 0,
        workflows: 0,
      };
      // Workflows first, rows second: a row is committed before its workflow starts, so every
      // workflow listed here already has its row when the rows are read.
      const running = await runningWorkflowIds();
      const rows = await rowsToCheck();
      report.rows = rows.length;
      report.workflows = running.size;

      for (const row of rows) {
        try {
          if (running.has(row.workflowId) || (await isRunning(row.workflowId))) {
            if (row.status === 'provisioning') await provisioned(row.id);
            continue;
          }
          const done = await recreate(row);
          if (done !== 'skipped') {
            report[done] += 1;
            log.info('reconciler: started a missing connection workflow', { connectionId: row.id, status: row.status, action: done });
          }
        } catch (err) {
          report.failed += 1;
          log.warn('reconciler: could not repair a connection', { connectionId: row.id, error: (err as Error).message });
        }
      }

      const known = new Set(rows.map((r) => r.workflowId));
      for (const workflowId of running) {
        if (known.has(workflowId)) continue;
        const id = CONNECTION_WORKFLOW_ID.exec(workflowId)?.[1];
        try {
          // Disconnected rows were not in `rows`; their workflows are finishing on their own.
          if (id && (await rowsFor(id)).length > 0) continue;
          if (!id && (await sql`select 1 from connections where workflow_id = ${workflowId}`).length > 0) continue;
          await within(() => temporal.workflow.getHandle(workflowId).terminate('reconciler: the connection has no row in Postgres'));
          report.ended += 1;
          log.info('reconciler: ended a workflow with no connection row', { workflowId });
        } catch (err) {
          if (err instanceof WorkflowNotFoundError) continue;
          report.failed += 1;
          log.warn('reconciler: could not end a workflow', { workflowId, error: (err as Error).message });
        }
      }

      report.finishedAt = new Date().toISOString();
      await sql`
        insert into reconciler_runs (task_queue, finished_at, report) values (${taskQueue}, now(), ${sql.json({ ...report })})
        on conflict (task_queue) do update set finished_at = excluded.finished_at, report = excluded.report`;
      log.info('reconciler: run finished', { ...report });
      countReconcilerRepairs(report);
      return report;
    },
  };
}

export type ReconcilerActivities = ReturnType<typeof createReconcilerActivities>;

/** The reconciler's own workflow id: one per task queue, so each deployment (and test) has its own. */
export const reconcilerWorkflowId = (taskQueue: string) => `conduit-reconciler-${taskQueue}`;
