/**
 * The cluster's nftables rules, as data: pure functions from a resolved spec to
 * transactions. The host's table distributes (steer: a netdev table on the uplink port) or floods
 * (flood: a bridge table); each node's table counts and, in flood mode, keeps only the buckets the
 * node owns.
 * @module
 */
import type { NftFamily } from '../kernel/engine.js';
import type { HashMode } from './jhash.js';
import {
  NftTransaction,
  NftTypes,
  counter,
  enc,
  fields,
  fwdTo,
  hashInSet,
  hashOf,
  iifname,
  immediate,
  lookup,
  match,
  matchPrefix,
  metaSet,
  oifname,
  payloadSet,
  requireL4,
  requireProto,
  Reg,
  setField,
  snat,
  typeofMeta,
  verdict,
  type NftExpr,
  type NftField,
} from './nft.js';
import { markOf } from '../util/names.js';
import type { Netns } from '../kernel/netns.js';
import type { DataPlaneSpec } from './backend.js';
import type { Cidr } from '../util/validate.js';

/** The multicast MAC frames get inside the bridge so that it floods them (never seen outside). */
export const CMAC = '01:00:5e:00:00:20';

/** Names and addresses every part of the cluster agrees on. */
export interface Layout {
  table: string;
  /** The bridge port the outside comes in through. */
  uplinkPort: string;
  /** The MAC the outside sees for the VIP: the bridge's own. */
  vmac: string;
  nodeMacs: string[];
  /** Steer mode: node k's port on the bridge (the host end of its veth), where its packets are sent. */
  nodePorts: string[];
}

const ICMP = { ip: 1, ip6: 58 } as const;
const ND_SOLICIT = 135;
const ND_ADVERT = 136;
/** Offsets in an ICMPv6 neighbour solicitation/advertisement: the first option's type and its MAC. */
const ND_OPT_TYPE = 24;
const ND_OPT_MAC = 26;
const ND_OPT_SOURCE = 1;
const ND_OPT_TARGET = 2;

type IpFamily = 'ip' | 'ip6';

/** Rule pieces nest freely (helpers return groups); {@link flat} turns them into one expression list. */
type Parts = NftExpr | readonly Parts[];
const flat = (...parts: Parts[]): NftExpr[] => parts.flatMap((p) => (Array.isArray(p) ? flat(...(p as Parts[])) : [p as NftExpr]));

interface FamilyFields {
  family: IpFamily;
  saddr: NftField;
  daddr: NftField;
}

function familyOf(vip: Cidr): FamilyFields {
  return vip.family === 4
    ? { family: 'ip', saddr: fields.ipSaddr, daddr: fields.ipDaddr }
    : { family: 'ip6', saddr: fields.ip6Saddr, daddr: fields.ip6Daddr };
}

export function hashKeys(mode: HashMode, f: FamilyFields): NftField[] {
  if (mode === 'sourceip') return [f.saddr];
  if (mode === 'sourceip-sourceport') return [f.saddr, fields.thSport];
  return [f.saddr, fields.thSport, fields.thDport];
}

/** What is hashed: each service port by the spec's key; ICMP (pings, errors) by source address. */
interface FlowClass {
  match: Parts;
  keys: NftField[];
}

function flowClasses(spec: DataPlaneSpec, f: FamilyFields): FlowClass[] {
  if (spec.ports.length === 0) return [{ match: [], keys: hashKeys(spec.hash, f) }];
  return [
    ...spec.ports.map((p) => ({ match: [requireL4(p.protocol), match(fields.thDport, p.port)], keys: hashKeys(spec.hash, f) })),
    { match: [requireL4(ICMP[f.family])], keys: [f.saddr] },
  ];
}

/** A field at a transport-header offset (ICMPv6 type, option bytes). */
const th = (name: string, offset: number, len: number): NftField => ({ name, base: 'transport', offset, len });

const icmpv6Type = (type: number): Parts => [requireL4(ICMP.ip6), match(th('icmpv6 type', 0, 1), type)];

/**
 * Rewrites of what leaves through the uplink with the VIP as sender: ARP and ND carry the VMAC.
 * `oif`: the uplink's name to match (a bridge forward chain sees every port); undefined in a chain
 * bound to the uplink itself (netdev egress).
 */
function addEgressRewrites(tx: NftTransaction, spec: DataPlaneSpec, l: Layout, family: NftFamily, chain: string, oif: string | undefined): void {
  const out: Parts = oif === undefined ? [] : oifname(oif);
  for (const vip of spec.vips) {
    if (vip.family === 4) {
      tx.addRule(family, l.table, chain, flat(
        requireProto(family, 'arp'),
        match(fields.arpSaddrIp, vip.address),
        out,
        setField(fields.arpSaddrEther, l.vmac),
      ), 'arp-sender');
    } else {
      for (const [type, opt] of [[ND_ADVERT, ND_OPT_TARGET], [ND_SOLICIT, ND_OPT_SOURCE]] as const) {
        tx.addRule(family, l.table, chain, flat(
          requireProto(family, 'ip6'),
          match(fields.ip6Saddr, vip.address),
          icmpv6Type(type),
          match(th('nd option type', ND_OPT_TYPE, 1), opt),
          out,
          immediate(enc.mac(l.vmac)),
          // ICMPv6 checksum at offset 2 is fixed incrementally by the kernel.
          payloadSet(th('nd option lladdr', ND_OPT_MAC, 6), 1, { type: 'inet', offset: 2 }),
        ), type === ND_ADVERT ? 'nd-advert' : 'nd-solicit');
      }
    }
  }
}

/**
 * The family of the host's table: steer mode's is a netdev table whose chains are bound to the
 * uplink port (ingress and egress), flood mode's a bridge table.
 */
export function hostFamily(mode: DataPlaneSpec['mode']): 'netdev' | 'bridge' {
  return mode === 'steer' ? 'netdev' : 'bridge';
}

/** Every family a host table of a cluster can have (destroy and adopt look in all of them). */
export const HOST_FAMILIES: readonly NftFamily[] = ['netdev', 'bridge'];

/**
 * The host namespace's table: the whole distribution decision.
 *
 * Steer mode: a netdev table with two base chains bound to the uplink port. `in` (ingress) sees
 * only what arrives from the outside, before the bridge: the VIP's traffic is hashed and goes by the
 * bucket map to the owner's chain, which counts it, writes the owner's MAC and sends it out of the
 * owner's bridge port (see {@link nodeChainRule}); ARP/ND to the VIP is made multicast (every node
 * answers; the bridge floods it). `out`
 * (egress, Linux 5.16 and later) sees only what leaves through the uplink: ARP/ND with the VIP as
 * sender carry the VMAC. No other frame enters a chain (node to node, the nodes' own traffic
 * elsewhere), and no rule compares an interface name. Measured with benchmarks/dataplane.ts (the
 * `old rules` variant is the bridge-hook rule set this replaced, `through the bridge` this table
 * with `accept` in place of `fwd`).
 *
 * A netdev chain belongs to its device: Linux 6.1 deletes the chain (with its rules) when the uplink
 * is removed (from its source), 6.18 keeps it and attaches it again to a device of that name.
 * readActual (lib/cluster/apply.ts) counts the table's rules per chain, so a lost chain shows as
 * different, and an apply (adopt) replaces the table whole.
 */
export function hostRules(spec: DataPlaneSpec, l: Layout, netns?: Netns): NftTransaction {
  return spec.mode === 'steer' ? steerHostRules(spec, l, netns) : floodHostRules(spec, l, netns);
}

/** Steer mode: the host's chain for node k (its counter, its MAC, its port), the bucket map's target. */
export const nodeChain = (k: number): string => `node${k}`;

/**
 * Steer mode: the one rule of a node's chain in the host table (comment 'accept'): count, write
 * the node's MAC, and send the frame out of the node's bridge port at once (`fwd`), past the bridge:
 * its hook, forwarding database lookup and forward path (and br_netfilter where it is on) cost more
 * than the whole rule (benchmarks/dataplane.ts, the `through the bridge` variant). The rule holds
 * the port's index, looked up when it is sent: a port made again needs the rule made again
 * (readActual compares the two).
 */
export function nodeChainRule(mac: string, port: string): NftExpr[] {
  return flat(counter(), setField(fields.etherDaddr, mac), fwdTo(port));
}

function steerHostRules(spec: DataPlaneSpec, l: Layout, netns?: Netns): NftTransaction {
  const tx = new NftTransaction(netns);
  const t = l.table;
  const fam: NftFamily = 'netdev';
  // Marked as the cluster's, and never adopted: an existing table of that name fails the build.
  tx.addTable(fam, t, { comment: markOf(spec.name), exclusive: true });
  tx.addChain(fam, t, 'in', { hook: 'ingress', device: l.uplinkPort, priority: 'filter', policy: 'accept' });
  tx.addChain(fam, t, 'out', { hook: 'egress', device: l.uplinkPort, priority: 'filter', policy: 'accept' });
  // One chain per node: counts what is steered to the node (cluster.counters(), the per-node
  // metrics: the nodes need no table of their own in steer mode) and writes its MAC. A bucket move
  // changes map elements only, so the counters go on across moves and node down/up.
  l.nodeMacs.forEach((mac, k) => {
    tx.addChain(fam, t, nodeChain(k));
    tx.addRule(fam, t, nodeChain(k), nodeChainRule(mac, l.nodePorts[k]), 'accept');
  });
  // bucket → goto node<k>. With its size given (the number of buckets: a move deletes and adds in
  // one transaction, which the kernel counts as such), the kernel picks its fixed-size hash for
  // 4-byte keys (nft_hash_fast) instead of the resizable one: a cheaper lookup per packet
  // (benchmarks/dataplane.ts, the `sized map` variant).
  // (nft 1.0.6 lists this map's key as `type 0`; the kernel and the elements are as built.)
  tx.addMap(fam, t, 'buckets', { key: NftTypes.integer, keyByteorder: 'host', keyTypeof: typeofMeta('cpu'), data: 'verdict', size: spec.buckets });
  for (const vip of spec.vips) {
    const f = familyOf(vip);
    const toVip: Parts = [requireProto(fam, f.family), match(f.daddr, vip.address)];
    if (vip.family === 6) {
      // Neighbour discovery to the VIP reaches every node, as ARP does: whichever node asked gets its answer.
      for (const type of [ND_SOLICIT, ND_ADVERT]) {
        tx.addRule(fam, t, 'in', flat(...toVip, icmpv6Type(type), setField(fields.etherDaddr, CMAC), verdict('accept')), 'nd');
      }
    }
    for (const c of flowClasses(spec, f)) {
      tx.addRule(fam, t, 'in', flat(
        ...toVip,
        c.match,
        hashOf({ keys: c.keys, modulus: spec.buckets, seed: spec.seed, dreg: Reg.r1 }),
        lookup('buckets', { sreg: Reg.r1, dreg: Reg.verdict }),
      ), 'steer');
    }
    // A bucket without an owner: the lookup finds nothing and the packet ends here.
    tx.addRule(fam, t, 'in', flat(...toVip, counter(), verdict('drop')), 'no-owner');
  }
  for (const vip of spec.vips) {
    if (vip.family !== 4) continue;
    tx.addRule(fam, t, 'in', flat(
      requireProto(fam, 'arp'),
      match(fields.arpDaddrIp, vip.address),
      setField(fields.etherDaddr, CMAC),
    ), 'arp');
  }
  addEgressRewrites(tx, spec, l, fam, 'out', undefined);
  return tx;
}

function floodHostRules(spec: DataPlaneSpec, l: Layout, netns?: Netns): NftTransaction {
  const tx = new NftTransaction(netns);
  const t = l.table;
  // Marked as the cluster's, and never adopted: an existing table of that name fails the build.
  tx.addTable('bridge', t, { comment: markOf(spec.name), exclusive: true });
  tx.addChain('bridge', t, 'pre', { hook: 'prerouting', priority: 'dstnat', policy: 'accept' });
  tx.addChain('bridge', t, 'fwd_out', { hook: 'forward', priority: 'filter', policy: 'accept' });
  tx.addChain('bridge', t, 'in', { hook: 'input', priority: 'filter', policy: 'accept' });
  for (const vip of spec.vips) {
    const f = familyOf(vip);
    // Cheap compares first, the interface name last: a frame that is not for the VIP (replies, other
    // traffic), or not of the rule's kind, fails before the name is copied out for comparison
    // (nft_meta_store_ifname; measured with benchmarks/dataplane.ts).
    const toVip: Parts = [requireProto('bridge', f.family), match(f.daddr, vip.address)];
    tx.addRule('bridge', t, 'pre', flat(...toVip, iifname(l.uplinkPort), setField(fields.etherDaddr, CMAC), verdict('accept')), 'flood');
    tx.addRule('bridge', t, 'in', flat(requireProto('bridge', f.family), match(f.daddr, vip.address), verdict('drop')), 'own-copy');
  }
  for (const vip of spec.vips) {
    if (vip.family !== 4) continue;
    tx.addRule('bridge', t, 'pre', flat(
      requireProto('bridge', 'arp'),
      match(fields.arpDaddrIp, vip.address),
      iifname(l.uplinkPort),
      setField(fields.etherDaddr, CMAC),
    ), 'arp');
  }
  addEgressRewrites(tx, spec, l, 'bridge', 'fwd_out', l.uplinkPort);
  return tx;
}

/** Flood mode: the table in node `index`, its bucket filter and counters (steer mode has none). */
export function nodeRules(spec: DataPlaneSpec, l: Layout, owned: number[], netns?: Netns): NftTransaction {
  const tx = new NftTransaction(netns);
  const fam: NftFamily = 'inet';
  const t = l.table;
  tx.addTable(fam, t, { comment: markOf(spec.name), exclusive: true });
  tx.addChain(fam, t, 'pre', { hook: 'prerouting', priority: 'raw', policy: 'accept' });
  tx.addSet(fam, t, 'owned', { key: NftTypes.integer, keyByteorder: 'host', keyTypeof: typeofMeta('cpu') });
  tx.addElements(fam, t, 'owned', owned.map((b) => ({ key: b })));
  const setHost: Parts = [immediate(enc.u8(0)), metaSet('pkttype')]; // PACKET_HOST
  for (const vip of spec.vips) {
    const f = familyOf(vip);
    const toVip: Parts = [requireProto(fam, f.family), match(f.daddr, vip.address)];
    if (vip.family === 6) {
      for (const type of [ND_SOLICIT, ND_ADVERT]) tx.addRule(fam, t, 'pre', flat(...toVip, icmpv6Type(type), setHost, verdict('accept')), 'nd');
    }
    for (const c of flowClasses(spec, f)) {
      tx.addRule(fam, t, 'pre', flat(
        ...toVip,
        c.match,
        hashInSet({ keys: c.keys, modulus: spec.buckets, seed: spec.seed, set: 'owned', invert: true }),
        counter(),
        verdict('drop'),
      ), 'drop');
      tx.addRule(fam, t, 'pre', flat(...toVip, c.match, counter(), setHost, verdict('accept')), 'accept');
    }
    tx.addRule(fam, t, 'pre', flat(...toVip, counter(), verdict('drop')), 'drop');
  }
  return tx;
}

/**
 * Source NAT in a node: what comes from `networks` (e.g. VPN client pools) and leaves through the
 * node's eth0 takes the node's unique address — never the VIP, whose replies would be hashed to
 * whichever node owns the remote's bucket.
 */
export function snatRules(l: Layout, networks: string[], address: string, mark: string, netns?: Netns): NftTransaction {
  const tx = new NftTransaction(netns);
  const fam: NftFamily = 'inet';
  // The node's table: flood mode's (adding an existing table changes nothing), or in steer mode,
  // where nodes have no table of their own, made here.
  tx.addTable(fam, l.table, { comment: mark });
  // The nat chain turns connection tracking on in the node, VIP traffic included. Measured
  // (benchmarks/dataplane.ts, `+ conntrack` and `+ VIP notrack` variants): for long-lived flows such
  // as VPN tunnels, tracking costs less per packet than the raw chains that would exempt the VIP's
  // traffic (two more hook traversals), so the VIP's traffic stays tracked.
  tx.addChain(fam, l.table, 'post', { hook: 'postrouting', priority: 'srcnat', type: 'nat', policy: 'accept' });
  const v6 = address.includes(':');
  for (const net of networks.filter((n) => n.includes(':') === v6)) {
    const f = v6 ? fields.ip6Saddr : fields.ipSaddr;
    tx.addRule(fam, l.table, 'post', flat(requireProto(fam, v6 ? 'ip6' : 'ip'), oifname('eth0'), matchPrefix(f, net), counter(), snat(address)), 'snat');
  }
  return tx;
}

/** Steer mode: the bucket map's elements for an owner table (-1 = no owner: left out, so dropped). */
export function bucketElements(owners: number[]): { key: number; verdict: 'goto'; chain: string }[] {
  return owners.flatMap((node, b) => (node >= 0 ? [{ key: b, verdict: 'goto' as const, chain: nodeChain(node) }] : []));
}
