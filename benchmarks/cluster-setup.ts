/**
 * Setup and teardown latency of the COMPLETE data plane (namespaces, veths, bridge, addresses,
 * sysctls and every nft rule of lib/rules/ruleset.ts), modes steer and flood, built four ways in the
 * same run:
 *
 *   (f) `floor`: benchmarks/floor.c, raw rtnetlink and one libnftnl batch per namespace, fed the
 *       cluster's own plan (planCluster): the kernel's floor as far as we know how to reach it
 *       (see its header). Three floor runs take turns with the others in every repetition: 2 node
 *       threads with teardown ns-first, 1 thread with host-first, 2 threads with links-first. The
 *       floor's setup is the better of its thread counts, its teardown the best variant (medians).
 *   (a) `netns-cluster`: createCluster({ hostNetns, uplink: { bridge: 'c0' }, mode }) / cluster.close();
 *       where its time goes comes from inside it (`cluster.buildPhases`: lock, preflight, state,
 *       namespaces, links+rules), from the same runs.
 *   (b) `bash`: a generated script with one command per step, as scripts do today: `ip netns add`,
 *       `ip -n H link add …`, `ip netns exec N sysctl -w …`, and one `ip netns exec NS nft add …`
 *       per table, chain, set, rule and element list (per node in flood mode).
 *   (c) `ip-batch`: the fastest command-line arrangement: `ip -batch` for `netns add`; per node in
 *       parallel `nsenter --net=… sysctl`; `ip -n H -batch` + one `nft -f` in the host; then per node,
 *       all in parallel, `ip -n N -batch` followed by one `nsenter --net=… nft -f`.
 *
 * The nft text of (b) and (c) is generated from the same spec and the same layout (VIP, seed, bucket
 * count, MACs read from the library's own cluster for that N) as one command list, delivered either
 * one process per command (b) or as one file per namespace (c). Once per N and mode (the warm-up),
 * each way's result is compared through iproute2 and nft themselves (`ip -j -d link/addr`,
 * `nft -j list ruleset` normalised: tables, chains with hook/priority/policy, rule expressions in
 * order, set/map definitions and elements; handles and counter values dropped) and against the
 * spec; any difference fails the run loudly.
 *
 * The host namespace `<NAME>-host` and its uplink `c0` (a veth to the client namespace) exist for the
 * whole run, as in the tests; br_netfilter's bridge-nf-call-* sysctls are set to 0 there once,
 * untimed (createCluster then only reads them).
 *
 * Teardown ends when the kernel has really removed every object. Before each teardown an untimed
 * veth `obs0` (observer namespace) ⇄ `obs` (in the LAST node namespace) is added. Every way deletes
 * node namespaces in index order, so the last node's namespace is in the last cleanup_net batch
 * (batches run in order on one workqueue): when `obs0` is gone, every node namespace's devices
 * (eth0 and its host-side veth) are gone. Bridge, uplink release and nft table deletion are
 * synchronous. Teardown time = until both the way's call returned and `obs0` is gone. Polled every
 * ~1 ms through a kept-open observer handle.
 *
 * Also measured: kernel memory per node (MemAvailable and Slab before and after the library's
 * warm-up build), and createCluster throughput with 4 clusters created concurrently in one process
 * against the same 4 created one after another (benchmarkConcurrent).
 * @module
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Batch, Netns, createCluster, resolveSpec, type ClusterSpec, type ResolvedSpec } from '../lib/index.js';
import type { Cluster } from '../lib/cluster/cluster.js';
import { planCluster, type ClusterPlan } from '../lib/cluster/plan.js';
import { bucketElements, CMAC, hostFamily, nodeChain, type Layout } from '../lib/rules/ruleset.js';
import { clusterNames } from '../lib/util/names.js';
import {
  CLIENT, HOST, NAME, OBSERVER, PREFIX, UPLINK, VIP, VIP_PREFIX, checkpoint, liveClusters, ms, openHandles, ourNamespaces, run,
  shellWord, stats, tmpDir, attachObserverLink, waitUntilGone, type Stats,
} from './common.js';
import { Floor, type FloorTeardown } from './setup-floor.js';

export type Mode = 'steer' | 'flood';
/** The four ways; floor-* are the floor's runs (thread count, teardown variant), summarised as `floor`. */
export type WayId = 'floor' | 'netns-cluster' | 'bash' | 'ip-batch' | FloorRun;
export type FloorRun = 'floor-2t-ns-first' | 'floor-1t-host-first' | 'floor-2t-links-first';
export const FLOOR_RUNS: { id: FloorRun; threads: number; teardown: FloorTeardown }[] = [
  { id: 'floor-2t-ns-first', threads: 2, teardown: 'ns-first' },
  { id: 'floor-1t-host-first', threads: 1, teardown: 'host-first' },
  { id: 'floor-2t-links-first', threads: 2, teardown: 'links-first' },
];
export const SEED = 0x5eed1234;
const NAMES = clusterNames(NAME);
const BRIDGE_NF = ['net.bridge.bridge-nf-call-iptables', 'net.bridge.bridge-nf-call-ip6tables', 'net.bridge.bridge-nf-call-arptables'];
/** Untimed pause after each teardown for the kernel's invisible cleanup tail (see common.ts). */
const SETTLE_MS = 100;

export function clusterSpec(n: number, mode: Mode): ClusterSpec {
  return {
    name: NAME, nodes: n, vip: `${VIP}/${VIP_PREFIX}`, mode, hostNetns: HOST, uplink: { bridge: UPLINK }, seed: SEED,
    // The default /24 node network has room for 253 nodes.
    ...(n > 250 ? { nodeNetwork: '198.18.0.0/16' } : {}),
  };
}

export interface Case {
  n: number;
  mode: Mode;
  spec: ResolvedSpec;
  /** What createCluster builds from (the floor is fed the same). */
  plan: ClusterPlan;
  nodes: string[];
  /** Filled from the library's cluster at the first (warm-up) build. */
  layout?: Layout & { nodeAddresses: string[] };
}

// ───────────────────────────── the environment ─────────────────────────────

/** Host + client namespaces and the uplink c0 (kept for the whole run), plus the observer. */
export async function createEnvironment(): Promise<{ host: Netns; client: Netns; observer: Netns }> {
  const [host, client, observer] = await Netns.createMany([HOST, CLIENT, OBSERVER]);
  for (const h of [host, client, observer]) openHandles.add(h);
  const b = new Batch();
  b.in(host).writeSysctl('net.ipv6.conf.default.accept_dad', 0);
  b.in(client).writeSysctl('net.ipv6.conf.default.accept_dad', 0);
  b.in(host).addVeth({ name: UPLINK, up: true, peer: { name: 'eth0', netns: client, up: true } });
  b.in(client).setLink('lo', { up: true });
  await b.commit();
  for (const key of BRIDGE_NF) {
    const v = await host.readSysctl(key).catch(() => undefined);
    if (v !== undefined && v !== '0') await host.writeSysctl(key, 0);
  }
  return { host, client, observer };
}

// ───────────────────────────── nft text from the spec ─────────────────────────────

const hex = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;

/** The host's table as nft commands (one per line, without the leading `nft`): lib/rules/ruleset.ts hostRules as text. */
function hostNftCommands(c: Case): string[] {
  const l = c.layout!;
  const s = c.spec;
  const up = l.uplinkPort;
  if (s.mode === 'steer') {
    const T = `netdev ${l.table}`;
    const cmds = [
      `add table ${T}`,
      `add chain ${T} in { type filter hook ingress device "${up}" priority filter ; policy accept ; }`,
      `add chain ${T} out { type filter hook egress device "${up}" priority filter ; policy accept ; }`,
    ];
    // The destination MAC written as raw link-layer payload: in the netdev family `ether daddr set`
    // would add a `meta iiftype ether` check the library's rules do not have.
    const llDaddr = (mac: string) => `@ll,0,48 set 0x${mac.replaceAll(':', '')}`;
    l.nodeMacs.forEach((mac, k) => cmds.push(`add chain ${T} ${nodeChain(k)}`, `add rule ${T} ${nodeChain(k)} counter ${llDaddr(mac)} fwd to "${l.nodePorts[k]}" comment "accept"`));
    cmds.push(`add map ${T} buckets { typeof meta cpu : verdict ; size ${s.buckets} ; }`);
    cmds.push(`add rule ${T} in ip daddr ${VIP} jhash ip saddr mod ${s.buckets} seed ${hex(s.seed)} vmap @buckets comment "steer"`);
    cmds.push(`add rule ${T} in ip daddr ${VIP} counter drop comment "no-owner"`);
    cmds.push(`add rule ${T} in arp daddr ip ${VIP} ${llDaddr(CMAC)} comment "arp"`);
    cmds.push(`add rule ${T} out arp saddr ip ${VIP} arp saddr ether set ${l.vmac} comment "arp-sender"`);
    const owners = Array.from({ length: s.buckets }, (_, b) => b % s.nodes);
    cmds.push(`add element ${T} buckets { ${bucketElements(owners).map((e) => `${e.key} : goto ${e.chain}`).join(', ')} }`);
    return cmds;
  }
  const T = `bridge ${l.table}`;
  const iif = `iifname "${up}"`;
  return [
    `add table ${T}`,
    `add chain ${T} pre { type filter hook prerouting priority dstnat ; policy accept ; }`,
    `add chain ${T} fwd_out { type filter hook forward priority filter ; policy accept ; }`,
    `add chain ${T} in { type filter hook input priority filter ; policy accept ; }`,
    `add rule ${T} pre ip daddr ${VIP} ${iif} ether daddr set ${CMAC} accept comment "flood"`,
    `add rule ${T} in ip daddr ${VIP} drop comment "own-copy"`,
    `add rule ${T} pre arp daddr ip ${VIP} ${iif} ether daddr set ${CMAC} comment "arp"`,
    `add rule ${T} fwd_out arp saddr ip ${VIP} oifname "${up}" arp saddr ether set ${l.vmac} comment "arp-sender"`,
  ];
}

/** Node k's inet table as nft commands (flood mode; steer mode's nodes have none). */
function nodeNftCommands(c: Case, k: number): string[] {
  const l = c.layout!;
  const s = c.spec;
  if (s.mode === 'steer') return [];
  const T = `inet ${l.table}`;
  const cmds = [`add table ${T}`, `add chain ${T} pre { type filter hook prerouting priority raw ; policy accept ; }`];
  const owned = Array.from({ length: s.buckets }, (_, b) => b).filter((b) => b % s.nodes === k);
  cmds.push(`add set ${T} owned { typeof meta cpu ; }`);
  if (owned.length) cmds.push(`add element ${T} owned { ${owned.join(', ')} }`);
  cmds.push(`add rule ${T} pre ip daddr ${VIP} jhash ip saddr mod ${s.buckets} seed ${hex(s.seed)} != @owned counter drop comment "drop"`);
  cmds.push(`add rule ${T} pre ip daddr ${VIP} counter meta pkttype set host accept comment "accept"`);
  cmds.push(`add rule ${T} pre ip daddr ${VIP} counter drop comment "drop"`);
  return cmds;
}

// ───────────────────────────── the ip steps (b, c) ─────────────────────────────

interface IpStep {
  ns?: string;
  args: string[];
}

export function hostIpSteps(c: Case, fused: boolean): IpStep[] {
  const l = c.layout!;
  const steps: IpStep[] = [];
  const inHost = (...args: string[]): number => steps.push({ ns: HOST, args });
  const bridgeAttrs = ['type', 'bridge', 'mcast_snooping', '0', 'stp_state', '0', 'forward_delay', '0'];
  if (fused) inHost('link', 'add', NAMES.bridge, 'address', l.vmac, 'up', ...bridgeAttrs);
  else {
    inHost('link', 'add', NAMES.bridge, 'address', l.vmac, ...bridgeAttrs);
    inHost('link', 'set', NAMES.bridge, 'up');
  }
  if (fused) inHost('link', 'set', UPLINK, 'master', NAMES.bridge, 'up');
  else {
    inHost('link', 'set', UPLINK, 'master', NAMES.bridge);
    inHost('link', 'set', UPLINK, 'up');
  }
  c.nodes.forEach((node, k) => {
    const v = NAMES.outerVeth(k);
    const peer = ['type', 'veth', 'peer', 'name', 'eth0', 'address', l.nodeMacs[k], 'netns', node];
    if (fused) inHost('link', 'add', v, 'up', 'master', NAMES.bridge, ...peer);
    else {
      inHost('link', 'add', v, ...peer);
      inHost('link', 'set', v, 'master', NAMES.bridge);
      inHost('link', 'set', v, 'up');
    }
    // Steer: frames to unknown MACs are not flooded to the node ports (as the library sets them).
    if (c.spec.mode === 'steer') inHost('link', 'set', v, 'type', 'bridge_slave', 'flood', 'off');
  });
  return steps;
}

export function nodeIpSteps(c: Case, k: number): string[][] {
  const l = c.layout!;
  const node = c.spec.nodeNetworks[0];
  return [
    ['link', 'set', 'eth0', 'up'],
    ['link', 'set', 'lo', 'up'],
    ['addr', 'add', `${VIP}/${VIP_PREFIX}`, 'brd', '+', 'dev', 'eth0', 'nodad'],
    ['addr', 'add', `${l.nodeAddresses[k]}/${node.prefix}`, 'brd', '+', 'dev', 'eth0', 'nodad'],
  ];
}

export const DAD_SYSCTL = 'net.ipv6.conf.default.accept_dad=0';

export function ipLine(s: IpStep): string {
  return ['ip', ...(s.ns === undefined ? [] : ['-n', s.ns]), ...s.args].map(shellWord).join(' ');
}

// ───────────────────────────── the ways ─────────────────────────────

export interface Way {
  id: WayId;
  prepare(c: Case): void;
  setup(c: Case): Promise<Record<string, number> | void>;
  teardown(c: Case): Promise<void>;
}

export function writeScript(name: string, lines: string[]): string {
  const path = join(tmpDir(), name);
  writeFileSync(path, ['#!/bin/bash', 'set -e', ...lines, ''].join('\n'));
  return path;
}

const key = (c: Case): string => `${c.mode}-${c.n}`;

/**
 * (a) createCluster itself, with the spec `spec` gives for the case; its own phase times
 * (Cluster.buildPhases) come with each sample.
 */
export function libraryWay(spec: (c: Case) => ClusterSpec = (c) => clusterSpec(c.n, c.mode)): Way {
  let cluster: Cluster | undefined;
  return {
    id: 'netns-cluster',
    prepare() {},
    async setup(c) {
      cluster = await createCluster(spec(c));
      liveClusters.add(cluster);
      if (cluster.warnings.length) throw new Error(`unexpected warnings: ${cluster.warnings.join('; ')}`);
      c.layout ??= {
        table: NAMES.table,
        uplinkPort: UPLINK,
        vmac: cluster.vmac,
        nodeMacs: cluster.nodes.map((x) => x.mac),
        nodePorts: cluster.nodes.map((x) => NAMES.outerVeth(x.index)),
        nodeAddresses: cluster.nodes.map((x) => x.address),
      };
      return { ...cluster.buildPhases };
    },
    async teardown() {
      const cl = cluster!;
      cluster = undefined;
      await cl.close();
      liveClusters.delete(cl);
    },
  };
}

/** (f) the floor program, fed the plan createCluster builds from. */
function floorWay(run: (typeof FLOOR_RUNS)[number], floor: Floor): Way {
  return {
    id: run.id,
    prepare() {},
    async setup(c) {
      await floor.load(key(c), c.plan);
      await floor.setup(run.threads);
    },
    async teardown() {
      await floor.teardown(run.teardown);
    },
  };
}

/** (b) */
function bashWay(): Way {
  const scripts = new Map<string, { setup: string; teardown: string }>();
  const nftLine = (ns: string, cmd: string): string => `ip netns exec ${shellWord(ns)} nft ${shellWord(cmd)}`;
  return {
    id: 'bash',
    prepare(c) {
      const lines: string[] = [];
      for (const node of c.nodes) lines.push(ipLine({ args: ['netns', 'add', node] }));
      for (const node of c.nodes) lines.push(`ip netns exec ${shellWord(node)} sysctl -qw ${DAD_SYSCTL}`);
      lines.push(...hostIpSteps(c, false).map(ipLine));
      c.nodes.forEach((node, k) => lines.push(...nodeIpSteps(c, k).map((args) => ipLine({ ns: node, args }))));
      lines.push(...hostNftCommands(c).map((cmd) => nftLine(HOST, cmd)));
      c.nodes.forEach((node, k) => lines.push(...nodeNftCommands(c, k).map((cmd) => nftLine(node, cmd))));
      const down = [
        ...c.nodes.map((node) => ipLine({ args: ['netns', 'del', node] })),
        nftLine(HOST, `delete table ${hostFamily(c.spec.mode)} ${NAMES.table}`),
        ipLine({ ns: HOST, args: ['link', 'set', UPLINK, 'nomaster'] }),
        ipLine({ ns: HOST, args: ['link', 'del', NAMES.bridge] }),
      ];
      scripts.set(key(c), { setup: writeScript(`bash-setup-${key(c)}.sh`, lines), teardown: writeScript(`bash-teardown-${key(c)}.sh`, down) });
    },
    setup: async (c) => void (await run(['bash', scripts.get(key(c))!.setup])),
    teardown: async (c) => void (await run(['bash', scripts.get(key(c))!.teardown])),
  };
}

/** (c) */
function batchWay(): Way {
  const scripts = new Map<string, { setup: string; teardown: string }>();
  return {
    id: 'ip-batch',
    prepare(c) {
      const dir = tmpDir();
      const f = (name: string, lines: string[]): string => {
        const p = join(dir, `batch-${key(c)}-${name}`);
        writeFileSync(p, lines.join('\n') + '\n');
        return p;
      };
      const nsPath = (ns: string): string => `/run/netns/${ns}`;
      const lines: string[] = [];
      lines.push(`ip -batch ${f('root', c.nodes.map((n) => `netns add ${n}`))}`);
      lines.push('pids=()');
      for (const node of c.nodes) lines.push(`nsenter --net=${nsPath(node)} sysctl -qw ${DAD_SYSCTL} & pids+=($!)`);
      lines.push('for p in "${pids[@]}"; do wait "$p"; done');
      lines.push(`ip -n ${HOST} -batch ${f('host', hostIpSteps(c, true).map((s) => s.args.map(shellWord).join(' ')))}`);
      lines.push(`nsenter --net=${nsPath(HOST)} nft -f ${f('host.nft', hostNftCommands(c))} & hostpid=$!`);
      lines.push('pids=()');
      c.nodes.forEach((node, k) => {
        const ipf = f(`n${k}`, nodeIpSteps(c, k).map((a) => a.map(shellWord).join(' ')));
        const nftf = f(`n${k}.nft`, nodeNftCommands(c, k));
        lines.push(`{ ip -n ${node} -batch ${ipf} && nsenter --net=${nsPath(node)} nft -f ${nftf}; } & pids+=($!)`);
      });
      lines.push('for p in "${pids[@]}"; do wait "$p"; done', 'wait "$hostpid"');
      const down = [
        `ip -batch ${f('root-del', c.nodes.map((n) => `netns del ${n}`))}`,
        `nsenter --net=${nsPath(HOST)} nft delete table ${hostFamily(c.spec.mode)} ${NAMES.table} & p1=$!`,
        `ip -n ${HOST} -batch ${f('host-del', [`link set ${UPLINK} nomaster`, `link del ${NAMES.bridge}`])}`,
        'wait "$p1"',
      ];
      scripts.set(key(c), { setup: writeScript(`batch-setup-${key(c)}.sh`, lines), teardown: writeScript(`batch-teardown-${key(c)}.sh`, down) });
    },
    setup: async (c) => void (await run(['bash', scripts.get(key(c))!.setup])),
    teardown: async (c) => void (await run(['bash', scripts.get(key(c))!.teardown])),
  };
}

// ───────────────────────────── verification ─────────────────────────────

const sh = (argv: string[]): string => execFileSync(argv[0], argv.slice(1), { encoding: 'utf8' });
const ipJ = (args: string[]): any[] => JSON.parse(sh(['ip', '-j', ...args]) || '[]');
const hasUp = (l: { flags?: string[] }): boolean => (l.flags ?? []).includes('UP');

/** nft -j list ruleset, normalised: no handles, counters zeroed, elements sorted, rules in chain order. */
export function nftView(ns: string): unknown {
  const doc = JSON.parse(sh(['ip', 'netns', 'exec', ns, 'nft', '-j', 'list', 'ruleset'])).nftables as any[];
  const strip = (o: any): any => {
    if (Array.isArray(o)) return o.map(strip);
    if (o && typeof o === 'object') {
      const out: any = {};
      for (const [k, v] of Object.entries(o)) {
        if (k === 'handle') continue;
        if (k === 'counter' && v && typeof v === 'object') out[k] = {};
        else out[k] = strip(v);
      }
      return out;
    }
    return o;
  };
  const out: Record<string, unknown[]> = { tables: [], chains: [], sets: [], rules: [] };
  for (const item of doc) {
    const [kind, body] = Object.entries(item)[0] as [string, any];
    if (kind === 'metainfo') continue;
    const b = strip(body);
    if (kind === 'set' || kind === 'map') {
      if (Array.isArray(b.elem)) b.elem = b.elem.map((e: unknown) => JSON.stringify(e)).sort();
      out.sets.push({ kind, ...b });
    } else if (kind === 'table') out.tables.push(b);
    else if (kind === 'chain') out.chains.push(b);
    else if (kind === 'rule') out.rules.push(b);
    else out[kind] = [...(out[kind] ?? []), b];
  }
  for (const k of ['tables', 'chains', 'sets']) out[k].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  return out;
}

function hostLinkView(): unknown[] {
  return ipJ(['-d', '-n', HOST, 'link', 'show'])
    .map((l) => {
      const d = l.linkinfo?.info_data ?? {};
      const br = l.linkinfo?.info_kind === 'bridge'
        ? { mac: l.address, mcast_snooping: d.mcast_snooping, stp_state: d.stp_state, forward_delay: d.forward_delay, vlan_filtering: d.vlan_filtering }
        : undefined;
      return { name: l.ifname, kind: l.linkinfo?.info_kind ?? l.link_type, master: l.master, up: hasUp(l), mtu: l.mtu, br, flood: l.linkinfo?.info_slave_data?.flood };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

function nodeLinkView(node: string): unknown {
  const links = ipJ(['-n', node, 'addr', 'show']).map((l) => ({
    name: l.ifname,
    mac: l.address,
    up: hasUp(l),
    mtu: l.mtu,
    addrs: (l.addr_info ?? [])
      .filter((a: any) => a.scope !== 'link')
      .map((a: any) => `${a.family} ${a.local}/${a.prefixlen} ${a.scope} brd=${a.broadcast ?? '-'}${a.nodad ? ' nodad' : ''}`)
      .sort(),
  }));
  const dad = sh(['ip', 'netns', 'exec', node, 'cat', '/proc/sys/net/ipv6/conf/default/accept_dad', '/proc/sys/net/ipv6/conf/eth0/accept_dad']).split('\n').filter(Boolean);
  return { links: links.sort((a, b) => a.name.localeCompare(b.name)), acceptDad: dad };
}

function fullView(c: Case): Record<string, string> {
  const sampled = [...new Set([0, c.n - 1])];
  const v: Record<string, unknown> = { 'host links': hostLinkView(), 'host nft': nftView(HOST) };
  for (const k of sampled) {
    v[`n${k} links`] = nodeLinkView(c.nodes[k]);
    v[`n${k} nft`] = nftView(c.nodes[k]);
  }
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, JSON.stringify(x)]));
}

function expectationErrors(c: Case, v: Record<string, string>): string[] {
  const errors: string[] = [];
  const host = JSON.parse(v['host links']) as any[];
  const want = ['lo', UPLINK, NAMES.bridge, ...c.nodes.map((_, k) => NAMES.outerVeth(k))].sort();
  const names = host.map((l) => l.name).sort();
  if (JSON.stringify(names) !== JSON.stringify(want)) errors.push(`host links are ${names.join(',')}`);
  for (const l of host.filter((x) => x.name === UPLINK || x.name.startsWith(NAMES.outerVeth('' as any))))
    if (!l.up || l.master !== NAMES.bridge) errors.push(`${l.name}: not up in ${NAMES.bridge}`);
  const hostNft = JSON.parse(v['host nft']);
  // As many rules as the plan's tables have (steer: the host's netdev table only; flood: one per node too).
  const rulesOf = (netns?: string) => c.plan.tables.filter((t) => t.netns === netns).flatMap((t) => t.commands).filter((x) => x.cmd === 'addRule').length;
  const wantRules = rulesOf(undefined);
  if (hostNft.rules.length !== wantRules) errors.push(`host has ${hostNft.rules.length} rules, expected ${wantRules}`);
  if (c.mode === 'steer' && (hostNft.sets[0]?.elem?.length ?? 0) !== c.spec.buckets) errors.push('host bucket map incomplete');
  for (const k of [...new Set([0, c.n - 1])]) {
    const node = JSON.parse(v[`n${k} links`]);
    const eth = node.links.find((l: any) => l.name === 'eth0');
    if (!eth?.up || eth.mac !== c.layout!.nodeMacs[k]) errors.push(`n${k}: eth0 not up with its MAC`);
    if (!eth?.addrs.some((a: string) => a.startsWith(`inet ${VIP}/${VIP_PREFIX}`))) errors.push(`n${k}: no VIP`);
    if (JSON.stringify(node.acceptDad) !== '["0","0"]') errors.push(`n${k}: accept_dad ${node.acceptDad}`);
    const nft = JSON.parse(v[`n${k} nft`]);
    if (nft.rules.length !== rulesOf(c.nodes[k])) errors.push(`n${k}: ${nft.rules.length} rules, expected ${rulesOf(c.nodes[k])}`);
  }
  return errors;
}

const reference = new Map<string, { way: WayId; view: Record<string, string> }>();

function verify(way: Way, c: Case): void {
  const v = fullView(c);
  const errors = expectationErrors(c, v);
  if (errors.length) throw new Error(`${way.id}, ${c.mode} N=${c.n}: data plane is wrong:\n  ${errors.join('\n  ')}`);
  const ref = reference.get(key(c));
  if (!ref) return void reference.set(key(c), { way: way.id, view: v });
  const diffs = Object.keys({ ...ref.view, ...v })
    .filter((k) => ref.view[k] !== v[k])
    .map((k) => `${k}:\n    ${ref.way}: ${ref.view[k] ?? '(missing)'}\n    ${way.id}: ${v[k] ?? '(missing)'}`);
  if (diffs.length) throw new Error(`${c.mode} N=${c.n}: ${way.id} built something else than ${ref.way}:\n  ${diffs.join('\n  ')}`);
}

/** After teardown: no node namespace, the host back to lo + c0 (not enslaved), no nft table. */
async function assertClean(c: Case, full: boolean): Promise<void> {
  const left = (await ourNamespaces()).filter((n) => c.nodes.includes(n));
  if (left.length) throw new Error(`${c.mode} N=${c.n}: namespaces left over: ${left.join(' ')}`);
  if (!full) return;
  const links = hostLinkView() as any[];
  if (links.length !== 2 || links.some((l) => l.master)) throw new Error(`host not clean after teardown: ${JSON.stringify(links)}`);
  const tables = (nftView(HOST) as any).tables;
  if (tables.length) throw new Error(`host nft tables left: ${JSON.stringify(tables)}`);
}

/** The library and the floor also mark what they make (bridge, host veths, each node's lo and eth0). */
function markErrors(way: Way, c: Case): string[] {
  if (way.id !== 'netns-cluster' && !way.id.startsWith('floor')) return [];
  const mark = c.plan.mark;
  const errors: string[] = [];
  const host = ipJ(['-n', HOST, 'link', 'show']);
  for (const l of host) if ((l.ifname === NAMES.bridge || l.ifname.startsWith(NAMES.outerVeth('' as any))) && l.ifalias !== mark) errors.push(`host ${l.ifname}: alias ${l.ifalias}`);
  for (const node of [...new Set([c.nodes[0], c.nodes.at(-1)!])])
    for (const l of ipJ(['-n', node, 'link', 'show'])) if (l.ifalias !== mark) errors.push(`${node} ${l.ifname}: alias ${l.ifalias}`);
  return errors;
}

// ───────────────────────────── measuring ─────────────────────────────

export interface SetupResult {
  way: WayId;
  mode: Mode;
  n: number;
  setup: Stats;
  teardown: Stats;
  /** netns-cluster only: median per phase, measured inside createCluster (Cluster.buildPhases). */
  phases?: Record<string, Stats>;
  /** floor only: which floor run gave its setup and its teardown. */
  floorSetupFrom?: string;
  floorTeardownFrom?: string;
  /** netns-cluster only, from its warm-up build: kernel memory per node (KiB; noisy on a shared machine). */
  memory?: { availableKiBPerNode: number; slabKiBPerNode: number };
}

export interface Sample {
  setup: number;
  teardown: number;
  phases?: Record<string, number>;
}

function meminfo(): { available: number; slab: number } {
  const t = readFileSync('/proc/meminfo', 'utf8');
  const get = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(t)?.[1] ?? NaN);
  return { available: get('MemAvailable'), slab: get('Slab') };
}

export async function measure(way: Way, c: Case, observer: Netns, check: boolean, memory?: (kib: { available: number; slab: number }) => void): Promise<Sample> {
  checkpoint();
  const m0 = memory ? meminfo() : undefined;
  const t0 = performance.now();
  const phases = await way.setup(c);
  const t1 = performance.now();
  if (memory) {
    const m1 = meminfo();
    memory({ available: m0!.available - m1.available, slab: m1.slab - m0!.slab });
  }
  checkpoint();
  if (check) {
    verify(way, c);
    const errors = markErrors(way, c);
    if (errors.length) throw new Error(`${way.id}, ${c.mode} N=${c.n}: marks missing:\n  ${errors.slice(0, 5).join('\n  ')}`);
  }
  await attachObserverLink(observer, c.nodes.at(-1)!);
  checkpoint();
  const t2 = performance.now();
  await way.teardown(c);
  const returned = performance.now();
  const gone = await waitUntilGone(observer);
  await assertClean(c, check);
  await sleep(SETTLE_MS);
  return { setup: t1 - t0, teardown: Math.max(returned, gone) - t2, phases: phases || undefined };
}

/**
 * The ways in a different order each repetition, shuffled (seeded by the repetition), so that no
 * way always runs right after the same other way's teardown, whose kernel tail (namespace cleanup,
 * RCU grace periods) would otherwise always weigh on the same follower, as a plain rotation does.
 */
function shuffled<T>(list: T[], rep: number): T[] {
  const out = [...list];
  let x = (0x9e3779b9 * (rep + 1)) >>> 0;
  for (let i = out.length - 1; i > 0; i--) {
    x = (Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    const j = x % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** The floor's summary row: its faster thread count for setup, its best teardown variant (medians). */
function floorSummary(rows: SetupResult[], samples: Map<WayId, Sample[]>, mode: Mode, n: number): SetupResult {
  const byThreads = new Map<number, number[]>();
  for (const r of FLOOR_RUNS) byThreads.set(r.threads, [...(byThreads.get(r.threads) ?? []), ...samples.get(r.id)!.map((s) => s.setup)]);
  const setups = [...byThreads].map(([t, list]) => ({ from: `${t} thread${t > 1 ? 's' : ''}`, s: stats(list) })).sort((a, b) => a.s.median - b.s.median);
  const teardowns = rows.filter((r) => r.way.startsWith('floor-')).sort((a, b) => a.teardown.median - b.teardown.median);
  return {
    way: 'floor', mode, n, setup: setups[0].s, teardown: teardowns[0].teardown,
    floorSetupFrom: setups[0].from, floorTeardownFrom: FLOOR_RUNS.find((r) => r.id === teardowns[0].way)!.teardown,
  };
}

export async function benchmarkSetup(o: { sizes: number[]; modes: Mode[]; reps: number; log: (s: string) => void; quickWays?: boolean }, observer: Netns): Promise<SetupResult[]> {
  const floor = Floor.compile();
  const lib = libraryWay();
  // quickWays (profiling only): the floor and the library, without the command-line ways.
  const ways: Way[] = [lib, ...FLOOR_RUNS.map((r) => floorWay(r, floor)), ...(o.quickWays ? [] : [bashWay(), batchWay()])];
  const results: SetupResult[] = [];
  try {
    for (const n of o.sizes) {
      for (const mode of o.modes) {
        const spec = resolveSpec(clusterSpec(n, mode));
        const c: Case = { n, mode, spec, plan: planCluster(spec), nodes: Array.from({ length: n }, (_, k) => NAMES.nodeNetns(k)) };
        const samples = new Map<WayId, Sample[]>(ways.map((w) => [w.id, []]));
        let memory: { available: number; slab: number } | undefined;
        // Warm-up: the library first (its cluster gives the layout the scripts are generated from).
        const first = await measure(lib, c, observer, true, (m) => (memory = m));
        o.log(`${mode} N=${n} warm-up netns-cluster: setup ${ms(first.setup)} ms, teardown ${ms(first.teardown)} ms`);
        for (const w of ways) w.prepare(c);
        for (const w of ways.slice(1)) {
          const s = await measure(w, c, observer, true);
          o.log(`${mode} N=${n} warm-up ${w.id}: setup ${ms(s.setup)} ms, teardown ${ms(s.teardown)} ms`);
        }
        for (let rep = 1; rep <= o.reps; rep++) {
          for (const w of shuffled(ways, rep)) {
            const s = await measure(w, c, observer, false);
            samples.get(w.id)!.push(s);
            o.log(`${mode} N=${n} rep ${rep}/${o.reps} ${w.id}: setup ${ms(s.setup)} ms, teardown ${ms(s.teardown)} ms`);
          }
        }
        const rows: SetupResult[] = [];
        for (const w of ways) {
          const list = samples.get(w.id)!;
          const r: SetupResult = { way: w.id, mode, n, setup: stats(list.map((s) => s.setup)), teardown: stats(list.map((s) => s.teardown)) };
          if (list[0]?.phases) r.phases = Object.fromEntries(Object.keys(list[0].phases).map((p) => [p, stats(list.map((s) => s.phases![p]))]));
          if (w === lib && memory) r.memory = { availableKiBPerNode: Math.round(memory.available / n), slabKiBPerNode: Math.round(memory.slab / n) };
          rows.push(r);
        }
        rows.push(floorSummary(rows, samples, mode, n));
        if (o.quickWays) for (const id of ['bash', 'ip-batch'] as const) rows.push({ ...rows[0], way: id, phases: undefined, memory: undefined });
        results.push(...rows);
        const f = rows.find((r) => r.way === 'floor')!;
        const l = rows[0];
        o.log(`${mode} N=${n}: createCluster ${ms(l.setup.median)} ms = ${(l.setup.median / f.setup.median).toFixed(2)}× floor; close ${ms(l.teardown.median)} ms = ${(l.teardown.median / f.teardown.median).toFixed(2)}× floor teardown`);
      }
    }
  } finally {
    floor.stop();
  }
  return results;
}

// ───────────────────────────── concurrency ─────────────────────────────

export interface ConcurrentResult {
  clusters: number;
  n: number;
  mode: Mode;
  reps: number;
  /** ms until all clusters are built: created at once (Promise.all) vs one after another, in one process. */
  concurrent: Stats;
  sequential: Stats;
  /** nodes built per second, from the medians. */
  concurrentNodesPerS: number;
  sequentialNodesPerS: number;
}

/**
 * createCluster throughput: `clusters` clusters of N nodes, each with its own host namespace and
 * uplink (made once, untimed), created concurrently in this process vs one after another;
 * interleaved, medians. Teardown is untimed (all closed at once, then a pause).
 */
export async function benchmarkConcurrent(o: { clusters: number; n: number; modes: Mode[]; reps: number; log: (s: string) => void }): Promise<ConcurrentResult[]> {
  // Named apart from the data plane's host namespaces (`h<i>`), and deleted at the end.
  const hosts = await Netns.createMany(Array.from({ length: o.clusters }, (_, i) => `${PREFIX}ch${i}`));
  for (const h of hosts) openHandles.add(h);
  const b = new Batch();
  for (const h of hosts) b.in(h).addVeth({ name: UPLINK, up: true, peer: { name: `${UPLINK}p`, up: true } });
  await b.commit();
  const out: ConcurrentResult[] = [];
  for (const mode of o.modes) {
    const specs: ClusterSpec[] = hosts.map((h, i) => ({ ...clusterSpec(o.n, mode), name: `${NAME}-c${i}`, hostNetns: h.name! }));
    const build = async (parallel: boolean): Promise<number> => {
      checkpoint();
      const t0 = performance.now();
      const made: Cluster[] = [];
      try {
        if (parallel) made.push(...(await Promise.all(specs.map((s) => createCluster(s).then((cl) => (liveClusters.add(cl), cl))))));
        else for (const s of specs) made.push(await createCluster(s).then((cl) => (liveClusters.add(cl), cl)));
        return performance.now() - t0;
      } finally {
        await Promise.all(made.map((cl) => cl.close().then(() => liveClusters.delete(cl))));
        await sleep(SETTLE_MS * 3);
      }
    };
    await build(true); // warm-up
    const conc: number[] = [];
    const seq: number[] = [];
    for (let rep = 1; rep <= o.reps; rep++) {
      for (const parallel of rep % 2 ? [true, false] : [false, true]) {
        const t = await build(parallel);
        (parallel ? conc : seq).push(t);
        o.log(`concurrency ${mode} ${o.clusters}×N=${o.n} rep ${rep}/${o.reps} ${parallel ? 'concurrent' : 'sequential'}: ${ms(t)} ms`);
      }
    }
    const c = stats(conc);
    const s = stats(seq);
    const nodes = o.clusters * o.n;
    out.push({ clusters: o.clusters, n: o.n, mode, reps: o.reps, concurrent: c, sequential: s, concurrentNodesPerS: Math.round((nodes / c.median) * 1000), sequentialNodesPerS: Math.round((nodes / s.median) * 1000) });
  }
  for (const h of hosts) {
    await h.close();
    openHandles.delete(h);
  }
  await Netns.deleteMany(hosts.map((h) => h.name!));
  return out;
}
