import {
  EVENTS_CHANNEL,
  PROGRESS_CHANNEL,
  isAfter,
  keyOf,
  parseProgress,
  readEventsAfter,
  streamHead,
  type StoredEvent,
  type StreamKey,
} from '../db/events';
import type { Sql } from '../db/sql';
import type { ProgressNotice } from './model';

/**
 * One per API process: listens on Postgres (LISTEN, one connection for the whole process, not one
 * per client) and fans events out to the process's stream clients. A NOTIFY only wakes it; it then
 * reads what is new from the events table in the stream's order (src/db/events.ts), so every
 * replica sees every event, in the same order, and nothing is lost while its listening connection
 * reconnects (it reads again on reconnect). Progress notices are not stored and pass straight through.
 */

export interface StreamFilter {
  tenantId: string;
  connectionId?: string;
}

export interface StreamSink {
  filter: StreamFilter;
  /** Called in stream order; must not block (sinks queue and apply back-pressure themselves). */
  event(e: StoredEvent): void;
  progress(p: ProgressNotice): void;
  /** The hub is shutting down. */
  close(): void;
}

export interface EventHub {
  /** Registers a sink. Every event after `head` reaches it live; what came before is the caller's to read. */
  subscribe(sink: StreamSink): Promise<{ head: StreamKey; unsubscribe: () => void }>;
  close(): Promise<void>;
}

interface Logger {
  warn(obj: object, msg: string): void;
}

const matches = (f: StreamFilter, e: { tenantId: string; connectionId: string }) =>
  e.tenantId === f.tenantId && (!f.connectionId || e.connectionId === f.connectionId);

/** How soon to read again when committed events wait behind an older transaction still running. */
const SETTLE_RETRY_MS = 100;
/** How soon to read again after a failed read (Postgres away). */
const ERROR_RETRY_MS = 2000;

export function createEventHub(sql: Sql, log: Logger): EventHub {
  const sinks = new Set<StreamSink>();
  let listening: Promise<(() => Promise<void>)[]> | undefined;
  // The last event fanned out; undefined while nobody listens (re-read from the head on the next subscribe).
  let cursor: StreamKey | undefined;
  let reading: Promise<void> | undefined;
  let readAgain = false;
  let retry: NodeJS.Timeout | undefined;
  let closed = false;
  // subscribe() runs one at a time: it may move the cursor.
  let subscribing: Promise<unknown> = Promise.resolve();

  function wake(): void {
    if (closed || sinks.size === 0 || !cursor) return;
    if (reading) {
      readAgain = true;
      return;
    }
    reading = drain().finally(() => {
      reading = undefined;
      if (readAgain) {
        readAgain = false;
        wake();
      }
    });
  }

  function wakeIn(ms: number): void {
    if (retry || closed) return;
    retry = setTimeout(() => {
      retry = undefined;
      wake();
    }, ms);
    retry.unref();
  }

  async function drain(): Promise<void> {
    try {
      for (;;) {
        if (!cursor) return;
        const page = await readEventsAfter(sql, cursor);
        for (const e of page.events) {
          const key = keyOf(e);
          // A read begun before a re-initialisation may return what is now behind the cursor.
          if (!cursor || !isAfter(key, cursor)) continue;
          cursor = key;
          for (const sink of sinks) if (matches(sink.filter, e)) sink.event(e);
        }
        if (page.full) continue;
        if (page.unsettled) wakeIn(SETTLE_RETRY_MS);
        return;
      }
    } catch (err) {
      log.warn({ reason: (err as Error).message }, 'event stream: reading events failed; retrying');
      wakeIn(ERROR_RETRY_MS);
    }
  }

  function onProgress(payload: string): void {
    const notice = parseProgress(payload);
    if (!notice) return;
    for (const sink of sinks) if (matches(sink.filter, notice)) sink.progress(notice);
  }

  function listen(): Promise<unknown> {
    listening ??= Promise.all([
      // onlisten runs on the first LISTEN and after every reconnect: read whatever was missed meanwhile.
      sql.listen(EVENTS_CHANNEL, wake, wake).then((l) => () => l.unlisten()),
      sql.listen(PROGRESS_CHANNEL, onProgress).then((l) => () => l.unlisten()),
    ]);
    // A failed LISTEN is tried again by the next subscriber.
    return listening.catch((err: unknown) => {
      listening = undefined;
      throw err;
    });
  }

  return {
    subscribe(sink) {
      const result = subscribing.then(async () => {
        if (closed) throw new Error('the event hub is closed');
        await listen();
        if (sinks.size === 0) {
          await reading;
          cursor = await streamHead(sql);
        }
        sinks.add(sink);
        const head = cursor!;
        return {
          head,
          unsubscribe: () => {
            sinks.delete(sink);
            if (sinks.size === 0) cursor = undefined;
          },
        };
      });
      subscribing = result.catch(() => undefined);
      return result;
    },

    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      for (const sink of [...sinks]) sink.close();
      sinks.clear();
      await reading;
      const unlisten = await listening?.catch(() => []);
      for (const u of unlisten ?? []) await u().catch(() => undefined);
    },
  };
}
