import { isUnreachable, startWhenReachable } from '../../src/startup';

const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });

describe('isUnreachable', () => {
  test.each([
    ['a refused socket', refused()],
    ['Postgres starting up', Object.assign(new Error('the database system is starting up'), { code: '57P03' })],
    ['postgres.js connect timeout', Object.assign(new Error('write CONNECT_TIMEOUT'), { code: 'CONNECT_TIMEOUT' })],
    ['gRPC UNAVAILABLE', Object.assign(new Error('14 UNAVAILABLE: No connection established'), { code: 14 })],
    ['the native connection', Object.assign(new Error('Failed to call GetSystemInfo'), { name: 'TransportError' })],
    ['the client connection', new Error('Failed to connect before the deadline')],
    ['a wrapped cause', new Error('start failed', { cause: refused() })],
  ])('%s is unreachable', (_, err) => expect(isUnreachable(err)).toBe(true));

  test.each([
    ['bad credentials', Object.assign(new Error('password authentication failed for user "conduit"'), { code: '28P01' })],
    ['a missing table', Object.assign(new Error('relation "tenants" does not exist'), { code: '42P01' })],
    ['a plain bug', new TypeError("Cannot read properties of undefined (reading 'x')")],
    ['not an error', 'ECONNREFUSED?'],
  ])('%s is not', (_, err) => expect(isUnreachable(err)).toBe(false));
});

describe('startWhenReachable', () => {
  const fast = { baseDelayMs: 1, maxDelayMs: 4 };

  test('tries again while unreachable, reporting each wait, and returns what the start returned', async () => {
    let calls = 0;
    const waits: number[] = [];
    const result = await startWhenReachable(
      async () => {
        calls += 1;
        if (calls < 4) throw refused();
        return 'up';
      },
      { ...fast, onWait: ({ delayMs }) => waits.push(delayMs) },
    );
    expect(result).toBe('up');
    expect(calls).toBe(4);
    expect(waits).toEqual([1, 2, 4]);
  });

  test('an error that waiting cannot fix is thrown at once', async () => {
    let calls = 0;
    const denied = Object.assign(new Error('password authentication failed'), { code: '28P01' });
    await expect(
      startWhenReachable(async () => {
        calls += 1;
        throw denied;
      }, fast),
    ).rejects.toBe(denied);
    expect(calls).toBe(1);
  });

  test('gives up with the last error once the next wait would pass the timeout', async () => {
    let calls = 0;
    await expect(
      startWhenReachable(
        async () => {
          calls += 1;
          throw refused();
        },
        { baseDelayMs: 20, maxDelayMs: 20, timeoutMs: 50 },
      ),
    ).rejects.toThrow('ECONNREFUSED');
    expect(calls).toBeGreaterThanOrEqual(2);
    expect(calls).toBeLessThanOrEqual(3);
  });
});
