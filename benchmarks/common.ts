/**
 * Shared pieces of the benchmark harness (benchmarks/main.ts): the run's names, running commands in
 * their own process groups, cleanup on SIGINT/SIGTERM/error, statistics and machine facts.
 *
 * Every namespace this run creates is named `<NAME>-…` where NAME = `nb<pid mod 100000>` is also the
 * cluster name given to createCluster (so the library's node namespaces are `<NAME>-n<k>`). The run
 * refuses to start if any namespace already uses that prefix, and cleanup deletes only those.
 * @module
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { rmSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Netns, bucketOf, destroyCluster, isKernelError } from '../lib/index.js';
import { packageRoot } from '../lib/kernel/binding.js';
import type { Cluster } from '../lib/cluster/cluster.js';

export const NAME = `nb${process.pid % 100000}`;
export const PREFIX = `${NAME}-`;
export const HOST = `${PREFIX}host`;
export const CLIENT = `${PREFIX}cli`;
export const OBSERVER = `${PREFIX}obs`;
export const SOLO = `${PREFIX}solo`;
export const VIP = '192.0.2.1';
export const VIP_PREFIX = 24;
export const UPLINK = 'c0';

export class Interrupted extends Error {}

let stopping = false;
let ownsPrefix = false;
const children = new Set<ChildProcess>();
export const openHandles = new Set<Netns>();
export const liveClusters = new Set<Cluster>();
let tmpRoot: string | undefined;

export function checkpoint(): void {
  if (stopping) throw new Interrupted('interrupted');
}

export const isStopping = (): boolean => stopping;

/** A private temporary directory (removed by cleanup). */
export function tmpDir(): string {
  tmpRoot ??= mkdtempSync(join(os.tmpdir(), PREFIX));
  return tmpRoot;
}

export async function ourNamespaces(): Promise<string[]> {
  return (await Netns.list()).filter((n) => n.startsWith(PREFIX));
}

export function ipNetnsList(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter(Boolean);
}

export async function claimPrefix(): Promise<void> {
  const taken = await ourNamespaces();
  if (taken.length) throw new Error(`prefix ${PREFIX} is in use (${taken.join(' ')}); run again`);
  ownsPrefix = true;
}

/** Runs argv in its own process group; rejects with its stderr on failure. Returns stdout. */
export function run(argv: string[], o: { stdin?: string } = {}): Promise<string> {
  checkpoint();
  return new Promise((resolve, reject) => {
    const c = spawn(argv[0], argv.slice(1), { detached: true, stdio: [o.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    children.add(c);
    let stdout = '';
    let stderr = '';
    c.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    c.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    if (o.stdin !== undefined) c.stdin!.end(o.stdin);
    c.once('error', reject);
    c.once('close', (code, signal) => {
      children.delete(c);
      if (code === 0) resolve(stdout);
      else reject(new Error(`${argv.join(' ')} failed (${signal ?? `exit ${code}`}):\n${stderr}`));
    });
  });
}

/** Starts a long-running child in its own process group (killed by cleanup). */
export function start(argv: string[]): ChildProcess {
  checkpoint();
  const c = spawn(argv[0], argv.slice(1), { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(c);
  c.once('close', () => children.delete(c));
  return c;
}

export async function killGroup(c: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null || c.pid === undefined) return;
  const closed = new Promise((resolve) => c.once('close', resolve));
  try {
    process.kill(-c.pid, signal);
  } catch {
    /* already gone */
  }
  await Promise.race([closed, sleep(3000)]);
}

export function ipJson(args: string[]): any[] {
  return JSON.parse(execFileSync('ip', ['-j', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) || '[]');
}

/** Namespaces deleted in this order: nodes and helpers first, host then client then observer. */
function rank(name: string): number {
  if (name === OBSERVER) return 3;
  if (name === CLIENT) return 2;
  return name === HOST ? 1 : 0;
}

let cleanupDone: Promise<void> | undefined;

/** Stops children, closes clusters, deletes every `<NAME>-*` namespace. Idempotent; never throws. */
export function cleanup(): Promise<void> {
  cleanupDone ??= (async () => {
    stopping = true;
    if (!ownsPrefix) return;
    await Promise.all([...children].map((c) => killGroup(c)));
    await Promise.all([...liveClusters].map((c) => c.close().catch(() => undefined)));
    await Promise.all([...openHandles].map((h) => h.close().catch(() => undefined)));
    openHandles.clear();
    await destroyCluster(NAME, { hostNetns: HOST }).catch(() => undefined);
    for (let attempt = 0; attempt < 5; attempt++) {
      const left = (await ourNamespaces().catch(() => ipNetnsList().filter((n) => n.startsWith(PREFIX)))).sort((a, b) => rank(a) - rank(b));
      if (left.length === 0) break;
      await Netns.deleteMany(left).catch(() => {
        for (const n of left) {
          try {
            execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
          } catch {
            /* next attempt */
          }
        }
      });
      await sleep(20);
    }
    // Again, now that the host namespace is gone: removes the runtime state a failed close() left.
    await destroyCluster(NAME, { hostNetns: HOST }).catch((e) => console.error(`WARNING: destroyCluster('${NAME}'): ${e}`));
    const left = ipNetnsList().filter((n) => n.startsWith(PREFIX));
    if (left.length) console.error(`WARNING: could not delete namespaces: ${left.join(' ')}`);
  })()
    .catch((e) => console.error('cleanup failed:', e))
    .finally(() => tmpRoot && rmSync(tmpRoot, { recursive: true, force: true }));
  return cleanupDone;
}

export function installSignalHandlers(): void {
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: cleaning up ${PREFIX}*`);
      void cleanup().finally(() => process.exit(code));
    });
  }
}

export function leftBehind(): string[] {
  return ownsPrefix ? ipNetnsList().filter((n) => n.startsWith(PREFIX)) : [];
}

// ───────────────────────────── statistics ─────────────────────────────

export interface Stats {
  samples: number[];
  median: number;
  min: number;
  max: number;
}

export const round3 = (x: number): number => Math.round(x * 1000) / 1000;

export function stats(samples: number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { samples: samples.map(round3), median: round3(median), min: round3(s[0]), max: round3(s.at(-1)!) };
}

/** Rotates a list's order per repetition so no entry always runs first or last. */
export const rotate = <T>(list: T[], by: number): T[] => list.map((_, i) => list[(i + by) % list.length]);

export const ms = (x: number): string => (x < 10 ? x.toFixed(2) : x.toFixed(1));

// ───────────────────────────── machine facts ─────────────────────────────

function version(argv: string[]): string | undefined {
  try {
    return execFileSync(argv[0], argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0].trim();
  } catch (e: any) {
    // openvpn --version exits 1
    return typeof e?.stdout === 'string' && e.stdout ? e.stdout.split('\n')[0].trim() : undefined;
  }
}

export function machineFacts(): Record<string, unknown> {
  const cpus = os.cpus();
  return {
    kernel: os.release(),
    cpus: cpus.length,
    cpuModel: cpus[0]?.model,
    memoryMiB: Math.round(os.totalmem() / 2 ** 20),
    node: process.version,
    iproute2: version(['ip', '-V']),
    nft: version(['nft', '-v']),
    openvpn: version(['openvpn', '--version']),
    gcc: version(['gcc', '--version']),
    loadavgAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

export { packageRoot } from '../lib/kernel/binding.js';

export function shellWord(s: string): string {
  return /^[A-Za-z0-9._:\/=,@%+-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

// ───────────────────────────── observing teardown ─────────────────────────────

/** The observer's end of the veth whose disappearance marks the end of a teardown, and its peer. */
export const OBS_LINK = 'obs0';
export const OBS_PEER = 'obs';

/**
 * Untimed: a veth from the observer namespace into `target`; the kernel destroys it together with
 * `target`'s other devices, so its disappearance is when `target` is really gone.
 */
export async function attachObserverLink(observer: Netns, target: string): Promise<void> {
  const ns = await Netns.open(target);
  try {
    await observer.addVeth({ name: OBS_LINK, peer: { name: OBS_PEER, netns: ns } });
  } finally {
    await ns.close();
  }
}

/** Polls (every ~1 ms, one RTM_GETLINK on a cached socket) until the observer's veth is gone. */
export async function waitUntilGone(observer: Netns, timeoutMs = 30_000): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      await observer.getLink(OBS_LINK);
    } catch (e) {
      if (isKernelError(e) && e.code === 'ENODEV') return performance.now();
      throw e;
    }
    if (performance.now() > deadline) throw new Error(`${OBS_LINK} still exists ${timeoutMs} ms after teardown: something keeps the namespace alive`);
    await sleep(1);
  }
}

const blasts = new Map<string, string>();

/** benchmarks/blast.c, compiled once per run under `name` (its tasks' comm: perf tells them apart by it). */
export function compileBlast(name: string): string {
  const have = blasts.get(name);
  if (have) return have;
  const out = join(tmpDir(), name);
  execFileSync('gcc', ['-O2', '-Wall', '-o', out, join(packageRoot(), 'benchmarks', 'blast.c')], { stdio: ['ignore', 'inherit', 'inherit'] });
  blasts.set(name, out);
  return out;
}

/**
 * `count` source addresses in 192.0.2.0/24, from .`first` on: the i-th hashes (sourceip, 64
 * buckets, `seed`) to a bucket b with b mod `modulus` = i mod `modulus`, so that with N nodes
 * dividing `modulus` source i is served by node i mod N.
 */
export function sourcesByBucket(count: number, modulus: number, first: number, seed: number): string[] {
  const found: string[] = [];
  for (let i = 0; i < count; i++) {
    for (let host = first; host < 255; host++) {
      const a = `192.0.2.${host}`;
      if (!found.includes(a) && bucketOf('sourceip', { address: a }, 64, seed) % modulus === i % modulus) {
        found.push(a);
        break;
      }
    }
  }
  if (found.length !== count) throw new Error('could not choose source addresses');
  return found;
}
