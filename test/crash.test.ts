// Crashes and races: a controller SIGKILLed at every step from taking its lock to releasing it
// (and at random moments) is cleaned up completely by each of destroyCluster, `down` and sweep —
// namespaces, links, tables, mounts, files, processes (forked children included), cgroups — and the
// uplink is back as it was. destroy and sweep racing a create of the same name never break the live
// cluster. `up` handles SIGHUP, a second SIGINT and SIGTERM while building.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createCluster, destroyCluster, listClusters, sweepClusters, Netns, RUNTIME_DIR, type Cluster } from '../lib/index.js';
import { ControllerLock } from '../lib/cluster/state.js';
import { FAULT_POINTS } from '../lib/util/fault.js';
import { CLI, describeAsRoot, ipj, runCli, scratch, markedProcesses } from './helpers.js';
import { cgroup2Roots } from './leftovers.js';

const fixture = (f: string) => fileURLToPath(new URL(`./fixtures/${f}`, import.meta.url));
const FULL = process.env.NETNS_CLUSTER_FULL_FAULTS === '1';



/** Everything of cluster `name` on the machine (empty: nothing left). */
async function traces(name: string, host: Netns): Promise<string[]> {
  const t: string[] = [];
  for (const n of await Netns.list()) if (n.startsWith(`${name}-`)) t.push(`netns ${n}`);
  for (const l of ipj<{ ifname: string }[]>('-n', host.name!, 'link')) if (l.ifname.startsWith(name)) t.push(`link ${l.ifname}`);
  if (execFileSync('ip', ['netns', 'exec', host.name!, 'nft', 'list', 'tables'], { encoding: 'utf8' }).includes(`nc-${name}`)) t.push('nft table');
  for (const m of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) if (m.includes(`/run/netns/${name}-`)) t.push(`mount ${m.split(' ')[4]}`);
  for (const f of existsSync(RUNTIME_DIR) ? readdirSync(RUNTIME_DIR) : []) if (f === name || f.startsWith(`${name}.`)) t.push(`file ${f}`);
  for (const p of markedProcesses(name)) t.push(`process ${p}`);
  for (const root of cgroup2Roots()) if (existsSync(join(root, 'netns-cluster', name))) t.push(`cgroup ${join(root, 'netns-cluster', name)}`);
  return t;
}

function uplinkState(host: Netns): { master?: string; up: boolean } {
  const l = ipj<{ master?: string; flags: string[] }[]>('-n', host.name!, 'link', 'show', 'up0')[0];
  return { master: l.master, up: l.flags.includes('UP') };
}


describeAsRoot('crashes, races and signals', () => {
  const s = scratch('cr');
  let host: Netns;
  beforeAll(async () => {
    [host] = await s.make('h');
    // The bridged uplink starts DOWN: every recovery must leave it down and released.
    await host.addVeth({ name: 'up0', peer: { name: 'up0p' } });
  });
  afterAll(async () => {
    await s.cleanup();
  });

  let seq = 0;
  const specFor = (name: string) => ({
    name,
    nodes: 2,
    vip: '192.0.2.1/24',
    mode: 'flood',
    hostNetns: host.name,
    uplink: { bridge: 'up0' },
    // A service that forks: its child must not outlive any crash.
    service: { command: ['sh', '-c', 'sleep 1000 & exec sleep 2000'], env: { NCMARK: name }, stopTimeoutMs: 2000 },
  });
  const recoveries = ['destroy', 'down', 'sweep'] as const;

  async function recover(how: (typeof recoveries)[number], name: string): Promise<void> {
    if (how === 'destroy') await destroyCluster(name);
    else if (how === 'sweep') await sweepClusters({ prefix: name });
    else {
      const r = await runCli('down', name);
      expect(r.code, r.stderr).toBe(0);
    }
  }

  const points: (string | number)[] = [...FAULT_POINTS.filter((p) => !p.startsWith('destroy:')), ...Array.from({ length: FULL ? 40 : 6 }, (_, i) => 40 + i * 97)];
  it.each(points)('controller killed at %s: recovery leaves nothing', async (point) => {
    const name = `${s.prefix}${(seq++).toString(36)}`;
    const env = { ...process.env, ...(typeof point === 'string' ? { NETNS_CLUSTER_FAULT: point } : {}) };
    const child = spawn(process.execPath, [fixture('fault-controller.mjs'), JSON.stringify(specFor(name)), 'close'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    if (typeof point === 'number') setTimeout(() => child.kill('SIGKILL'), point);
    const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
    // A named point must really have been reached (the process died there, not elsewhere).
    if (typeof point === 'string') expect({ code, signal, stderr }).toMatchObject({ code: null, signal: 'SIGKILL' });
    const how = recoveries[seq % recoveries.length];
    await recover(how, name);
    expect(await traces(name, host), `after ${how}`).toEqual([]);
    expect(uplinkState(host)).toEqual({ master: undefined, up: false });
  });

  it.each(FAULT_POINTS.filter((p) => p.startsWith('destroy:')))('a destroy killed at %s is finished by the next one', async (point) => {
    const name = `${s.prefix}${(seq++).toString(36)}`;
    const child = spawn(process.execPath, [fixture('fault-controller.mjs'), JSON.stringify(specFor(name))], { stdio: ['ignore', 'pipe', 'inherit'] });
    await once(child.stdout!, 'data');
    child.kill('SIGKILL');
    await once(child, 'exit');
    const d = spawn(process.execPath, [fixture('fault-destroy.mjs'), name], { env: { ...process.env, NETNS_CLUSTER_FAULT: point }, stdio: 'ignore' });
    expect(await once(d, 'exit')).toEqual([null, 'SIGKILL']);
    await destroyCluster(name);
    expect(await traces(name, host)).toEqual([]);
    expect(uplinkState(host)).toEqual({ master: undefined, up: false });
  });

  it('destroy and sweep racing a create of the same name never break the live cluster (50 runs)', async () => {
    const name = `${s.prefix}r`;
    const spec = { name, nodes: 2, vip: '192.0.2.1/24', hostNetns: host.name, uplink: { bridge: 'up0' } };
    const outcomes: Record<string, number> = {};
    for (let i = 0; i < 50; i++) {
      const creating = createCluster(spec as never);
      await new Promise((r) => setTimeout(r, (i * 7) % 23));
      const racer = (i % 2 ? destroyCluster(name).then(() => 'destroy ran') : sweepClusters({ prefix: name }).then((x) => (x.length ? 'swept' : 'nothing to sweep'))).catch(
        (e: NodeJS.ErrnoException) => e.code ?? String(e),
      );
      // Probing the lock in a loop must never make the create fail.
      let probing = true;
      const prober = (async () => {
        while (probing) {
          ControllerLock.held(name);
          await listClusters();
          await new Promise((r) => setImmediate(r));
        }
      })();
      const c: Cluster = await creating;
      const r = await racer;
      probing = false;
      await prober;
      outcomes[r] = (outcomes[r] ?? 0) + 1;
      // The live cluster is whole: namespaces, bridge, table, lock, state.
      expect((await Netns.list()).filter((n) => n.startsWith(`${name}-`)).sort()).toEqual([`${name}-n0`, `${name}-n1`]);
      expect(ipj<{ ifname: string; master?: string }[]>('-n', host.name!, 'link').filter((l) => l.ifname === 'up0')[0].master).toBe(`${name}br`);
      expect(execFileSync('ip', ['netns', 'exec', host.name!, 'nft', 'list', 'tables'], { encoding: 'utf8' })).toContain(`nc-${name}`);
      expect(ControllerLock.held(name)).toBe(true);
      expect((await listClusters()).find((x) => x.name === name)?.running).toBe(true);
      await c.close();
      expect(await traces(name, host)).toEqual([]);
    }
    console.log(`race outcomes over 50 runs: ${JSON.stringify(outcomes)}`);
    expect(Object.keys(outcomes).every((k) => ['destroy ran', 'swept', 'nothing to sweep', 'EBUSY'].includes(k))).toBe(true);
  });

  it('close() while start() runs: both settle, no service process stays or comes back', async () => {
    const name = `${s.prefix}c`;
    const c = await createCluster({ ...specFor(name), service: { ...specFor(name).service, restart: { initialDelayMs: 50 } } } as never);
    const starting = c.start().catch((e) => e);
    await new Promise((r) => setTimeout(r, 5));
    await c.close();
    await starting;
    await new Promise((r) => setTimeout(r, 500)); // longer than the restart backoff
    expect(await traces(name, host)).toEqual([]);
  });

  describeAsRoot('signals on `up`', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'nc-signals-'));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    async function upUntilReady(name: string, service: object): Promise<{ proc: ReturnType<typeof spawn>; err: () => string }> {
      const config = join(dir, `${name}.json`);
      writeFileSync(config, JSON.stringify({ ...specFor(name), service }));
      const proc = spawn(process.execPath, [CLI, 'up', config], { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      let out = '';
      proc.stderr!.on('data', (d) => (err += d));
      proc.stdout!.on('data', (d) => (out += d));
      // Ready, and every node's service has printed its own "ready" (its signal handlers are set).
      const end = Date.now() + 30_000;
      const ready = () => err.includes('ready:') && (!('command' in service) || (out.includes('[n0] ready') && out.includes('[n1] ready')));
      while (!ready() && proc.exitCode === null && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      return { proc, err: () => err };
    }

    it("SIGHUP reloads the config live (2 → 3 nodes, and a bad change refused); SIGTERM then leaves nothing, the uplink as it was", async () => {
      const name = `${s.prefix}h`;
      const service = { ...specFor(name).service, command: ['sh', '-c', 'echo ready; sleep 1000 & exec sleep 2000'] };
      const { proc, err } = await upUntilReady(name, service);
      expect(err()).toContain('ready:');
      const config = join(dir, `${name}.json`);
      const until = async (text: string) => {
        const end = Date.now() + 20_000;
        while (!err().includes(text) && proc.exitCode === null && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
        expect(err()).toContain(text);
      };
      writeFileSync(config, JSON.stringify({ ...specFor(name), service, nodes: 3 }));
      proc.kill('SIGHUP');
      await until('reloaded in');
      expect((await Netns.list()).filter((n) => n.startsWith(`${name}-`)).sort()).toEqual([`${name}-n0`, `${name}-n1`, `${name}-n2`]);
      writeFileSync(config, JSON.stringify({ ...specFor(name), service, nodes: 3, mode: 'steer' }));
      proc.kill('SIGHUP');
      await until('reload refused: mode: cannot change while the cluster runs');
      expect(proc.exitCode).toBe(null);
      proc.kill('SIGTERM');
      const [code] = await once(proc, 'exit');
      expect(code, err()).toBe(0);
      expect(await traces(name, host)).toEqual([]);
      expect(uplinkState(host)).toEqual({ master: undefined, up: false });
    });

    it('a second SIGINT kills services that ignore SIGTERM at once and removes the cluster', async () => {
      const name = `${s.prefix}i`;
      const service = { command: [process.execPath, fixture('stubborn.mjs')], env: { NCMARK: name }, stopTimeoutMs: 60_000 };
      const { proc, err } = await upUntilReady(name, service);
      expect(err()).toContain('ready:');
      proc.kill('SIGINT');
      await new Promise((r) => setTimeout(r, 300));
      expect(proc.exitCode, err()).toBe(null); // still waiting for the stubborn services
      proc.kill('SIGINT');
      const [code] = await once(proc, 'exit');
      expect(code, err()).toBe(0);
      expect(await traces(name, host)).toEqual([]);
      expect(uplinkState(host)).toEqual({ master: undefined, up: false });
    });

    it('SIGTERM while the config is still being read (a FIFO) exits at once, building nothing', async () => {
      const name = `${s.prefix}f`;
      const fifo = join(dir, 'fifo.json');
      execFileSync('mkfifo', [fifo]);
      const proc = spawn(process.execPath, [CLI, 'up', fifo], { stdio: ['ignore', 'pipe', 'pipe'] });
      const exited = once(proc, 'exit');
      await new Promise((r) => setTimeout(r, 500));
      if (proc.exitCode === null) proc.kill('SIGTERM');
      const [code, signal] = await exited;
      // Refused as not a regular file (exit 2), or ended by the signal while reading.
      expect(code === 2 || signal === 'SIGTERM', `exit ${code} ${signal}`).toBe(true);
      expect(await traces(name, host)).toEqual([]);
    });

    it('SIGTERM while services start: nothing left', async () => {
      const name = `${s.prefix}s`;
      const config = join(dir, `${name}.json`);
      writeFileSync(config, JSON.stringify(specFor(name)));
      const proc = spawn(process.execPath, [CLI, 'up', config], { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      proc.stderr!.on('data', (d) => (err += d));
      while (!err.includes('building') && proc.exitCode === null) await new Promise((r) => setTimeout(r, 5));
      proc.kill('SIGTERM');
      const [code] = await once(proc, 'exit');
      expect(code, err).toBe(0);
      expect(await traces(name, host)).toEqual([]);
      expect(uplinkState(host)).toEqual({ master: undefined, up: false });
    });
  });
});
