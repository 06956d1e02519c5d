import { jsonSchemaTransformObject } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { PROVIDERS } from '../domain/connection';
import { connectionErrorSchema, connectionViewSchema } from '../domain/schemas';
import { EVENT_TYPES } from '../events/model';
import { storedText } from './inputs';

/** Request and response shapes of the public API; the OpenAPI document is generated from these. */

export const errorSchema = z
  .object({ error: z.object({ code: z.string(), message: z.string() }) })
  .meta({ id: 'Error', description: 'Every error response. `code` is stable; `message` is for people.' });

/**
 * The error responses a route documents, each `{"error":{"code","message"}}`: 400 bad input
 * (`invalid_request`, `invalid_json`, `invalid_cursor`, …), 401 `unauthorized`, 404 `not_found`,
 * 409 `connection_*`, 413 `payload_too_large`, 415 `unsupported_media_type`, 422
 * `invalid_credentials`, 429 `rate_limited`, 503 `workflow_unavailable` / `provider_unavailable`.
 */
export function errorResponses<S extends number>(...statuses: S[]): Record<S, typeof errorSchema> {
  return Object.fromEntries(statuses.map((s) => [s, errorSchema])) as Record<S, typeof errorSchema>;
}

export const tenantCreateSchema = z.object({ name: storedText(200).trim().min(1) }).strict();
export const tenantCreatedSchema = z
  .object({ id: z.uuid(), name: z.string(), apiKey: z.string().describe('Shown once; store it now.') })
  .meta({ id: 'TenantCreated' });

export const tenantSchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    allowedReturnOrigins: z
      .array(z.string())
      .describe('Origins a connection’s returnUrl may point at (https; http://localhost only in development deployments).'),
    createdAt: z.string(),
  })
  .meta({ id: 'Tenant' });

export const tenantUpdateSchema = z
  .object({ allowedReturnOrigins: z.array(z.string().trim().min(1).max(300)).max(20).optional() })
  .strict();

const httpUrl = z
  .url({ protocol: /^https?$/ })
  .max(2000)
  .refine((s) => ![...s].some((c) => c < ' ' || c === '\u007f'), { message: 'Must not contain control characters' })
  .describe(
    'Where the customer is sent back after authorizing, with ?connection=<id>&result=connected|error. Its origin must be one of the tenant’s allowedReturnOrigins.',
  );

export const connectionCreateSchema = z
  .object({
    provider: z.enum(PROVIDERS),
    name: storedText(200).trim().min(1).optional(),
    syncIntervalSeconds: z.number().int().min(60).max(86400).optional(),
    returnUrl: httpUrl.optional(),
    oauthClient: z
      .object({ clientId: storedText(200).trim().min(1), clientSecret: storedText(500).min(1) })
      .strict()
      .optional()
      .describe('OAuth providers only: the customer’s own OAuth consumer (key and secret) to use for this connection.'),
  })
  .strict();

// Tokens travel in an HTTP header: printable ASCII only (anything else could never be a real token).
export const credentialsSchema = z
  .object({
    token: z
      .string()
      .trim()
      .min(1)
      .max(4096)
      .regex(/^[\x21-\x7e]+$/, { message: 'A token is printable ASCII without spaces' }),
  })
  .strict();

// Fastify hands an absent body to the validator as null.
export const emptyBodySchema = z.object({}).strict().nullish();

export const syncRequestSchema = z
  .object({
    full: z.boolean().optional(),
    resources: z.array(z.string().min(1).max(50)).min(1).max(20).optional(),
  })
  .strict()
  .nullish();

export const connectionIdParams = z.object({ id: z.string().describe('The connection id (a UUID)') });

export const listQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(500).optional(),
});

export const connectionSchema = connectionViewSchema;

export const connectionListSchema = z
  .object({ items: z.array(connectionSchema), nextCursor: z.string().nullable() })
  .meta({ id: 'ConnectionList' });

export const authorizeResponseSchema = z.object({
  authorizeUrl: z
    .url()
    .describe('Our consent page (GET /v1/oauth/start?state=…); open it in the customer’s browser, which must also finish the flow.'),
});

export const oauthStartQuery = z.object({ state: z.string().max(500).optional() });
export const oauthContinueBody = z.object({ state: z.string().max(500) });

// Bounded so that no URL the schema allows exceeds Node's 16 KiB header limit (the request line
// counts), which Node itself would answer with a bodiless 431 before the app sees the request.
export const oauthCallbackQuery = z.object({
  code: z.string().max(512).optional(),
  state: z.union([z.string().max(200), z.array(z.string().max(200)).max(4)]).optional(),
  error: z.string().max(200).optional(),
  error_description: z.string().max(500).optional(),
});

export const syncRunSchema = z
  .object({
    id: z.uuid(),
    status: z.enum(['running', 'succeeded', 'failed', 'stalled']),
    startedAt: z.string(),
    finishedAt: z.string().nullable(),
    counts: z.record(z.string(), z.number()),
    requests: z.number().int(),
    rateLimitWaits: z.number().int(),
    retries: z.number().int(),
    /** Records quarantined in the run (they failed their schema; the rest of their page was stored). */
    rejected: z.number().int(),
    /** The run's first quarantined records (up to 5) and why. */
    rejects: z.array(z.object({ resource: z.string(), recordId: z.string().nullable(), reason: z.string() })),
    error: connectionErrorSchema.nullable(),
  })
  .meta({ id: 'SyncRun' });

/** Invite links last 7 days unless asked otherwise: long enough to reach a busy admin, short enough to go stale safely. */
export const INVITE_DEFAULT_EXPIRES_IN_SECONDS = 7 * 86400;

export const inviteCreateSchema = z
  .object({
    expiresInSeconds: z
      .number()
      .int()
      .min(300)
      .max(30 * 86400)
      .optional()
      .describe('How long the link works: 300 (5 minutes) to 2592000 (30 days); default 604800 (7 days).'),
  })
  .strict()
  .nullish();

export const inviteCreatedSchema = z
  .object({
    id: z.uuid(),
    inviteUrl: z.url().describe('The link to send to the provider’s admin: shown once, works once. Only its digest is stored.'),
    expiresAt: z.string(),
  })
  .meta({ id: 'InviteCreated' });

export const inviteSchema = z
  .object({
    id: z.uuid(),
    status: z.enum(['pending', 'used', 'revoked', 'expired']),
    createdAt: z.string(),
    expiresAt: z.string(),
    usedAt: z.string().nullable(),
    revokedAt: z.string().nullable(),
  })
  .meta({ id: 'Invite', description: 'An invite link (never its secret).' });

export const inviteListSchema = z.object({ items: z.array(inviteSchema) }).meta({ id: 'InviteList' });

export const inviteIdParams = z.object({
  id: z.string().describe('The connection id (a UUID)'),
  inviteId: z.string().describe('The invite id (a UUID)'),
});

export const invitePageParams = z.object({ secret: z.string().describe('The secret part of the invite link') });

export const inviteTokenForm = z.object({ token: z.string().max(8192).optional() });

/**
 * @fastify/swagger's `transformObject`: the zod schemas registered with an id (`.meta({ id })`) become
 * `components/schemas`, which the operations' `$ref`s point to; and a body whose schema is nullable
 * (`emptyBodySchema`, `syncRequestSchema`: the body may be left out) is marked `required: false`,
 * which @fastify/swagger always sets to true.
 */
export const openapiTransformObject: typeof jsonSchemaTransformObject = (input) => {
  type Body = { required?: boolean; content?: Record<string, { schema?: { nullable?: boolean } }> };
  const doc = jsonSchemaTransformObject(input);
  const paths = (doc as { paths?: Record<string, Record<string, { requestBody?: Body } | undefined>> }).paths ?? {};
  for (const item of Object.values(paths)) {
    for (const op of Object.values(item)) {
      const body = op?.requestBody;
      if (body?.content && Object.values(body.content).every((media) => media.schema?.nullable === true)) body.required = false;
    }
  }
  return doc;
};

// -------------------------------------------------------------------------------------------------
// Webhooks

const webhookUrl = z
  .string()
  .trim()
  .min(1)
  .max(2000)
  .describe(
    'https URL of a public host (never a private, loopback or link-local address; checked again at each delivery). http://localhost only in development deployments.',
  );
const webhookEvents = z.array(z.enum(EVENT_TYPES)).min(1).max(EVENT_TYPES.length).describe('The event types sent to this endpoint');

export const webhookCreateSchema = z.object({ url: webhookUrl, events: webhookEvents, description: storedText(500).optional() }).strict();

export const webhookUpdateSchema = z
  .object({
    url: webhookUrl.optional(),
    events: webhookEvents.optional(),
    description: storedText(500).nullable().optional(),
    enabled: z.boolean().optional().describe('false stops deliveries (pending ones are cancelled); true re-enables, also after a 410'),
  })
  .strict();

export const webhookSchema = z
  .object({
    id: z.uuid(),
    url: z.string(),
    events: z.array(z.enum(EVENT_TYPES)),
    description: z.string().nullable(),
    enabled: z.boolean(),
    disabledReason: z.enum(['gone', 'disabled']).nullable().describe('gone: the endpoint answered 410 Gone; disabled: PATCH enabled=false'),
    previousSecretExpiresAt: z
      .string()
      .nullable()
      .describe('After a rotation, when the previous secret stops signing (both sign until then)'),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: 'Webhook' });

export const webhookWithSecretSchema = webhookSchema
  .extend({ secret: z.string().describe('The signing secret (whsec_…). Shown once: store it now.') })
  .meta({ id: 'WebhookWithSecret' });

export const webhookListSchema = z.object({ items: z.array(webhookSchema), nextCursor: z.string().nullable() }).meta({ id: 'WebhookList' });

export const webhookIdParams = z.object({ id: z.string().describe('The webhook id (a UUID)') });

export const webhookDeliverySchema = z
  .object({
    id: z.uuid(),
    eventId: z.uuid(),
    eventType: z.enum(EVENT_TYPES),
    connectionId: z.uuid(),
    sequence: z.number().int(),
    status: z
      .enum(['pending', 'delivered', 'failed', 'cancelled'])
      .describe('pending: being tried (with backoff); failed: 410 Gone, or given up after the retry window; cancelled: endpoint disabled'),
    createdAt: z.string(),
    finishedAt: z.string().nullable(),
    attempts: z.array(
      z.object({
        attempt: z.number().int(),
        at: z.string(),
        durationMs: z.number().int(),
        responseStatus: z.number().int().nullable().describe('null when no response came (timeout, refused or unreachable target)'),
        error: z.string().nullable(),
      }),
    ),
  })
  .meta({ id: 'WebhookDelivery' });

export const webhookDeliveryListSchema = z
  .object({ items: z.array(webhookDeliverySchema), nextCursor: z.string().nullable() })
  .meta({ id: 'WebhookDeliveryList' });
