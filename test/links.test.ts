import { afterAll, beforeAll, expect, it } from 'vitest';
import { Batch, type Netns } from '../lib/index.js';
import { describeAsRoot, ipj, scratch } from './helpers.js';

interface IpLink {
  ifname: string;
  ifindex: number;
  address: string;
  mtu: number;
  master?: string;
  flags: string[];
  operstate: string;
  ifalias?: string;
  link_netnsid?: number;
  linkinfo?: { info_kind: string; info_data?: Record<string, unknown> };
}

describeAsRoot('links', () => {
  const s = scratch('ln');
  let host: Netns;
  let node: Netns;
  const n = (x: string) => s.prefix + x;
  const link = (ns: string, name: string) => ipj<IpLink[]>('-d', '-n', n(ns), 'link', 'show', 'dev', name)[0];

  beforeAll(async () => {
    [host, node] = await s.make('h', 'n');
  });
  afterAll(() => s.cleanup());

  it('adds a bridge with multicast snooping and VLAN filtering off', async () => {
    await host.addBridge({ name: 'br0', up: true, mac: '02:aa:00:00:00:01', mtu: 1400 });
    const br = link('h', 'br0');
    expect(br.linkinfo?.info_kind).toBe('bridge');
    expect(br.linkinfo?.info_data?.mcast_snooping).toBe(0);
    expect(br.linkinfo?.info_data?.vlan_filtering).toBe(0);
    expect(br.linkinfo?.info_data?.stp_state).toBe(0);
    expect(br.address).toBe('02:aa:00:00:00:01');
    expect(br.mtu).toBe(1400);
    expect(br.flags).toContain('UP');
  });

  it('adds a veth whose peer is created directly inside another namespace, enslaved and up', async () => {
    await host.addVeth({
      name: 'v0',
      master: 'br0',
      up: true,
      peer: { name: 'eth0', netns: node, up: true, mac: '02:00:00:00:00:01' },
    });
    const outer = link('h', 'v0');
    expect(outer.master).toBe('br0');
    expect(outer.flags).toContain('UP');
    const inner = link('n', 'eth0');
    expect(inner.address).toBe('02:00:00:00:00:01');
    expect(inner.flags).toContain('UP');
    expect(inner.operstate).toBe('UP');
    expect(inner.linkinfo?.info_kind).toBe('veth');
  });

  it('gets and lists links with index, kind, MAC, MTU, master, state and peer namespace', async () => {
    const br = await host.getLink('br0');
    const v0 = await host.getLink('v0');
    expect(v0).toMatchObject({ kind: 'veth', master: br.index, up: true, state: 'up' });
    expect(v0.index).toBe(link('h', 'v0').ifindex);
    const links = await node.listLinks({ resolvePeers: true });
    expect(links.map((l) => l.name).sort()).toEqual(['eth0', 'lo']);
    const eth0 = links.find((l) => l.name === 'eth0')!;
    expect(eth0).toMatchObject({ kind: 'veth', mac: '02:00:00:00:00:01', mtu: 1500, peerIndex: v0.index, peerNetns: n('h') });
    expect(links.find((l) => l.name === 'lo')).toMatchObject({ kind: 'loopback', index: 1 });
  });

  it('sets up/down, MAC, MTU, name, master and nomaster', async () => {
    await host.addVeth({ name: 'v1', peer: { name: 'v1p' } });
    await host.setLink('v1', { up: true, mac: '02:00:00:00:01:01', mtu: 9000, master: 'br0' });
    let v1 = link('h', 'v1');
    expect(v1).toMatchObject({ address: '02:00:00:00:01:01', mtu: 9000, master: 'br0' });
    expect(v1.flags).toContain('UP');
    await host.setLink('v1', { up: false, master: null });
    v1 = link('h', 'v1');
    expect(v1.master).toBeUndefined();
    expect(v1.flags).not.toContain('UP');
    await host.setLink('v1', { name: 'v1renamed' });
    expect(link('h', 'v1renamed').ifindex).toBe(v1.ifindex);
  });

  it("sets a bridge port's unicast flooding off and reads it back; not in the change that enslaves", async () => {
    const info = (name: string) => (link('h', name).linkinfo as { info_slave_data?: { flood?: boolean } } | undefined)?.info_slave_data;
    expect(info('v0')?.flood).toBe(true);
    expect((await host.getLink('v0')).bridgePort).toEqual({ unicastFlood: true });
    await host.setLink('v0', { bridgePort: { unicastFlood: false } });
    expect(info('v0')?.flood).toBe(false);
    expect((await host.getLink('v0')).bridgePort).toEqual({ unicastFlood: false });
    expect((await host.getLink('br0')).bridgePort).toBeUndefined();
    await expect(host.setLink('v0', { master: 'br0', bridgePort: { unicastFlood: false } })).rejects.toThrow(/cannot be set in the change that enslaves or releases the link/);
    await expect(host.setLink('v0', { bridgePort: { unicastFlood: 'no' as never } })).rejects.toThrow(/changes\.bridgePort\.unicastFlood/);
    // A link that is no bridge port: the kernel's answer, as an error with its code.
    await expect(node.setLink('eth0', { bridgePort: { unicastFlood: false } })).rejects.toMatchObject({ code: 'EOPNOTSUPP' });
    await host.setLink('v0', { bridgePort: { unicastFlood: true } });
    expect(info('v0')?.flood).toBe(true);
  });

  it('moves a link into another namespace', async () => {
    await host.setLink('v1p', { netns: node });
    expect(ipj<IpLink[]>('-n', n('n'), 'link').map((l) => l.ifname)).toContain('v1p');
    expect(ipj<IpLink[]>('-n', n('h'), 'link').map((l) => l.ifname)).not.toContain('v1p');
  });

  it('deletes a link (both veth ends go) and reports ENODEV for a missing one', async () => {
    await host.deleteLink('v1renamed');
    expect(ipj<IpLink[]>('-n', n('n'), 'link').map((l) => l.ifname)).not.toContain('v1p');
    await expect(host.deleteLink('v1renamed')).rejects.toMatchObject({ code: 'ENODEV', syscall: 'RTM_DELLINK' });
    await expect(host.getLink('nothere')).rejects.toMatchObject({ code: 'ENODEV' });
  });

  it('maps kernel errors to code, errno, the request and the kernel’s extended ack', async () => {
    const err = await host.addBridge({ name: 'br0' }).catch((e) => e);
    expect(err).toMatchObject({ code: 'EEXIST', errno: -17, syscall: 'RTM_NEWLINK', object: "bridge 'br0'" });
    expect(err.message).toMatch(/^EEXIST: File exists, RTM_NEWLINK bridge 'br0'/);
    // A gateway that is not on any link: the kernel explains why in its extended ack.
    const gw = await node.addRoute({ destination: 'default', via: '203.0.113.9' }).catch((e) => e);
    expect(gw).toMatchObject({ code: 'ENETUNREACH', syscall: 'RTM_NEWROUTE', extack: 'Nexthop has invalid gateway' });
    expect(gw.message).toContain('(kernel: Nexthop has invalid gateway)');
  });

  it('marks links with an alias (IFLA_IFALIAS) at creation, on the peer too, and reads it back', async () => {
    const mark = 'netns-cluster:lab ✓';
    await host.addBridge({ name: 'abr', alias: mark });
    await host.addVeth({ name: 'av0', alias: `${mark} v0`, peer: { name: 'av0p', alias: `${mark} v0p` } });
    await host.addVeth({ name: 'av1', alias: `${mark} v1`, peer: { name: 'eth1', netns: node, alias: `${mark} eth1`, up: true } });
    await host.addVeth({ name: 'av2', peer: { name: 'av2p', netns: host, alias: 'same namespace, given explicitly' } });
    expect(link('h', 'av2p').ifalias).toBe('same namespace, given explicitly');
    expect(link('h', 'abr').ifalias).toBe(mark);
    expect(link('h', 'av0').ifalias).toBe(`${mark} v0`);
    expect(link('h', 'av0p').ifalias).toBe(`${mark} v0p`);
    expect(link('h', 'av1').ifalias).toBe(`${mark} v1`);
    expect(link('n', 'eth1').ifalias).toBe(`${mark} eth1`);
    expect(link('n', 'eth1').flags).toContain('UP');
    expect((await host.getLink('abr')).alias).toBe(mark);
    const listed = await node.listLinks();
    expect(listed.find((l) => l.name === 'eth1')?.alias).toBe(`${mark} eth1`);
    expect(listed.find((l) => l.name === 'lo')?.alias).toBeUndefined();
    // set and clear
    await host.setLink('abr', { alias: 'x'.repeat(255) });
    expect(link('h', 'abr').ifalias).toBe('x'.repeat(255));
    await host.setLink('abr', { alias: '' });
    expect(link('h', 'abr').ifalias).toBeUndefined();
    expect((await host.getLink('abr')).alias).toBeUndefined();
  });

  it('a failed create marks nothing: the link that already had the name keeps its alias', async () => {
    await host.addBridge({ name: 'ubr' });
    await host.setLink('ubr', { alias: 'the user’s own' });
    await expect(host.addBridge({ name: 'ubr', alias: 'netns-cluster:lab' })).rejects.toMatchObject({ code: 'EEXIST' });
    await expect(host.addVeth({ name: 'ubr', alias: 'netns-cluster:lab', peer: { name: 'ubrp' } })).rejects.toMatchObject({ code: 'EEXIST' });
    expect(link('h', 'ubr').ifalias).toBe('the user’s own');
    // A veth whose peer name is taken in the peer's namespace: the user's link there stays unmarked.
    await node.addBridge({ name: 'taken' });
    const b = new Batch();
    b.in(host).addVeth({ name: 'uv', alias: 'm', peer: { name: 'taken', netns: node, alias: 'm', up: true } });
    await expect(b.commit()).rejects.toMatchObject({ code: 'EEXIST' });
    expect(link('n', 'taken').ifalias).toBeUndefined();
    expect(link('n', 'taken').flags).not.toContain('UP');
    await expect(host.addBridge({ name: 'bad', alias: 'a\0b' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', field: 'bridge.alias' });
    await expect(host.addBridge({ name: 'bad', alias: 'x'.repeat(256) })).rejects.toThrow(/at most 255 bytes, got 256/);
  });

  it('a batch builds many links across namespaces in one call and reports the first failure', async () => {
    const nodes = await s.make('b0', 'b1', 'b2', 'b3');
    const b = new Batch();
    b.in(host).addBridge({ name: 'br1', up: true });
    nodes.forEach((nd, i) =>
      b.in(host).addVeth({ name: `w${i}`, master: 'br1', up: true, peer: { name: 'eth0', netns: nd, up: true } }),
    );
    nodes.forEach((nd) => b.in(nd).setLink('lo', { up: true }).addAddress('eth0', '192.0.2.1/24'));
    await b.commit();
    expect(ipj<IpLink[]>('-n', n('h'), 'link', 'show', 'master', 'br1')).toHaveLength(4);
    for (const i of [0, 1, 2, 3]) expect(link(`b${i}`, 'eth0').flags).toContain('UP');

    const bad = new Batch();
    bad.in(host).addVeth({ name: 'w9', peer: { name: 'w9p' } }).addBridge({ name: 'br1' }).addVeth({ name: 'w10', peer: { name: 'w10p' } });
    const err = await bad.commit().catch((e) => e);
    expect(err).toMatchObject({ name: 'BatchError', code: 'EEXIST', index: 1 });
    expect(err.results[0]).toBeUndefined(); // done before the failure
  });
});
