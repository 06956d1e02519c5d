import type { Client } from '@temporalio/client';
import type { Sql } from '../../src/db/sql';
import { connectionStatusKey } from '../../src/temporal/search-attributes';

/**
 * Watches the stack while it is being broken: the connections' status in the database (a
 * `needs_reconnect` seen even once is a failure), and the workflows' pending activities in
 * Temporal (how many attempts a step needed). Either source may be down for a while; that is
 * skipped, not an error.
 */
export class Observer {
  /** `id → when` of every needs_reconnect sighting in the database. */
  readonly needsReconnect = new Map<string, string>();
  /** The highest attempt count of any pending activity seen, with where. */
  maxPendingAttempt = { attempt: 0, where: '' };
  /** Workflows seen in a state other than running. */
  readonly notRunning = new Map<string, string>();
  polls = { database: 0, databaseFailed: 0, temporal: 0, temporalFailed: 0 };
  private stopped = false;
  private readonly loops: Promise<void>[] = [];

  constructor(
    private readonly sql: Sql,
    private readonly temporal: Client,
    private readonly workflowIds: () => string[],
  ) {}

  start(): void {
    this.loops.push(this.every(250, () => this.pollDatabase()));
    this.loops.push(this.every(3_000, () => this.pollTemporal()));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  private async every(ms: number, fn: () => Promise<void>): Promise<void> {
    while (!this.stopped) {
      await fn();
      await new Promise((r) => setTimeout(r, ms));
    }
  }

  private async pollDatabase(): Promise<void> {
    try {
      const rows = await this.sql<{ id: string; status: string }[]>`select id, status from connections`;
      this.polls.database += 1;
      for (const r of rows)
        if (r.status === 'needs_reconnect' && !this.needsReconnect.has(r.id)) this.needsReconnect.set(r.id, new Date().toISOString());
    } catch {
      this.polls.databaseFailed += 1;
    }
  }

  private async pollTemporal(): Promise<void> {
    const deadline = Date.now() + 2_000;
    try {
      await this.temporal.withDeadline(deadline, async () => {
        for (const id of this.workflowIds()) {
          const d = await this.temporal.workflow.getHandle(id).describe();
          if (d.status.name !== 'RUNNING') this.notRunning.set(id, d.status.name);
          for (const a of d.raw.pendingActivities ?? []) {
            const attempt = a.attempt ?? 0;
            if (attempt > this.maxPendingAttempt.attempt)
              this.maxPendingAttempt = { attempt, where: `${id} ${a.activityType?.name ?? ''}` };
          }
        }
      });
      this.polls.temporal += 1;
    } catch {
      this.polls.temporalFailed += 1;
    }
  }
}

/**
 * Every run of every given workflow, searched for a ConnectionStatus search attribute set to
 * needs_reconnect (at start, on continue-as-new, or upserted).
 */
export async function historiesWithNeedsReconnect(temporal: Client, workflowIds: string[]): Promise<{ scanned: number; hits: string[] }> {
  const hits: string[] = [];
  let scanned = 0;
  for (const workflowId of workflowIds) {
    for await (const run of temporal.workflow.list({ query: `WorkflowId = "${workflowId}"` })) {
      const history = await temporal.workflow.getHandle(workflowId, run.runId).fetchHistory();
      scanned += 1;
      for (const event of history.events ?? []) {
        const fields =
          event.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields ??
          event.workflowExecutionStartedEventAttributes?.searchAttributes?.indexedFields ??
          event.workflowExecutionContinuedAsNewEventAttributes?.searchAttributes?.indexedFields;
        const payload = fields?.[connectionStatusKey.name];
        if (!payload?.data) continue;
        const value = JSON.parse(Buffer.from(payload.data).toString('utf8')) as unknown;
        if (value === 'needs_reconnect' || (Array.isArray(value) && value.includes('needs_reconnect'))) {
          hits.push(`${workflowId} run ${run.runId} event ${String(event.eventId)}`);
        }
      }
    }
  }
  return { scanned, hits };
}

/**
 * Every workflow run in the namespace that ended other than by continuing as new: failed,
 * terminated, timed out, cancelled, or completed (no connection is disconnected in the chaos run,
 * and the reconciler never ends).
 */
export async function endedWorkflows(temporal: Client): Promise<string[]> {
  const ended: string[] = [];
  for await (const wf of temporal.workflow.list({ query: 'ExecutionStatus != "Running" AND ExecutionStatus != "ContinuedAsNew"' })) {
    ended.push(`${wf.workflowId} ${wf.type} ${wf.status.name}`);
  }
  return ended;
}
