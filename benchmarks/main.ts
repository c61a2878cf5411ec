/**
 * The benchmark harness ("The benchmark harness" issue): `npm run bench` / `node dist/benchmarks/main.js`.
 *
 *   1–3. setup/teardown latency of the complete data plane, steer and flood, N = 1, 16, 64, 256: the floor
 *        (benchmarks/floor.c) vs netns-cluster vs classic bash vs ip -batch + nft -f, interleaved in the
 *        same run, with createCluster's phases, and 4 clusters created concurrently
 *        (benchmarks/cluster-setup.ts, benchmarks/setup-floor.ts);
 *   4.   data plane: UDP packets/s delivered to the application and TCP connections/s, single plain
 *        node vs steer/flood N = 2, 4 (benchmarks/traffic.ts, C tools in benchmarks/blast.c);
 *   4b.  data plane cost: kernel ns per delivered packet at a fixed offered load, plain bridge vs
 *        steer/flood N = 1, 2, 4, 8, with perf's top symbols (benchmarks/dataplane.ts; --pps, --dp-reps);
 *   5.   OpenVPN: iperf3 through K = 4 real tunnels, 1 node vs 2 nodes, per-node CPU
 *        (benchmarks/openvpn.ts; --no-openvpn skips it);
 *   3b.  CLUSTERIP (--only clusterip, not in the default run): classic bash with `iptables -j CLUSTERIP`
 *        vs createCluster with backend 'iptables', N = 1, 16 (benchmarks/clusterip.ts); skipped where the
 *        kernel has no CLUSTERIP target (Linux >= 6.3); meant for the 6.1 guest (scripts/kernel-guest.sh);
 *        printed only (a guest cannot keep files), copied by hand into benchmarks/results/clusterip-guest.md.
 *   6.   results: benchmarks/results/bench-<date>.json + latest.json, latest.md, *.svg (benchmarks/report.ts);
 *        --quick and --only runs write latest-<tag>.* and <tag>-*.svg instead, never clobbering the full run's.
 *
 * Usage: node dist/benchmarks/main.js [--quick] [--sizes 1,16,64,256] [--modes steer,flood]
 *          [--reps 7] [--duration 3] [--only setup,dataplane,traffic,openvpn,clusterip] [--no-openvpn] [--openvpn-rounds 2]
 *          [--pps 25000] [--dp-reps 5] [--dp-sizes 1,2,4,8] [--dp-variants] [--dp-conntrack] [--dp-min-samples 0.97]
 *   --quick: sizes 1,16 (setup still 7 reps), traffic 1 s, N=2 only, OpenVPN 2 s, data plane N = 1, 2
 *            with 1 s windows and 1 repetition (CI smoke).
 *   --render benchmarks/results/latest.json: rewrite latest.md and the SVGs from a results file.
 * Everything runs in namespaces named `nb<pid>-*`; they are all deleted at the end, on error, and on
 * SIGINT/SIGTERM/SIGHUP.
 * @module
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { basename, dirname, join } from 'node:path';
import { benchmarkConcurrent, benchmarkSetup, createEnvironment, type ConcurrentResult, type Mode, type SetupResult } from './cluster-setup.js';
import { benchmarkTraffic, type TrafficResult } from './traffic.js';
import { benchmarkDataplane, conntrackVariants, iptablesConfigs, perfWorks, variantConfigs, type DataplaneResult } from './dataplane.js';
import { benchmarkClusterip, renderClusterip } from './clusterip.js';
import { benchmarkOpenvpn, type OpenvpnResult } from './openvpn.js';
import { renderMarkdown, renderSvgs } from './report.js';
import { Interrupted, NAME, claimPrefix, cleanup, installSignalHandlers, isStopping, leftBehind, machineFacts, packageRoot } from './common.js';

export interface Options {
  quick: boolean;
  sizes: number[];
  modes: Mode[];
  reps: number;
  duration: number;
  only: Set<string>;
  openvpnRounds: number;
  /** Data plane cost: offered load (packets/s) and repetitions. */
  pps: number;
  dpReps: number;
  dpSizes?: number[];
  /** Also measure rule variants (benchmarks/dataplane.ts variantConfigs) at each measured N > 1. */
  dpVariants: boolean;
  /** Also measure the conntrack variants (benchmarks/dataplane.ts conntrackVariants) at N = 4. */
  dpConntrack?: boolean;
  /** The share of perf samples a window must have (benchmarks/dataplane.ts minSampleShare). */
  dpMinSamples?: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { quick: false, sizes: [1, 16, 64, 256], modes: ['steer', 'flood'], reps: 7, duration: 3, openvpnRounds: 2, pps: 25_000, dpReps: 5, dpVariants: false, only: new Set(['setup', 'dataplane', 'traffic', 'openvpn']) };
  const explicit: Partial<Options> = {};
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    const int = (s: string, max: number): number => {
      const n = Number(s);
      if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`${flag}: '${s}' must be an integer from 1 to ${max}`);
      return n;
    };
    if (flag === '--quick') o.quick = true;
    else if (flag === '--sizes') explicit.sizes = value().split(',').map((s) => int(s, 1000));
    else if (flag === '--modes') {
      explicit.modes = value().split(',') as Mode[];
      if (explicit.modes.some((m) => m !== 'steer' && m !== 'flood')) throw new Error('--modes: steer and/or flood');
    } else if (flag === '--reps') explicit.reps = int(value(), 100);
    else if (flag === '--duration') explicit.duration = int(value(), 30);
    else if (flag === '--only') explicit.only = new Set(value().split(','));
    else if (flag === '--openvpn-rounds') explicit.openvpnRounds = int(value(), 20);
    else if (flag === '--pps') explicit.pps = int(value(), 10_000_000);
    else if (flag === '--dp-reps') explicit.dpReps = int(value(), 100);
    else if (flag === '--dp-sizes') explicit.dpSizes = value().split(',').map((s) => int(s, 64));
    else if (flag === '--dp-variants') o.dpVariants = true;
    else if (flag === '--dp-conntrack') o.dpConntrack = true;
    else if (flag === '--dp-min-samples') o.dpMinSamples = Number(value());
    else if (flag === '--no-openvpn') o.only.delete('openvpn');
    else if (flag === '--help' || flag === '-h') {
      console.log('usage: node dist/benchmarks/main.js [--quick] [--sizes 1,16,64,256] [--modes steer,flood] [--reps 7] [--duration 3] [--only setup,dataplane,traffic,openvpn,clusterip] [--no-openvpn] [--openvpn-rounds 2] [--pps 25000] [--dp-reps 5] [--dp-sizes 1,2,4,8] [--dp-variants] [--dp-conntrack] [--dp-min-samples 0.97]');
      process.exit(0);
    } else throw new Error(`unknown argument ${argv[i]} (try --help)`);
  }
  if (o.quick) Object.assign(o, { sizes: [1, 16], duration: 1, openvpnRounds: 1, dpReps: 1 });
  if (explicit.only && !o.only.has('openvpn')) explicit.only.delete('openvpn');
  Object.assign(o, explicit);
  for (const part of o.only) if (!['setup', 'dataplane', 'traffic', 'openvpn', 'clusterip'].includes(part)) throw new Error(`--only: unknown part ${part}`);
  return o;
}

/** `--render <results.json>`: rewrites the Markdown and SVGs of an earlier run, running nothing. */
function renderOnly(file: string): void {
  const doc = JSON.parse(readFileSync(file, 'utf8'));
  const dir = dirname(file);
  const base = basename(file, '.json');
  const tag = base.startsWith('latest-') ? base.slice('latest-'.length) : '';
  writeFileSync(join(dir, `${base}.md`), renderMarkdown(doc) + '\n');
  for (const [name, svg] of Object.entries(renderSvgs(doc))) writeFileSync(join(dir, `${tag ? `${tag}-` : ''}${name}.svg`), svg);
  console.log(renderMarkdown(doc));
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--render');
  if (i > 0) return renderOnly(process.argv[i + 1]);
  const o = parseArgs(process.argv.slice(2));
  const explicitSizes = process.argv.some((a) => a.startsWith('--sizes'));
  if (process.getuid?.() !== 0) throw new Error('needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)');
  await claimPrefix();
  installSignalHandlers();
  const log = (s: string): void => console.error(s);
  const started = new Date();
  const machine = machineFacts();
  log(`netns-cluster benchmark ${NAME}: ${[...o.only].join(', ')}; load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const env = await createEnvironment();
  let setup: SetupResult[] = [];
  let concurrency: ConcurrentResult[] | undefined;
  let traffic: TrafficResult | undefined;
  let dataplane: DataplaneResult | undefined;
  let openvpn: OpenvpnResult | undefined;
  const loads: Record<string, number[]> = { start: os.loadavg() };
  // A part that fails is reported and left out; the parts measured before it are still written.
  const failed: string[] = [];
  const part = async <T>(name: string, run: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await run();
    } catch (e) {
      if (e instanceof Interrupted || isStopping()) throw e;
      log(`${name} part failed: ${e instanceof Error ? e.stack : e}`);
      failed.push(`${name}: ${e instanceof Error ? e.message : e}`);
      return undefined;
    }
  };
  if (o.only.has('clusterip')) {
    const r = await benchmarkClusterip({ sizes: explicitSizes ? o.sizes : [1, 16], reps: o.reps, log }, env.observer);
    console.log(renderClusterip(r, started.toISOString()));
    if (o.only.size === 1) return;
  }
  if (o.only.has('setup')) {
    // NC_BENCH_FLOOR_ONLY=1 (profiling): only the floor and netns-cluster, no concurrency part.
    const floorOnly = process.env.NC_BENCH_FLOOR_ONLY === '1';
    setup = await benchmarkSetup({ sizes: o.sizes, modes: o.modes, reps: o.reps, log, quickWays: floorOnly }, env.observer);
    if (!floorOnly) concurrency = await part('concurrency', () => benchmarkConcurrent({ clusters: 4, n: 16, modes: o.modes, reps: o.reps, log }));
    loads.afterSetup = os.loadavg();
  }
  if (o.only.has('dataplane')) {
    const sizes = o.dpSizes ?? (o.quick ? [1, 2] : [1, 2, 4, 8]);
    const extra = [
      // The iptables backend (flood mode only) at the same N, where the kernel has its target or match.
      ...(o.modes.includes('flood') ? iptablesConfigs(sizes) : []),
      ...(o.dpVariants ? sizes.filter((n) => n > 1).flatMap((n) => variantConfigs(n)) : []),
      ...(o.dpConntrack ? conntrackVariants(4) : []),
    ];
    const noPerf = perfWorks();
    if (noPerf) log(`data-plane cost not measured: ${noPerf}`);
    else dataplane = await part('dataplane', () => benchmarkDataplane({ pps: o.pps, duration: o.quick ? 1 : 2, reps: o.dpReps, sizes, modes: o.modes, extra, ...(o.dpMinSamples ? { minSampleShare: o.dpMinSamples } : {}), log }));
    loads.afterDataplane = os.loadavg();
  }
  if (o.only.has('traffic')) {
    traffic = await part('traffic', () => benchmarkTraffic({ duration: o.duration, sizes: o.quick ? [2] : [2, 4], modes: o.modes, reps: o.quick ? 1 : 2, log }, env));
    loads.afterTraffic = os.loadavg();
  }
  if (o.only.has('openvpn')) {
    openvpn = await benchmarkOpenvpn({ duration: o.quick ? 2 : 5, rounds: o.quick ? 1 : o.openvpnRounds, log }, env).catch((e) => {
      if (e instanceof Interrupted || isStopping()) throw e;
      log(`OpenVPN part failed: ${e instanceof Error ? e.stack : e}`);
      return { error: String(e instanceof Error ? e.message : e) } as OpenvpnResult;
    });
    loads.afterOpenvpn = os.loadavg();
  }
  const doc = {
    benchmark: 'netns-cluster harness',
    date: started.toISOString(),
    durationS: Math.round((Date.now() - started.getTime()) / 100) / 10,
    options: { ...o, only: [...o.only] },
    ...(failed.length ? { failedParts: failed } : {}),
    machine: { ...machine, loadavg: loads },
    method: {
      timer: 'performance.now()',
      setup: 'per N and mode: 1 warm-up per way (verifies identical objects with ip -j and nft -j), then reps interleaved with rotating order; median, min, max; floor = benchmarks/floor.c fed the same plan',
      teardownEnd: 'until the way returned AND obs0 (observer veth whose peer is in the last node namespace) is unregistered; polled every ~1 ms',
      settleMsAfterTeardown: 100,
      traffic: 'fixed senders in the client namespace, each on its own source address chosen so the senders spread evenly over the nodes; receivers count packets delivered to the application',
    },
    setup,
    concurrency,
    dataplane,
    traffic,
    openvpn,
  };
  const md = renderMarkdown(doc as any);
  console.log(md);
  const dir = join(packageRoot(), 'benchmarks', 'results');
  mkdirSync(dir, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  // Partial runs (--only) and --quick never overwrite the full run's latest.* files.
  const tag = [o.quick ? 'quick' : '', o.only.size < 4 ? [...o.only].join('+') : ''].filter(Boolean).join('-');
  const base = tag ? `latest-${tag}` : 'latest';
  writeFileSync(join(dir, `bench-${tag ? `${tag}-` : ''}${stamp}.json`), JSON.stringify(doc, null, 2) + '\n');
  writeFileSync(join(dir, `${base}.json`), JSON.stringify(doc, null, 2) + '\n');
  writeFileSync(join(dir, `${base}.md`), md + '\n');
  for (const [name, svg] of Object.entries(renderSvgs(doc as any))) writeFileSync(join(dir, `${tag ? `${tag}-` : ''}${name}.svg`), svg);
  log(`results in ${dir}`);
}

main()
  .catch((e) => {
    process.exitCode = 1;
    if (e instanceof Interrupted || isStopping()) return;
    console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  })
  .finally(async () => {
    await cleanup();
    const left = leftBehind();
    if (left.length) {
      console.error(`ERROR: namespaces left behind: ${left.join(' ')}`);
      process.exitCode = 1;
    }
  });
