/** The one IP parser, and small address arithmetic for planning node addresses and MACs. @module */
import { isIP } from 'node:net';
import type { Cidr } from './validate.js';

/** An address's bytes in network order: 4 for IPv4, 16 for IPv6 (v4-mapped tails included). */
export function ipBytes(text: string): Uint8Array {
  const address = text.split('%')[0];
  const family = isIP(address);
  if (family === 4) return Uint8Array.from(address.split('.').map(Number));
  if (family !== 6) throw new TypeError(`not an IP address: ${address}`);
  let [head, tail] = address.includes('::') ? address.split('::') : [address, undefined];
  const parse = (s: string | undefined): number[] => {
    if (!s) return [];
    const groups = s.split(':');
    const last = groups[groups.length - 1];
    if (last.includes('.')) {
      const v4 = last.split('.').map(Number);
      groups.splice(-1, 1, ((v4[0] << 8) | v4[1]).toString(16), ((v4[2] << 8) | v4[3]).toString(16));
    }
    return groups.map((g) => parseInt(g, 16));
  };
  const h = parse(head);
  const t = parse(tail);
  const groups = tail === undefined ? h : [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  return out;
}

function toBig(address: string): bigint {
  return ipBytes(address).reduce((acc, b) => (acc << 8n) | BigInt(b), 0n);
}

/** An address (or `address/prefix`) written the way the kernel prints it (inet_ntop, lower case, `::` compression). */
export function canonicalAddress(text: string): string {
  const [address, prefix] = text.split('/');
  const family = address.includes(':') ? 6 : 4;
  const out = fromBig(toBig(address), family);
  return prefix === undefined ? out : `${out}/${prefix}`;
}

function fromBig(v: bigint, family: 4 | 6): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => Number((v >> s) & 0xffn)).join('.');
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((v >> BigInt(i * 16)) & 0xffffn).toString(16));
  // Compress the longest run of zero groups, as inet_ntop does.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** The n-th address of a network (n = 1 is the first host), e.g. nthHost(198.18.0.0/24, 3) = 198.18.0.3. */
export function nthHost(net: Cidr, n: number | bigint): string {
  const bits = BigInt((net.family === 4 ? 32 : 128) - net.prefix);
  const base = (toBig(net.address) >> bits) << bits;
  return fromBig(base + BigInt(n), net.family);
}

/** The last usable host of a network (the broadcast address excluded for IPv4). */
export function lastHost(net: Cidr): string {
  const bits = BigInt((net.family === 4 ? 32 : 128) - net.prefix);
  const size = 1n << bits;
  return nthHost(net, size - (net.family === 4 ? 2n : 1n));
}

/** A locally administered unicast MAC: 02:<tag>:<a>:<b>:<hi>:<lo>. */
export function localMac(tag: number, a: number, b: number, n: number): string {
  return [0x02, tag, a, b, (n >> 8) & 0xff, n & 0xff].map((x) => (x & 0xff).toString(16).padStart(2, '0')).join(':');
}

/** Whether two networks share any address (one contains the other). Different families never do. */
export function cidrOverlap(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const width = a.family === 4 ? 32 : 128;
  const shift = BigInt(width - Math.min(a.prefix, b.prefix));
  return toBig(a.address) >> shift === toBig(b.address) >> shift;
}

/** Whether `address` (of the same family) lies in `net`. */
export function cidrContains(net: Cidr, address: string): boolean {
  return cidrOverlap(net, { address, prefix: net.family === 4 ? 32 : 128, family: net.family });
}

/** The network as written with its host bits cleared, e.g. 192.0.2.0/24 for 192.0.2.1/24. */
export function networkOf(c: Cidr): string {
  return `${nthHost(c, 0)}/${c.prefix}`;
}

/**
 * What a host address is within its network: `network` (host bits all zero: the IPv4 network
 * address, the IPv6 subnet-router anycast address) or `broadcast` (IPv4, host bits all one).
 * Networks of one or two addresses (/31, /32, /127, /128) have neither.
 */
export function hostRole(c: Cidr): 'network' | 'broadcast' | undefined {
  const width = c.family === 4 ? 32 : 128;
  const bits = BigInt(width - c.prefix);
  if (bits <= 1n) return undefined;
  const host = toBig(c.address) & ((1n << bits) - 1n);
  if (host === 0n) return 'network';
  if (c.family === 4 && host === (1n << bits) - 1n) return 'broadcast';
  return undefined;
}

/** Address ranges no cluster address may use or overlap, with what they are. */
const SPECIAL: { cidr: Cidr; what: string }[] = [
  ['0.0.0.0/8', "unspecified ('this network', 0.0.0.0/8)"],
  ['127.0.0.0/8', 'loopback (127.0.0.0/8)'],
  ['169.254.0.0/16', 'link-local (169.254.0.0/16)'],
  ['224.0.0.0/4', 'multicast (224.0.0.0/4)'],
  ['240.0.0.0/4', 'reserved (240.0.0.0/4, with the broadcast address 255.255.255.255)'],
  ['::/128', 'unspecified (::)'],
  ['::1/128', 'loopback (::1)'],
  ['::ffff:0:0/96', 'IPv4-mapped (::ffff:0:0/96: write the IPv4 address itself)'],
  ['::/96', 'IPv4-compatible (::/96, deprecated)'],
  ['fe80::/10', 'link-local (fe80::/10)'],
  ['ff00::/8', 'multicast (ff00::/8)'],
].map(([text, what]) => {
  const [address, prefix] = text.split('/');
  return { cidr: { address, prefix: Number(prefix), family: address.includes(':') ? 6 : 4 } as Cidr, what };
});

/** The special range (loopback, multicast, …) the network `c` overlaps, described; undefined if none. */
export function specialRange(c: Cidr): string | undefined {
  return SPECIAL.find((s) => cidrOverlap(s.cidr, c))?.what;
}

/** The special range an address lies in, described; undefined for an ordinary unicast address. */
export function specialAddress(address: string, family: 4 | 6): string | undefined {
  return specialRange({ address, prefix: family === 4 ? 32 : 128, family });
}

/** An address as a number (IPv4 and IPv6). */
export function addressValue(address: string): bigint {
  return toBig(address);
}
