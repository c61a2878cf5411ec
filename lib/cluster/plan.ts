/**
 * The cluster as data: {@link planCluster} turns a resolved spec (and a few facts about the host)
 * into every namespace, link, address, route, sysctl and nft table the cluster consists of, keyed
 * by stable names, plus the bucket table. It is pure and needs no root: `netns-cluster plan` prints
 * it, tests check it, and the build, adopt and update all apply it through {@link planBatch}.
 * @module
 */
import type { NftCommand } from '../kernel/engine.js';
import { lastHost, localMac, nthHost } from '../util/ipmath.js';
import { clusterNames, markOf } from '../util/names.js';
import type { Layout } from '../rules/ruleset.js';
import { BRIDGE_NF_SYSCTLS, FORWARDING_SYSCTLS } from '../util/defaults.js';
import { backendFor } from '../rules/backend.js';
import type { IptablesKind, IptablesRuleset } from '../rules/iptables.js';
import { rulesetOp } from '../rules/iptables-backend.js';
import type { ResolvedSpec } from './spec.js';
import type { Cidr } from '../util/validate.js';
import { Batch, type Netns } from '../kernel/netns.js';

/** One node as the plan gives it. */
export interface PlannedNode {
  index: number;
  /** Its namespace (usable with `ip -n`). */
  netns: string;
  /** Its interface on the bridge (inside its namespace). */
  ifname: string;
  mac: string;
  /** Its unique address on the first node network. */
  address: string;
  /** One unique address per node network. */
  addresses: string[];
}

/** A link the cluster creates (in the host namespace unless `netns` names a node). */
export interface PlannedLink {
  kind: 'bridge' | 'veth';
  name: string;
  /** undefined: the host namespace. */
  netns?: string;
  master?: string;
  mac?: string;
  up: boolean;
  /** A veth's other end. */
  peer?: { name: string; netns?: string; mac?: string; up: boolean };
  /**
   * A bridge port that frames to unknown MACs are not flooded to (steer mode's node ports: the
   * steered traffic passes the bridge by, so the bridge may not know the peers the nodes answer;
   * those answers go out of the uplink alone, not to every node too).
   */
  unicastFlood?: false;
}

export interface PlannedAddress {
  netns?: string;
  ifname: string;
  cidr: string;
}

export interface PlannedRoute {
  netns?: string;
  destination: string;
  via?: string;
  dev?: string;
}

export interface PlannedSysctl {
  netns?: string;
  key: string;
  value: string;
}

/** One nft table, with everything in it, as one transaction's commands. */
export interface PlannedTable {
  netns?: string;
  family: 'bridge' | 'netdev' | 'inet';
  name: string;
  commands: NftCommand[];
}

/** One node's legacy iptables rules (backend 'iptables'), installed with one iptc_commit. */
export interface PlannedRuleset extends IptablesRuleset {
  netns: string;
}

/** What the plan needs to know about the host (read by the cluster's preflight). */
export interface HostFacts {
  /** br_netfilter switches of the host namespace that exist, with their values. */
  bridgeNetfilter?: Record<string, string>;
  /**
   * Backend 'iptables', variant 'auto': what the kernel offers (iptablesSupport()). Without it,
   * 'auto' plans xt_cluster.
   */
  iptables?: Record<IptablesKind, boolean>;
}

export interface ClusterPlan {
  name: string;
  /** The mark every object carries. */
  mark: string;
  hostNetns: string | undefined;
  bridge: string;
  /** The MAC the outside sees for the VIP (the bridge's). */
  vmac: string;
  layout: Layout;
  nodes: PlannedNode[];
  /** Node namespaces, in order. */
  namespaces: string[];
  /** A bridged uplink: the user's interface, enslaved to the bridge and set up (not created). */
  uplink?: { ifname: string; master: string };
  links: PlannedLink[];
  addresses: PlannedAddress[];
  routes: PlannedRoute[];
  sysctls: PlannedSysctl[];
  tables: PlannedTable[];
  /** The packet filter backend ('nftables', 'iptables (xt_cluster)', 'iptables (clusterip)'). */
  backend: string;
  /** Backend 'iptables': each node's rules. */
  rulesets: PlannedRuleset[];
  /** Owner of every bucket (index = bucket). */
  buckets: number[];
}


/** The nodes of a spec: namespaces, MACs (derived from the seed) and unique addresses. */
export function planNodes(spec: ResolvedSpec, count = spec.nodes): { vmac: string; nodes: PlannedNode[] } {
  const names = clusterNames(spec.name);
  const s = spec.seed;
  const mac = (n: number) => localMac((s >>> 24) & 0xff, (s >>> 16) & 0xff, (s >>> 8) & 0xff, n);
  const nodes = Array.from({ length: count }, (_, k) => {
    const addresses = spec.nodeNetworks.map((n) => nthHost(n, k + 1));
    return { index: k, netns: names.nodeNetns(k), ifname: 'eth0', mac: mac(k + 1), address: addresses[0], addresses };
  });
  return { vmac: mac(0), nodes };
}

/** Each bucket's home when every node is up: round robin. */
export function homeBuckets(buckets: number, nodes: number): number[] {
  return Array.from({ length: buckets }, (_, b) => b % nodes);
}

/** Forwarding switches a routed uplink turns on in the host namespace. */
export function forwardingSysctls(spec: ResolvedSpec): string[] {
  if (spec.uplink.kind !== 'routed') return [];
  return [
    ...(spec.vips.some((v) => v.family === 4) ? [FORWARDING_SYSCTLS[4]] : []),
    ...(spec.vips.some((v) => v.family === 6) ? [FORWARDING_SYSCTLS[6]] : []),
  ];
}

/**
 * Everything cluster `spec` consists of. `owners` (default: every bucket at its home) is the bucket
 * table the rules are built with.
 */
/** The names and addresses the rules are built from (a pure function of the spec). */
export function planLayout(spec: ResolvedSpec): Layout {
  const n = clusterNames(spec.name);
  const { vmac, nodes } = planNodes(spec);
  return {
    table: n.table,
    uplinkPort: spec.uplink.kind === 'bridge' ? spec.uplink.ifname : n.routedUplinkPort,
    vmac,
    nodeMacs: nodes.map((x) => x.mac),
    nodePorts: nodes.map((x) => n.outerVeth(x.index)),
  };
}

export function planCluster(spec: ResolvedSpec, facts: HostFacts = {}, owners?: readonly number[]): ClusterPlan {
  const n = clusterNames(spec.name);
  const mark = markOf(spec.name);
  const { vmac, nodes } = planNodes(spec);
  const layout = planLayout(spec);
  const buckets = owners ? [...owners] : homeBuckets(spec.buckets, spec.nodes);
  const links: PlannedLink[] = [{ kind: 'bridge', name: n.bridge, mac: vmac, up: true }];
  const addresses: PlannedAddress[] = [];
  const routes: PlannedRoute[] = [];
  const sysctls: PlannedSysctl[] = [];
  // IPv6 duplicate address detection would leave link-local addresses tentative for about a second,
  // and the kernel sends no neighbour solicitation without one: the first packets would be lost.
  for (const x of nodes) sysctls.push({ netns: x.netns, key: 'net.ipv6.conf.default.accept_dad', value: '0' });
  const gw = (net: Cidr) => lastHost(net);
  if (spec.uplink.kind === 'routed') {
    links.push({ kind: 'veth', name: n.routedUplinkPort, master: n.bridge, up: true, peer: { name: n.routedGateway, up: true } });
    sysctls.push({ key: `net/ipv6/conf/${n.routedGateway}/accept_dad`, value: '0' });
    for (const net of spec.nodeNetworks) addresses.push({ ifname: n.routedGateway, cidr: `${gw(net)}/${net.prefix}` });
    for (const vip of spec.vips) routes.push({ destination: `${vip.address}/${vip.family === 4 ? 32 : 128}`, dev: n.routedGateway });
  }
  for (const x of nodes) {
    links.push({
      kind: 'veth',
      name: n.outerVeth(x.index),
      master: n.bridge,
      up: true,
      peer: { name: 'eth0', netns: x.netns, up: true, mac: x.mac },
      ...(spec.mode === 'steer' ? { unicastFlood: false as const } : {}),
    });
  }
  for (const x of nodes) {
    for (const vip of spec.vips) addresses.push({ netns: x.netns, ifname: 'eth0', cidr: `${vip.address}/${vip.prefix}` });
    spec.nodeNetworks.forEach((net, i) => addresses.push({ netns: x.netns, ifname: 'eth0', cidr: `${x.addresses[i]}/${net.prefix}` }));
    const gateways = spec.uplink.kind === 'routed' ? spec.nodeNetworks.map(gw) : spec.gateways;
    for (const g of gateways) routes.push({ netns: x.netns, destination: 'default', via: g });
  }
  // br_netfilter would push bridged frames through iptables: off in a dedicated host namespace.
  if (spec.hostNetns !== undefined) {
    for (const key of BRIDGE_NF_SYSCTLS) if (facts.bridgeNetfilter?.[key] !== undefined && facts.bridgeNetfilter[key] !== '0') sysctls.push({ key, value: '0' });
  }
  for (const key of forwardingSysctls(spec)) sysctls.push({ key, value: '1' });
  const backend = backendFor(spec, facts.iptables);
  const rulesets: PlannedRuleset[] = backend.rulesets(spec, layout, buckets).map((r) => ({ ...r, netns: nodes[r.node].netns }));
  const tables: PlannedTable[] = backend.tables(spec, layout, buckets).map((t) => ({
    ...(t.node === undefined ? {} : { netns: nodes[t.node].netns }),
    family: t.family,
    name: t.name,
    commands: t.commands,
  }));
  return {
    name: spec.name,
    mark,
    hostNetns: spec.hostNetns,
    bridge: n.bridge,
    vmac,
    layout,
    nodes,
    namespaces: nodes.map((x) => x.netns),
    ...(spec.uplink.kind === 'bridge' ? { uplink: { ifname: spec.uplink.ifname, master: n.bridge } } : {}),
    links,
    addresses,
    routes,
    sysctls,
    tables,
    backend: backend.name,
    rulesets,
    buckets,
  };
}

const where = (ns?: string) => ns ?? 'host';

/** The stable key of each kind of planned object (`link host/nc-br`, `address n1/eth0 192.0.2.1/24`, …). */
export const keyOf = {
  netns: (name: string) => `netns ${name}`,
  uplink: (u: { ifname: string }) => `uplink ${u.ifname}`,
  link: (l: Pick<PlannedLink, 'netns' | 'name'>) => `link ${where(l.netns)}/${l.name}`,
  address: (a: PlannedAddress) => `address ${where(a.netns)}/${a.ifname} ${a.cidr}`,
  route: (r: PlannedRoute) => `route ${where(r.netns)} ${r.destination}${r.via ? ` via ${r.via}` : ''}${r.dev ? ` dev ${r.dev}` : ''}`,
  sysctl: (s: Pick<PlannedSysctl, 'netns' | 'key'>) => `sysctl ${where(s.netns)} ${s.key}`,
  table: (t: Pick<PlannedTable, 'netns' | 'family' | 'name'>) => `nft ${where(t.netns)} ${t.family} ${t.name}`,
  ruleset: (r: Pick<PlannedRuleset, 'netns' | 'table' | 'chain'>) => `iptables ${r.netns} ${r.table} ${r.chain}`,
} as const;

/** Every object of a plan under a stable key (see {@link keyOf}). */
export function planKeys(plan: ClusterPlan): Map<string, unknown> {
  const m = new Map<string, unknown>();
  for (const ns of plan.namespaces) m.set(keyOf.netns(ns), { name: ns, mark: plan.mark });
  if (plan.uplink) m.set(keyOf.uplink(plan.uplink), plan.uplink);
  for (const l of plan.links) m.set(keyOf.link(l), l);
  for (const a of plan.addresses) m.set(keyOf.address(a), a);
  for (const r of plan.routes) m.set(keyOf.route(r), r);
  for (const s of plan.sysctls) m.set(keyOf.sysctl(s), s);
  for (const t of plan.tables) m.set(keyOf.table(t), t);
  for (const r of plan.rulesets) m.set(keyOf.ruleset(r), r);
  return m;
}

/**
 * The sysctls every node namespace gets, when they are the same for all nodes (so that they can be
 * written as each namespace is made, see NetnsCreateOptions.sysctls); undefined otherwise.
 */
export function nodeSysctls(plan: ClusterPlan): Record<string, string> | undefined {
  const byNode = new Map<string, Record<string, string>>(plan.namespaces.map((x) => [x, {}]));
  for (const s of plan.sysctls) if (s.netns !== undefined) byNode.get(s.netns)![s.key] = s.value;
  const sets = [...byNode.values()].map((r) => JSON.stringify(r));
  return sets.length && sets.every((x) => x === sets[0]) && sets[0] !== '{}' ? byNode.get(plan.namespaces[0]) : undefined;
}

/**
 * The requests that build a plan's links, addresses, routes, sysctls and tables (the namespaces
 * exist already: `ns(name)` gives their handles; `host` is the host namespace), as one job.
 * `only` limits it to some nodes (a grown cluster's new ones); the host's objects are then left out.
 * `keys` limits it to those objects (see {@link keyOf}; a namespace's key brings everything in it):
 * what an apply found missing. `nodeSysctls: false` leaves out the sysctls of node namespaces
 * (written when they were made).
 */
export function planBatch(
  plan: ClusterPlan,
  host: Netns,
  ns: (name: string) => Netns,
  o: { only?: number[]; tables?: boolean; keys?: ReadonlySet<string>; nodeSysctls?: boolean } = {},
): Batch {
  const b = new Batch();
  const mark = plan.mark;
  const nodes = (o.only ? plan.nodes.filter((x) => o.only!.includes(x.index)) : plan.nodes).filter((x) => !o.keys || o.keys.has(keyOf.netns(x.netns)));
  const nodeNs = new Set((o.only ? plan.nodes.filter((x) => o.only!.includes(x.index)) : plan.nodes).map((x) => x.netns));
  const here = (netns?: string) => (netns === undefined ? o.only === undefined : nodeNs.has(netns));
  const wanted = (key: string, netns?: string) => !o.keys || o.keys.has(key) || (netns !== undefined && o.keys.has(keyOf.netns(netns)));
  const scope = (netns?: string) => b.in(netns === undefined ? host : ns(netns));
  if (o.nodeSysctls !== false)
    for (const s of plan.sysctls) if (s.netns !== undefined && here(s.netns) && wanted(keyOf.sysctl(s), s.netns)) scope(s.netns).writeSysctl(s.key, s.value);
  const h = b.in(host);
  for (const l of plan.links) {
    const peerNs = l.peer?.netns;
    if (peerNs !== undefined ? !nodeNs.has(peerNs) : !here(l.netns)) continue;
    if (l.kind === 'bridge') {
      if (wanted(keyOf.link(l))) h.addBridge({ name: l.name, mac: l.mac, up: l.up, mcastSnooping: false, alias: mark });
      if (plan.uplink && o.only === undefined && wanted(keyOf.uplink(plan.uplink))) h.setLink(plan.uplink.ifname, { master: plan.uplink.master, up: true });
      continue;
    }
    if (!wanted(keyOf.link(l), peerNs)) continue;
    const p = l.peer!;
    // A peer in the host namespace comes up only after its sysctls (accept_dad) are written.
    h.addVeth({ name: l.name, master: l.master, up: l.up, alias: mark, peer: { name: p.name, ...(p.netns ? { netns: ns(p.netns), up: p.up } : {}), ...(p.mac ? { mac: p.mac } : {}), alias: mark } });
    // A port's own options once it is a port (the create made it one).
    if (l.unicastFlood === false) h.setLink(l.name, { bridgePort: { unicastFlood: false } });
  }
  for (const s of plan.sysctls) if (s.netns === undefined && here(undefined) && wanted(keyOf.sysctl(s))) h.writeSysctl(s.key, s.value);
  for (const l of plan.links) if (l.peer && l.peer.netns === undefined && l.peer.up && here(undefined) && wanted(keyOf.link(l))) h.setLink(l.peer.name, { up: true });
  for (const x of nodes) scope(x.netns).setLink('lo', { up: true });
  for (const a of plan.addresses) if (here(a.netns) && wanted(keyOf.address(a), a.netns)) scope(a.netns).addAddress(a.ifname, a.cidr, { nodad: true });
  for (const r of plan.routes)
    if (here(r.netns) && wanted(keyOf.route(r), r.netns)) scope(r.netns).addRoute({ destination: r.destination, ...(r.via ? { via: r.via } : {}), ...(r.dev ? { dev: r.dev } : {}) });
  if (o.tables !== false) {
    for (const t of plan.tables) if (here(t.netns) && wanted(keyOf.table(t), t.netns)) b.push([{ type: 'nft.batch', netns: (t.netns === undefined ? host : ns(t.netns)).handle, commands: t.commands }]);
    for (const r of plan.rulesets) if (here(r.netns) && wanted(keyOf.ruleset(r), r.netns)) b.push([rulesetOp(r, ns(r.netns).handle)]);
  }
  return b;
}
