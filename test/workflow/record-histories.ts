/**
 * Records real Temporal histories of the connection workflow into test/fixtures/histories/, for the
 * replay test (test/workflow/replay.test.ts) that proves a change to the workflow is still
 * deterministic against workflows already running.
 *
 *   npm run histories:record                        every scenario, as <scenario>.json
 *   npm run histories:record -- park reconnect      only these scenarios
 *   npm run histories:record -- --suffix=my-patch   as <scenario>.my-patch.json (after a patched() change)
 *   npm run histories:record -- --overwrite         replace existing files (only for histories no workflow
 *                                                   can still be running on: old fixtures guard old code paths)
 *
 * It starts its own throwaway dev server (in memory, headless, like the test suite's global setup)
 * and a worker that runs the real workflow code with deterministic fake activities: the histories
 * are the server's, so they hold exactly the commands the workflow issued. Activity arguments and
 * results are ids, statuses and timestamps only; each history is checked for secret-looking fields
 * before it is written.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { ApplicationFailure, Client, Connection, WorkflowUpdateFailedError } from '@temporalio/client';
import type { History } from '@temporalio/common/lib/proto-utils';
import * as proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { resolveTemporalCli } from '../../dev/temporal-cli';
import { startTemporalDevServer } from '../../dev/temporal-dev-server';
import type { Activities } from '../../src/activities';
import type { SyncStepResult } from '../../src/activities/sync';
import { workflowIdFor } from '../../src/db/connections';
import { PROVIDERS, syncTaskQueue, type ConnectionState, type Provider } from '../../src/domain/connection';
import { connectionStatusKey, providerKey, syncStateKey, tenantIdKey } from '../../src/temporal/search-attributes';
import type { connectionWorkflow } from '../../src/workflows/connection';
import { FailureTypes } from '../../src/domain/failures';
import {
  attachCredentialUpdate,
  disconnectUpdate,
  pauseUpdate,
  resumeUpdate,
  stateQuery,
  syncNowUpdate,
  type ConnectionWorkflowInput,
  type SyncRequest,
} from '../../src/workflows/messages';

export const FIXTURES_DIR = path.resolve(__dirname, '../fixtures/histories');
/** The production default (TEMPORAL_TASK_QUEUE), so the histories look like real ones. */
const TASK_QUEUE = 'conduit';
const IDENTITY = 'conduit-history-recorder';
/** Long enough that no scheduled sync fires while a scenario runs: syncs happen only when asked. */
const SYNC_INTERVAL_SECONDS = 3600;
/**
 * Low enough that a few syncs continue-as-new (WORKFLOW_MAX_HISTORY_EVENTS is 5000 in production),
 * high enough that the carried-on run records one whole sync before it would continue again.
 */
const CAN_MAX_HISTORY_EVENTS = 150;

// ---------------------------------------------------------------------------------------------
// Fake activities: deterministic, scripted per connection

/** What a scenario wants its connection's activities to do. Unscripted calls succeed. */
interface Script {
  /** A sync step's n-th call (0-based, per step) in this connection's life. */
  syncStep?: (step: string, call: number, conn: ConnectionFakes) => Promise<SyncStepResult | void>;
  activateCredential?: (credentialId: string, conn: ConnectionFakes) => Promise<void>;
}

/** One connection's fake world: its script, flags the scenario flips, and what was called. */
interface ConnectionFakes {
  script: Script;
  flags: Record<string, boolean>;
  stepCalls: Map<string, number>;
  completedRuns: number;
  failedRuns: number;
  /** Steps currently blocked until cancelled. */
  blocked: number;
}

const connections = new Map<string, ConnectionFakes>();
const fakesOf = (connectionId: string): ConnectionFakes => {
  const fakes = connections.get(connectionId);
  if (!fakes) throw new Error(`no scenario owns connection ${connectionId}`);
  return fakes;
};

/** The activities' contract (src/activities), with results shaped as the real ones return them. */
const fakeActivities: Activities = {
  publishState: async () => {},
  activateCredential: async (connectionId, credentialId) => {
    const fakes = fakesOf(connectionId);
    await fakes.script.activateCredential?.(credentialId, fakes);
    return { accountName: 'acme' };
  },
  beginRun: async () => {},
  syncStep: async (connectionId, _runId, step) => {
    const fakes = fakesOf(connectionId);
    const call = fakes.stepCalls.get(step) ?? 0;
    fakes.stepCalls.set(step, call + 1);
    return (await fakes.script.syncStep?.(step, call, fakes)) ?? { records: 3, requests: 1 };
  },
  completeRun: async (connectionId) => {
    fakesOf(connectionId).completedRuns += 1;
    return { finishedAt: new Date().toISOString() };
  },
  failRun: async (connectionId) => {
    fakesOf(connectionId).failedRuns += 1;
  },
  destroyCredentials: async () => {},
};

/** A step stuck on a slow page: heartbeats until the workflow cancels it (pause, disconnect). */
async function blockUntilCancelled(fakes: ConnectionFakes): Promise<never> {
  const ctx = Context.current();
  fakes.blocked += 1;
  const beat = setInterval(() => ctx.heartbeat(), 200);
  ctx.heartbeat();
  try {
    return await ctx.cancelled;
  } finally {
    clearInterval(beat);
    fakes.blocked -= 1;
  }
}

/** Failures as the real activities raise them, without a stack (it would only carry this machine's paths). */
function failure(type: string, message: string, details?: unknown[]): ApplicationFailure {
  const err = ApplicationFailure.create({ type, message, details, nonRetryable: true });
  err.stack = `ApplicationFailure: ${message}`;
  return err;
}

const authLost = () => failure(FailureTypes.authLost, 'Bitrise no longer accepts the token.', ['token_revoked']);

/** Holds an activity until the scenario sets `flag` (heartbeat-free: verification has no heartbeat timeout). */
async function until(fakes: ConnectionFakes, flag: string, what = flag): Promise<void> {
  fakes.flags[`${what}:waiting`] = true;
  while (!fakes.flags[flag]) await sleep(50);
}

// ---------------------------------------------------------------------------------------------
// Scenarios

interface Scenario {
  name: string;
  /** What the recorded histories show, for the summary. */
  covers: string;
  /** The fixtures it writes (without .json). Default: its name. */
  records?: string[];
  provider?: Provider;
  maxHistoryEvents?: number;
  script?: Script;
  drive(s: ScenarioContext): Promise<void>;
}

const SCENARIOS: Scenario[] = [
  {
    name: 'first-sync',
    covers: 'awaiting_credentials → attachCredential → active → one completed run (bitrise)',
    async drive(s) {
      await s.settle();
      await s.attach('cred-1');
      await s.syncsCompleted(1);
      await s.record('first-sync');
    },
  },
  {
    name: 'first-sync-bitbucket',
    covers: 'the same for a Bitbucket connection (its own resources and sync queue)',
    provider: 'bitbucket',
    async drive(s) {
      await s.attach('cred-1');
      await s.syncsCompleted(1);
      await s.record('first-sync-bitbucket');
    },
  },
  {
    name: 'invalid-credential',
    covers: 'a rejected credential (failed update, status unchanged), then a valid one and a run',
    script: {
      activateCredential: async (credentialId) => {
        if (credentialId === credentialIdFor('invalid-credential', 'bad'))
          throw failure(FailureTypes.invalidCredentials, 'Bitrise rejected the credential.');
      },
    },
    async drive(s) {
      await s.expectUpdateFailure(s.attach('bad'), FailureTypes.invalidCredentials);
      await s.waitForState((st) => st.status === 'awaiting_credentials');
      await s.attach('good');
      await s.syncsCompleted(1);
      await s.record('invalid-credential');
    },
  },
  {
    name: 'park',
    covers: 'a run whose access is lost (AuthLost in a step) → failRun → needs_reconnect, no timer',
    script: {
      syncStep: async (step) => {
        if (step === 'apps') throw authLost();
      },
    },
    async drive(s) {
      await s.attach('cred-1');
      await s.waitForState((st) => st.status === 'needs_reconnect' && s.fakes.failedRuns === 1);
      await s.record('park');
    },
  },
  {
    name: 'reconnect',
    covers: 'parked in needs_reconnect → attachCredential → active → a completed run',
    script: {
      syncStep: async (step, _call, fakes) => {
        if (step === 'apps' && !fakes.flags.authOk) throw authLost();
      },
    },
    async drive(s) {
      await s.attach('cred-1');
      await s.waitForState((st) => st.status === 'needs_reconnect' && s.fakes.failedRuns === 1);
      await s.settle();
      s.fakes.flags.authOk = true;
      await s.attach('cred-2');
      await s.syncsCompleted(1);
      await s.record('reconnect');
    },
  },
  {
    name: 'sync-failed',
    covers: 'a stalled run (failRun "stalled"), the connection stays active with lastError and a next sync',
    script: {
      syncStep: async (step) => {
        if (step === 'builds') throw failure(FailureTypes.stalled, 'No page committed for 15 minutes.');
      },
    },
    async drive(s) {
      await s.attach('cred-1');
      await s.waitForState((st) => st.lastError?.code === 'sync_stalled' && s.fakes.failedRuns === 1);
      await s.record('sync-failed');
    },
  },
  {
    name: 'rate-limited',
    covers: 'a step answering rateLimitedForMs: syncState rate_limited, a durable 2 s timer, the step again',
    script: {
      syncStep: async (step, call) => (step === 'apps' && call === 0 ? { records: 0, requests: 1, rateLimitedForMs: 2000 } : undefined),
    },
    async drive(s) {
      await s.attach('cred-1');
      await s.syncsCompleted(1);
      await s.record('rate-limited');
    },
  },
  {
    name: 'backfill',
    covers: 'a run, then syncNow { full: true, resources } → a second run with a backfill',
    async drive(s) {
      await s.attach('cred-1');
      await s.syncsCompleted(1);
      await s.syncNow({ full: true, resources: ['builds'] });
      await s.syncsCompleted(2);
      await s.record('backfill');
    },
  },
  {
    name: 'pause-resume',
    covers: 'a run, pause (no timer while paused), resume, syncNow → a second run',
    async drive(s) {
      await s.attach('cred-1');
      await s.syncsCompleted(1);
      await s.update('pause');
      await s.settle();
      await s.update('resume');
      await s.syncNow({});
      await s.syncsCompleted(2);
      await s.record('pause-resume');
    },
  },
  {
    name: 'pause-during-sync',
    covers: 'pause while a step runs: the run is cancelled (failRun non-cancellable), resume, a new run',
    script: { syncStep: async (step, call, fakes) => (step === 'builds' && call === 0 ? blockUntilCancelled(fakes) : undefined) },
    async drive(s) {
      await s.attach('cred-1');
      await s.waitFor(() => s.fakes.blocked === 1, 'the builds step to start');
      await s.update('pause');
      await s.waitForState((st) => st.status === 'paused' && st.currentRunId === null && s.fakes.failedRuns === 1);
      await s.settle();
      await s.update('resume');
      await s.syncNow({});
      await s.syncsCompleted(1);
      await s.record('pause-during-sync');
    },
  },
  {
    name: 'disconnect',
    covers: 'a run, then disconnect → destroyCredentials → disconnected, the workflow completes',
    async drive(s) {
      await s.attach('cred-1');
      await s.syncsCompleted(1);
      await s.update('disconnect');
      await s.record('disconnect');
    },
  },
  {
    name: 'disconnect-during-sync',
    covers: 'disconnect while a step runs: the run is cancelled, then credentials destroyed, completes',
    script: { syncStep: async (step, _call, fakes) => (step === 'builds' ? blockUntilCancelled(fakes) : undefined) },
    async drive(s) {
      await s.attach('cred-1');
      await s.waitFor(() => s.fakes.blocked === 1, 'the builds step to start');
      await s.update('disconnect');
      await s.record('disconnect-during-sync');
    },
  },
  {
    name: 'continue-as-new',
    records: ['continue-as-new-first-run', 'continue-as-new-carried-run'],
    covers: `maxHistoryEvents ${CAN_MAX_HISTORY_EVENTS}: the first run syncs until it continues as new; the carried-on run syncs once more`,
    maxHistoryEvents: CAN_MAX_HISTORY_EVENTS,
    async drive(s) {
      const firstRunId = s.firstRunId;
      await s.attach('cred-1');
      await s.syncsCompleted(1);
      await s.settle(firstRunId);
      // One sync at a time, each settled, so no update ever races the continue-as-new.
      while ((await s.latestRunId()) === firstRunId) {
        if (s.fakes.completedRuns >= 10) throw new Error('the first run never continued as new: lower CAN_MAX_HISTORY_EVENTS');
        const next = s.fakes.completedRuns + 1;
        await s.syncNow({});
        await s.syncsCompleted(next);
        await s.settle(firstRunId);
      }
      const carriedRunId = await s.latestRunId();
      await s.settle(carriedRunId);
      const before = s.fakes.completedRuns;
      await s.syncNow({});
      await s.syncsCompleted(before + 1);
      const carried = await s.settle(carriedRunId);
      if ((await s.latestRunId()) !== carriedRunId)
        throw new Error('the carried-on run continued as new again within one sync: raise CAN_MAX_HISTORY_EVENTS');
      const state = await s.state();
      if (state.status !== 'active' || state.lastSyncAt === null || state.revision < 10)
        throw new Error(`the carried-on run lost its state: ${JSON.stringify(state)}`);
      await s.record('continue-as-new-first-run', firstRunId);
      await s.record('continue-as-new-carried-run', carriedRunId, carried);
    },
  },
  // Patched behaviour (record with --suffix=<patch id>; see PATCHES in src/workflows/connection.ts).
  {
    name: 'provider-unavailable',
    covers: 'sync-step-recovery: a step answering providerUnavailableForMs (durable wait), then continue (runs again), then done',
    script: {
      syncStep: async (step, call) => {
        if (step !== 'apps') return undefined;
        if (call === 0) return { records: 0, requests: 3, providerUnavailableForMs: 1000 };
        if (call === 1) return { records: 3, requests: 2, continue: true };
        return undefined;
      },
    },
    async drive(s) {
      await s.attach('cred-1');
      await s.syncsCompleted(1);
      await s.record('provider-unavailable');
    },
  },
  {
    name: 'rate-limited-continue-as-new',
    records: ['rate-limited-continue-as-new-first-run', 'rate-limited-continue-as-new-carried-run'],
    covers:
      'wait-continue-as-new: a step rate limited again and again continues as new while waiting; the next run carries the same run on',
    maxHistoryEvents: CAN_MAX_HISTORY_EVENTS,
    script: {
      syncStep: async (step, call) => (step === 'apps' && call < 12 ? { records: 0, requests: 1, rateLimitedForMs: 300 } : undefined),
    },
    async drive(s) {
      const firstRunId = s.firstRunId;
      await s.attach('cred-1');
      await s.syncsCompleted(1);
      const first = await s.settle(firstRunId);
      const carriedRunId = first.events?.at(-1)?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId;
      if (!carriedRunId) throw new Error('the waits never continued as new: lower CAN_MAX_HISTORY_EVENTS or add waits');
      await s.record('rate-limited-continue-as-new-first-run', firstRunId, first);
      await s.record('rate-limited-continue-as-new-carried-run', carriedRunId);
    },
  },
  {
    name: 'pause-during-verification',
    covers: 'attach-recheck-after-verify: a pause while a second credential verifies; the attach answers paused and it stays paused',
    script: {
      activateCredential: async (credentialId, fakes) => {
        if (credentialId === credentialIdFor('pause-during-verification', 'cred-2')) await until(fakes, 'release', 'verify');
      },
    },
    async drive(s) {
      await s.attach('cred-1');
      await s.syncsCompleted(1);
      const attach = s.attach('cred-2');
      await s.waitFor(() => !!s.fakes.flags['verify:waiting'], 'the verification to start');
      await s.update('pause');
      s.fakes.flags.release = true;
      const answered = await attach;
      if (answered.status !== 'paused') throw new Error(`the attach undid the pause: ${answered.status}`);
      await s.record('pause-during-verification');
    },
  },
  {
    name: 'disconnect-during-verification',
    covers:
      'disconnect-awaits-verification: a disconnect while the credential verifies; credentials are wiped after it, the attach is refused',
    script: {
      activateCredential: async (_credentialId, fakes) => until(fakes, 'release', 'verify'),
    },
    async drive(s) {
      const attach = s.attach('cred-1');
      await s.waitFor(() => !!s.fakes.flags['verify:waiting'], 'the verification to start');
      const disconnect = s.update('disconnect');
      await sleep(500);
      s.fakes.flags.release = true;
      await s.expectUpdateFailure(attach, FailureTypes.refused);
      await disconnect;
      await s.record('disconnect-during-verification');
    },
  },
  {
    name: 'reattach-during-sync',
    covers:
      'park-current-credential-only: a new credential arrives while a step runs on the old one, whose auth failure then parks nothing',
    script: {
      syncStep: async (step, call, fakes) => {
        if (step === 'builds' && call === 0) {
          await until(fakes, 'reattached', 'step');
          throw authLost();
        }
        return undefined;
      },
    },
    async drive(s) {
      await s.attach('cred-1');
      await s.waitFor(() => !!s.fakes.flags['step:waiting'], 'the builds step to start');
      await s.attach('cred-2');
      s.fakes.flags.reattached = true;
      await s.syncsCompleted(1);
      const state = await s.state();
      if (state.status !== 'active') throw new Error(`parked by the old token: ${state.status}`);
      await s.record('reattach-during-sync');
    },
  },
];

// ---------------------------------------------------------------------------------------------
// Driving one scenario

/** Stable UUID-shaped ids per scenario, so re-recorded fixtures differ only where the server's data does. */
function stableUuid(...parts: string[]): string {
  const h = createHash('sha256')
    .update(['conduit-history', ...parts].join('\0'))
    .digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
const credentialIdFor = (scenario: string, label: string) => stableUuid(scenario, 'credential', label);

interface Recorded {
  file: string;
  events: number;
  last: string;
}

class ScenarioContext {
  readonly fakes: ConnectionFakes;
  readonly workflowId: string;
  firstRunId = '';
  readonly recorded: Recorded[] = [];

  constructor(
    private readonly client: Client,
    private readonly scenario: Scenario,
    private readonly fileSuffix: string,
    private readonly overwrite: boolean,
    readonly connectionId: string,
  ) {
    this.workflowId = workflowIdFor(connectionId);
    this.fakes = { script: scenario.script ?? {}, flags: {}, stepCalls: new Map(), completedRuns: 0, failedRuns: 0, blocked: 0 };
  }

  private handle(runId?: string) {
    return this.client.workflow.getHandle<typeof connectionWorkflow>(this.workflowId, runId);
  }

  async start(): Promise<void> {
    const provider = this.scenario.provider ?? 'bitrise';
    const tenantId = stableUuid(this.scenario.name, 'tenant');
    const input: ConnectionWorkflowInput = {
      connectionId: this.connectionId,
      tenantId,
      provider,
      syncIntervalSeconds: SYNC_INTERVAL_SECONDS,
      maxHistoryEvents: this.scenario.maxHistoryEvents ?? 5000,
    };
    // As the API starts it (src/api/connections-service.ts).
    const handle = await this.client.workflow.start<typeof connectionWorkflow>('connectionWorkflow', {
      workflowId: this.workflowId,
      taskQueue: TASK_QUEUE,
      args: [input],
      typedSearchAttributes: [
        { key: connectionStatusKey, value: 'awaiting_credentials' },
        { key: providerKey, value: provider },
        { key: tenantIdKey, value: tenantId },
        { key: syncStateKey, value: 'idle' },
      ],
    });
    this.firstRunId = handle.firstExecutionRunId;
  }

  state(): Promise<ConnectionState> {
    return this.handle().query(stateQuery);
  }

  async latestRunId(): Promise<string> {
    return (await this.handle().describe()).runId;
  }

  attach(label: string): Promise<ConnectionState> {
    return this.handle().executeUpdate(attachCredentialUpdate, { args: [{ credentialId: credentialIdFor(this.scenario.name, label) }] });
  }

  syncNow(request: SyncRequest): Promise<ConnectionState> {
    return this.handle().executeUpdate(syncNowUpdate, { args: [request] });
  }

  update(action: 'pause' | 'resume' | 'disconnect'): Promise<ConnectionState> {
    const def = { pause: pauseUpdate, resume: resumeUpdate, disconnect: disconnectUpdate }[action];
    return this.handle().executeUpdate(def);
  }

  async expectUpdateFailure(update: Promise<unknown>, type: string): Promise<void> {
    const err = await update.then(
      () => undefined,
      (e: unknown) => e,
    );
    const cause = err instanceof WorkflowUpdateFailedError ? err.cause : undefined;
    if (!(cause instanceof ApplicationFailure) || cause.type !== type) {
      throw new Error(`expected the update to fail with ${type}, got ${String(err)}`);
    }
  }

  async waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`[${this.scenario.name}] timed out waiting for ${what}`);
      await sleep(50);
    }
  }

  async waitForState(check: (state: ConnectionState) => boolean): Promise<void> {
    await this.waitFor(async () => check(await this.state()), `a state matching ${check.toString()}`);
  }

  async syncsCompleted(n: number): Promise<void> {
    await this.waitFor(() => this.fakes.completedRuns >= n, `${n} completed sync run(s)`);
    await this.waitForState((st) => st.currentRunId === null && st.lastSyncAt !== null);
  }

  /**
   * Waits until the run is at rest: closed, or blocked on a timer or condition with no workflow
   * task and no activity pending, and its history has stopped growing. Returns that history.
   */
  async settle(runId?: string): Promise<History> {
    const handle = this.handle(runId ?? this.firstRunId);
    const deadline = Date.now() + 60_000;
    let seen = -1;
    let stableSince = Date.now();
    for (;;) {
      const { raw, status } = await handle.describe();
      const history = await handle.fetchHistory();
      const count = history.events?.length ?? 0;
      const atRest = status.name !== 'RUNNING' || (!raw.pendingWorkflowTask && (raw.pendingActivities ?? []).length === 0);
      if (!atRest || count !== seen) {
        seen = count;
        stableSince = Date.now();
      } else if (Date.now() - stableSince >= 750) {
        return history;
      }
      if (Date.now() > deadline) throw new Error(`[${this.scenario.name}] run ${runId} did not come to rest`);
      await sleep(100);
    }
  }

  /** Settles the run (default: the latest) and writes its history as <name><suffix>.json. */
  async record(name: string, runId?: string, settled?: History): Promise<void> {
    if (!fixturesOf(this.scenario).includes(name)) throw new Error(`${this.scenario.name} does not declare ${name} in its records`);
    const run = runId ?? (await this.latestRunId());
    const history = settled ?? (await this.settle(run));
    assertNoSecrets(name, history);
    const file = fixturePath(name, this.fileSuffix);
    await fs.writeFile(file, historyToFixture(history), { flag: this.overwrite ? 'w' : 'wx' });
    const events = history.events ?? [];
    const last = proto.temporal.api.enums.v1.EventType[events.at(-1)?.eventType ?? 0]?.replace('EVENT_TYPE_', '') ?? '?';
    this.recorded.push({ file: path.basename(file), events: events.length, last });
  }
}

// ---------------------------------------------------------------------------------------------
// Fixture format: proto JSON, as `temporal workflow show --output json` and the SDK's historyToJSON write it

/*
 * The SDK's historyToJSON/historyFromJSON (@temporalio/common/lib/proto-utils) would do, but in this
 * install they throw "type must be a Type": @grpc/proto-loader keeps protobufjs 7 at the top of
 * node_modules, so @temporalio/common and @temporalio/proto each get a nested protobufjs 8 of their
 * own, and common's protojson rejects the types proto's copy built (an `instanceof` check). So the
 * same conversion (protojson's toJson/fromJson, pretty-printed) runs here with the protobufjs
 * that @temporalio/proto itself resolves. Worker.runReplayHistories takes the decoded History.
 */
interface ProtoJson {
  toJson(type: unknown, message: unknown): unknown;
  fromJson(type: unknown, json: unknown, options: { ignoreUnknownFields: boolean }): unknown;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const protojson = require(
  require.resolve('protobufjs/ext/protojson', { paths: [path.dirname(require.resolve('@temporalio/proto'))] }),
) as ProtoJson;
const historyType = (patchProtobufRoot(proto) as unknown as { lookupType(name: string): unknown }).lookupType(
  'temporal.api.history.v1.History',
);

/** A history as the JSON text of a fixture file. */
export function historyToFixture(history: History): string {
  const message = proto.temporal.api.history.v1.History.fromObject(history);
  return `${JSON.stringify(protojson.toJson(historyType, message), null, 2)}\n`;
}

/** A fixture file's parsed JSON as the History that Worker.runReplayHistories takes. */
export function historyFromFixture(json: unknown): History {
  if (typeof json !== 'object' || json === null || !Array.isArray((json as { events?: unknown }).events)) {
    throw new TypeError('not a history: expected an object with an array of events');
  }
  return protojson.fromJson(historyType, json, { ignoreUnknownFields: true }) as History;
}

// ---------------------------------------------------------------------------------------------
// No secrets in history

/** Field names that would mean a secret reached history (activity arguments and results are ids and numbers only). */
const SECRET_KEY = /secret|password|passphrase|token|authorization|cookie|ciphertext|private|apikey|api_key/i;
const SECRET_VALUE = /bearer\s|-----BEGIN|\bsk_[a-z]+_|"access_token"/i;

/** Decodes every payload in the history and refuses secret-looking keys or values. */
export function assertNoSecrets(name: string, history: History): void {
  const problems: string[] = [];
  const checkJson = (value: unknown, where: string): void => {
    if (Array.isArray(value)) value.forEach((v, i) => checkJson(v, `${where}[${i}]`));
    else if (value && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) {
        if (SECRET_KEY.test(k)) problems.push(`${where}.${k}`);
        checkJson(v, `${where}.${k}`);
      }
    } else if (typeof value === 'string' && SECRET_VALUE.test(value)) problems.push(`${where} = ${value}`);
  };
  const visit = (node: unknown, where: string): void => {
    if (!node || typeof node !== 'object') return;
    if (node instanceof Uint8Array) return;
    const payload = node as { data?: unknown; metadata?: Record<string, Uint8Array> };
    if (payload.data instanceof Uint8Array && payload.metadata && typeof payload.metadata === 'object') {
      const text = Buffer.from(payload.data).toString('utf8');
      try {
        checkJson(JSON.parse(text), where);
      } catch {
        if (SECRET_VALUE.test(text)) problems.push(where);
      }
      return;
    }
    for (const [k, v] of Object.entries(node)) visit(v, `${where}.${k}`);
  };
  (history.events ?? []).forEach((e, i) => visit(e, `event ${i + 1}`));
  if (problems.length) throw new Error(`${name}: secret-looking data in history:\n  ${problems.join('\n  ')}`);
}

// ---------------------------------------------------------------------------------------------
// Main

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fixturesOf = (scenario: Scenario) => scenario.records ?? [scenario.name];
const fixturePath = (name: string, suffix: string) => path.join(FIXTURES_DIR, `${name}${suffix}.json`);
const exists = (file: string) =>
  fs.access(file).then(
    () => true,
    () => false,
  );
const quietLogger = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} };

/** A mistake in how the recorder was called: reported without a stack. */
class UsageError extends Error {}

function parseArgs(argv: string[]): { names: string[]; suffix: string; overwrite: boolean } {
  const names: string[] = [];
  let suffix = '';
  let overwrite = false;
  for (const arg of argv) {
    if (arg === '--overwrite') overwrite = true;
    else if (arg.startsWith('--suffix=')) {
      const s = arg.slice('--suffix='.length);
      if (!/^[a-z0-9][a-z0-9._-]*$/i.test(s)) throw new UsageError(`--suffix must be a plain file-name part, got '${s}'`);
      suffix = `.${s}`;
    } else if (arg.startsWith('-')) throw new UsageError(`unknown option ${arg}`);
    else if (!SCENARIOS.some((s) => s.name === arg)) {
      throw new UsageError(`unknown scenario ${arg}; known: ${SCENARIOS.map((s) => s.name).join(', ')}`);
    } else names.push(arg);
  }
  return { names, suffix, overwrite };
}

async function main(): Promise<void> {
  const { names, suffix, overwrite } = parseArgs(process.argv.slice(2));
  const scenarios = names.length ? SCENARIOS.filter((s) => names.includes(s.name)) : SCENARIOS;
  await fs.mkdir(FIXTURES_DIR, { recursive: true });
  if (!overwrite) {
    const taken = [];
    for (const file of scenarios.flatMap(fixturesOf).map((name) => fixturePath(name, suffix))) {
      if (await exists(file)) taken.push(path.relative(process.cwd(), file));
    }
    if (taken.length) {
      throw new UsageError(
        `Already recorded: ${taken.join(', ')}.\nKeep them (workflows with those histories may still be running) and record new ones ` +
          `with --suffix=<patch-id>, or pass --overwrite if no workflow can have them any more.`,
      );
    }
  }
  const started = Date.now();

  Runtime.install({
    logger: new DefaultLogger('WARN', (entry) => {
      // Sync queues run activities only (as in src/worker.ts); the scenarios' failing activities fail on purpose.
      if (entry.message === 'No workflows registered, not polling for workflow tasks' || entry.message === 'Activity failed') return;
      console.error(`[worker] ${entry.level} ${entry.message}`);
    }),
  });
  const server = await startTemporalDevServer({ cliPath: await resolveTemporalCli(), uiPort: false });
  let connection: Connection | undefined;
  let nativeConnection: NativeConnection | undefined;
  try {
    console.log(`[record-histories] Temporal dev server at ${server.address}`);
    connection = await Connection.connect({ address: server.address });
    const client = new Client({ connection, identity: IDENTITY });
    nativeConnection = await NativeConnection.connect({ address: server.address });
    const workflowBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../../src/workflows'), logger: quietLogger });

    const common = { connection: nativeConnection, identity: IDENTITY, activities: fakeActivities } as const;
    const workers = [
      await Worker.create({ ...common, taskQueue: TASK_QUEUE, workflowBundle }),
      // Sync steps run on each provider's queue, as in src/worker.ts; heartbeats flush fast so a
      // cancelled step notices at once.
      ...(await Promise.all(
        PROVIDERS.map((p) => Worker.create({ ...common, taskQueue: syncTaskQueue(TASK_QUEUE, p), maxHeartbeatThrottleInterval: '200 ms' })),
      )),
    ];
    const runAll = workers.reduceRight<() => Promise<Recorded[]>>(
      (inner, worker) => () => worker.runUntil(inner),
      async () => {
        const recorded: Recorded[] = [];
        // One at a time: the machine is small and the timing-sensitive scenarios stay predictable.
        for (const scenario of scenarios) {
          const t0 = Date.now();
          const ctx = new ScenarioContext(client, scenario, suffix, overwrite, stableUuid(scenario.name, 'connection'));
          connections.set(ctx.connectionId, ctx.fakes);
          await ctx.start();
          await scenario.drive(ctx);
          if (!ctx.recorded.length) throw new Error(`${scenario.name} recorded nothing`);
          for (const r of ctx.recorded) console.log(`  ${r.file.padEnd(44)} ${String(r.events).padStart(4)} events, ends ${r.last}`);
          console.log(`    ${scenario.covers} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
          recorded.push(...ctx.recorded);
          // Leave nothing running that could fire later (the server goes away anyway).
          if ((await client.workflow.getHandle(ctx.workflowId).describe()).status.name === 'RUNNING') {
            await client.workflow.getHandle(ctx.workflowId).terminate('recorded');
          }
        }
        return recorded;
      },
    );
    const recorded = await runAll();
    console.log(
      `[record-histories] wrote ${recorded.length} histories to ${path.relative(process.cwd(), FIXTURES_DIR)} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  } finally {
    await nativeConnection?.close();
    await connection?.close();
    await server.stop();
  }
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err instanceof UsageError ? err.message : err);
      process.exit(1);
    },
  );
}
