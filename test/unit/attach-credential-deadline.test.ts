import { loadConfig } from '../../src/config';
import { ApplicationFailure, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { createConnectionService } from '../../src/api/connections-service';
import type { Config } from '../../src/config';
import type { Vault } from '../../src/credentials/vault';
import type { Sql } from '../../src/db/sql';
import type { ConnectionRow } from '../../src/domain/connection';
import { FailureTypes } from '../../src/domain/failures';
import type { Providers } from '../../src/providers/registry';
import { ATTACH_CREDENTIAL_DEADLINE_MS, VERIFICATION_TIMEOUT_MS } from '../../src/workflows/messages';

/**
 * The API's side of attachCredential: it waits as long as the workflow's verification may take,
 * and a pending credential is discarded only when the workflow has answered; after a timeout the
 * workflow may still apply it, and the age-based purge cleans up what nobody adopted.
 */

const minimalEnv = {
  DATABASE_URL: 'postgres://u:p@127.0.0.1:5432/c',
  ADMIN_TOKEN: 'a'.repeat(32),
  ENCRYPTION_KEY: Buffer.alloc(32).toString('base64'),
};

function service(executeUpdate: () => Promise<unknown>) {
  const deadlines: number[] = [];
  const temporal = {
    withDeadline: (deadline: number, fn: () => Promise<unknown>) => {
      deadlines.push(deadline - Date.now());
      return fn();
    },
    workflow: { getHandle: () => ({ executeUpdate }) },
  } as unknown as Client;
  const discarded: string[] = [];
  const purged: [number, string | undefined][] = [];
  const vault = {
    discard: async (_connectionId: string, id: string) => void discarded.push(id),
    wipeStalePending: async (ttlSeconds: number, connectionId?: string) => {
      purged.push([ttlSeconds, connectionId]);
      return 0;
    },
  } as unknown as Vault;
  const svc = createConnectionService({
    config: { pendingCredentialTtlSeconds: 86400 } as Config,
    sql: {} as Sql,
    temporal,
    vault,
    providers: {} as Providers,
  });
  return { svc, deadlines, discarded, purged };
}

const row = { id: '6f1c1d2e-0000-4000-8000-000000000001', status: 'active', workflowId: 'connection-x' } as unknown as ConnectionRow;

describe('attachCredential in the API', () => {
  it('waits at least as long as the verification may take', async () => {
    const { svc, deadlines } = service(async () => ({ status: 'active' }));
    await svc.attachCredential(row, async () => 'cred-1');
    expect(deadlines[0]).toBeGreaterThan(VERIFICATION_TIMEOUT_MS);
    expect(deadlines[0]).toBeLessThanOrEqual(ATTACH_CREDENTIAL_DEADLINE_MS);
  });

  it('keeps the pending credential when the workflow did not answer in time (it may still apply it)', async () => {
    const { svc, discarded } = service(async () => {
      throw Object.assign(new Error('deadline exceeded'), { code: 4 });
    });
    const err = await svc.attachCredential(row, async () => 'cred-1').catch((e: unknown) => e);
    // Our own deadline passing (gRPC DEADLINE_EXCEEDED) cannot tell a down worker from a down Temporal.
    expect(err).toMatchObject({ statusCode: 503 });
    expect(['workflow_unavailable', 'temporal_unavailable']).toContain((err as { code: string }).code);
    expect(discarded).toEqual([]);
  });

  it('discards it when the workflow answered no', async () => {
    const { svc, discarded } = service(async () => {
      const refused = ApplicationFailure.create({
        type: FailureTypes.refused,
        message: 'no',
        details: ['connection_paused'],
        nonRetryable: true,
      });
      throw new WorkflowUpdateFailedError('Workflow Update failed', refused);
    });
    const err = await svc.attachCredential(row, async () => 'cred-1').catch((e: unknown) => e);
    expect(err).toMatchObject({ statusCode: 409 });
    expect(discarded).toEqual(['cred-1']);
  });

  it('purges the connection’s pending credentials nobody adopted, by age', async () => {
    const { svc, purged } = service(async () => ({ status: 'active' }));
    await svc.attachCredential(row, async () => 'cred-1');
    expect(purged).toEqual([[86400, row.id]]);
    // The smallest TTL the configuration accepts still outlasts the API's wait for a verification.
    expect(() => loadConfig({ ...minimalEnv, PENDING_CREDENTIAL_TTL_SECONDS: '599' })).toThrow(/PENDING_CREDENTIAL_TTL_SECONDS/);
    expect(600_000).toBeGreaterThan(ATTACH_CREDENTIAL_DEADLINE_MS);
  });
});
