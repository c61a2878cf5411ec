// A cluster's life on the machine: one controller per name, a state file and a lock while it runs,
// and a controller that dies without cleaning up is swept by the next process.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { createCluster, destroyCluster, listClusters, sweepClusters, Netns, RUNTIME_DIR } from '../lib/index.js';
import { describeAsRoot, ipj, scratch } from './helpers.js';

const controller = fileURLToPath(new URL('./fixtures/controller.mjs', import.meta.url));

describeAsRoot('cluster lifecycle across processes', () => {
  const s = scratch('lc');
  afterAll(() => s.cleanup());

  const leftovers = async (name: string, host: Netns) => ({
    namespaces: (await Netns.list()).filter((n) => n.startsWith(`${name}-`)),
    links: ipj<{ ifname: string }[]>('-n', host.name!, 'link').map((l) => l.ifname).filter((n) => n.startsWith(name)),
    nft: execFileSync('ip', ['netns', 'exec', host.name!, 'nft', 'list', 'tables'], { encoding: 'utf8' }).includes(`nc-${name}`),
    files: [`${name}.json`, `${name}.lock`, name].filter((f) => existsSync(`${RUNTIME_DIR}/${f}`)),
  });

  it('a SIGKILLed controller leaves a state file; a second controller is refused; sweep removes everything', async () => {
    const [host] = await s.make('h');
    await host.addVeth({ name: 'up0', peer: { name: 'up0p' } });
    const name = `${s.prefix}k`;
    const spec = { name, nodes: 3, vip: '192.0.2.1/24', mode: 'flood', hostNetns: host.name, uplink: { bridge: 'up0' } };
    const child = spawn(process.execPath, [controller, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
    expect(String(chunk)).toContain('ready');

    const listed = (await listClusters()).find((c) => c.name === name);
    expect(listed).toMatchObject({ running: true, state: { pid: child.pid, hostNetns: host.name, nodes: [`${name}-n0`, `${name}-n1`, `${name}-n2`] } });

    // Two controllers on one name: the second gets a clear error and builds nothing.
    const second = await createCluster({ ...spec, mode: 'flood' } as never).catch((e) => e);
    expect(second).toMatchObject({ code: 'EBUSY' });
    expect(second.message).toMatch(new RegExp(`already managed by process ${child.pid}`));
    await expect(destroyCluster(name)).rejects.toMatchObject({ code: 'EBUSY' });

    child.kill('SIGKILL');
    await once(child, 'exit');
    expect((await listClusters()).find((c) => c.name === name)?.running).toBe(false);
    // Everything it built is still there…
    expect((await leftovers(name, host)).namespaces).toHaveLength(3);
    // …until a fresh process sweeps.
    // Only this file's clusters: other test files may have dead controllers of their own right now.
    expect(await sweepClusters({ prefix: s.prefix })).toContain(name);
    expect(await leftovers(name, host)).toEqual({ namespaces: [], links: [], nft: false, files: [] });
    expect(ipj<{ master?: string }[]>('-n', host.name!, 'link', 'show', 'up0')[0].master).toBeUndefined();
  });

  it('destroyCluster finds a cluster by name even without its state file, and is idempotent', async () => {
    const [host] = await s.make('h2');
    await host.addVeth({ name: 'up0', peer: { name: 'up0p' } });
    const name = `${s.prefix}d`;
    const spec = { name, nodes: 2, vip: '192.0.2.1/24', hostNetns: host.name, uplink: { bridge: 'up0' } };
    const child = spawn(process.execPath, [controller, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] });
    await once(child.stdout!, 'data');
    child.kill('SIGKILL');
    await once(child, 'exit');
    rmSync(`${RUNTIME_DIR}/${name}.json`);
    const report = await destroyCluster(name, { hostNetns: host.name });
    expect(report.namespaces.sort()).toEqual([`${name}-n0`, `${name}-n1`]);
    expect(report.hostObjects).toEqual(expect.arrayContaining([`nft table netdev nc-${name}`, `bridge ${name}br`]));
    expect(await leftovers(name, host)).toEqual({ namespaces: [], links: [], nft: false, files: [] });
    expect(await destroyCluster(name, { hostNetns: host.name })).toMatchObject({ name, namespaces: [], hostObjects: [], notOurs: [] });
  });

  it('a clean SIGTERM leaves nothing at all', async () => {
    const [host] = await s.make('h3');
    await host.addVeth({ name: 'up0', peer: { name: 'up0p' } });
    const name = `${s.prefix}t`;
    const spec = { name, nodes: 2, vip: '192.0.2.1/24', hostNetns: host.name, uplink: { bridge: 'up0' } };
    const child = spawn(process.execPath, [controller, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] });
    await once(child.stdout!, 'data');
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
    expect(await leftovers(name, host)).toEqual({ namespaces: [], links: [], nft: false, files: [] });
  });
});
