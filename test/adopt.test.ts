// Adopt: a controller that is gone (SIGKILL, a crash, systemd restarting it) leaves a working data
// plane; the next controller takes it over instead of refusing, repairs what is missing, and
// traffic on live nodes goes on without a lost datagram.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { resolveSpec, planCluster, readActual, Netns } from '../lib/index.js';
import { keyOf } from '../lib/cluster/plan.js';
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
        // Nothing was damaged: the diff found every object as planned and touched none.
        expect(JSON.parse(adopted.line.replace(/^ready adopted /, ''))).toMatchObject({ made: [], fixed: [], untouched: expect.any(Number) });
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
    // Damage: node 1's namespace gone, node 2's VIP removed, the host's table deleted, node 0's
    // veth down on the host side, a sysctl of node 2 changed, and node 2's veth without its marks
    // (as a kill between its create and its mark leaves it).
    execFileSync('ip', ['netns', 'del', `${name}-n1`]);
    execFileSync('ip', ['-n', `${name}-n2`, 'addr', 'del', '192.0.2.1/24', 'dev', 'eth0']);
    execFileSync('ip', ['netns', 'exec', host.name!, 'nft', 'delete', 'table', 'netdev', `nc-${name}`]);
    execFileSync('ip', ['-n', host.name!, 'link', 'set', `${name}v0`, 'down']);
    execFileSync('ip', ['netns', 'exec', `${name}-n2`, 'sysctl', '-qw', 'net.ipv6.conf.default.accept_dad=1']);
    execFileSync('ip', ['-n', host.name!, 'link', 'set', 'dev', `${name}v2`, 'alias', '']);
    execFileSync('ip', ['-n', `${name}-n2`, 'link', 'set', 'dev', 'eth0', 'alias', '']);
    expect(ipj<{ ifalias?: string }[]>('-n', host.name!, 'link', 'show', `${name}v2`)[0].ifalias).toBeUndefined();
    const adopted = await startController(spec, 'adopt');
    try {
      // Exactly the damage was repaired: node 1 (its namespace and everything in it) and node 2's
      // address made again, node 0's veth and node 2's sysctl set right, the rest untouched.
      const report = JSON.parse(adopted.line.replace(/^ready adopted /, ''));
      // Steer mode: the host's table is the only one (the nodes have none).
      expect(report).toMatchObject({ namespacesMade: 1, tablesMade: 1, nodesRemoved: 0 });
      expect(report.made).toContain(`netns ${name}-n1`);
      expect(report.made).toContain(`link host/${name}v1`);
      expect(report.made).toContain(`address ${name}-n2/eth0 192.0.2.1/24`);
      expect(report.made.filter((k: string) => k.includes(`${name}-n0`) || k.includes(`${name}v0`) || k.includes(`${name}v2`))).toEqual([]);
      expect(report.fixed).toEqual([`link host/${name}v0 (${name}v0 is down)`, `link host/${name}v2 (${name}v2 is not marked yet)`, `sysctl ${name}-n2 net.ipv6.conf.default.accept_dad (net.ipv6.conf.default.accept_dad is 1, not 0)`]);
      expect(report.untouched).toBeGreaterThan(5);
      expect(ipj<{ operstate: string; flags: string[] }[]>('-n', host.name!, 'link', 'show', `${name}v0`)[0].flags).toContain('UP');
      expect(ipj<{ ifalias?: string }[]>('-n', host.name!, 'link', 'show', `${name}v2`)[0].ifalias).toBe(`netns-cluster:${name}`);
      expect(ipj<{ ifalias?: string }[]>('-n', `${name}-n2`, 'link', 'show', 'eth0')[0].ifalias).toBe(`netns-cluster:${name}`);
      expect(execFileSync('ip', ['netns', 'exec', `${name}-n2`, 'sysctl', '-n', 'net.ipv6.conf.default.accept_dad'], { encoding: 'utf8' }).trim()).toBe('0');
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

  it("steer: the uplink removed and made again, a chain emptied, an earlier version's bridge table: readActual sees it, adopt repairs it", async () => {
    const name = `${s.prefix}u`;
    const spec = { name, nodes: 3, vip: ['192.0.2.1/24', '2001:db8::1/64'], ports: [{ protocol: 'udp', port: PORT }], mode: 'steer', hostNetns: host.name, uplink: { bridge: 'c0' } };
    const plan = planCluster(resolveSpec(spec as never));
    const table = plan.tables.find((t) => t.netns === undefined)!;
    expect(table).toMatchObject({ family: 'netdev', name: `nc-${name}` });
    const inRules = table.commands.filter((c) => c.cmd === 'addRule' && c.chain === 'in').length;
    const first = await startController(spec);
    first.proc.kill('SIGKILL');
    await once(first.proc, 'exit');
    const nodes = await Promise.all(plan.nodes.map((n) => Netns.open(n.netns)));
    const actual = async () => readActual(plan, host, (x) => nodes.find((n) => n.name === x));
    const nftHost = (...args: string[]) => execFileSync('ip', ['netns', 'exec', host.name!, 'nft', ...args], { encoding: 'utf8' });
    // Packets each node's chain in the host table counted (the per-node counts of steer mode).
    const counts = () => {
      const rules = (JSON.parse(nftHost('-j', 'list', 'table', 'netdev', `nc-${name}`)).nftables as { rule?: { chain: string; expr: { counter?: { packets: number } }[] } }[]).flatMap((x) => (x.rule ? [x.rule] : []));
      return [0, 1, 2].map((k) => rules.filter((r) => r.chain === `node${k}`).reduce((a, r) => a + r.expr.reduce((b, e) => b + (e.counter?.packets ?? 0), 0), 0));
    };
    const responders = await startResponders({ nodes: plan.nodes } as unknown as Cluster);
    try {
      expect(probe(client.name!, flowsFor('bridged', 'udp', [4])).every((r) => typeof r.node === 'number')).toBe(true);
      const counted = counts();
      expect(counted.every((n) => n > 0)).toBe(true);
      expect((await actual()).get(keyOf.table(table))).toEqual({ ok: true });
      // The uplink goes away and comes back (the client's side with it). Linux 6.1 deletes a netdev
      // chain with its device, newer kernels keep it for a device of that name: either way the
      // uplink is off the bridge now, and the table is as planned or seen as different.
      // (The client keeps its MAC, as a client behind a re-made uplink would: the nodes' neighbour
      // entries for it stay right.)
      const clientMac = ipj<{ address: string }[]>('-n', client.name!, 'link', 'show', 'eth0')[0].address;
      execFileSync('ip', ['-n', host.name!, 'link', 'del', 'c0']);
      await wire(client, host, 'bridged');
      execFileSync('ip', ['-n', client.name!, 'link', 'set', 'eth0', 'address', clientMac]);
      const after = await actual();
      expect(after.get(keyOf.uplink(plan.uplink!))).toMatchObject({ ok: false });
      const chainKept = nftHost('list', 'table', 'netdev', `nc-${name}`).includes('chain in');
      expect(after.get(keyOf.table(table))).toEqual(chainKept ? { ok: true } : { ok: false, why: expect.stringContaining(`chain in has 0 rules, not ${inRules}`) });
      // What 6.1 does (it deletes the chain with its device), as far as the rules go, by hand on newer kernels.
      if (chainKept) nftHost('flush', 'chain', 'netdev', `nc-${name}`, 'in');
      // (On 6.1 the egress chain `out` went with the device too.)
      expect((await actual()).get(keyOf.table(table))).toEqual({ ok: false, why: expect.stringContaining(`chain in has 0 rules, not ${inRules}`) });
      // A steer table of an earlier version (a bridge table, marked): it would steer too.
      nftHost('add', 'table', 'bridge', `nc-${name}`, `{ comment "netns-cluster:${name}" ; }`);
      const adopted = await startController(spec, 'adopt');
      try {
        const report = JSON.parse(adopted.line.replace(/^ready adopted /, ''));
        expect(report.fixed).toEqual(expect.arrayContaining([expect.stringMatching(/^uplink c0 /), expect.stringContaining(`nft host netdev nc-${name} (chain in has 0 rules, not ${inRules}`)]));
        const tables = nftHost('list', 'tables');
        expect(tables).toContain(`table netdev nc-${name}`);
        expect(tables).not.toContain(`table bridge nc-${name}`);
        expect(await actual()).toSatisfy((m: Map<string, { ok: boolean }>) => m.get(keyOf.table(table))?.ok === true && m.get(keyOf.uplink(plan.uplink!))?.ok === true);
        // The table was replaced; its per-node counts went on from where they were.
        const carried = counts();
        carried.forEach((n, k) => expect(n, `node ${k}`).toBeGreaterThanOrEqual(counted[k]));
        const seed = resolveSpec(spec as never).seed;
        const got = probe(client.name!, flowsFor('bridged', 'udp', [4]));
        expect(new Set(got.map((r) => r.node))).toEqual(new Set([0, 1, 2]));
        for (const r of got) expect(r.node).toBe(plan.buckets[bucketOf('sourceip', { address: r.from }, 64, seed)]);
        const after = counts();
        [0, 1, 2].forEach((k) => expect(after[k] - carried[k], `node ${k}`).toBe(got.filter((r) => r.node === k).length));
      } finally {
        await stopController(adopted.proc);
      }
    } finally {
      await stopAll(responders);
      for (const n of nodes) await n.close();
    }
  });

  it("steer: a node's port made again has a new index: readActual sees that the host table sends to the old one, adopt points it at the new one", async () => {
    const name = `${s.prefix}p`;
    const spec = { name, nodes: 3, vip: ['192.0.2.1/24', '2001:db8::1/64'], ports: [{ protocol: 'udp', port: PORT }], mode: 'steer', hostNetns: host.name, uplink: { bridge: 'c0' } };
    const plan = planCluster(resolveSpec(spec as never));
    const table = plan.tables.find((t) => t.netns === undefined)!;
    const first = await startController(spec);
    first.proc.kill('SIGKILL');
    await once(first.proc, 'exit');
    const nodes = await Promise.all(plan.nodes.map((n) => Netns.open(n.netns)));
    const actual = async () => readActual(plan, host, (x) => nodes.find((n) => n.name === x));
    const indexOf = () => ipj<{ ifindex: number }[]>('-n', host.name!, 'link', 'show', `${name}v1`)[0].ifindex;
    try {
      expect((await actual()).get(keyOf.table(table))).toEqual({ ok: true });
      const old = indexOf();
      // Node 1's veth goes (its inner end and addresses with it): node 1's chain sends to an index that is gone.
      execFileSync('ip', ['-n', host.name!, 'link', 'del', `${name}v1`]);
      expect((await actual()).get(keyOf.table(table))).toEqual({ ok: false, why: `chain node1 does not send to ${name}v1 (not there)` });
      const adopted = await startController(spec, 'adopt');
      try {
        const report = JSON.parse(adopted.line.replace(/^ready adopted /, ''));
        expect(report.made).toContain(`link host/${name}v1`);
        expect(report.fixed).toContain(`nft host netdev nc-${name} (chain node1 does not send to ${name}v1 (not there))`);
        expect(indexOf()).not.toBe(old);
        expect((await actual()).get(keyOf.table(table))).toEqual({ ok: true });
        const responders = await startResponders({ nodes: plan.nodes } as unknown as Cluster);
        try {
          const seed = resolveSpec(spec as never).seed;
          const got = probe(client.name!, flowsFor('bridged', 'udp', [4]));
          expect(new Set(got.map((r) => r.node))).toEqual(new Set([0, 1, 2]));
          for (const r of got) expect(r.node).toBe(plan.buckets[bucketOf('sourceip', { address: r.from }, 64, seed)]);
        } finally {
          await stopAll(responders);
        }
      } finally {
        await stopController(adopted.proc);
      }
    } finally {
      for (const n of nodes) await n.close();
    }
  });

  it('a routed, dual-stack cluster found whole is adopted without a change; a lost route is made again', async () => {
    const [rc, rh] = await s.make('rc', 'rh');
    await wire(rc, rh, 'routed');
    // The host has default routes of its own (the kernel lists them as 'default').
    execFileSync('ip', ['-n', rh.name!, 'route', 'add', 'default', 'via', '203.0.113.2']);
    execFileSync('ip', ['-n', rh.name!, '-6', 'route', 'add', 'default', 'via', '2001:db8:c::2']);
    const name = `${s.prefix}o`;
    const spec = { name, nodes: 2, vip: ['192.0.2.1/24', '2001:db8::1/64'], ports: [{ protocol: 'udp', port: PORT }], mode: 'flood', hostNetns: rh.name, uplink: { routed: { via: 'c0' } } };
    const plan = planCluster(resolveSpec(spec as never));
    const first = await startController(spec);
    first.proc.kill('SIGKILL');
    await once(first.proc, 'exit');
    const again = await startController(spec, 'adopt');
    expect(JSON.parse(again.line.replace(/^ready adopted /, ''))).toMatchObject({ made: [], fixed: [] });
    again.proc.kill('SIGKILL');
    await once(again.proc, 'exit');
    // One planned route deleted by hand: the next adopt makes exactly it.
    const route = plan.routes[0];
    expect(route).toBeDefined();
    const where = route.netns ?? rh.name!;
    execFileSync('ip', ['-n', where, 'route', 'del', route.destination, ...(route.via ? ['via', route.via] : []), ...(route.dev ? ['dev', route.dev] : [])]);
    const third = await startController(spec, 'adopt');
    try {
      const report = JSON.parse(third.line.replace(/^ready adopted /, ''));
      expect(report.made).toEqual([expect.stringMatching(/^route /)]);
      expect(report.fixed).toEqual([]);
    } finally {
      await stopController(third.proc);
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
