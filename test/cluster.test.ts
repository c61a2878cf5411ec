// createCluster with real traffic: for every mode × hash × uplink, with a dual-stack VIP, every flow
// (64 IPv4 and 64 IPv6 sources, UDP and TCP) is answered by exactly one node, the same one each
// time, and that node is the one ownerOf() predicts.
import { execFileSync } from 'node:child_process';
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

  it("repair(): an uplink made again joins the bridge again, a host table that lost its rules is replaced with its counters, and then there is nothing to do", async () => {
    const [client, host] = await s.make('cr', 'hr');
    await wire(client, host, 'bridged');
    const cluster = await createCluster({ name: `${s.prefix}r`, nodes: 3, vip: ['192.0.2.1/24', '2001:db8::1/64'], ports: [{ protocol: 'udp', port: PORT }], mode: 'steer', hostNetns: host.name, uplink: { bridge: 'c0' } });
    const procs = await startResponders(cluster);
    const repairs: string[][] = [];
    cluster.on('repair', (e) => repairs.push(e.fixed));
    const table = `nc-${cluster.name}`;
    const nft = (...args: string[]) => execFileSync('ip', ['netns', 'exec', host.name!, 'nft', ...args], { encoding: 'utf8' });
    const serves = () => {
      const got = probe(client.name!, flowsFor('bridged', 'udp', [4]));
      expect(got.filter((r) => r.node !== cluster.ownerOf({ address: r.from })).map((r) => `${r.from} → ${JSON.stringify(r.node)} ${r.error ?? ''}`)).toEqual([]);
      return got;
    };
    try {
      expect(await cluster.repair()).toEqual([]);
      serves();
      const counted = (await cluster.counters()).map((c) => c.packets);
      // The uplink goes and comes back, as a re-made device does (the client keeps its MAC).
      const clientMac = ipj<{ address: string }[]>('-n', client.name!, 'link', 'show', 'eth0')[0].address;
      execFileSync('ip', ['-n', host.name!, 'link', 'del', 'c0']);
      await wire(client, host, 'bridged');
      execFileSync('ip', ['-n', client.name!, 'link', 'set', 'eth0', 'address', clientMac]);
      // What Linux 6.1 does with a netdev chain whose device goes (newer kernels keep it): its rules are gone.
      if (nft('list', 'table', 'netdev', table).includes('chain in')) nft('flush', 'chain', 'netdev', table, 'in');
      const fixed = await cluster.repair();
      expect(fixed).toEqual([expect.stringMatching(/^uplink c0 .*\(c0 is not on /), expect.stringContaining(`nft host netdev ${table} (chain in has 0 rules, not `)]);
      expect(repairs).toEqual([fixed]);
      expect(ipj<{ master?: string }[]>('-n', host.name!, 'link', 'show', 'c0')[0].master).toBe(cluster.bridge);
      const got = serves();
      // The per-node counts went on from where they were.
      const after = (await cluster.counters()).map((c) => c.packets);
      after.forEach((n, k) => expect(n - counted[k], `node ${k}`).toBe(got.filter((r) => r.node === k).length));
      expect(await cluster.repair()).toEqual([]);
      // A table deleted outright is made again.
      nft('delete', 'table', 'netdev', table);
      expect(await cluster.repair()).toEqual([`nft host netdev ${table} (not there)`]);
      serves();
      // A node's port deleted (its inner end, addresses and route go with it): made again, with
      // them, and the node's chain sends to the new port.
      const name = cluster.name;
      execFileSync('ip', ['-n', host.name!, 'link', 'del', `${name}v1`]);
      const again = await cluster.repair();
      expect(again).toEqual(expect.arrayContaining([`link host/${name}v1 (not there)`, `address ${name}-n1/eth0 192.0.2.1/24 (not there)`, expect.stringMatching(new RegExp(`^nft host netdev ${table} \\(chain node1 does not send to ${name}v1`))]));
      expect(new Set(serves().map((r) => r.node))).toEqual(new Set([0, 1, 2]));
      expect(await cluster.repair()).toEqual([]);
    } finally {
      await stopAll(procs);
      await cluster.close();
    }
    await expect(cluster.repair()).rejects.toMatchObject({ code: 'ERR_CLUSTER_CLOSED' });
  });

  it('steer: answers to a peer the bridge does not know go out of the uplink only, never to the other nodes', async () => {
    // Steered frames pass the bridge by, so it may never learn (or may forget) the MAC the nodes
    // answer. Its node ports do not flood frames to unknown MACs: only the uplink gets them.
    const [client, host] = await s.make('cf', 'hf');
    await wire(client, host, 'bridged');
    const cluster = await createCluster({ name: `${s.prefix}f`, nodes: 4, vip: ['192.0.2.1/24', '2001:db8::1/64'], ports: [{ protocol: 'udp', port: PORT }], mode: 'steer', hostNetns: host.name, uplink: { bridge: 'c0' } });
    const procs = await startResponders(cluster);
    try {
      for (const x of cluster.nodes) {
        const port = ipj<{ linkinfo?: { info_slave_data?: { flood?: boolean } } }[]>('-n', host.name!, '-d', 'link', 'show', `${cluster.name}v${x.index}`)[0];
        expect(port.linkinfo?.info_slave_data?.flood, `node ${x.index}'s port`).toBe(false);
      }
      const udp = flowsFor('bridged', 'udp');
      probe(client.name!, udp);
      // The bridge forgets the client (as it does after its ageing time with nothing but steered traffic).
      const clientMac = ipj<{ address: string }[]>('-n', client.name!, 'link', 'show', 'eth0')[0].address;
      execFileSync('bridge', ['-n', host.name!, 'fdb', 'del', clientMac, 'dev', 'c0', 'master']);
      const rx = () => cluster.nodes.map((x) => ipj<{ stats64: { rx: { packets: number } } }[]>('-n', x.netns, '-s', 'link', 'show', 'eth0')[0].stats64.rx.packets);
      const before = rx();
      const got = probe(client.name!, udp);
      const after = rx();
      expect(got.filter((r) => r.node !== cluster.ownerOf({ address: r.from })).map((r) => `${r.from} → ${JSON.stringify(r.node)} ${r.error ?? ''}`)).toEqual([]);
      // Each node received its own flows' requests (and a few neighbour messages), not the others'
      // answers (with unknown MACs flooded to the node ports, each got 40 to 100 frames more).
      cluster.nodes.forEach((x, k) => {
        const own = got.filter((r) => r.node === k).length;
        expect(after[k] - before[k], `node ${k}: ${own} requests`).toBeLessThanOrEqual(own + 16);
      });
    } finally {
      await stopAll(procs);
      await cluster.close();
    }
  });
});
