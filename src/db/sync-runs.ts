import type { ConnectionError, Provider } from '../domain/connection';
import type { SyncEventData } from '../events/model';
import { insertEvents } from './events';
import type { Sql, TransactionSql } from './sql';

export type SyncRunStatus = 'running' | 'succeeded' | 'failed' | 'stalled';

export interface SyncRun {
  id: string;
  connectionId: string;
  status: SyncRunStatus;
  startedAt: Date;
  finishedAt: Date | null;
  counts: Record<string, number>;
  requests: number;
  rateLimitWaits: number;
  retries: number;
  /** Records quarantined in `sync_rejects` during the run (every attempt of every step). */
  rejected: number;
  error: ConnectionError | null;
}

/** One quarantined record, as the runs API shows it. */
export interface RunReject {
  resource: string;
  recordId: string | null;
  reason: string;
}

/** How many of a run's reject reasons the runs API shows. */
export const RUN_REJECTS_SHOWN = 5;

/** Idempotent: the run id comes from the workflow, so a retried activity finds its own row. */
export async function startRun(sql: Sql, connectionId: string, runId: string): Promise<void> {
  await sql`
    insert into sync_runs (id, connection_id, status, last_progress_at) values (${runId}, ${connectionId}, 'running', now())
    on conflict (id) do nothing`;
}

/** Adds one activity attempt's figures to its run. */
export async function addRunStats(
  sql: Sql,
  runId: string,
  stats: { resource?: string; records?: number; requests?: number; rateLimitWaits?: number; retries?: number; rejected?: number },
): Promise<void> {
  const resource = stats.resource ?? null;
  await sql`
    update sync_runs set
      requests = requests + ${stats.requests ?? 0},
      rate_limit_waits = rate_limit_waits + ${stats.rateLimitWaits ?? 0},
      retries = retries + ${stats.retries ?? 0},
      rejected = rejected + ${stats.rejected ?? 0},
      counts = case when ${resource}::text is null then counts
                    else counts || jsonb_build_object(${resource}::text, coalesce((counts ->> ${resource}::text)::int, 0) + ${stats.records ?? 0}) end
    where id = ${runId}`;
}

const FINISHED_EVENT = { succeeded: 'sync.completed', failed: 'sync.failed', stalled: 'sync.stalled' } as const;

/**
 * Ends a running run and writes its sync.completed / sync.failed / sync.stalled event in the same
 * transaction. Only the call that really ends it writes the event: a retried activity finds the run
 * finished and writes nothing (and gets the time it finished). `provider` is the connection's only when
 * this call finished the run, so a retried activity is counted once.
 */
export async function finishRun(
  sql: Sql,
  runId: string,
  outcome: { status: 'succeeded' } | { status: 'failed' | 'stalled'; error: ConnectionError },
): Promise<{ finishedAt: Date; eventIds: string[]; provider: Provider | null }> {
  return sql.begin(async (tx) => {
    const [finished] = await tx<(SyncRun & { provider: Provider })[]>`
      update sync_runs r set
        status = ${outcome.status},
        finished_at = now(),
        error = ${outcome.status === 'succeeded' ? null : tx.json(outcome.error)}
      from connections c
      where r.id = ${runId} and r.status = 'running' and c.id = r.connection_id
      returning r.*, c.provider`;
    if (finished) {
      const { provider, ...run } = finished;
      const eventIds = await insertEvents(tx, run.connectionId, [{ type: FINISHED_EVENT[outcome.status], data: runEventData(run) }]);
      return { finishedAt: run.finishedAt!, eventIds, provider };
    }
    const [existing] = await tx<{ finishedAt: Date | null }[]>`select finished_at from sync_runs where id = ${runId}`;
    return { finishedAt: existing?.finishedAt ?? new Date(), eventIds: [], provider: null };
  });
}

/** Marks failed the runs a lost workflow left running (the reconciler), each with its sync.failed event. */
export async function failLostRuns(sql: Sql, connectionId: string, error: ConnectionError): Promise<string[]> {
  const runs = await sql<{ id: string }[]>`select id from sync_runs where connection_id = ${connectionId} and status = 'running'`;
  const eventIds: string[] = [];
  for (const { id } of runs) eventIds.push(...(await finishRun(sql, id, { status: 'failed', error })).eventIds);
  return eventIds;
}

/** The connection's run in flight, if any. */
export async function runningRun(db: Sql | TransactionSql, connectionId: string): Promise<SyncRun | undefined> {
  const [run] = await db<SyncRun[]>`
    select * from sync_runs where connection_id = ${connectionId} and status = 'running' order by started_at desc limit 1`;
  return run;
}

/** A run as sync.* events carry it. */
export function runEventData(run: SyncRun, wait?: { resource: string; until: string }): SyncEventData {
  return {
    runId: run.id,
    status: run.status,
    startedAt: run.startedAt.toISOString(),
    finishedAt: run.finishedAt?.toISOString() ?? null,
    counts: run.counts,
    error: run.error,
    resource: wait?.resource ?? null,
    until: wait?.until ?? null,
  };
}

export async function listRuns(sql: Sql, connectionId: string, limit = 50): Promise<(SyncRun & { rejects: RunReject[] })[]> {
  const runs = await sql<SyncRun[]>`
    select * from sync_runs where connection_id = ${connectionId} order by started_at desc, id desc limit ${limit}`;
  if (runs.length === 0) return [];
  // The first reasons of each run, oldest first. A record met again by a later run moves to that run.
  const rejects = await sql<(RunReject & { runId: string })[]>`
    select run_id, resource, record_id, reason from (
      select r.*, row_number() over (partition by run_id order by first_seen_at, resource, record_key) as n
      from sync_rejects r where connection_id = ${connectionId} and run_id in ${sql(runs.map((r) => r.id))}
    ) t where n <= ${RUN_REJECTS_SHOWN} order by run_id, n`;
  const byRun = new Map<string, RunReject[]>();
  for (const { runId, ...r } of rejects) byRun.set(runId, [...(byRun.get(runId) ?? []), r]);
  return runs.map((r) => ({ ...r, rejects: byRun.get(r.id) ?? [] }));
}
