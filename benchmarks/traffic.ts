/**
 * Data-plane throughput: UDP packets/s delivered to the application and TCP connections/s, through
 *   - `single`: one plain namespace holding the VIP behind a bridge in the same host namespace, c0 as
 *     the uplink, NO nft rules at all (the reference: what one node does without the cluster);
 *   - `steer N`, `flood N`: createCluster with N nodes, same host namespace, same uplink.
 * The same S = 4 senders run in the client namespace each time, each bound to its own source address
 * (192.0.2.x, chosen with the library's jhash port so that they spread evenly over 2 or 4 nodes:
 * sender i → bucket with owner i mod N). Each node runs one receiver (`blast udp-recv`, recvmmsg) on
 * VIP:5000; delivered rate = packets the receivers got / sending duration. Payload 16 bytes. TCP: one
 * accept-and-close server per node on VIP:5001, the same 4 sources each run connect + RST-close
 * loops; rate = completed connects / duration. Every process stops by itself (bounded durations).
 * Configurations are interleaved per repetition in rotating order; medians, min–max; ratio to single.
 * The tools are benchmarks/blast.c, compiled with gcc into the run's temporary directory.
 * @module
 */
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Batch, Netns, createCluster } from '../lib/index.js';
import type { Cluster } from '../lib/cluster/cluster.js';
import { clusterSpec, SEED, type Mode } from './cluster-setup.js';
import { CLIENT, SOLO, UPLINK, VIP, VIP_PREFIX, checkpoint, compileBlast, killGroup, liveClusters, openHandles, rotate, run, sourcesByBucket, start, stats, type Stats } from './common.js';

export const SENDERS = 4;
const UDP_PORT = 5000;
const TCP_PORT = 5001;
const PAYLOAD = 16;
const SOLO_BRIDGE = 'solobr';

export interface TrafficRow {
  config: string;
  mode: Mode | 'single';
  n: number;
  udpPps: Stats;
  udpSentPps: Stats;
  tcpCps: Stats;
  /** Per node share of the UDP packets (last repetition). */
  udpByNode: number[];
}

export interface TrafficResult {
  senders: number;
  payloadBytes: number;
  durationS: number;
  reps: number;
  sources: string[];
  rows: TrafficRow[];
}

const compile = (): string => compileBlast('blast');

/** Source addresses: sender i hashes to a bucket whose owner (bucket mod N) is i mod N for N = 2 and 4. */
const chooseSources = (): string[] => sourcesByBucket(SENDERS, 4, 10, SEED);

let sourcesAdded: string[] | undefined;

/** Adds the senders' source addresses to the client's eth0 (once per run); returns them. */
export async function ensureSources(client: Netns): Promise<string[]> {
  if (sourcesAdded) return sourcesAdded;
  const sources = chooseSources();
  const b = new Batch();
  for (const s of sources) b.in(client).addAddress('eth0', `${s}/${VIP_PREFIX}`, { nodad: true });
  await b.commit();
  return (sourcesAdded = sources);
}

interface Proc {
  child: ChildProcess;
  ready: Promise<void>;
  output: Promise<string>;
}

function tool(ns: string, args: (string | number)[]): Proc {
  const child = start(['ip', 'netns', 'exec', ns, compile(), ...args.map(String)]);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  const ready = new Promise<void>((resolve, reject) => {
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      if (stderr.includes('ready')) resolve();
    });
    child.once('close', () => reject(new Error(`blast ${args.join(' ')} in ${ns} ended early: ${stderr}`)));
  });
  ready.catch(() => undefined);
  const output = new Promise<string>((resolve, reject) =>
    child.once('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`blast ${args.join(' ')} in ${ns}: exit ${code}: ${stderr}`)))),
  );
  output.catch(() => undefined);
  return { child, ready, output };
}

async function measureUdp(nodes: string[], sources: string[], duration: number): Promise<{ delivered: number; sent: number; byNode: number[] }> {
  const receivers = nodes.map((ns) => tool(ns, ['udp-recv', VIP, UDP_PORT, duration]));
  try {
    await Promise.all(receivers.map((r) => r.ready));
    const senders = sources.map((src) => tool(CLIENT, ['udp-send', src, VIP, UDP_PORT, duration, PAYLOAD]));
    const sent = (await Promise.all(senders.map((s) => s.output))).reduce((a, o) => a + Number(o.split(' ')[0]), 0);
    const byNode = (await Promise.all(receivers.map((r) => r.output))).map((o) => Number(o.split(' ')[0]));
    return { delivered: byNode.reduce((a, b) => a + b, 0) / duration, sent: sent / duration, byNode };
  } finally {
    await Promise.all(receivers.map((r) => killGroup(r.child)));
  }
}

async function measureTcp(nodes: string[], sources: string[], duration: number): Promise<number> {
  const servers = nodes.map((ns) => tool(ns, ['tcp-serve', VIP, TCP_PORT, duration]));
  try {
    await Promise.all(servers.map((r) => r.ready));
    const clients = sources.map((src) => tool(CLIENT, ['tcp-conn', src, VIP, TCP_PORT, duration]));
    const ok = (await Promise.all(clients.map((s) => s.output))).reduce((a, o) => a + Number(o.split(' ')[0]), 0);
    await Promise.all(servers.map((r) => r.output));
    return ok / duration;
  } finally {
    await Promise.all(servers.map((r) => killGroup(r.child)));
  }
}

interface Built {
  nodes: string[];
  close(): Promise<void>;
}

/** The reference: one namespace with the VIP behind a plain bridge, no nft rules. */
async function buildSingle(host: Netns): Promise<Built> {
  const solo = await Netns.create(SOLO);
  openHandles.add(solo);
  const b = new Batch();
  b.in(solo).writeSysctl('net.ipv6.conf.default.accept_dad', 0);
  b.in(host).addBridge({ name: SOLO_BRIDGE, up: true, mcastSnooping: false }).setLink(UPLINK, { master: SOLO_BRIDGE, up: true });
  b.in(host).addVeth({ name: 'solov0', master: SOLO_BRIDGE, up: true, peer: { name: 'eth0', netns: solo, up: true } });
  b.in(solo).setLink('lo', { up: true }).addAddress('eth0', `${VIP}/${VIP_PREFIX}`, { nodad: true });
  await b.commit();
  return {
    nodes: [SOLO],
    async close() {
      await Netns.deleteMany([solo]);
      openHandles.delete(solo);
      await host.setLink(UPLINK, { master: null } as any);
      await host.deleteLink(SOLO_BRIDGE);
    },
  };
}

async function buildCluster(n: number, mode: Mode): Promise<Built> {
  const cluster: Cluster = await createCluster(clusterSpec(n, mode));
  liveClusters.add(cluster);
  return {
    nodes: cluster.nodes.map((x) => x.netns),
    async close() {
      await cluster.close();
      liveClusters.delete(cluster);
    },
  };
}

export async function benchmarkTraffic(
  o: { duration: number; sizes: number[]; modes: Mode[]; reps: number; log: (s: string) => void },
  env: { host: Netns; client: Netns },
): Promise<TrafficResult> {
  compile();
  const sources = await ensureSources(env.client);
  const configs: { config: string; mode: Mode | 'single'; n: number }[] = [
    { config: 'single', mode: 'single', n: 1 },
    ...o.modes.flatMap((mode) => o.sizes.map((n) => ({ config: `${mode} N=${n}`, mode, n }))),
  ];
  const samples = new Map(configs.map((c) => [c.config, { udp: [] as number[], sent: [] as number[], tcp: [] as number[], byNode: [] as number[] }]));
  // One untimed warm-up of the single configuration (page cache, ARP, the tools), then the reps.
  for (let rep = 0; rep <= o.reps; rep++) {
    for (const c of rep === 0 ? configs.slice(0, 1) : rotate(configs, rep)) {
      checkpoint();
      const built = c.mode === 'single' ? await buildSingle(env.host) : await buildCluster(c.n, c.mode);
      try {
        await run(['ip', '-n', CLIENT, 'neigh', 'flush', 'all']);
        await run(['ip', 'netns', 'exec', CLIENT, 'ping', '-c', '1', '-W', '1', VIP]).catch(() => undefined); // resolve the VIP's MAC
        const udp = await measureUdp(built.nodes, sources, o.duration);
        await sleep(200);
        const tcp = await measureTcp(built.nodes, sources, o.duration);
        const s = samples.get(c.config)!;
        const tag = rep === 0 ? 'warm-up' : `rep ${rep}/${o.reps}`;
        o.log(`traffic ${c.config} ${tag}: UDP ${Math.round(udp.delivered)} pkt/s delivered (sent ${Math.round(udp.sent)}; packets per node ${udp.byNode.join('/')}), TCP ${Math.round(tcp)} conn/s`);
        if (rep > 0) {
          s.udp.push(udp.delivered);
          s.sent.push(udp.sent);
          s.tcp.push(tcp);
          s.byNode = udp.byNode;
        }
      } finally {
        await built.close();
      }
    }
  }
  return {
    senders: SENDERS,
    payloadBytes: PAYLOAD,
    durationS: o.duration,
    reps: o.reps,
    sources,
    rows: configs.map((c) => {
      const s = samples.get(c.config)!;
      return { ...c, udpPps: stats(s.udp), udpSentPps: stats(s.sent), tcpCps: stats(s.tcp), udpByNode: s.byNode };
    }),
  };
}

