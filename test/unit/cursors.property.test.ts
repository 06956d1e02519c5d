import fc from 'fast-check';
import {
  commitsBefore,
  isoMicros,
  pipelinesPageSeen,
  pipelineWatermark,
  readPipelinesCursor,
  updatedResumePoint,
  updatedSinceQuery,
} from '../../src/providers/bitbucket/cursors';
import {
  buildsCursor,
  listUrl,
  newestBuildSeconds,
  pipelinesCursor,
  pipelinesSeen,
  readNewestFirstCursor,
} from '../../src/providers/bitrise/cursors';

/**
 * Property tests of every cursor rule of both providers: no rule yields NaN, null or Infinity
 * whatever the page holds (fields missing, null, unparseable, unicode, duplicates, huge or empty
 * pages, instants older than the cursor), and a cursor never moves back past what was committed.
 */

const ms = fc.integer({ min: Date.UTC(2000, 0, 1), max: Date.UTC(2100, 0, 1) });
const micros = fc
  .tuple(ms, fc.integer({ min: 0, max: 999 }))
  .map(([t, us]) => new Date(t).toISOString().replace(/Z$/, `${String(us).padStart(3, '0')}+00:00`));
const junk = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 30 }),
  fc.constant(null),
  fc.constant(undefined),
  fc.constant('2024-02-30T00:00:00Z'),
);
const maybeInstant = fc.oneof({ weight: 4, arbitrary: micros }, { weight: 1, arbitrary: junk });
const finiteOrUndefined = (v: unknown) => v === undefined || (typeof v === 'number' && Number.isFinite(v));
const noBadNumbers = (value: unknown) => {
  const text = JSON.stringify(value);
  expect(text).not.toMatch(/null|NaN|Infinity/);
};

describe('Bitbucket cursors (properties)', () => {
  it('updatedResumePoint is a value of the page or the previous cursor, never behind the previous one', () => {
    fc.assert(
      fc.property(
        fc.array(maybeInstant, { maxLength: 200 }),
        fc.boolean(),
        fc.option(micros, { nil: undefined }),
        (page, more, previous) => {
          const resume = updatedResumePoint(page, more, previous);
          if (resume === undefined) return expect(previous).toBeUndefined();
          expect(resume === previous || page.includes(resume)).toBe(true);
          expect(Number.isFinite(isoMicros(resume))).toBe(true);
          if (previous !== undefined) expect(isoMicros(resume)).toBeGreaterThanOrEqual(isoMicros(previous));
          // Mid-listing, rows sharing the page's newest instant are never skipped.
          const newest = Math.max(...page.map(isoMicros).filter(Number.isFinite));
          if (more && resume !== previous) expect(isoMicros(resume)).toBeLessThan(newest);
          // Whatever it is, it makes a valid query.
          expect(updatedSinceQuery(resume)).toMatch(/^updated_on > \d{4}-\d\d-\d\dT[\d:.]+(\+|-)\d\d:\d\d$/);
        },
      ),
    );
  });

  it('updatedSinceQuery lets nothing but a datetime into the query language', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (s) => {
        let q: string | undefined;
        try {
          q = updatedSinceQuery(s);
        } catch {
          return;
        }
        expect(q).toMatch(/^updated_on > [\d\-T:.+]+$/);
      }),
    );
  });

  it('isoMicros orders instants as Date does, to the microsecond, and is NaN only for non-datetimes', () => {
    fc.assert(
      fc.property(micros, micros, (a, b) => {
        const [ta, tb] = [isoMicros(a), isoMicros(b)];
        expect(Number.isFinite(ta) && Number.isFinite(tb)).toBe(true);
        if (Date.parse(a) < Date.parse(b)) expect(ta).toBeLessThan(tb);
      }),
    );
    fc.assert(fc.property(junk, (s) => expect(typeof isoMicros(s)).toBe('number')));
  });

  it('pipelinesPageSeen never yields NaN, and the watermark never passes the newest pipeline', () => {
    const pipeline = fc.record({ createdOn: maybeInstant, running: fc.boolean() });
    fc.assert(
      fc.property(
        fc.array(pipeline, { maxLength: 300 }),
        fc.option(ms, { nil: undefined }),
        fc.option(ms, { nil: undefined }),
        fc.option(ms, { nil: undefined }),
        (page, newest, oldestRunning, after) => {
          const seen = pipelinesPageSeen({ newest, oldestRunning }, page, after);
          expect(finiteOrUndefined(seen.newest)).toBe(true);
          expect(finiteOrUndefined(seen.oldestRunning)).toBe(true);
          if (newest !== undefined) expect(seen.newest).toBeGreaterThanOrEqual(newest);
          const w = pipelineWatermark(seen.newest, seen.oldestRunning);
          expect(finiteOrUndefined(w)).toBe(true);
          if (w !== undefined) expect(w).toBeLessThanOrEqual(seen.newest!);
          noBadNumbers({ after: w });
        },
      ),
    );
  });

  it('a stored pipelines cursor is cleaned of anything that is not a finite number', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (stored) => {
        const c = readPipelinesCursor(stored);
        for (const v of Object.values(c)) expect(Number.isFinite(v)).toBe(true);
        noBadNumbers(c);
      }),
    );
    expect(readPipelinesCursor({ after: null, page: 3, newest: 'x' })).toEqual({ page: 3 });
  });

  it('commitsBefore stops exactly at the stored hash, duplicates and all', () => {
    const hash = fc.stringMatching(/^[0-9a-f]{7,12}$/);
    fc.assert(
      fc.property(fc.array(hash, { maxLength: 200 }), fc.option(hash, { nil: undefined }), (hashes, stopAt) => {
        const { fresh, reached } = commitsBefore(
          hashes.map((h) => ({ hash: h })),
          stopAt,
        );
        expect(reached).toBe(stopAt !== undefined && hashes.includes(stopAt));
        expect(fresh.map((c) => c.hash)).toEqual(reached ? hashes.slice(0, hashes.indexOf(stopAt!)) : hashes);
      }),
    );
  });
});

describe('Bitrise cursors (properties)', () => {
  const isoSeconds = ms.map((t) => new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z'));
  const maybeSeconds = fc.oneof({ weight: 4, arbitrary: isoSeconds }, { weight: 1, arbitrary: junk });

  it('newestBuildSeconds never goes backwards and never yields NaN: a build without a parseable triggered_at is left out', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4_102_444_800 }), fc.array(maybeSeconds, { maxLength: 300 }), (previous, page) => {
        const newest = newestBuildSeconds(previous, page);
        expect(Number.isInteger(newest)).toBe(true);
        expect(newest).toBeGreaterThanOrEqual(previous);
        const parsed = page.map((t) => (typeof t === 'string' ? Date.parse(t) : NaN)).filter(Number.isFinite);
        expect(newest).toBe(Math.max(previous, ...parsed.map((t) => Math.floor(t / 1000))));
      }),
    );
    expect(buildsCursor(undefined, undefined, newestBuildSeconds(0, [null, 'not a date']))).toEqual({ after: 0 });
  });

  it('buildsCursor holds no null, NaN or empty next', () => {
    fc.assert(
      fc.property(
        fc.option(fc.nat(), { nil: undefined }),
        fc.option(fc.option(fc.string({ maxLength: 20 }), { nil: null }), { nil: undefined }),
        fc.nat(),
        (after, next, newest) => {
          const c = buildsCursor(after, next, newest);
          noBadNumbers(c);
          if (next) expect(c).toEqual({ after, next, newest });
          else expect(c).toEqual({ after: newest });
        },
      ),
    );
  });

  it('the pipelines cursor is finite, and holds the watermark back to just before the oldest running pipeline', () => {
    const pipeline = fc.record({ triggered_at: fc.oneof(maybeInstant, maybeSeconds), finished_at: fc.option(isoSeconds, { nil: null }) });
    fc.assert(
      fc.property(
        fc.array(fc.array(pipeline, { maxLength: 60 }), { maxLength: 5 }),
        fc.option(ms, { nil: undefined }),
        fc.option(fc.string({ minLength: 1, maxLength: 30 }), { nil: undefined }),
        (pages, after, before) => {
          let seen = { newest: after ?? 0, oldestRunning: Number.POSITIVE_INFINITY };
          for (const page of pages) {
            const next = pipelinesSeen(seen, page);
            expect(next.newest).toBeGreaterThanOrEqual(seen.newest);
            expect(next.oldestRunning).toBeLessThanOrEqual(seen.oldestRunning);
            seen = next;
          }
          const mid = pipelinesCursor(after, before, seen);
          const done = pipelinesCursor(after, undefined, seen);
          noBadNumbers(mid);
          noBadNumbers(done);
          expect(Number.isFinite(done.after)).toBe(true);
          expect(done.after).toBeLessThanOrEqual(seen.newest);
          if (Number.isFinite(seen.oldestRunning)) expect(done.after).toBeLessThan(seen.oldestRunning);
          else expect(done.after).toBe(seen.newest);
        },
      ),
    );
  });

  it('a stored cursor is cleaned: {"after": null} and its kind become an empty cursor', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (stored) => {
        const c = readNewestFirstCursor(stored);
        noBadNumbers(c);
        if (c.next !== undefined) expect(c.next.length).toBeGreaterThan(0);
      }),
    );
    expect(readNewestFirstCursor({ after: null })).toEqual({});
    expect(readNewestFirstCursor({ after: 5, next: '', newest: 'NaN' })).toEqual({ after: 5 });
  });

  it('a next token from a response only ever becomes an encoded query value: origin and path stay ours', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 80 }),
        fc.constantFrom('/apps', '/apps/abc/builds', '/apps/abc/pipelines'),
        (token, path) => {
          const api = 'https://api.bitrise.io/v0.1';
          const u = new URL(listUrl(api, path, { limit: 50, next: token, before: token }));
          expect(u.origin).toBe('https://api.bitrise.io');
          expect(u.pathname).toBe(`/v0.1${path}`);
          expect(u.searchParams.get('next') ?? '').toBe(token === '' ? '' : token);
        },
      ),
    );
    const evil = new URL(listUrl('https://api.bitrise.io/v0.1', '/apps', { next: 'https://evil.example/steal?x=1#' }));
    expect(evil.origin).toBe('https://api.bitrise.io');
  });
});
