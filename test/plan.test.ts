// Plans without root: planCluster is pure, so a spec's whole cluster (namespaces, links, addresses,
// routes, sysctls, rulesets, buckets) is checked against golden files (test/golden/*.plan.txt;
// regenerate with `npx vitest run test/plan.test.ts -u` after an intended change, and review the diff).
import { describe, expect, it } from 'vitest';
import { planCluster, planKeys, resolveSpec, type ClusterSpec } from '../lib/index.js';
import { planText } from '../lib/cluster/plan-text.js';
import { diffPlan, type ActualState } from '../lib/cluster/apply.js';

const specs: Record<string, ClusterSpec> = {
  'steer-bridged': { name: 'vpn', nodes: 3, vip: '192.0.2.1/24', ports: [{ protocol: 'udp', port: 1194 }], uplink: { bridge: 'eth1' }, buckets: 16 },
  'iptables-xt_cluster': { name: 'ipx', nodes: 3, vip: '192.0.2.1/24', backend: 'iptables', iptables: { variant: 'xt_cluster' }, ports: [{ protocol: 'udp', port: 1194 }, { protocol: 'tcp', port: 443 }], uplink: { bridge: 'eth1' }, buckets: 8, seed: 0x1234 },
  'iptables-clusterip': { name: 'ipc', nodes: 2, vip: '192.0.2.1/24', backend: 'iptables', iptables: { variant: 'clusterip' }, hash: 'sourceip-sourceport', ports: [{ protocol: 'udp', port: 1194 }], uplink: { routed: { via: 'eth0' } }, hostNetns: 'edge', buckets: 4, seed: 0x1234 },
  'flood-routed-dual': { name: 'web', nodes: 2, vip: ['192.0.2.10/24', '2001:db8::10/64'], mode: 'flood', hash: 'sourceip-sourceport', ports: [{ protocol: 'tcp', port: 443 }], uplink: { routed: { via: 'eth0' } }, hostNetns: 'edge', buckets: 8 },
};

describe('planCluster', () => {
  for (const [name, spec] of Object.entries(specs)) {
    it(`${name}: matches its golden plan`, async () => {
      await expect(planText(planCluster(resolveSpec(spec)))).toMatchFileSnapshot(`./golden/${name}.plan.txt`);
    });
  }

  it('is pure and keyed: the same spec gives the same plan; every object has one key; everything is marked', () => {
    const spec = resolveSpec(specs['steer-bridged']);
    expect(planCluster(spec)).toEqual(planCluster(spec));
    const p = planCluster(spec);
    const keys = planKeys(p);
    expect(keys.size).toBe(p.namespaces.length + 1 + p.links.length + p.addresses.length + p.routes.length + p.sysctls.length + p.tables.length);
    expect([...keys.keys()]).toEqual(expect.arrayContaining(['netns vpn-n0', 'link host/vpnbr', 'address vpn-n2/eth0 192.0.2.1/24', 'nft host netdev nc-vpn', 'uplink eth1']));
    for (const t of p.tables) expect(t.commands[0]).toMatchObject({ cmd: 'addTable', comment: 'netns-cluster:vpn', exclusive: true });
  });

  it("backend 'iptables': the host's bridge table floods; each node's rules are one ruleset, marked, keyed, with its buckets", () => {
    const p = planCluster(resolveSpec(specs['iptables-xt_cluster']));
    expect(p.backend).toBe('iptables (xt_cluster)');
    expect(p.tables.map((t) => t.netns ?? 'host')).toEqual(['host']);
    expect(p.rulesets.map((r) => [r.netns, r.table, r.chain])).toEqual([0, 1, 2].map((k) => [`ipx-n${k}`, 'mangle', 'netns-cluster']));
    expect([...planKeys(p).keys()]).toEqual(expect.arrayContaining(['iptables ipx-n1 mangle netns-cluster']));
    expect(p.rulesets[1].rules[0].cluster).toEqual({ totalNodes: 8, nodeMask: 0b10010010, seed: 0x1234 });
    expect(p.rulesets.every((r) => r.mark === 'netns-cluster:ipx')).toBe(true);
    // 'auto' follows what the kernel offers (the facts); without facts it plans xt_cluster.
    const auto = resolveSpec({ ...specs['iptables-xt_cluster'], iptables: undefined });
    expect(planCluster(auto).backend).toBe('iptables (xt_cluster)');
    expect(planCluster(auto, { iptables: { clusterip: true, xt_cluster: true } }).backend).toBe('iptables (clusterip)');
    const ports = resolveSpec({ ...specs['iptables-clusterip'], iptables: undefined });
    expect(() => planCluster(ports, { iptables: { clusterip: false, xt_cluster: true } })).toThrow(/'auto' chose xt_cluster .* hashes the source address only/);
  });

  it('follows the bucket table it is given, and the host facts (br_netfilter off only in a dedicated host namespace)', () => {
    const spec = resolveSpec(specs['flood-routed-dual']);
    const owners = Array.from({ length: 8 }, () => 1);
    const p = planCluster(spec, { bridgeNetfilter: { 'net.bridge.bridge-nf-call-iptables': '1' } }, owners);
    expect(p.buckets).toEqual(owners);
    const node0 = p.tables.find((t) => t.netns === 'web-n0')!;
    expect(node0.commands.filter((c) => c.cmd === 'addElements').flatMap((c) => ('elements' in c ? c.elements : []))).toEqual([]);
    expect(p.sysctls).toEqual(expect.arrayContaining([{ key: 'net.bridge.bridge-nf-call-iptables', value: '0' }, { key: 'net.ipv4.ip_forward', value: '1' }, { key: 'net.ipv6.conf.all.forwarding', value: '1' }]));
    const inOwnNs = planCluster(resolveSpec({ ...specs['flood-routed-dual'], hostNetns: undefined }), { bridgeNetfilter: { 'net.bridge.bridge-nf-call-iptables': '1' } });
    expect(inOwnNs.sysctls.some((x) => x.key.startsWith('net.bridge'))).toBe(false);
  });
});

describe('diffPlan (what an apply would do, from what was found)', () => {
  const p = planCluster(resolveSpec(specs['steer-bridged']));
  const all = [...planKeys(p).keys()];

  it('nothing found: everything is missing (a build); everything found as planned: nothing to do', () => {
    expect(diffPlan(p, new Map())).toEqual({ missing: all, different: [], present: [] });
    const found: ActualState = new Map(all.map((k) => [k, { ok: true as const }]));
    expect(diffPlan(p, found)).toEqual({ missing: [], different: [], present: all });
  });

  it('a lost address is missing, a veth that is down is different (with why), the rest is left alone', () => {
    const found: ActualState = new Map(all.map((k) => [k, { ok: true as const }]));
    found.delete('address vpn-n1/eth0 192.0.2.1/24');
    found.set('link host/vpnv2', { ok: false, why: 'vpnv2 is down' });
    const d = diffPlan(p, found);
    expect(d.missing).toEqual(['address vpn-n1/eth0 192.0.2.1/24']);
    expect(d.different).toEqual([{ key: 'link host/vpnv2', why: 'vpnv2 is down' }]);
    expect(d.present).toHaveLength(all.length - 2);
  });
});
