// The iptables backend's checks with real traffic, for one variant (test/iptables.test.ts runs
// them with xt_cluster, test/iptables-clusterip.test.ts with CLUSTERIP where the kernel has it):
// every flow from 64 IPv4 sources is answered by exactly one node, the one ownerOf() names, the
// same each time; moves under a stream lose nothing; a node down/up; counters; failover with a
// real service; nothing left afterwards.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { binding, type IptListedRule, type NativeOp } from '../lib/kernel/binding.js';
import { createCluster, type Cluster } from '../lib/cluster/cluster.js';
import type { HashMode } from '../lib/rules/jhash.js';
import type { Netns } from '../lib/index.js';
import { IPT_CHAIN, nodeRuleset, ownedBy, type IptablesKind } from '../lib/rules/iptables.js';
import { rulesetOp } from '../lib/rules/iptables-backend.js';
import { homeBuckets } from '../lib/cluster/plan.js';
import { resolveSpec } from '../lib/cluster/spec.js';
import { describeAsRoot, ipj, scratch } from './helpers.js';
import { PORT, VIP4, expectCountersMatch, expectNodeDownUp, flowsFor, ownersOf, probe, stopAll, streamThroughMoves, wire, type Flow, type UplinkKind } from './world.js';

const fixture = (f: string) => fileURLToPath(new URL(`./fixtures/${f}`, import.meta.url));

export const until = async (what: string, cond: () => boolean | Promise<boolean>, ms = 30_000) => {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

export async function submitOne(op: NativeOp): Promise<unknown> {
  const [r] = await binding().submit([op], true);
  if (r instanceof Error) throw r;
  return r;
}

/** A responder in every node, on the IPv4 VIP (the backend has no IPv6); resolves when all listen. */
async function startResponders(cluster: Cluster): Promise<ChildProcess[]> {
  const procs = cluster.nodes.map((x) =>
    spawn('ip', ['netns', 'exec', x.netns, process.execPath, fixture('responder.mjs'), String(x.index), String(PORT), VIP4], { stdio: ['ignore', 'pipe', 'inherit'] }),
  );
  await Promise.all(
    procs.map(async (p) => {
      const [chunk] = (await once(p.stdout!, 'data')) as [Buffer];
      if (!String(chunk).includes('ready')) throw new Error(`responder said: ${chunk}`);
    }),
  );
  return procs;
}

const tableOf = (variant: IptablesKind) => (variant === 'xt_cluster' ? 'mangle' : 'filter');

/** The cluster's chain in a node, read back through libiptc. */
export const chainOf = (ns: Netns, variant: IptablesKind) =>
  submitOne({ type: 'iptc.list', netns: ns.handle, table: tableOf(variant), chain: IPT_CHAIN }) as Promise<IptListedRule[] | null>;

/** The buckets the kernel has node `k` answer for. */
async function ownedInKernel(ns: Netns, variant: IptablesKind, buckets: number): Promise<number[]> {
  if (variant === 'clusterip') return ((await submitOne({ type: 'clusterip.nodes', netns: ns.handle, vip: VIP4 })) as number[]).map((n) => n - 1);
  const mask = (await chainOf(ns, variant))?.find((r) => r.cluster)?.cluster?.nodeMask ?? 0;
  return Array.from({ length: buckets }, (_, b) => b).filter((b) => (mask >>> b) & 1);
}

const v4 = (uplink: UplinkKind, protocol: 'udp' | 'tcp') => flowsFor(uplink, protocol, [4]);

export function iptablesSuite(variant: IptablesKind, hashes: readonly HashMode[], tag: string): void {
  const spec = (name: string, host: Netns, uplink: UplinkKind, hash: HashMode = 'sourceip') => ({
    name,
    nodes: 4,
    vip: '192.0.2.1/24',
    ports: [{ protocol: 'udp' as const, port: PORT }, { protocol: 'tcp' as const, port: PORT }],
    backend: 'iptables' as const,
    iptables: { variant },
    hash,
    hostNetns: host.name,
    uplink: uplink === 'bridged' ? { bridge: 'c0' } : { routed: { via: 'c0' } },
  });

  describeAsRoot(`backend iptables (${variant}) with real traffic`, () => {
    const s = scratch(`${tag}m`);
    afterAll(() => s.cleanup());
    let n = 0;
    for (const uplink of ['bridged', 'routed'] as UplinkKind[]) {
      for (const hash of hashes) {
        it(`${hash} / ${uplink}: each of 64 IPv4 flows reaches exactly the node ownerOf names, UDP and TCP, the same each time`, { timeout: 180_000 }, async () => {
          const t = `${n++}`;
          const [client, host] = await s.make(`c${t}`, `h${t}`);
          await wire(client, host, uplink);
          const cluster = await createCluster(spec(`${s.prefix}${t}`, host, uplink, hash));
          let procs: ChildProcess[] = [];
          try {
            procs = await startResponders(cluster);
            expect(cluster.plan().backend).toBe(`iptables (${variant})`);
            const first = probe(client.name!, v4(uplink, 'udp'));
            const again = probe(client.name!, v4(uplink, 'udp'));
            const tcp = probe(client.name!, v4(uplink, 'tcp'));
            for (const results of [first, again, tcp]) {
              const expected = (r: (typeof results)[number]) => cluster.ownerOf({ address: r.from, port: r.port, destPort: r.destPort });
              const wrong = results.filter((r) => r.node !== expected(r));
              expect(wrong.map((r) => `${r.protocol} ${r.from}:${r.port} → ${JSON.stringify(r.node)} ${r.error ?? ''} (expected ${expected(r)})`)).toEqual([]);
            }
            expect(again.map((r) => r.node)).toEqual(first.map((r) => r.node));
            expect(new Set(first.map((r) => r.node)).size, 'every node serves some flows').toBe(4);
            // Whoever resolves the VIP learns the bridge's MAC (the host's bridge table rewrites ARP).
            const [ns, dev] = uplink === 'bridged' ? [client.name!, 'eth0'] : [host.name!, cluster.bridge.replace(/br$/, 'gw')];
            expect(ipj<{ dst: string; lladdr?: string }[]>('-n', ns, 'neigh', 'show', 'dev', dev).find((e) => e.dst === VIP4)?.lladdr).toBe(cluster.vmac);
          } finally {
            await stopAll(procs);
            await cluster.close();
          }
        });
      }
    }
  });

  describeAsRoot(`a running iptables (${variant}) cluster`, () => {
    const s = scratch(`${tag}o`);
    let client: Netns;
    let host: Netns;
    let cluster: Cluster;
    let nodeNs: Netns[] = [];
    let procs: ChildProcess[] = [];
    const events: string[] = [];
    const owners = (flows: Flow[]) => ownersOf(cluster, flows);

    beforeAll(async () => {
      [client, host] = await s.make('c', 'h');
      await wire(client, host, 'bridged');
      cluster = await createCluster(spec(`${s.prefix}x`, host, 'bridged'));
      cluster.on('node-down', (e) => events.push(`down ${e.index}`));
      cluster.on('node-up', (e) => events.push(`up ${e.index}`));
      procs = await startResponders(cluster);
      const { Netns: NetnsClass } = await import('../lib/index.js');
      nodeNs = await Promise.all(cluster.nodes.map((x) => NetnsClass.open(x.netns)));
    });
    afterAll(async () => {
      await stopAll(procs);
      await Promise.all(nodeNs.map((x) => x.close()));
      await cluster?.close();
      await s.cleanup();
    });

    it('every node has the planned rules, marked, and answers for the buckets the table gives it', async () => {
      const plan = cluster.plan();
      expect(plan.rulesets).toHaveLength(4);
      for (const [k, ns] of nodeNs.entries()) {
        const rules = (await chainOf(ns, variant))!;
        expect(rules.map((r) => r.comment)).toEqual(plan.rulesets[k].rules.map(() => `netns-cluster:${cluster.name}`));
        expect(rules.map((r) => r.target)).toEqual(plan.rulesets[k].rules.map((r) => (typeof r.target === 'string' ? r.target : 'CLUSTERIP')));
        expect(await ownedInKernel(ns, variant, cluster.spec.buckets)).toEqual(cluster.buckets().flatMap((o, b) => (o === k ? [b] : [])));
      }
    });

    it('moving buckets while a 1000 pkt/s UDP stream runs loses nothing', async () => {
      const flows = v4('bridged', 'udp').filter((_, i) => i % 2 === 0); // 32 flows
      const counted = await cluster.counters();
      const original = cluster.buckets();
      try {
        const result = await streamThroughMoves(cluster, client.name!, flows);
        expect(result.sent).toBe(3000);
        expect(result.lost).toBe(0);
        // Replaced rules keep their counts: the counters only grow.
        const after = await cluster.counters();
        for (const k of [0, 1, 2, 3]) {
          expect(after[k].packets, `node ${k} accepted`).toBeGreaterThanOrEqual(counted[k].packets);
          expect(after[k].droppedPackets, `node ${k} dropped`).toBeGreaterThanOrEqual(counted[k].droppedPackets);
        }
        // A replaced chain starts from the counts read just before the commit, so packets counted in
        // that instant on the old chain are not carried over: at most a few per replace (40 here).
        // That no datagram was lost is the assertion above.
        expect(after.reduce((a, c) => a + c.packets, 0) - counted.reduce((a, c) => a + c.packets, 0)).toBeGreaterThanOrEqual(3000 - 40);
        for (const [k, ns] of nodeNs.entries()) expect(await ownedInKernel(ns, variant, cluster.spec.buckets)).toEqual(cluster.buckets().flatMap((o, b) => (o === k ? [b] : [])));
      } finally {
        // Put everything back where it was, whatever happened (the next tests start from home).
        await cluster.moveBuckets(Object.fromEntries(original.map((node, b) => [b, node])));
      }
      expect(cluster.buckets()).toEqual(original);
      expect(probe(client.name!, v4('bridged', 'udp')).map((r) => r.node)).toEqual(owners(v4('bridged', 'udp')));
    });

    it('a node taken down gets no flows, live nodes serve them as ownerOf says, and up brings them back', async () => {
      const flows = v4('bridged', 'udp');
      await expectNodeDownUp(cluster, client.name!, flows, events, async () => {
        expect(await ownedInKernel(nodeNs[2], variant, cluster.spec.buckets)).toEqual([]);
      });
    });

    it('counters match what was sent', async () => {
      await expectCountersMatch(cluster, client.name!, v4('bridged', 'udp'), true);
    });

    it("update: new ports replace every node's rules; a fifth node gets its rules and its share of the flows", async () => {
      const base = { ...spec(`${s.prefix}x`, host, 'bridged'), ports: [{ protocol: 'udp' as const, port: PORT }] };
      const r1 = await cluster.update(base);
      expect(r1.tablesReplaced).toBe(true);
      for (const [k, ns] of nodeNs.entries()) expect((await chainOf(ns, variant))!.length).toBe(cluster.plan().rulesets[k].rules.length);
      const r2 = await cluster.update({ ...base, nodes: 5 });
      expect(r2.nodesAdded).toEqual([cluster.nodes[4].netns]);
      const { Netns: NetnsClass } = await import('../lib/index.js');
      const n4 = await NetnsClass.open(cluster.nodes[4].netns);
      nodeNs.push(n4);
      const mine = cluster.buckets().flatMap((o, b) => (o === 4 ? [b] : []));
      expect(mine.length).toBeGreaterThan(0);
      expect(await ownedInKernel(n4, variant, cluster.spec.buckets)).toEqual(mine);
      const p4 = spawn('ip', ['netns', 'exec', cluster.nodes[4].netns, process.execPath, fixture('responder.mjs'), '4', String(PORT), VIP4], { stdio: ['ignore', 'pipe', 'inherit'] });
      procs.push(p4);
      await once(p4.stdout!, 'data');
      const flows = v4('bridged', 'udp');
      expect(probe(client.name!, flows).map((r) => r.node)).toEqual(owners(flows));
    });

    it('close() removes every namespace (and the rules in them) and the host bridge table', async () => {
      await stopAll(procs);
      procs = [];
      await Promise.all(nodeNs.splice(0).map((x) => x.close()));
      await cluster.close();
      const prefix = `${s.prefix}x`;
      expect(ipj<{ name: string }[]>('netns', 'list').map((x) => x.name).filter((x) => x.startsWith(`${prefix}-`))).toEqual([]);
      expect(ipj<{ ifname: string }[]>('-n', host.name!, 'link').map((l) => l.ifname).filter((x) => x.startsWith(prefix))).toEqual([]);
      expect(execFileSync('ip', ['netns', 'exec', host.name!, 'nft', 'list', 'tables'], { encoding: 'utf8' })).not.toContain(prefix);
    });
  });

  describeAsRoot(`iptables (${variant}) failover with a real service`, () => {
    const s = scratch(`${tag}f`);
    let cluster: Cluster;
    let client: Netns;
    const events: string[] = [];
    const owners = (flows: Flow[]) => ownersOf(cluster, flows);
    beforeAll(async () => {
      let host: Netns;
      [client, host] = await s.make('c', 'h');
      await wire(client, host, 'bridged');
      cluster = await createCluster({
        ...spec(`${s.prefix}x`, host, 'bridged'),
        nodes: 3,
        ports: [{ protocol: 'udp', port: PORT }],
        service: { command: [process.execPath, fixture('responder.mjs'), '{node}', String(PORT), '{vip}'], restart: { initialDelayMs: 300, maxRestarts: 5 } },
      });
      cluster.on('node-down', (e) => events.push(`down ${e.index} ${e.reason}`));
      cluster.on('node-up', (e) => events.push(`up ${e.index} ${e.reason}`));
      await cluster.start();
    });
    afterAll(async () => {
      await cluster?.close();
      await s.cleanup();
    });

    it('a killed service: its buckets move to the live nodes, which serve its flows as ownerOf says; back when it is', async () => {
      const flows = v4('bridged', 'udp');
      await until('every service answers', () => probe(client.name!, flows).every((r) => typeof r.node === 'number'));
      const before = cluster.buckets();
      expect(probe(client.name!, flows).map((r) => r.node)).toEqual(owners(flows));
      process.kill((await cluster.status())[1].pid!, 'SIGKILL');
      await until('node 1 down', () => events.includes('down 1 exit'));
      expect(cluster.buckets()).not.toContain(1);
      const during = probe(client.name!, flows);
      expect(during.map((r) => r.node)).toEqual(owners(flows));
      expect(during.every((r) => r.node === 0 || r.node === 2)).toBe(true);
      await until('node 1 back', () => events.includes('up 1 ready'));
      expect(cluster.buckets()).toEqual(before);
      await until('node 1 serves again', () => probe(client.name!, flows).some((r) => r.node === 1));
      expect(probe(client.name!, flows).map((r) => r.node)).toEqual(owners(flows));
    });
  });

  describeAsRoot(`iptables (${variant}): adopt`, () => {
    const s = scratch(`${tag}a`);
    const controller = fixture('fault-controller.mjs');
    afterAll(() => s.cleanup());
    /** A controller process builds the cluster of `sp`, says ready, and is SIGKILLed. */
    const buildAndKill = async (sp: object): Promise<void> => {
      const first = spawn(process.execPath, [controller, JSON.stringify(sp)], { stdio: ['ignore', 'pipe', 'inherit'] });
      const [line] = (await once(first.stdout!, 'data')) as [Buffer];
      expect(String(line).trim()).toBe('ready');
      const exited = once(first, 'exit');
      first.kill('SIGKILL');
      await exited;
    };

    it('a controller is SIGKILLed; the next one adopts the bucket table the kernel has, and replaces its rules once', async () => {
      const [client, host] = await s.make('c', 'h');
      await wire(client, host, 'bridged');
      const sp = spec(`${s.prefix}x`, host, 'bridged');
      await buildAndKill(sp);
      // What the dead controller had done: bucket 0 moved from node 0 to node 1.
      const resolved = resolveSpec(sp);
      const moved = homeBuckets(resolved.buckets, 4);
      moved[0] = 1;
      const { Netns: NetnsClass } = await import('../lib/index.js');
      const [n0, n1] = await Promise.all([0, 1].map((k) => NetnsClass.open(`${sp.name}-n${k}`)));
      try {
        for (const [k, ns] of [[1, n1], [0, n0]] as const) {
          const owned = ownedBy(moved, k);
          await submitOne(variant === 'clusterip' ? { type: 'clusterip.nodes', netns: ns.handle, vip: VIP4, nodes: owned.map((b) => b + 1) } : rulesetOp(nodeRuleset(resolved, variant, k, owned), ns.handle));
        }
      } finally {
        await Promise.all([n0, n1].map((x) => x.close()));
      }
      // And a table the nftables backend would have left in node 2, had it run this cluster before.
      execFileSync('ip', ['netns', 'exec', `${sp.name}-n2`, 'nft', `add table inet nc-${sp.name} { comment "netns-cluster:${sp.name}"; }`]);
      const cluster = await createCluster(sp, { adopt: true });
      let procs: ChildProcess[] = [];
      expect(execFileSync('ip', ['netns', 'exec', `${sp.name}-n2`, 'nft', 'list', 'tables'], { encoding: 'utf8' })).not.toContain(`nc-${sp.name}`);
      try {
        expect(cluster.adopted).toBeDefined();
        expect(cluster.adopted!.made).toEqual([]); // nothing was missing; the rules are replaced whole
        expect(cluster.buckets()).toEqual(moved);
        procs = await startResponders(cluster);
        const flows = v4('bridged', 'udp');
        const got = probe(client.name!, flows);
        expect(got.map((r) => r.node)).toEqual(flows.map((f) => cluster.ownerOf({ address: f.from, port: f.port, destPort: f.destPort })));
        expect(got.filter((r) => r.node === 1).length).toBeGreaterThan(0);
        const hook = variant === 'xt_cluster' ? 'PREROUTING' : 'INPUT';
        for (const x of cluster.nodes) {
          const ns = await NetnsClass.open(x.netns);
          try {
            expect((await chainOf(ns, variant))!.length).toBe(cluster.plan().rulesets[x.index].rules.length);
            const jumps = ((await submitOne({ type: 'iptc.list', netns: ns.handle, table: tableOf(variant), chain: hook })) as IptListedRule[]).filter((r) => r.target === IPT_CHAIN);
            expect(jumps).toHaveLength(1);
          } finally {
            await ns.close();
          }
        }
      } finally {
        await stopAll(procs);
        await cluster.close();
      }
    });

    it('the next controller runs backend nftables: it removes the iptables chain and its jumps from every node, and serves with nft', async () => {
      const [client, host] = await s.make('d', 'k');
      await wire(client, host, 'bridged');
      const sp = spec(`${s.prefix}y`, host, 'bridged');
      await buildAndKill(sp);
      const { backend: _b, iptables: _i, ...rest } = sp;
      const cluster = await createCluster({ ...rest, mode: 'flood' as const }, { adopt: true });
      let procs: ChildProcess[] = [];
      try {
        const { Netns: NetnsClass } = await import('../lib/index.js');
        const hook = variant === 'xt_cluster' ? 'PREROUTING' : 'INPUT';
        for (const x of cluster.nodes) {
          const ns = await NetnsClass.open(x.netns);
          try {
            expect(await chainOf(ns, variant)).toBeNull();
            const jumps = ((await submitOne({ type: 'iptc.list', netns: ns.handle, table: tableOf(variant), chain: hook })) as IptListedRule[]).filter((r) => r.target === IPT_CHAIN);
            expect(jumps).toHaveLength(0);
          } finally {
            await ns.close();
          }
          expect(execFileSync('ip', ['netns', 'exec', x.netns, 'nft', 'list', 'tables'], { encoding: 'utf8' })).toContain(`nc-${sp.name}`);
        }
        procs = await startResponders(cluster);
        const flows = v4('bridged', 'udp');
        const got = probe(client.name!, flows);
        expect(got.map((r) => r.node)).toEqual(flows.map((f) => cluster.ownerOf({ address: f.from, port: f.port, destPort: f.destPort })));
      } finally {
        await stopAll(procs);
        await cluster.close();
      }
    });
  });
}
