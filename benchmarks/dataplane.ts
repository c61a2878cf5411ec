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
 * every `period` ns while in kernel mode, with CLOCK_MONOTONIC timestamps. Kernel time of the run =
 * (samples whose task is one of our tools + ksoftirqd/<cpu>'s samples above its idle rate) × period,
 * counted only inside the sender's measured window (after its warm-up). The idle rate of
 * ksoftirqd/<cpu> is measured once per repetition with no traffic. Other helpers' work on the same
 * cpu is in other tasks' samples and is not counted (unlike /proc/stat, which on this kernel is
 * tick-sampled at HZ and counts whatever runs). ns/packet = kernel time / packets delivered in the
 * window. Per-symbol shares of the same samples give the profile (top symbols per configuration).
 * @module
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Batch, Netns, bucketOf, createCluster, type ClusterSpec } from '../lib/index.js';
import type { Cluster } from '../lib/cluster.js';
import { clusterSpec, SEED, type Mode } from './cluster-setup.js';
import { CLIENT, PREFIX, UPLINK, VIP, VIP_PREFIX, checkpoint, killGroup, liveClusters, openHandles, packageRoot, rotate, run, start, stats, tmpDir, type Stats } from './common.js';

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
  build(env: { host: Netns; client: Netns }): Promise<Built>;
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
  /** ns/packet ÷ the floor's (plain 1) median. */
  ratio: number;
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

let bin: string | undefined;
/** The tools under a name of this run's own: perf samples are told apart by task name (comm, 15 bytes). */
export const TOOL = `${PREFIX}pps`.slice(0, 15);

function compile(): string {
  if (bin) return bin;
  const out = join(tmpDir(), TOOL);
  execFileSync('gcc', ['-O2', '-Wall', '-o', out, join(packageRoot(), 'benchmarks', 'blast.c')], { stdio: ['ignore', 'inherit', 'inherit'] });
  return (bin = out);
}

/** 8 source addresses: pair i hashes to a bucket b with b mod 8 = i (so b mod N = i mod N for N | 8). */
function chooseSources(): string[] {
  const found: string[] = [];
  for (let i = 0; i < PAIRS; i++) {
    for (let host = 100; host < 200; host++) {
      const a = `192.0.2.${host}`;
      if (!found.includes(a) && bucketOf('sourceip', { address: a }, 64, SEED) % PAIRS === i) {
        found.push(a);
        break;
      }
    }
  }
  if (found.length !== PAIRS) throw new Error('could not choose source addresses');
  return found;
}

let sources: string[] | undefined;
async function ensureSources(client: Netns): Promise<string[]> {
  if (sources) return sources;
  const chosen = chooseSources();
  const b = new Batch();
  for (const s of chosen) b.in(client).addAddress('eth0', `${s}/${VIP_PREFIX}`, { nodad: true });
  await b.commit();
  return (sources = chosen);
}

// ───────────────────────────── configurations ─────────────────────────────

/** A plain bridge in the host namespace with the uplink and N namespaces; no nft rules. */
export function plainConfig(n: number): DataplaneConfig {
  return {
    id: `plain ${n}`,
    kind: 'plain',
    n,
    async build({ host }) {
      const names = Array.from({ length: n }, (_, k) => `${PREFIX}p${k}`);
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
          // The host ends first: a namespace's devices go away later, in the kernel's own time.
          const d = new Batch();
          for (let k = 0; k < n; k++) d.in(host).deleteLink(`plainv${k}`);
          await d.commit();
          await host.setLink(UPLINK, { master: null } as any);
          await host.deleteLink(PLAIN_BRIDGE);
          await Netns.deleteMany(nodes);
          for (const h of nodes) openHandles.delete(h);
        },
      };
    },
  };
}

/**
 * A cluster configuration: createCluster with the harness's spec for N and mode, plus `spec` (e.g. a
 * backend option), then `after` (e.g. a rule variant applied with nft for a measurement).
 */
export function clusterConfig(mode: Mode, n: number, o: { id?: string; kind?: string; spec?: Partial<ClusterSpec>; after?: (c: Cluster) => Promise<void> } = {}): DataplaneConfig {
  return {
    id: o.id ?? `${mode} ${n}`,
    kind: o.kind ?? mode,
    n,
    async build() {
      const cluster = await createCluster({ ...clusterSpec(n, mode), ...o.spec });
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

/**
 * Rule variants measured against the library's rules (`--dp-variants`): each is the library's
 * cluster changed with nft after the build, to price one suspect at a time.
 */
export function variantConfigs(n: number): DataplaneConfig[] {
  const table = (c: Cluster) => `nc-${c.name}`;
  const host = (c: Cluster) => c.spec.hostNetns;
  return [
    clusterConfig('steer', n, {
      id: `steer ${n} no node tables`, kind: 'steer-variant',
      after: async (c) => { for (const x of c.nodes) await nftIn(x.netns, `delete table inet ${table(c)}`); },
    }),
    clusterConfig('steer', n, {
      id: `steer ${n} no fwd_out`, kind: 'steer-variant',
      after: async (c) => nftIn(host(c), `delete chain bridge ${table(c)} fwd_out`),
    }),
    clusterConfig('steer', n, {
      id: `steer ${n} + conntrack (nat chain)`, kind: 'steer-variant',
      after: async (c) => { for (const x of c.nodes) await nftIn(x.netns, `add chain inet ${table(c)} post { type nat hook postrouting priority srcnat; policy accept; }`); },
    }),
  ];
}

export function defaultConfigs(sizes: number[], modes: Mode[]): DataplaneConfig[] {
  return [
    ...sizes.map((n) => plainConfig(n)),
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
}

/** Parses `perf script -F comm,time,ip,sym` output, counting samples inside [from, to] (monotonic ns). */
function parsePerf(text: string, cpu: number, from: number, to: number): Samples {
  const s: Samples = { ours: new Map(), oursTotal: 0, ksoftirqd: 0, others: 0, idle: 0 };
  const ksoftirqd = `ksoftirqd/${cpu}`;
  for (const line of text.split('\n')) {
    const m = /^\s*(.*?)\s+(\d+)\.(\d+):\s+[0-9a-f]+\s+(\S+)/.exec(line);
    if (!m) continue;
    const t = Number(m[2]) * 1e9 + Number(m[3].padEnd(9, '0').slice(0, 9));
    if (t < from || t > to) continue;
    const comm = m[1];
    if (comm === TOOL) {
      const sym = m[4] || '[unknown]';
      s.ours.set(sym, (s.ours.get(sym) ?? 0) + 1);
      s.oursTotal++;
    } else if (comm === ksoftirqd) s.ksoftirqd++;
    else if (comm === 'swapper') s.idle++;
    else s.others++;
  }
  return s;
}

function perfRecord(cpu: number, periodNs: number, seconds: number, file: string): Proc {
  // perf itself runs on another cpu when there is one.
  const other = cpu === 0 ? [] : ['taskset', '-c', '0'];
  return spawnTool(
    [...other, 'perf', 'record', '-q', '-C', String(cpu), '-e', 'cpu-clock:k', '-c', String(periodNs), '-k', 'CLOCK_MONOTONIC', '-o', file, '--', 'sleep', String(seconds)],
    'perf record',
    '\u0000never',
  );
}

function perfScript(file: string): string {
  return execFileSync('perf', ['script', '-i', file, '-F', 'comm,time,ip,sym'], { encoding: 'utf8', maxBuffer: 512 << 20, stdio: ['ignore', 'pipe', 'ignore'] });
}

/** ksoftirqd/<cpu> samples per second with no traffic of ours. */
async function idleKsoftirqdRate(cpu: number, periodNs: number): Promise<number> {
  const file = join(tmpDir(), 'idle.perf');
  const p = perfRecord(cpu, periodNs, 1, file);
  await p.output;
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

async function measure(built: Built, srcs: string[], o: { cpu: number; pps: number; duration: number; periodNs: number; ksoftirqdIdle: number }): Promise<RunResult> {
  const tool = compile();
  const WARM = 0.5;
  const sinks = built.nodes.map((ns) => spawnTool(['taskset', '-c', String(o.cpu), 'ip', 'netns', 'exec', ns, tool, 'sink', String(o.cpu), '0.0.0.0', String(PORT), String(WARM + o.duration + 1)], `sink in ${ns}`));
  const file = join(tmpDir(), 'run.perf');
  let perf: Proc | undefined;
  try {
    await Promise.all(sinks.map((s) => s.ready));
    perf = perfRecord(o.cpu, o.periodNs, 0.4 + WARM + o.duration + 0.6, file);
    await sleep(400); // perf is recording
    const pairs = srcs.map((s, i) => `${s}@${built.targets[i]}`);
    const sender = spawnTool(['taskset', '-c', String(o.cpu), 'ip', 'netns', 'exec', CLIENT, tool, 'rate-send', String(o.cpu), String(WARM), String(o.duration), String(o.pps), String(BURST), String(PAYLOAD), String(PORT), ...pairs], 'rate-send');
    const [total, windowSent, from, to, late] = (await sender.output).trim().split(' ').map(Number);
    const delivered = (await Promise.all(sinks.map((s) => s.output))).reduce((a, x) => a + Number(x.trim()), 0);
    await perf.output;
    const s = parsePerf(perfScript(file), o.cpu, from, to);
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
    if (perf) await killGroup(perf.child, 'SIGINT');
    if (process.env.DP_KEEP) execFileSync('cp', [file, join(process.env.DP_KEEP, `${Date.now()}.perf`)]);
    rmSync(file, { force: true });
  }
}

/** Makes the client resolve every target's MAC before the measured run (not timed). */
async function resolveTargets(targets: string[]): Promise<void> {
  await run(['ip', '-n', CLIENT, 'neigh', 'flush', 'all']);
  for (const t of new Set(targets)) await run(['ip', 'netns', 'exec', CLIENT, 'ping', '-c', '1', '-W', '1', t]).catch(() => undefined);
}

export function perfWorks(): string | undefined {
  try {
    execFileSync('perf', ['record', '-q', '-e', 'cpu-clock:k', '-o', '/dev/null', '--', 'true'], { stdio: 'ignore' });
    return undefined;
  } catch (e) {
    return `perf record does not work here: ${e instanceof Error ? e.message.split('\n')[0] : e}`;
  }
}

export async function benchmarkDataplane(o: DataplaneOptions, env: { host: Netns; client: Netns }): Promise<DataplaneResult> {
  const problem = perfWorks();
  if (problem) throw new Error(problem);
  compile();
  const srcs = await ensureSources(env.client);
  const cpu = os.cpus().length - 1;
  const periodNs = o.periodNs ?? 50_000;
  const configs = [...defaultConfigs(o.sizes, o.modes), ...(o.extra ?? [])];
  const runs = new Map(configs.map((c) => [c.id, [] as RunResult[]]));
  for (let rep = 0; rep <= o.reps; rep++) {
    checkpoint();
    const ksoftirqdIdle = await idleKsoftirqdRate(cpu, periodNs);
    // Repetition 0 is a warm-up of the floor (the tools, ARP, caches), not counted.
    for (const c of rep === 0 ? configs.slice(0, 1) : rotate(configs, rep)) {
      checkpoint();
      const built = await c.build(env);
      try {
        await resolveTargets(built.targets);
        const r = await measure(built, srcs, { cpu, pps: o.pps, duration: o.duration, periodNs, ksoftirqdIdle });
        o.log(
          `dataplane ${c.id} ${rep === 0 ? 'warm-up' : `rep ${rep}/${o.reps}`}: ${r.nsPerPacket.toFixed(0)} ns/packet, ` +
            `netfilter ${r.nfNsPerPacket.toFixed(0)}, ${Math.round(r.deliveredPps)} pkt/s delivered (${(100 * r.deliveredShare).toFixed(1)}%), late ticks ${r.late}, ` +
            `ksoftirqd ${(100 * r.ksoftirqdShare).toFixed(1)}%, others on cpu${cpu} ${(100 * r.othersShare).toFixed(0)}%`,
        );
        if (rep > 0) runs.get(c.id)!.push(r);
      } finally {
        await built.close();
      }
    }
  }
  const floor = stats(runs.get(configs[0].id)!.map((r) => r.nsPerPacket)).median;
  const rows = configs.map((c): DataplaneRow => {
    const rs = runs.get(c.id)!;
    const ns = stats(rs.map((r) => r.nsPerPacket));
    const plainN = c.kind !== 'plain' ? runs.get(`plain ${c.n}`) : undefined;
    const pooled = new Map<string, number>();
    for (const r of rs) for (const [sym, k] of r.ours) pooled.set(sym, (pooled.get(sym) ?? 0) + k);
    const packets = rs.reduce((a, r) => a + r.windowPackets, 0);
    const total = [...pooled.values()].reduce((a, b) => a + b, 0) || 1;
    const top = [...pooled]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 12)
      .map(([sym, k]) => ({ sym, nsPerPacket: Math.round((10 * k * periodNs) / packets) / 10, share: Math.round((1000 * k) / total) / 1000 }));
    return {
      id: c.id,
      kind: c.kind,
      n: c.n,
      nsPerPacket: ns,
      netfilterNsPerPacket: stats(rs.map((r) => r.nfNsPerPacket)),
      ratio: Math.round((1000 * ns.median) / floor) / 1000,
      ...(plainN?.length ? { ratioPlainN: Math.round((1000 * ns.median) / stats(plainN.map((r) => r.nsPerPacket)).median) / 1000 } : {}),
      deliveredPps: stats(rs.map((r) => r.deliveredPps)),
      deliveredShare: stats(rs.map((r) => r.deliveredShare)),
      ksoftirqdShare: Math.round((1000 * rs.reduce((a, r) => a + r.ksoftirqdShare, 0)) / Math.max(1, rs.length)) / 1000,
      late: rs.reduce((a, r) => a + r.late, 0),
      othersShare: stats(rs.map((r) => r.othersShare)),
      top,
    };
  });
  return { cpu, pps: o.pps, durationS: o.duration, reps: o.reps, periodNs, payloadBytes: PAYLOAD, pairs: PAIRS, burst: BURST, rows };
}

