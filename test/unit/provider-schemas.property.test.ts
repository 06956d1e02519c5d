import fc from 'fast-check';
import type { z } from 'zod';
import { PG_INT_MAX } from '../../src/providers/fields';
import * as bb from '../../src/providers/bitbucket/schemas';
import * as br from '../../src/providers/bitrise/schemas';
import { isoMicros } from '../../src/providers/bitbucket/cursors';

/**
 * Property tests of the record schemas both providers' syncs validate with: a record is stored
 * only if every value its typed columns and cursors use is one Postgres and the cursor maths
 * accept; everything else is rejected (quarantined), never thrown.
 */

const instant = fc
  .date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true })
  .map((d) => d.toISOString().replace(/\.(\d{3})Z$/, '.$1000+00:00'));
const unicode = fc.string({ unit: 'grapheme', maxLength: 40 });
const slug = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 });
const pgInt = (min = 0) => fc.integer({ min, max: PG_INT_MAX });

const cases: {
  name: string;
  schema: z.ZodType;
  valid: fc.Arbitrary<Record<string, unknown>>;
  strict: string[];
  ints: string[];
  times: string[];
}[] = [
  {
    name: 'Bitbucket pull request',
    schema: bb.bitbucketPullRequestSchema,
    valid: fc.record({
      id: pgInt(1),
      title: unicode,
      state: slug,
      created_on: instant,
      updated_on: instant,
      comment_count: pgInt(),
      task_count: pgInt(),
    }),
    strict: ['id', 'state', 'created_on', 'updated_on'],
    ints: ['id', 'comment_count', 'task_count'],
    times: ['created_on', 'updated_on'],
  },
  {
    name: 'Bitbucket pipeline',
    schema: bb.bitbucketPipelineSchema,
    valid: fc.record({
      uuid: slug,
      build_number: pgInt(),
      state: fc.record({ name: slug }),
      created_on: instant,
      build_seconds_used: pgInt(),
    }),
    strict: ['uuid', 'build_number', 'state', 'created_on'],
    ints: ['build_number', 'build_seconds_used'],
    times: ['created_on'],
  },
  {
    name: 'Bitbucket repository',
    schema: bb.bitbucketRepositorySchema,
    valid: fc.record({ uuid: slug, full_name: fc.constant('ws/repo'), name: unicode, updated_on: instant }),
    strict: ['uuid', 'full_name', 'updated_on'],
    ints: [],
    times: ['updated_on'],
  },
  {
    name: 'Bitbucket commit',
    schema: bb.bitbucketCommitSchema,
    valid: fc.record({ hash: fc.stringMatching(/^[0-9a-f]{40}$/), date: instant, message: unicode }),
    strict: ['hash', 'date'],
    ints: [],
    times: ['date'],
  },
  {
    name: 'Bitrise build',
    schema: br.bitriseBuildSchema,
    valid: fc.record({
      slug,
      build_number: pgInt(),
      status: fc.integer({ min: 0, max: 4 }),
      triggered_at: instant,
      commit_message: unicode,
      credit_cost: pgInt(),
      pull_request_id: pgInt(),
    }),
    strict: ['slug', 'build_number', 'status', 'triggered_at'],
    ints: ['build_number', 'status', 'pull_request_id', 'credit_cost'],
    times: ['triggered_at'],
  },
  {
    name: 'Bitrise pipeline',
    schema: br.bitrisePipelineListItemSchema,
    valid: fc.record({ slug, is_pipeline: fc.constant(true), status: fc.integer({ min: 0, max: 4 }), triggered_at: instant }),
    strict: ['slug', 'is_pipeline', 'status', 'triggered_at'],
    ints: ['status'],
    times: ['triggered_at'],
  },
  {
    name: 'Bitrise organization',
    schema: br.bitriseOrganizationSchema,
    valid: fc.record({ slug, name: unicode, concurrency_count: pgInt() }),
    strict: ['slug'],
    ints: ['concurrency_count'],
    times: [],
  },
];

const wrongType = fc.oneof(
  fc.constant(null),
  fc.constant({}),
  fc.constant([1]),
  fc.constant(''),
  fc.double({ noInteger: true, noDefaultInfinity: true, noNaN: true }),
);
const badInt = fc.oneof(
  fc.integer({ min: PG_INT_MAX + 1, max: Number.MAX_SAFE_INTEGER }),
  fc.integer({ min: Number.MIN_SAFE_INTEGER, max: -1 }),
  fc.double({ noInteger: true }),
  fc.constantFrom(Number.NaN, Infinity, -Infinity, 2 ** 31, 1e300),
  fc.integer().map(String),
);
const badTime = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.constantFrom(
    '0000-01-01T00:00:00Z',
    '2024-02-30T00:00:00Z',
    '2024-01-01T24:00:00Z',
    '2024-01-01',
    '2024-01-01T00:00:00',
    'yesterday',
    '',
    '2024-13-01T00:00:00Z',
  ),
  fc.integer(),
);

describe.each(cases)('$name schema (properties)', ({ schema, valid, strict, ints, times }) => {
  it('accepts valid records, unicode included, and keeps unknown fields', () => {
    fc.assert(
      fc.property(
        valid,
        fc.dictionary(
          fc.string({ minLength: 1, maxLength: 8 }).map((k) => `x_${k}`),
          fc.jsonValue({ maxDepth: 1 }),
        ),
        (record, extra) => {
          const parsed = schema.safeParse({ ...extra, ...record });
          expect(parsed.error?.issues ?? []).toEqual([]);
          expect(parsed.data).toMatchObject(record);
        },
      ),
    );
  });

  it('rejects a record whose strict field is missing, null or of the wrong type', () => {
    fc.assert(
      fc.property(valid, fc.constantFrom(...strict), fc.option(wrongType, { nil: undefined }), (record, field, value) => {
        const broken: Record<string, unknown> = { ...record };
        if (value === undefined) delete broken[field];
        else broken[field] = value;
        expect(schema.safeParse(broken).success).toBe(false);
      }),
    );
  });

  if (ints.length) {
    it('rejects numbers a Postgres int column cannot hold', () => {
      fc.assert(
        fc.property(valid, fc.constantFrom(...ints), badInt, (record, field, value) => {
          expect(schema.safeParse({ ...record, [field]: value }).success).toBe(false);
        }),
      );
      for (const field of ints) expect(schema.safeParse({ ...fc.sample(valid, 1)[0], [field]: PG_INT_MAX }).success).toBe(true);
    });
  }

  if (times.length) {
    it('rejects timestamps that do not parse or that Postgres cannot store; every accepted one parses', () => {
      fc.assert(
        fc.property(valid, fc.constantFrom(...times), badTime, (record, field, value) => {
          const parsed = schema.safeParse({ ...record, [field]: value });
          if (parsed.success) {
            const t = (parsed.data as Record<string, unknown>)[field] as string;
            expect(Number.isFinite(Date.parse(t))).toBe(true);
            expect(t.startsWith('0000')).toBe(false);
          }
        }),
      );
      for (const field of times)
        expect(schema.safeParse({ ...fc.sample(valid, 1)[0], [field]: '0000-01-01T00:00:00Z' }).success).toBe(false);
    });
  }
});

describe('page envelopes (properties)', () => {
  it('take any list, huge or empty, and a null list; refuse a list of the wrong type', () => {
    fc.assert(
      fc.property(fc.option(fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 2000 }), { nil: null }), (list) => {
        expect(bb.bitbucketRawPage.safeParse({ values: list }).success).toBe(true);
        expect(br.bitriseRawPage.safeParse({ data: list }).success).toBe(true);
      }),
      { numRuns: 40 },
    );
    for (const wrong of ['x', 1, {}, true]) {
      expect(bb.bitbucketRawPage.safeParse({ values: wrong }).success).toBe(false);
      expect(br.bitriseRawPage.safeParse({ data: wrong }).success).toBe(false);
    }
  });

  it('a Bitbucket cursor timestamp always has the microsecond form the cursor maths read', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (s) => {
        if (bb.bitbucketRepositorySchema.safeParse({ uuid: 'u', full_name: 'a/b', updated_on: s }).success)
          expect(Number.isFinite(isoMicros(s))).toBe(true);
      }),
    );
  });
});
