import { z } from 'zod';
import { CONNECTION_STATUSES, PROVIDERS } from '../domain/connection';

/** Request and response shapes of the public API; the OpenAPI document is generated from these. */

export const errorSchema = z
  .object({ error: z.object({ code: z.string(), message: z.string() }) })
  .meta({ id: 'Error', description: 'Every error response. `code` is stable; `message` is for people.' });

export const tenantCreateSchema = z.object({ name: z.string().trim().min(1).max(200) }).strict();
export const tenantCreatedSchema = z
  .object({ id: z.uuid(), name: z.string(), apiKey: z.string().describe('Shown once; store it now.') })
  .meta({ id: 'TenantCreated' });

const httpUrl = z
  .url({ protocol: /^https?$/ })
  .max(2000)
  .describe('Where the customer is sent back after authorizing, with ?connection=<id>&result=connected|error');

export const connectionCreateSchema = z
  .object({
    provider: z.enum(PROVIDERS),
    name: z.string().trim().min(1).max(200).optional(),
    syncIntervalSeconds: z.number().int().min(60).max(86400).optional(),
    returnUrl: httpUrl.optional(),
    oauthClient: z
      .object({ clientId: z.string().trim().min(1).max(200), clientSecret: z.string().min(1).max(500) })
      .strict()
      .optional()
      .describe('Bitbucket only: the customer’s own OAuth consumer (key and secret) to use for this connection.'),
  })
  .strict();

export const credentialsSchema = z.object({ token: z.string().trim().min(1).max(4096) }).strict();

// Fastify hands an absent body to the validator as null.
export const emptyBodySchema = z.object({}).strict().nullish();

export const syncRequestSchema = z
  .object({
    full: z.boolean().optional(),
    resources: z.array(z.string().min(1).max(50)).min(1).max(20).optional(),
  })
  .strict()
  .nullish();

export const connectionIdParams = z.object({ id: z.string() });

export const listQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(500).optional(),
});

export const connectionSchema = z
  .object({
    id: z.uuid(),
    provider: z.enum(PROVIDERS),
    name: z.string().nullable(),
    status: z.enum(CONNECTION_STATUSES),
    createdAt: z.string(),
    updatedAt: z.string(),
    syncIntervalSeconds: z.number().int(),
    lastSyncAt: z.string().nullable(),
    nextSyncAt: z.string().nullable(),
    lastError: z.object({ code: z.string(), message: z.string(), at: z.string() }).nullable(),
    workflowId: z.string(),
    syncState: z
      .object({ state: z.enum(['idle', 'running', 'rate_limited']), resource: z.string().optional(), until: z.string().optional() })
      .describe('What the sync loop is doing now; `until` is when a rate-limit pause ends.'),
  })
  .meta({ id: 'Connection' });

export const connectionListSchema = z.object({ items: z.array(connectionSchema), nextCursor: z.string().nullable() }).meta({ id: 'ConnectionList' });

export const authorizeResponseSchema = z.object({ authorizeUrl: z.url() });

export const oauthCallbackQuery = z.object({
  code: z.string().max(2000).optional(),
  state: z.union([z.string(), z.array(z.string())]).optional(),
  error: z.string().max(200).optional(),
  error_description: z.string().max(2000).optional(),
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
    error: z.object({ code: z.string(), message: z.string(), at: z.string() }).nullable(),
  })
  .meta({ id: 'SyncRun' });

export type ConnectionDto = z.infer<typeof connectionSchema>;
