/**
 * Setup and teardown latency of a cluster topology: netns-cluster vs. a classic bash script of `ip`
 * commands vs. `ip -batch`.
 *
 * Topology (docs: DESIGN.md "Topology", without firewall rules), for N nodes:
 *   - a dedicated host namespace `<p>host` with bridge `br0` (up, mcast_snooping 0, stp off,
 *     forward_delay 0);
 *   - N node namespaces `<p>n<k>`, each joined by a veth pair: outer end `v<k>` in the host namespace,
 *     enslaved to br0 and up; inner end `eth0` in the node with MAC 02:00:00:00:<k hi>:<k lo>, up;
 *   - in every node: lo up, the VIP 192.0.2.1/24 and a unique 198.18.x.y/16 (x.y = k+1) on eth0.
 *
 * The three ways build exactly that:
 *   (a) netns-cluster: one Netns.createMany for all namespaces, then ONE Batch with every link and
 *       address, committed once. Ops are queued host-first, then node by node, so that consecutive
 *       requests to one namespace are pipelined by the addon (see `buildWithLibrary`).
 *   (b) bash: a generated script with one `ip` command per step (`ip netns add`, `ip -n H link add …
 *       type veth peer … netns X`, `ip -n H link set … master`, `… up`, `ip -n X addr add`, …).
 *   (c) ip -batch, the fastest correct arrangement found: `ip -batch` at root level for the
 *       `netns add` lines (the only root-level work); `ip -n <host> -batch` for the bridge and the
 *       veths (fused: `link add v<k> up master br0 type veth peer …`); then one `ip -n <node> -batch`
 *       per node, all nodes IN PARALLEL (a batch cannot switch namespaces: `-n` is a process-wide
 *       option, so each node costs a process; in parallel those processes overlap on several CPUs).
 *       `netns add` must not go in the host's batch: `ip -n` runs in a private slave mount namespace,
 *       so the /run/netns bind mount would vanish when that `ip` exits.
 *
 * Teardown:
 *   (a) close the handles, then Netns.deleteMany(nodes…, host); (b) `ip netns del` per namespace;
 *   (c) one `ip -batch` with `netns del` lines. Every way deletes the host namespace LAST.
 *
 * What "gone" means, and how it is observed: deleting a namespace only drops a reference; the kernel
 * destroys it later on its ordered "netns" workqueue. Each run of cleanup_net takes every namespace
 * whose last reference is gone by then (one batch) and unregisters all their devices in ONE
 * unregister_netdevice_many() call (a veth takes its peer along, whatever namespace the peer is in);
 * batches run strictly one after another. Before each teardown an untimed veth is added: `obs0` in a
 * per-run observer namespace, its peer `obs` in the host namespace, so `obs0` is unregistered together
 * with the host namespace's devices. Every way drops the host's last reference after every node's,
 * so each node namespace is in the host's batch or an earlier one: when `obs0` is gone, no device of
 * the topology (br0, v<k>, eth0) exists any more. (Checked with `ip -ts monitor link` and extra
 * observer veths into nodes: typically node 0 goes alone in a first batch, then the rest, host
 * included, within ~0.1 ms of each other.) Teardown time therefore runs until the kernel has removed
 * the topology, not merely until the call returned. The kernel's tail after that (other per-subsystem
 * exit work, RCU grace periods, freeing memory) is invisible to users and not counted; an untimed
 * pause after each teardown keeps it from weighing on the next setup. Polling is `getLink('obs0')`
 * through a kept-open handle on the observer every ~1 ms (a cached netlink socket in the observer,
 * one RTM_GETLINK): resolution about 1 ms.
 *
 * Method: per N, one warm-up iteration of each way (not recorded; it also checks that all three ways
 * built identical objects, through `ip -j`), then R recorded repetitions. Ways are interleaved per
 * repetition, their order rotating, so machine drift hits all three alike. Times are
 * performance.now() around the whole operation, including process start-up for (b) and (c) and
 * building the ops in JavaScript for (a). Setup is timed until the last command returned (links,
 * addresses are then in place).
 *
 * Names derive from a per-run prefix `nb<pid mod 10000>-` (the run refuses to start if any namespace
 * already uses it). The root namespace's links, routes and firewall are never touched: root-level
 * commands are only `ip netns add|del`. On SIGINT/SIGTERM or any error every namespace with the prefix
 * is deleted.
 *
 * Usage: node dist/benchmarks/setup.js [--quick] [--sizes 1,4,16,64] [--reps 5]
 *   --quick = --sizes 1,4 --reps 2 (explicit flags still win).
 * Writes benchmarks/results/setup-latest.json.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Batch, Netns } from '../lib/index.js';
import { attachObserverLink, machineFacts, packageRoot, stats, waitUntilGone, OBS_LINK, type Stats } from './common.js';

// ───────────────────────────── options ─────────────────────────────

interface Options {
  sizes: number[];
  reps: number;
  quick: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { sizes: [1, 4, 16, 64], reps: 5, quick: false };
  let sizes: number[] | undefined;
  let reps: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    if (flag === '--quick') o.quick = true;
    else if (flag === '--sizes') sizes = value().split(',').map((s) => positiveInt('--sizes', s));
    else if (flag === '--reps') reps = positiveInt('--reps', value());
    else if (flag === '--help' || flag === '-h') {
      console.log('usage: node dist/benchmarks/setup.js [--quick] [--sizes 1,4,16,64] [--reps 5]');
      process.exit(0);
    } else throw new Error(`unknown argument ${argv[i]} (try --help)`);
  }
  if (o.quick) Object.assign(o, { sizes: [1, 4], reps: 2 });
  if (sizes) o.sizes = sizes;
  if (reps) o.reps = reps;
  if (o.sizes.some((n) => n > 65535)) throw new Error('--sizes: at most 65535 nodes (MAC and address scheme)');
  return o;
}

function positiveInt(flag: string, s: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag}: '${s}' is not a positive integer`);
  return n;
}

// ───────────────────────────── names and the topology ─────────────────────────────

const PREFIX = `nb${process.pid % 10000}-`;
const OBSERVER = `${PREFIX}obs`;
const BRIDGE = 'br0';
const INNER = 'eth0';
const VIP = '192.0.2.1/24';

interface Topology {
  n: number;
  host: string;
  nodes: string[];
}

function topology(n: number): Topology {
  return { n, host: `${PREFIX}host`, nodes: Array.from({ length: n }, (_, k) => `${PREFIX}n${k}`) };
}

const outerName = (k: number): string => `v${k}`;
const hex2 = (b: number): string => b.toString(16).padStart(2, '0');
const nodeMac = (k: number): string => `02:00:00:00:${hex2(k >> 8)}:${hex2(k & 0xff)}`;
const nodeAddress = (k: number): string => `198.18.${(k + 1) >> 8}.${(k + 1) & 0xff}/16`;

/** Namespaces in the order they must be deleted: nodes first, host last (see the header). */
const deletionOrder = (t: Topology): string[] => [...t.nodes, t.host];

// ───────────────────────────── interruption and cleanup ─────────────────────────────

let stopping = false;
/** False until the run has checked that no namespace uses its prefix: cleanup never deletes others'. */
let ownsPrefix = false;
let child: ChildProcess | undefined;
const openHandles = new Set<Netns>();

class Interrupted extends Error {}

function checkpoint(): void {
  if (stopping) throw new Interrupted('interrupted');
}

async function closeHandles(handles: Netns[]): Promise<void> {
  await Promise.all(handles.map((h) => h.close()));
  for (const h of handles) openHandles.delete(h);
}

async function ourNamespaces(): Promise<string[]> {
  return (await Netns.list()).filter((n) => n.startsWith(PREFIX));
}

function ipNetnsList(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter(Boolean);
}

async function killChild(): Promise<void> {
  const c = child;
  if (!c || c.exitCode !== null || c.signalCode !== null || c.pid === undefined) return;
  const closed = new Promise((resolve) => c.once('close', resolve));
  try {
    process.kill(-c.pid, 'SIGKILL'); // the child's own process group (spawned detached): bash and its ip's
  } catch {
    /* already gone */
  }
  await closed;
}

let cleanupDone: Promise<void> | undefined;

/** Deletes every namespace with this run's prefix. Idempotent; never throws. */
function cleanup(): Promise<void> {
  cleanupDone ??= (async () => {
    stopping = true;
    if (!ownsPrefix) return;
    await killChild();
    await closeHandles([...openHandles]).catch(() => undefined);
    for (let attempt = 0; attempt < 5; attempt++) {
      const left = (await ourNamespaces().catch(() => ipNetnsList().filter((n) => n.startsWith(PREFIX)))).sort(
        (a, b) => deletionRank(a) - deletionRank(b),
      );
      if (left.length === 0) return;
      await Netns.deleteMany(left).catch(() => {
        for (const n of left) execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
      });
      await sleep(20);
    }
    const left = ipNetnsList().filter((n) => n.startsWith(PREFIX));
    if (left.length) console.error(`WARNING: could not delete namespaces: ${left.join(' ')}`);
  })()
    .catch((e) => console.error('cleanup failed:', e))
    .finally(() => scriptsRoot && rmSync(scriptsRoot, { recursive: true, force: true }));
  return cleanupDone;
}

function deletionRank(name: string): number {
  if (name === OBSERVER) return 2;
  return name === topology(0).host ? 1 : 0;
}

function onSignal(signal: NodeJS.Signals, code: number): void {
  process.once(signal, () => {
    console.error(`\n${signal}: cleaning up ${PREFIX}*`);
    void cleanup().finally(() => process.exit(code));
  });
}

// ───────────────────────────── running commands ─────────────────────────────

/** Runs a command in its own process group (so cleanup can stop it and all its children). */
function run(argv: string[]): Promise<void> {
  checkpoint();
  return new Promise((resolve, reject) => {
    const c = spawn(argv[0], argv.slice(1), { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
    child = c;
    let stderr = '';
    c.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    c.once('error', reject);
    c.once('close', (code, signal) => {
      if (child === c) child = undefined;
      if (code === 0) resolve();
      else reject(new Error(`${argv.join(' ')} failed (${signal ?? `exit ${code}`}):\n${stderr}`));
    });
  });
}

function ipJson(args: string[]): any[] {
  return JSON.parse(execFileSync('ip', ['-j', ...args], { encoding: 'utf8' }) || '[]');
}

// ───────────────────────────── the ip command list, shared by (b) and (c) ─────────────────────────────

/** One `ip` command: in namespace `ns` (`ip -n ns …`), or at root level (only `netns add|del`). */
interface IpStep {
  ns?: string;
  args: string[];
}

/**
 * The `ip` steps that build the topology. `fused` folds `up` and `master` into `link add` (one request
 * instead of three per port): used by the batch way, which is meant to be the fastest with `ip`.
 */
function setupSteps(t: Topology, fused: boolean): IpStep[] {
  const steps: IpStep[] = [t.host, ...t.nodes].map((ns) => ({ args: ['netns', 'add', ns] }));
  const inHost = (...args: string[]): number => steps.push({ ns: t.host, args });
  const bridgeAttrs = ['type', 'bridge', 'mcast_snooping', '0', 'stp_state', '0', 'forward_delay', '0'];
  if (fused) {
    inHost('link', 'add', BRIDGE, 'up', ...bridgeAttrs);
  } else {
    inHost('link', 'add', BRIDGE, ...bridgeAttrs);
    inHost('link', 'set', BRIDGE, 'up');
  }
  t.nodes.forEach((node, k) => {
    const v = outerName(k);
    const peer = ['type', 'veth', 'peer', 'name', INNER, 'address', nodeMac(k), 'netns', node];
    if (fused) {
      inHost('link', 'add', v, 'up', 'master', BRIDGE, ...peer);
    } else {
      inHost('link', 'add', v, ...peer);
      inHost('link', 'set', v, 'master', BRIDGE);
      inHost('link', 'set', v, 'up');
    }
  });
  t.nodes.forEach((node, k) => {
    for (const args of [
      ['link', 'set', 'lo', 'up'],
      ['link', 'set', INNER, 'up'],
      ['addr', 'add', VIP, 'dev', INNER],
      ['addr', 'add', nodeAddress(k), 'dev', INNER],
    ])
      steps.push({ ns: node, args });
  });
  return steps;
}

function teardownSteps(t: Topology): IpStep[] {
  return deletionOrder(t).map((ns) => ({ args: ['netns', 'del', ns] }));
}

function shellWord(s: string): string {
  return /^[A-Za-z0-9._:\/=,@%+-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

/** `ip [-n ns] args…` as a shell line. Refuses root-level commands other than netns add/del. */
function ipLine(step: IpStep): string {
  if (step.ns === undefined && !(step.args[0] === 'netns' && ['add', 'del'].includes(step.args[1])))
    throw new Error(`refusing a root-namespace command: ip ${step.args.join(' ')}`);
  const ns = step.ns === undefined ? [] : ['-n', step.ns];
  return ['ip', ...ns, ...step.args].map(shellWord).join(' ');
}

const batchLine = (step: IpStep): string => step.args.map(shellWord).join(' ');

/** Groups consecutive steps by namespace (root-level steps have ns undefined), keeping order. */
function groupByNamespace(steps: IpStep[]): { ns?: string; steps: IpStep[] }[] {
  const groups: { ns?: string; steps: IpStep[] }[] = [];
  for (const s of steps) {
    const last = groups.at(-1);
    if (last && last.ns === s.ns) last.steps.push(s);
    else groups.push({ ns: s.ns, steps: [s] });
  }
  return groups;
}

// ───────────────────────────── the three ways ─────────────────────────────

interface Way {
  /** Short id used in the JSON and in progress lines. */
  id: 'netns-cluster' | 'bash' | 'ip-batch';
  /** Untimed: write scripts for this size. */
  prepare(t: Topology): void;
  setup(t: Topology): Promise<void>;
  /** Must delete the host namespace last. */
  teardown(t: Topology): Promise<void>;
}

/** (a) netns-cluster. */
function libraryWay(): Way {
  let handles: Netns[] = [];
  return {
    id: 'netns-cluster',
    prepare() {},
    async setup(t) {
      handles = await Netns.createMany([t.host, ...t.nodes]);
      handles.forEach((h) => openHandles.add(h));
      await buildWithLibrary(handles[0], handles.slice(1));
    },
    async teardown(t) {
      // Close first (nodes, then host), so that deleting is what drops each namespace's last reference.
      await closeHandles([...handles.slice(1), handles[0]]);
      handles = [];
      await Netns.deleteMany(deletionOrder(t));
    },
  };
}

/**
 * The whole topology as one Batch. Host ops first, then each node's ops together: the addon pipelines
 * consecutive requests to one namespace, so this order needs the fewest round trips. (Using
 * `peer.up` instead of the node's own `setLink(INNER, {up})` would interleave host and node requests.)
 */
async function buildWithLibrary(host: Netns, nodes: Netns[]): Promise<void> {
  const b = new Batch();
  const inHost = b.in(host).addBridge({ name: BRIDGE, up: true, mcastSnooping: false, stp: false, forwardDelay: 0 });
  nodes.forEach((node, k) =>
    inHost.addVeth({ name: outerName(k), up: true, master: BRIDGE, peer: { name: INNER, netns: node, mac: nodeMac(k) } }),
  );
  nodes.forEach((node, k) =>
    b
      .in(node)
      .setLink('lo', { up: true })
      .setLink(INNER, { up: true })
      .addAddress(INNER, VIP)
      .addAddress(INNER, nodeAddress(k)),
  );
  await b.commit();
}

/** (b) and (c) keep their generated files in one temporary directory (removed by cleanup). */
let scriptsRoot: string | undefined;

function scriptDir(): string {
  scriptsRoot ??= mkdtempSync(join(os.tmpdir(), PREFIX));
  return scriptsRoot;
}

function writeScript(name: string, lines: string[]): string {
  const path = join(scriptDir(), name);
  writeFileSync(path, ['#!/bin/bash', 'set -e', ...lines, ''].join('\n'));
  return path;
}

/** (b) classic bash: one `ip` process per step. */
function bashWay(): Way {
  const scripts = new Map<number, { setup: string; teardown: string }>();
  return {
    id: 'bash',
    prepare(t) {
      scripts.set(t.n, {
        setup: writeScript(`bash-setup-${t.n}.sh`, setupSteps(t, false).map(ipLine)),
        teardown: writeScript(`bash-teardown-${t.n}.sh`, teardownSteps(t).map(ipLine)),
      });
    },
    setup: (t) => run(['bash', scripts.get(t.n)!.setup]),
    teardown: (t) => run(['bash', scripts.get(t.n)!.teardown]),
  };
}

/** (c) ip -batch: root batch, host batch, then the node batches in parallel (see the header). */
function batchWay(): Way {
  const files = new Map<number, { setup: string; teardown: string }>();
  return {
    id: 'ip-batch',
    prepare(t) {
      const groups = groupByNamespace(setupSteps(t, true));
      const lines: string[] = [];
      const nodeJobs: string[] = [];
      groups.forEach((g, i) => {
        const file = join(scriptDir(), `batch-${t.n}-${i}.txt`);
        writeFileSync(file, g.steps.map(batchLine).join('\n') + '\n');
        const cmd = ['ip', ...(g.ns === undefined ? [] : ['-n', g.ns]), '-batch', file].map(shellWord).join(' ');
        if (g.ns !== undefined && g.ns !== t.host) nodeJobs.push(`${cmd} & pids+=($!)`);
        else lines.push(cmd);
      });
      lines.push('pids=()', ...nodeJobs, 'for p in "${pids[@]}"; do wait "$p"; done');
      const teardown = join(scriptDir(), `batch-${t.n}-teardown.txt`);
      writeFileSync(teardown, teardownSteps(t).map(batchLine).join('\n') + '\n');
      files.set(t.n, { setup: writeScript(`batch-setup-${t.n}.sh`, lines), teardown });
    },
    setup: (t) => run(['bash', files.get(t.n)!.setup]),
    teardown: (t) => run(['ip', '-batch', files.get(t.n)!.teardown]),
  };
}

// ───────────────────────────── observing teardown ─────────────────────────────

// ───────────────────────────── verification ─────────────────────────────

const hasUp = (l: { flags?: string[] }): boolean => (l.flags ?? []).includes('UP');

/** What matters of the host namespace's links, through iproute2 (independent of the library). */
function hostView(t: Topology): unknown[] {
  return ipJson(['-d', '-n', t.host, 'link', 'show'])
    .map((l) => {
      const d = l.linkinfo?.info_data ?? {};
      const bridge =
        l.linkinfo?.info_kind === 'bridge'
          ? { mcast_snooping: d.mcast_snooping, stp_state: d.stp_state, forward_delay: d.forward_delay, vlan_filtering: d.vlan_filtering }
          : undefined;
      return { name: l.ifname, kind: l.linkinfo?.info_kind ?? l.link_type, master: l.master, up: hasUp(l), mtu: l.mtu, bridge };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** A node's links and addresses (flags such as `tentative` are left out: they change over time). */
function nodeView(node: string): unknown[] {
  return ipJson(['-n', node, 'addr', 'show'])
    .map((l) => ({
      name: l.ifname,
      mac: l.address,
      up: hasUp(l),
      mtu: l.mtu,
      addrs: (l.addr_info ?? []).map((a: any) => `${a.family} ${a.local}/${a.prefixlen} ${a.scope}`).sort(),
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

function view(t: Topology): { host: unknown[]; nodes: Record<string, unknown[]> } {
  const sampled = [...new Set([0, t.n - 1])];
  return { host: hostView(t), nodes: Object.fromEntries(sampled.map((k) => [`n${k}`, nodeView(t.nodes[k])])) };
}

/** Checks the view against the spec, so that three equally wrong ways cannot pass. */
function expectationErrors(t: Topology, v: ReturnType<typeof view>): string[] {
  const errors: string[] = [];
  const host = v.host as any[];
  const want = ['lo', BRIDGE, ...t.nodes.map((_, k) => outerName(k))].sort();
  const names = host.map((l) => l.name).sort();
  if (JSON.stringify(names) !== JSON.stringify(want)) errors.push(`host links are ${names.join(',')}`);
  const br = host.find((l) => l.name === BRIDGE);
  if (!br?.up || br.bridge?.mcast_snooping !== 0) errors.push(`${BRIDGE} not up or snooping on`);
  for (const l of host.filter((l) => /^v\d+$/.test(l.name)))
    if (!l.up || l.master !== BRIDGE || l.kind !== 'veth') errors.push(`${l.name}: not an up veth in ${BRIDGE}`);
  for (const [key, links] of Object.entries(v.nodes)) {
    const k = Number(key.slice(1));
    const eth = (links as any[]).find((l) => l.name === INNER);
    const lo = (links as any[]).find((l) => l.name === 'lo');
    if (!lo?.up) errors.push(`${key}: lo not up`);
    if (!eth?.up || eth.mac !== nodeMac(k)) errors.push(`${key}: ${INNER} not up with MAC ${nodeMac(k)}`);
    for (const cidr of [VIP, nodeAddress(k)])
      if (!eth?.addrs.includes(`inet ${cidr} global`)) errors.push(`${key}: ${INNER} lacks ${cidr}`);
  }
  return errors;
}

/** The view as `"<namespace> <link>" → JSON`, so that a mismatch can name what differs. */
function flatten(v: ReturnType<typeof view>): Map<string, string> {
  const parts: [string, unknown[]][] = [['host', v.host], ...Object.entries(v.nodes)];
  return new Map(parts.flatMap(([ns, links]) => (links as { name: string }[]).map((l) => [`${ns} ${l.name}`, JSON.stringify(l)] as const)));
}

const reference = new Map<number, { way: string; view: Map<string, string> }>();

/** Fails loudly unless this way built what the spec says and exactly what the other ways built. */
function verify(way: Way, t: Topology): void {
  const v = view(t);
  const errors = expectationErrors(t, v);
  if (errors.length) throw new Error(`${way.id}, N=${t.n}: topology is wrong:\n  ${errors.join('\n  ')}`);
  const mine = flatten(v);
  const ref = reference.get(t.n);
  if (!ref) return void reference.set(t.n, { way: way.id, view: mine });
  const diffs = [...new Set([...ref.view.keys(), ...mine.keys()])]
    .filter((k) => ref.view.get(k) !== mine.get(k))
    .map((k) => `${k}:\n    ${ref.way}: ${ref.view.get(k) ?? '(missing)'}\n    ${way.id}: ${mine.get(k) ?? '(missing)'}`);
  if (diffs.length) throw new Error(`N=${t.n}: ${way.id} built something else than ${ref.way}:\n  ${diffs.join('\n  ')}`);
}

// ───────────────────────────── measuring ─────────────────────────────

interface Sample {
  setup: number;
  teardown: number;
}

async function assertNoneLeft(t: Topology): Promise<void> {
  const left = (await ourNamespaces()).filter((n) => n !== OBSERVER);
  if (left.length) throw new Error(`N=${t.n}: namespaces left over: ${left.join(' ')}`);
}

async function measure(way: Way, t: Topology, observer: Netns, check: boolean): Promise<Sample> {
  await assertNoneLeft(t);
  checkpoint();
  const t0 = performance.now();
  await way.setup(t);
  const t1 = performance.now();
  checkpoint();
  if (check) verify(way, t);
  await attachObserverLink(observer, t.host);
  checkpoint();
  const t2 = performance.now();
  await way.teardown(t);
  const t3 = await waitUntilGone(observer);
  await assertNoneLeft(t);
  await sleep(SETTLE_MS);
  return { setup: t1 - t0, teardown: t3 - t2 };
}

/** Untimed pause after each teardown, for the kernel's invisible cleanup tail (see the header). */
const SETTLE_MS = 100;


interface Result {
  way: Way['id'];
  n: number;
  setup: Stats;
  teardown: Stats;
}

/** Rotates the ways' order per repetition so none always runs first or last. */
const rotate = <T>(list: T[], by: number): T[] => list.map((_, i) => list[(i + by) % list.length]);

async function benchmarkSize(n: number, reps: number, ways: Way[], observer: Netns): Promise<Result[]> {
  const t = topology(n);
  ways.forEach((w) => w.prepare(t));
  const samples = new Map<Way['id'], Sample[]>(ways.map((w) => [w.id, []]));
  for (let rep = 0; rep <= reps; rep++) {
    for (const way of rotate(ways, rep)) {
      const s = await measure(way, t, observer, rep === 0);
      const tag = rep === 0 ? 'warm-up' : `rep ${rep}/${reps}`;
      console.error(`N=${n} ${tag} ${way.id}: setup ${s.setup.toFixed(1)} ms, teardown ${s.teardown.toFixed(1)} ms`);
      if (rep > 0) samples.get(way.id)!.push(s);
    }
  }
  return ways.map((w) => {
    const list = samples.get(w.id)!;
    return { way: w.id, n, setup: stats(list.map((s) => s.setup)), teardown: stats(list.map((s) => s.teardown)) };
  });
}

// ───────────────────────────── reporting ─────────────────────────────


const ms = (x: number): string => (x < 10 ? x.toFixed(2) : x.toFixed(1));

function markdownTable(results: Result[], reps: number): string {
  const lines = [
    `Setup and teardown latency in ms: median of ${reps} (min–max); ×lib = median / netns-cluster median; /node = median / N.`,
    '',
    '| N | way | setup | min–max | /node | ×lib | teardown | min–max | /node | ×lib |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    const lib = results.find((x) => x.n === r.n && x.way === 'netns-cluster')!;
    const cells = (s: Stats, base: Stats): string[] => [
      ms(s.median),
      `${ms(s.min)}–${ms(s.max)}`,
      ms(s.median / r.n),
      (s.median / base.median).toFixed(2),
    ];
    lines.push(`| ${r.n} | ${r.way} | ${[...cells(r.setup, lib.setup), ...cells(r.teardown, lib.teardown)].join(' | ')} |`);
  }
  return lines.join('\n');
}


function writeResults(o: Options, results: Result[], table: string): string {
  const dir = join(packageRoot(), 'benchmarks', 'results');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'setup-latest.json');
  const doc = {
    benchmark: 'setup',
    date: new Date().toISOString(),
    options: o,
    prefix: PREFIX,
    machine: machineFacts(),
    method: {
      timer: 'performance.now()',
      warmup: 'one iteration per way and N, not recorded; verifies identical objects via ip -j',
      interleaving: 'ways interleaved per repetition, order rotating',
      teardownEnd: `until ${OBS_LINK} (observer) whose peer is in the host namespace is unregistered; host deleted last`,
      pollIntervalMs: 1,
      settleMsAfterTeardown: SETTLE_MS,
      ipBatch: 'ip -batch (netns add) ; ip -n host -batch (fused link add) ; ip -n node -batch per node, in parallel',
    },
    results,
    table,
  };
  writeFileSync(path, JSON.stringify(doc, null, 2) + '\n');
  return path;
}

// ───────────────────────────── main ─────────────────────────────

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)');
  const taken = await ourNamespaces();
  if (taken.length) throw new Error(`prefix ${PREFIX} is in use (${taken.join(' ')}); run again`);
  ownsPrefix = true;
  onSignal('SIGINT', 130);
  onSignal('SIGTERM', 143);
  const ways = [libraryWay(), bashWay(), batchWay()];
  const observer = await Netns.create(OBSERVER);
  openHandles.add(observer);
  console.error(`prefix ${PREFIX}, sizes ${o.sizes.join(',')}, ${o.reps} repetitions + 1 warm-up per way`);
  const results: Result[] = [];
  for (const n of o.sizes) results.push(...(await benchmarkSize(n, o.reps, ways, observer)));
  const table = markdownTable(results, o.reps);
  console.log(table);
  console.error(`results: ${writeResults(o, results, table)}`);
}

main()
  .catch((e) => {
    process.exitCode = 1;
    if (e instanceof Interrupted || stopping) return; // a signal: cleanup reports what matters
    console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  })
  .finally(async () => {
    await cleanup();
    const left = ownsPrefix ? ipNetnsList().filter((n) => n.startsWith(PREFIX)) : [];
    if (left.length) {
      console.error(`ERROR: namespaces left behind: ${left.join(' ')}`);
      process.exitCode = 1;
    }
  });
