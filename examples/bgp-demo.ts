/**
 * The multi-host demo (`netns-cluster demo --hosts 3 --nodes 2`): a router namespace running BIRD
 * with ECMP, H host namespaces each running a cluster whose controller announces the VIP with BGP,
 * and clients behind the router (examples/bgp-sandbox.ts). Shows which host and node serves each
 * client, drains one host (the route is withdrawn, its clients move, nothing is lost), SIGKILLs
 * another host's controller (its BIRD dies with it, the router drops its path, its clients move
 * after a short gap), and removes everything.
 */
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { BgpSandbox, owners, VIP, type FlowRecord } from './bgp-sandbox.js';

const say = (s = '') => console.log(s);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Who serves each client: a grid of `source → h<host>n<node>`. */
function grid(sb: BgpSandbox, who: (string | null)[], before?: (string | null)[], shown = 24): void {
  const cells = sb.flows.slice(0, shown).map((f, i) => {
    const moved = before && before[i] !== who[i];
    return `${f.from.padEnd(13)}→ ${(who[i] ?? 'none').padEnd(5)}${moved ? `(was ${before![i]})` : ''}`.padEnd(30);
  });
  for (let i = 0; i < cells.length; i += 3) say(`  ${cells.slice(i, i + 3).join('  ')}`);
  const count = new Map<string, number>();
  for (const w of who) count.set(w ?? 'none', (count.get(w ?? 'none') ?? 0) + 1);
  say(`  all ${who.length} clients: ${[...count].sort().map(([k, n]) => `${k} ${n}`).join(', ')}`);
}

async function routes(sb: BgpSandbox, title: string): Promise<void> {
  const paths = await sb.routerPaths();
  say(`  router: ${VIP}/32 ${paths.length ? `ECMP via ${paths.map((p) => `h${p.split('.')[2]} (${p})`).join(', ')}` : 'has no route'}`);
  void title;
}

const lost = (r: FlowRecord[], idx: number[]) => idx.reduce((a, i) => a + r[i].filter(([, w]) => w === null).length, 0);
const sent = (r: FlowRecord[], idx: number[]) => idx.reduce((a, i) => a + r[i].length, 0);
const hostOf = (w: string | null) => (w === null ? -1 : Number(/^h(\d+)/.exec(w)![1]));

function gap(r: FlowRecord): number {
  let worst = 0;
  let since: number | undefined;
  for (const [t, w] of r) {
    if (w === null) since ??= t;
    else if (since !== undefined) {
      worst = Math.max(worst, t - since);
      since = undefined;
    }
  }
  return worst;
}

export async function bgpDemo(o: { hosts: number; nodes: number }): Promise<void> {
  const prefix = `bdemo${process.pid % 1000}`;
  const cli = fileURLToPath(new URL('../lib/cli/main.js', import.meta.url));
  const sb = new BgpSandbox({ prefix, hosts: o.hosts, nodes: o.nodes, cli, holdTime: 9, keepalive: 3, bfdIntervalMs: 200 });
  let interrupted = false;
  process.once('SIGINT', () => {
    interrupted = true;
    say('\ninterrupted: cleaning up');
    void sb.cleanup().then(() => process.exit(130));
  });
  const addr = (i: number) => `10.200.${i}.2`;
  try {
    say(`netns-cluster BGP demo: ${o.hosts} hosts × ${o.nodes} nodes behind one router, VIP ${VIP}, ${sb.flows.length} clients\n`);
    let t = performance.now();
    process.stdout.write('  sandbox: router (BIRD 2, ECMP, L4 hash), hosts, clients … ');
    await sb.build();
    say(`done (${(performance.now() - t).toFixed(0)} ms)`);
    t = performance.now();
    process.stdout.write(`  ${o.hosts} controllers ('netns-cluster up'), each running BIRD in its host namespace … `);
    await Promise.all(sb.hosts.map((_, i) => sb.startController(i)));
    await sb.waitPaths(sb.hosts.map((_, i) => addr(i)));
    say(`done (${(performance.now() - t).toFixed(0)} ms)`);
    await routes(sb, 'start');

    const first = owners(await sb.traffic({ probe: 2 }));
    say('\nWho serves whom (client → host/node):');
    grid(sb, first);

    // Drain host 0 while every client sends 20 datagrams/s.
    const drained = 0;
    say(`\nDrain: 'netns-cluster drain ${sb.hosts[drained].cluster} --wait 2' while every client sends 20 datagrams/s`);
    const stream = sb.traffic({ rate: 20, durationMs: 7000 });
    await sleep(1000);
    const d = spawn(process.execPath, [cli, 'drain', sb.hosts[drained].cluster, '--wait', '2'], { stdio: ['ignore', 'ignore', 'pipe'] });
    d.stderr!.on('data', (b: Buffer) => String(b).split('\n').filter(Boolean).forEach((l) => say(`    drain: ${l}`)));
    const ms = await sb.waitPaths(sb.hosts.map((_, i) => i).filter((i) => i !== drained).map(addr));
    say(`  the router dropped host ${drained}'s path ${ms.toFixed(0)} ms after the drain began`);
    await routes(sb, 'drained');
    await once(d, 'exit');
    const r1 = await stream;
    const after1 = owners(r1);
    const all = sb.flows.map((_, i) => i);
    const survivors1 = all.filter((i) => hostOf(first[i]) !== drained);
    const moved1 = survivors1.filter((i) => hostOf(after1[i]) !== hostOf(first[i])).length;
    say(`  datagrams lost: ${lost(r1, all)} of ${sent(r1, all)}; clients of the other hosts that moved: ${moved1} of ${survivors1.length} (plain ECMP rehashes)`);
    grid(sb, after1, first);

    if (o.hosts < 3) {
      process.stdout.write(`\n  host ${drained} comes back ('netns-cluster up') … `);
      await sb.startController(drained);
      await sb.waitPaths(sb.hosts.map((_, i) => addr(i)));
      say('done');
    }
    const base = owners(await sb.traffic({ probe: 2 }));
    const victim = 1;
    say(`\nCrash: SIGKILL to host ${victim}'s controller while every client sends 50 datagrams/s`);
    const stream2 = sb.traffic({ rate: 50, durationMs: 5000 });
    await sleep(1500);
    const t0 = performance.now();
    sb.hosts[victim].controller!.kill('SIGKILL');
    const left = sb.hosts.map((_, i) => i).filter((i) => i !== victim && (o.hosts < 3 || i !== drained));
    const ms2 = await sb.waitPaths(left.map(addr));
    say(`  its BIRD died with it (parent-death signal); the router dropped its path ${(performance.now() - t0).toFixed(0)} ms after the kill (waited ${ms2.toFixed(0)} ms)`);
    await routes(sb, 'crashed');
    const r2 = await stream2;
    const after2 = owners(r2);
    const onVictim = all.filter((i) => hostOf(base[i]) === victim);
    const gaps = onVictim.map((i) => gap(r2[i])).sort((a, b) => a - b);
    const survivors2 = all.filter((i) => hostOf(base[i]) !== victim);
    const moved2 = survivors2.filter((i) => hostOf(after2[i]) !== hostOf(base[i])).length;
    say(
      `  the ${onVictim.length} clients of host ${victim} saw a gap of ${gaps.length ? `${gaps[Math.floor(gaps.length / 2)].toFixed(0)} ms (median), ${gaps[gaps.length - 1].toFixed(0)} ms (max)` : '-'}; ` +
        `clients of the other hosts that moved: ${moved2} of ${survivors2.length}`,
    );
    grid(sb, after2, base);
    say('\nStatus of a surviving host (netns-cluster status):');
    const st = spawn(process.execPath, [cli, 'status', sb.hosts[left[0]].cluster], { stdio: ['ignore', 'inherit', 'ignore'] });
    await once(st, 'exit');

    t = performance.now();
    process.stdout.write('\n  teardown: controllers, clusters, BIRDs, sandbox … ');
    await sb.cleanup();
    say(`done (${(performance.now() - t).toFixed(0)} ms)`);
  } catch (e) {
    if (interrupted) return;
    console.error(`\ndemo failed: ${(e as Error).message}`);
    await sb.cleanup().catch(() => {});
    process.exit(1);
  }
}
