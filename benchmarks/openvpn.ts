/**
 * OpenVPN through the cluster: aggregate iperf3 throughput through K = 4 real tunnels, 1 node vs
 * N = 2 nodes, the same 4 clients each time, plus each openvpn process's CPU.
 *
 * createCluster({ service: openvpn({ clientFingerprints }), ports: udp/1194, seed: SEED }) then
 * cluster.start(); clients are real `openvpn --config …` processes in the client namespace
 * (renderClientConfig with bind: { address: <its own source> }, dev tun-c<i>), the sources being the
 * traffic benchmark's four (two per node when N = 2, by the library's jhash port). The server's
 * fingerprint comes from the definition's serverFingerprint() after start. All clients share one
 * namespace, so each tunnel address gets a source-routing table (as in the cluster tests). One
 * iperf3 server per client (`--one-off`, port 5201+i) runs in the node that owns the client, bound to
 * the node's tunnel address 10.8.<k>.1; the four iperf3 clients (`-B <tun address>`, TCP, duration D)
 * run at once; throughput = sum of the receivers' bits/s. CPU per openvpn = Δ(utime+stime) from
 * /proc/<pid>/stat over the iperf3 run / duration. Rounds alternate 1, 2, 1, 2 nodes.
 * @module
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { createCluster, destroyCluster, generateIdentity, openvpn, renderClientConfig, writeSecretFile, type Netns, type Identity } from '../lib/index.js';
import type { Cluster } from '../lib/cluster/cluster.js';
import { SEED } from './cluster-setup.js';
import { ensureSources } from './traffic.js';
import { CLIENT, HOST, NAME, UPLINK, VIP, VIP_PREFIX, checkpoint, isStopping, ipJson, killGroup, liveClusters, run, start, stats, tmpDir, type Stats } from './common.js';

const K = 4;
const CLK_TCK = 100;

export interface OpenvpnRow {
  nodes: number;
  throughputMbps: Stats;
  /** CPU of each server openvpn (percent of one core), median over rounds, by node. */
  serverCpuPct: number[];
  /** Sum over the 4 client openvpn processes (percent of one core). */
  clientCpuPct: number;
  /** Clients per node (last round). */
  clientsPerNode: number[];
}

export interface OpenvpnResult {
  error?: string;
  /** Rounds that failed (the others still count). */
  errors?: string[];
  clients?: number;
  durationS?: number;
  rounds?: number;
  rows?: OpenvpnRow[];
}

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of proc(5))
}

function tunAddress(dev: string): string | undefined {
  try {
    return ipJson(['-n', CLIENT, 'addr', 'show', 'dev', dev])[0]?.addr_info?.find((a: any) => a.family === 'inet')?.local;
  } catch {
    return undefined;
  }
}

async function until<T>(what: string, fn: () => T | undefined | false, timeoutMs: number): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    checkpoint();
    const v = fn();
    if (v) return v;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

interface Round {
  mbps: number;
  serverCpu: number[];
  clientCpu: number;
  perNode: number[];
}

async function round(nodes: number, ids: Identity[], sources: string[], duration: number, log: (s: string) => void): Promise<Round> {
  const service = openvpn({ clientFingerprints: ids.map((i) => i.fingerprint), keepalive: [2, 10] });
  const cluster: Cluster = await createCluster({
    name: NAME,
    nodes,
    vip: `${VIP}/${VIP_PREFIX}`,
    ports: [{ protocol: 'udp', port: 1194 }],
    hostNetns: HOST,
    uplink: { bridge: UPLINK },
    seed: SEED,
    service,
  });
  liveClusters.add(cluster);
  const procs: ReturnType<typeof start>[] = [];
  try {
    await cluster.start();
    const status = await cluster.status();
    const serverPids = status.map((s) => s.pid!);
    if (serverPids.some((p) => !p)) throw new Error(`server not running: ${JSON.stringify(status.map((s) => s.state))}`);
    const fp = service.serverFingerprint()!;
    await run(['ip', '-n', CLIENT, 'neigh', 'flush', 'all']);
    const owners = sources.map((address) => cluster.ownerOf({ address }));
    const clientPids: number[] = [];
    for (let i = 0; i < K; i++) {
      const path = join(tmpDir(), `client${i}.conf`);
      await writeSecretFile(path, renderClientConfig({ remote: VIP, identity: ids[i], serverFingerprint: fp, bind: { address: sources[i] }, dev: `tun-c${i}`, verb: 1 }));
      const p = start(['ip', 'netns', 'exec', CLIENT, 'openvpn', '--config', path]);
      p.stdout!.resume();
      p.stderr!.resume();
      procs.push(p);
      clientPids.push(p.pid!); // ip netns exec execs openvpn: same pid
    }
    const t0 = performance.now();
    const tun = await until('all 4 tunnels up', () => {
      const a = Array.from({ length: K }, (_, i) => tunAddress(`tun-c${i}`));
      return a.every(Boolean) ? (a as string[]) : undefined;
    }, 30_000);
    log(`openvpn ${nodes} node(s): 4 tunnels up ${Math.round(performance.now() - t0)} ms after starting the clients`);
    // Each tunnel address routes 10.8.0.0/16 through its own tun (all clients share one namespace).
    for (let i = 0; i < K; i++) {
      const table = String(100 + i);
      await run(['ip', '-n', CLIENT, 'rule', 'del', 'priority', table]).catch(() => undefined);
      await run(['ip', '-n', CLIENT, 'rule', 'add', 'from', tun[i], 'table', table, 'priority', table]);
      await run(['ip', '-n', CLIENT, 'route', 'replace', '10.8.0.0/16', 'dev', `tun-c${i}`, 'table', table]);
    }
    const nodeOf = tun.map((a) => Number(a.split('.')[2]));
    if (nodeOf.some((k, i) => k !== owners[i])) log(`warning: tunnels on nodes ${nodeOf} but ownerOf says ${owners}`);
    const servers = nodeOf.map((k, i) => {
      const p = start(['ip', 'netns', 'exec', cluster.nodes[k].netns, 'iperf3', '-s', '-1', '--forceflush', '-p', String(5201 + i), '-B', `10.8.${k}.1`]);
      p.stderr!.resume();
      return p;
    });
    await Promise.all(
      servers.map(
        (p) =>
          new Promise<void>((resolve, reject) => {
            let out = '';
            p.stdout!.setEncoding('utf8').on('data', (d: string) => {
              out += d;
              if (out.includes('listening')) resolve();
            });
            p.once('close', () => reject(new Error(`iperf3 server ended: ${out}`)));
          }),
      ),
    );
    const before = serverPids.map(cpuTicks);
    const clientsBefore = clientPids.map(cpuTicks);
    const ts = performance.now();
    const outputs = await Promise.all(
      nodeOf.map((k, i) => run(['ip', 'netns', 'exec', CLIENT, 'iperf3', '-c', `10.8.${k}.1`, '-p', String(5201 + i), '-B', tun[i], '-t', String(duration), '-J'])),
    );
    const secs = (performance.now() - ts) / 1000;
    const serverCpu = serverPids.map((p, k) => Math.round(((cpuTicks(p) - before[k]) / CLK_TCK / secs) * 1000) / 10);
    const clientCpu = Math.round((clientPids.reduce((a, p, i) => a + cpuTicks(p) - clientsBefore[i], 0) / CLK_TCK / secs) * 1000) / 10;
    const mbps = outputs.reduce((a, o) => a + JSON.parse(o).end.sum_received.bits_per_second / 1e6, 0);
    await Promise.all(servers.map((p) => killGroup(p)));
    // Let the iperf3 connections finish closing while the tunnels are still up: a node-side TCP
    // socket left waiting for an ACK that can no longer arrive keeps its namespace alive.
    await sleep(1000);
    const perNode = Array.from({ length: nodes }, (_, k) => nodeOf.filter((x) => x === k).length);
    log(`openvpn ${nodes} node(s): ${mbps.toFixed(0)} Mbit/s through 4 tunnels (per node ${perNode.join('/')}); server CPU ${serverCpu.join('/')} %, clients ${clientCpu} %`);
    return { mbps, serverCpu, clientCpu, perNode };
  } finally {
    await Promise.all(procs.map((p) => killGroup(p)));
    await cluster.close();
    liveClusters.delete(cluster);
  }
}

export async function benchmarkOpenvpn(o: { duration: number; rounds: number; log: (s: string) => void }, env: { client: Netns }): Promise<OpenvpnResult> {
  const sources = await ensureSources(env.client);
  const ids = await Promise.all(Array.from({ length: K }, (_, i) => generateIdentity(`bench-client${i}`)));
  const rounds = new Map<number, Round[]>([[1, []], [2, []]]);
  const errors: string[] = [];
  for (let r = 0; r < o.rounds; r++) {
    for (const n of [1, 2]) {
      try {
        rounds.get(n)!.push(await round(n, ids, sources, o.duration, o.log));
      } catch (e) {
        if (isStopping()) throw e;
        // One failed round (e.g. close() timing out while the kernel is slow to destroy namespaces
        // under load) must not lose the others: record it, sweep, go on.
        const msg = `${n} node(s), round ${r + 1}: ${e instanceof Error ? e.message : String(e)}`;
        o.log(`openvpn round failed: ${msg}`);
        errors.push(msg);
        await sleep(2000);
        await destroyCluster(NAME, { hostNetns: HOST }).catch((err) => o.log(`sweep after failed round: ${err}`));
      }
    }
  }
  if ([...rounds.values()].some((rs) => rs.length === 0)) return { error: errors.join('; ') || 'no rounds', errors };
  const median = (xs: number[]): number => stats(xs).median;
  return {
    clients: K,
    durationS: o.duration,
    rounds: o.rounds,
    ...(errors.length ? { errors } : {}),
    rows: [...rounds].map(([nodes, rs]) => ({
      nodes,
      throughputMbps: stats(rs.map((x) => x.mbps)),
      serverCpuPct: Array.from({ length: nodes }, (_, k) => median(rs.map((x) => x.serverCpu[k]))),
      clientCpuPct: median(rs.map((x) => x.clientCpu)),
      clientsPerNode: rs.at(-1)!.perNode,
    })),
  };
}
