import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { binding } from '../lib/kernel/binding.js';
import type { Netns } from '../lib/index.js';
import { describeAsRoot, ipj, scratch, sh } from './helpers.js';

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

  it('route and neighbour lists hold only IP entries: multicast routes and bridge FDB entries are skipped', async () => {
    const [m] = await s.make('mc');
    await m.addVeth({ name: 'va', up: true, peer: { name: 'vb', up: true } });
    await m.addBridge({ name: 'br0', up: true });
    await m.addVeth({ name: 'vc', up: true, master: 'br0', peer: { name: 'vd', up: true } });
    const [va, vb] = [(await m.getLink('va')).index, (await m.getLink('vb')).index];
    const holder = spawn('ip', ['netns', 'exec', n('mc'), 'python3', fileURLToPath(new URL('./fixtures/mroute.py', import.meta.url)), String(va), String(vb)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout.on('data', (d) => String(d).includes('ready') && resolve());
        holder.on('close', (code) => reject(new Error(`mroute.py exited with ${code}`)));
      });
      // The kernel really has a multicast route (family RTNL_FAMILY_IPMR), which an unspecified-family dump returns.
      expect(sh('ip', ['-n', n('mc'), 'mroute', 'show'])).toMatch(/\(192\.0\.2\.1,\s*239\.1\.1\.1\)\s+Iif: va\s+Oifs: vb/);
      const routes = await m.listRoutes({ table: 'all' });
      expect(routes.length).toBeGreaterThan(0);
      for (const r of routes) {
        expect([4, 6]).toContain(r.family);
        if (r.destination !== 'default') expect(r.destination).toMatch(r.family === 4 ? /^\d+\.\d+\.\d+\.\d+\/\d+$/ : /^[0-9a-f:]+\/\d+$/);
      }
      expect(routes.some((r) => r.table === 253)).toBe(false); // the multicast entry lives in table 253 ("default")
      // AF_UNSPEC neighbour dumps include the bridge's FDB (AF_BRIDGE) entries: only ARP/NDP come back.
      expect(JSON.parse(sh('bridge', ['-j', '-n', n('mc'), 'fdb', 'show', 'br', 'br0'])).length).toBeGreaterThan(0);
      const neigh = await m.listNeighbours();
      for (const x of neigh) expect([4, 6]).toContain(x.family);
      expect(neigh.every((x) => x.address !== undefined)).toBe(true);
    } finally {
      holder.stdin.end();
      await new Promise((r) => holder.once('exit', r).once('close', r));
    }
  });

  it('address dumps stay consistent while addresses change concurrently (interrupted dumps are re-read)', async () => {
    const [c] = await s.make('churn');
    await c.addBridge({ name: 'br0', up: true });
    const stable = Array.from({ length: 1500 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.1/32`);
    await Promise.all(stable.map((a) => c.addAddress('br0', a)));
    const churn = spawn('sh', ['-c', `while :; do ip -n ${n('churn')} addr add 172.16.0.1/32 dev br0; ip -n ${n('churn')} addr del 172.16.0.1/32 dev br0; done`], {
      stdio: 'ignore',
      detached: true, // its own process group, so the loop and its current `ip` stop together
    });
    let interrupted = 0;
    try {
      for (let i = 0; i < 60; i++) {
        const got = await c.listAddresses({ family: 4 }).catch((e) => e);
        if (got instanceof Error) {
          expect(got).toMatchObject({ code: 'EINTR', message: expect.stringMatching(/interrupted by concurrent changes 8 times/) });
          interrupted++;
          continue;
        }
        const seen = got.map((a: { cidr: string }) => a.cidr).filter((x: string) => x.startsWith('10.'));
        expect(seen.length).toBe(stable.length);
        expect(new Set(seen).size).toBe(stable.length);
      }
    } finally {
      const exited = new Promise((r) => churn.once('exit', r));
      process.kill(-churn.pid!, 'SIGKILL');
      await exited;
    }
    console.log(`60 dumps of 1500 addresses under churn: ${interrupted} failed with EINTR after 8 tries`);
  });

  it('refuses a family other than 4 or 6 (also in the addon itself)', async () => {
    await expect(a.listRoutes({ family: 5 as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', field: 'family' });
    await expect(a.listAddresses({ family: 0 as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', field: 'family' });
    await expect(a.listNeighbours({ family: '4' as never })).rejects.toThrow(/family: an IP family must be 4 or 6, got (the string )?'4'/);
    await expect(a.addRoute({ destination: 'default', dev: 'eth0', family: 5 as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', field: 'family' });
    // the addon refuses them too, whoever calls it
    for (const type of ['route.list', 'addr.list', 'neigh.list'] as const) {
      expect(() => binding().submit([{ type, netns: a.handle, family: 5 as never }], true)).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', field: 'family' }),
      );
      expect(() => binding().submit([{ type, netns: a.handle, family: '4' as never }], true)).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', field: 'family' }),
      );
    }
    expect(() => binding().submit([{ type: 'route.add', netns: a.handle, destination: 'default', dev: 'eth0', family: 5 as never }], true)).toThrow(
      /family: an IP family must be 4 or 6/,
    );
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
