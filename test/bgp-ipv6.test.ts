// BGP with a dual-stack VIP: the IPv4 VIP as /32 over IPv4 sessions and the IPv6 VIP as /128 over
// IPv6 sessions, each installed by the router as an ECMP route (L4 hash for both families), with
// real IPv4 and IPv6 traffic from 2 × 48 sources (examples/bgp-sandbox.ts with ipv6).
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BgpSandbox, owners, VIP6 } from '../examples/bgp-sandbox.js';
import type { BgpStatus } from '../lib/index.js';
import { CLI, describeAsRoot, runCli, uniquePrefix } from './helpers.js';

describeAsRoot('BGP with a dual-stack VIP', () => {
  const sb = new BgpSandbox({ prefix: uniquePrefix('b6'), hosts: 2, nodes: 1, cli: CLI, flows: 48, ipv6: true });
  const v4 = ['10.200.0.2', '10.200.1.2'];
  const v6 = ['fd00:200:1::2', 'fd00:200::2']; // sorted as strings

  beforeAll(async () => {
    await sb.build();
    await Promise.all([sb.startController(0), sb.startController(1)]);
  }, 90_000);
  afterAll(() => sb.cleanup(), 90_000);

  it('announces /32 and /128 over the sessions of their family; every flow of both families is answered by one node, both hosts get a share', async () => {
    await sb.waitPaths(v4);
    await sb.waitPaths(v6, 30_000, 6);
    const routes = JSON.parse(execFileSync('ip', ['-n', sb.router, '-6', '-j', 'route', 'show', `${VIP6}/128`], { encoding: 'utf8' })) as { nexthops?: { gateway: string }[] }[];
    expect(routes[0].nexthops?.map((n) => n.gateway).sort()).toEqual(v6);
    const rounds = [await sb.traffic({ probe: 2 }), await sb.traffic({ probe: 2 })];
    const answers = sb.flows.map((_, i) => new Set(rounds.flatMap((r) => r[i].map(([, who]) => who))));
    expect(answers.filter((a) => a.size !== 1 || a.has(null))).toEqual([]);
    const who = owners(rounds[0]);
    for (const fam of [4, 6]) {
      const hosts = new Set(sb.flows.flatMap((f, i) => ((f.to.includes(':') ? 6 : 4) === fam ? [who[i]!.slice(0, 2)] : [])));
      expect([...hosts].sort()).toEqual(['h0', 'h1']);
    }
    const st = await runCli('status', sb.hosts[0].cluster, '-j');
    const bgp = (JSON.parse(st.stdout) as { bgp: BgpStatus }).bgp;
    expect(bgp.prefixes).toEqual(['192.0.2.1/32', '2001:db8::1/128']);
    expect(bgp.peers.map((p) => [p.address, p.session, p.announced])).toEqual([
      ['10.200.0.1', 'Established', ['192.0.2.1/32']],
      ['fd00:200::1', 'Established', ['2001:db8::1/128']],
    ]);
  }, 90_000);

  it('without BFD, a host that goes silent is dropped after the hold time (measured)', async () => {
    const host = sb.hosts[1];
    const table = `${sb.o.prefix}silent`;
    const t0 = performance.now();
    execFileSync('ip', ['netns', 'exec', host.netns, 'nft', '-f', '-'], {
      input: `table inet ${table} {\n chain in { type filter hook input priority -300; iifname "eth0" drop; }\n chain out { type filter hook output priority -300; oifname "eth0" drop; }\n}\n`,
    });
    let ms: number;
    try {
      await sb.waitPaths([v4[0]], 30_000);
      ms = performance.now() - t0;
    } finally {
      execFileSync('ip', ['netns', 'exec', host.netns, 'nft', 'delete', 'table', 'inet', table]);
    }
    console.log(`silent host without BFD: the router dropped it after ${Math.round(ms)} ms (hold time 9000 ms)`);
    expect(ms).toBeLessThan((9 + 5) * 1000);
    // The session comes back once the host can be heard again.
    await sb.waitPaths(v4, 60_000);
  }, 120_000);

  it('a stopped host withdraws both prefixes', async () => {
    const down = await runCli('down', sb.hosts[1].cluster);
    expect(down.code, down.stderr).toBe(0);
    await sb.waitPaths([v4[0]]);
    await sb.waitPaths(['fd00:200::2'], 30_000, 6);
    expect(owners(await sb.traffic({ probe: 2 })).every((w) => w?.startsWith('h0'))).toBe(true);
  }, 90_000);
});
