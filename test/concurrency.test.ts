import { afterAll, expect, it } from 'vitest';
import { Batch } from '../lib/index.js';
import { describeAsRoot, ipj, scratch } from './helpers.js';

describeAsRoot('many requests in flight', () => {
  const s = scratch('cc');
  afterAll(() => s.cleanup());

  it('200 independent calls in flight at once all complete correctly', async () => {
    const [ns] = await s.make('a');
    await ns.addBridge({ name: 'br0', up: true });
    const calls: Promise<void>[] = [];
    for (let i = 0; i < 100; i++) calls.push(ns.addVeth({ name: `a${i}`, peer: { name: `b${i}` } }));
    await Promise.all(calls);
    const more: Promise<void>[] = [];
    for (let i = 0; i < 100; i++) more.push(ns.setLink(`a${i}`, { master: 'br0', up: true }));
    for (let i = 0; i < 100; i++) more.push(ns.setLink(`b${i}`, { mtu: 1400 + i }));
    await Promise.all(more);
    const links = ipj<{ ifname: string; master?: string; mtu: number }[]>('-n', `${s.prefix}a`, 'link');
    expect(links.filter((l) => l.ifname.startsWith('a') && l.master === 'br0')).toHaveLength(100);
    expect(links.find((l) => l.ifname === 'b57')?.mtu).toBe(1457);
  });

  it('one batch of 1000+ requests is pipelined without losing an ack', async () => {
    const [ns] = await s.make('big');
    const b = new Batch();
    const scope = b.in(ns);
    scope.addBridge({ name: 'br0', up: true });
    for (let i = 0; i < 250; i++) scope.addVeth({ name: `x${i}`, master: 'br0', up: true, peer: { name: `y${i}` } });
    for (let i = 0; i < 250; i++) scope.addAddress(`y${i}`, `198.18.${i}.1/24`);
    for (let i = 0; i < 250; i++) scope.addAddress(`y${i}`, `2001:db8:${i.toString(16)}::1/64`, { nodad: true });
    for (let i = 0; i < 250; i++) scope.setLink(`y${i}`, { up: true });
    expect(b.size).toBe(1001);
    await b.commit();
    const addrs = ipj<{ ifname: string; addr_info: unknown[] }[]>('-n', `${s.prefix}big`, 'addr');
    expect(addrs.filter((a) => a.ifname.startsWith('y') && a.addr_info.length >= 2)).toHaveLength(250);
  });

  it('calls against many namespaces interleave safely', async () => {
    const made = await s.make(...Array.from({ length: 20 }, (_, i) => `m${i}`));
    await Promise.all(
      made.map(async (ns, i) => {
        await ns.addBridge({ name: `br${i}`, up: true });
        await ns.setLink('lo', { up: true });
        await ns.addAddress(`br${i}`, `192.0.2.${i + 1}/24`);
      }),
    );
    for (const [i, ns] of made.entries()) {
      const links = await ns.listLinks();
      expect(links.map((l) => l.name).sort()).toEqual([`br${i}`, 'lo']);
      expect((await ns.listAddresses({ family: 4, link: `br${i}` })).map((a) => a.cidr)).toEqual([`192.0.2.${i + 1}/24`]);
    }
  });
});
