import type { ConnectionError } from '../domain/connection';
import type { Sql } from './sql';

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
  error: ConnectionError | null;
}

export interface RunStats {
  requests: number;
  rateLimitWaits: number;
}

/** Idempotent: a retried attempt of the same run finds its row and counts one more retry. */
export async function startRun(sql: Sql, connectionId: string, runId: string): Promise<SyncRun> {
  const [run] = await sql<SyncRun[]>`
    insert into sync_runs (id, connection_id, status) values (${runId}, ${connectionId}, 'running')
    on conflict (id) do update set retries = sync_runs.retries + 1, status = 'running', error = null
    returning *`;
  return run!;
}

export async function addRunStats(sql: Sql, runId: string, stats: RunStats): Promise<void> {
  await sql`update sync_runs set requests = requests + ${stats.requests}, rate_limit_waits = rate_limit_waits + ${stats.rateLimitWaits}
            where id = ${runId}`;
}

export async function finishRun(
  sql: Sql,
  runId: string,
  outcome: { status: 'succeeded'; counts: Record<string, number> } | { status: 'failed' | 'stalled'; error: ConnectionError },
): Promise<Date> {
  const [row] = await sql<{ finishedAt: Date }[]>`
    update sync_runs set
      status = ${outcome.status},
      finished_at = now(),
      counts = ${outcome.status === 'succeeded' ? sql.json(outcome.counts) : sql`counts`},
      error = ${outcome.status === 'succeeded' ? null : sql.json(outcome.error as never)}
    where id = ${runId} and status = 'running'
    returning finished_at`;
  return row?.finishedAt ?? new Date();
}

export async function listRuns(sql: Sql, connectionId: string, limit = 50): Promise<SyncRun[]> {
  return sql<SyncRun[]>`select * from sync_runs where connection_id = ${connectionId} order by started_at desc, id desc limit ${limit}`;
}
