import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { z } from 'zod';
import type { AccessBroker } from '../../src/credentials/access';
import type { Sql } from '../../src/db/sql';
import type { ProviderAdapter } from '../../src/providers/adapter';
import { ProviderError } from '../../src/providers/errors';
import type { Provider } from '../../src/providers/manifests';
import type { BudgetAnswer, RequestBudget } from '../../src/sync/rate-bucket';
import {
  BudgetWaitError,
  createSyncContext,
  isRetryableInPlace,
  requestRetryDelayMs,
  type RequestRetryPolicy,
  type SyncContext,
} from '../../src/sync/context';

/**
 * Idempotent GETs retry transient faults in place (5xx, resets, bodies that are not JSON) and wait
 * out short 429s, so one bad answer costs a short wait, not the step's attempt; and each request
 * waits for its token of the shared budget without that wait counting as a stall. Against a real
 * HTTP server answering from a script; the shared budget (Postgres, see
 * test/integration/rate-bucket.test.ts) is replaced by a scripted one: always a token unless a test says.
 */

type Answer = number | 'reset' | 'not-json' | { status: 429; retryAfter: string };

let server: http.Server;
let baseUrl: string;
let script: Answer[] = [];
let served = 0;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    served += 1;
    const answer = script.shift() ?? 200;
    if (answer === 'reset') return req.socket.destroy();
    if (answer === 'not-json') return res.writeHead(200, { 'content-type': 'text/html' }).end('<html>proxy error</html>');
    if (typeof answer === 'object') return res.writeHead(429, { 'retry-after': answer.retryAfter }).end('{}');
    if (answer !== 200) return res.writeHead(answer, { 'content-type': 'application/json' }).end('{"error":{"message":"boom"}}');
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"data":[1,2,3]}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  script = [];
  served = 0;
});

const FAST: RequestRetryPolicy = { maxAttempts: 6, maxTotalMs: 10_000, baseDelayMs: 5, maxDelayMs: 20 };
const page = z.object({ data: z.array(z.number()) });

/** A budget answering from a script (a token at once once it runs out), counting what it is asked. */
function scriptedBudget(answers: BudgetAnswer[] = []) {
  const calls = { take: 0, giveBack: 0, leave: 0 };
  const budget: RequestBudget = {
    take: async () => {
      calls.take += 1;
      return answers.shift() ?? { granted: true, waitMs: 0, againMs: 0 };
    },
    giveBack: async () => void calls.giveBack++,
    leave: async () => void calls.leave++,
  };
  return { budget, calls };
}

interface ContextSetup {
  budget?: RequestBudget;
  stallTimeoutSeconds?: number;
  maxInlineRateLimitWaitMs?: number;
  /** Called with the activity environment once the context runs (to cancel it). */
  onStart?: (env: MockActivityEnvironment) => void;
}

async function withContext<T>(
  fn: (ctx: SyncContext) => Promise<T>,
  retry: RequestRetryPolicy = FAST,
  setup: ContextSetup = {},
): Promise<{ value?: T; error?: unknown; ctx: SyncContext }> {
  const sql = (async () => []) as unknown as Sql;
  const broker = { withAccess: (_c: string, _p: string, f: (token: string) => Promise<unknown>) => f('token') } as unknown as AccessBroker;
  const adapter = {
    apiUrl: baseUrl,
    manifest: { id: 'bitrise', displayName: 'Bitrise' },
    authHeaders: () => ({}),
    requestsPerHour: 3_600_000,
    createStore: () => ({}),
  } as unknown as ProviderAdapter<Provider, unknown>;
  const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
  let ctx: (SyncContext & { dispose(): void }) | undefined;
  try {
    const value = await env.run(async () => {
      ctx = createSyncContext({
        sql,
        broker,
        adapter,
        connectionId: 'c',
        runId: 'r',
        budget: setup.budget ?? scriptedBudget().budget,
        stallTimeoutSeconds: setup.stallTimeoutSeconds ?? 600,
        retry,
        maxInlineRateLimitWaitMs: setup.maxInlineRateLimitWaitMs ?? 60_000,
        rateLimitBackoffMs: 10,
      });
      setup.onStart?.(env);
      return fn(ctx);
    });
    return { value: value as T, ctx: ctx! };
  } catch (error) {
    return { error, ctx: ctx! };
  } finally {
    ctx?.dispose();
  }
}

describe('ctx.get retries in place', () => {
  it('retries 5xx, a reset connection and a body that is not JSON, then returns the page', async () => {
    script = [500, 'reset', 503, 'not-json'];
    const { value, ctx, error } = await withContext((ctx) => ctx.get(`${baseUrl}/apps`, page));
    expect(error).toBeUndefined();
    expect(value).toEqual({ data: [1, 2, 3] });
    expect(served).toBe(5);
    expect(ctx.stats).toMatchObject({ requests: 5, retries: 4 });
  });

  it('gives up after its attempts and throws the transient fault for the step to handle', async () => {
    script = Array<Answer>(10).fill(502);
    const { error, ctx } = await withContext((ctx) => ctx.get(`${baseUrl}/apps`, page), { ...FAST, maxAttempts: 3 });
    expect(error).toBeInstanceOf(ProviderError);
    expect((error as ProviderError).kind).toBe('transient');
    expect(served).toBe(3);
    expect(ctx.stats.retries).toBe(2);
  });

  it('gives up once its time budget is spent', async () => {
    script = Array<Answer>(50).fill(500);
    const started = Date.now();
    const { error } = await withContext((ctx) => ctx.get(`${baseUrl}/apps`, page), {
      maxAttempts: 50,
      maxTotalMs: 300,
      baseDelayMs: 100,
      maxDelayMs: 100,
    });
    expect((error as ProviderError).kind).toBe('transient');
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(served).toBeLessThan(10);
  });

  it('does not retry what a retry cannot fix: 4xx, or a body that does not match the schema', async () => {
    script = [400];
    expect(((await withContext((ctx) => ctx.get(`${baseUrl}/apps`, page))).error as ProviderError).kind).toBe('bad_request');
    expect(served).toBe(1);
    served = 0;
    const { error } = await withContext((ctx) => ctx.get(`${baseUrl}/apps`, z.object({ other: z.string() })));
    expect(error).toBeInstanceOf(ProviderError);
    expect(served).toBe(1);
  });

  it('waits out a dozen short 429s in place without spending any attempt', async () => {
    script = Array<Answer>(12).fill({ status: 429, retryAfter: '0' });
    const { value, ctx, error } = await withContext((ctx) => ctx.get(`${baseUrl}/apps`, page), { ...FAST, maxAttempts: 2 });
    expect(error).toBeUndefined();
    expect(value).toEqual({ data: [1, 2, 3] });
    expect(ctx.stats).toMatchObject({ rateLimitWaits: 12, retries: 0, requests: 13 });
  });

  it('hands a long 429 wait back with how long to wait', async () => {
    script = [{ status: 429, retryAfter: '120' }];
    const { error } = await withContext((ctx) => ctx.get(`${baseUrl}/apps`, page));
    expect(error).toBeInstanceOf(ProviderError);
    expect(error).toMatchObject({ kind: 'rate_limited', retryAfterMs: 120_000 });
  });
});

describe('pacing by the shared budget', () => {
  const get = (ctx: SyncContext) => ctx.get(`${baseUrl}/apps`, page);

  it('a refusal within the longest wait in place is waited out, holding no token, then the request goes', async () => {
    const { budget, calls } = scriptedBudget([{ granted: false, againMs: 20 }]);
    const { value, error } = await withContext(get, FAST, { budget, maxInlineRateLimitWaitMs: 1_000 });
    expect(error).toBeUndefined();
    expect(value).toEqual({ data: [1, 2, 3] });
    expect(calls).toEqual({ take: 2, giveBack: 0, leave: 0 });
    expect(served).toBe(1);
  });

  it('a longer refusal ends the step for the workflow’s durable sleep, with nothing sent and nothing taken', async () => {
    const { budget, calls } = scriptedBudget([{ granted: false, againMs: 90_000 }]);
    const { error } = await withContext(get, FAST, { budget, maxInlineRateLimitWaitMs: 60_000 });
    expect(error).toBeInstanceOf(BudgetWaitError);
    expect((error as BudgetWaitError).waitMs).toBe(90_000);
    expect(calls.take).toBe(1);
    expect(served).toBe(0);
  });

  it('after a grant, the next request does not ask before its share has a token for it', async () => {
    const { budget, calls } = scriptedBudget([{ granted: true, waitMs: 0, againMs: 120_000 }]);
    const { ctx, error } = await withContext(
      async (ctx) => {
        await get(ctx);
        await get(ctx);
      },
      FAST,
      { budget, maxInlineRateLimitWaitMs: 60_000 },
    );
    expect(error).toBeInstanceOf(BudgetWaitError);
    expect((error as BudgetWaitError).waitMs).toBeGreaterThan(60_000);
    expect(calls.take).toBe(1);
    expect(ctx.stats.requests).toBe(1);
  });

  it('waiting for the budget longer than the stall timeout is not a stall', async () => {
    // Before each of three requests, a wait of three times the (1 s) stall timeout in all.
    const { budget } = scriptedBudget([
      { granted: false, againMs: 1_000 },
      { granted: true, waitMs: 1_000, againMs: 1_000 },
      { granted: true, waitMs: 1_000, againMs: 0 },
      { granted: true, waitMs: 0, againMs: 0 },
    ]);
    const { error, ctx } = await withContext(
      async (ctx) => {
        for (let i = 0; i < 3; i++) await get(ctx);
      },
      FAST,
      { budget, stallTimeoutSeconds: 1, maxInlineRateLimitWaitMs: 5_000 },
    );
    expect(error).toBeUndefined();
    expect(ctx.stats.requests).toBe(3);
  });

  it('a cancelled wait (pause, disconnect) gives its token back and sends nothing', async () => {
    const { budget, calls } = scriptedBudget([{ granted: true, waitMs: 30_000, againMs: 30_000 }]);
    const { error } = await withContext(get, FAST, {
      budget,
      onStart: (env) => setTimeout(() => env.cancel(), 100),
    });
    expect(error).toBeDefined();
    expect(calls.giveBack).toBe(1);
    expect(served).toBe(0);
  });
});

describe('the in-place retry rules', () => {
  const policy: RequestRetryPolicy = { maxAttempts: 8, maxTotalMs: 120_000, baseDelayMs: 250, maxDelayMs: 15_000 };

  it('backs off exponentially with jitter, up to a cap', () => {
    expect(requestRetryDelayMs(1, policy, () => 0)).toBe(125);
    expect(requestRetryDelayMs(1, policy, () => 1)).toBe(250);
    expect(requestRetryDelayMs(3, policy, () => 1)).toBe(1000);
    expect(requestRetryDelayMs(20, policy, () => 1)).toBe(15_000);
    for (let n = 1; n < 10; n++) {
      const d = requestRetryDelayMs(n, policy);
      const ceiling = Math.min(15_000, 250 * 2 ** (n - 1));
      expect(d).toBeGreaterThanOrEqual(ceiling / 2);
      expect(d).toBeLessThanOrEqual(ceiling);
    }
  });

  it('retries transient faults only', () => {
    expect(isRetryableInPlace(new ProviderError('transient', 'x'))).toBe(true);
    for (const kind of ['rate_limited', 'unauthorized', 'forbidden', 'not_found', 'bad_request'] as const)
      expect(isRetryableInPlace(new ProviderError(kind, 'x'))).toBe(false);
    expect(isRetryableInPlace(new Error('x'))).toBe(false);
  });
});
