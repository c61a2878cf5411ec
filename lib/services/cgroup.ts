/**
 * Containment of the nodes' services in cgroup v2 groups, as systemd's `KillMode=control-group`:
 * every node's service runs in `<cgroup2>/netns-cluster/<cluster>/node<k>`, which the netns-exec
 * helper joins before it execs the service, so every process the service forks is in that group
 * from its first instruction and is killed with it, even after a crash of the controller.
 *
 * Only paths under `<cgroup2>/netns-cluster/` are ever touched: that level marks the tree as this
 * library's. Where cgroup2 is not mounted (or not writable) services run in a process group of
 * their own instead, and a child that starts its own session escapes: see {@link cgroupWarning}.
 * @module
 */
import { readFileSync, statfsSync } from 'node:fs';
import { access, constants, mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { InvalidArgumentError } from '../util/errors.js';
import { checkClusterName } from '../util/names.js';
import { checkUint } from '../util/validate.js';

/** The directory under the cgroup2 mount that marks the groups as this library's. */
export const CGROUP_TOP = 'netns-cluster';

const CGROUP2_SUPER_MAGIC = 0x63677270;

/** `\040`-style escapes of /proc/self/mountinfo. */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * Where the cgroup v2 hierarchy is mounted, from /proc/self/mountinfo (`/sys/fs/cgroup` on a
 * unified host, `/sys/fs/cgroup/unified` on a hybrid one), or undefined when it is not mounted.
 */
export function cgroupRoot(): string | undefined {
  let info: string;
  try {
    info = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return undefined;
  }
  const found: { root: string; point: string }[] = [];
  for (const line of info.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const [fstype] = line.slice(sep + 3).split(' ');
    if (fstype !== 'cgroup2') continue;
    const f = line.slice(0, sep).split(' ');
    found.push({ root: unescapeMountField(f[3]), point: unescapeMountField(f[4]) });
  }
  // The mount of the hierarchy's root (a bind mount of a subgroup elsewhere is not it).
  const best = found.find((m) => m.root === '/') ?? found[0];
  if (!best) return undefined;
  try {
    if (statfsSync(best.point).type !== CGROUP2_SUPER_MAGIC) return undefined;
  } catch {
    return undefined;
  }
  return best.point;
}

/** The top of this library's groups, `<cgroup2>/netns-cluster`, or undefined without cgroup2. */
export function cgroupTop(): string | undefined {
  const root = cgroupRoot();
  return root === undefined ? undefined : join(root, CGROUP_TOP);
}

/** The warning for hosts without a usable cgroup2 (services then run in process groups). */
export const CGROUP_FALLBACK_WARNING =
  'cgroup v2 is not mounted or not writable here: each service runs in a process group of its own instead, ' +
  'and a process it forks that starts its own session (a daemon) escapes the stop, the restart and the ' +
  'cleanup after a crash. Mount cgroup2 (e.g. on /sys/fs/cgroup) to contain services completely.';

/**
 * Undefined when services can be contained in cgroup v2 groups here (cgroup2 mounted and
 * writable), otherwise {@link CGROUP_FALLBACK_WARNING} with the reason.
 */
export async function cgroupWarning(): Promise<string | undefined> {
  const root = cgroupRoot();
  if (root === undefined) return CGROUP_FALLBACK_WARNING;
  try {
    await access(root, constants.W_OK);
    return undefined;
  } catch (e) {
    return `${CGROUP_FALLBACK_WARNING} (${root}: ${(e as NodeJS.ErrnoException).code ?? String(e)})`;
  }
}

/** A path strictly below `<cgroup2>/netns-cluster/`, or an InvalidArgumentError. */
function ours(field: string, path: unknown): string {
  if (typeof path !== 'string' || !path.startsWith('/') || path.includes('\0'))
    throw new InvalidArgumentError(field, 'must be an absolute path of a cgroup directory');
  const top = cgroupTop();
  if (top === undefined) throw new InvalidArgumentError(field, 'cgroup v2 is not mounted on this host');
  const p = resolve(path);
  if (!p.startsWith(`${top}/`))
    throw new InvalidArgumentError(field, `'${p.length > 60 ? `${p.slice(0, 60)}…` : p}' is not a group of netns-cluster: only groups under ${top}/ are ever touched`);
  return p;
}

/** Groups of a cluster that are not a node's: a host-namespace service such as BIRD (`bird`). */
const HOST_GROUP = /^host-[a-z][a-z0-9-]{0,15}$/;

/**
 * Creates (if needed) the group of node `index` of cluster `cluster`,
 * `<cgroup2>/netns-cluster/<cluster>/node<index>`, and returns its path; undefined when cgroup2
 * is not mounted. Rejects when the group cannot be created (e.g. a read-only cgroup file system).
 * `group` instead of an index names a group for a service of the host namespace,
 * `host-<name>` (e.g. `host-bird`): under the cluster's directory too, so it dies with the cluster.
 */
export async function serviceCgroup(cluster: string, index: number | string): Promise<string | undefined> {
  checkClusterName('cluster', cluster);
  if (typeof index === 'string') {
    if (!HOST_GROUP.test(index)) throw new InvalidArgumentError('group', `'${index.slice(0, 40)}' is not a host service group: write host-<name> (a-z, 0-9, '-')`);
  } else checkUint('index', index, 0, 4095);
  const top = cgroupTop();
  if (top === undefined) return undefined;
  const dir = join(top, cluster, typeof index === 'string' ? index : `node${index}`);
  for (let tries = 0; ; tries++) {
    try {
      await mkdir(dir, { recursive: true });
      return dir;
    } catch (e) {
      // ENOENT: another node's stop removed the cluster's directory between the two mkdirs.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || tries >= 10) throw e;
    }
  }
}

async function readLines(file: string): Promise<string[]> {
  try {
    return (await readFile(file, 'utf8')).split('\n').filter(Boolean);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENODEV') return [];
    throw e;
  }
}

/** The group and all its descendants, deepest first. Missing directories are skipped. */
async function subtree(dir: string): Promise<string[]> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const below = await Promise.all(entries.filter((e) => e.isDirectory()).map((e) => subtree(join(dir, e.name))));
  return [...below.flat(), dir];
}

/** Pids in the group and its descendants. */
export async function cgroupPids(path: string): Promise<number[]> {
  const dir = ours('path', path);
  const pids: number[] = [];
  for (const g of await subtree(dir)) for (const l of await readLines(join(g, 'cgroup.procs'))) pids.push(Number(l));
  return pids;
}

/** Whether any process is in the group or below (`populated 1` in cgroup.events); false when it is gone. */
export async function cgroupPopulated(path: string): Promise<boolean> {
  const dir = ours('path', path);
  return (await readLines(join(dir, 'cgroup.events'))).includes('populated 1');
}

/** Sends `signal` to every process of the group and its descendants; returns how many were signalled. */
export async function signalCgroup(path: string, signal: NodeJS.Signals): Promise<number> {
  let n = 0;
  for (const pid of await cgroupPids(path)) {
    try {
      process.kill(pid, signal);
      n++;
    } catch {
      // exited meanwhile
    }
  }
  return n;
}

/** How {@link emptyCgroup} kills: `cgroup.kill` (Linux 5.14+), freeze then SIGKILL each pid, or SIGKILL each pid until none is left. */
export type CgroupKillMethod = 'cgroup.kill' | 'freeze' | 'signals';

export interface CgroupKillOptions {
  /** Default: the first that the kernel offers. The others exist for older kernels (and their tests). */
  method?: CgroupKillMethod;
  /** Give up (reject with code ETIMEDOUT) when processes remain this long. Default 10 s. */
  timeoutMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

/**
 * Kills every process of the group and its descendants with SIGKILL and waits until the kernel
 * says the group is empty (`populated 0`). The directories stay. Resolves to the number of
 * processes that were in it. Does nothing for a group that does not exist.
 */
export async function emptyCgroup(path: string, o: CgroupKillOptions = {}): Promise<number> {
  const dir = ours('path', path);
  const timeoutMs = o.timeoutMs ?? 10_000;
  if (!(await exists(dir))) return 0;
  const before = new Set(await cgroupPids(dir));
  const method: CgroupKillMethod = o.method ?? ((await exists(join(dir, 'cgroup.kill'))) ? 'cgroup.kill' : (await exists(join(dir, 'cgroup.freeze'))) ? 'freeze' : 'signals');
  const deadline = Date.now() + timeoutMs;
  const write = async (file: string, value: string) => {
    try {
      await writeFile(join(dir, file), value);
    } catch (e) {
      // ENODEV: the group was removed between our look and the write (another stop emptied it).
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENODEV') throw e;
    }
  };
  let frozen = false;
  try {
    if (method === 'cgroup.kill') {
      await write('cgroup.kill', '1');
    } else if (method === 'freeze') {
      // Frozen, nothing in the group can fork while we kill; SIGKILL still ends frozen tasks.
      await write('cgroup.freeze', '1');
      frozen = true;
    }
    for (let round = 0; ; round++) {
      if (!(await cgroupPopulated(dir))) break;
      if (method !== 'cgroup.kill' || round % 50 === 49) {
        // Every pid, again and again until none is left: a fork between the read and the kill is caught next round.
        for (const pid of await cgroupPids(dir)) {
          before.add(pid);
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone
          }
        }
      }
      if (Date.now() > deadline) {
        const left = await cgroupPids(dir);
        const e = new Error(`cgroup ${dir}: processes ${left.join(', ')} still there ${timeoutMs} ms after SIGKILL (stuck in the kernel?)`);
        (e as NodeJS.ErrnoException).code = 'ETIMEDOUT';
        throw e;
      }
      await sleep(round < 20 ? 2 : 20);
    }
  } finally {
    if (frozen) await write('cgroup.freeze', '0').catch(() => {});
  }
  return before.size;
}

/**
 * Kills every process of the group and its descendants (see {@link emptyCgroup}) and removes
 * their directories. Idempotent: a group that is gone already gives `{ killed: 0, removed: [] }`.
 * Only groups under `<cgroup2>/netns-cluster/` are accepted.
 */
export async function killCgroup(path: string, o: CgroupKillOptions = {}): Promise<{ killed: number; removed: string[] }> {
  const dir = ours('path', path);
  const killed = await emptyCgroup(dir, o);
  const removed: string[] = [];
  for (const g of await subtree(dir)) {
    for (let tries = 0; ; tries++) {
      try {
        await rmdir(g);
        removed.push(g);
        break;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        // EBUSY: a process got in after the check (a racing start), or the kernel is still
        // releasing the last one: empty it again.
        if (code === 'EBUSY' && tries < 20) {
          await emptyCgroup(g, o);
          await sleep(5);
          continue;
        }
        throw e;
      }
    }
  }
  return { killed, removed };
}

/**
 * Kills every process of every node group of cluster `cluster` and removes the groups and the
 * cluster's directory: for `destroyCluster` after a crashed controller, whose services' forked
 * children would otherwise run on. Validates the name as the spec does; touches nothing outside
 * `<cgroup2>/netns-cluster/<cluster>/`. Without cgroup2 there is nothing to do.
 */
export async function killClusterCgroups(cluster: string, o: CgroupKillOptions = {}): Promise<{ killed: number; removed: string[] }> {
  checkClusterName('cluster', cluster);
  const top = cgroupTop();
  if (top === undefined) return { killed: 0, removed: [] };
  const r = await killCgroup(join(top, cluster), o);
  await removeClusterCgroupDir(cluster);
  return r;
}

/**
 * Removes the cluster's directory if it is empty (a node group is still there otherwise), and
 * `<cgroup2>/netns-cluster` if no other cluster has one.
 */
export async function removeClusterCgroupDir(cluster: string): Promise<void> {
  checkClusterName('cluster', cluster);
  const top = cgroupTop();
  if (top === undefined) return;
  for (const dir of [join(top, cluster), top]) {
    try {
      await rmdir(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return; // not empty (another node's or cluster's group) or busy
    }
  }
}
