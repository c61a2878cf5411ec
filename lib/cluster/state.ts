/**
 * What a cluster keeps on disk, under `/run/netns-cluster`:
 * - `<name>.lock`: the controller lock. Its holder (the controlling process, or a `destroy` at work)
 *   keeps it for as long as it acts on the cluster; the kernel releases it however the process
 *   dies. The file says who holds it: `{"pid":…,"role":"controller"|"destroy"}`.
 * - `<name>.json`: the state file, written (atomically) before anything is built, so that a crash
 *   at any point can be cleaned up; it also records the host settings to restore.
 * - `<name>/`: the private runtime directory (0700) for sockets, keys and status, marked as ours
 *   by a `.netns-cluster` file inside it.
 *
 * Every path is built from a name checked by the one cluster-name rule, so no name can reach
 * outside this directory.
 * @module
 */
import { mkdir, readdir, rename, rm, writeFile, lstat } from 'node:fs/promises';
import { closeSync, mkdirSync, constants as fsConstants, fstatSync, openSync, readSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { lockFile, lockHeld, unlockFile } from '../kernel/engine.js';
import { isKernelError } from '../util/errors.js';
import { checkClusterName, isClusterName, markOf } from '../util/names.js';
import { RESTORABLE_SYSCTLS } from '../util/defaults.js';
import { writeJsonAtomic } from '../util/files.js';

/** Where state files, locks and per-cluster runtime directories live. */
export const RUNTIME_DIR = '/run/netns-cluster';

/** Host settings a cluster changed, with the values they had before, to restore on close/destroy. */
export interface HostRestore {
  /** The namespace they belong to (undefined: the controller's own). */
  hostNetns?: string;
  /** The host namespace's identity (`<dev>:<inode>` of its nsfs file): nothing is restored elsewhere. */
  hostId?: string;
  /** A bridged uplink that was administratively down before the cluster set it up. */
  uplinkWasDown?: boolean;
  /** That uplink's interface index: a different interface of the same name is not touched. */
  uplinkIndex?: number;
  /** sysctl key → the value it had before the cluster wrote it (host namespace). */
  sysctls?: Record<string, string>;
}

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
  /** What to put back in the host namespace. */
  restore?: HostRestore;
  /** Each bucket's home node (where it goes back when its node is up), when not round robin. */
  home?: number[];
  /** The bridge's MAC: recognises the bridge if a kill left it before its mark. */
  vmac?: string;
  /**
   * The legacy iptables table the nodes' rules were in (backend 'iptables'), so that a controller
   * adopting the cluster with another backend or variant removes them.
   */
  iptablesTable?: 'filter' | 'mangle';
  /** Free-form details other parts add (services, pids). */
  [key: string]: unknown;
}

/** A file in the runtime directory that is not what it should be: reported, never acted on blindly. */
export interface StateProblem {
  file: string;
  /** The cluster it belongs to, when its name is a valid cluster name. */
  name?: string;
  reason: string;
  /** A cleanup of that cluster was tried and failed (`sweep` exits 1). */
  failed?: boolean;
}

export { RESTORABLE_SYSCTLS };

const statePath = (name: string) => join(RUNTIME_DIR, `${checkClusterName('name', name)}.json`);
/** The lock file of cluster `name`. */
export const lockPath = (name: string) => join(RUNTIME_DIR, `${checkClusterName('name', name)}.lock`);
const MARK_FILE = '.netns-cluster';

/** The cluster's private runtime directory (created 0700 on demand). */
export function runtimeDir(name: string): string {
  return join(RUNTIME_DIR, checkClusterName('name', name));
}

/**
 * Creates the cluster's runtime directory, marked as ours: made under a temporary name with its
 * marker inside, then renamed into place, so it never exists unmarked.
 */
export async function ensureRuntimeDir(name: string): Promise<string> {
  const dir = runtimeDir(name);
  mkdirSync(RUNTIME_DIR, { recursive: true, mode: 0o755 });
  if (await isOurDir(dir)) return dir;
  const tmp = `${dir}.${process.pid}.dir.tmp`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { mode: 0o700 });
  await writeFile(join(tmp, MARK_FILE), `${markOf(name)}\n`, { mode: 0o600 });
  try {
    await rename(tmp, dir);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    // Someone else made it first (it is ours if marked), or something that is not ours is there.
    if (!(await isOurDir(dir))) throw new Error(`${dir} exists and was not made by netns-cluster; move it away`);
  }
  return dir;
}

async function isOurDir(dir: string): Promise<boolean> {
  try {
    const st = await lstat(dir);
    if (!st.isDirectory()) return false;
    // Exactly this cluster's mark: a directory another cluster (or someone) marked is not this one's.
    return readSmallFileSync(join(dir, MARK_FILE), 4096).trim() === markOf(basename(dir));
  } catch {
    return false;
  }
}

/** Who holds a cluster's lock, as its lock file says. */
export interface LockOwner {
  pid: number;
  role: 'controller' | 'destroy';
}

/** Reads the lock file's owner record; undefined if absent or not (yet) written. */
export function lockOwner(name: string): LockOwner | undefined {
  try {
    const v = JSON.parse(readSmallFileSync(lockPath(name), 4096)) as Partial<LockOwner>;
    if (isPid(v.pid) && (v.role === 'controller' || v.role === 'destroy')) return { pid: v.pid, role: v.role };
  } catch {
    /* absent, empty or partial */
  }
  return undefined;
}

/**
 * A small regular file's text, read without blocking on a FIFO or following a symlink (a planted
 * file can neither hang nor redirect us); throws, saying why, for anything else.
 */
function readSmallFileSync(path: string, max: number): string {
  let fd: number;
  try {
    fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOFOLLOW);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') throw new Error(`${path} is a symbolic link; netns-cluster never makes one there`);
    throw e;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`${path} is not a regular file`);
    if (st.size > max) throw new Error(`${path} is ${st.size} bytes; a netns-cluster file is at most ${max}`);
    const buf = Buffer.alloc(st.size);
    const n = readSync(fd, buf, 0, st.size, 0);
    return buf.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** A process id that can be signalled safely: an integer above 1 (never 0, -1 or init). */
export function isPid(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 1 && v <= 0x3fffffff;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A lock path that is not a lock file we made (a symlink, a FIFO, a directory): say what to remove. */
function notALock(name: string, e: unknown): Error {
  const code = (e as NodeJS.ErrnoException).code;
  if (!['ELOOP', 'EINVAL', 'EISDIR', 'ENXIO', 'EACCES'].includes(String(code))) return e as Error;
  return Object.assign(new Error(`${lockPath(name)} is not a lock file netns-cluster made (${code}); remove it, then try again`, { cause: e }), { code });
}

function busy(message: string): NodeJS.ErrnoException {
  const err = new Error(message) as NodeJS.ErrnoException;
  err.code = 'EBUSY';
  return err;
}

/** Exclusive right to act on one cluster name, held until {@link ControllerLock.release}. */
export class ControllerLock {
  #fd: number | undefined;
  private constructor(
    fd: number,
    readonly name: string,
  ) {
    this.#fd = fd;
  }

  /**
   * Takes the lock, or throws `EBUSY` naming the process that holds it. A `destroy` at work holds
   * the lock only briefly: a controller waits for it (up to `waitMs`, default 30 s) instead of failing.
   */
  static async acquire(name: string, o: { role?: LockOwner['role']; waitMs?: number } = {}): Promise<ControllerLock> {
    const path = lockPath(name);
    const role = o.role ?? 'controller';
    mkdirSync(RUNTIME_DIR, { recursive: true, mode: 0o755 });
    const deadline = Date.now() + (o.waitMs ?? 30_000);
    let unknownSince: number | undefined;
    for (;;) {
      try {
        const fd = lockFile(path, JSON.stringify({ pid: process.pid, role }));
        return new ControllerLock(fd, name);
      } catch (e) {
        if (!(isKernelError(e) && (e.code === 'EWOULDBLOCK' || e.code === 'EAGAIN'))) throw notALock(name, e);
      }
      const owner = lockOwner(name);
      const now = Date.now();
      // A holder that has not written its record yet (it is between lock and write): ask again soon.
      if (!owner) unknownSince ??= now;
      const waitable = owner?.role === 'destroy' || (!owner && now - unknownSince! < 1000);
      if (!waitable || now > deadline) {
        const who = owner ? `${owner.role === 'destroy' ? 'a destroy run by ' : ''}process ${owner.pid}` : 'another process';
        throw busy(
          role === 'destroy'
            ? `cluster '${name}' is running (its controller, ${who}, holds ${path}); stop it instead ('netns-cluster down ${name}' or SIGTERM to ${owner?.pid ?? 'it'})`
            : `cluster '${name}' is already managed by ${who}; stop that one first (or, if it is stuck, kill it and run 'netns-cluster down ${name}')`,
        );
      }
      await sleep(20);
    }
  }

  /** Whether some live process holds the lock (a probe that never takes it). */
  static held(name: string): boolean {
    try {
      return lockHeld(lockPath(name));
    } catch (e) {
      throw notALock(name, e);
    }
  }

  /** Releases the lock; with `remove`, deletes the lock file first (while still holding it). */
  release(o: { remove?: boolean } = {}): void {
    if (this.#fd === undefined) return;
    if (o.remove) rmSync(lockPath(this.name), { force: true });
    unlockFile(this.#fd);
    this.#fd = undefined;
  }
}

export { writeJsonAtomic };

/** The most a state or status file may hold: these are small; anything larger is not ours. */
const MAX_JSON_BYTES = 1 << 20;

/** Reads a JSON file (a regular file of at most 1 MiB); undefined if it does not exist. */
export async function readJson<T>(path: string): Promise<T | undefined> {
  let text: string;
  try {
    text = readSmallFileSync(path, MAX_JSON_BYTES);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  return JSON.parse(text) as T;
}

export async function writeState(state: ClusterState): Promise<void> {
  checkStateShape(state, state.name);
  mkdirSync(RUNTIME_DIR, { recursive: true, mode: 0o755 });
  await writeJsonAtomic(statePath(state.name), state);
}

/** Why `v` is not a valid state file for cluster `name` (undefined: it is valid). */
function stateProblem(v: unknown, name: string): string | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'it is not a JSON object';
  const s = v as Record<string, unknown>;
  if (s.version !== 1) return `unknown version ${JSON.stringify(s.version)?.slice(0, 20)}`;
  if (s.name !== name) return `it names another cluster (${JSON.stringify(s.name)?.slice(0, 40)})`;
  if (!isPid(s.pid)) return `pid ${JSON.stringify(s.pid)?.slice(0, 20)} is not a process id (an integer above 1)`;
  if (typeof s.startedAt !== 'string') return 'startedAt is missing';
  if (s.hostNetns !== undefined && (typeof s.hostNetns !== 'string' || !/^[^/\0]{1,255}$/.test(s.hostNetns) || s.hostNetns === '.' || s.hostNetns === '..'))
    return 'hostNetns is not a namespace name';
  if (!Array.isArray(s.nodes) || !s.nodes.every((n, k) => n === `${name}-n${k}`)) return `nodes must be ['${name}-n0', …]`;
  if (s.uplink !== undefined && (typeof s.uplink !== 'string' || !/^[^/\s:\0%]{1,15}$/.test(s.uplink))) return 'uplink is not an interface name';
  if (s.vmac !== undefined && (typeof s.vmac !== 'string' || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(s.vmac))) return 'vmac is not a MAC address';
  if (s.home !== undefined && (!Array.isArray(s.home) || !s.home.every((x) => Number.isInteger(x) && x >= 0 && x < (s.nodes as unknown[]).length)))
    return 'home is not a bucket table of the nodes';
  if (s.iptablesTable !== undefined && s.iptablesTable !== 'filter' && s.iptablesTable !== 'mangle') return "iptablesTable is not 'filter' or 'mangle'";
  if (s.restore !== undefined) {
    const r = s.restore as Record<string, unknown>;
    if (typeof r !== 'object' || r === null) return 'restore is not an object';
    if (r.uplinkWasDown !== undefined && typeof r.uplinkWasDown !== 'boolean') return 'restore.uplinkWasDown is not a boolean';
    if (r.hostId !== undefined && (typeof r.hostId !== 'string' || !/^\d+:\d+$/.test(r.hostId))) return 'restore.hostId is not a namespace identity';
    if (r.uplinkIndex !== undefined && !(Number.isInteger(r.uplinkIndex) && (r.uplinkIndex as number) > 0)) return 'restore.uplinkIndex is not an interface index';
    if (r.sysctls !== undefined) {
      if (typeof r.sysctls !== 'object' || r.sysctls === null) return 'restore.sysctls is not an object';
      for (const [k, val] of Object.entries(r.sysctls)) if (!RESTORABLE_SYSCTLS.includes(k) || typeof val !== 'string' || !/^[0-9]$/.test(val)) return `restore.sysctls has an entry netns-cluster never writes ('${k.slice(0, 60)}')`;
    }
  }
  return undefined;
}

function checkStateShape(v: unknown, name: string): asserts v is ClusterState {
  const p = stateProblem(v, name);
  if (p) throw new Error(`state of cluster '${name}' is invalid: ${p}`);
}

/** The state file of `name`, checked; `problem` says why it could not be used (unreadable, corrupt). */
export async function loadState(name: string): Promise<{ state?: ClusterState; problem?: string }> {
  const path = statePath(name);
  let v: unknown;
  try {
    v = await readJson<unknown>(path);
  } catch (e) {
    return { problem: `${path}: ${(e as Error).message.replace(`${path}: `, '').slice(0, 200)}` };
  }
  if (v === undefined) return {};
  const p = stateProblem(v, name);
  return p ? { problem: `${path}: ${p}` } : { state: v as ClusterState };
}

/** The checked state file of `name`; undefined if there is none. Throws if it is corrupt. */
export async function readState(name: string): Promise<ClusterState | undefined> {
  const { state, problem } = await loadState(name);
  if (problem) throw Object.assign(new Error(`${problem}; 'netns-cluster down ${name}' moves it aside and cleans up`), { code: 'ERR_BAD_STATE_FILE' });
  return state;
}

/**
 * Moves a bad state file aside (`<name>.json.corrupt`), so that nothing acts on it again; it stays
 * for the operator to inspect. Returns the new path.
 */
export async function quarantineState(name: string): Promise<string> {
  const to = `${statePath(name)}.corrupt`;
  await rename(statePath(name), to).catch((e) => {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  });
  return to;
}

/**
 * What netns-cluster keeps in the runtime directory, by name: `<name>` (the runtime directory),
 * `<name>.json`, `<name>.lock`, `<name>.json.corrupt`, and the temporary names of a write or a
 * delete in progress (`<name>.json.<pid>.tmp`, `<name>.<pid>.dir.tmp`). Group 1 is the cluster.
 */
const RUNTIME_ENTRY = /^([^.]*)(?:\.json|\.lock|\.json\.\d+\.tmp|\.\d+\.dir\.tmp|\.json\.corrupt)?$/;
const TEMPORARY = /\.\d+\.tmp$|\.\d+\.dir\.tmp$/;

/** The names of every cluster with something in the runtime directory, and the files that are not any cluster's. */
export async function scanRuntimeDir(): Promise<{ names: string[]; problems: StateProblem[] }> {
  let files: string[];
  try {
    files = await readdir(RUNTIME_DIR);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { names: [], problems: [] };
    throw e;
  }
  const names = new Set<string>();
  const problems: StateProblem[] = [];
  for (const f of files.sort()) {
    const m = RUNTIME_ENTRY.exec(f);
    if (f.endsWith('.json.corrupt') && m && isClusterName(m[1])) {
      problems.push({ file: join(RUNTIME_DIR, f), name: m[1], reason: 'a state file moved aside as corrupt; inspect it, then delete it' });
      continue;
    }
    if (m && isClusterName(m[1]) && f === m[1] && !(await isOurDir(join(RUNTIME_DIR, f)))) {
      problems.push({ file: join(RUNTIME_DIR, f), name: m[1], reason: 'a directory netns-cluster did not make (no .netns-cluster marker in it); left alone' });
      continue;
    }
    if (m && isClusterName(m[1])) names.add(m[1]);
    else problems.push({ file: join(RUNTIME_DIR, f), reason: 'not a file netns-cluster makes (its name is not a cluster name); left alone' });
  }
  return { names: [...names], problems };
}

/** Clusters that have a state file, with whether a live controller holds each; bad files are reported in `problems`. */
export async function listClusters(o: { problems?: StateProblem[] } = {}): Promise<{ name: string; state: ClusterState; running: boolean }[]> {
  const { names, problems } = await scanRuntimeDir();
  o.problems?.push(...problems);
  const out = [];
  for (const name of names) {
    const { state, problem } = await loadState(name);
    if (problem) o.problems?.push({ file: statePath(name), name, reason: problem });
    let running = false;
    try {
      running = ControllerLock.held(name);
    } catch (e) {
      o.problems?.push({ file: lockPath(name), name, reason: (e as Error).message });
    }
    if (state) out.push({ name, state, running });
  }
  return out;
}

/** Removes every file of cluster `name` but its lock: the state file, temporary files, the runtime directory (if ours). */
export async function removeState(name: string): Promise<void> {
  const base = checkClusterName('name', name);
  await rm(statePath(base), { force: true });
  let files: string[] = [];
  try {
    files = await readdir(RUNTIME_DIR);
  } catch {
    /* nothing */
  }
  const isTemporary = (f: string) => RUNTIME_ENTRY.exec(f)?.[1] === base && TEMPORARY.test(f);
  const dir = runtimeDir(base);
  // The marked directory is first renamed to a temporary name of ours (one step), then emptied:
  // a crash in the middle leaves a temporary directory the next removal finishes, never an
  // unmarked directory under the cluster's own name.
  if (await isOurDir(dir)) {
    const doomed = `${dir}.${process.pid}.dir.tmp`;
    await rm(doomed, { recursive: true, force: true });
    await rename(dir, doomed);
    files.push(basename(doomed));
  }
  for (const f of files) if (isTemporary(f)) await rm(join(RUNTIME_DIR, f), { recursive: true, force: true });
}
