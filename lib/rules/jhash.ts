/**
 * The kernel's jhash (Bob Jenkins' lookup3, include/linux/jhash.h) and nftables' `mod`
 * (reciprocal_scale), so the library can answer "which bucket, which node?" without asking the
 * kernel. Keys are laid out as nft lays them out in registers: every field padded to a 32-bit word
 * (an IPv4 address is 4 bytes, an IPv6 address 16, a port 2 bytes then 2 zero bytes).
 * @module
 */
import { ipBytes } from '../util/ipmath.js';

export { ipBytes };

const INITVAL = 0xdeadbeef;

const rol = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0;

/** jhash(key, key.length, seed) as the kernel computes it on a little-endian CPU. */
export function jhash(key: Uint8Array, seed: number): number {
  let length = key.length;
  let a = (INITVAL + length + seed) >>> 0;
  let b = a;
  let c = a;
  let k = 0;
  const word = (i: number) => (key[i] | (key[i + 1] << 8) | (key[i + 2] << 16) | (key[i + 3] << 24)) >>> 0;
  while (length > 12) {
    a = (a + word(k)) >>> 0;
    b = (b + word(k + 4)) >>> 0;
    c = (c + word(k + 8)) >>> 0;
    // __jhash_mix
    a = (a - c) >>> 0; a = (a ^ rol(c, 4)) >>> 0; c = (c + b) >>> 0;
    b = (b - a) >>> 0; b = (b ^ rol(a, 6)) >>> 0; a = (a + c) >>> 0;
    c = (c - b) >>> 0; c = (c ^ rol(b, 8)) >>> 0; b = (b + a) >>> 0;
    a = (a - c) >>> 0; a = (a ^ rol(c, 16)) >>> 0; c = (c + b) >>> 0;
    b = (b - a) >>> 0; b = (b ^ rol(a, 19)) >>> 0; a = (a + c) >>> 0;
    c = (c - b) >>> 0; c = (c ^ rol(b, 4)) >>> 0; b = (b + a) >>> 0;
    length -= 12;
    k += 12;
  }
  if (length === 0) return c;
  // The tail, byte by byte as the kernel's switch with fall-through does.
  const tail = [0, 0, 0];
  for (let i = 0; i < length; i++) tail[i >> 2] = (tail[i >> 2] + (key[k + i] << ((i & 3) * 8))) >>> 0;
  a = (a + tail[0]) >>> 0;
  b = (b + tail[1]) >>> 0;
  c = (c + tail[2]) >>> 0;
  return final(a, b, c);
}

/** __jhash_final: returns c. */
function final(a: number, b: number, c: number): number {
  c = (c ^ b) >>> 0; c = (c - rol(b, 14)) >>> 0;
  a = (a ^ c) >>> 0; a = (a - rol(c, 11)) >>> 0;
  b = (b ^ a) >>> 0; b = (b - rol(a, 25)) >>> 0;
  c = (c ^ b) >>> 0; c = (c - rol(b, 16)) >>> 0;
  a = (a ^ c) >>> 0; a = (a - rol(c, 4)) >>> 0;
  b = (b ^ a) >>> 0; b = (b - rol(a, 14)) >>> 0;
  c = (c ^ b) >>> 0; c = (c - rol(b, 24)) >>> 0;
  return c;
}

/**
 * jhash_1word/jhash_2words/jhash_3words (1 to 3 u32 values, as numbers): what CLUSTERIP and
 * xt_cluster call. The same as {@link jhash} over the words' little-endian bytes.
 */
export function jhashWords(words: readonly number[], seed: number): number {
  if (words.length < 1 || words.length > 3) throw new RangeError('jhashWords takes 1 to 3 words');
  const init = (INITVAL + (words.length << 2) + (seed >>> 0)) >>> 0;
  return final((init + (words[0] >>> 0)) >>> 0, (init + ((words[1] ?? 0) >>> 0)) >>> 0, (init + ((words[2] ?? 0) >>> 0)) >>> 0);
}

/** nft's `mod N`: reciprocal_scale(hash, N) = (hash * N) >> 32, not hash % N. */
export function reciprocalScale(hash: number, n: number): number {
  return Number((BigInt(hash >>> 0) * BigInt(n)) >> 32n);
}

/** How flows are keyed. Source-IP only is fragment-safe (recommended for OpenVPN). */
export type HashMode = 'sourceip' | 'sourceip-sourceport' | 'sourceip-sourceport-destport';

export const HASH_MODES: readonly HashMode[] = ['sourceip', 'sourceip-sourceport', 'sourceip-sourceport-destport'];

/** A flow as seen arriving at the VIP. */
export interface FlowKey {
  /** Client (source) address, IPv4 or IPv6. */
  address: string;
  /** Client (source) port; needed by the port hash modes. */
  port?: number;
  /** Destination port (the service's); needed by `sourceip-sourceport-destport`. */
  destPort?: number;
}


/** The key bytes nft hashes for a flow, in register layout. */
export function flowKeyBytes(mode: HashMode, flow: FlowKey): Uint8Array {
  const ip = ipBytes(flow.address);
  const port = (p: number | undefined, what: string) => {
    if (p === undefined || !Number.isInteger(p) || p < 0 || p > 65535)
      throw new TypeError(`hash mode ${mode} needs the flow's ${what} (0-65535)`);
    return [p >> 8, p & 0xff, 0, 0]; // network order, padded to a 32-bit register
  };
  if (mode === 'sourceip') return ip;
  const parts = [...ip, ...port(flow.port, 'source port')];
  if (mode === 'sourceip-sourceport-destport') parts.push(...port(flow.destPort, 'destination port'));
  return Uint8Array.from(parts);
}

/** The bucket (0 … buckets-1) the kernel puts a flow in. */
export function bucketOf(mode: HashMode, flow: FlowKey, buckets: number, seed: number): number {
  return reciprocalScale(jhash(flowKeyBytes(mode, flow), seed >>> 0), buckets);
}

/** A stable 32-bit seed from a cluster name (FNV-1a), so every node and every restart agree. */
export function seedFromName(name: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(name)) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}
