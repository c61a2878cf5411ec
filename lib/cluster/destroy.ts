/**
 * Removing a cluster: one mechanism for a failed build's rollback, `close()`, `destroyCluster`
 * (after a crashed controller) and `sweepClusters`. It acts only on objects that carry the
 * cluster's mark ({@link markOf}): links by their alias, node namespaces by their loopback's alias,
 * the nft table by its comment, the runtime directory by its marker file, service processes by
 * their cgroup. Something with a cluster's name but without its mark is reported and left alone.
 * @module
 */
import { submit, type NativeOp } from '../kernel/engine.js';
import { InvalidArgumentError, isKernelError } from '../util/errors.js';
import { killClusterCgroups } from '../services/cgroup.js';
import { faultPoint } from '../util/fault.js';
import { Netns } from '../kernel/netns.js';
import { listTables, type NftTableInfo } from '../rules/nft.js';
import { HOST_FAMILIES } from '../rules/ruleset.js';
import { CLIENT_ROUTE_PROTOCOL, checkClusterName, clusterNames, markOf } from '../util/names.js';
import { ControllerLock, listClusters, loadState, quarantineState, removeState, RESTORABLE_SYSCTLS, scanRuntimeDir, type HostRestore, type StateProblem } from './state.js';
import { lstat, readFile, stat, unlink } from 'node:fs/promises';

const GONE = ['ENOENT', 'ENODEV', 'ESRCH'];
const gone = (e: unknown) => isKernelError(e) && GONE.includes(e.code);

/** What a removal did. */
/** The host namespace's nft tables in the families a cluster's host table can have (steer: netdev, flood: bridge). */
export async function hostTables(host: Netns): Promise<NftTableInfo[]> {
  return (await listTables(host)).filter((t) => HOST_FAMILIES.includes(t.family));
}

export interface RemovalReport {
  /** Node namespaces deleted. */
  namespaces: string[];
  /** Host objects deleted or released (`bridge labbr`, `nft table bridge nc-lab`, …). */
  hostObjects: string[];
  /** Things with the cluster's names that were not its own (not marked), left alone. */
  notOurs: string[];
  /** Service processes killed. */
  processes: number;
  /** Host settings put back (`net.ipv4.ip_forward=0`, `uplink eth1 down`). */
  restored: string[];
}

export interface RemovalTarget {
  name: string;
  /** The host namespace, open (the caller closes it), or undefined if it no longer exists. */
  host: Netns | undefined;
  /** Node namespaces known to be this cluster's (handles are closed by the removal). */
  nodes?: (string | Netns)[];
  /** A bridged uplink: released from the bridge, and set down again if it was down. */
  uplink?: string;
  /**
   * The bridge's MAC (derived from the cluster's seed): a bridge of the cluster's name that a kill
   * left between its creation and its mark is recognised by it.
   */
  vmac?: string;
  restore?: HostRestore;
  /** The host namespace's name, to tell whether another cluster shares it (for sysctls). */
  hostNetns?: string;
  /**
   * The restore record is this process's own (close, rollback). Otherwise (destroy after a crash)
   * it is acted on only with evidence: the host namespace is the one recorded, and the cluster's
   * marked bridge or table was found there.
   */
  trusted?: boolean;
}

/** A namespace's identity: the device and inode of its nsfs file. */
export async function namespaceId(ns: Netns): Promise<string> {
  const st = await stat(ns.path);
  return `${st.dev}:${st.ino}`;
}

/**
 * Removes every marked object of cluster `name`, then waits until the kernel has really removed
 * the node namespaces' veths. Collects errors and throws the first after doing all it can.
 */
export async function removeClusterObjects(t: RemovalTarget): Promise<RemovalReport> {
  const name = checkClusterName('name', t.name);
  const mark = markOf(name);
  const n = clusterNames(name);
  const report: RemovalReport = { namespaces: [], hostObjects: [], notOurs: [], processes: 0, restored: [] };
  const errors: Error[] = [];
  const keep = (e: unknown) => {
    if (!gone(e)) errors.push(e as Error);
  };

  // Services first, whole cgroups: nothing may live on in a namespace that is about to go.
  try {
    report.processes = (await killClusterCgroups(name)).killed;
  } catch (e) {
    errors.push(e as Error);
  }
  faultPoint('remove:processes-killed');

  // Node namespaces: the handles we hold are ours; names found on disk only if marked.
  const handles = (t.nodes ?? []).filter((x): x is Netns => typeof x !== 'string');
  const known = new Set(handles.map((h) => h.name!));
  const pattern = new RegExp(`^${name}-n\\d+$`);
  const candidates = new Set([...(t.nodes ?? []).filter((x): x is string => typeof x === 'string'), ...(await Netns.list()).filter((x) => pattern.test(x))]);
  const byName: string[] = [];
  const listedByState = new Set((t.nodes ?? []).filter((x): x is string => typeof x === 'string'));
  const mounts = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  await Promise.all(
    [...candidates]
      .filter((x) => !known.has(x))
      .map(async (x) => {
        const m = await Netns.readMark(x).catch(() => undefined);
        if (m === mark) byName.push(x);
        else if (m === undefined && listedByState.has(x) && (await isStaleNetnsFile(x, mounts))) {
          // An empty file a kill left between a namespace's unmount and its unlink (or its create
          // and its mount), of a node this cluster's state names: no namespace, only the name.
          await unlink(`/run/netns/${x}`).catch(() => {});
        } else if (m !== undefined || (await Netns.list()).includes(x)) report.notOurs.push(`namespace ${x}`);
      }),
  );
  try {
    await Netns.deleteMany([...handles, ...byName]);
    report.namespaces.push(...handles.map((h) => h.name!), ...byName);
  } catch (e) {
    keep(e);
  }
  faultPoint('remove:namespaces-deleted');

  const host = t.host;
  if (host && !host.closed) {
    // The nft table, by handle after checking its comment; the marked links, by index.
    const [tables, links] = await Promise.all([hostTables(host).catch((e) => (keep(e), [])), host.listLinks()]);
    const ops: NativeOp[] = [];
    const labels: string[] = [];
    for (const tb of tables.filter((x) => x.name === n.table)) {
      if (tb.comment !== mark) {
        report.notOurs.push(`nft table ${tb.family} ${tb.name}`);
        continue;
      }
      ops.push({ type: 'nft.batch', netns: host.handle, commands: [{ cmd: 'deleteTable', family: tb.family, name: tb.name, handle: tb.handle }] });
      labels.push(`nft table ${tb.family} ${tb.name}`);
    }
    const ourLinks = links.filter((l) => l.alias === mark || (l.name === n.bridge && l.kind === 'bridge' && l.alias === undefined && t.vmac !== undefined && l.mac === t.vmac));
    // Routes to single addresses behind the nodes (stable VPN client addresses): ours when they
    // carry the cluster's protocol number and leave through one of its links. Deleted first, by
    // exact match (the kernel would drop them with the links, but only once those are gone).
    for (const { op, label } of await clientRouteDeletes(host, ourLinks).catch((e) => (keep(e), []))) {
      ops.push(op);
      labels.push(label);
    }
    // The bridge and the routed port now; the node veths go with their namespaces (waited for below).
    for (const l of ourLinks.filter((l) => l.kind !== 'veth' || l.name === n.routedUplinkPort)) {
      ops.push({ type: 'link.del', netns: host.handle, link: l.index });
      labels.push(`${l.kind} ${l.name}`);
    }
    for (const name of [n.bridge, n.routedUplinkPort]) {
      if (links.some((l) => l.name === name && !ourLinks.includes(l))) report.notOurs.push(`link ${name}`);
    }
    const results = ops.length ? await submit(ops, false) : [];
    results.forEach((r, i) => (r instanceof Error ? keep(r) : report.hostObjects.push(labels[i])));
    faultPoint('remove:host-cleaned');
    // What the cluster changed on the host goes back only with evidence that it was this cluster,
    // here: a restore record of our own, or one that names this very namespace (its nsfs identity,
    // recorded before the build; a stale or foreign record does not match).
    const sameHost = t.restore?.hostId !== undefined && t.restore.hostId === (await namespaceId(host).catch(() => undefined));
    if (t.trusted || sameHost) {
      // A bridged uplink: deleting the bridge released it; put its up/down state back (the same interface only).
      const up = t.uplink ? links.find((l) => l.name === t.uplink) : undefined;
      if (up && t.restore?.uplinkWasDown && (t.restore.uplinkIndex === undefined || t.restore.uplinkIndex === up.index)) {
        try {
          await host.setLink(up.index, { up: false });
          report.restored.push(`uplink ${t.uplink} down`);
        } catch (e) {
          keep(e);
        }
      }
      await restoreSysctls(host, t, report).catch(keep);
    }
    try {
      await waitMarkedVethsGone(host, mark);
    } catch (e) {
      keep(e);
    }
  }
  if (errors.length) throw errors[0];
  return report;
}

/**
 * Deletions of the cluster's routes to single addresses (stable VPN client addresses) in the host
 * namespace: those with its routing protocol number that leave through one of `links` (the
 * cluster's marked links). Each is deleted by exact match (destination, gateway, protocol, table).
 */
export async function clientRouteDeletes(host: Netns, links: readonly { index: number }[]): Promise<{ op: NativeOp; label: string }[]> {
  const ours = new Set(links.map((l) => l.index));
  const routes = await host.listRoutes({ table: 'all' });
  return routes
    .filter((r) => r.protocol === CLIENT_ROUTE_PROTOCOL && r.index !== undefined && ours.has(r.index))
    .map((r) => ({
      op: { type: 'route.del', netns: host.handle, destination: r.destination, family: r.family, ...(r.via ? { via: r.via } : {}), protocol: CLIENT_ROUTE_PROTOCOL, table: r.table },
      label: `route ${r.destination}${r.via ? ` via ${r.via}` : ''}`,
    }));
}

/** `/run/netns/<name>` is a plain empty file, not a namespace mount. */
async function isStaleNetnsFile(name: string, mounts: string): Promise<boolean> {
  if (mounts.includes(` /run/netns/${name} `)) return false;
  try {
    const st = await lstat(`/run/netns/${name}`);
    return st.isFile() && st.size === 0;
  } catch {
    return false;
  }
}

/** Puts back host sysctls the cluster changed, unless another cluster still uses that namespace. */
async function restoreSysctls(host: Netns, t: RemovalTarget, report: RemovalReport): Promise<void> {
  const sysctls = Object.entries(t.restore?.sysctls ?? {}).filter(([key]) => RESTORABLE_SYSCTLS.includes(key));
  if (!sysctls.length) return;
  const others = (await listClusters()).filter((c) => c.name !== t.name && c.state.hostNetns === t.hostNetns);
  if (others.length) return; // they may rely on forwarding: the last cluster out restores
  for (const [key, value] of sysctls) {
    await host.writeSysctl(key, value);
    report.restored.push(`${key}=${value}`);
  }
}

/**
 * Waits until no veth marked `mark` (of those named in `only`, if given) is left in the host namespace: the kernel destroys a deleted
 * namespace (and the veth pairs into it) asynchronously, so this is when it is really gone.
 * Something can keep a deleted namespace alive for a while (an orphaned TCP socket still closing);
 * after `patienceMs` the remaining veths are deleted from the host side, which takes their other
 * ends along at once.
 */
export async function waitMarkedVethsGone(host: Netns, mark: string, o: { patienceMs?: number; only?: string[] } = {}): Promise<void> {
  const patienceMs = o.patienceMs ?? 3000;
  const left = async () => (await host.listLinks()).filter((l) => l.kind === 'veth' && l.alias === mark && (!o.only || o.only.includes(l.name)));
  const deadline = Date.now() + patienceMs;
  let remaining = await left();
  while (remaining.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 2));
    remaining = await left();
  }
  if (remaining.length === 0) return;
  const results = await submit(remaining.map((l): NativeOp => ({ type: 'link.del', netns: host.handle, link: l.index })), false);
  const failed = results.find((r) => r instanceof Error && !gone(r));
  if (failed) throw failed;
}

export interface DestroyReport extends RemovalReport {
  name: string;
  /** Files that were not usable (a corrupt state file, moved aside). */
  problems: string[];
}

/**
 * Removes whatever cluster `name` left behind — after a crashed controller too: its service
 * processes, node namespaces, bridge, routed-uplink veth, nft table and runtime files, and puts back
 * the host settings it changed. Holds the cluster's lock from its first look to its last delete, so
 * it can never race a controller; refuses (EBUSY) while a live controller manages the cluster.
 * Touches only objects marked as this cluster's. Idempotent.
 */
export async function destroyCluster(name: string, o: { hostNetns?: string } = {}): Promise<DestroyReport> {
  checkClusterName('name', name);
  if (o.hostNetns !== undefined && (typeof o.hostNetns !== 'string' || o.hostNetns === '' || o.hostNetns.includes('/')))
    throw new InvalidArgumentError('hostNetns', "give the name of the host namespace under /run/netns (no '/')");
  const lock = await ControllerLock.acquire(name, { role: 'destroy', waitMs: 10_000 });
  faultPoint('destroy:locked');
  try {
    const problems: string[] = [];
    const { state, problem } = await loadState(name);
    if (problem) problems.push(`${problem}; moved aside to ${await quarantineState(name)}`);
    const hostNetns = o.hostNetns ?? state?.hostNetns;
    let host: Netns | undefined;
    try {
      host = await Netns.open(hostNetns);
    } catch (e) {
      if (!(isKernelError(e) && e.code === 'ENOENT')) throw e; // the host namespace is gone: nothing left there
    }
    try {
      const report = await removeClusterObjects({ name, host, nodes: state?.nodes, uplink: state?.uplink, restore: state?.restore, hostNetns, vmac: state?.vmac });
      await removeState(name);
      faultPoint('destroy:state-removed');
      return { name, problems, ...report };
    } finally {
      await host?.close();
    }
  } finally {
    lock.release({ remove: true });
  }
}

/**
 * Destroys every cluster whose controller is gone (only those whose name starts with `prefix`,
 * when given): those with a state file, and those that left only a lock, a temporary file or a
 * runtime directory. Running clusters are not touched. Returns their names; files that are not a
 * cluster's are reported in `problems` and left alone.
 */
export async function sweepClusters(o: { prefix?: string; problems?: StateProblem[] } = {}): Promise<string[]> {
  if (o.prefix !== undefined && (typeof o.prefix !== 'string' || !/^[a-z][a-z0-9-]{0,9}$/.test(o.prefix)))
    throw new InvalidArgumentError('prefix', `'${String(o.prefix).slice(0, 40)}' is not the start of a cluster name: give at least its first letter (a-z, then a-z, 0-9 or '-')`);
  const { names, problems } = await scanRuntimeDir();
  o.problems?.push(...problems);
  const swept: string[] = [];
  for (const name of names) {
    if (o.prefix !== undefined && !name.startsWith(o.prefix)) continue;
    try {
      if (ControllerLock.held(name)) continue;
      await destroyCluster(name);
    } catch (e) {
      // A controller took the name between our look and our lock: it is running, not ours to sweep.
      if ((e as NodeJS.ErrnoException).code === 'EBUSY') continue;
      // One cluster's broken files (a lock that is not a lock) must not stop the sweep of the others.
      o.problems?.push({ file: name, name, reason: `could not be removed: ${(e as Error).message}`, failed: true });
      continue;
    }
    swept.push(name);
  }
  return swept;
}
