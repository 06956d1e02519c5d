import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { findEvent, isAfter, keyOf, readEventsAfter, toEnvelope, type StoredEvent, type StreamKey } from '../../db/events';
import { createEventHub, type EventHub, type StreamFilter, type StreamSink } from '../../events/hub';
import { EVENT_TYPES, PROGRESS_EVENT_TYPE } from '../../events/model';
import { SseWriter, commentFrame, eventFrame, progressFrame } from '../../events/sse';
import { requireTenant, tenantOf } from '../auth';
import type { ApiDeps } from '../deps';
import { badRequest } from '../errors';
import { errorResponses } from '../schemas';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Frames one client may leave unread before it is cut off (it resumes with Last-Event-ID). */
const MAX_QUEUED_FRAMES = 1000;
/** Live events held while a resuming client's backlog is read; more means it should resume again. */
const MAX_HELD_EVENTS = 10_000;

export const streamQuerySchema = z.object({
  connectionId: z.uuid().optional().describe('Only this connection’s events (404 if it is not yours)'),
  maxSeconds: z.coerce
    .number()
    .int()
    .min(0)
    .max(86400)
    .optional()
    .describe(
      'End the stream after this many seconds (default: never); 0 sends what is stored after Last-Event-ID and ends (catching up without holding a stream open).',
    ),
});

// Loose: the validated object replaces request.headers, which must keep every other header.
const streamHeadersSchema = z.looseObject({
  'last-event-id': z
    .string()
    .max(100)
    .optional()
    .describe('The id of the last event received: the stream starts with the events after it (kept EVENTS_RETENTION_DAYS).'),
});

const STREAM_DESCRIPTION = `Server-Sent Events, scoped to the API key's tenant. Each event is
\`id: <event id>\\nevent: <type>\\ndata: <Event JSON>\\n\\n\` (see the Event schema); types:
${EVENT_TYPES.map((t) => `\`${t}\``).join(', ')}, plus \`${PROGRESS_EVENT_TYPE}\` (no \`id:\`, not stored, never resent:
\`{type, createdAt, tenantId, connectionId, data: {runId, resource, records}}\`, at most once a second per
sync step, records stored so far). A comment line (\`: heartbeat\`) is sent every EVENTS_HEARTBEAT_SECONDS.
Send \`Last-Event-ID\` to resume after an event: nothing is skipped or repeated. Use fetch() with the
Authorization header (EventSource cannot send it; never put the key in a URL).`;

export const eventRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, deps) => {
  app.addHook('onRequest', requireTenant(deps.tenants));

  // Created on first use: the document-only app (tests, tooling) has no database.
  let hub: EventHub | undefined;
  const hubOf = () => (hub ??= createEventHub(deps.sql, app.log));
  // Open streams end before the server closes (it would otherwise wait for them forever).
  app.addHook('preClose', async () => hub?.close());

  app.get(
    '/v1/events/stream',
    {
      schema: {
        tags: ['events'],
        summary: 'Live events of your connections (Server-Sent Events), resumable with Last-Event-ID',
        description: STREAM_DESCRIPTION,
        security: [{ apiKey: [] }],
        querystring: streamQuerySchema,
        headers: streamHeadersSchema,
        response: {
          200: {
            description: 'An endless text/event-stream (ends after maxSeconds when given)',
            content: { 'text/event-stream': { schema: z.string() } },
          },
          ...errorResponses(400, 401, 404, 429),
        },
      },
    },
    async (req, reply) => {
      const tenant = tenantOf(req);
      const filter: StreamFilter = { tenantId: tenant.id, connectionId: req.query.connectionId };
      if (filter.connectionId) await deps.connections.load(tenant.id, filter.connectionId);
      const lastEventId = req.headers['last-event-id'];
      let resumeAfter: StreamKey | undefined;
      if (lastEventId !== undefined) {
        if (!UUID.test(lastEventId)) throw badRequest('invalid_last_event_id', 'Last-Event-ID must be the id of an event (a UUID).');
        const last = await findEvent(deps.sql, tenant.id, lastEventId);
        if (!last) {
          throw badRequest(
            'unknown_last_event_id',
            'No event of yours has this id (events are kept EVENTS_RETENTION_DAYS); reload state from GET /v1/connections and reconnect without Last-Event-ID.',
          );
        }
        resumeAfter = keyOf(last);
      }

      // From here on the response is ours: headers set by hooks (security, CORS) go out with it.
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        ...(reply.getHeaders() as Record<string, string>),
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        // nginx and similar proxies would otherwise buffer the stream.
        'x-accel-buffering': 'no',
      });
      res.flushHeaders();

      const timers: NodeJS.Timeout[] = [];
      let unsubscribe = () => {};
      const writer = new SseWriter(res, MAX_QUEUED_FRAMES, () => {
        for (const t of timers) clearInterval(t);
        unsubscribe();
      });
      timers.push(setInterval(() => writer.send(commentFrame('heartbeat')), deps.config.events.heartbeatSeconds * 1000));
      const { maxSeconds } = req.query;
      if (maxSeconds) timers.push(setTimeout(() => writer.end(), maxSeconds * 1000));

      // Events arriving live while the backlog is read wait here; `last` drops what was already sent.
      let held: StoredEvent[] | undefined = [];
      let last: StreamKey | undefined;
      const send = (e: StoredEvent) => {
        const key = keyOf(e);
        if (last && !isAfter(key, last)) return;
        last = key;
        writer.send(eventFrame(toEnvelope(e)));
      };
      const sink: StreamSink = {
        filter,
        event(e) {
          if (!held) return send(e);
          held.push(e);
          if (held.length > MAX_HELD_EVENTS) writer.cut();
        },
        progress(p) {
          if (!held) writer.send(progressFrame(p));
        },
        close: () => writer.end(),
      };

      try {
        const subscription = await hubOf().subscribe(sink);
        unsubscribe = subscription.unsubscribe;
        if (writer.closed) return unsubscribe();
        writer.send(commentFrame('connected'));
        last = resumeAfter ?? subscription.head;
        if (resumeAfter) {
          for (;;) {
            const page = await readEventsAfter(deps.sql, last, filter);
            for (const e of page.events) send(e);
            if (!page.full || writer.closed) break;
          }
        }
        const live = held;
        held = undefined;
        for (const e of live) send(e);
        if (maxSeconds === 0) writer.end();
      } catch (err) {
        req.log.warn({ reason: (err as Error).message }, 'event stream: could not start');
        writer.end();
      }
    },
  );
};
