import { z } from 'zod';
import { PROVIDERS } from '../providers/manifests';
import { CONNECTION_STATUSES } from './connection';

/**
 * The connection's shapes, defined once. The workflow's state, the snapshot it publishes to
 * Postgres, the database row and the API's response are all derived from these, so a field added
 * here shows up (or fails to compile) everywhere at once. Workflow code imports only the types.
 */

const isoInstant = z.string().describe('ISO-8601 instant');

export const connectionErrorSchema = z.object({ code: z.string(), message: z.string(), at: isoInstant });

/** What the connection's sync loop is doing right now, for the API and the Temporal UI. */
export const syncStateSchema = z
  .discriminatedUnion('state', [
    z.object({ state: z.literal('idle') }),
    z.object({ state: z.literal('running'), resource: z.string() }),
    z.object({ state: z.literal('rate_limited'), resource: z.string(), until: isoInstant }),
    z.object({ state: z.literal('paced'), resource: z.string(), until: isoInstant }),
    z.object({ state: z.literal('provider_unavailable'), resource: z.string(), until: isoInstant }),
  ])
  .describe(
    'What the sync loop is doing now; `until` is when a pause ends: `rate_limited` (the provider asked for it), `paced` (waiting for ' +
      'this connection’s fair share of the request budget it shares with other connections), `provider_unavailable` (a provider that keeps failing).',
  );

export const connectionStateSchema = z.object({
  connectionId: z.uuid(),
  tenantId: z.uuid(),
  provider: z.enum(PROVIDERS),
  status: z.enum(CONNECTION_STATUSES),
  syncIntervalSeconds: z.number().int(),
  lastSyncAt: isoInstant.nullable(),
  nextSyncAt: isoInstant.nullable(),
  lastError: connectionErrorSchema.nullable(),
  /** The sync run in flight, if any. */
  currentRunId: z.uuid().nullable(),
  syncState: syncStateSchema,
  /** Grows with every published change; the database ignores snapshots older than it has. */
  revision: z.number().int(),
});

/** What the workflow publishes about itself after every change; `revision` only ever grows. */
export const connectionSnapshotSchema = connectionStateSchema.pick({
  status: true,
  syncIntervalSeconds: true,
  lastSyncAt: true,
  nextSyncAt: true,
  lastError: true,
  syncState: true,
  revision: true,
});

/** A connection as the API shows it: the published snapshot plus what the row knows. */
export const connectionViewSchema = connectionSnapshotSchema
  .omit({ revision: true })
  .extend({
    id: z.uuid(),
    provider: z.enum(PROVIDERS),
    name: z.string().nullable(),
    createdAt: isoInstant,
    updatedAt: isoInstant,
    workflowId: z.string(),
  })
  .meta({ id: 'Connection' });

export type ConnectionError = z.infer<typeof connectionErrorSchema>;
export type SyncState = z.infer<typeof syncStateSchema>;
export type ConnectionState = z.infer<typeof connectionStateSchema>;
export type ConnectionSnapshot = z.infer<typeof connectionSnapshotSchema>;
export type ConnectionView = z.infer<typeof connectionViewSchema>;

/** Instants the database returns as Date and the other shapes carry as ISO strings. */
type Instants = 'createdAt' | 'updatedAt' | 'lastSyncAt' | 'nextSyncAt';

/** The `connections` row (camelCased by the driver). */
export type ConnectionRow = Omit<ConnectionView, Instants> & {
  tenantId: string;
  returnUrl: string | null;
  account: { id: string; name: string } | null;
  /** bigint, as text */
  stateRevision: string;
  createdAt: Date;
  updatedAt: Date;
  lastSyncAt: Date | null;
  nextSyncAt: Date | null;
};

export function toConnectionView(row: ConnectionRow): ConnectionView {
  return {
    id: row.id,
    provider: row.provider,
    name: row.name,
    status: row.status,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
    syncIntervalSeconds: row.syncIntervalSeconds,
    lastSyncAt: row.lastSyncAt?.toISOString() ?? null,
    nextSyncAt: row.nextSyncAt?.toISOString() ?? null,
    lastError: row.lastError,
    workflowId: row.workflowId,
    syncState: row.syncState,
  };
}
