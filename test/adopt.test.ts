// Adopt: a controller that is gone (SIGKILL, a crash, systemd restarting it) leaves a working data
// plane; the next controller takes it over instead of refusing, repairs what is missing, and
// traffic on live nodes goes on without a lost datagram.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { resolveSpec, planCluster, Netns } from '../lib/index.js';
import type { Cluster } from '../lib/cluster/cluster.js';
import { bucketOf } from '../lib/rules/jhash.js';
import { describeAsRoot, ipj, scratch } from './helpers.js';
import { PORT, flowsFor, probe, runFixture, startResponders, stopAll, wire, type StreamResult } from './world.js';

const controller = fileURLToPath(new URL('./fixtures/fault-controller.mjs', import.meta.url));

/** Every controller a test started: killed after the file, whatever happened to the test. */
const started = new Set<ChildProcess>();

/** Starts a controller process; resolves with it and what it printed once it is ready. */
async function startController(spec: object, mode?: 'adopt', env: NodeJS.ProcessEnv = process.env): Promise<{ proc: ChildProcess; line: string }> {
  const proc = spawn(process.execPath, [controller, JSON.stringify(spec), ...(mode ? [mode] : [])], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  started.add(proc);
  const [chunk] = (await once(proc.stdout!, 'data')) as [Buffer];
  return { proc, line: String(chunk).trim() };
}

async function stopController(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = once(proc, 'exit');
  proc.kill('SIGTERM');
  await exited;
}

describeAsRoot('adopt', () => {
  const s = scratch('ad');
  let client: Netns;
  let host: Netns;
  beforeAll(async () => {
    [client, host] = await s.make('c', 'h');
    await wire(client, host, 'bridged');
  });
  afterAll(async () => {
    for (const p of started) if (p.exitCode === null && p.signalCode === null) await stopController(p);
    await s.cleanup();
  });

  for (const mode of ['steer', 'flood'] as const) {
    it(`${mode}: the controller is SIGKILLed mid-traffic and a new one adopts: no datagram lost, every flow on its node`, async () => {
      const name = `${s.prefix}${mode[0]}`;
      const spec = { name, nodes: 3, vip: ['192.0.2.1/24', '2001:db8::1/64'], ports: [{ protocol: 'udp', port: PORT }], mode, hostNetns: host.name, uplink: { bridge: 'c0' } };
      const plan = planCluster(resolveSpec(spec as never));
      const first = await startController(spec);
      expect(first.line).toBe('ready');
      const responders = await startResponders({ nodes: plan.nodes } as unknown as Cluster);
      let second: ChildProcess | undefined;
      try {
        const flows = flowsFor('bridged', 'udp').filter((_, i) => i % 3 === 0); // 43 flows, v4 and v6
        const stream = runFixture<StreamResult>(client.name!, 'stream.mjs', { flows, rate: 500, durationMs: 3000 });
        await new Promise((r) => setTimeout(r, 600));
        first.proc.kill('SIGKILL');
        await once(first.proc, 'exit');
        const t = performance.now();
        const adopted = await startController(spec, 'adopt');
        const gapMs = performance.now() - t;
        second = adopted.proc;
        expect(adopted.line).toMatch(/^ready adopted /);
        const result = await stream;
        console.log(`${mode}: adopt took ${gapMs.toFixed(0)} ms (process start included); stream ${JSON.stringify(result)}`);
        expect(result.lost).toBe(0);
        if (mode === 'steer') expect(result.duplicates).toBe(0);
        // Every flow is still answered by the node its bucket belongs to.
        const seed = resolveSpec(spec as never).seed;
        const got = probe(client.name!, flowsFor('bridged', 'udp'));
        for (const r of got) expect(r.node).toBe(plan.buckets[bucketOf('sourceip', { address: r.from }, 64, seed)]);
      } finally {
        await stopAll(responders);
        if (second) await stopController(second);
        await stopController(first.proc);
      }
      expect((await Netns.list()).filter((n) => n.startsWith(`${name}-`))).toEqual([]);
    });
  }

  it('adopt repairs what is missing: a deleted node namespace, a lost address, a deleted table', async () => {
    const name = `${s.prefix}r`;
    const spec = { name, nodes: 3, vip: ['192.0.2.1/24', '2001:db8::1/64'], ports: [{ protocol: 'udp', port: PORT }], mode: 'steer', hostNetns: host.name, uplink: { bridge: 'c0' } };
    const plan = planCluster(resolveSpec(spec as never));
    const first = await startController(spec);
    first.proc.kill('SIGKILL');
    await once(first.proc, 'exit');
    // Damage: node 1's namespace gone, node 2's VIP removed, the host's table deleted.
    execFileSync('ip', ['netns', 'del', `${name}-n1`]);
    execFileSync('ip', ['-n', `${name}-n2`, 'addr', 'del', '192.0.2.1/24', 'dev', 'eth0']);
    execFileSync('ip', ['netns', 'exec', host.name!, 'nft', 'delete', 'table', 'bridge', `nc-${name}`]);
    const adopted = await startController(spec, 'adopt');
    try {
      // Node 1's namespace and the host's table were missing; node 2's address is back too.
      expect(JSON.parse(adopted.line.replace(/^ready adopted /, ''))).toMatchObject({ namespacesMade: 1, tablesMade: 2, nodesRemoved: 0 });
      expect(ipj<{ addr_info: { local: string }[] }[]>('-n', `${name}-n2`, 'addr', 'show', 'dev', 'eth0')[0].addr_info.map((a) => a.local)).toContain('192.0.2.1');
      expect(execFileSync('ip', ['netns', 'exec', host.name!, 'nft', 'list', 'tables'], { encoding: 'utf8' })).toContain(`nc-${name}`);
      const responders = await startResponders({ nodes: plan.nodes } as unknown as Cluster);
      try {
        const got = probe(client.name!, flowsFor('bridged', 'udp', [4]));
        expect(new Set(got.map((r) => r.node))).toEqual(new Set([0, 1, 2]));
      } finally {
        await stopAll(responders);
      }
    } finally {
      await stopController(adopted.proc);
    }
  });

  it('a controller killed in the middle of its build: the next one adopts and finishes it', async () => {
    const name = `${s.prefix}m`;
    const spec = { name, nodes: 2, vip: '192.0.2.1/24', hostNetns: host.name, uplink: { bridge: 'c0' } };
    const dead = spawn(process.execPath, [controller, JSON.stringify(spec)], { env: { ...process.env, NETNS_CLUSTER_FAULT: 'create:namespaces-created' }, stdio: 'ignore' });
    expect(await once(dead, 'exit')).toEqual([null, 'SIGKILL']);
    const adopted = await startController(spec, 'adopt');
    try {
      expect(adopted.line).toMatch(/^ready adopted /);
      expect(ipj<{ master?: string }[]>('-n', host.name!, 'link', 'show', 'c0')[0].master).toBe(`${name}br`);
    } finally {
      await stopController(adopted.proc);
    }
    expect(ipj<{ master?: string }[]>('-n', host.name!, 'link', 'show', 'c0')[0].master).toBeUndefined();
  });
});
