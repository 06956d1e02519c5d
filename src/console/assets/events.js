/**
 * Live events from `GET /v1/events/stream` (Server-Sent Events). EventSource cannot send an
 * Authorization header, so the stream is read with fetch() and parsed here, following the
 * event-stream rules of the HTML standard (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation).
 * A dropped stream is reopened with exponential backoff and `Last-Event-ID`, so the server can
 * replay what was missed.
 */

/** Turns chunks of an event stream into events: `{ id, type, data }` per dispatched event. */
export class SseParser {
  constructor() {
    this.buffer = '';
    this.data = [];
    this.type = '';
    this.lastEventId = '';
    /** Milliseconds the server asked to wait before reconnecting (`retry:`), if it did. */
    this.retry = undefined;
  }

  /** Feeds a decoded chunk; returns the events it completed. */
  push(chunk) {
    this.buffer += chunk;
    const events = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buffer);
      // A lone CR at the end may be the first half of a CRLF split across chunks.
      if (!m || (m[0] === '\r' && m.index === this.buffer.length - 1)) break;
      const line = this.buffer.slice(0, m.index);
      this.buffer = this.buffer.slice(m.index + m[0].length);
      const event = this.line(line);
      if (event) events.push(event);
    }
    return events;
  }

  line(line) {
    if (line === '') {
      const event = this.data.length > 0 ? { id: this.lastEventId, type: this.type || 'message', data: this.data.join('\n') } : null;
      this.data = [];
      this.type = '';
      return event;
    }
    if (line.startsWith(':')) return null; // a comment (keep-alive)
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.type = value;
    else if (field === 'id' && !value.includes('\0')) this.lastEventId = value;
    else if (field === 'retry' && /^\d+$/.test(value)) this.retry = Number(value);
    return null;
  }
}

/** The delay before reconnect attempt `attempt` (0-based): doubling from 1 s to 30 s, with jitter. */
export function backoffMs(attempt, random = Math.random) {
  const base = Math.min(30_000, 1000 * 2 ** Math.min(attempt, 5));
  return Math.round(base / 2 + (random() * base) / 2);
}

/** Silence (not even a heartbeat comment, sent every 15 s by default) this long means a dead stream. */
const SILENCE_MS = 60_000;

/** The server no longer has the event we would resume after: start afresh (and reload state). */
const RESTART_CODES = new Set(['unknown_last_event_id', 'invalid_last_event_id']);

/**
 * Opens the stream and keeps it open until `close()`. Callbacks: `onEvent(envelope)` for each event
 * (the parsed JSON envelope, `type` from the event field if it has none), `onState(state, detail)`
 * with 'connecting' | 'live' | 'retrying' (detail: `{ error, delay }`) | 'unauthorized', and
 * `onOpen(resumed)` after every successful (re)connect; `resumed` says whether Last-Event-ID was
 * sent, i.e. whether the server replayed what was missed.
 */
export function subscribe({ key, onEvent, onState, onOpen, path = '/v1/events/stream' }) {
  const abort = new AbortController();
  let lastEventId = '';
  let attempt = 0;
  let serverRetry;

  const wait = (ms) =>
    new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      abort.signal.addEventListener('abort', () => {
        clearTimeout(t);
        resolve();
      });
    });

  async function connect() {
    // One controller per attempt: closing aborts it, and so does a silent stream.
    const attemptAbort = new AbortController();
    const stop = () => attemptAbort.abort();
    abort.signal.addEventListener('abort', stop);
    let silence;
    const heard = () => {
      clearTimeout(silence);
      silence = setTimeout(stop, SILENCE_MS);
    };
    try {
      const headers = { authorization: `Bearer ${key()}`, accept: 'text/event-stream' };
      if (lastEventId) headers['last-event-id'] = lastEventId;
      heard();
      const res = await fetch(path, { headers, cache: 'no-store', signal: attemptAbort.signal });
      if (res.status === 401) return 'unauthorized';
      if (!res.ok || !res.body) throw await streamError(res);
      attempt = 0;
      onState('live');
      onOpen?.(Boolean(lastEventId));
      const parser = new SseParser();
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        heard();
        for (const event of parser.push(value)) {
          // Stored events carry an id; sync.progress does not (and is never replayed).
          if (event.id) lastEventId = event.id;
          let envelope;
          try {
            envelope = JSON.parse(event.data);
          } catch {
            continue; // not an envelope: nothing a card could show
          }
          onEvent({ ...envelope, type: envelope.type ?? event.type });
        }
        serverRetry = parser.retry ?? serverRetry;
      }
      throw new Error('the stream ended');
    } finally {
      clearTimeout(silence);
      abort.signal.removeEventListener('abort', stop);
    }
  }

  async function run() {
    while (!abort.signal.aborted) {
      onState('connecting');
      try {
        if ((await connect()) === 'unauthorized') return onState('unauthorized');
      } catch (err) {
        if (abort.signal.aborted) return;
        if (RESTART_CODES.has(err.code)) {
          lastEventId = '';
          continue;
        }
        const delay = Math.max(serverRetry ?? 0, backoffMs(attempt));
        attempt += 1;
        onState('retrying', { error: err, delay });
        await wait(delay);
      }
    }
  }

  void run();
  return { close: () => abort.abort() };
}

async function streamError(res) {
  let message = `The live event stream answered ${res.status}.`;
  let code;
  try {
    const body = await res.json();
    if (body && body.error) ({ message = message, code } = body.error);
  } catch {
    // not JSON
  }
  const err = new Error(message);
  err.status = res.status;
  err.code = code;
  return err;
}
