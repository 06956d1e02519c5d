import { initialStateOf } from '../../src/reconciler/reconcile';

/** The state a recreated workflow starts in is the row's, past its revision. */
describe('reconciler: initial state of a recreated workflow', () => {
  const row = {
    id: '00000000-0000-4000-8000-000000000001',
    tenantId: '00000000-0000-4000-8000-000000000002',
    provider: 'bitrise' as const,
    syncIntervalSeconds: 3600,
    workflowId: 'connection-00000000-0000-4000-8000-000000000001',
    lastSyncAt: new Date('2026-01-01T00:00:00Z'),
    nextSyncAt: new Date('2026-01-01T01:00:00Z'),
    lastError: null,
    stateRevision: '41',
    hasCredential: true,
  };

  it('keeps status, run times and revision', () => {
    expect(initialStateOf({ ...row, status: 'active' })).toEqual({
      status: 'active',
      lastSyncAt: '2026-01-01T00:00:00.000Z',
      nextSyncAt: '2026-01-01T01:00:00.000Z',
      lastError: null,
      revision: 41,
    });
    expect(initialStateOf({ ...row, status: 'paused' }).status).toBe('paused');
    expect(initialStateOf({ ...row, status: 'needs_reconnect' }).status).toBe('needs_reconnect');
  });

  it('an active row without a credential, or a provisioning one, starts awaiting credentials', () => {
    expect(initialStateOf({ ...row, status: 'active', hasCredential: false }).status).toBe('awaiting_credentials');
    expect(initialStateOf({ ...row, status: 'provisioning' }).status).toBe('awaiting_credentials');
  });
});
