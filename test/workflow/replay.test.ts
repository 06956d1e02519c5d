import fs from 'node:fs';
import path from 'node:path';
import type { History } from '@temporalio/common/lib/proto-utils';
import { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker, type ReplayResult } from '@temporalio/worker';
import { FIXTURES_DIR, assertNoSecrets, historyFromFixture } from './record-histories';

/**
 * Determinism guard: every history in test/fixtures/histories (real server histories of the
 * connection workflow, written by `npm run histories:record`) is replayed against the workflow code
 * as it is now. A change to the commands the workflow issues (activities, timers, search-attribute
 * upserts, continue-as-new...) that is not guarded by `patched()` fails here, as it would fail every
 * running connection in production. Replay needs no server.
 */

const EventType = temporal.api.enums.v1.EventType;
type Event = temporal.api.history.v1.IHistoryEvent;

/**
 * The scenarios the fixture set must cover, each with what its history must show (so a fixture
 * recorded from the wrong path cannot pass for it). Fixtures with other names (e.g. recorded with
 * `--suffix` after a patched change) are replayed too.
 */
const REQUIRED: Record<string, (events: Event[]) => boolean> = {
  'first-sync': (e) => statuses(e).join() === 'awaiting_credentials,active' && completedActivities(e, 'completeRun') === 1,
  'first-sync-bitbucket': (e) => completedActivities(e, 'syncStep') === 7 && completedActivities(e, 'completeRun') === 1,
  'invalid-credential': (e) => failedActivities(e, 'activateCredential') === 1 && completedActivities(e, 'completeRun') === 1,
  park: (e) => statuses(e).at(-1) === 'needs_reconnect' && has(e, EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED),
  reconnect: (e) =>
    statuses(e).join() === 'awaiting_credentials,active,needs_reconnect,active' && completedActivities(e, 'completeRun') === 1,
  'sync-failed': (e) => completedActivities(e, 'failRun') === 1 && statuses(e).at(-1) === 'active',
  'rate-limited': (e) => syncStates(e).includes('rate_limited') && has(e, EventType.EVENT_TYPE_TIMER_FIRED),
  backfill: (e) => completedActivities(e, 'beginRun') === 2 && completedActivities(e, 'completeRun') === 2,
  'pause-resume': (e) => statuses(e).join() === 'awaiting_credentials,active,paused,active' && completedActivities(e, 'completeRun') === 2,
  'pause-during-sync': (e) =>
    has(e, EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED) &&
    statuses(e).includes('paused') &&
    completedActivities(e, 'completeRun') === 1,
  disconnect: (e) => statuses(e).at(-1) === 'disconnected' && last(e) === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
  'disconnect-during-sync': (e) =>
    has(e, EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED) && last(e) === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
  'continue-as-new-first-run': (e) => last(e) === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
  'continue-as-new-carried-run': (e) =>
    !!e[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId && completedActivities(e, 'completeRun') === 1,
  // Patched behaviour, recorded with --suffix=<patch id> (PATCHES in src/workflows/connection.ts).
  'provider-unavailable.sync-step-recovery': (e) =>
    patches(e).includes('sync-step-recovery') &&
    syncStates(e).includes('provider_unavailable') &&
    completedActivities(e, 'completeRun') === 1 &&
    completedActivities(e, 'failRun') === 0,
  'rate-limited-continue-as-new-first-run.wait-continue-as-new': (e) =>
    patches(e).includes('wait-continue-as-new') &&
    syncStates(e).at(-1) === 'rate_limited' &&
    completedActivities(e, 'completeRun') === 0 &&
    last(e) === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
  'rate-limited-continue-as-new-carried-run.wait-continue-as-new': (e) =>
    !!e[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId &&
    completedActivities(e, 'beginRun') === 0 &&
    completedActivities(e, 'completeRun') === 1,
  'pause-during-verification.attach-recheck-after-verify': (e) =>
    patches(e).includes('attach-recheck-after-verify') && statuses(e).at(-1) === 'paused',
  'disconnect-during-verification.disconnect-awaits-verification': (e) =>
    patches(e).includes('disconnect-awaits-verification') &&
    completedActivities(e, 'activateCredential') === 1 &&
    statuses(e).join() === 'awaiting_credentials,disconnected' &&
    last(e) === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
  'reattach-during-sync.park-current-credential-only': (e) =>
    patches(e).includes('park-current-credential-only') &&
    !statuses(e).includes('needs_reconnect') &&
    completedActivities(e, 'failRun') === 1 &&
    completedActivities(e, 'completeRun') === 1,
};

const files = fs
  .readdirSync(FIXTURES_DIR)
  .filter((f) => f.endsWith('.json'))
  .sort();
const histories = new Map<string, History>(
  files.map((f) => [path.basename(f, '.json'), historyFromFixture(JSON.parse(fs.readFileSync(path.join(FIXTURES_DIR, f), 'utf8')))]),
);
const results = new Map<string, ReplayResult>();
const timings = { bundleMs: 0, replayMs: 0 };
const quietLogger = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} };

beforeAll(async () => {
  try {
    // The SDK logs every (replay) worker start and the bundling at INFO; only problems belong here.
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch {
    // Already installed in this process.
  }
  let t0 = Date.now();
  // The current workflow code, bundled as the worker bundles it (src/workflows/index.ts).
  const workflowBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../../src/workflows'), logger: quietLogger });
  timings.bundleMs = Date.now() - t0;
  t0 = Date.now();
  // One replay worker for all histories, one after the other.
  const replay = Worker.runReplayHistories(
    { workflowBundle },
    [...histories].map(([name, history]) => ({ workflowId: name, history })),
  );
  for await (const result of replay) results.set(result.workflowId, result);
  timings.replayMs = Date.now() - t0;
}, 120_000);

afterAll(() => {
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  if (results.size) console.log(`[replay] bundled in ${s(timings.bundleMs)}, ${results.size} histories replayed in ${s(timings.replayMs)}`);
});

describe('recorded connection workflow histories', () => {
  it('cover every required scenario', () => {
    const missing = Object.keys(REQUIRED).filter((name) => !histories.has(name));
    expect(missing).toEqual([]);
  });

  it.each(Object.keys(REQUIRED))('%s shows what its scenario is about', (name) => {
    const history = histories.get(name);
    expect(history).toBeDefined();
    expect(REQUIRED[name]!(history!.events ?? [])).toBe(true);
  });

  it.each([...histories.keys()])('%s carries no secrets', (name) => {
    expect(() => assertNoSecrets(name, histories.get(name)!)).not.toThrow();
  });

  it.each([...histories.keys()])('%s replays deterministically against the current workflow code', (name) => {
    const result = results.get(name);
    expect(result).toBeDefined();
    // The error's name and message say which command diverged (e.g. "DeterminismViolationError: ... Nondeterminism").
    expect(result?.error ? `${result.error.name}: ${result.error.message}` : undefined).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------

const has = (events: Event[], type: temporal.api.enums.v1.EventType) => events.some((e) => e.eventType === type);
const last = (events: Event[]) => events.at(-1)?.eventType;

function decode(payload: temporal.api.common.v1.IPayload | null | undefined): unknown {
  return payload?.data ? JSON.parse(Buffer.from(payload.data).toString('utf8')) : undefined;
}

/** The values a search attribute took, in order, from the start event and every upsert (repeats collapsed). */
function upserted(events: Event[], key: string): string[] {
  const values = events
    .map(
      (e) =>
        (e.workflowExecutionStartedEventAttributes ?? e.upsertWorkflowSearchAttributesEventAttributes)?.searchAttributes?.indexedFields?.[
          key
        ],
    )
    .filter((p) => p)
    .map((p) => String(decode(p)));
  return values.filter((v, i) => v !== values[i - 1]);
}
const statuses = (events: Event[]) => upserted(events, 'ConnectionStatus');
/** The patch ids the history's markers record (patched() calls on a new path). */
const patches = (events: Event[]) =>
  events
    .map((e) => decode(e.markerRecordedEventAttributes?.details?.['patch-data']?.payloads?.[0]))
    .map((d) => (d as { id?: string })?.id ?? '');
const syncStates = (events: Event[]) => upserted(events, 'SyncState');

/** How many activities of this type ended in the given event type. */
function activitiesEndingIn(events: Event[], activityType: string, ending: temporal.api.enums.v1.EventType): number {
  const scheduled = new Map<string, string>();
  for (const e of events) {
    const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
    if (name) scheduled.set(String(e.eventId), name);
  }
  return events.filter((e) => {
    if (e.eventType !== ending) return false;
    const attrs = e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes;
    return scheduled.get(String(attrs?.scheduledEventId)) === activityType;
  }).length;
}
const completedActivities = (events: Event[], type: string) =>
  activitiesEndingIn(events, type, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED);
const failedActivities = (events: Event[], type: string) => activitiesEndingIn(events, type, EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED);
