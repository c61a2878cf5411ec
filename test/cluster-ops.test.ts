// Operating a running cluster: moving buckets under load, taking nodes down and up, counters, and
// a close() that leaves nothing behind.
import { execFileSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createCluster, type Cluster } from '../lib/cluster/cluster.js';
import type { Netns } from '../lib/index.js';
import { describeAsRoot, ipj, scratch } from './helpers.js';
import { PORT, expectCountersMatch, expectNodeDownUp, flowsFor, sources, startResponders, stopAll, streamThroughMoves, wire } from './world.js';

for (const mode of ['steer', 'flood'] as const) {
  describeAsRoot(`a running ${mode} cluster`, () => {
    const s = scratch(mode === 'steer' ? 'os' : 'of');
    let client: Netns;
    let host: Netns;
    let cluster: Cluster;
    let procs: ChildProcess[] = [];
    const events: string[] = [];

    beforeAll(async () => {
      [client, host] = await s.make('c', 'h');
      await wire(client, host, 'bridged');
      cluster = await createCluster({
        name: `${s.prefix}x`,
        nodes: 4,
        vip: ['192.0.2.1/24', '2001:db8::1/64'],
        ports: [{ protocol: 'udp', port: PORT }, { protocol: 'tcp', port: PORT }],
        mode,
        hostNetns: host.name,
        uplink: { bridge: 'c0' },
      });
      cluster.on('rebalance', () => events.push('rebalance'));
      cluster.on('node-down', (e) => events.push(`down ${e.index}`));
      cluster.on('node-up', (e) => events.push(`up ${e.index}`));
      procs = await startResponders(cluster);
    });
    afterAll(async () => {
      await stopAll(procs);
      await cluster?.close();
      await s.cleanup();
    });

    it(`moving buckets while a 1000 pkt/s UDP stream runs loses nothing${mode === 'steer' ? ' and duplicates nothing' : ''}`, async () => {
      const flows = flowsFor('bridged', 'udp').filter((_, i) => i % 4 === 0); // 32 flows, v4 and v6
      const original = cluster.buckets();
      const result = await streamThroughMoves(cluster, client.name!, flows);
      expect(result.sent).toBe(3000);
      expect(result.lost).toBe(0);
      if (mode === 'steer') expect(result.duplicates).toBe(0);
      // Put everything back where it was.
      await cluster.moveBuckets(Object.fromEntries(original.map((node, b) => [b, node])));
      expect(cluster.buckets()).toEqual(original);
      expect(events.filter((e) => e === 'rebalance').length).toBeGreaterThanOrEqual(20);
    });

    it('a node taken down gets no flows, live nodes serve them as ownerOf says, and up brings them back', async () => {
      await expectNodeDownUp(cluster, client.name!, flowsFor('bridged', 'udp'), events);
    });

    it('counters match what was sent', async () => {
      await expectCountersMatch(cluster, client.name!, flowsFor('bridged', 'udp'), mode === 'flood');
    });

    it('close() removes every namespace, link, rule and mount, and is idempotent', async () => {
      await stopAll(procs);
      procs = [];
      await cluster.close();
      await cluster.close();
      const prefix = `${s.prefix}x`;
      expect(ipj<{ name: string }[]>('netns', 'list').map((n) => n.name).filter((n) => n.startsWith(`${prefix}-`))).toEqual([]);
      const links = ipj<{ ifname: string; master?: string }[]>('-n', host.name!, 'link');
      expect(links.map((l) => l.ifname).filter((n) => n.startsWith(prefix))).toEqual([]);
      expect(links.find((l) => l.ifname === 'c0')?.master).toBeUndefined(); // the uplink is released, not deleted
      expect(execFileSync('ip', ['netns', 'exec', host.name!, 'nft', 'list', 'tables'], { encoding: 'utf8' })).not.toContain(prefix);
      expect(execFileSync('findmnt', ['-rn', '-o', 'TARGET'], { encoding: 'utf8' })).not.toContain(`/run/netns/${prefix}-`);
      expect(() => cluster.ownerOf({ address: sources('bridged', 4)[0] })).not.toThrow();
      await expect(cluster.moveBuckets({ 0: 1 })).rejects.toThrow(/closed/);
    });
  });
}
