import type { Sql } from '../db/sql';

/**
 * Takes one request from a shared token bucket and says how long to wait before sending it.
 * The bucket refills at `perHour`, holds at most a minute's worth (a small burst), and may go
 * negative: a caller that finds it empty still takes its token and waits for it to be refilled,
 * so concurrent callers queue up fairly instead of all retrying at once. One statement, so the
 * row lock serializes callers across workers.
 */
export async function takeRequestToken(sql: Sql, key: string, perHour: number): Promise<number> {
  const perSecond = perHour / 3600;
  const burst = Math.max(1, perHour / 60);
  const [row] = await sql<{ tokens: number }[]>`
    insert into rate_buckets (key, tokens, refilled_at) values (${key}, ${burst - 1}, clock_timestamp())
    on conflict (key) do update set
      tokens = least(${burst}::float8,
                     rate_buckets.tokens + extract(epoch from clock_timestamp() - rate_buckets.refilled_at) * ${perSecond}::float8) - 1,
      refilled_at = clock_timestamp()
    returning tokens`;
  const tokens = Number(row!.tokens);
  return tokens >= 0 ? 0 : Math.ceil((-tokens / perSecond) * 1000);
}

/**
 * Whose budget a connection's requests spend: Bitbucket counts an OAuth consumer's calls together
 * (provider-notes A3), so every connection on the same consumer shares one bucket; Bitrise tokens
 * each have their own.
 */
export function rateBucketKey(provider: 'bitbucket' | 'bitrise', party: string): string {
  return `${provider}:${party}`;
}
