import { classifyStatus, parseRetryAfter, redactUrl } from '../../src/providers/http';
import { rateLimitBackoffMs } from '../../src/activities/failures';

describe('provider HTTP decisions', () => {
  it.each([
    [200, null],
    [204, null],
    [301, 'protocol'],
    [302, 'protocol'],
    [304, 'protocol'],
    [307, 'protocol'],
    [308, 'protocol'],
    [401, 'unauthorized'],
    [403, 'forbidden'],
    [404, 'not_found'],
    [429, 'rate_limited'],
    [408, 'transient'],
    [500, 'transient'],
    [503, 'transient'],
    [400, 'bad_request'],
    [422, 'bad_request'],
  ])('status %i is %s', (status, kind) => expect(classifyStatus(status)).toBe(kind));

  it('reads Retry-After in seconds and as a date', () => {
    const now = Date.parse('2026-11-23T10:00:00Z');
    expect(parseRetryAfter(new Headers({ 'retry-after': '7' }), now)).toBe(7000);
    expect(parseRetryAfter(new Headers({ 'retry-after': 'Mon, 23 Nov 2026 10:00:30 GMT' }), now)).toBe(30_000);
  });

  it('falls back to X-RateLimit-Reset only when the budget is spent', () => {
    const now = 1_800_000_000_000;
    expect(parseRetryAfter(new Headers({ 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(now / 1000 + 12) }), now)).toBe(12_000);
    expect(
      parseRetryAfter(new Headers({ 'x-ratelimit-remaining': '5', 'x-ratelimit-reset': String(now / 1000 + 12) }), now),
    ).toBeUndefined();
    expect(parseRetryAfter(new Headers(), now)).toBeUndefined();
  });

  it('backs off exponentially without a header, capped', () => {
    expect([1, 2, 3].map((n) => rateLimitBackoffMs(n))).toEqual([10_000, 20_000, 40_000]);
    expect(rateLimitBackoffMs(20)).toBe(600_000);
  });

  it('keeps query strings (codes, tokens) out of error messages', () => {
    expect(redactUrl('https://bitbucket.org/site/oauth2/access_token?code=SECRET')).toBe('https://bitbucket.org/site/oauth2/access_token');
  });
});
