// Live reconfiguration: cluster.update() grows and shrinks a running cluster (4 → 6 → 3 nodes)
// under a steady stream from 64 sources: only the flows of buckets that changed owner move, every
// other flow loses nothing and stays on its node, nodes that stay keep their processes; a change
// that cannot be made live is refused before anything changes.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createCluster, rebalanceHome, sameService, type Cluster } from '../lib/cluster/cluster.js';
import { openvpn } from '../lib/index.js';
import type { Netns } from '../lib/index.js';
import { describeAsRoot, scratch } from './helpers.js';
import { PORT, VIP4, VIP6, flowsFor, probe, runFixture, wire, type StreamResult } from './world.js';

const responder = fileURLToPath(new URL('./fixtures/responder.mjs', import.meta.url));

it('rebalanceHome moves only what the new node count needs', () => {
  const home4 = Array.from({ length: 64 }, (_, b) => b % 4);
  const home6 = rebalanceHome(home4, 6);
  expect(home6.filter((o, b) => o !== home4[b]).length).toBe(20); // the two new nodes' shares (11 + 10 … ≈ 64·2/6)
  expect(new Set(home6.filter((o, b) => o !== home4[b]))).toEqual(new Set([4, 5]));
  const counts = (h: number[], m: number) => Array.from({ length: m }, (_, k) => h.filter((o) => o === k).length);
  expect(Math.max(...counts(home6, 6)) - Math.min(...counts(home6, 6))).toBeLessThanOrEqual(1);
  const home3 = rebalanceHome(home6, 3);
  // Buckets of nodes 0–2 stay where they are; only those of nodes 3–5 move.
  home6.forEach((o, b) => (o < 3 ? expect(home3[b]).toBe(o) : expect(home3[b]).toBeLessThan(3)));
  expect(Math.max(...counts(home3, 3)) - Math.min(...counts(home3, 3))).toBeLessThanOrEqual(1);
});

it('a changed service is seen as given: OpenVPN options in data, or a new openvpn() definition (its options are in closures)', () => {
  const fp = Array.from({ length: 32 }, () => 'ab').join(':');
  const data = (keepalive: [number, number]) => ({ openvpn: { clientFingerprints: [fp], keepalive } });
  expect(sameService(data([2, 10]), data([2, 10]))).toBe(true);
  expect(sameService(data([2, 10]), data([3, 12]))).toBe(false);
  const def = openvpn({ clientFingerprints: [fp] });
  expect(sameService(def, def)).toBe(true);
  // Two definitions whose data looks alike: only identity can say they are the same.
  expect(sameService(def, openvpn({ clientFingerprints: [fp], keepalive: [3, 12] }))).toBe(false);
  expect(sameService({ command: ['a'] }, { command: ['a'] })).toBe(true);
  expect(sameService({ command: ['a'] }, undefined)).toBe(false);
});

describeAsRoot('cluster.update', () => {
  const s = scratch('up');
  let client: Netns;
  let host: Netns;
  beforeAll(async () => {
    [client, host] = await s.make('c', 'h');
    await wire(client, host, 'bridged');
  });
  afterAll(() => s.cleanup());

  for (const mode of ['steer', 'flood'] as const) {
    it(`${mode}: 4 → 6 → 3 nodes under a 64-flow stream: unmoved flows lose nothing and stay; moved ones land on ownerOf`, async () => {
      const spec = {
        name: `${s.prefix}${mode[0]}`,
        nodes: 4,
        vip: [`${VIP4}/24`, `${VIP6}/64`],
        ports: [{ protocol: 'udp' as const, port: PORT }],
        mode,
        hostNetns: host.name,
        uplink: { bridge: 'c0' },
        service: { command: [process.execPath, responder, '{node}', String(PORT), VIP4, VIP6] },
      };
      const cluster: Cluster = await createCluster(spec);
      try {
        await cluster.start();
        const flows = flowsFor('bridged', 'udp').filter((_, i) => i % 2 === 0); // 64 flows, v4 and v6
        const bucket = flows.map((f) => cluster.bucketOf({ address: f.from, port: f.port, destPort: f.destPort }));
        // Every responder listens before the stream starts.
        await expect.poll(() => probe(client.name!, flows.slice(0, 8)).every((r) => typeof r.node === 'number'), { timeout: 10_000 }).toBe(true);
        const b0 = cluster.buckets();
        const pids0 = (await cluster.status()).map((n) => n.pid);
        const stream = runFixture<StreamResult>(client.name!, 'stream.mjs', { flows, rate: 400, durationMs: 4000 });
        await new Promise((r) => setTimeout(r, 800));
        const grow = await cluster.update({ ...spec, nodes: 6 });
        const b1 = cluster.buckets();
        await new Promise((r) => setTimeout(r, 1200));
        const shrink = await cluster.update({ ...spec, nodes: 3 });
        const b2 = cluster.buckets();
        const result = await stream;
        console.log(`${mode}: grow ${JSON.stringify({ ...grow, ms: Math.round(grow.ms) })}; shrink ${JSON.stringify({ ...shrink, ms: Math.round(shrink.ms) })}; stream sent ${result.sent} lost ${result.lost}`);
        expect(grow.nodesAdded).toHaveLength(2);
        expect(grow.bucketsMoved).toBeLessThanOrEqual(Math.ceil((64 * 2) / 6) + 1);
        expect(shrink.nodesRemoved).toHaveLength(3);
        const moved = (b: number) => b0[b] !== b1[b] || b1[b] !== b2[b];
        const unmoved = flows.map((_, i) => i).filter((i) => !moved(bucket[i]));
        expect(unmoved.length).toBeGreaterThan(10);
        for (const i of unmoved) {
          const f = result.perFlow[i];
          expect({ flow: i, received: f.received, nodes: f.nodes }).toEqual({ flow: i, received: f.sent, nodes: [b0[bucket[i]]] });
        }
        // Nodes 0–2 were never touched: same processes.
        expect((await cluster.status()).map((n) => n.pid)).toEqual(pids0.slice(0, 3));
        // Every flow, moved or not, is now answered by the node ownerOf names.
        const after = probe(client.name!, flows);
        expect(after.map((r) => r.node)).toEqual(flows.map((f) => cluster.ownerOf({ address: f.from, port: f.port, destPort: f.destPort })));
      } finally {
        await cluster.close();
      }
    });
  }

  it('ports: the rules are replaced with the same bucket table (a new port is served at once); the service: restarted only when it changed', async () => {
    const service = (tag: string) => ({ command: [process.execPath, responder, '{node}', `${PORT},${PORT + 1}`, VIP4, VIP6], env: { TAG: tag } });
    const spec = { name: `${s.prefix}p`, nodes: 2, vip: [`${VIP4}/24`, `${VIP6}/64`], ports: [{ protocol: 'udp' as const, port: PORT }], hostNetns: host.name, uplink: { bridge: 'c0' }, service: service('a') };
    const cluster = await createCluster(spec);
    try {
      await cluster.start();
      const flows = flowsFor('bridged', 'udp').filter((_, i) => i % 8 === 0);
      const other = flows.map((f) => ({ ...f, destPort: PORT + 1 }));
      await expect.poll(() => probe(client.name!, flows).every((r) => typeof r.node === 'number'), { timeout: 10_000 }).toBe(true);
      // Not a cluster port yet: dropped.
      expect(probe(client.name!, other, 500).every((r) => r.node === null)).toBe(true);
      const buckets = cluster.buckets();
      const pids = (await cluster.status()).map((n) => n.pid);
      // The same data in a new object: nothing restarted. A port added: the rules replaced.
      const r1 = await cluster.update({ ...spec, service: service('a'), ports: [...spec.ports, { protocol: 'udp', port: PORT + 1 }] });
      expect(r1).toMatchObject({ tablesReplaced: true, servicesRestarted: [], bucketsMoved: 0 });
      expect(cluster.buckets()).toEqual(buckets);
      expect((await cluster.status()).map((n) => n.pid)).toEqual(pids);
      expect(probe(client.name!, other).map((r) => r.node)).toEqual(other.map((f) => cluster.ownerOf({ address: f.from, port: f.port, destPort: f.destPort })));
      // The service changed (its environment): every node's process is a new one.
      const r2 = await cluster.update({ ...spec, ports: [...spec.ports, { protocol: 'udp', port: PORT + 1 }], service: service('b') });
      expect(r2).toMatchObject({ tablesReplaced: false, servicesRestarted: [0, 1] });
      const after = (await cluster.status()).map((n) => n.pid);
      after.forEach((pid, k) => expect(pid).not.toBe(pids[k]));
    } finally {
      await cluster.close();
    }
  });

  it('a change that cannot be made live is refused, naming the field, and nothing changes', async () => {
    const spec = { name: `${s.prefix}x`, nodes: 2, vip: `${VIP4}/24`, hostNetns: host.name, uplink: { bridge: 'c0' } };
    const cluster = await createCluster(spec);
    try {
      const before = cluster.buckets();
      await expect(cluster.update({ ...spec, vip: '192.0.2.7/24' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', field: 'vip', message: expect.stringMatching(/cannot change while the cluster runs/) });
      await expect(cluster.update({ ...spec, mode: 'flood' })).rejects.toMatchObject({ field: 'mode' });
      await expect(cluster.update({ ...spec, nodes: 0 })).rejects.toMatchObject({ field: 'nodes' });
      expect(cluster.buckets()).toEqual(before);
      expect(cluster.nodes).toHaveLength(2);
    } finally {
      await cluster.close();
    }
  });
});
