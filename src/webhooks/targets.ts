import { lookup as dnsLookup } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';

/**
 * Where a webhook may point. A webhook makes our servers send requests to a URL a customer chose,
 * so it must never reach our own network (SSRF): https only, and never an address that is private,
 * loopback, link-local, reserved or otherwise not a public host. The URL is checked when it is
 * registered, and every delivery checks again the addresses it actually connects to (resolved at
 * that moment, so a name re-pointed at an internal address later is refused too).
 *
 * `allowInsecure` (ALLOW_INSECURE_WEBHOOK_URLS, development only) admits http://localhost and
 * loopback addresses, nothing else.
 */

export class WebhookTargetError extends Error {
  constructor(
    readonly code: 'invalid_webhook_url' | 'webhook_url_not_allowed',
    message: string,
  ) {
    super(message);
    this.name = 'WebhookTargetError';
  }
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

// Not public unicast (IANA special-purpose registries). IPv4-mapped IPv6 (::ffff:a.b.c.d) is
// checked against the IPv4 rules by BlockList itself.
const NOT_PUBLIC = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const)
  NOT_PUBLIC.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [
  ['::', 96], // unspecified, loopback, IPv4-compatible
  ['64:ff9b::', 96], // NAT64: reaches IPv4 addresses through a gateway
  ['64:ff9b:1::', 48],
  ['100::', 64],
  ['2001::', 23], // IETF protocol assignments (Teredo, ORCHID, …)
  ['2001:db8::', 32],
  ['2002::', 16], // 6to4: embeds an IPv4 address
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
] as const)
  NOT_PUBLIC.addSubnet(net, prefix, 'ipv6');

/** True for an address a webhook may not reach: anything but public unicast (loopback too, unless allowed). */
export function isForbiddenAddress(address: string, allowLoopback: boolean): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  const type = family === 4 ? 'ipv4' : 'ipv6';
  if (allowLoopback && LOOPBACK.check(address, type)) return false;
  return NOT_PUBLIC.check(address, type);
}

const isLocalhostName = (host: string) => host === 'localhost' || host.endsWith('.localhost');
const bare = (hostname: string) => hostname.replace(/^\[(.*)\]$/, '$1');

/**
 * The registration rules, without DNS: a well-formed http(s) URL of at most 2,000 characters, no
 * credentials in it (they would be stored in plaintext), https unless `allowInsecure` and the host
 * is localhost / a loopback address, and a host that is not a forbidden address literal.
 */
export function checkWebhookUrl(raw: string, allowInsecure: boolean): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new WebhookTargetError('invalid_webhook_url', 'The url is not a valid absolute URL.');
  }
  if (raw.length > 2000) throw new WebhookTargetError('invalid_webhook_url', 'The url is longer than 2,000 characters.');
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new WebhookTargetError('invalid_webhook_url', 'The url must be an https:// URL.');
  if (url.username || url.password)
    throw new WebhookTargetError('invalid_webhook_url', 'The url must not contain credentials; verify our signature instead.');
  const host = bare(url.hostname);
  const literal = isIP(host) !== 0;
  const loopbackHost = isLocalhostName(host) || (literal && !isForbiddenAddress(host, true) && isForbiddenAddress(host, false));
  if (url.protocol === 'http:' && !(allowInsecure && loopbackHost))
    throw new WebhookTargetError('webhook_url_not_allowed', 'The url must use https.');
  if (isLocalhostName(host) && !allowInsecure)
    throw new WebhookTargetError('webhook_url_not_allowed', 'The url must point at a public host, not localhost.');
  if (literal && isForbiddenAddress(host, allowInsecure))
    throw new WebhookTargetError(
      'webhook_url_not_allowed',
      'The url must point at a public address, not a private, loopback or reserved one.',
    );
  url.hash = '';
  return url;
}

/**
 * The DNS answer for a webhook's host, refused if any address is forbidden (all must pass: the
 * client may connect to any of them). Used by every delivery as the request's `lookup`, so the
 * addresses checked are the ones connected to.
 */
export function guardedLookup(allowLoopback: boolean): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { all: true, family: options.family ?? 0, hints: options.hints }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const refused = addresses.find((a) => isForbiddenAddress(a.address, allowLoopback));
      if (refused || addresses.length === 0) {
        return callback(
          new WebhookTargetError('webhook_url_not_allowed', `${hostname} resolves to an address webhooks may not reach`),
          '',
          0,
        );
      }
      if (options.all) return (callback as unknown as (e: null, a: typeof addresses) => void)(null, addresses);
      callback(null, addresses[0]!.address, addresses[0]!.family);
    });
  };
}

/** How long registration waits for DNS; a slow answer is treated like none (each delivery checks again). */
const REGISTRATION_LOOKUP_MS = 2000;

/**
 * At registration: refuses a host that resolves to a forbidden address now. A name that does not
 * resolve (yet), or not within 2 s, is accepted; each delivery checks again.
 */
export async function checkResolvedTarget(url: URL, allowLoopback: boolean): Promise<void> {
  const host = bare(url.hostname);
  if (isIP(host) !== 0) return;
  await new Promise<void>((resolve, reject) => {
    setTimeout(resolve, REGISTRATION_LOOKUP_MS).unref();
    guardedLookup(allowLoopback)(host, { all: true }, (err) => {
      if (err instanceof WebhookTargetError) reject(err);
      else resolve();
    });
  });
}
