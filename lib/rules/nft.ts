/**
 * nftables rules as data: low-level register expressions (the ones `nft --debug=netlink` prints)
 * and small helpers that make rules readable. Transactions are sent by lib/kernel/nft.ts.
 *
 * ```ts
 * const tx = new NftTransaction(host);
 * tx.addTable('bridge', 'p')
 *   .addMap('bridge', 'p', 'buckets', { key: NftTypes.integer, data: NftTypes.etherAddr, keyByteorder: 'host' })
 *   .addChain('bridge', 'p', 'pre', { hook: 'prerouting', priority: 'dstnat', policy: 'accept' })
 *   .addRule('bridge', 'p', 'pre', [
 *     iifname('up0'), requireProto('bridge', 'ip'), match(fields.ipDaddr, '192.0.2.1'),
 *     hashMapSet({ keys: [fields.ipSaddr], modulus: 64, seed: 0x1234, map: 'buckets', target: fields.etherDaddr }),
 *     verdict('accept'),
 *   ]);
 * await tx.commit();
 * ```
 * A transaction is applied by the kernel as a whole or not at all; a failure names the command
 * that caused it (e.g. `ENOENT ... add chain ip t c #1`).
 * @module
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { NftCmpOp, NftData, NftExpr, NftFamily, NftMetaKey, NftPayloadBase, NftTypeof, NftVerdictName } from '../kernel/engine.js';
import { listElements, listRules, listTables, NftTransaction, NftTypes, priorityOf } from '../kernel/nft.js';
import { InvalidArgumentError } from '../util/errors.js';
import { ipBytes } from '../util/ipmath.js';
import { checkIfname, show } from '../util/validate.js';

export * from '../kernel/nft.js';

export type {
  NftCmpOp,
  NftCommand,
  NftData,
  NftElement,
  NftElementInfo,
  NftExpr,
  NftFamily,
  NftHook,
  NftMetaKey,
  NftPayloadBase,
  NftRuleInfo,
  NftSetFlag,
  NftTableInfo,
  NftTypeof,
  NftVerdictName,
} from '../kernel/engine.js';

// ---------------------------------------------------------------------------------------------
// Registers and values

/** Register numbers: 0 is the verdict; 1..4 are 16 bytes wide; 8..23 are 32-bit views of them. */
export const Reg = {
  verdict: 0,
  r1: 1,
  r2: 2,
  r3: 3,
  r4: 4,
  /** The i-th 32-bit register (0..15); `r32(0)` aliases the first word of `r1`. */
  r32: (i: number): number => {
    if (!Number.isInteger(i) || i < 0 || i > 15) throw new InvalidArgumentError('register', `there is no 32-bit register ${show(i)}; use 0 to 15`);
    return 8 + i;
  },
} as const;

function checkU(what: string, n: number, bits: number): number {
  if (!Number.isInteger(n) || n < 0 || n >= 2 ** bits) throw new InvalidArgumentError(what, `${show(n)} is not a u${bits}: use an integer from 0 to ${2 ** bits - 1}`);
  return n;
}

/** Value encoders: the exact bytes nft puts in a register. */
export const enc = {
  u8: (n: number): Uint8Array => Uint8Array.of(checkU('u8', n, 8)),
  /** Network byte order, e.g. ports and ethertypes. */
  u16be: (n: number): Uint8Array => {
    checkU('u16', n, 16);
    return Uint8Array.of(n >> 8, n & 0xff);
  },
  u32be: (n: number): Uint8Array => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, checkU('u32', n, 32), false);
    return b;
  },
  /** Host byte order: nft's integer types such as `meta cpu` or `meta mark`. */
  u32: (n: number): Uint8Array => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, checkU('u32', n, 32), true);
    return b;
  },
  ipv4: (s: string): Uint8Array => {
    if (!isIPv4(s)) throw new InvalidArgumentError('ipv4', `${show(s)} is not an IPv4 address such as 192.0.2.1`);
    return ipBytes(s);
  },
  ipv6: (s: string): Uint8Array => {
    if (!isIPv6(s)) throw new InvalidArgumentError('ipv6', `${show(s)} is not an IPv6 address such as 2001:db8::1`);
    return ipBytes(s);
  },
  mac: (s: string): Uint8Array => {
    if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(s)) throw new InvalidArgumentError('mac', `${show(s)} is not a MAC address; write it as 02:00:00:00:00:01`);
    return Uint8Array.from(s.split(':').map((x) => parseInt(x, 16)));
  },
  /**
   * An interface name as `iifname`/`oifname` compare it: 16 bytes, zero padded. A trailing `*`
   * makes a prefix match (`eth*`), as in nft.
   */
  ifname: (name: string): Uint8Array => {
    const wildcard = name.endsWith('*');
    const base = wildcard ? name.slice(0, -1) : name;
    const bytes = Buffer.from(base, 'utf8');
    if (bytes.length > 15 || (!wildcard && bytes.length === 0)) throw new InvalidArgumentError('ifname', `bad interface name: ${show(name)} must be 1 to 15 bytes (a trailing * for a prefix match)`);
    if (wildcard) return new Uint8Array(bytes);
    const out = new Uint8Array(16);
    out.set(bytes);
    return out;
  },
  hex: (s: string): Uint8Array => {
    const h = s.replace(/^0x/, '');
    if (!/^([0-9a-f]{2})+$/i.test(h)) throw new InvalidArgumentError('hex', `${show(s)} is not a hex string: write 0x and pairs of hex digits`);
    return Uint8Array.from(h.match(/../g)!.map((x) => parseInt(x, 16)));
  },
};

// ---------------------------------------------------------------------------------------------
// Header fields

/** A header field: where a payload expression reads or writes it. */
export interface NftField {
  readonly base: NftPayloadBase;
  readonly offset: number;
  readonly len: number;
  /** nft's name for it, e.g. `ip saddr` (for messages). */
  readonly name: string;
  /** nft's `typeof` description, when known: lets `nft list` print a set typed by this field. */
  readonly typeof?: NftTypeof;
}

const field = (name: string, base: NftPayloadBase, offset: number, len: number, typeOf?: NftTypeof): NftField =>
  Object.freeze({ name, base, offset, len, ...(typeOf ? { typeof: typeOf } : {}) });

/** `typeof meta <key>` for a set key or map data. */
export function typeofMeta(key: NftMetaKey): NftTypeof {
  return { expr: 'meta', key };
}

/** Common header fields (offsets as nft uses them). Network/transport fields need a protocol check first, see {@link requireProto}. */
export const fields = {
  etherDaddr: field('ether daddr', 'll', 0, 6, { expr: 'payload', desc: 17, field: 1 }),
  etherSaddr: field('ether saddr', 'll', 6, 6, { expr: 'payload', desc: 17, field: 2 }),
  etherType: field('ether type', 'll', 12, 2),
  ipProtocol: field('ip protocol', 'network', 9, 1),
  ipSaddr: field('ip saddr', 'network', 12, 4),
  ipDaddr: field('ip daddr', 'network', 16, 4),
  ip6Nexthdr: field('ip6 nexthdr', 'network', 6, 1),
  ip6Saddr: field('ip6 saddr', 'network', 8, 16),
  ip6Daddr: field('ip6 daddr', 'network', 24, 16),
  thSport: field('th sport', 'transport', 0, 2),
  thDport: field('th dport', 'transport', 2, 2),
  arpOp: field('arp operation', 'network', 6, 2),
  arpSaddrEther: field('arp saddr ether', 'network', 8, 6),
  arpSaddrIp: field('arp saddr ip', 'network', 14, 4),
  arpDaddrEther: field('arp daddr ether', 'network', 18, 6),
  arpDaddrIp: field('arp daddr ip', 'network', 24, 4),
} as const;

/** Encodes a value for a field: numbers big-endian in the field's width, addresses as bytes. */
export function encodeFor(f: NftField, v: NftData): Uint8Array {
  let b: Uint8Array;
  if (v instanceof Uint8Array) b = v;
  else if (typeof v === 'number') {
    checkU(f.name, v, Math.min(f.len * 8, 32));
    b = new Uint8Array(f.len);
    let x = v;
    for (let i = f.len - 1; i >= 0; i--) {
      b[i] = x & 0xff;
      x = Math.floor(x / 256);
    }
  } else if (isIPv4(v)) b = enc.ipv4(v);
  else if (isIPv6(v)) b = enc.ipv6(v);
  else if (/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(v)) b = enc.mac(v);
  else if (v.startsWith('0x')) b = enc.hex(v);
  else throw new InvalidArgumentError(f.name, `cannot encode ${show(v)}: give a number, an address, a MAC, 0x<hex> or a Uint8Array`);
  if (b.length !== f.len) throw new InvalidArgumentError(f.name, `the value is ${b.length} bytes, the field is ${f.len}`);
  return b;
}

// ---------------------------------------------------------------------------------------------
// Expressions (one kernel expression each)

/** `payload load <len>b @ <base> header + <offset> => reg <dreg>` */
export function payload(f: NftField, dreg: number = Reg.r1): NftExpr {
  return { type: 'payload', base: f.base, offset: f.offset, len: f.len, dreg };
}

/** `payload write reg <sreg> => ...` (checksum fixing optional: `{ type: 'inet', offset, flags }`). */
export function payloadSet(
  f: NftField,
  sreg: number = Reg.r1,
  csum?: { type: 'none' | 'inet' | 'sctp'; offset: number; flags?: number },
): NftExpr {
  return {
    type: 'payload',
    base: f.base,
    offset: f.offset,
    len: f.len,
    sreg,
    csumType: csum?.type ?? 'none',
    csumOffset: csum?.offset ?? 0,
    csumFlags: csum?.flags ?? 0,
  };
}

/** `meta load <key> => reg <dreg>` */
export function meta(key: NftMetaKey, dreg: number = Reg.r1): NftExpr {
  return { type: 'meta', key, dreg };
}

/** `meta set <key> with reg <sreg>` */
export function metaSet(key: NftMetaKey, sreg: number = Reg.r1): NftExpr {
  return { type: 'meta', key, sreg };
}

/** `cmp <op> reg <sreg> <data>` */
export function cmp(op: NftCmpOp, data: NftData, sreg: number = Reg.r1): NftExpr {
  return { type: 'cmp', sreg, op, data };
}

/** `reg <dreg> = (reg <sreg> & mask) ^ xor` */
export function bitwise(mask: NftData, xor: NftData, sreg: number = Reg.r1, dreg: number = sreg): NftExpr {
  return { type: 'bitwise', sreg, dreg, mask, xor };
}

/** `hash reg <dreg> = jhash(reg <sreg>, <len>, <seed>) % mod <modulus> [+ offset]`. The seed is mandatory on purpose. */
export function jhash(o: { sreg: number; len: number; modulus: number; seed: number; offset?: number; dreg: number }): NftExpr {
  return { type: 'hash', hashType: 'jhash', ...o };
}

/** `lookup reg <sreg> set <set> [dreg <dreg>]`; `invert` for `!= @set`. */
export function lookup(set: string, o: { sreg?: number; dreg?: number; invert?: boolean } = {}): NftExpr {
  const e: NftExpr = { type: 'lookup', set, sreg: o.sreg ?? Reg.r1 };
  if (o.dreg !== undefined) e.dreg = o.dreg;
  if (o.invert) e.invert = true;
  return e;
}

/** `immediate reg <dreg> <data>` */
export function immediate(data: NftData, dreg: number = Reg.r1): NftExpr {
  return { type: 'immediate', dreg, data };
}

/**
 * `fwd to "<ifname>"` (netdev family): the packet leaves through that link at once, past
 * everything else on this device (a bridge it is a port of). The link's index is looked up when
 * the transaction is sent, in the table's namespace, so the link may be made earlier in the same
 * job; the rule keeps that index (a link made again later needs the rule made again).
 */
export function fwdTo(ifname: string): NftExpr[] {
  return [{ type: 'immediate', dreg: Reg.r1, ifindexOf: checkIfname('ifname', ifname) }, { type: 'fwd', sreg: Reg.r1 }];
}

/** A verdict (`immediate reg 0 accept`); jump/goto take a chain. */
export function verdict(v: Exclude<NftVerdictName, 'jump' | 'goto'>): NftExpr;
export function verdict(v: 'jump' | 'goto', chain: string): NftExpr;
export function verdict(v: NftVerdictName, chain?: string): NftExpr {
  if (v === 'jump' || v === 'goto') {
    if (!chain) throw new InvalidArgumentError('chain', `verdict ${v} needs the name of the chain to ${v} to`);
    return { type: 'verdict', verdict: v, chain };
  }
  return { type: 'verdict', verdict: v };
}

/** `snat to <address>` (in a `nat` chain at postrouting): the address goes in a register first. */
export function snat(address: string): NftExpr[] {
  const family = isIPv4(address) ? 'ip' : 'ip6';
  return [immediate(family === 'ip' ? enc.ipv4(address) : enc.ipv6(address), Reg.r1), { type: 'nat', natType: 'snat', family, regAddrMin: Reg.r1 }];
}

/** `notrack`: conntrack leaves the packet alone (only in a chain that runs before it: priority raw). */
export function notrack(): NftExpr {
  return { type: 'notrack' };
}

/** A counter (read back with {@link listRules}). */
export function counter(): NftExpr {
  return { type: 'counter' };
}

// ---------------------------------------------------------------------------------------------
// Readable combinations (each returns the expressions nft itself would generate)

/** `<field> <op> <value>`: load into reg 1 and compare. */
export function match(f: NftField, value: NftData, op: NftCmpOp = 'eq'): NftExpr[] {
  return [payload(f, Reg.r1), cmp(op, encodeFor(f, value), Reg.r1)];
}

/** `meta <key> <op> <value>`; numbers are u32 host order unless given as bytes. */
export function matchMeta(key: NftMetaKey, value: NftData, op: NftCmpOp = 'eq'): NftExpr[] {
  return [meta(key, Reg.r1), cmp(op, value, Reg.r1)];
}

/** `<field> <network>/<prefix>`: mask the loaded field, then compare (e.g. `ip saddr 10.8.0.0/24`). */
export function matchPrefix(f: NftField, cidr: string): NftExpr[] {
  const [net, bitsText] = cidr.split('/');
  const bytes = encodeFor(f, net);
  const bits = Number(bitsText ?? bytes.length * 8);
  if (!Number.isInteger(bits) || bits < 0 || bits > bytes.length * 8) throw new InvalidArgumentError(f.name, `the prefix length in ${show(cidr)} must be 0 to ${bytes.length * 8}`);
  const mask = bytes.map((_, i) => (i * 8 >= bits ? 0 : i * 8 + 8 <= bits ? 0xff : (0xff << (8 - (bits - i * 8))) & 0xff));
  return [payload(f, Reg.r1), bitwise(mask, new Uint8Array(bytes.length), Reg.r1, Reg.r1), cmp('eq', bytes.map((b, i) => b & mask[i]), Reg.r1)];
}

/** `iifname "<name>"` (trailing `*` for a prefix match). */
export function iifname(name: string, op: 'eq' | 'neq' = 'eq'): NftExpr[] {
  return [meta('iifname', Reg.r1), cmp(op, enc.ifname(name), Reg.r1)];
}

/** `oifname "<name>"` */
export function oifname(name: string, op: 'eq' | 'neq' = 'eq'): NftExpr[] {
  return [meta('oifname', Reg.r1), cmp(op, enc.ifname(name), Reg.r1)];
}

const ETHERTYPE = { ip: 0x0800, ip6: 0x86dd, arp: 0x0806 } as const;
const NFPROTO = { ip: 2, ip6: 10, arp: 3 } as const;

/**
 * The protocol check a network-header match needs in this family, as nft adds it: nothing in a
 * table of that protocol's own family, `meta nfproto` in inet, `meta protocol` for IP in
 * bridge/netdev, `ether type arp` for ARP in bridge.
 */
export function requireProto(family: NftFamily, proto: 'ip' | 'ip6' | 'arp'): NftExpr[] {
  if (family === proto) return [];
  if (family === 'inet') {
    if (proto === 'arp') throw new InvalidArgumentError('proto', 'inet tables do not see ARP; use an arp or bridge table');
    return [meta('nfproto', Reg.r1), cmp('eq', enc.u8(NFPROTO[proto]), Reg.r1)];
  }
  if (family === 'bridge' && proto === 'arp') return match(fields.etherType, ETHERTYPE.arp);
  if (family === 'bridge' || family === 'netdev')
    return [meta('protocol', Reg.r1), cmp('eq', enc.u16be(ETHERTYPE[proto]), Reg.r1)];
  throw new InvalidArgumentError('proto', `a ${family} table does not see ${proto} packets; use an inet, bridge or ${proto} table`);
}

/** `meta l4proto <tcp|udp|number>`: the check `th sport/dport` matches need. */
export function requireL4(proto: 'tcp' | 'udp' | 'sctp' | number): NftExpr[] {
  const n = typeof proto === 'number' ? proto : { tcp: 6, udp: 17, sctp: 132 }[proto];
  return [meta('l4proto', Reg.r1), cmp('eq', enc.u8(n), Reg.r1)];
}

/** `<field> set <value>` */
export function setField(f: NftField, value: NftData): NftExpr[] {
  return [immediate(encodeFor(f, value), Reg.r1), payloadSet(f, Reg.r1)];
}

/**
 * Loads a concatenation of fields like nft does (`ip saddr . th sport . th dport`): each field
 * padded to 32 bits, consecutive from the first word of `start` (default reg 2). Returns the
 * expressions, the first register and the total length to hash.
 */
export function loadConcat(keys: readonly NftField[], start: number = Reg.r2): { exprs: NftExpr[]; sreg: number; len: number } {
  if (keys.length === 0) throw new InvalidArgumentError('keys', 'give at least one field to load');
  let word = start >= 8 ? start - 8 : (start - 1) * 4;
  const exprs: NftExpr[] = [];
  let len = 0;
  keys.forEach((k, i) => {
    const words = Math.ceil(k.len / 4);
    exprs.push(payload(k, i === 0 ? start : Reg.r32(word)));
    word += words;
    len += words * 4;
  });
  if (word > 16) throw new InvalidArgumentError('keys', 'the fields do not fit in the registers (64 bytes); use fewer or shorter fields');
  return { exprs, sreg: start, len: keys.length === 1 ? keys[0].len : len };
}

/** `jhash <keys> mod <modulus> seed <seed>` into `dreg` (default reg 1). */
export function hashOf(o: { keys: readonly NftField[]; modulus: number; seed: number; offset?: number; dreg?: number }): NftExpr[] {
  const { exprs, sreg, len } = loadConcat(o.keys);
  return [
    ...exprs,
    jhash({ sreg, len, modulus: o.modulus, seed: o.seed, ...(o.offset !== undefined ? { offset: o.offset } : {}), dreg: o.dreg ?? Reg.r1 }),
  ];
}

/** `<target> set jhash <keys> mod M seed S map @<map>` (the STEER rule). */
export function hashMapSet(o: { keys: readonly NftField[]; modulus: number; seed: number; map: string; target: NftField }): NftExpr[] {
  return [
    ...hashOf({ keys: o.keys, modulus: o.modulus, seed: o.seed, dreg: Reg.r1 }),
    lookup(o.map, { sreg: Reg.r1, dreg: Reg.r1 }),
    payloadSet(o.target, Reg.r1),
  ];
}

/** `jhash <keys> mod M seed S [!=] @<set>` (the FLOOD node rule). */
export function hashInSet(o: { keys: readonly NftField[]; modulus: number; seed: number; set: string; invert?: boolean }): NftExpr[] {
  return [
    ...hashOf({ keys: o.keys, modulus: o.modulus, seed: o.seed, dreg: Reg.r1 }),
    lookup(o.set, { sreg: Reg.r1, invert: o.invert }),
  ];
}

// ---------------------------------------------------------------------------------------------
/** Everything above under one name. */
export const Nft = {
  Transaction: NftTransaction,
  Reg,
  enc,
  fields,
  types: NftTypes,
  typeofMeta,
  encodeFor,
  payload,
  payloadSet,
  meta,
  metaSet,
  cmp,
  bitwise,
  jhash,
  lookup,
  immediate,
  fwdTo,
  verdict,
  counter,
  notrack,
  snat,
  match,
  matchPrefix,
  matchMeta,
  iifname,
  oifname,
  requireProto,
  requireL4,
  setField,
  loadConcat,
  hashOf,
  hashMapSet,
  hashInSet,
  priorityOf,
  listRules,
  listElements,
  listTables,
} as const;
