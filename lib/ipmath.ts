/** Small address arithmetic for planning node addresses and MACs. @module */
import { ipBytes } from './jhash.js';
import type { Cidr } from './validate.js';

function toBig(address: string): bigint {
  return ipBytes(address).reduce((acc, b) => (acc << 8n) | BigInt(b), 0n);
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
