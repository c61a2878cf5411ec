// A sandbox for cluster tests: a client namespace with 64 IPv4 and 64 IPv6 source addresses, a
// host namespace, and the wire between them (`c0` in the host). Nodes run a responder that answers
// with its index. Everything lives in namespaces named after one unique prefix.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Batch, type Netns } from '../lib/index.js';
import type { Cluster } from '../lib/cluster/cluster.js';
import { expect } from 'vitest';
import { SLOWDOWN } from './helpers.js';

const fixture = (f: string) => fileURLToPath(new URL(`./fixtures/${f}`, import.meta.url));

export const VIP4 = '192.0.2.1';
export const VIP6 = '2001:db8::1';
export const PORT = 5000;

export type UplinkKind = 'bridged' | 'routed';

export interface Flow {
  from: string;
  port?: number;
  to: string;
  destPort: number;
  protocol: 'udp' | 'tcp';
}

export interface ProbeResult extends Flow {
  node: number | number[] | null;
  error?: string;
}

export function sources(kind: UplinkKind, family: 4 | 6, count = 64): string[] {
  return Array.from({ length: count }, (_, i) =>
    family === 4
      ? kind === 'bridged' ? `192.0.2.${10 + i}` : `203.0.113.${10 + i}`
      : kind === 'bridged' ? `2001:db8::${(0x100 + i).toString(16)}` : `2001:db8:c::${(0x100 + i).toString(16)}`,
  );
}

/** Wires client ↔ host: in routed mode the host routes; in bridged mode `c0` will join the bridge. */
export async function wire(client: Netns, host: Netns, kind: UplinkKind): Promise<void> {
  const b = new Batch();
  // No IPv6 duplicate address detection on the wire: tentative link-locals delay the first packets.
  b.in(host).writeSysctl('net.ipv6.conf.default.accept_dad', 0);
  b.in(client).writeSysctl('net.ipv6.conf.default.accept_dad', 0);
  b.in(host).addVeth({ name: 'c0', up: true, peer: { name: 'eth0', netns: client, up: true } });
  const c = b.in(client).setLink('lo', { up: true });
  for (const ip of sources(kind, 4)) c.addAddress('eth0', `${ip}/24`);
  for (const ip of sources(kind, 6)) c.addAddress('eth0', `${ip}/64`, { nodad: true });
  if (kind === 'routed') {
    b.in(host).addAddress('c0', '203.0.113.1/24').addAddress('c0', '2001:db8:c::1/64', { nodad: true });
    c.addRoute({ destination: `${VIP4}/32`, via: '203.0.113.1' }).addRoute({ destination: `${VIP6}/128`, via: '2001:db8:c::1' });
  }
  await b.commit();
}

/** Starts a responder in every node; resolves when all listen. */
export async function startResponders(cluster: Cluster, ports = [PORT]): Promise<ChildProcess[]> {
  const procs = cluster.nodes.map((n) =>
    spawn('ip', ['netns', 'exec', n.netns, process.execPath, fixture('responder.mjs'), String(n.index), ports.join(','), VIP4, VIP6], {
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  await Promise.all(
    procs.map(async (p) => {
      const [chunk] = (await once(p.stdout!, 'data')) as [Buffer];
      if (!String(chunk).includes('ready')) throw new Error(`responder said: ${chunk}`);
    }),
  );
  return procs;
}

export async function stopAll(procs: ChildProcess[]): Promise<void> {
  await Promise.all(
    procs.map(async (p) => {
      if (p.exitCode !== null || p.signalCode !== null) return;
      p.kill('SIGTERM');
      await once(p, 'exit');
    }),
  );
}

/** Runs the probe in the client namespace. */
export function probe(clientNetns: string, flows: Flow[], timeoutMs = 1500 * SLOWDOWN): ProbeResult[] {
  const out = execFileSync('ip', ['netns', 'exec', clientNetns, process.execPath, fixture('probe.mjs'), JSON.stringify({ flows, timeoutMs })], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  return JSON.parse(out) as ProbeResult[];
}

/** 64 v4 + 64 v6 flows of one protocol, each from its own source address and port. */
export function flowsFor(kind: UplinkKind, protocol: 'udp' | 'tcp', families: (4 | 6)[] = [4, 6]): Flow[] {
  return families.flatMap((fam) =>
    sources(kind, fam).map((from, i) => ({
      from,
      port: 30000 + i * 11 + (protocol === 'tcp' ? 5 : 0),
      to: fam === 4 ? VIP4 : VIP6,
      destPort: PORT,
      protocol,
    })),
  );
}

/** Runs a fixture in a namespace without blocking the test's event loop; resolves with its JSON output. */
export async function runFixture<T>(netns: string, file: string, arg: unknown): Promise<T> {
  const p = spawn('ip', ['netns', 'exec', netns, process.execPath, fixture(file), JSON.stringify(arg)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  p.stdout!.on('data', (d) => (out += d));
  const [code] = (await once(p, 'exit')) as [number];
  if (code !== 0) throw new Error(`${file} exited with ${code}`);
  return JSON.parse(out) as T;
}

export interface StreamResult {
  sent: number;
  received: number;
  duplicates: number;
  lost: number;
  byNode: Record<string, number>;
  /** Per flow (in the order given): datagrams sent and answered, and the nodes that answered. */
  perFlow: { sent: number; received: number; nodes: number[] }[];
}

/** The node ownerOf() names for each flow. */
export const ownersOf = (cluster: Cluster, flows: Flow[]): number[] => flows.map((f) => cluster.ownerOf({ address: f.from, port: f.port, destPort: f.destPort }));

/**
 * Node 2 taken down and brought back, with `flows` probed from `client` throughout: while it is
 * down no flow reaches it, every flow is served as ownerOf() says, and the live nodes keep theirs;
 * once it is up every flow is back where it was. `whileDown` checks more meanwhile (e.g. the
 * kernel's own table); `events` collects the cluster's 'down k' / 'up k'.
 */
export async function expectNodeDownUp(cluster: Cluster, client: string, flows: Flow[], events: string[], whileDown: () => Promise<void> = async () => {}): Promise<void> {
  const before = probe(client, flows).map((r) => r.node);
  await cluster.setNodeState(2, 'down');
  expect(cluster.buckets()).not.toContain(2);
  await whileDown();
  const during = probe(client, flows);
  expect(during.map((r) => r.node)).toEqual(ownersOf(cluster, flows));
  expect(during.some((r) => r.node === 2)).toBe(false);
  expect(during.every((r) => typeof r.node === 'number')).toBe(true);
  // Flows of the live nodes did not move.
  during.forEach((r, i) => {
    if (before[i] !== 2) expect(r.node).toBe(before[i]);
  });
  await cluster.setNodeState(2, 'up');
  expect(probe(client, flows).map((r) => r.node)).toEqual(before);
  expect(events).toEqual(expect.arrayContaining(['down 2', 'up 2']));
}

/**
 * One probe of `flows`: each node's counters grew by the flows it served (bytes too), and with
 * `drops` (flood mode) its dropped counter by the rest.
 */
export async function expectCountersMatch(cluster: Cluster, client: string, flows: Flow[], drops: boolean): Promise<void> {
  const c0 = await cluster.counters();
  const results = probe(client, flows);
  const c1 = await cluster.counters();
  for (const k of cluster.nodes.map((x) => x.index)) {
    const served = results.filter((r) => r.node === k).length;
    expect(c1[k].packets - c0[k].packets, `node ${k} accepted`).toBe(served);
    expect(c1[k].bytes).toBeGreaterThan(c0[k].bytes);
    if (drops) expect(c1[k].droppedPackets - c0[k].droppedPackets, `node ${k} dropped`).toBe(flows.length - served);
  }
}

/**
 * A 1000 datagram/s UDP stream of `flows` from `client` for 3 s while 20 bucket moves run (every
 * fourth bucket, in turn, to the next of 4 nodes), 120 ms apart; resolves with the stream's result.
 */
export async function streamThroughMoves(cluster: Cluster, client: string, flows: Flow[]): Promise<StreamResult> {
  const stream = runFixture<StreamResult>(client, 'stream.mjs', { flows, rate: 1000, durationMs: 3000 });
  await new Promise((r) => setTimeout(r, 200));
  for (let i = 0; i < 20; i++) {
    const moves: Record<number, number> = {};
    for (let b = i % 4; b < cluster.spec.buckets; b += 4) moves[b] = (cluster.buckets()[b] + 1) % 4;
    await cluster.moveBuckets(moves);
    await new Promise((r) => setTimeout(r, 120));
  }
  return stream;
}
