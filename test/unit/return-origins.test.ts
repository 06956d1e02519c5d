import fc from 'fast-check';
import { ApiError } from '../../src/api/errors';
import { normalizeReturnOrigin, returnUrlAllowed } from '../../src/api/return-origins';

describe('normalizeReturnOrigin', () => {
  it('accepts https origins, in canonical form', () => {
    expect(normalizeReturnOrigin('https://App.Example.com', false)).toBe('https://app.example.com');
    expect(normalizeReturnOrigin('https://app.example.com/', false)).toBe('https://app.example.com');
    expect(normalizeReturnOrigin('https://app.example.com:443', false)).toBe('https://app.example.com');
    expect(normalizeReturnOrigin('https://app.example.com:8443', false)).toBe('https://app.example.com:8443');
  });

  it('accepts http loopback origins only when insecure origins are allowed', () => {
    for (const o of ['http://localhost', 'http://localhost:5173', 'http://127.0.0.1:8080']) {
      expect(normalizeReturnOrigin(o, true)).toBe(o);
      expect(() => normalizeReturnOrigin(o, false)).toThrow(ApiError);
    }
    expect(() => normalizeReturnOrigin('http://example.com', true)).toThrow(/https/);
  });

  it.each([
    'javascript:alert(1)',
    'data:text/html,x',
    'https://a.example/path',
    'https://u:p@a.example',
    'https://a.example/?q',
    'a.example',
    '',
  ])('refuses %j with invalid_return_origin', (o) => {
    expect(() => normalizeReturnOrigin(o, true)).toThrow(expect.objectContaining({ code: 'invalid_return_origin', statusCode: 400 }));
  });
});

describe('returnUrlAllowed', () => {
  const allowed = ['https://app.example.com'];
  const publicUrl = 'https://conduit.example.net';

  it('allows URLs on a registered origin, and nothing else', () => {
    expect(returnUrlAllowed('https://app.example.com/integrations?tab=1#x', allowed, publicUrl)).toBe(true);
    for (const url of [
      'https://app.example.com.attacker.example/',
      'https://app.example.com@attacker.example/',
      'https://attacker.example/?https://app.example.com',
      'http://app.example.com/',
      'https://app.example.com:444/',
      'javascript:alert(1)//https://app.example.com',
      '//app.example.com/x',
      'not a url',
    ]) {
      expect(returnUrlAllowed(url, allowed, publicUrl)).toBe(false);
    }
  });

  it('never allows a URL whose origin is not registered (property)', () => {
    fc.assert(
      fc.property(fc.webUrl({ withQueryParameters: true, withFragments: true }), (url) => {
        const origin = new URL(url).origin;
        expect(returnUrlAllowed(url, allowed, publicUrl)).toBe(origin === 'https://app.example.com' || origin === publicUrl);
        expect(returnUrlAllowed(url, [origin], publicUrl)).toBe(!new URL(url).username && !new URL(url).password);
      }),
    );
  });

  it('always allows the API’s own origin (PUBLIC_URL: the console), and only that exact origin', () => {
    for (const url of ['https://conduit.example.net/', 'https://conduit.example.net/?connection=x&result=connected']) {
      expect(returnUrlAllowed(url, [], publicUrl)).toBe(true);
    }
    // A PUBLIC_URL with a path still means its origin; the default port is the same origin.
    expect(returnUrlAllowed('https://conduit.example.net:443/', [], 'https://conduit.example.net/base')).toBe(true);
    expect(returnUrlAllowed('http://127.0.0.1:3000/', [], 'http://127.0.0.1:3000')).toBe(true);
    for (const url of [
      'http://conduit.example.net/',
      'https://conduit.example.net:8443/',
      'https://conduit.example.net.attacker.example/',
      'https://conduit.example.net@attacker.example/',
      'https://user:pw@conduit.example.net/',
      'https://example.net/',
      'http://127.0.0.1:3001/',
    ]) {
      expect(returnUrlAllowed(url, [], url.startsWith('http://127') ? 'http://127.0.0.1:3000' : publicUrl)).toBe(false);
    }
  });
});
