import { checkResolvedTarget, checkWebhookUrl, isForbiddenAddress, WebhookTargetError } from '../../src/webhooks/targets';

/** Where webhooks may point (SSRF rules): the URL rules at registration and the address rules every delivery applies. */

const refusal = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err instanceof WebhookTargetError ? err.code : String(err);
  }
};

describe('isForbiddenAddress', () => {
  it.each([
    '10.0.0.1',
    '172.16.5.4',
    '172.31.255.255',
    '192.168.1.1',
    '127.0.0.1',
    '127.9.9.9',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '224.0.0.1',
    '255.255.255.255',
    '198.18.0.1',
    '::1',
    '::',
    'fe80::1',
    'fc00::1',
    'fd12:3456::1',
    'ff02::1',
    '::ffff:10.0.0.1',
    '::ffff:127.0.0.1',
    '64:ff9b::a00:1',
    '2002:a00:1::1',
    'not-an-ip',
  ])('refuses %s', (ip) => {
    expect(isForbiddenAddress(ip, false)).toBe(true);
  });

  it.each(['93.184.216.34', '8.8.8.8', '172.32.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8'])('allows the public %s', (ip) => {
    expect(isForbiddenAddress(ip, false)).toBe(false);
  });

  it('allows loopback, and only loopback, when insecure targets are allowed', () => {
    expect(isForbiddenAddress('127.0.0.1', true)).toBe(false);
    expect(isForbiddenAddress('::1', true)).toBe(false);
    expect(isForbiddenAddress('10.0.0.1', true)).toBe(true);
    expect(isForbiddenAddress('169.254.169.254', true)).toBe(true);
  });
});

describe('checkWebhookUrl', () => {
  it('accepts https URLs of public hosts, dropping a fragment', () => {
    expect(checkWebhookUrl('https://hooks.example.com/conduit?x=1#frag', false).toString()).toBe('https://hooks.example.com/conduit?x=1');
    expect(checkWebhookUrl('https://93.184.216.34:8443/x', false).host).toBe('93.184.216.34:8443');
  });

  it.each([
    ['nope', 'invalid_webhook_url'],
    ['ftp://example.com/', 'invalid_webhook_url'],
    ['javascript:alert(1)', 'invalid_webhook_url'],
    ['https://user:secret@example.com/', 'invalid_webhook_url'],
    [`https://example.com/${'a'.repeat(2000)}`, 'invalid_webhook_url'],
    ['http://example.com/', 'webhook_url_not_allowed'],
    ['http://localhost:3000/', 'webhook_url_not_allowed'],
    ['https://localhost/', 'webhook_url_not_allowed'],
    ['https://api.localhost/', 'webhook_url_not_allowed'],
    ['https://127.0.0.1/', 'webhook_url_not_allowed'],
    ['https://2130706433/', 'webhook_url_not_allowed'],
    ['https://0x7f.1/', 'webhook_url_not_allowed'],
    ['https://[::1]/', 'webhook_url_not_allowed'],
    ['https://[::ffff:169.254.169.254]/', 'webhook_url_not_allowed'],
    ['https://10.0.0.1/', 'webhook_url_not_allowed'],
  ])('refuses %s in production (%s)', (url, code) => {
    expect(refusal(() => checkWebhookUrl(url, false))).toBe(code);
  });

  it('admits http://localhost and loopback addresses only with ALLOW_INSECURE_WEBHOOK_URLS', () => {
    for (const url of ['http://localhost:3000/hooks', 'http://127.0.0.1:8080/', 'http://[::1]:9/', 'https://localhost/'])
      expect(refusal(() => checkWebhookUrl(url, true))).toBeUndefined();
    for (const url of ['http://example.com/', 'http://10.0.0.1/', 'https://192.168.0.1/'])
      expect(refusal(() => checkWebhookUrl(url, true))).toBe('webhook_url_not_allowed');
  });
});

describe('checkResolvedTarget', () => {
  it('refuses a name that resolves to a forbidden address (localhost), unless loopback is allowed', async () => {
    await expect(checkResolvedTarget(new URL('https://localhost/'), false)).rejects.toMatchObject({ code: 'webhook_url_not_allowed' });
    await expect(checkResolvedTarget(new URL('https://localhost/'), true)).resolves.toBeUndefined();
  });

  it('accepts a name that does not resolve (yet): each delivery checks again', async () => {
    await expect(checkResolvedTarget(new URL('https://does-not-exist.invalid/'), false)).resolves.toBeUndefined();
  });
});
