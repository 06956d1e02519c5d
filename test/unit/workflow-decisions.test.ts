import { ActivityFailure, ApplicationFailure, CancelledFailure, RetryState, TimeoutFailure, TimeoutType } from '@temporalio/common';
import { FailureTypes } from '../../src/domain/failures';
import {
  backfillAfter,
  credentialArgumentProblem,
  credentialFailure,
  describeSyncFailure,
  isDue,
  nextSyncAfter,
  refusalOf,
  syncRequestProblem,
} from '../../src/workflows/decisions';

const AT = '2026-12-02T10:00:00.000Z';
const NOW = Date.parse(AT);

/** What the workflow sees when an activity fails: an ActivityFailure wrapping the cause. */
const fromActivity = (cause: Error) =>
  new ActivityFailure('activity failed', 'syncStep', '1', RetryState.NON_RETRYABLE_FAILURE, undefined, cause);

describe('refusalOf', () => {
  it('allows what the status allows', () => {
    expect(refusalOf('pause', 'active', false)).toBeNull();
    expect(refusalOf('resume', 'paused', false)).toBeNull();
  });

  it('refuses with the stable code and the action in its details', () => {
    const refused = refusalOf('sync', 'needs_reconnect', false)!;
    expect(refused.type).toBe(FailureTypes.refused);
    expect(refused.nonRetryable).toBe(true);
    expect(refused.details).toEqual(['connection_needs_reconnect', 'sync']);
  });

  it('refuses everything once a disconnect was asked for, whatever the status says', () => {
    expect(refusalOf('pause', 'active', true)?.details).toEqual(['connection_disconnected', 'pause']);
  });
});

describe('update arguments', () => {
  it('requires a credential id', () => {
    expect(credentialArgumentProblem({ credentialId: 'c1' })).toBeNull();
    for (const bad of [undefined, {}, { credentialId: '' }, { credentialId: 42 }]) {
      expect(credentialArgumentProblem(bad)?.type).toBe(FailureTypes.badRequest);
    }
  });

  it('names unknown resources and the known ones', () => {
    const problem = syncRequestProblem('bitrise', { full: true, resources: ['builds', 'pullRequests'] });
    expect(problem?.type).toBe(FailureTypes.badRequest);
    expect(problem?.message).toBe('Unknown bitrise resources: pullRequests. Known: organizations, apps, builds, pipelines.');
  });

  it('takes resources with a full sync only', () => {
    expect(syncRequestProblem('bitrise', { resources: ['builds'] })?.message).toMatch(/full sync only/);
    expect(syncRequestProblem('bitrise', { full: true, resources: ['builds'] })).toBeNull();
    expect(syncRequestProblem('bitrise', undefined)).toBeNull();
  });
});

describe('backfillAfter', () => {
  it('owes every resource for a full sync without a list, once each', () => {
    expect(backfillAfter('bitrise', ['apps'], { full: true })).toEqual(['apps', 'organizations', 'builds', 'pipelines']);
  });

  it('adds only the named resources, and nothing for an incremental sync', () => {
    expect(backfillAfter('bitbucket', ['commits'], { full: true, resources: ['pipelines', 'commits'] })).toEqual(['commits', 'pipelines']);
    expect(backfillAfter('bitbucket', ['commits'], {})).toEqual(['commits']);
  });
});

describe('scheduling', () => {
  it('is due when never scheduled or when the time has come', () => {
    expect(isDue(null, NOW)).toBe(true);
    expect(isDue(AT, NOW)).toBe(true);
    expect(isDue('2026-12-02T10:00:00.001Z', NOW)).toBe(false);
  });

  it('schedules one interval after the last sync, never in the past', () => {
    expect(nextSyncAfter('2026-12-02T09:30:00.000Z', 3600, NOW)).toBe('2026-12-02T10:30:00.000Z');
    expect(nextSyncAfter('2026-12-01T00:00:00.000Z', 3600, NOW)).toBe(AT);
    expect(nextSyncAfter(null, 60, NOW)).toBe('2026-12-02T10:01:00.000Z');
  });
});

describe('describeSyncFailure', () => {
  it('parks on lost access, with the code the activity gave', () => {
    const failure = describeSyncFailure(
      fromActivity(
        ApplicationFailure.create({ type: FailureTypes.authLost, message: 'gone', details: ['refresh_failed'], nonRetryable: true }),
      ),
      AT,
    );
    expect(failure).toEqual({
      error: { code: 'refresh_failed', message: 'gone', at: AT },
      authLost: true,
      stalled: false,
      cancelled: false,
    });
  });

  it('tells a stall from a failure, including a heartbeat timeout', () => {
    expect(describeSyncFailure(fromActivity(ApplicationFailure.create({ type: FailureTypes.stalled, message: 's' })), AT).stalled).toBe(
      true,
    );
    const timedOut = describeSyncFailure(fromActivity(new TimeoutFailure('heartbeat', undefined, TimeoutType.HEARTBEAT)), AT);
    expect(timedOut.error.code).toBe('sync_stalled');
    expect(timedOut.stalled).toBe(true);
  });

  it('maps provider trouble and rate limits to their codes without parking', () => {
    for (const [type, code] of [
      [FailureTypes.providerUnavailable, 'provider_unavailable'],
      [FailureTypes.providerProtocol, 'provider_protocol_error'],
      [FailureTypes.rateLimited, 'rate_limited'],
      ['SomethingElse', 'sync_failed'],
    ] as const) {
      const failure = describeSyncFailure(fromActivity(ApplicationFailure.create({ type, message: 'm' })), AT);
      expect(failure.error.code).toBe(code);
      expect(failure.authLost).toBe(false);
    }
  });

  it('marks cancellation (pause, disconnect) so no error is shown', () => {
    const failure = describeSyncFailure(new CancelledFailure('cancelled'), AT);
    expect(failure.cancelled).toBe(true);
    expect(failure.error.code).toBe('sync_cancelled');
  });
});

describe('credentialFailure', () => {
  it('keeps a refusal by the provider as invalid credentials', () => {
    const failure = credentialFailure(
      fromActivity(ApplicationFailure.create({ type: FailureTypes.invalidCredentials, message: 'Bitrise rejected the credential.' })),
    );
    expect(failure.type).toBe(FailureTypes.invalidCredentials);
    expect(failure.message).toBe('Bitrise rejected the credential.');
  });

  it('turns anything else into a provider outage the customer may retry', () => {
    expect(credentialFailure(fromActivity(new Error('ECONNRESET'))).type).toBe(FailureTypes.providerUnavailable);
  });
});
