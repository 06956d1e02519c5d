import { z } from 'zod';
import { acceptRecords } from '../../src/sync/records';

const schema = z.looseObject({ uuid: z.string().min(1), state: z.string(), n: z.int() });

describe('acceptRecords', () => {
  it('keeps the valid records and quarantines the rest with their id and reason', () => {
    const { accepted, rejects } = acceptRecords(
      'pullRequests',
      [{ uuid: 'a', state: 'OPEN', n: 1, extra: true }, { uuid: 'b', state: null, n: 2 }, { state: 'OPEN', n: 1.5 }, null],
      schema,
    );
    expect(accepted).toEqual([{ uuid: 'a', state: 'OPEN', n: 1, extra: true }]);
    expect(rejects.map((r) => [r.resource, r.recordId])).toEqual([
      ['pullRequests', 'b'],
      ['pullRequests', null],
      ['pullRequests', null],
    ]);
    expect(rejects[0]!.reason).toMatch(/^state: /);
    expect(rejects[0]!.raw).toEqual({ uuid: 'b', state: null, n: 2 });
  });

  it('keys a record without an id by its payload, so the same bad record is one reject', () => {
    const once = acceptRecords('builds', [{ n: 'x' }], schema).rejects[0]!;
    const again = acceptRecords('builds', [{ n: 'x' }], schema).rejects[0]!;
    expect(once.recordKey).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(again.recordKey).toBe(once.recordKey);
    expect(acceptRecords('builds', [{ n: 'y' }], schema).rejects[0]!.recordKey).not.toBe(once.recordKey);
  });
});
