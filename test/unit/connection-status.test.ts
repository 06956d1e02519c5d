import { CONNECTION_STATUSES, refusalCode, type ConnectionAction } from '../../src/domain/connection';

describe('connection action guards', () => {
  it('allows exactly the documented actions per status', () => {
    const allowed = (action: ConnectionAction) => CONNECTION_STATUSES.filter((s) => refusalCode(action, s) === null);
    expect(allowed('authorize')).toEqual(['awaiting_credentials', 'active', 'needs_reconnect']);
    expect(allowed('set_credentials')).toEqual(['awaiting_credentials', 'active', 'needs_reconnect']);
    expect(allowed('sync')).toEqual(['active']);
    expect(allowed('pause')).toEqual(['active']);
    expect(allowed('resume')).toEqual(['paused']);
    expect(allowed('disconnect')).toEqual(['awaiting_credentials', 'active', 'needs_reconnect', 'paused']);
  });

  it('says why an action is refused', () => {
    expect(refusalCode('sync', 'disconnected')).toBe('connection_disconnected');
    expect(refusalCode('sync', 'paused')).toBe('connection_paused');
    expect(refusalCode('resume', 'active')).toBe('connection_not_paused');
    expect(refusalCode('sync', 'needs_reconnect')).toBe('connection_needs_reconnect');
    expect(refusalCode('sync', 'awaiting_credentials')).toBe('connection_awaiting_credentials');
  });

  it('refuses every action while the connection is provisioning (its workflow is not started yet)', () => {
    for (const action of ['authorize', 'set_credentials', 'sync', 'pause', 'resume', 'disconnect'] as const)
      expect(refusalCode(action, 'provisioning')).toBe('connection_provisioning');
  });
});
