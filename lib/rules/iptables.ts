/**
 * The iptables backend's rules (legacy iptables, sent through libiptc by the addon), as data: pure
 * functions from a resolved spec and a bucket table to one ruleset per node, their text in the
 * style of `iptables-save`, and the kernel's hashes so that the library knows which node owns a
 * flow. Two variants:
 *
 * - `xt_cluster`: in each node's mangle PREROUTING, traffic to the VIP jumps to the chain
 *   `netns-cluster`, where `-m cluster --cluster-total-nodes <buckets> --cluster-local-nodemask
 *   <the node's buckets> --cluster-hash-seed <seed>` accepts the node's own flows (per service
 *   port, and ICMP) and the last rule drops the rest. Bucket b is bit b of the mask.
 * - `clusterip`: in each node's filter INPUT, the chain starts with the CLUSTERIP target
 *   (`--new --hashmode <hash> --clustermac <CMAC> --total-nodes <buckets> --local-node … --hash-init
 *   <seed>`), which drops what the node does not answer for; then the service ports are accepted
 *   and the rest dropped. Bucket b is CLUSTERIP node number b+1; the node numbers a namespace
 *   answers for are set through /proc/net/ipt_CLUSTERIP/<vip>.
 *
 * Every rule carries the comment match `netns-cluster:<name>` (the cluster's mark).
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import type { IptHook, IptNeed, IptRule, IptTable } from '../kernel/engine.js';
import { jhashWords, reciprocalScale, type FlowKey, type HashMode } from './jhash.js';
import { ipBytes } from '../util/ipmath.js';
import { markOf } from '../util/names.js';
import { CMAC } from './ruleset.js';
import type { DataPlaneSpec } from './backend.js';

/** A variant the kernel can run ('auto' resolved). */
export type IptablesKind = 'clusterip' | 'xt_cluster';

/** The chain the cluster's rules live in, in every node namespace (one cluster per namespace). */
export const IPT_CHAIN = 'netns-cluster';

/** One node's rules: one iptc_commit in its namespace. */
export interface IptablesRuleset {
  node: number;
  variant: IptablesKind;
  table: IptTable;
  chain: string;
  mark: string;
  /** Jumps from built-in chains into {@link chain}. */
  hooks: IptHook[];
  rules: IptRule[];
  /** CLUSTERIP: the node numbers this node answers for (written to /proc after the commit). */
  clusterip?: { vip: string; nodes: number[] };
  /** Named in the error when the kernel lacks one of them. */
  needs: IptNeed[];
  /** What to do instead, in that error. */
  hint: string;
}

const NEEDS: Record<IptablesKind, IptNeed[]> = {
  xt_cluster: [
    { kind: 'match', name: 'cluster', what: 'cluster match (module xt_cluster, CONFIG_NETFILTER_XT_MATCH_CLUSTER)' },
    { kind: 'match', name: 'comment', what: 'comment match (module xt_comment)' },
  ],
  clusterip: [
    { kind: 'target', name: 'CLUSTERIP', what: 'CLUSTERIP target (module ipt_CLUSTERIP, CONFIG_IP_NF_TARGET_CLUSTERIP; removed in Linux 6.3)' },
    { kind: 'match', name: 'comment', what: 'comment match (module xt_comment)' },
  ],
};
const PORT_NEEDS: IptNeed[] = [
  { kind: 'match', name: 'udp', what: 'udp/tcp matches (module xt_tcpudp)' },
];

const HINTS: Record<IptablesKind, string> = {
  xt_cluster: "on a kernel with CLUSTERIP use iptables.variant 'clusterip', or use backend 'nftables'",
  clusterip: "use iptables.variant 'xt_cluster' (kernels with the cluster match) or backend 'nftables'",
};

/** The buckets node `k` owns in `owners`. */
export const ownedBy = (owners: readonly number[], k: number): number[] => owners.flatMap((o, b) => (o === k ? [b] : []));

/** xt_cluster's node mask for a set of buckets (bit b = bucket b). */
export const nodeMask = (buckets: readonly number[]): number => buckets.reduce((m, b) => (m | (1 << b)) >>> 0, 0);

/**
 * Every node's ruleset with bucket b owned by `owners[b]`. The host's side (flooding on the
 * bridge) is the nftables bridge table of flood mode; see lib/backend-iptables.
 */
export function iptablesRulesets(spec: DataPlaneSpec, variant: IptablesKind, owners: readonly number[], nodes = spec.nodes): IptablesRuleset[] {
  return Array.from({ length: nodes }, (_, k) => nodeRuleset(spec, variant, k, ownedBy(owners, k)));
}

/** Node `k`'s ruleset when it owns the buckets `owned`. */
export function nodeRuleset(spec: DataPlaneSpec, variant: IptablesKind, k: number, owned: readonly number[]): IptablesRuleset {
  const vip = spec.vips.find((v) => v.family === 4);
  if (!vip) throw new TypeError("backend 'iptables' needs an IPv4 VIP (the spec's validation refuses others)");
  const mark = markOf(spec.name);
  const classes: Omit<IptRule, 'target'>[] =
    spec.ports.length === 0 ? [{}] : [...spec.ports.map((p) => ({ proto: p.protocol, dport: p.port })), { proto: 'icmp' as const }];
  const needs = [...NEEDS[variant], ...(spec.ports.length ? PORT_NEEDS : [])];
  const common = { node: k, variant, chain: IPT_CHAIN, mark, needs, hint: HINTS[variant] };
  if (variant === 'xt_cluster') {
    const cluster = { totalNodes: spec.buckets, nodeMask: nodeMask(owned), seed: spec.seed >>> 0 };
    return {
      ...common,
      table: 'mangle',
      hooks: [{ chain: 'PREROUTING', rule: { dst: vip.address } }],
      rules: [...classes.map((c) => ({ ...c, cluster, target: 'ACCEPT' })), { target: 'DROP' }],
    };
  }
  const localNodes = owned.map((b) => b + 1);
  return {
    ...common,
    table: 'filter',
    hooks: [{ chain: 'INPUT', rule: { dst: vip.address } }],
    rules: [
      { dst: vip.address, in: 'eth0', target: { clusterip: { clustermac: CMAC, totalNodes: spec.buckets, localNodes, hashMode: spec.hash, hashInit: spec.seed >>> 0 } } },
      ...classes.map((c) => ({ ...c, target: 'ACCEPT' })),
      { target: 'DROP' },
    ],
    clusterip: { vip: vip.address, nodes: localNodes },
  };
}

const hex32 = (n: number) => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;

/** One rule's arguments, as iptables-save prints them. */
export function ruleText(chain: string, r: IptRule, mark: string): string {
  const p: string[] = [`-A ${chain}`];
  if (r.dst) p.push(`-d ${r.dst}/32`);
  if (r.in) p.push(`-i ${r.in}`);
  if (r.proto) p.push(`-p ${r.proto}`);
  if (r.dport !== undefined) p.push(`-m ${r.proto} --dport ${r.dport}`);
  if (r.cluster) {
    const c = r.cluster;
    p.push(`-m cluster --cluster-total-nodes ${c.totalNodes}${c.invert ? ' !' : ''} --cluster-local-nodemask ${hex32(c.nodeMask)} --cluster-hash-seed ${hex32(c.seed)}`);
  }
  p.push(`-m comment --comment "${mark}"`);
  if (typeof r.target === 'string') {
    p.push(`-j ${r.target}`);
  } else {
    const c = r.target.clusterip;
    // iptables itself takes one --local-node; the rule holds them all (the kernel's struct has room for 16).
    p.push(`-j CLUSTERIP --new --hashmode ${c.hashMode} --clustermac ${c.clustermac.toUpperCase()} --total-nodes ${c.totalNodes}${c.localNodes.map((n) => ` --local-node ${n}`).join('')} --hash-init ${c.hashInit >>> 0}`);
  }
  return p.join(' ');
}

/** A ruleset as iptables-save would print the cluster's part of the table. */
export function rulesetText(r: IptablesRuleset): string[] {
  const out = [`*${r.table}`, `:${r.chain} - [0:0]`];
  for (const h of r.hooks) out.push(ruleText(h.chain, { ...h.rule, target: r.chain }, r.mark));
  for (const rule of r.rules) out.push(ruleText(r.chain, rule, r.mark));
  out.push('COMMIT');
  if (r.clusterip) out.push(`# /proc/net/ipt_CLUSTERIP/${r.clusterip.vip}: ${r.clusterip.nodes.join(',') || '(none)'}`);
  return out;
}

const swap16 = (p: number) => ((p & 0xff) << 8) | (p >>> 8);

function port(mode: HashMode, p: number | undefined, what: string): number {
  // CLUSTERIP hashes 0 for a protocol without ports (ICMP): give 0 for those.
  if (p === undefined || !Number.isInteger(p) || p < 0 || p > 65535) throw new TypeError(`hash mode ${mode} needs the flow's ${what} (0-65535; 0 for ICMP)`);
  return p;
}

/**
 * CLUSTERIP's node number (1 … totalNodes) for a flow: jhash_1word/2words/3words over the source
 * address as a host-order number and the ports as the raw network-order u16 read on a
 * little-endian CPU, seeded with hash-init, then reciprocal_scale to totalNodes, plus 1.
 */
export function clusteripNodeOf(mode: HashMode, flow: FlowKey, totalNodes: number, hashInit: number): number {
  const b = ipBytes(flow.address);
  if (b.length !== 4) throw new TypeError(`CLUSTERIP hashes IPv4 sources only, not ${flow.address}`);
  const saddr = ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
  const words = [saddr];
  if (mode !== 'sourceip') words.push(swap16(port(mode, flow.port, 'source port')));
  if (mode === 'sourceip-sourceport-destport') words.push(swap16(port(mode, flow.destPort, 'destination port')));
  return reciprocalScale(jhashWords(words, hashInit), totalNodes) + 1;
}

/**
 * xt_cluster's node bit (0 … totalNodes-1) for a flow: jhash_1word of the source address as
 * stored in the packet (a big-endian word loaded on a little-endian CPU), seeded with the
 * hash seed, then reciprocal_scale — the same as nft's `jhash ip saddr mod N seed S`.
 */
export function xtClusterNodeOf(flow: FlowKey, totalNodes: number, seed: number): number {
  const b = ipBytes(flow.address);
  if (b.length !== 4) throw new TypeError(`this library's xt_cluster rules hash IPv4 sources only, not ${flow.address}`);
  const word = (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
  return reciprocalScale(jhashWords([word], seed), totalNodes);
}

/** The bucket a flow falls in with this variant. */
export function iptablesBucketOf(variant: IptablesKind, spec: Pick<DataPlaneSpec, 'hash' | 'buckets' | 'seed'>, flow: FlowKey): number {
  return variant === 'clusterip' ? clusteripNodeOf(spec.hash, flow, spec.buckets, spec.seed) - 1 : xtClusterNodeOf(flow, spec.buckets, spec.seed);
}

/**
 * What this kernel offers, without changing anything: an extension counts if it is registered
 * (/proc/net/ip_tables_targets, _matches) or its module is there to be loaded (modules.dep or
 * modules.builtin of the running kernel).
 */
export function iptablesSupport(o: { proc?: string; modules?: string } = {}): Record<IptablesKind, boolean> {
  const read = (f: string) => {
    try {
      return readFileSync(f, 'utf8');
    } catch {
      return '';
    }
  };
  const proc = o.proc ?? '/proc/net';
  const mods = o.modules ?? `/lib/modules/${release()}`;
  const listed = (file: string, name: string) => read(`${proc}/${file}`).split('\n').includes(name);
  const moduleText = existsSync(mods) ? read(`${mods}/modules.dep`) + read(`${mods}/modules.builtin`) : '';
  const hasModule = (m: string) => new RegExp(`(^|/)${m}\\.ko`, 'm').test(moduleText);
  return {
    clusterip: listed('ip_tables_targets', 'CLUSTERIP') || hasModule('ipt_CLUSTERIP'),
    xt_cluster: listed('ip_tables_matches', 'cluster') || hasModule('xt_cluster'),
  };
}
