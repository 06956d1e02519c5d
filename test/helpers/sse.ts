import { waitFor } from './stack';

/**
 * A Server-Sent Events client the way the console reads the stream: fetch() with the Authorization
 * header and a stream reader (EventSource cannot send headers), parsing frames as they arrive.
 */

export interface SseMessage {
  id?: string;
  event?: string;
  data?: string;
  /** The text of a comment line (`: heartbeat`). */
  comment?: string;
}

export interface SseStream {
  status: number;
  headers: Headers;
  /** Every message so far, in arrival order. */
  messages: SseMessage[];
  /** The parsed `data` of every stored event (messages with an `id`). */
  events(): any[];
  /** Resolves once `check` holds for the messages received (or times out). */
  until(check: (messages: SseMessage[]) => boolean, what: string, timeoutMs?: number): Promise<void>;
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  close(): void;
}

export async function openStream(url: string, opts: { apiKey?: string; headers?: Record<string, string> } = {}): Promise<SseStream> {
  const controller = new AbortController();
  const headers: Record<string, string> = { accept: 'text/event-stream', ...opts.headers };
  if (opts.apiKey) headers.authorization = `Bearer ${opts.apiKey}`;
  const res = await fetch(url, { headers, signal: controller.signal });
  const messages: SseMessage[] = [];
  let ended: Promise<void> = Promise.resolve();
  if (res.ok && res.body) {
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    ended = (async () => {
      let buffer = '';
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          buffer += value;
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            messages.push(parseFrame(buffer.slice(0, end)));
            buffer = buffer.slice(end + 2);
          }
        }
      } catch {
        // aborted by close()
      }
    })();
  } else {
    messages.push({ data: await res.text() });
  }
  return {
    status: res.status,
    headers: res.headers,
    messages,
    events: () => messages.filter((m) => m.id).map((m) => JSON.parse(m.data!)),
    until: (check, what, timeoutMs = 60_000) => waitFor(() => check(messages), timeoutMs, what),
    ended,
    close: () => controller.abort(),
  };
}

function parseFrame(frame: string): SseMessage {
  const m: SseMessage = {};
  for (const line of frame.split('\n')) {
    if (line.startsWith(':')) m.comment = line.slice(1).trim();
    else {
      const colon = line.indexOf(':');
      const field = line.slice(0, colon);
      const value = line.slice(colon + 1).replace(/^ /, '');
      if (field === 'id' || field === 'event') m[field] = value;
      else if (field === 'data') m.data = m.data === undefined ? value : `${m.data}\n${value}`;
    }
  }
  return m;
}
