import {
  commitsBefore,
  isoMicros,
  pipelineWatermark,
  RUNNING_HOLD_MS,
  updatedResumePoint,
  updatedSinceQuery,
} from '../../src/providers/bitbucket/cursors';
import { queryString } from '../../src/providers/bitbucket/urls';

describe('updatedSinceQuery', () => {
  it('writes the datetime unquoted, keeping the provider string and its microseconds', () => {
    expect(updatedSinceQuery('2024-01-01T00:00:00.123456+00:00')).toBe('updated_on > 2024-01-01T00:00:00.123456+00:00');
    expect(updatedSinceQuery('2024-01-01T00:00:00+02:00')).toBe('updated_on > 2024-01-01T00:00:00+02:00');
  });

  it('spells Z as +00:00, like the docs', () => {
    expect(updatedSinceQuery('2024-01-01T00:00:00.5Z')).toBe('updated_on > 2024-01-01T00:00:00.5+00:00');
  });

  it('refuses anything that is not a full datetime, however lenient Date.parse would be', () => {
    for (const bad of ['x" OR 1=1', '2024-01-01', '2024-01-01T00:00:00', 'updated_on > 2024-01-01T00:00:00Z']) {
      expect(() => updatedSinceQuery(bad)).toThrow(/Not an ISO-8601 datetime/);
    }
  });

  it('survives URL encoding: the offset "+" must not turn into a space', () => {
    const q = queryString({ q: updatedSinceQuery('2024-01-01T00:00:00.000000+00:00') });
    expect(q).toBe('q=updated_on%20%3E%202024-01-01T00%3A00%3A00.000000%2B00%3A00');
    expect(new URLSearchParams(q).get('q')).toBe('updated_on > 2024-01-01T00:00:00.000000+00:00');
  });
});

describe('queryString', () => {
  it('repeats array values and drops undefined ones', () => {
    expect(queryString({ state: ['OPEN', 'MERGED'], sort: 'updated_on', q: undefined, pagelen: 50 })).toBe(
      'state=OPEN&state=MERGED&sort=updated_on&pagelen=50',
    );
  });
});

describe('isoMicros', () => {
  it('tells apart instants that differ below a millisecond', () => {
    expect(isoMicros('2024-01-01T00:00:00.000002+00:00') - isoMicros('2024-01-01T00:00:00.000001+00:00')).toBe(1);
  });

  it('compares instants, not strings, across offsets', () => {
    expect(isoMicros('2024-01-01T02:00:00.000000+02:00')).toBe(isoMicros('2024-01-01T00:00:00Z'));
  });

  it('is NaN for missing or malformed values', () => {
    expect(isoMicros(undefined)).toBeNaN();
    expect(isoMicros('soon')).toBeNaN();
    expect(isoMicros('x 1=1')).toBeNaN();
  });
});

describe('updatedResumePoint', () => {
  const t = (n: number) => `2024-01-01T00:00:0${n}.000000+00:00`;

  it('is the newest value on the last page', () => {
    expect(updatedResumePoint([t(1), t(3), t(2)], false)).toBe(t(3));
  });

  it('stops short of the newest instant while more pages follow, so rows sharing it are not skipped', () => {
    expect(updatedResumePoint([t(1), t(2), t(3), t(3)], true)).toBe(t(2));
  });

  it('keeps the previous cursor when a page brings no progress', () => {
    expect(updatedResumePoint([t(3), t(3)], true, t(1))).toBe(t(1));
    expect(updatedResumePoint([t(3), t(3)], true)).toBeUndefined();
    expect(updatedResumePoint([], false, t(1))).toBe(t(1));
  });

  it('never moves backwards and ignores values that are not datetimes', () => {
    expect(updatedResumePoint([t(1), null, 'later'], false, t(2))).toBe(t(2));
  });
});

describe('pipelineWatermark', () => {
  it('is the newest pipeline when nothing is running', () => {
    expect(pipelineWatermark(1_000, undefined)).toBe(1_000);
  });

  it('stops just before the oldest running pipeline, so it is listed again', () => {
    expect(pipelineWatermark(5_000, 2_000)).toBe(1_999);
  });

  it('does not let a pipeline parked for longer than the hold window pin it forever', () => {
    const newest = 10 * RUNNING_HOLD_MS;
    expect(pipelineWatermark(newest, newest - RUNNING_HOLD_MS)).toBe(newest - RUNNING_HOLD_MS - 1);
    expect(pipelineWatermark(newest, newest - RUNNING_HOLD_MS - 1)).toBe(newest);
  });

  it('is undefined before any pipeline was seen', () => {
    expect(pipelineWatermark(undefined, undefined)).toBeUndefined();
  });
});

describe('commitsBefore', () => {
  const page = [{ hash: 'c' }, { hash: 'b' }, { hash: 'a' }];

  it('keeps everything newer than the stop hash and says it was reached', () => {
    expect(commitsBefore(page, 'b')).toEqual({ fresh: [{ hash: 'c' }], reached: true });
    expect(commitsBefore(page, 'c')).toEqual({ fresh: [], reached: true });
  });

  it('keeps the whole page when the stop hash is not on it (or there is none yet)', () => {
    expect(commitsBefore(page, 'z')).toEqual({ fresh: page, reached: false });
    expect(commitsBefore(page, undefined)).toEqual({ fresh: page, reached: false });
  });
});
