/**
 * nftables through libnftnl: transactions built from low-level register expressions (the ones
 * `nft --debug=netlink` prints), plus small helpers that make rules readable.
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
import {
  binding,
  type NativeHandle,
  type NftCmpOp,
  type NftCommand,
  type NftData,
  type NftElement,
  type NftElementInfo,
  type NftExpr,
  type NftFamily,
  type NftHook,
  type NftMetaKey,
  type NftPayloadBase,
  type NftRuleInfo,
  type NftSetFlag,
  type NftTableInfo,
  type NftTypeof,
  type NftVerdictName,
} from './binding.js';
import { InvalidArgumentError } from './errors.js';
import { Netns, closedError } from './netns.js';
import { got, show } from './validate.js';

const NFT_FAMILIES: readonly NftFamily[] = ['ip', 'ip6', 'inet', 'bridge', 'arp', 'netdev'];

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
};

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
    return Uint8Array.from(s.split('.').map(Number));
  },
  ipv6: (s: string): Uint8Array => {
    if (!isIPv6(s)) throw new InvalidArgumentError('ipv6', `${show(s)} is not an IPv6 address such as 2001:db8::1`);
    let str = s.split('%')[0];
    const v4 = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(str);
    if (v4) {
      const b = enc.ipv4(v4[2]);
      str = `${v4[1]}${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
    }
    const words16 = (x: string): number[] => (x === '' ? [] : x.split(':').map((h) => parseInt(h, 16)));
    const gap = str.indexOf('::');
    let words: number[];
    if (gap >= 0) {
      const head = words16(str.slice(0, gap));
      const tail = words16(str.slice(gap + 2));
      words = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
    } else {
      words = words16(str);
    }
    const out = new Uint8Array(16);
    words.forEach((w, i) => {
      out[2 * i] = w >> 8;
      out[2 * i + 1] = w & 0xff;
    });
    return out;
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
// Sets, chains, transactions

/** nft datatype ids and lengths for set keys and map data. */
export const NftTypes = {
  /** `integer` (`typeof meta cpu`, `meta mark`, hash results): host byte order. */
  integer: { type: 4, len: 4 },
  ipv4Addr: { type: 7, len: 4 },
  ipv6Addr: { type: 8, len: 16 },
  etherAddr: { type: 9, len: 6 },
  inetService: { type: 13, len: 2 },
  mark: { type: 19, len: 4 },
  ifname: { type: 41, len: 16 },
} as const;

export interface NftType {
  type: number;
  len: number;
}

/** Named chain priorities, as nft resolves them per family. */
export type NftPriorityName = 'raw' | 'mangle' | 'dstnat' | 'filter' | 'security' | 'srcnat' | 'out';

const PRIORITIES: Record<'inet' | 'bridge' | 'other', Partial<Record<NftPriorityName, number>>> = {
  inet: { raw: -300, mangle: -150, dstnat: -100, filter: 0, security: 50, srcnat: 100 },
  bridge: { dstnat: -300, filter: -200, out: 100, srcnat: 300 },
  other: { filter: 0 },
};

/** The number for a named priority in a family (`dstnat` is -300 in bridge, -100 in ip). */
export function priorityOf(family: NftFamily, p: number | NftPriorityName): number {
  if (typeof p === 'number') return p;
  const table = family === 'bridge' ? PRIORITIES.bridge : family === 'arp' || family === 'netdev' ? PRIORITIES.other : PRIORITIES.inet;
  const v = table[p];
  if (v === undefined)
    throw new InvalidArgumentError('priority', `priority ${show(p)} does not exist in the ${family} family; use a number or one of ${Object.keys(table).join(', ')}`);
  return v;
}

export interface TableOptions {
  /** A comment (< 128 bytes, no NUL), e.g. a mark saying who made the table. */
  comment?: string;
  /** Fail with EEXIST if the table exists, instead of adopting it. */
  exclusive?: boolean;
}

export interface ChainOptions {
  hook: NftHook;
  priority?: number | NftPriorityName;
  policy?: 'accept' | 'drop';
  type?: 'filter' | 'nat' | 'route';
  /** netdev ingress: the device. */
  device?: string;
}

export interface SetOptions {
  key: NftType;
  keyByteorder?: 'host' | 'big';
  /** For `nft list` only: print the key as `typeof ...` (e.g. {@link typeofMeta}('cpu')). */
  keyTypeof?: NftTypeof;
  flags?: NftSetFlag[];
  size?: number;
  comment?: string;
}

export interface MapOptions extends SetOptions {
  /** Data type (`NftTypes.etherAddr`) or `'verdict'`. */
  data: NftType | 'verdict';
  dataByteorder?: 'host' | 'big';
  /** For `nft list` only, e.g. `fields.etherDaddr.typeof`. */
  dataTypeof?: NftTypeof;
}

/** Flattens a rule written as expressions and expression groups. */
export type NftRuleParts = ReadonlyArray<NftExpr | readonly NftExpr[]>;

/**
 * One nftables transaction in one namespace. Queue commands, then {@link commit}: the kernel
 * applies all of them or none.
 */
export class NftTransaction {
  readonly #netns: Netns | undefined;
  readonly #commands: NftCommand[] = [];

  /** `netns` absent: the caller's own namespace. */
  constructor(netns?: Netns) {
    if (netns !== undefined && !(netns instanceof Netns))
      throw new InvalidArgumentError('netns', `expected a Netns (from Netns.create or Netns.open) or undefined for the caller's own namespace, ${got(netns)}`);
    this.#netns = netns;
  }

  /** The commands queued so far (the JSON sent to the addon). */
  get commands(): readonly NftCommand[] {
    return this.#commands;
  }

  /** Queues a raw command. */
  push(...cmds: NftCommand[]): this {
    this.#commands.push(...cmds);
    return this;
  }

  /**
   * Adds a table. `comment` is stored as nft stores table comments; `exclusive` makes an existing
   * table of that name fail the transaction with EEXIST (without it, an existing table is reused).
   */
  addTable(family: NftFamily, name: string, o: TableOptions = {}): this {
    return this.push({
      cmd: 'addTable',
      family,
      name,
      ...(o.comment !== undefined ? { comment: o.comment } : {}),
      ...(o.exclusive !== undefined ? { exclusive: o.exclusive } : {}),
    });
  }
  /** Deletes a table; with `handle` (from {@link listTables}) exactly that one, or ENOENT. */
  deleteTable(family: NftFamily, name: string, o: { handle?: number } = {}): this {
    return this.push({ cmd: 'deleteTable', family, name, ...(o.handle !== undefined ? { handle: o.handle } : {}) });
  }
  /** Deletes every rule of the table (chains and sets stay). */
  flushTable(family: NftFamily, name: string): this {
    return this.push({ cmd: 'flushTable', family, name });
  }

  /** A base chain with `o`, or a regular chain (jump target) without. */
  addChain(family: NftFamily, table: string, name: string, o?: ChainOptions): this {
    const c: NftCommand = { cmd: 'addChain', family, table, name };
    if (o) {
      c.hook = o.hook;
      c.priority = priorityOf(family, o.priority ?? 0);
      if (o.policy) c.policy = o.policy;
      if (o.type) c.chainType = o.type;
      if (o.device) c.device = o.device;
    }
    return this.push(c);
  }
  deleteChain(family: NftFamily, table: string, name: string): this {
    return this.push({ cmd: 'deleteChain', family, table, name });
  }
  flushChain(family: NftFamily, table: string, name: string): this {
    return this.push({ cmd: 'flushChain', family, table, name });
  }

  addSet(family: NftFamily, table: string, name: string, o: SetOptions): this {
    return this.push(setCommand(family, table, name, o, {}));
  }

  addMap(family: NftFamily, table: string, name: string, o: MapOptions): this {
    return this.push(
      setCommand(family, table, name, { ...o, flags: [...new Set<NftSetFlag>([...(o.flags ?? []), 'map'])] }, {
        ...(o.data === 'verdict' ? { dataType: 'verdict' as const } : { dataType: o.data.type, dataLen: o.data.len }),
        ...(o.dataByteorder ? { dataByteorder: o.dataByteorder } : {}),
        ...(o.dataTypeof ? { dataTypeof: o.dataTypeof } : {}),
      }),
    );
  }

  deleteSet(family: NftFamily, table: string, name: string): this {
    return this.push({ cmd: 'deleteSet', family, table, name });
  }
  /** Removes every element. */
  flushSet(family: NftFamily, table: string, name: string): this {
    return this.push({ cmd: 'flushSet', family, table, name });
  }

  /** Adds elements. An empty list sends nothing. */
  addElements(family: NftFamily, table: string, set: string, elements: NftElement[]): this {
    return elements.length ? this.push({ cmd: 'addElements', family, table, set, elements }) : this;
  }
  /** Deletes elements; deleting a missing one fails the whole transaction (ENOENT), so diff first. */
  deleteElements(family: NftFamily, table: string, set: string, elements: NftElement[]): this {
    return elements.length ? this.push({ cmd: 'deleteElements', family, table, set, elements }) : this;
  }

  /** Appends a rule; `exprs` may mix single expressions and groups from the helpers. */
  addRule(family: NftFamily, table: string, chain: string, exprs: NftRuleParts, comment?: string): this {
    const flat = exprs.flatMap((e) => (Array.isArray(e) ? (e as readonly NftExpr[]) : [e as NftExpr]));
    return this.push({ cmd: 'addRule', family, table, chain, exprs: flat, ...(comment !== undefined ? { comment } : {}) });
  }
  deleteRule(family: NftFamily, table: string, chain: string, handle: number): this {
    return this.push({ cmd: 'deleteRule', family, table, chain, handle });
  }

  /** Sends everything as one transaction and empties the queue. Throws the kernel's error. */
  async commit(): Promise<void> {
    if (this.#netns?.closed) throw closedError(this.#netns);
    const commands = this.#commands.splice(0);
    if (commands.length === 0) return;
    const [r] = await binding().submit([{ type: 'nft.batch', netns: handleOf(this.#netns), commands }], true);
    if (r instanceof Error) throw r;
  }
}

/** An `addSet` command (a map when `data` carries its data type). */
function setCommand(
  family: NftFamily,
  table: string,
  name: string,
  o: SetOptions,
  data: Pick<Extract<NftCommand, { cmd: 'addSet' }>, 'dataType' | 'dataLen' | 'dataByteorder' | 'dataTypeof'>,
): NftCommand {
  return {
    cmd: 'addSet',
    family,
    table,
    name,
    keyType: o.key.type,
    keyLen: o.key.len,
    ...(o.keyByteorder ? { keyByteorder: o.keyByteorder } : {}),
    ...(o.keyTypeof ? { keyTypeof: o.keyTypeof } : {}),
    ...data,
    ...(o.flags ? { flags: o.flags } : {}),
    ...(o.size !== undefined ? { size: o.size } : {}),
    ...(o.comment !== undefined ? { comment: o.comment } : {}),
  };
}

function handleOf(ns: Netns | undefined): NativeHandle | undefined {
  // Anything but a Netns would silently mean "the caller's own namespace".
  if (ns !== undefined && !(ns instanceof Netns))
    throw new InvalidArgumentError('netns', `expected a Netns (from Netns.create or Netns.open) or undefined for the caller's own namespace, ${got(ns)}`);
  if (ns?.closed) throw closedError(ns);
  return ns?.handle;
}

/** The rules of a table (or of one chain), in order, with their handles, comments and counters. */
export async function listRules(netns: Netns | undefined, family: NftFamily, table: string, chain?: string): Promise<NftRuleInfo[]> {
  const [r] = await binding().submit(
    [{ type: 'nft.list', netns: handleOf(netns), family, table, ...(chain !== undefined ? { chain } : {}) }],
    true,
  );
  if (r instanceof Error) throw r;
  return r as NftRuleInfo[];
}

/** The tables of a namespace (of one family, or all), with their handles and comments. */
export async function listTables(netns: Netns | undefined, family?: NftFamily): Promise<NftTableInfo[]> {
  if (family !== undefined && !NFT_FAMILIES.includes(family))
    throw new InvalidArgumentError('family', `${show(family)} is not an nftables family; use one of ${NFT_FAMILIES.join(', ')}`);
  const [r] = await binding().submit([{ type: 'nft.tables', netns: handleOf(netns), ...(family !== undefined ? { family } : {}) }], true);
  if (r instanceof Error) throw r;
  return r as NftTableInfo[];
}

/** The elements of a set or map (key/data as `0x<hex>`). */
export async function listElements(netns: Netns | undefined, family: NftFamily, table: string, set: string): Promise<NftElementInfo[]> {
  const [r] = await binding().submit([{ type: 'nft.elements', netns: handleOf(netns), family, table, set }], true);
  if (r instanceof Error) throw r;
  return r as NftElementInfo[];
}

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
