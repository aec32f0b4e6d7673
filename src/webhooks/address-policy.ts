import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP, type LookupFunction } from 'node:net';
import { assert } from '../platform/assert.ts';
import type { MerchantWebhookConfig } from '../platform/config.ts';
import { DomainError } from '../platform/errors.ts';

/**
 * Where a merchant endpoint may point. An admin who registers `http://169.254.169.254/…` or a name
 * that resolves to 10.0.0.5 would otherwise make settledesk POST into its own network (SSRF). The
 * address is checked at registration and again at every attempt, on the addresses the connection
 * actually uses (the HTTP request's `lookup` is this module's), so a name that resolves to a public
 * address at registration and to a private one later (DNS rebinding) is still refused.
 * `MERCHANT_WEBHOOK_ALLOWED_HOSTS` names exceptions: host names, addresses or CIDR blocks.
 */

type Range = { bytes: Uint8Array; prefix: number; reason: string };

/** An address as 16 bytes (IPv4 as IPv4-mapped IPv6), or undefined when it is not an address. */
export function addressBytes(address: string): Uint8Array | undefined {
  const version = isIP(address);
  if (version === 4) {
    return Uint8Array.from([...new Array(10).fill(0), 0xff, 0xff, ...address.split('.').map(Number)]);
  }
  if (version !== 6) return undefined;
  let text = address.toLowerCase().replace(/%.*$/, '');
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1]) {
    const [a, b, c, d] = dotted[1].split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, -dotted[1].length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = [...left, ...new Array(8 - left.length - right.length).fill('0'), ...right];
  const bytes = new Uint8Array(16);
  groups.forEach((group, index) => {
    const value = Number.parseInt(group, 16);
    bytes[index * 2] = value >> 8;
    bytes[index * 2 + 1] = value & 0xff;
  });
  return bytes;
}

function parseRange(cidr: string, reason: string): Range | undefined {
  const [address = '', prefixText] = cidr.split('/');
  const bytes = addressBytes(address);
  if (bytes === undefined || (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText))) return undefined;
  const max = isIP(address) === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (prefix > max) return undefined;
  return { bytes, prefix: isIP(address) === 4 ? prefix + 96 : prefix, reason };
}

function inRange(bytes: Uint8Array, range: Range): boolean {
  for (let bit = 0; bit < range.prefix; bit += 1) {
    const mask = 0x80 >> (bit % 8);
    if (((bytes[bit >> 3] ?? 0) & mask) !== ((range.bytes[bit >> 3] ?? 0) & mask)) return false;
  }
  return true;
}

/** What no endpoint may reach unless allowed, each with the reason a refusal names. */
const forbiddenRanges: readonly Range[] = (
  [
    ['0.0.0.0/8', 'unspecified ("this network")'],
    ['10.0.0.0/8', 'private (RFC 1918)'],
    ['100.64.0.0/10', 'carrier-grade NAT (RFC 6598; 100.100.100.200 is a cloud metadata service)'],
    ['127.0.0.0/8', 'loopback'],
    ['169.254.0.0/16', 'link-local (169.254.169.254 is the cloud metadata service)'],
    ['172.16.0.0/12', 'private (RFC 1918)'],
    ['192.0.0.0/24', 'IETF protocol assignments (192.0.0.192 is a cloud metadata service)'],
    ['192.0.2.0/24', 'documentation (RFC 5737)'],
    ['192.168.0.0/16', 'private (RFC 1918)'],
    ['198.18.0.0/15', 'benchmarking (RFC 2544)'],
    ['198.51.100.0/24', 'documentation (RFC 5737)'],
    ['203.0.113.0/24', 'documentation (RFC 5737)'],
    ['224.0.0.0/4', 'multicast'],
    ['240.0.0.0/4', 'reserved (and the broadcast address)'],
    ['::/128', 'unspecified'],
    ['::1/128', 'loopback'],
    ['::/96', 'IPv4-compatible (deprecated)'],
    ['64:ff9b::/96', 'NAT64 (reaches an IPv4 address)'],
    ['64:ff9b:1::/48', 'local NAT64'],
    ['100::/64', 'discard'],
    ['2001::/32', 'Teredo (reaches an IPv4 address)'],
    ['2001:db8::/32', 'documentation'],
    ['2002::/16', '6to4 (reaches an IPv4 address)'],
    ['fc00::/7', 'unique local (private; fd00:ec2::254 is a cloud metadata service)'],
    ['fe80::/10', 'link-local'],
    ['fec0::/10', 'site-local (deprecated)'],
    ['ff00::/8', 'multicast'],
  ] as const
).map(([cidr, reason]) => {
  const range = parseRange(cidr, reason);
  assert(range, `bad built-in range ${cidr}`);
  return range;
});

/** An `MERCHANT_WEBHOOK_ALLOWED_HOSTS` entry: a host name, or an address or CIDR block. */
export type AllowedEntry = { host: string } | { cidr: string };

/** Parses one allow-list entry; undefined when it is neither a host name nor an address/CIDR. */
export function allowedEntry(text: string): AllowedEntry | undefined {
  const entry = text
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1');
  if (parseRange(entry, '') !== undefined) return { cidr: entry };
  if (
    /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/.test(entry)
  ) {
    return { host: entry };
  }
  return undefined;
}

export type Resolved = { address: string; family: number };
/** Every address a host name resolves to (the system resolver, as a connection would use). */
export type Resolver = (hostname: string) => Promise<Resolved[]>;
export const systemResolver: Resolver = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

export class EndpointAddressPolicy {
  readonly #hosts: ReadonlySet<string>;
  readonly #allowed: readonly Range[];
  readonly resolve: Resolver;

  constructor(allowed: readonly AllowedEntry[], resolve: Resolver = systemResolver) {
    this.#hosts = new Set(allowed.flatMap((entry) => ('host' in entry ? [entry.host] : [])));
    this.#allowed = allowed.flatMap((entry) =>
      'cidr' in entry ? [parseRange(entry.cidr, 'allowed') as Range] : [],
    );
    this.resolve = resolve;
  }

  /** Why `address` may not be reached (the range it is in), or undefined when it may. */
  refusal(address: string): string | undefined {
    const bytes = addressBytes(address);
    if (bytes === undefined) return 'not an IP address';
    if (this.#allowed.some((range) => inRange(bytes, range))) return undefined;
    // An IPv4-mapped address (::ffff:a.b.c.d) is checked as the IPv4 address it is.
    return forbiddenRanges.find((range) => inRange(bytes, range))?.reason;
  }

  /** A host name named in the allow-list is trusted whatever it resolves to. */
  hostAllowed(hostname: string): boolean {
    return this.#hosts.has(hostname.toLowerCase());
  }

  /** The refusal for a URL's host literal; names are checked on their resolved addresses. */
  literalRefusal(hostname: string): string | undefined {
    const host = hostname.replace(/^\[(.*)\]$/, '$1');
    if (isIP(host) === 0 || this.hostAllowed(hostname)) return undefined;
    return this.refusal(host);
  }
}

/** The policy of this installation: its allow-list, the system resolver unless a test gives one. */
export function endpointAddressPolicy(
  config: Pick<MerchantWebhookConfig, 'allowedHosts'>,
  resolve: Resolver = systemResolver,
): EndpointAddressPolicy {
  return new EndpointAddressPolicy(config.allowedHosts, resolve);
}

export const forbiddenAddressCode = 'merchant-webhook/forbidden-address';

function forbidden(host: string, address: string, reason: string): DomainError {
  const where = address === host ? `${host} is` : `${host} resolves to ${address},`;
  return new DomainError(
    forbiddenAddressCode,
    `the endpoint host ${where} ${reason}: settledesk does not send there unless MERCHANT_WEBHOOK_ALLOWED_HOSTS names it`,
    { host, address, reason },
  );
}

/**
 * Registration: the host literal, or every address its name resolves to now. A name that does not
 * resolve (yet) is accepted: each delivery attempt checks what it resolves to then.
 */
export async function assertEndpointReachable(policy: EndpointAddressPolicy, url: URL): Promise<void> {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const literal = policy.literalRefusal(host);
  if (literal !== undefined) throw forbidden(host, host, literal);
  if (isIP(host) !== 0 || policy.hostAllowed(host)) return;
  let addresses: Resolved[];
  try {
    addresses = await policy.resolve(host);
  } catch {
    return;
  }
  for (const { address } of addresses) {
    const reason = policy.refusal(address);
    if (reason !== undefined) throw forbidden(host, address, reason);
  }
}

/** The code a refused connection fails with; the attempt's error names the address and the range. */
export const refusedAddressErrorCode = 'ESETTLEDESK_FORBIDDEN_ADDRESS';

/**
 * Delivery: the `lookup` of the HTTP request. It resolves the name, refuses the connection when any
 * address is forbidden, and hands the connection exactly the addresses it checked.
 */
export function guardedLookup(policy: EndpointAddressPolicy): LookupFunction {
  return (hostname, options, callback) => {
    const refuse = (message: string) =>
      callback(Object.assign(new Error(message), { code: refusedAddressErrorCode }), '', 0);
    policy
      .resolve(hostname)
      .then((resolved) => {
        const family = options.family === 4 || options.family === 6 ? options.family : 0;
        const addresses = resolved.filter((entry) => family === 0 || entry.family === family);
        if (addresses.length === 0) {
          callback(Object.assign(new Error(`${hostname} does not resolve`), { code: 'ENOTFOUND' }), '', 0);
          return;
        }
        if (!policy.hostAllowed(hostname)) {
          for (const { address } of addresses) {
            const reason = policy.refusal(address);
            if (reason !== undefined) {
              refuse(
                `refused: ${hostname} resolves to ${address}, ${reason} (MERCHANT_WEBHOOK_ALLOWED_HOSTS)`,
              );
              return;
            }
          }
        }
        if (options.all) {
          (callback as unknown as (error: null, addresses: Resolved[]) => void)(null, addresses);
        } else {
          const first = addresses[0] as Resolved;
          callback(null, first.address, first.family);
        }
      })
      .catch((error: unknown) => callback(error as NodeJS.ErrnoException, '', 0));
  };
}
