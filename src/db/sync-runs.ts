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
  stats: { resource?: string; records?: number; requests?: number; rateLimitWaits?: number; retries?: number },
): Promise<void> {
  const resource = stats.resource ?? null;
  await sql`
    update sync_runs set
      requests = requests + ${stats.requests ?? 0},
      rate_limit_waits = rate_limit_waits + ${stats.rateLimitWaits ?? 0},
      retries = retries + ${stats.retries ?? 0},
      counts = case when ${resource}::text is null then counts
                    else counts || jsonb_build_object(${resource}::text, coalesce((counts ->> ${resource}::text)::int, 0) + ${stats.records ?? 0}) end
    where id = ${runId}`;
}

export async function finishRun(
  sql: Sql,
  runId: string,
  outcome: { status: 'succeeded' } | { status: 'failed' | 'stalled'; error: ConnectionError },
): Promise<Date> {
  const [row] = await sql<{ finishedAt: Date }[]>`
    update sync_runs set
      status = ${outcome.status},
      finished_at = now(),
      error = ${outcome.status === 'succeeded' ? null : sql.json(outcome.error as never)}
    where id = ${runId} and status = 'running'
    returning finished_at`;
  if (row) return row.finishedAt;
  const [existing] = await sql<{ finishedAt: Date | null }[]>`select finished_at from sync_runs where id = ${runId}`;
  return existing?.finishedAt ?? new Date();
}

export async function listRuns(sql: Sql, connectionId: string, limit = 50): Promise<SyncRun[]> {
  return sql<SyncRun[]>`select * from sync_runs where connection_id = ${connectionId} order by started_at desc, id desc limit ${limit}`;
}
