// Safe on someone else's host: names are checked before any path is built, only marked objects are
// ever deleted, bad state files are moved aside instead of breaking every command, and the host's
// settings (an uplink's down state, forwarding sysctls) are put back.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createCluster, destroyCluster, listClusters, sweepClusters, Netns, RUNTIME_DIR } from '../lib/index.js';
import type { StateProblem } from '../lib/cluster/state.js';
import { describeAsRoot, ipj, runCli, scratch } from './helpers.js';


describeAsRoot('only what the cluster made', () => {
  const s = scratch('sf');
  let host: Netns;
  beforeAll(async () => {
    [host] = await s.make('h');
    await host.addVeth({ name: 'up0', peer: { name: 'up0p' } });
  });
  afterAll(async () => {
    for (const f of existsSync(RUNTIME_DIR) ? readdirSync(RUNTIME_DIR) : []) if (f.startsWith(s.prefix)) rmSync(`${RUNTIME_DIR}/${f}`, { recursive: true, force: true });
    await s.cleanup();
  });
  const spec = (name: string, extra: object = {}) => ({ name, nodes: 4, vip: '192.0.2.1/24', hostNetns: host.name, uplink: { bridge: 'up0' }, ...extra }) as never;
  const links = () => ipj<{ ifname: string; master?: string; flags: string[] }[]>('-n', host.name!, 'link');

  it('a path outside the runtime directory can never be reached through a name', async () => {
    mkdirSync(`/tmp/${s.prefix}x`, { recursive: true });
    await expect(destroyCluster(`../../tmp/${s.prefix}x`)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', field: 'name' });
    await expect(destroyCluster('')).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    await expect(sweepClusters({ prefix: '' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', field: 'prefix' });
    expect(existsSync(`/tmp/${s.prefix}x`)).toBe(true);
    rmSync(`/tmp/${s.prefix}x`, { recursive: true });
    const r = await runCli('sweep', '--prefix', '');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not the start of a cluster name/);
  });

  it('stray and corrupt files: list and sweep report them and go on; nothing outside is touched', async () => {
    const good = `${s.prefix}g`;
    const c = await createCluster(spec(good));
    try {
      writeFileSync(`${RUNTIME_DIR}/..json`, '{}');
      writeFileSync(`${RUNTIME_DIR}/${s.prefix}c.json`, '{not json');
      writeFileSync(`${RUNTIME_DIR}/${s.prefix}e.json`, '{}');
      writeFileSync(`${RUNTIME_DIR}/${s.prefix}m.json`, JSON.stringify({ version: 1, name: `${s.prefix}m`, pid: -1, startedAt: 'x', nodes: [] }));
      const problems: StateProblem[] = [];
      const listed = await listClusters({ problems });
      expect(listed.find((x) => x.name === good)?.running).toBe(true);
      expect(problems.map((p) => p.file)).toEqual(
        expect.arrayContaining([`${RUNTIME_DIR}/..json`, `${RUNTIME_DIR}/${s.prefix}c.json`, `${RUNTIME_DIR}/${s.prefix}e.json`, `${RUNTIME_DIR}/${s.prefix}m.json`]),
      );
      expect(problems.find((p) => p.file.endsWith('m.json'))?.reason).toMatch(/pid -1 is not a process id/);
      const l = await runCli('list');
      expect(l.code, l.stderr).toBe(0);
      expect(l.stdout).toContain(good);
      // `down` of a cluster whose state says pid -1: never signals anything, moves the file aside.
      const d = await runCli('down', `${s.prefix}m`);
      expect(d.code, d.stderr).toBe(0);
      expect(existsSync(`${RUNTIME_DIR}/${s.prefix}m.json.corrupt`)).toBe(true);
      expect(await sweepClusters({ prefix: s.prefix })).toEqual(expect.arrayContaining([`${s.prefix}c`, `${s.prefix}e`]));
      expect(existsSync('/run')).toBe(true);
      expect(existsSync(`${RUNTIME_DIR}/..json`)).toBe(true); // not ours to judge: left alone
      expect(existsSync(`${RUNTIME_DIR}/${good}.json`)).toBe(true);
    } finally {
      rmSync(`${RUNTIME_DIR}/..json`, { force: true });
      for (const x of ['c', 'e', 'm']) rmSync(`${RUNTIME_DIR}/${s.prefix}${x}.json.corrupt`, { force: true });
      await c.close();
    }
  });

  it('planted FIFOs and symlinks in the runtime directory: nothing hangs, nothing outside is followed or deleted', async () => {
    const outside = `/tmp/${s.prefix}-outside`;
    mkdirSync(`${outside}/dir`, { recursive: true });
    writeFileSync(`${outside}/file`, 'keep me');
    writeFileSync(`${outside}/dir/keep`, 'keep me');
    const fifo = `${RUNTIME_DIR}/${s.prefix}q.json`;
    execFileSync('mkfifo', [fifo]);
    symlinkSync(`${outside}/file`, `${RUNTIME_DIR}/${s.prefix}s.json`);
    symlinkSync(`${outside}/dir`, `${RUNTIME_DIR}/${s.prefix}s`);
    try {
      const problems: StateProblem[] = [];
      await listClusters({ problems });
      expect(problems.map((p) => p.file)).toEqual(expect.arrayContaining([fifo, `${RUNTIME_DIR}/${s.prefix}s.json`, `${RUNTIME_DIR}/${s.prefix}s`]));
      const l = await runCli('list');
      expect(l.code, l.stderr).toBe(0);
      await destroyCluster(`${s.prefix}s`);
      await destroyCluster(`${s.prefix}q`);
      expect(readFileSync(`${outside}/file`, 'utf8')).toBe('keep me');
      expect(readFileSync(`${outside}/dir/keep`, 'utf8')).toBe('keep me');
    } finally {
      for (const f of [fifo, `${fifo}.corrupt`, `${RUNTIME_DIR}/${s.prefix}s.json`, `${RUNTIME_DIR}/${s.prefix}s.json.corrupt`, `${RUNTIME_DIR}/${s.prefix}s`]) rmSync(f, { force: true });
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it('a state file whose restore record is not from this namespace changes nothing on the host: no uplink down, no sysctl', async () => {
    const name = `${s.prefix}k`;
    await host.addVeth({ name: 'up9', peer: { name: 'up9p' } });
    await host.setLink('up9', { up: true });
    execFileSync('ip', ['netns', 'exec', host.name!, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    const record = (restore: object) =>
      writeFileSync(`${RUNTIME_DIR}/${name}.json`, JSON.stringify({ version: 1, name, pid: 999999, startedAt: 'x', hostNetns: host.name, uplink: 'up9', nodes: [], restore }));
    try {
      // No namespace identity (an old or planted file), then the identity of another namespace.
      for (const restore of [{ uplinkWasDown: true, sysctls: { 'net.ipv4.ip_forward': '0' } }, { hostId: '1:2', uplinkWasDown: true, sysctls: { 'net.ipv4.ip_forward': '0' } }]) {
        record(restore);
        const d = await destroyCluster(name);
        expect(d.restored).toEqual([]);
        expect(links().find((l) => l.ifname === 'up9')?.flags).toContain('UP');
        expect(execFileSync('ip', ['netns', 'exec', host.name!, 'sysctl', '-n', 'net.ipv4.ip_forward'], { encoding: 'utf8' }).trim()).toBe('1');
      }
      // A key the library never writes is not a restore record at all.
      record({ sysctls: { 'net.ipv4.conf.all.rp_filter': '2' } });
      const d = await destroyCluster(name);
      expect(d.problems.join(' ')).toMatch(/restore.sysctls has an entry netns-cluster never writes/);
    } finally {
      rmSync(`${RUNTIME_DIR}/${name}.json.corrupt`, { force: true });
      await host.deleteLink('up9');
    }
  });

  it("a user's namespace, bridge, veth or table with a cluster's names is refused at create, and never deleted", async () => {
    const name = `${s.prefix}u`;
    // Made the way a user would, with iproute2 and nft: not marked.
    execFileSync('ip', ['netns', 'add', `${name}-n9`]);
    execFileSync('ip', ['-n', host.name!, 'link', 'add', `${name}v3`, 'type', 'veth', 'peer', 'name', `${name}p3`]);
    try {
      const err = await createCluster(spec(name)).catch((e) => e);
      expect(err).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', field: 'name' });
      expect(err.message).toMatch(new RegExp(`interface '${name}v3'.*not netns-cluster's; pick another cluster name`));
      expect(links().some((l) => l.ifname === `${name}v3`)).toBe(true);

      execFileSync('ip', ['-n', host.name!, 'link', 'del', `${name}v3`]);
      execFileSync('ip', ['-n', host.name!, 'link', 'add', `${name}br`, 'type', 'bridge']);
      await expect(createCluster(spec(name))).rejects.toThrow(new RegExp(`interface '${name}br'`));
      execFileSync('ip', ['-n', host.name!, 'link', 'del', `${name}br`]);

      execFileSync('ip', ['netns', 'exec', host.name!, 'nft', 'add', 'table', 'bridge', `nc-${name}`]);
      await expect(createCluster(spec(name))).rejects.toThrow(new RegExp(`nft table bridge nc-${name}.*not netns-cluster's`));
      execFileSync('ip', ['netns', 'exec', host.name!, 'nft', 'delete', 'table', 'bridge', `nc-${name}`]);

      // A cluster with 9 nodes would make <name>-n9: refused. With 4, it builds; destroy leaves n9 alone.
      await expect(createCluster(spec(name, { nodes: 10 }))).rejects.toThrow(new RegExp(`namespace '${name}-n9'`));
      const c = await createCluster(spec(name));
      execFileSync('ip', ['-n', host.name!, 'link', 'add', `${name}x`, 'type', 'bridge']);
      await c.close();
      expect((await Netns.list()).filter((n) => n.startsWith(`${name}-`))).toEqual([`${name}-n9`]);
      const d = await destroyCluster(name, { hostNetns: host.name });
      expect(d.notOurs).toEqual([`namespace ${name}-n9`]);
      expect((await Netns.list()).includes(`${name}-n9`)).toBe(true);
      expect(links().some((l) => l.ifname === `${name}x`)).toBe(true);
    } finally {
      execFileSync('ip', ['netns', 'del', `${name}-n9`]);
      for (const l of [`${name}v3`, `${name}br`, `${name}x`]) if (links().some((x) => x.ifname === l)) execFileSync('ip', ['-n', host.name!, 'link', 'del', l]);
    }
  });

  it("a bridged uplink may be named like the routed port (<name>up); a tmp file left by a crash is removed", async () => {
    const name = `${s.prefix}p`;
    await host.addVeth({ name: `${name}up`, peer: { name: `${name}uq` } });
    const c = await createCluster({ ...(spec(name) as object), uplink: { bridge: `${name}up` } } as never);
    writeFileSync(`${RUNTIME_DIR}/${name}.json.4242.tmp`, '{');
    await c.close();
    await destroyCluster(name);
    expect(readdirSync(RUNTIME_DIR).filter((f) => f.startsWith(name))).toEqual([]);
    await host.deleteLink(`${name}up`);
  });

  it('close() puts the host back: a DOWN uplink stays down; routed forwarding sysctls get their old values', async () => {
    const b = await createCluster(spec(`${s.prefix}b`));
    expect(links().find((l) => l.ifname === 'up0')?.flags).toContain('UP');
    await b.close();
    const up0 = links().find((l) => l.ifname === 'up0')!;
    expect(up0.master).toBeUndefined();
    expect(up0.flags).not.toContain('UP');

    await host.addVeth({ name: 'via0', peer: { name: 'via0p' } });
    execFileSync('ip', ['netns', 'exec', host.name!, 'sysctl', '-qw', 'net.ipv4.ip_forward=0', 'net.ipv6.conf.all.forwarding=0']);
    const r = await createCluster({ name: `${s.prefix}r`, nodes: 2, vip: ['192.0.2.1/24', '2001:db8::1/64'], hostNetns: host.name, uplink: { routed: { via: 'via0' } } } as never);
    const sysctl = (k: string) => execFileSync('ip', ['netns', 'exec', host.name!, 'sysctl', '-n', k], { encoding: 'utf8' }).trim();
    expect([sysctl('net.ipv4.ip_forward'), sysctl('net.ipv6.conf.all.forwarding')]).toEqual(['1', '1']);
    await r.close();
    expect([sysctl('net.ipv4.ip_forward'), sysctl('net.ipv6.conf.all.forwarding')]).toEqual(['0', '0']);
  });
});
