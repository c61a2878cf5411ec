import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Netns } from '../lib/index.js';
import { describeAsRoot, ipj, scratch } from './helpers.js';

interface IpAddr {
  ifname: string;
  addr_info: { family: string; local: string; prefixlen: number; nodad?: boolean; tentative?: boolean }[];
}

describeAsRoot('addresses, routes, neighbours', () => {
  const s = scratch('ar');
  let a: Netns;
  let b: Netns;
  const n = (x: string) => s.prefix + x;
  const addrs = (ns: string) =>
    ipj<IpAddr[]>('-n', n(ns), 'addr', 'show', 'dev', 'eth0')[0].addr_info.map((i) => `${i.local}/${i.prefixlen}`);

  beforeAll(async () => {
    [a, b] = await s.make('a', 'b');
    await a.addVeth({ name: 'eth0', up: true, peer: { name: 'eth0', netns: b, up: true } });
    await Promise.all([a.setLink('lo', { up: true }), b.setLink('lo', { up: true })]);
  });
  afterAll(() => s.cleanup());

  it('adds and lists IPv4 and IPv6 addresses (nodad makes IPv6 usable at once)', async () => {
    await a.addAddress('eth0', '192.0.2.10/24');
    await a.addAddress('eth0', '2001:db8::10/64', { nodad: true });
    await b.addAddress('eth0', '192.0.2.20/24');
    await b.addAddress('eth0', '2001:db8::20/64', { nodad: true });
    expect(addrs('a')).toEqual(expect.arrayContaining(['192.0.2.10/24', '2001:db8::10/64']));
    const v6 = ipj<IpAddr[]>('-n', n('a'), 'addr', 'show', 'dev', 'eth0')[0].addr_info.find((i) => i.local === '2001:db8::10')!;
    expect(v6.tentative).toBeFalsy();
    const listed = await a.listAddresses({ link: 'eth0' });
    expect(listed.map((x) => x.cidr)).toEqual(expect.arrayContaining(['192.0.2.10/24', '2001:db8::10/64']));
    expect(listed.find((x) => x.cidr === '2001:db8::10/64')).toMatchObject({ family: 6, nodad: true, tentative: false });
    expect((await a.listAddresses({ family: 4 })).every((x) => x.family === 4)).toBe(true);
  });

  it('rejects a duplicate address with EEXIST and deletes addresses', async () => {
    await expect(a.addAddress('eth0', '192.0.2.10/24')).rejects.toMatchObject({ code: 'EEXIST', syscall: 'RTM_NEWADDR' });
    await a.addAddress('eth0', '198.51.100.1/24');
    await a.deleteAddress('eth0', '198.51.100.1/24');
    expect(addrs('a')).not.toContain('198.51.100.1/24');
    await expect(a.deleteAddress('eth0', '198.51.100.1/24')).rejects.toMatchObject({ code: 'EADDRNOTAVAIL' });
  });

  it('adds and deletes default and prefix routes, IPv4 and IPv6', async () => {
    await a.addRoute({ destination: 'default', via: '192.0.2.20' });
    await a.addRoute({ destination: 'default', via: '2001:db8::20' });
    await a.addRoute({ destination: '203.0.113.0/24', via: '192.0.2.20', metric: 50 });
    await a.addRoute({ destination: '2001:db8:1::/48', dev: 'eth0' });
    const v4 = ipj<{ dst: string; gateway?: string; metric?: number }[]>('-n', n('a'), 'route');
    expect(v4).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ dst: 'default', gateway: '192.0.2.20' }),
        expect.objectContaining({ dst: '203.0.113.0/24', gateway: '192.0.2.20', metric: 50 }),
      ]),
    );
    const v6 = ipj<{ dst: string; gateway?: string; dev: string }[]>('-6', '-n', n('a'), 'route');
    expect(v6).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ dst: 'default', gateway: '2001:db8::20' }),
        expect.objectContaining({ dst: '2001:db8:1::/48', dev: 'eth0' }),
      ]),
    );
    const listed = await a.listRoutes();
    expect(listed).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ family: 4, destination: 'default', via: '192.0.2.20' }),
        expect.objectContaining({ family: 6, destination: '2001:db8:1::/48' }),
      ]),
    );
    await a.deleteRoute({ destination: '203.0.113.0/24', via: '192.0.2.20', metric: 50 });
    await a.deleteRoute({ destination: 'default', via: '2001:db8::20' });
    expect(ipj<{ dst: string }[]>('-n', n('a'), 'route').map((r) => r.dst)).not.toContain('203.0.113.0/24');
    expect(ipj<{ dst: string }[]>('-6', '-n', n('a'), 'route').map((r) => r.dst)).not.toContain('default');
    await expect(a.deleteRoute({ destination: '203.0.113.0/24', via: '192.0.2.20' })).rejects.toMatchObject({ code: 'ESRCH' });
  });

  it('adds permanent neighbour entries (v4 and v6) and deletes them', async () => {
    await a.addNeighbour('eth0', '192.0.2.99', '02:00:00:00:99:99');
    await a.addNeighbour('eth0', '2001:db8::99', '02:00:00:00:99:98');
    const neigh = ipj<{ dst: string; lladdr: string; state: string[] }[]>('-n', n('a'), 'neigh', 'show', 'dev', 'eth0');
    expect(neigh).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ dst: '192.0.2.99', lladdr: '02:00:00:00:99:99', state: ['PERMANENT'] }),
        expect.objectContaining({ dst: '2001:db8::99', lladdr: '02:00:00:00:99:98', state: ['PERMANENT'] }),
      ]),
    );
    expect(await a.listNeighbours({ family: 4 })).toEqual(
      expect.arrayContaining([expect.objectContaining({ address: '192.0.2.99', mac: '02:00:00:00:99:99', state: 'permanent' })]),
    );
    await a.deleteNeighbour('eth0', '192.0.2.99');
    await a.deleteNeighbour('eth0', '2001:db8::99');
    expect(ipj<{ dst: string }[]>('-n', n('a'), 'neigh', 'show', 'dev', 'eth0').map((x) => x.dst)).not.toContain('192.0.2.99');
  });

  it('what it built carries real traffic', async () => {
    const { execFileSync } = await import('node:child_process');
    execFileSync('ip', ['netns', 'exec', n('a'), 'ping', '-c1', '-W2', '192.0.2.20']);
    execFileSync('ip', ['netns', 'exec', n('a'), 'ping', '-6', '-c1', '-W2', '2001:db8::20']);
  });

  it('reads and writes sysctls inside the namespace only', async () => {
    expect(await a.readSysctl('net.ipv4.ip_forward')).toBe('0');
    await a.writeSysctl('net.ipv4.ip_forward', true);
    await a.writeSysctl('net/ipv6/conf/eth0/disable_ipv6', 0);
    expect(await a.readSysctl('net.ipv4.ip_forward')).toBe('1');
    expect(await b.readSysctl('net.ipv4.ip_forward')).toBe('0');
    // br_netfilter's switch is per namespace too (the cluster turns it off in a dedicated host).
    await a.writeSysctl('net.bridge.bridge-nf-call-iptables', 0);
    expect(await a.readSysctl('net.bridge.bridge-nf-call-iptables')).toBe('0');
    const viaIp = (await import('node:child_process'))
      .execFileSync('ip', ['netns', 'exec', n('a'), 'cat', '/proc/sys/net/ipv4/ip_forward'], { encoding: 'utf8' })
      .trim();
    expect(viaIp).toBe('1');
    await expect(a.readSysctl('net.ipv4.no_such_key')).rejects.toMatchObject({ code: 'ENOENT', syscall: 'open' });
  });
});
