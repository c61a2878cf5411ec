// createCluster with real traffic: for every mode × hash × uplink, with a dual-stack VIP, every flow
// (64 IPv4 and 64 IPv6 sources, UDP and TCP) is answered by exactly one node, the same one each
// time, and that node is the one ownerOf() predicts.
import { afterAll, expect, it } from 'vitest';
import { createCluster } from '../lib/cluster/cluster.js';
import { HASH_MODES } from '../lib/rules/jhash.js';
import { describeAsRoot, ipj, scratch } from './helpers.js';
import { PORT, VIP4, VIP6, flowsFor, probe, startResponders, stopAll, wire, type UplinkKind } from './world.js';

describeAsRoot('cluster data plane with real traffic', () => {
  const s = scratch('cl');
  afterAll(() => s.cleanup());

  let n = 0;
  for (const uplink of ['bridged', 'routed'] as UplinkKind[]) {
    for (const mode of ['steer', 'flood'] as const) {
      for (const hash of HASH_MODES) {
        it(`${mode} / ${hash} / ${uplink}: each flow reaches exactly the predicted node, v4 and v6, UDP and TCP`, async () => {
          const tag = `${n++}`;
          const [client, host] = await s.make(`c${tag}`, `h${tag}`);
          await wire(client, host, uplink);
          const cluster = await createCluster({
            name: `${s.prefix}${tag}`,
            nodes: 4,
            vip: ['192.0.2.1/24', '2001:db8::1/64'],
            ports: [{ protocol: 'udp', port: PORT }, { protocol: 'tcp', port: PORT }],
            mode,
            hash,
            hostNetns: host.name,
            uplink: uplink === 'bridged' ? { bridge: 'c0' } : { routed: { via: 'c0' } },
          });
          const procs = await startResponders(cluster);
          try {
            const udp = flowsFor(uplink, 'udp');
            const first = probe(client.name!, udp);
            const again = probe(client.name!, udp);
            const tcp = probe(client.name!, flowsFor(uplink, 'tcp'));
            for (const results of [first, again, tcp]) {
              const wrong = results.filter((r) => r.node !== cluster.ownerOf({ address: r.from, port: r.port, destPort: r.destPort }));
              expect(wrong.map((r) => `${r.protocol} ${r.from}:${r.port} → ${JSON.stringify(r.node)} ${r.error ?? ''} (expected ${cluster.ownerOf({ address: r.from, port: r.port, destPort: r.destPort })})`)).toEqual([]);
            }
            expect(again.map((r) => r.node)).toEqual(first.map((r) => r.node));
            // ARP and neighbour discovery: whoever resolves the VIP learns the bridge's MAC, never a
            // node's (else its cache would flip from node to node).
            const [ns, dev] = uplink === 'bridged' ? [client.name!, 'eth0'] : [host.name!, cluster.bridge.replace(/br$/, 'gw')];
            const neigh = ipj<{ dst: string; lladdr?: string }[]>('-n', ns, 'neigh', 'show', 'dev', dev);
            for (const vip of [VIP4, VIP6]) expect(neigh.find((e) => e.dst === vip)?.lladdr, `${vip} in ${ns}`).toBe(cluster.vmac);
            for (const fam of [':', '.']) {
              const used = new Set(first.filter((r) => r.from.includes(fam)).map((r) => r.node));
              expect(used.size, `every node serves some ${fam === '.' ? 'IPv4' : 'IPv6'} flows`).toBe(4);
            }
          } finally {
            await stopAll(procs);
            await cluster.close();
          }
        });
      }
    }
  }
});
