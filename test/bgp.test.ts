// BGP across hosts, for real: a router namespace running BIRD 2 with kernel ECMP (L4 hash), three
// host namespaces each with a 2-node cluster whose controller (`netns-cluster up`, a process of its
// own) runs BIRD through the library and peers with the router, and 64 client flows behind the
// router (examples/bgp-sandbox.ts). Measured: the spread, the drain, the gap after a controller's
// SIGKILL, the router's reaction to a host going silent (BFD), and the fraction of the surviving
// hosts' flows that move when a host leaves (plain ECMP rehashes). Numbers are printed; the only
// time limits are generous bounds tied to the hold time.
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BgpSandbox, owners, VIP, type FlowRecord } from '../examples/bgp-sandbox.js';
import { createCluster, runtimeDir, type BgpStatus, type Cluster } from '../lib/index.js';
import { CLI, describeAsRoot, processesWith, runCli, uniquePrefix } from './helpers.js';

const HOLD = 9;
const BFD_MS = 200;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const hostOf = (who: string | null) => (who === null ? null : Number(/^h(\d+)n/.exec(who)![1]));
const birdSocket = (cluster: string) => join(runtimeDir(cluster), 'bird.ctl');

/** Longest run of unanswered datagrams of a flow, in ms (from the first unanswered one's send time to the next answered one's). */
function longestGap(r: FlowRecord): number {
  let worst = 0;
  let since: number | undefined;
  for (const [t, who] of r) {
    if (who === null) since ??= t;
    else if (since !== undefined) {
      worst = Math.max(worst, t - since);
      since = undefined;
    }
  }
  if (since !== undefined) worst = Infinity;
  return worst;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** The router's kernel route to the VIP: its next hops (the hosts' addresses). */
function kernelNextHops(router: string): string[] {
  const routes = JSON.parse(execFileSync('ip', ['-n', router, '-j', 'route', 'show', `${VIP}/32`], { encoding: 'utf8' }) || '[]') as { gateway?: string; nexthops?: { gateway: string }[] }[];
  return routes.flatMap((r) => (r.nexthops ? r.nexthops.map((n) => n.gateway) : r.gateway ? [r.gateway] : [])).sort();
}

describeAsRoot('BGP: the VIP announced from every host with live nodes, ECMP at the router', () => {
  const sb = new BgpSandbox({ prefix: uniquePrefix('bg'), hosts: 3, nodes: 2, cli: CLI, holdTime: HOLD, keepalive: 3, bfdIntervalMs: BFD_MS });
  const addr = (i: number) => `10.200.${i}.2`;
  const measured: Record<string, unknown> = {};

  beforeAll(async () => {
    await sb.build();
    await Promise.all([sb.startController(0), sb.startController(1)]);
  }, 90_000);

  afterAll(async () => {
    console.log(`BGP measurements: ${JSON.stringify(measured, null, 2)}`);
    await sb.cleanup();
    // Nothing of ours is left: no BIRD, no namespace.
    expect(sb.hosts.flatMap((h) => processesWith(birdSocket(h.cluster)))).toEqual([]);
    expect(processesWith(sb.routerSocket)).toEqual([]);
  }, 90_000);

  it('announces nothing from a cluster with no live node, announces once one is up, withdraws when none is and on close', async () => {
    // Hosts 0 and 1 (their controllers are ready; their sessions may still be coming up).
    await sb.waitPaths([addr(0), addr(1)]);
    // Host 2's cluster through the library, in this process.
    let c: Cluster | undefined = await createCluster(sb.clusterSpec(2) as never);
    try {
      const established = await waitFor('the session of host 2', async () => {
        const s = await c!.announcement();
        return s?.peers[0].session === 'Established' ? s : undefined;
      });
      // Built, BIRD peering, no service started: no node serves, nothing is announced.
      expect(established).toMatchObject({ announcing: false, reason: 'no node is up', prefixes: [`${VIP}/32`] });
      expect(established.peers[0].announced).toEqual([]);
      await sleep(500);
      expect(await sb.routerPaths()).toEqual([addr(0), addr(1)]);

      await c.start();
      await sb.waitPaths([addr(0), addr(1), addr(2)]);
      const on = (await c.announcement())!;
      expect(on).toMatchObject({ announcing: true, reason: '2 nodes up' });
      expect(on.peers[0].announced).toEqual([`${VIP}/32`]);
      expect(Date.parse(on.lastChange!)).toBeGreaterThan(Date.now() - 60_000);

      await c.setNodeState(0, 'down');
      expect((await c.announcement())!.announcing).toBe(true);
      await c.setNodeState(1, 'down');
      await sb.waitPaths([addr(0), addr(1)]);
      expect((await c.announcement())!).toMatchObject({ announcing: false, reason: 'no node is up' });
      await c.setNodeState(0, 'up');
      await sb.waitPaths([addr(0), addr(1), addr(2)]);

      // BIRD crashes: the route goes with its session; the supervisor restarts it and it is told again.
      const [first] = processesWith(birdSocket(c.name));
      process.kill(first, 'SIGKILL');
      await sb.waitPaths([addr(0), addr(1)]);
      await sb.waitPaths([addr(0), addr(1), addr(2)]);
      expect((await c.announcement())!.bird.restarts).toBe(1);

      const bird = processesWith(birdSocket(c.name));
      expect(bird).toHaveLength(1);
      // BIRD runs in the host namespace, in the cluster's cgroup, with its socket in the 0700 runtime directory.
      expect(readFileSync(`/proc/${bird[0]}/cgroup`, 'utf8')).toContain(`/netns-cluster/${c.name}/host-bird`);
      expect(execFileSync('ip', ['netns', 'identify', String(bird[0])], { encoding: 'utf8' }).trim()).toBe(sb.hosts[2].netns);
      expect(execFileSync('stat', ['-c', '%a', runtimeDir(c.name)], { encoding: 'utf8' }).trim()).toBe('700');

      const closing = c.close();
      c = undefined;
      await closing;
      await sb.waitPaths([addr(0), addr(1)]);
      expect(processesWith(birdSocket(sb.hosts[2].cluster))).toEqual([]);
    } finally {
      await c?.close();
    }
  }, 90_000);

  let before: (string | null)[] = [];
  it('every flow from 64 sources is answered by exactly one node across all hosts, the same each time; every host gets a share', async () => {
    await sb.startController(2);
    await sb.waitPaths([addr(0), addr(1), addr(2)]);
    expect(kernelNextHops(sb.router)).toEqual([addr(0), addr(1), addr(2)]);
    const rounds = [await sb.traffic({ probe: 3 }), await sb.traffic({ probe: 2 })];
    for (const r of rounds) for (const f of r) expect(f.every(([, who]) => who !== null)).toBe(true);
    const answers = sb.flows.map((_, i) => new Set(rounds.flatMap((r) => r[i].map(([, who]) => who))));
    // One node per flow, the same in every round.
    expect(answers.filter((s) => s.size !== 1)).toEqual([]);
    before = owners(rounds[0]);
    const perHost = [0, 1, 2].map((h) => before.filter((w) => hostOf(w) === h).length);
    measured.flowsPerHost = perHost;
    measured.flowsPerNode = Object.fromEntries([...new Set(before)].sort().map((w) => [w, before.filter((x) => x === w).length]));
    expect(perHost.every((n) => n > 0)).toBe(true);

    // status shows the BGP state, from BIRD's control socket (via the controller's status file).
    const st = await runCli('status', sb.hosts[0].cluster, '-j');
    expect(st.code).toBe(0);
    const bgp = (JSON.parse(st.stdout) as { bgp: BgpStatus }).bgp;
    expect(bgp).toMatchObject({ announcing: true, drained: false, prefixes: [`${VIP}/32`] });
    expect(bgp.peers[0]).toMatchObject({ address: '10.200.0.1', as: 65000, state: 'up', session: 'Established', announced: [`${VIP}/32`] });
    const table = await runCli('status', sb.hosts[0].cluster);
    expect(table.stdout).toMatch(/BGP: VIP announced \(192\.0\.2\.1\/32\)/);
    expect(table.stdout).toMatch(/peer0\s+10\.200\.0\.1\s+65000\s+up\s+Established/);
    const prom = await runCli('status', sb.hosts[0].cluster, '--format', 'prometheus');
    expect(prom.stdout).toContain(`netns_cluster_bgp_session_established{cluster="${sb.hosts[0].cluster}",peer="peer0",address="10.200.0.1",as="65000"} 1`);
    expect(prom.stdout).toContain(`netns_cluster_bgp_announcing{cluster="${sb.hosts[0].cluster}"} 1`);
  }, 90_000);

  it("what moves when a host leaves: the router's plain multipath route against a resilient next-hop group (measured, kernel only)", async () => {
    // BIRD's kernel protocol steps aside; the test installs the routes itself with iproute2.
    const ip = (...args: string[]) => execFileSync('ip', ['-n', sb.router, ...args], { encoding: 'utf8' });
    const kernel = (await sb.routerCommand('show protocols')).map((l) => l.text.split(/\s+/)[0]).find((n) => n.startsWith('kernel'))!;
    await sb.routerCommand(`disable ${kernel}`);
    const survivorsMoved = async (install: (hosts: number[]) => void): Promise<{ moved: number; of: number; lost: number }> => {
      install([0, 1, 2]);
      const base = owners(await sb.traffic({ probe: 2 }));
      install([1, 2]);
      const r = await sb.traffic({ probe: 2 });
      const after = owners(r);
      const survivors = sb.flows.map((_, i) => i).filter((i) => hostOf(base[i]) !== 0);
      return {
        moved: survivors.filter((i) => hostOf(after[i]) !== hostOf(base[i])).length,
        of: survivors.length,
        lost: after.filter((w) => w === null).length,
      };
    };
    try {
      const plain = await survivorsMoved((hosts) => ip('route', 'replace', `${VIP}/32`, ...hosts.flatMap((h) => ['nexthop', 'via', addr(h), 'dev', `r${h}`])));
      ip('route', 'del', `${VIP}/32`);
      for (const h of [0, 1, 2]) ip('nexthop', 'add', 'id', String(h + 1), 'via', addr(h), 'dev', `r${h}`);
      const resilient = await survivorsMoved((hosts) => {
        const group = hosts.map((h) => h + 1).join('/');
        ip('nexthop', hosts.length === 3 ? 'add' : 'replace', 'id', '100', 'group', group, 'type', 'resilient', 'buckets', '128', 'idle_timer', '0');
        if (hosts.length === 3) ip('route', 'replace', `${VIP}/32`, 'nhid', '100');
      });
      measured.survivorFlowsMovedWhenHost0Left = { plainMultipath: plain, resilientGroup: resilient };
      expect(plain.lost + resilient.lost).toBe(0);
      // A resilient group reassigns only the leaving member's buckets: nobody else moves.
      expect(resilient.moved).toBe(0);
    } finally {
      ip('route', 'del', `${VIP}/32`);
      execFileSync('ip', ['-n', sb.router, 'nexthop', 'flush']);
      await sb.routerCommand(`enable ${kernel}`);
    }
    await waitFor('the kernel route back from BIRD', () => (kernelNextHops(sb.router).length === 3 ? true : undefined));
  }, 90_000);

  it('drain: the route is withdrawn, no new flow reaches the drained host, nothing is lost, then it stops', async () => {
    const stream = sb.traffic({ rate: 20, durationMs: 8000 });
    await sleep(1000);
    const drained = runCli('drain', sb.hosts[0].cluster, '--wait', '3');
    const withdrawMs = await sb.waitPaths([addr(1), addr(2)]);
    measured.drainWithdrawalSeenAtRouterMs = Math.round(withdrawMs);
    // New flows (other source ports) after the withdrawal: none reaches host 0, which still runs.
    const fresh = await sb.traffic({ probe: 2, flows: sb.flows.map((f) => ({ ...f, port: f.port + 1000 })) });
    expect(owners(fresh).filter((w) => hostOf(w) === 0)).toEqual([]);
    expect(owners(fresh).every((w) => w !== null)).toBe(true);
    const d = await drained;
    expect(d.code, d.stderr).toBe(0);
    expect(d.stderr).toMatch(/VIP withdrawn/);
    expect(sb.hosts[0].controller!.exitCode ?? (await once(sb.hosts[0].controller!, 'exit'))[0]).toBe(0);
    const r = await stream;
    // Flows on the other hosts lost nothing; flows on host 0 moved to them while it still served.
    const lost = (i: number) => r[i].filter(([, who]) => who === null).length;
    const survivors = sb.flows.map((_, i) => i).filter((i) => hostOf(before[i]) !== 0);
    const survivorLosses = survivors.flatMap((i) => r[i].flatMap(([t, who], seq) => (who === null ? [`flow ${i} datagram ${seq} sent at ${t} ms`] : [])));
    expect(survivorLosses).toEqual([]);
    measured.drainLostOnDrainedHostFlows = sb.flows.map((_, i) => i).filter((i) => hostOf(before[i]) === 0).map(lost).reduce((a, b) => a + b, 0);
    const after = owners(r);
    expect(sb.flows.map((_, i) => i).filter((i) => hostOf(after[i]) === 0)).toEqual([]);
    const moved = survivors.filter((i) => hostOf(after[i]) !== hostOf(before[i])).length;
    measured.drainSurvivorFlowsMoved = `${moved}/${survivors.length} (${((100 * moved) / survivors.length).toFixed(0)}%)`;
    expect(processesWith(birdSocket(sb.hosts[0].cluster))).toEqual([]);
  }, 90_000);

  it("controller SIGKILL: its BIRD dies with it, the router withdraws the route, and the client-visible gap is measured", async () => {
    await sb.startController(0);
    await sb.waitPaths([addr(0), addr(1), addr(2)]);
    const base = owners(await sb.traffic({ probe: 2 }));
    const victim = sb.hosts[1];
    const stream = sb.traffic({ rate: 50, durationMs: 6000 });
    await sleep(1500);
    const t0 = performance.now();
    victim.controller!.kill('SIGKILL');
    const withdrawMs = await sb.waitPaths([addr(0), addr(2)], (HOLD + 10) * 1000);
    measured.sigkillWithdrawalSeenAtRouterMs = Math.round(withdrawMs);
    // Well within the hold time: the dying BIRD's TCP session closes at once.
    expect(withdrawMs).toBeLessThan((HOLD + 5) * 1000);
    expect(performance.now() - t0).toBeLessThan((HOLD + 5) * 1000);
    expect(processesWith(birdSocket(victim.cluster))).toEqual([]);
    const r = await stream;
    const onVictim = sb.flows.map((_, i) => i).filter((i) => hostOf(base[i]) === 1);
    const gaps = onVictim.map((i) => longestGap(r[i]));
    measured.sigkillGapMs = { flows: onVictim.length, median: Math.round(median(gaps)), max: Math.round(Math.max(...gaps)) };
    expect(gaps.every((g) => g < (HOLD + 5) * 1000)).toBe(true);
    const after = owners(r);
    expect(after.every((w) => w !== null && hostOf(w) !== 1)).toBe(true);
    const survivors = sb.flows.map((_, i) => i).filter((i) => hostOf(base[i]) !== 1);
    const moved = survivors.filter((i) => hostOf(after[i]) !== hostOf(base[i])).length;
    measured.sigkillSurvivorFlowsMoved = `${moved}/${survivors.length} (${((100 * moved) / survivors.length).toFixed(0)}%)`;
    // The surviving hosts' flows: a datagram may be lost while the router's kernel route is
    // replaced (BIRD deletes and adds it), nothing more.
    const survivorGaps = survivors.map((i) => longestGap(r[i])).filter((g) => g > 0);
    measured.sigkillSurvivorFlowsWithAGap = { flows: survivorGaps.length, of: survivors.length, maxMs: Math.round(Math.max(0, ...survivorGaps)) };
    expect(survivorGaps.every((g) => g < 1000)).toBe(true);
    // A new controller adopts what the dead one left, with a BIRD of its own: the host is back.
    await sb.startController(1);
    await sb.waitPaths([addr(0), addr(1), addr(2)]);
    const down = await runCli('down', victim.cluster);
    expect(down.code, down.stderr).toBe(0);
    await sb.waitPaths([addr(0), addr(2)]);
  }, 90_000);

  it('a host that goes silent (its link drops everything) is dropped by BFD, well within the hold time', async () => {
    const host = sb.hosts[2];
    const table = `${sb.o.prefix}silent`;
    const t0 = performance.now();
    // In the host's namespace: everything in and out of its link to the router is dropped.
    execFileSync('ip', ['netns', 'exec', host.netns, 'nft', '-f', '-'], {
      input: `table inet ${table} {\n chain in { type filter hook input priority -300; iifname "eth0" drop; }\n chain out { type filter hook output priority -300; oifname "eth0" drop; }\n}\n`,
    });
    try {
      const ms = await sb.waitPaths([addr(0)], (HOLD + 10) * 1000);
      measured.silentHostWithdrawalMs = { bfd: `${BFD_MS} ms × 3`, ms: Math.round(ms), holdTime: HOLD * 1000 };
      expect(performance.now() - t0).toBeLessThan(HOLD * 1000);
    } finally {
      execFileSync('ip', ['netns', 'exec', host.netns, 'nft', 'delete', 'table', 'inet', table]);
    }
    await sb.waitPaths([addr(0), addr(2)], 30_000);
  }, 90_000);

  it('a wrong peer AS is reported clearly: the session never comes up and nothing is announced', async () => {
    const h = sb.hosts[1];
    // No service: every node is live, so only the session keeps the VIP from being announced.
    const { service, announce, ...spec } = sb.clusterSpec(1) as { service: unknown; announce: { bgp: object } };
    void service;
    const c = await createCluster({ ...spec, announce: { bgp: { ...announce.bgp, peers: [{ address: '10.200.1.1', as: 65099 }] } } } as never);
    const lines: string[] = [];
    c.on('log', (l) => lines.push(l.line));
    try {
      const s = await waitFor('the wrong-AS error', async () => {
        const a = await c.announcement();
        return a?.peers[0].lastError ? a : undefined;
      });
      expect(s.peers[0].lastError).toMatch(/Bad peer AS/);
      expect(s.peers[0].session).not.toBe('Established');
      expect(s.peers[0].announced).toEqual([]);
      expect(await sb.routerPaths()).toEqual([addr(0), addr(2)]);
      // BIRD's own log says so too (the controller prints it, '[host] bird: …').
      expect(lines.some((l) => l.startsWith('bird: ') && /Bad peer AS/.test(l))).toBe(true);
    } finally {
      await c.close();
    }
    expect(existsSync(birdSocket(h.cluster))).toBe(false);
  }, 60_000);
});
