import type { ServerResponse } from 'node:http';
import type { EventEnvelope, ProgressNotice } from './model';

/**
 * Server-Sent Events framing (https://html.spec.whatwg.org/multipage/server-sent-events.html) and
 * one client's writer. JSON never contains a raw newline, so each `data:` is a single line.
 */

export const eventFrame = (e: EventEnvelope) => `id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`;
/** No `id:`: progress is not stored, so it must not move the client's Last-Event-ID. */
export const progressFrame = (p: ProgressNotice) => `event: ${p.type}\ndata: ${JSON.stringify(p)}\n\n`;
export const commentFrame = (text: string) => `: ${text}\n\n`;

/**
 * Writes frames to one client, honouring back-pressure: while the socket's buffer is full, frames
 * wait in a queue; a client that lets more than `maxQueued` frames pile up is cut off (it resumes
 * with Last-Event-ID) rather than growing this process's memory without bound.
 */
export class SseWriter {
  private readonly queue: string[] = [];
  private draining = false;
  private ending = false;
  private ended = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly maxQueued: number,
    private readonly onEnd: () => void,
  ) {
    res.once('close', () => this.finish());
  }

  get closed(): boolean {
    return this.ended;
  }

  send(frame: string): void {
    if (this.ended || this.ending) return;
    if (this.draining) {
      this.queue.push(frame);
      if (this.queue.length > this.maxQueued) this.cut();
      return;
    }
    if (!this.res.write(frame)) this.waitForDrain();
  }

  /** Ends the stream once what is queued has been written. */
  end(): void {
    if (this.ended) return;
    this.ending = true;
    if (!this.draining) this.cut();
  }

  /** Ends the stream now, dropping what is queued (the client resumes after the last event it got). */
  cut(): void {
    if (this.ended) return;
    this.res.end();
    this.finish();
  }

  private waitForDrain(): void {
    this.draining = true;
    this.res.once('drain', () => {
      this.draining = false;
      while (this.queue.length && !this.ended) {
        if (!this.res.write(this.queue.shift()!)) return this.waitForDrain();
      }
      if (this.ending) this.cut();
    });
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.queue.length = 0;
    this.onEnd();
  }
}
