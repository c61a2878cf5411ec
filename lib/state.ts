/**
 * What a running cluster leaves on disk so that another process can find and remove it: a state
 * file `/run/netns-cluster/<name>.json`, a lock `/run/netns-cluster/<name>.lock` held by the
 * controlling process for its lifetime (the kernel releases it however the process dies), and a
 * private runtime directory `/run/netns-cluster/<name>/` (mode 0700) for sockets and keys.
 * @module
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { binding, type NativeOp } from './binding.js';
import { isKernelError } from './errors.js';
import { Netns } from './netns.js';
import { clusterNames } from './names.js';

/** Where state files, locks and per-cluster runtime directories live. */
export const RUNTIME_DIR = '/run/netns-cluster';

/** The state file's content. */
export interface ClusterState {
  version: 1;
  name: string;
  /** The controlling process. */
  pid: number;
  startedAt: string;
  hostNetns?: string;
  /** Node namespaces, in order. */
  nodes: string[];
  /** Host-side interface given as a bridged uplink (released on destroy). */
  uplink?: string;
  /** Free-form details other parts add (services, pids). */
  [key: string]: unknown;
}

const statePath = (name: string) => join(RUNTIME_DIR, `${name}.json`);
const lockPath = (name: string) => join(RUNTIME_DIR, `${name}.lock`);

/** The cluster's private runtime directory (created 0700 on demand). */
export function runtimeDir(name: string): string {
  return join(RUNTIME_DIR, name);
}

export async function ensureRuntimeDir(name: string): Promise<string> {
  await mkdir(RUNTIME_DIR, { recursive: true, mode: 0o755 });
  const dir = runtimeDir(name);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}

const locks = binding;

/** Exclusive right to manage one cluster name, held until {@link ControllerLock.release}. */
export class ControllerLock {
  #fd: number | undefined;
  private constructor(fd: number, readonly name: string) {
    this.#fd = fd;
  }

  /** Takes the lock, or throws `EBUSY` naming the process that holds it. */
  static async acquire(name: string): Promise<ControllerLock> {
    await mkdir(RUNTIME_DIR, { recursive: true, mode: 0o755 });
    try {
      return new ControllerLock(locks().lockFile(lockPath(name)), name);
    } catch (e) {
      if (isKernelError(e) && (e.code === 'EWOULDBLOCK' || e.code === 'EAGAIN')) {
        const state = await readState(name);
        const who = state ? `process ${state.pid}` : 'another process';
        const err = new Error(
          `cluster '${name}' is already managed by ${who}; stop that one first (or, if it is stuck, kill it and run destroyCluster('${name}'))`,
        ) as NodeJS.ErrnoException;
        err.code = 'EBUSY';
        throw err;
      }
      throw e;
    }
  }

  /** Whether some live process manages `name`. */
  static held(name: string): boolean {
    return locks().lockHeld(lockPath(name));
  }

  /** Releases the lock; with `remove`, deletes the lock file first (while still holding it). */
  release(o: { remove?: boolean } = {}): void {
    if (this.#fd === undefined) return;
    if (o.remove) rmSync(lockPath(this.name), { force: true });
    locks().unlockFile(this.#fd);
    this.#fd = undefined;
  }
}

/** Writes JSON (mode 0600) through a temporary file and a rename: a reader never sees half a file. */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, path);
}

/** Reads a JSON file; undefined if it does not exist. */
export async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

export async function writeState(state: ClusterState): Promise<void> {
  await mkdir(RUNTIME_DIR, { recursive: true, mode: 0o755 });
  await writeJsonAtomic(statePath(state.name), state);
}

export function readState(name: string): Promise<ClusterState | undefined> {
  return readJson<ClusterState>(statePath(name));
}

/** Clusters that have a state file, with whether a live controller holds each. */
export async function listClusters(): Promise<{ name: string; state: ClusterState; running: boolean }[]> {
  let files: string[];
  try {
    files = await readdir(RUNTIME_DIR);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out = [];
  for (const f of files.filter((x) => x.endsWith('.json')).sort()) {
    const name = f.slice(0, -5);
    const state = await readState(name);
    if (state) out.push({ name, state, running: ControllerLock.held(name) });
  }
  return out;
}

/** Removes the state file and the runtime directory (the lock file goes with the lock's release). */
export async function removeState(name: string): Promise<void> {
  await rm(statePath(name), { force: true });
  await rm(runtimeDir(name), { recursive: true, force: true });
}

export interface DestroyReport {
  name: string;
  namespaces: string[];
  hostObjects: string[];
}

/**
 * Removes whatever a cluster called `name` left behind — after a crash too: its node namespaces
 * (found by name: `<name>-n<k>`), the bridge, routed-uplink veth and nft table in its host
 * namespace, and its runtime files. Refuses (EBUSY) while a live process manages it. Idempotent.
 */
export async function destroyCluster(name: string, o: { hostNetns?: string } = {}): Promise<DestroyReport> {
  if (ControllerLock.held(name)) {
    const err = new Error(`cluster '${name}' is running (its controller holds ${lockPath(name)}); stop it instead`) as NodeJS.ErrnoException;
    err.code = 'EBUSY';
    throw err;
  }
  const state = await readState(name);
  const names = clusterNames(name);
  const nodePattern = new RegExp(`^${name.replace(/[^a-z0-9]/g, '\\$&')}-n\\d+$`);
  const namespaces = (await Netns.list()).filter((n) => nodePattern.test(n));
  await Netns.deleteMany(namespaces);
  const hostNetns = o.hostNetns ?? state?.hostNetns;
  const hostObjects: string[] = [];
  let host: Netns | undefined;
  try {
    host = await Netns.open(hostNetns);
  } catch (e) {
    if (!(isKernelError(e) && e.code === 'ENOENT')) throw e; // the host namespace is gone: nothing left there
  }
  if (host) {
    const ops: NativeOp[] = [
      { type: 'nft.batch', netns: host.handle, commands: [{ cmd: 'deleteTable', family: 'bridge', name: names.table }] },
      { type: 'link.del', netns: host.handle, link: names.routedUplinkPort },
      { type: 'link.del', netns: host.handle, link: names.bridge }, // releases a bridged uplink too
    ];
    const labels = [`nft table bridge ${names.table}`, names.routedUplinkPort, names.bridge];
    const results = await binding().submit(ops, false);
    results.forEach((r, i) => {
      if (!(r instanceof Error)) hostObjects.push(labels[i]);
      else if (!(isKernelError(r) && ['ENOENT', 'ENODEV'].includes(r.code))) throw r;
    });
    try {
      await waitNodeLinksGone(host, name);
    } finally {
      await host.close();
    }
  }
  await removeState(name);
  // Nobody holds it (checked above); a controller starting right now re-checks the file it locked.
  await rm(lockPath(name), { force: true });
  return { name, namespaces, hostObjects };
}

/**
 * Waits until no outer veth of cluster `name` is left in the host namespace: the kernel destroys a
 * deleted namespace (and the veth pairs into it) asynchronously, so this is when it is really gone.
 * Something can keep a deleted namespace alive for a while (an orphaned TCP socket still closing);
 * after `patienceMs` the remaining veths are deleted from the host side, which takes their other
 * ends along at once.
 */
export async function waitNodeLinksGone(host: Netns, name: string, patienceMs = 3000): Promise<void> {
  const prefix = clusterNames(name).outerVeth('' as unknown as number);
  // Only veths: a link of another kind with a matching name is not ours (it may be why a build failed).
  const left = async () =>
    (await host.listLinks())
      .filter((l) => l.kind === 'veth' && l.name.startsWith(prefix) && /^\d+$/.test(l.name.slice(prefix.length)))
      .map((l) => l.name);
  const deadline = Date.now() + patienceMs;
  let remaining = await left();
  while (remaining.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 2));
    remaining = await left();
  }
  if (remaining.length === 0) return;
  const results = await binding().submit(remaining.map((link): NativeOp => ({ type: 'link.del', netns: host.handle, link })), false);
  const failed = results.find((r) => r instanceof Error && !(isKernelError(r) && r.code === 'ENODEV'));
  if (failed) throw failed;
}

/**
 * Destroys every cluster that has a state file but no live controller (only those whose name
 * starts with `prefix`, when given). Returns their names.
 */
export async function sweepClusters(o: { prefix?: string } = {}): Promise<string[]> {
  const swept: string[] = [];
  for (const c of await listClusters()) {
    if (c.running || (o.prefix !== undefined && !c.name.startsWith(o.prefix))) continue;
    await destroyCluster(c.name);
    swept.push(c.name);
  }
  return swept;
}
