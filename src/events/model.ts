import { z } from 'zod';
import { connectionErrorSchema, connectionViewSchema, type ConnectionView } from '../domain/schemas';

/**
 * What Conduit tells the product about its connections: the event types, the envelope every event
 * travels in (webhooks and the stream alike), and the pure rules that turn a change of a connection
 * into events. The rows are written by src/db/events.ts in the transaction of the change itself.
 */

export const CONNECTION_EVENT_TYPES = [
  'connection.active',
  'connection.needs_reconnect',
  'connection.recovered',
  'connection.paused',
  'connection.disconnected',
  'connection.updated',
] as const;
export const SYNC_EVENT_TYPES = ['sync.completed', 'sync.failed', 'sync.stalled', 'sync.rate_limited'] as const;
/** Every stored event type; each can be subscribed to by a webhook. */
export const EVENT_TYPES = [...CONNECTION_EVENT_TYPES, ...SYNC_EVENT_TYPES] as const;

export type ConnectionEventType = (typeof CONNECTION_EVENT_TYPES)[number];
export type SyncEventType = (typeof SYNC_EVENT_TYPES)[number];
export type EventType = (typeof EVENT_TYPES)[number];

/** The stream-only, unstored progress notice (never a webhook, never resumable). */
export const PROGRESS_EVENT_TYPE = 'sync.progress';

const isoInstant = z.string().describe('ISO-8601 instant');

export const connectionEventDataSchema = z.object({
  connection: connectionViewSchema.describe('The connection exactly as GET /v1/connections/{id} showed it right after the change'),
});

export const syncEventDataSchema = z.object({
  runId: z.uuid(),
  status: z.enum(['running', 'succeeded', 'failed', 'stalled']),
  startedAt: isoInstant,
  finishedAt: isoInstant.nullable(),
  counts: z.record(z.string(), z.number()).describe('Records stored per resource so far'),
  error: connectionErrorSchema.nullable(),
  /** sync.rate_limited: the resource waiting, and when the wait ends. */
  resource: z.string().nullable(),
  until: isoInstant.nullable(),
});

export const eventEnvelopeSchema = z
  .object({
    id: z.uuid().describe('Stable: a redelivery carries the same id, so receivers dedupe by it'),
    type: z.enum(EVENT_TYPES),
    createdAt: isoInstant,
    tenantId: z.uuid(),
    connectionId: z.uuid(),
    sequence: z.number().int().describe('Grows by one per event of the connection, in the order of the changes that caused them'),
    data: z.union([connectionEventDataSchema, syncEventDataSchema]),
  })
  .meta({ id: 'Event', description: 'One event, as a webhook body and as the `data:` of a stream event.' });

export type ConnectionEventData = z.infer<typeof connectionEventDataSchema>;
export type SyncEventData = z.infer<typeof syncEventDataSchema>;
export type EventEnvelope = z.infer<typeof eventEnvelopeSchema>;

/** The stream-only progress notice of a page committed by a running sync. */
export interface ProgressNotice {
  type: typeof PROGRESS_EVENT_TYPE;
  createdAt: string;
  tenantId: string;
  connectionId: string;
  data: { runId: string; resource: string; records: number };
}

/** An event about to be written: the envelope's id, sequence and time are given at insert. */
export type NewEvent = { type: ConnectionEventType; data: ConnectionEventData } | { type: SyncEventType; data: SyncEventData };

/**
 * The connection.* event a change of the connection causes: the status-specific one when the
 * status changed, else `connection.updated` when anything GET /v1/connections/:id shows changed
 * (e.g. the sync moving to the next resource or waiting out a rate limit), else none. One change,
 * at most one connection.* event.
 */
export function connectionEventFor(before: ConnectionView, after: ConnectionView): ConnectionEventType | null {
  if (before.status !== after.status) {
    switch (after.status) {
      case 'active':
        return before.status === 'needs_reconnect' ? 'connection.recovered' : 'connection.active';
      case 'needs_reconnect':
        return 'connection.needs_reconnect';
      case 'paused':
        return 'connection.paused';
      case 'disconnected':
        return 'connection.disconnected';
      default:
        return 'connection.updated';
    }
  }
  return JSON.stringify(before) === JSON.stringify(after) ? null : 'connection.updated';
}

/** A sync that starts waiting out a rate limit (or is told a new end of its wait). */
export function rateLimitStarted(before: ConnectionView, after: ConnectionView): { resource: string; until: string } | null {
  const next = after.syncState;
  if (next.state !== 'rate_limited') return null;
  const prev = before.syncState;
  if (prev.state === 'rate_limited' && prev.until === next.until && prev.resource === next.resource) return null;
  return { resource: next.resource, until: next.until };
}
