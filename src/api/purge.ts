import type { FastifyBaseLogger } from 'fastify';
import type { Vault } from '../credentials/vault';
import { purgeEvents } from '../db/events';
import type { Sql } from '../db/sql';
import { purgeExpiredStates } from './oauth-state';

/**
 * One pass: expired OAuth states are deleted, pending credentials older than the TTL wiped, events
 * older than their retention deleted (with their webhook deliveries).
 */
export async function purgeExpired(
  sql: Sql,
  vault: Vault,
  opts: { pendingCredentialTtlSeconds: number; eventRetentionDays: number },
): Promise<{ states: number; credentials: number; events: number }> {
  const states = await purgeExpiredStates(sql);
  const credentials = await vault.wipeStalePending(opts.pendingCredentialTtlSeconds);
  const events = await purgeEvents(sql, opts.eventRetentionDays);
  return { states, credentials, events };
}

/** Runs `purgeExpired` every `intervalSeconds` (and once at start) until the returned stop is called. */
export function startPurger(
  sql: Sql,
  vault: Vault,
  opts: { intervalSeconds: number; pendingCredentialTtlSeconds: number; eventRetentionDays: number },
  log: FastifyBaseLogger,
): () => void {
  let running: Promise<void> | undefined;
  const tick = () => {
    // A slow pass is never overlapped by the next one.
    running ??= purgeExpired(sql, vault, opts)
      .then((purged) => {
        if (purged.states || purged.credentials || purged.events)
          log.info(purged, 'purged expired oauth states, stale pending credentials and old events');
      })
      .catch((err: unknown) => log.warn({ reason: (err as Error).message }, 'purge failed; will retry'))
      .finally(() => (running = undefined));
  };
  tick();
  const timer = setInterval(tick, opts.intervalSeconds * 1000);
  timer.unref();
  return () => clearInterval(timer);
}
