import { spawn } from 'node:child_process';
import { readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { binding, packageRoot } from '../lib/kernel/binding.js';
import { afterAll, expect, it } from 'vitest';
import { Batch, Netns } from '../lib/index.js';
import { describeAsRoot, ipj, openFds, scratch, sh } from './helpers.js';

describeAsRoot('namespaces', () => {
  const s = scratch('ns');
  afterAll(() => s.cleanup());

  it('creates a named namespace exactly as `ip netns add` does', async () => {
    const [a] = await s.make('a');
    expect(a.name).toBe(`${s.prefix}a`);
    const listed = ipj<{ name: string }[]>('netns', 'list').map((n) => n.name);
    expect(listed).toContain(`${s.prefix}a`);
    // /run/netns is a shared mount, and the namespace file is a bind mount of a real netns.
    expect(sh('findmnt', ['-n', '-o', 'PROPAGATION', '/run/netns']).trim()).toMatch(/shared/);
    expect(sh('findmnt', ['-n', '-o', 'FSTYPE', `/run/netns/${s.prefix}a`]).trim()).toBe('nsfs');
    // iproute2 can use it: a fresh namespace has only lo.
    expect(ipj<{ ifname: string }[]>('-n', `${s.prefix}a`, 'link').map((l) => l.ifname)).toEqual(['lo']);
    expect(await Netns.list()).toContain(`${s.prefix}a`);
  });

  it('rejects a second namespace of the same name with EEXIST and leaves the first intact', async () => {
    await s.make('dup');
    await expect(s.make('dup')).rejects.toMatchObject({ code: 'EEXIST', syscall: 'open' });
    expect(ipj<{ name: string }[]>('netns', 'list').filter((n) => n.name === `${s.prefix}dup`)).toHaveLength(1);
  });

  it('createMany is all or nothing', async () => {
    await s.make('x1');
    await expect(Netns.createMany([`${s.prefix}x0`, `${s.prefix}x1`, `${s.prefix}x2`])).rejects.toMatchObject({ code: 'EEXIST' });
    const names = await Netns.list();
    expect(names).not.toContain(`${s.prefix}x0`);
    expect(names).not.toContain(`${s.prefix}x2`);
  });

  it('createManyEarly: a batch queued for the handles before the namespaces exist runs once they do', async () => {
    const names = [`${s.prefix}e0`, `${s.prefix}e1`];
    const early = Netns.createManyEarly(names, { mark: 'netns-cluster:early' });
    // Queued at once, before `made` could have resolved: a veth between the two, an address in each.
    const b = new Batch();
    b.in(early.namespaces[0]).addVeth({ name: 've0', up: true, peer: { name: 've1', netns: early.namespaces[1], up: true } });
    b.in(early.namespaces[1]).addAddress('ve1', '192.0.2.2/24');
    const committed = b.commit();
    await early.made;
    await committed;
    expect(ipj<{ ifname: string }[]>('-n', names[0], 'link').map((l) => l.ifname)).toContain('ve0');
    expect(ipj<{ addr_info: { local: string }[] }[]>('-n', names[1], 'addr', 'show', 've1')[0].addr_info.map((a) => a.local)).toContain('192.0.2.2');
    expect(await Netns.readMark(names[1])).toBe('netns-cluster:early');
    await Promise.all(early.namespaces.map((n) => n.close()));
    await Netns.deleteMany(names);
  });

  it('createManyEarly: when one namespace cannot be made, the queued batch does nothing and fails with ENOENT naming it', async () => {
    const [host] = await s.make('eh');
    await s.make('f1');
    const names = [`${s.prefix}f0`, `${s.prefix}f1`, `${s.prefix}f2`];
    const early = Netns.createManyEarly(names);
    const b = new Batch();
    // A host-side bridge first: it must not be made either, since the job needs a namespace that never came.
    b.in(host).addBridge({ name: 'ebr', up: true });
    b.in(host).addVeth({ name: 'ev0', master: 'ebr', peer: { name: 'eth0', netns: early.namespaces[1] } });
    const committed = b.commit().then(() => undefined, (e: unknown) => e);
    await expect(early.made).rejects.toMatchObject({ code: 'EEXIST' });
    const err = await committed;
    expect(err).toMatchObject({ code: 'ENOENT', message: expect.stringContaining(`'/run/netns/${s.prefix}f1' was not made`) });
    expect(ipj<{ ifname: string }[]>('-n', host.name!, 'link').map((l) => l.ifname)).toEqual(['lo']);
    const listed = await Netns.list();
    expect(listed).not.toContain(`${s.prefix}f0`);
    expect(listed).not.toContain(`${s.prefix}f2`);
    expect(early.namespaces.every((n) => n.closed)).toBe(true);
  });

  it('reserved handles: refused unless from reserveNetns, for the same path, and used by one create', async () => {
    const path = `/run/netns/${s.prefix}r0`;
    const h = binding().reserveNetns(path);
    expect(() => binding().submit([{ type: 'netns.create', path: `/run/netns/${s.prefix}r1`, into: h }], true)).toThrow(/^into: was reserved for '\/run\/netns\//);
    expect(() => binding().reserveNetns('')).toThrow(/^path: a namespace path must be 1 to 4096 bytes/);
    expect(() => binding().submit([{ type: 'netns.create', path, into: {} as never }], true)).toThrow(/^into: must be a namespace handle made by this addon/);
    const made = binding().submit([{ type: 'netns.create', path, into: h }], true);
    expect(() => binding().submit([{ type: 'netns.create', path, into: h }], true)).toThrow(/^into: this reserved handle is already being made/);
    const [r] = await made;
    expect(r).not.toBeInstanceOf(Error);
    await binding().submit([{ type: 'netns.release', netns: h }, { type: 'netns.delete', path }], true);
    expect(await Netns.list()).not.toContain(`${s.prefix}r0`);
  });

  it('createMany writes sysctls inside each new namespace before naming it (many namespaces, made on two threads)', async () => {
    const mark = `netns-cluster:${s.prefix}`;
    const names = Array.from({ length: 7 }, (_, k) => `${s.prefix}s${k}`);
    const made = await Netns.createMany(names, { mark, sysctls: { 'net.ipv6.conf.default.accept_dad': 0, 'net/ipv4/ip_forward': true } });
    expect(made.map((n) => n.name)).toEqual(names);
    for (const ns of made) {
      expect(await ns.readSysctl('net.ipv6.conf.default.accept_dad')).toBe('0');
      expect(await ns.readSysctl('net.ipv4.ip_forward')).toBe('1');
      expect(await ns.mark()).toBe(mark);
    }
    // Each handle is its own namespace.
    expect(new Set(made.map((n) => statSync(n.path).ino)).size).toBe(7);
    await Netns.deleteMany(made);
    // All or nothing: one taken name in the middle of a parallel run.
    await s.make('s3');
    await expect(Netns.createMany(names, { mark, sysctls: { 'net.ipv4.ip_forward': 1 } })).rejects.toMatchObject({ code: 'EEXIST' });
    expect((await Netns.list()).filter((n) => names.includes(n))).toEqual([`${s.prefix}s3`]);
    // A sysctl that does not exist fails the namespace, which is not left behind.
    await expect(Netns.createMany([`${s.prefix}t0`, `${s.prefix}t1`, `${s.prefix}t2`], { sysctls: { 'net.ipv4.no_such_key': 1 } })).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await Netns.list()).filter((n) => n.startsWith(`${s.prefix}t`))).toEqual([]);
    await expect(Netns.createMany([`${s.prefix}t0`], { sysctls: { 'kernel.hostname': 'x' } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', field: 'key' });
    await expect(Netns.createMany([`${s.prefix}t0`], { sysctls: { 'net.ipv4.ip_forward': 'a\nb' } })).rejects.toMatchObject({ field: "sysctls['net.ipv4.ip_forward']" });
    await expect(Netns.createMany([`${s.prefix}t0`], { sysctls: [] as never })).rejects.toMatchObject({ field: 'sysctls' });
    expect(await Netns.list()).not.toContain(`${s.prefix}t0`);
  });

  it('marks a namespace (lo alias) before it is named, and reads the mark back', async () => {
    const mark = `netns-cluster:${s.prefix}`;
    const a = await Netns.create(`${s.prefix}m1`, { mark });
    const lo = ipj<{ ifname: string; ifalias?: string }[]>('-n', `${s.prefix}m1`, 'link', 'show', 'lo')[0];
    expect(lo.ifalias).toBe(mark);
    expect(await a.mark()).toBe(mark);
    expect(await Netns.readMark(`${s.prefix}m1`)).toBe(mark);
    await a.close();
    const [plain] = await s.make('m2');
    expect(await plain.mark()).toBeUndefined();
    expect(await Netns.readMark(`${s.prefix}m2`)).toBeUndefined();
    expect(await Netns.readMark(`${s.prefix}nosuch`)).toBeUndefined();
    expect(sh('ls', ['/run/netns']).split('\n')).not.toContain(`${s.prefix}nosuch`); // reading did not create it
    const many = await Netns.createMany([`${s.prefix}m3`, `${s.prefix}m4`], { mark });
    expect(await Promise.all(many.map((n) => n.mark()))).toEqual([mark, mark]);
    await Netns.deleteMany([a.name!, ...many]);
    // all or nothing, marked or not
    await expect(Netns.createMany([`${s.prefix}m5`, `${s.prefix}m2`], { mark })).rejects.toMatchObject({ code: 'EEXIST' });
    expect(await Netns.list()).not.toContain(`${s.prefix}m5`);
    await expect(Netns.create(`${s.prefix}m6`, { mark: 'a\0b' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', field: 'mark' });
    await expect(Netns.create(`${s.prefix}m6`, { mark: 'm'.repeat(256) })).rejects.toThrow(/at most 255 bytes/);
    expect(await Netns.list()).not.toContain(`${s.prefix}m6`);
  });

  it('a marked namespace is never visible without its mark (watched from another process)', async () => {
    const mark = `netns-cluster:${s.prefix}w`;
    const addon = join(packageRoot(), 'build/Release/netns_cluster.node');
    // The watcher opens every namespace of this prefix it sees and reads lo's alias, until stdin closes.
    const watcher = spawn(
      process.execPath,
      [
        '-e',
        `const b = require(${JSON.stringify(addon)}); const fs = require('fs');
         let stop = false, seen = 0, unmarked = [];
         process.stdin.on('end', () => { stop = true; }); process.stdin.resume();
         (async () => {
           while (!stop) {
             for (const n of fs.readdirSync('/run/netns').filter((n) => n.startsWith(${JSON.stringify(`${s.prefix}w`)}))) {
               const [h] = await b.submit([{ type: 'netns.open', path: '/run/netns/' + n }], false);
               if (h instanceof Error) continue; // not yet a namespace, or gone
               const [lo] = await b.submit([{ type: 'link.get', netns: h, link: 1 }], false);
               await b.submit([{ type: 'netns.release', netns: h }], false);
               if (lo instanceof Error) continue;
               seen++;
               if (lo.alias !== ${JSON.stringify(mark)}) unmarked.push(n);
             }
             await new Promise((r) => setImmediate(r));
           }
           console.log(JSON.stringify({ seen, unmarked }));
         })();`,
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    let out = '';
    watcher.stdout.on('data', (d) => (out += d));
    const names = Array.from({ length: 30 }, (_, i) => `${s.prefix}w${i}`);
    let t0 = performance.now();
    for (let round = 0; round < 5; round++) {
      const made = await Netns.createMany(names, { mark });
      await Netns.deleteMany(made);
    }
    const marked = performance.now() - t0;
    t0 = performance.now();
    for (let round = 0; round < 5; round++) await Netns.deleteMany(await Netns.createMany(names.map((_, i) => `${s.prefix}q${i}`)));
    const unmarked = performance.now() - t0;
    watcher.stdin.end();
    await new Promise((r) => watcher.on('close', r));
    const r = JSON.parse(out) as { seen: number; unmarked: string[] };
    console.log(
      `150 namespaces created and deleted: ${marked.toFixed(0)} ms with a mark, ${unmarked.toFixed(0)} ms without; ` +
        `the watcher opened ${r.seen} marked namespaces`,
    );
    expect(r.unmarked).toEqual([]);
  });

  it('opens a namespace by name, by path and the caller’s own', async () => {
    sh('ip', ['netns', 'add', `${s.prefix}byip`]);
    const byName = await Netns.open(`${s.prefix}byip`);
    const byPath = await Netns.open(`/run/netns/${s.prefix}byip`);
    await byName.addDummy({ name: 'd0' }).catch(() => byName.addBridge({ name: 'd0' }));
    expect((await byPath.getLink('d0')).name).toBe('d0');
    const own = await Netns.open();
    expect((await own.listLinks()).some((l) => l.name === 'lo')).toBe(true);
    await Promise.all([byName.close(), byPath.close(), own.close()]);
  });

  it('opening something that is not a network namespace fails clearly', async () => {
    await expect(Netns.open(`${s.prefix}missing`)).rejects.toMatchObject({ code: 'ENOENT', syscall: 'open' });
    await expect(Netns.open('/proc/self/ns/uts')).rejects.toMatchObject({ code: 'EINVAL' });
  });

  it('delete is idempotent and really removes the namespace', async () => {
    const [d] = await s.make('del');
    await d.close();
    await Netns.delete(`${s.prefix}del`);
    await Netns.delete(`${s.prefix}del`);
    expect(ipj<{ name: string }[]>('netns', 'list').map((n) => n.name)).not.toContain(`${s.prefix}del`);
    expect(sh('findmnt', ['-n', '-o', 'TARGET']).split('\n')).not.toContain(`/run/netns/${s.prefix}del`);
  });

  it('a closed handle refuses work and close is idempotent', async () => {
    const [c] = await s.make('closed');
    await c.close();
    await c.close();
    await expect(c.listLinks()).rejects.toThrow(/closed/);
  });

  it('never changes the main thread’s namespace, while the event loop keeps serving timers', async () => {
    const mainNs = () => readlinkSync(`/proc/self/task/${process.pid}/ns/net`);
    const before = mainNs();
    let ticks = 0;
    let sawOther = false;
    const timer = setInterval(() => {
      ticks++;
      if (mainNs() !== before) sawOther = true;
    }, 1);
    const names = Array.from({ length: 24 }, (_, i) => `c${i}`);
    const made = await s.make(...names);
    await Promise.all(
      made.flatMap((n) => [
        n.setLink('lo', { up: true }),
        n.writeSysctl('net.ipv4.ip_forward', 1),
        n.readSysctl('net.ipv4.ip_forward'),
        n.listLinks(),
      ]),
    );
    clearInterval(timer);
    expect(sawOther).toBe(false);
    expect(mainNs()).toBe(before);
    expect(ticks).toBeGreaterThan(0);
  });

  it('leaves no file descriptor open once handles are closed and namespaces deleted', async () => {
    const before = openFds();
    const made = await Netns.createMany([`${s.prefix}fd0`, `${s.prefix}fd1`]);
    await Promise.all(made.map((n) => n.listLinks()));
    await Netns.deleteMany(made); // handles are closed as they are deleted
    expect(made.every((n) => n.closed)).toBe(true);
    expect(openFds()).toBe(before);
    expect(await Netns.list()).not.toContain(`${s.prefix}fd0`);
  });
});
