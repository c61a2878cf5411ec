/**
 * Data-plane cost per packet at a fixed offered load, measured the way the kernel spends it.
 *
 * One rate-controlled sender (`blast rate-send`, benchmarks/blast.c) in the client namespace offers
 * the same load — `pps` packets/s of small UDP, well below saturation — to each configuration in
 * turn, interleaved (rotating order per repetition):
 *   - `plain N`: a plain bridge in the host namespace, the uplink and N node namespaces, no nft rules
 *     at all; the sender addresses each node's own address (sender pair i → node i mod N), so the
 *     packets spread over the N receivers exactly as the cluster spreads them. `plain 1` is the floor.
 *   - `steer N`, `flood N`: createCluster with N nodes (the library's rules), the sender addresses the
 *     VIP; 8 source addresses chosen with the library's jhash port so that pair i lands on node i mod N.
 *   - more configurations through {@link DataplaneOptions.extra} (e.g. another backend: give a build
 *     function that makes the cluster with it; see `clusterConfig`).
 * Each node runs one receiver (`blast sink`, SCHED_BATCH, recvmmsg).
 *
 * What is measured: sender, receivers and the kernel's packet work are pinned to ONE cpu (the last),
 * from before their exec (taskset), so perf, which watches only that cpu, sees their names.
 * veth transmits hand the packet to the same CPU's backlog and the softirq runs when the sender's
 * transmit re-enables bottom halves, in the sender's context: the whole path (uplink veth, bridge,
 * nft hooks, node veth, IP/UDP receive, socket queue) runs on that cpu, almost all of it in the
 * context of our own processes. `perf record -C <cpu> -e cpu-clock:k -c <period>` samples that cpu
 * every `period` ns (kernel-mode samples count), with CLOCK_MONOTONIC timestamps; a window where perf
 * lost samples (fewer than window ÷ period in all) is measured again. Kernel time of the run =
 * (samples whose task is one of our tools + ksoftirqd/<cpu>'s samples above its idle rate) × period,
 * counted only inside the sender's measured window (after its warm-up). The idle rate of
 * ksoftirqd/<cpu> is measured once per repetition with no traffic. Other helpers' work on the same
 * cpu is in other tasks' samples and is not counted (unlike /proc/stat, which on this kernel is
 * tick-sampled at HZ and counts whatever runs). ns/packet = kernel time / packets delivered in the
 * window. Per-symbol shares of the same samples give the profile (top symbols per configuration).
 * @module
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Batch, Netns, createCluster, type ClusterSpec } from '../lib/index.js';
import type { Cluster } from '../lib/cluster/cluster.js';
import { iptablesSupport } from '../lib/rules/iptables.js';
import { SEED, type Mode } from './cluster-setup.js';
import { Interrupted, NAME, PREFIX, UPLINK, VIP, VIP_PREFIX, checkpoint, compileBlast, killGroup, liveClusters, openHandles, rotate, run, sourcesByBucket, start, stats, tmpDir, type Stats } from './common.js';

const PORT = 5002;
const PAYLOAD = 16;
/** Sender pairs: 8 sources, pair i on node i mod N for N = 1, 2, 4, 8. */
const PAIRS = 8;
const PLAIN_BRIDGE = 'plainbr';
/** The plain nodes' own addresses: 192.0.2.(PLAIN_BASE + k). */
const PLAIN_BASE = 200;
/** Each tick sends BURST datagrams on each of the PAIRS sockets (one sendmmsg each). */
const BURST = 32;

export interface DataplaneOptions {
  /** Offered load, packets/s (all pairs together). */
  pps: number;
  /** Measured window per run, seconds (after a 0.5 s warm-up). */
  duration: number;
  reps: number;
  sizes: number[];
  modes: Mode[];
  /** Extra configurations (another backend, a rule variant), measured in the same interleaved run. */
  extra?: DataplaneConfig[];
  /** perf sample period, ns. */
  periodNs?: number;
  /**
   * A window counts only if perf took at least this share of window ÷ period samples (default 0.97).
   * On a machine whose vCPU is descheduled often (another VM busy), samples are missed whatever runs;
   * a lower share accepts such windows (ratios of paired windows stay comparable, absolute ns/packet
   * are then low by up to the missing share).
   */
  minSampleShare?: number;
  log: (s: string) => void;
}

export interface Built {
  /** Namespaces that run a receiver. */
  nodes: string[];
  /** Destination address per sender pair. */
  targets: string[];
  close(): Promise<void>;
}

export interface DataplaneConfig {
  /** Unique label, e.g. `steer 4`. */
  id: string;
  /** Series name in the chart and tables: `plain`, `steer`, `flood`, or another. */
  kind: string;
  n: number;
  build(place: Place): Promise<Built>;
}

export interface SymbolShare {
  sym: string;
  /** ns per delivered packet spent in this symbol (median over repetitions is not taken: all samples pooled). */
  nsPerPacket: number;
  share: number;
}

export interface DataplaneRow {
  id: string;
  kind: string;
  n: number;
  nsPerPacket: Stats;
  /** Of which in netfilter/nftables/br_netfilter/conntrack symbols (perf profile). */
  netfilterNsPerPacket: Stats;
  /** Median over repetitions of (this window's ns/packet ÷ the floor window measured right before it). */
  ratio: number;
  pairRatios: Stats;
  /** ns/packet ÷ plain N's median (same spread over N receivers, no rules), when measured. */
  ratioPlainN?: number;
  deliveredPps: Stats;
  /** delivered / sent over the whole run (1 = nothing lost). */
  deliveredShare: Stats;
  /** Share of the counted samples that were in ksoftirqd (softirq work deferred out of our tasks). */
  ksoftirqdShare: number;
  /** Ticks the sender began late (it could not hold the rate), summed over repetitions. */
  late: number;
  /** Samples of other tasks on the measured cpu in the window, as a share of the window (the noise). */
  othersShare: Stats;
  top: SymbolShare[];
  /** The netfilter symbols alone (what the rules cost, by kernel function). */
  netfilterTop: SymbolShare[];
}

export interface DataplaneResult {
  cpu: number;
  pps: number;
  durationS: number;
  reps: number;
  periodNs: number;
  payloadBytes: number;
  pairs: number;
  burst: number;
  rows: DataplaneRow[];
}

/** The tools under a name of this run's own: perf samples are told apart by task name (comm, 15 bytes). */
export const TOOL = `${PREFIX}pps`.slice(0, 15);

const compile = (): string => compileBlast(TOOL);

/** 8 source addresses: pair i hashes to a bucket b with b mod 8 = i (so b mod N = i mod N for N | 8). */
const chooseSources = (): string[] => sourcesByBucket(PAIRS, PAIRS, 100, SEED);

/**
 * Where a configuration lives: its own host namespace (bridge, and for a cluster the host's rules:
 * bridge-family hooks are per namespace, so configurations never see each other's rules) and its own
 * client namespace behind the uplink `c0`. All configurations exist for the whole run.
 */
export interface Place {
  index: number;
  host: Netns;
  hostName: string;
  client: Netns;
  clientName: string;
  /** A cluster name of this place's own (≤ 10 bytes). */
  clusterName: string;
}

const BRIDGE_NF = ['net.bridge.bridge-nf-call-iptables', 'net.bridge.bridge-nf-call-ip6tables', 'net.bridge.bridge-nf-call-arptables'];

async function makePlace(index: number, srcs: string[]): Promise<Place> {
  const hostName = `${PREFIX}h${index}`;
  const clientName = `${PREFIX}c${index}`;
  const [host, client] = await Netns.createMany([hostName, clientName]);
  openHandles.add(host);
  openHandles.add(client);
  const b = new Batch();
  b.in(host).writeSysctl('net.ipv6.conf.default.accept_dad', 0);
  b.in(client).writeSysctl('net.ipv6.conf.default.accept_dad', 0);
  b.in(host).addVeth({ name: UPLINK, up: true, peer: { name: 'eth0', netns: client, up: true } });
  b.in(client).setLink('lo', { up: true });
  for (const s of srcs) b.in(client).addAddress('eth0', `${s}/${VIP_PREFIX}`, { nodad: true });
  await b.commit();
  // The same for every configuration: bridged IP does not go through iptables (createCluster does the same).
  for (const key of BRIDGE_NF) {
    const v = await host.readSysctl(key).catch(() => undefined);
    if (v !== undefined && v !== '0') await host.writeSysctl(key, 0);
  }
  return { index, host, hostName, client, clientName, clusterName: `${NAME}k${index}` };
}

// ───────────────────────────── configurations ─────────────────────────────

/** A plain bridge in the host namespace with the uplink and N namespaces; no nft rules. */
export function plainConfig(n: number): DataplaneConfig {
  return {
    id: `plain ${n}`,
    kind: 'plain',
    n,
    async build({ host, hostName }) {
      const names = Array.from({ length: n }, (_, k) => `${hostName}p${k}`);
      const nodes = await Netns.createMany(names);
      for (const h of nodes) openHandles.add(h);
      const b = new Batch();
      for (const ns of nodes) b.in(ns).writeSysctl('net.ipv6.conf.default.accept_dad', 0);
      b.in(host).addBridge({ name: PLAIN_BRIDGE, up: true, mcastSnooping: false }).setLink(UPLINK, { master: PLAIN_BRIDGE, up: true });
      nodes.forEach((ns, k) => {
        b.in(host).addVeth({ name: `plainv${k}`, master: PLAIN_BRIDGE, up: true, peer: { name: 'eth0', netns: ns, up: true } });
        b.in(ns).setLink('lo', { up: true }).addAddress('eth0', `192.0.2.${PLAIN_BASE + k}/${VIP_PREFIX}`, { nodad: true });
      });
      await b.commit();
      return {
        nodes: names,
        targets: Array.from({ length: PAIRS }, (_, i) => `192.0.2.${PLAIN_BASE + (i % n)}`),
        async close() {
          await Netns.deleteMany(nodes);
          for (const h of nodes) openHandles.delete(h);
        },
      };
    },
  };
}

/**
 * A cluster configuration: createCluster with N nodes and `mode` in the place's host namespace
 * (uplink c0, the harness's VIP and seed), plus `spec` (e.g. another backend: this is where one is
 * added as a configuration), then `after` (e.g. a rule variant applied with nft for a measurement).
 */
export function clusterConfig(mode: Mode, n: number, o: { id?: string; kind?: string; spec?: Partial<ClusterSpec>; after?: (c: Cluster) => Promise<void> } = {}): DataplaneConfig {
  return {
    id: o.id ?? `${mode} ${n}`,
    kind: o.kind ?? mode,
    n,
    async build(place) {
      const spec: ClusterSpec = { name: place.clusterName, nodes: n, vip: `${VIP}/${VIP_PREFIX}`, mode, hostNetns: place.hostName, uplink: { bridge: UPLINK }, seed: SEED, ...o.spec };
      const cluster = await createCluster(spec);
      liveClusters.add(cluster);
      try {
        await o.after?.(cluster);
      } catch (e) {
        await cluster.close();
        liveClusters.delete(cluster);
        throw e;
      }
      return {
        nodes: cluster.nodes.map((x) => x.netns),
        targets: Array.from({ length: PAIRS }, () => VIP),
        async close() {
          await cluster.close();
          liveClusters.delete(cluster);
        },
      };
    },
  };
}

/** nft text run in a namespace (benchmark variants only: the library never shells out). */
async function nftIn(ns: string | undefined, script: string): Promise<void> {
  await run([...(ns ? ['ip', 'netns', 'exec', ns] : []), 'nft', '-f', '-'], { stdin: script });
}

/** What `nat: true` adds to a node (lib/rules/ruleset.ts snatRules): a nat chain, which turns conntrack on. */
const natChain = (table: string): string => `add chain inet ${table} post { type nat hook postrouting priority srcnat; policy accept; }`;

const hex32 = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;

/**
 * A steer cluster's rules written out as nft text, for the variants: the library's cluster is built,
 * every table it made (host and nodes) is deleted, and these are put in their place. `host`:
 * 'bridge' is the rule set before issue 16 (a bridge prerouting chain that hashes into a MAC map,
 * with an iifname match, a bridge forward chain for the ARP sender rewrite, and a counting table in
 * every node); 'netdev' is the library's netdev table (ingress: hash, verdict map → the node's chain,
 * which counts and writes the node's MAC; egress: the ARP sender rewrite) with the frame then handed
 * on to the bridge (`accept`) instead of sent out of the node's port (`fwd`).
 */
function steerNft(c: Cluster, o: { host: 'bridge' | 'netdev' }): { host: string; node: string } {
  const t = `nc-${c.name}`;
  const s = c.spec;
  const vmac = c.vmac;
  const cmac = '01:00:5e:00:00:20';
  const mark = `{ comment "netns-cluster:${c.name}" ; }`;
  const lines: string[] = [];
  if (o.host === 'bridge') {
    const T = `bridge ${t}`;
    const up = `iifname "${UPLINK}"`;
    const els = c.buckets().flatMap((owner, b) => (owner >= 0 ? [`${b} : ${c.nodes[owner].mac}`] : []));
    lines.push(
      `add table ${T} ${mark}`,
      `add chain ${T} pre { type filter hook prerouting priority dstnat ; policy accept ; }`,
      `add map ${T} buckets { typeof meta cpu : ether daddr ; }`,
      `add rule ${T} pre ip daddr ${VIP} ${up} ether daddr set jhash ip saddr mod ${s.buckets} seed ${hex32(s.seed)} map @buckets accept`,
      `add rule ${T} pre ip daddr ${VIP} ${up} counter drop`,
      `add rule ${T} pre arp daddr ip ${VIP} ${up} ether daddr set ${cmac}`,
      `add element ${T} buckets { ${els.join(', ')} }`,
      `add chain ${T} fwd_out { type filter hook forward priority filter ; policy accept ; }`,
      `add rule ${T} fwd_out arp saddr ip ${VIP} oifname "${UPLINK}" arp saddr ether set ${vmac}`,
    );
  } else {
    const T = `netdev ${t}`;
    // The MAC written as raw link-layer payload, as the library writes it (`ether daddr set` would add an iiftype check).
    const ll = (mac: string) => `@ll,0,48 set 0x${mac.replaceAll(':', '')}`;
    const els = c.buckets().flatMap((owner, b) => (owner >= 0 ? [`${b} : goto node${owner}`] : []));
    lines.push(
      `add table ${T} ${mark}`,
      `add chain ${T} in { type filter hook ingress device "${UPLINK}" priority filter ; policy accept ; }`,
      ...c.nodes.flatMap((x, k) => [`add chain ${T} node${k}`, `add rule ${T} node${k} counter ${ll(x.mac)} accept`]),
      `add map ${T} buckets { typeof meta cpu : verdict ; size ${s.buckets} ; }`,
      `add rule ${T} in ip daddr ${VIP} jhash ip saddr mod ${s.buckets} seed ${hex32(s.seed)} vmap @buckets`,
      `add rule ${T} in ip daddr ${VIP} counter drop`,
      `add rule ${T} in arp daddr ip ${VIP} ${ll(cmac)}`,
      `add element ${T} buckets { ${els.join(', ')} }`,
      `add chain ${T} out { type filter hook egress device "${UPLINK}" priority filter ; policy accept ; }`,
      `add rule ${T} out arp saddr ip ${VIP} arp saddr ether set ${vmac}`,
    );
  }
  const node = o.host === 'bridge'
    ? [`add table inet ${t} ${mark}`, `add chain inet ${t} pre { type filter hook prerouting priority raw ; policy accept ; }`, `add rule inet ${t} pre ip daddr ${VIP} counter`].join('\n')
    : '';
  return { host: lines.join('\n'), node };
}

/** Replaces the library's tables of a steer cluster with {@link steerNft}'s. */
async function replaceRules(c: Cluster, o: Parameters<typeof steerNft>[1]): Promise<void> {
  const t = `nc-${c.name}`;
  const { host, node } = steerNft(c, o);
  const drop = ['bridge', 'netdev'].map((f) => `table ${f} ${t}`);
  // `destroy table` needs nft 1.0.8; add-then-delete removes a table whether or not it exists.
  const dropAll = (tables: string[]) => tables.flatMap((x) => [`add ${x}`, `delete ${x}`]).join('\n');
  await nftIn(c.spec.hostNetns, `${dropAll(drop)}\n${host}`);
  for (const x of c.nodes) await nftIn(x.netns, `${dropAll([`table inet ${t}`])}${node ? `\n${node}` : ''}`);
}

/**
 * Rule variants measured against the library's rules (`--dp-variants`, at each N > 1 measured):
 * the library's steer cluster with its rules replaced through nft after the build, to keep the
 * rules before issue 16 and the step before `fwd` measurable next to the library's.
 */
export function variantConfigs(n: number): DataplaneConfig[] {
  const v = (id: string, o: Parameters<typeof steerNft>[1]) =>
    clusterConfig('steer', n, { id: `steer ${n} ${id}`, kind: 'steer-variant', after: (c) => replaceRules(c, o) });
  return [
    // Before issue 16: what the library built until then.
    v('old rules (bridge pre + fwd_out + node tables)', { host: 'bridge' }),
    // The library's netdev table, the frame handed on to the bridge instead of sent out of the node's port.
    v('through the bridge (netdev table, accept)', { host: 'netdev' }),
  ];
}

/**
 * The conntrack variants (`--dp-conntrack`, at N = 4): a nat chain in every node (what `nat: true`
 * adds), and that plus raw chains that exempt the VIP's traffic from tracking.
 */
export function conntrackVariants(n: number): DataplaneConfig[] {
  const table = (c: Cluster) => `nc-${c.name}`;
  return [
    clusterConfig('steer', n, {
      id: `steer ${n} + conntrack (nat chain)`, kind: 'steer-variant',
      after: async (c) => { for (const x of c.nodes) await nftIn(x.netns, natChain(table(c))); },
    }),
    clusterConfig('steer', n, {
      id: `steer ${n} + nat chain + VIP notrack`, kind: 'steer-variant',
      after: async (c) => {
        for (const x of c.nodes) {
          await nftIn(x.netns, [
            natChain(table(c)),
            `add chain inet ${table(c)} raw_in { type filter hook prerouting priority raw; policy accept; }`,
            `add chain inet ${table(c)} raw_out { type filter hook output priority raw; policy accept; }`,
            `add rule inet ${table(c)} raw_in ip daddr ${VIP} notrack`,
            `add rule inet ${table(c)} raw_out ip saddr ${VIP} notrack`,
          ].join('\n'));
        }
      },
    }),
  ];
}

/**
 * Flood mode with the iptables backend (libiptc: CLUSTERIP where the kernel has it, else the
 * xt_cluster match), at each N; none where the kernel has neither.
 */
export function iptablesConfigs(sizes: number[]): DataplaneConfig[] {
  const has = iptablesSupport();
  const variant = has.clusterip ? 'clusterip' : has.xt_cluster ? 'xt_cluster' : undefined;
  if (!variant) return [];
  return sizes.map((n) => clusterConfig('flood', n, { id: `flood ${n} iptables ${variant}`, kind: 'flood-iptables', spec: { backend: 'iptables', iptables: { variant } } }));
}

export function defaultConfigs(sizes: number[], modes: Mode[]): DataplaneConfig[] {
  // The floor (plain 1) first: every other configuration is paired with it.
  return [
    plainConfig(1),
    ...sizes.filter((n) => n !== 1).map((n) => plainConfig(n)),
    ...modes.flatMap((mode) => sizes.map((n) => clusterConfig(mode, n))),
  ];
}

// ───────────────────────────── one measurement ─────────────────────────────

interface Proc {
  child: ChildProcess;
  ready: Promise<void>;
  output: Promise<string>;
}

function spawnTool(argv: string[], what: string, readyWord = 'ready'): Proc {
  const child = start(argv);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  const ready = new Promise<void>((resolve, reject) => {
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      if (stderr.includes(readyWord)) resolve();
    });
    child.once('close', () => reject(new Error(`${what} ended early: ${stderr}`)));
  });
  ready.catch(() => undefined);
  const output = new Promise<string>((resolve, reject) =>
    child.once('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`${what}: exit ${code}: ${stderr}`)))),
  );
  output.catch(() => undefined);
  return { child, ready, output };
}

/** Kernel symbols of netfilter, nftables, br_netfilter and conntrack: the rules' share of a profile. */
export const NETFILTER_SYMBOL = /^(nf_|nft_|__nft|nfnl|jhash|br_nf|ipt_|ip6t_|ebt_|__nf_|nf_conntrack|ipv4_conntrack|ipv6_conntrack|hash_conntrack|____nf_conntrack|init_conntrack|nf_ct_|__nf_ct)/;

interface Samples {
  /** Our tools' kernel samples in the window, per symbol. */
  ours: Map<string, number>;
  oursTotal: number;
  ksoftirqd: number;
  others: number;
  idle: number;
  /** First and last sample of any task (the recording's extent), monotonic ns. */
  first: number;
  last: number;
  /** Every sample in the window, any task, any mode: window ÷ period unless perf lost some. */
  all: number;
}

/** Parses `perf script -F comm,time,ip` output, counting samples inside [from, to] (monotonic ns). */
function parsePerf(text: string, cpu: number, from: number, to: number): Samples {
  const s: Samples = { ours: new Map(), oursTotal: 0, ksoftirqd: 0, others: 0, idle: 0, first: Infinity, last: 0, all: 0 };
  const ksoftirqd = `ksoftirqd/${cpu}`;
  for (const line of text.split('\n')) {
    const m = /^\s*(.*?)\s+(\d+)\.(\d+):\s+([0-9a-f]+)/.exec(line);
    if (!m) continue;
    const t = Number(m[2]) * 1e9 + Number(m[3].padEnd(9, '0').slice(0, 9));
    s.first = Math.min(s.first, t);
    s.last = Math.max(s.last, t);
    if (t < from || t > to) continue;
    s.all++;
    // Kernel addresses are in the upper half; user-mode samples are nobody's kernel time.
    if (m[4].length < 16 || !m[4].startsWith('ffff')) continue;
    const comm = m[1];
    if (comm === TOOL) {
      const sym = symbolOf(m[4]);
      s.ours.set(sym, (s.ours.get(sym) ?? 0) + 1);
      s.oursTotal++;
    } else if (comm === ksoftirqd) s.ksoftirqd++;
    else if (comm === 'swapper') s.idle++;
    else s.others++;
  }
  return s;
}

/**
 * Starts `perf record` on `cpu` with its events disabled, enables them through perf's control fifo
 * and returns once perf has acknowledged: samples are being taken from then on (no startup guess).
 * `stop()` ends it (SIGINT; perf writes the file) and resolves when perf has exited.
 */
async function startPerf(cpu: number, periodNs: number, file: string, maxSeconds: number): Promise<{ stop(): Promise<void> }> {
  const ctl = join(tmpDir(), 'perf.ctl');
  const ack = join(tmpDir(), 'perf.ack');
  for (const f of [ctl, ack]) {
    rmSync(f, { force: true });
    execFileSync('mkfifo', [f]);
  }
  // perf itself runs on another cpu when there is one.
  const other = cpu === 0 ? [] : ['taskset', '-c', '0'];
  const p = spawnTool(
    [...other, 'perf', 'record', '-q', '-D', '-1', '--control', `fifo:${ctl},${ack}`, '-C', String(cpu), '-m', '16M', '-e', 'cpu-clock', '-c', String(periodNs), '-k', 'CLOCK_MONOTONIC', '-o', file, '--', 'sleep', String(maxSeconds)],
    'perf record',
    '\u0000never',
  );
  const closed = new Promise<void>((resolve) => (p.child.exitCode !== null || p.child.signalCode !== null ? resolve() : p.child.once('close', () => resolve())));
  // O_RDWR: opening a fifo so never waits for the other end.
  const [c, a] = await Promise.all([open(ctl, 'r+'), open(ack, 'r+')]);
  try {
    await c.write('enable\n');
    const buf = Buffer.alloc(64);
    const acked = a.read(buf, 0, buf.length).then(() => true);
    const ok = await Promise.race([acked, closed.then(() => false), sleep(30_000).then(() => false)]);
    if (!ok) {
      await killGroup(p.child);
      throw new Error('perf record did not start (no ack on its control fifo within 30 s)');
    }
  } finally {
    await c.close();
    void a.close().catch(() => undefined);
  }
  return {
    async stop() {
      if (p.child.pid !== undefined && p.child.exitCode === null && p.child.signalCode === null) {
        try {
          process.kill(-p.child.pid, 'SIGINT');
        } catch {
          /* gone */
        }
      }
      await Promise.race([closed, sleep(30_000)]);
      await killGroup(p.child);
    },
  };
}

function perfScript(file: string): string {
  // Addresses only: symbols are looked up here (perf script's own lookup takes seconds per file).
  return execFileSync('perf', ['script', '-i', file, '-F', 'comm,time,ip'], { encoding: 'utf8', maxBuffer: 512 << 20, stdio: ['ignore', 'pipe', 'ignore'] });
}

let kallsyms: { addr: Float64Array; name: string[] } | undefined;

/** The kernel text symbol holding `ip` (hex), from /proc/kallsyms (read once). Kernel text and modules share the upper 32 bits. */
function symbolOf(ip: string): string {
  if (!kallsyms) {
    const rows: [number, string][] = [];
    for (const line of readFileSync('/proc/kallsyms', 'utf8').split('\n')) {
      const [a, type, name] = line.split(/\s+/);
      if (name && /^[tTwW]$/.test(type) && a.startsWith('ffffffff')) rows.push([parseInt(a.slice(-8), 16), name]);
    }
    rows.sort((x, y) => x[0] - y[0]);
    kallsyms = { addr: Float64Array.from(rows.map((r) => r[0])), name: rows.map((r) => r[1]) };
  }
  const x = parseInt(ip.slice(-8), 16);
  const { addr, name } = kallsyms;
  let lo = 0;
  let hi = addr.length - 1;
  if (hi < 0 || x < addr[0]) return '[unknown]';
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (addr[mid] <= x) lo = mid;
    else hi = mid - 1;
  }
  return name[lo];
}

/** ksoftirqd/<cpu> samples per second with no traffic of ours. */
async function idleKsoftirqdRate(cpu: number, periodNs: number): Promise<number> {
  const file = join(tmpDir(), 'idle.perf');
  const p = await startPerf(cpu, periodNs, file, 30);
  await sleep(1000);
  await p.stop();
  const text = perfScript(file);
  rmSync(file, { force: true });
  let count = 0;
  let first = Infinity;
  let last = 0;
  for (const line of text.split('\n')) {
    const m = /^\s*(.*?)\s+(\d+)\.(\d+):/.exec(line);
    if (!m) continue;
    const t = Number(m[2]) * 1e9 + Number(m[3].padEnd(9, '0').slice(0, 9));
    first = Math.min(first, t);
    last = Math.max(last, t);
    if (m[1] === `ksoftirqd/${cpu}`) count++;
  }
  return last > first ? count / ((last - first) / 1e9) : 0;
}

interface RunResult {
  nsPerPacket: number;
  deliveredPps: number;
  deliveredShare: number;
  late: number;
  ksoftirqdShare: number;
  othersShare: number;
  ours: Map<string, number>;
  windowPackets: number;
  /** ns/packet in netfilter symbols (NETFILTER_SYMBOL). */
  nfNsPerPacket: number;
}

const WARM_S = 0.3;

async function measure(place: Place, built: Built, srcs: string[], o: { cpu: number; pps: number; duration: number; periodNs: number; ksoftirqdIdle: number; minSampleShare: number }): Promise<RunResult> {
  const tool = compile();
  const pin = ['taskset', '-c', String(o.cpu)];
  const sinks = built.nodes.map((ns) => spawnTool([...pin, 'ip', 'netns', 'exec', ns, tool, 'sink', String(o.cpu), '0.0.0.0', String(PORT), String(WARM_S + o.duration + 2)], `sink in ${ns}`));
  const file = join(tmpDir(), 'run.perf');
  let perf: { stop(): Promise<void> } | undefined;
  try {
    await Promise.all(sinks.map((s) => s.ready));
    perf = await startPerf(o.cpu, o.periodNs, file, 30 + WARM_S + o.duration);
    const pairs = srcs.map((s, i) => `${s}@${built.targets[i]}`);
    const sender = spawnTool([...pin, 'ip', 'netns', 'exec', place.clientName, tool, 'rate-send', String(o.cpu), String(WARM_S), String(o.duration), String(o.pps), String(BURST), String(PAYLOAD), String(PORT), ...pairs], 'rate-send');
    const [total, windowSent, from, to, late] = (await sender.output).trim().split(' ').map(Number);
    await sleep(20); // the last burst is through the receivers' queues
    for (const s of sinks) if (s.child.pid !== undefined) process.kill(s.child.pid, 'SIGTERM');
    const delivered = (await Promise.all(sinks.map((s) => s.output))).reduce((a, x) => a + Number(x.trim()), 0);
    await perf.stop();
    const s = parsePerf(perfScript(file), o.cpu, from, to);
    if (!(s.first <= from && s.last >= to)) throw new Error(`perf recorded ${s.first}…${s.last}, not the whole window ${from}…${to}`);
    // perf samples the cpu every period whatever runs (idle included): fewer means it lost some.
    const expected = (to - from) / o.periodNs;
    if (s.all < o.minSampleShare * expected) throw new Error(`perf lost samples: ${s.all} of ${Math.round(expected)} in the window`);
    const windowS = (to - from) / 1e9;
    const ksoft = Math.max(0, s.ksoftirqd - o.ksoftirqdIdle * windowS);
    const share = total > 0 ? delivered / total : 0;
    const windowPackets = windowSent * share;
    const counted = s.oursTotal + ksoft;
    const nf = [...s.ours].reduce((a, [sym, k]) => a + (NETFILTER_SYMBOL.test(sym) ? k : 0), 0);
    return {
      nsPerPacket: (counted * o.periodNs) / windowPackets,
      deliveredPps: windowPackets / windowS,
      deliveredShare: share,
      late,
      ksoftirqdShare: counted ? ksoft / counted : 0,
      othersShare: (s.others * o.periodNs) / (to - from),
      ours: s.ours,
      windowPackets,
      nfNsPerPacket: (nf * o.periodNs) / windowPackets,
    };
  } finally {
    await Promise.all(sinks.map((s) => killGroup(s.child)));
    await perf?.stop();
    rmSync(file, { force: true });
  }
}

/** Makes the client resolve every target's MAC before the measured runs (not timed). */
async function resolveTargets(place: Place, targets: string[]): Promise<void> {
  for (const t of new Set(targets)) await run(['ip', 'netns', 'exec', place.clientName, 'ping', '-c', '1', '-W', '1', t]).catch(() => undefined);
}

export function perfWorks(): string | undefined {
  try {
    execFileSync('perf', ['record', '-q', '-e', 'cpu-clock:k', '-o', '/dev/null', '--', 'true'], { stdio: 'ignore' });
    return undefined;
  } catch (e) {
    return `perf record does not work here: ${e instanceof Error ? e.message.split('\n')[0] : e}`;
  }
}

export async function benchmarkDataplane(o: DataplaneOptions): Promise<DataplaneResult> {
  const problem = perfWorks();
  if (problem) throw new Error(problem);
  compile();
  const srcs = chooseSources();
  const cpu = os.cpus().length - 1;
  const periodNs = o.periodNs ?? 100_000;
  const configs = [...defaultConfigs(o.sizes, o.modes), ...(o.extra ?? [])];
  const runs = new Map(configs.map((c) => [c.id, [] as RunResult[]]));
  const pairRatios = new Map(configs.map((c) => [c.id, [] as number[]]));
  const places: Place[] = [];
  const built: Built[] = [];
  const log = (c: DataplaneConfig, tag: string, r: RunResult): void =>
    o.log(
      `dataplane ${c.id} ${tag}: ${r.nsPerPacket.toFixed(0)} ns/packet, ` +
        `netfilter ${r.nfNsPerPacket.toFixed(0)}, ${Math.round(r.deliveredPps)} pkt/s delivered (${(100 * r.deliveredShare).toFixed(1)}%), late ticks ${r.late}, ` +
        `ksoftirqd ${(100 * r.ksoftirqdShare).toFixed(1)}%, other tasks on cpu${cpu} ${(100 * r.othersShare).toFixed(0)}%`,
    );
  try {
    // Every configuration is built once, each in its own host and client namespace, and stays.
    for (const [i, c] of configs.entries()) {
      checkpoint();
      const place = await makePlace(i, srcs);
      places.push(place);
      built.push(await c.build(place));
      await resolveTargets(place, built[i].targets);
    }
    const floor = configs[0];
    // A window that fails three times is left out (logged): one bad stretch of the machine does not
    // cost the whole run. The repetition's pair is then missing for that configuration.
    const window = async (i: number, ksoftirqdIdle: number): Promise<RunResult | undefined> => {
      for (let attempt = 1; ; attempt++) {
        checkpoint();
        try {
          return await measure(places[i], built[i], srcs, { cpu, pps: o.pps, duration: o.duration, periodNs, ksoftirqdIdle, minSampleShare: o.minSampleShare ?? 0.97 });
        } catch (e) {
          if (e instanceof Interrupted) throw e;
          if (attempt >= 3) {
            o.log(`dataplane ${configs[i].id}: window failed 3 times, left out (${e instanceof Error ? e.message : e})`);
            return undefined;
          }
          o.log(`dataplane ${configs[i].id}: window failed, again (${e instanceof Error ? e.message : e})`);
        }
      }
    };
    // Warm-up (not counted): every configuration once.
    {
      const idle = await idleKsoftirqdRate(cpu, periodNs);
      for (const [i, c] of configs.entries()) {
        const r = await window(i, idle);
        if (r) log(c, 'warm-up', r);
      }
    }
    // Each repetition: for every configuration in rotating order, a floor window right before it;
    // the pair's ratio compares two windows a few seconds apart (the machine's load drifts slower).
    const others = configs.slice(1).map((c, i) => ({ c, i: i + 1 }));
    for (let rep = 1; rep <= o.reps; rep++) {
      const idle = await idleKsoftirqdRate(cpu, periodNs);
      for (const { c, i } of others.length ? rotate(others, rep) : [{ c: floor, i: 0 }]) {
        const f = await window(0, idle);
        if (!f) continue;
        runs.get(floor.id)!.push(f);
        log(floor, `rep ${rep}/${o.reps}`, f);
        if (i === 0) continue;
        const r = await window(i, idle);
        if (!r) continue;
        runs.get(c.id)!.push(r);
        pairRatios.get(c.id)!.push(r.nsPerPacket / f.nsPerPacket);
        log(c, `rep ${rep}/${o.reps} (× floor ${(r.nsPerPacket / f.nsPerPacket).toFixed(3)})`, r);
      }
    }
  } finally {
    for (const b of built.reverse()) await b.close().catch((e) => o.log(`dataplane: close failed: ${e}`));
    await Netns.deleteMany(places.flatMap((p) => [p.host, p.client])).catch(() => undefined);
    for (const p of places) {
      openHandles.delete(p.host);
      openHandles.delete(p.client);
    }
  }
  const rows = configs.map((c): DataplaneRow => {
    const rs = runs.get(c.id)!;
    const ns = stats(rs.map((r) => r.nsPerPacket));
    const plainN = c.kind !== 'plain' ? runs.get(`plain ${c.n}`) : undefined;
    const pooled = new Map<string, number>();
    for (const r of rs) for (const [sym, k] of r.ours) pooled.set(sym, (pooled.get(sym) ?? 0) + k);
    const packets = rs.reduce((a, r) => a + r.windowPackets, 0);
    const total = [...pooled.values()].reduce((a, b) => a + b, 0) || 1;
    const share = ([sym, k]: [string, number]): SymbolShare => ({ sym, nsPerPacket: Math.round((10 * k * periodNs) / packets) / 10, share: Math.round((1000 * k) / total) / 1000 });
    const sorted = [...pooled].sort((a, b) => b[1] - a[1]);
    const top = sorted.slice(0, 12).map(share);
    const netfilterTop = sorted.filter(([sym]) => NETFILTER_SYMBOL.test(sym)).slice(0, 10).map(share);
    return {
      id: c.id,
      kind: c.kind,
      n: c.n,
      nsPerPacket: ns,
      netfilterNsPerPacket: stats(rs.map((r) => r.nfNsPerPacket)),
      ratio: c === configs[0] ? 1 : Math.round(1000 * stats(pairRatios.get(c.id)!).median) / 1000,
      pairRatios: stats(pairRatios.get(c.id)!),
      ...(plainN?.length ? { ratioPlainN: Math.round((1000 * ns.median) / stats(plainN.map((r) => r.nsPerPacket)).median) / 1000 } : {}),
      deliveredPps: stats(rs.map((r) => r.deliveredPps)),
      deliveredShare: stats(rs.map((r) => r.deliveredShare)),
      ksoftirqdShare: Math.round((1000 * rs.reduce((a, r) => a + r.ksoftirqdShare, 0)) / Math.max(1, rs.length)) / 1000,
      late: rs.reduce((a, r) => a + r.late, 0),
      othersShare: stats(rs.map((r) => r.othersShare)),
      top,
      netfilterTop,
    };
  });
  return { cpu, pps: o.pps, durationS: o.duration, reps: o.reps, periodNs, payloadBytes: PAYLOAD, pairs: PAIRS, burst: BURST, rows };
}

