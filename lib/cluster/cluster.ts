/**
 * `createCluster`: N namespaces behind one bridge, all holding the same VIP, with flows spread
 * over them by a stateless hash (shared/DESIGN.md). Builds everything in a few pipelined jobs,
 * rolls back on any failure, and removes everything on `close()`.
 * @module
 */
import { EventEmitter } from 'node:events';
// Registers the { openvpn } service kind, so that createCluster accepts it whoever imports this module.
import '../services/openvpn/service.js';
import { submit, submitAll, type NativeOp } from '../kernel/engine.js';
import type { LinkInfo } from '../kernel/types.js';
import { InvalidArgumentError, isKernelError } from '../util/errors.js';
import type { FlowKey } from '../rules/jhash.js';
import { cidrOverlap, lastHost } from '../util/ipmath.js';
import { backendFor, type BackendContext, type DataPlaneBackend, type NodeCounters } from '../rules/backend.js';
import { iptablesSupport, type IptablesKind } from '../rules/iptables.js';
import { rulesetOp } from '../rules/iptables-backend.js';
import { IPT_CHAIN } from '../rules/iptables.js';
import { CLIENT_ROUTE_PROTOCOL, clusterNames, markOf } from '../util/names.js';
import { BRIDGE_NF_SYSCTLS } from '../util/defaults.js';
import { applyBatch, diffPlan, linkState, readActual, tableDifferences, unmarkedVethOfOurs, uplinkFound } from './apply.js';
import { keyOf, nodeSysctls, planBatch, planCluster, planLayout, planNodes, homeBuckets, forwardingSysctls, type ClusterPlan, type PlannedNode, type PlannedTable } from './plan.js';
import { clientRouteDeletes, hostTables, namespaceId, removeClusterObjects, waitMarkedVethsGone } from './destroy.js';
import { cgroupWarning, killClusterCgroups } from '../services/cgroup.js';
import { faultPoint } from '../util/fault.js';
import { listElements, listRules, listTables, type NftCommand, type NftRuleInfo, type NftTableInfo } from '../rules/nft.js';
import { carryCounters } from '../rules/backend-nft.js';
import { Batch, Netns } from '../kernel/netns.js';
import { hostFamily, nodeChain, snatRules, type Layout } from '../rules/ruleset.js';
import { resolveSpec, type ClusterSpec, type ResolvedSpec } from './spec.js';
import { ControllerLock, loadState, removeState, writeState, type ClusterState, type HostRestore } from './state.js';
import { checkIp, type Cidr } from '../util/validate.js';
import { NodeService, type LogLine, type NodeRoutes, type ServiceContext, type ServiceState } from '../services/service.js';
import { ensureRuntimeDir } from './state.js';
import { mkdir } from 'node:fs/promises';
import { BgpAnnouncer, preflightBgp, type BgpStatus } from '../services/bgp/bird.js';
import { join } from 'node:path';

/** One node of the cluster: its namespace (usable with `ip -n`), interface, MAC and unique addresses (see {@link PlannedNode}). */
export type ClusterNode = PlannedNode;

/**
 * One transaction that replaces planned table `t` whole in `ns`: `found` (the marked table there
 * now, deleted by its handle) and `before` (other tables to delete with it) go, the plan's commands
 * come, with the host table's per-node counters starting where `counted` (its rules) had them.
 */
function replaceTableOp(t: PlannedTable, ns: Netns, found: NftTableInfo | undefined, counted: readonly NftRuleInfo[], before: NftCommand[] = []): NativeOp {
  const commands = t.netns === undefined && found ? carryCounters(t.commands, counted) : t.commands;
  return {
    type: 'nft.batch',
    netns: ns.handle,
    commands: [...before, ...(found ? [{ cmd: 'deleteTable' as const, family: t.family, name: t.name, handle: found.handle }] : []), ...commands],
  };
}

export type NodeState = 'up' | 'down';
export type { NodeCounters };

export interface ClusterEvents {
  /** Buckets changed owner: `moves[bucket] = [from, to]` (-1: no owner). */
  rebalance: [{ moves: Record<number, [number, number]> }];
  /**
   * A node left the distribution: `reason` says why. After a service exit, `latencyMs` is the time
   * from Node seeing the exit to the new bucket table being in the kernel.
   */
  'node-down': [{ index: number; reason: 'manual' | 'exit' | 'failed'; latencyMs?: number }];
  'node-up': [{ index: number; reason: 'manual' | 'ready' }];
  /** A node's service exited while it was meant to run (it will be restarted unless it gave up). */
  'node-exit': [{ index: number; pid: number | undefined; code: number | null; signal: NodeJS.Signals | null }];
  /** A line a node's service printed. */
  log: [LogLine];
  /** A node's service state changed. */
  'service-state': [{ index: number; state: ServiceState }];
  /** {@link Cluster.update} changed the cluster. */
  update: [UpdateReport];
  /** The BGP announcement of the VIP was switched on or off (spec `announce`). */
  announce: [{ announcing: boolean; reason: string; at: string }];
  /** {@link Cluster.repair} set right what had drifted on the host's side (each entry: what, and why). */
  repair: [{ fixed: string[] }];
}

/** One node in {@link Cluster.status}. */
export interface NodeStatus {
  index: number;
  netns: string;
  address: string;
  /** The service's state (`none` without a service). */
  state: ServiceState | 'none';
  pid: number | undefined;
  restarts: number;
  /** Whether the node takes part in the distribution. */
  dataPlane: NodeState;
  /** Buckets the node owns. */
  buckets: number[];
  counters: NodeCounters;
  /** Service-specific details, e.g. `openvpn: { pool, clients }`. */
  [key: string]: unknown;
}

/** What {@link Cluster.update} did. */
export interface UpdateReport {
  nodesAdded: string[];
  nodesRemoved: string[];
  /** Buckets whose owner changed (their flows moved; no other flow did). */
  bucketsMoved: number;
  /** The rulesets were replaced (ports changed). */
  tablesReplaced: boolean;
  /** Nodes whose service was restarted (its definition changed). */
  servicesRestarted: number[];
  ms: number;
}

/**
 * A home table for `m` nodes that moves as few buckets as it can from `current`: each node keeps
 * up to its fair share (⌈B/m⌉ or ⌊B/m⌋) of the buckets it has; the rest go to the nodes below
 * their share, lowest bucket first.
 */
export function rebalanceHome(current: readonly number[], m: number): number[] {
  const B = current.length;
  const share = (k: number) => Math.floor(B / m) + (k < B % m ? 1 : 0);
  const count = new Array<number>(m).fill(0);
  const next = current.map((o) => {
    if (o < 0 || o >= m || count[o] >= share(o)) return -1;
    count[o]++;
    return o;
  });
  let k = 0;
  return next.map((o) => {
    if (o >= 0) return o;
    while (count[k] >= share(k)) k++;
    count[k]++;
    return k;
  });
}

/** Whether two service definitions are the same (data compared; functions by identity). */
/**
 * Whether a spec's `service` is unchanged, compared as the user gave it: the same object, or equal
 * plain data (`{ command }`, `{ openvpn: {…} }`). A definition with functions that is another
 * object (a new openvpn(…) call) counts as changed: its options live in closures, out of sight.
 * @internal
 */
export function sameService(a: ClusterSpec['service'], b: ClusterSpec['service']): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  const hasCode = (v: unknown): boolean => typeof v === 'function' || (typeof v === 'object' && v !== null && Object.values(v).some(hasCode));
  return !hasCode(a) && !hasCode(b) && JSON.stringify(a) === JSON.stringify(b);
}


export interface CreateOptions {
  /**
   * Take over a cluster of this name whose controller is gone (crashed, killed, or a restarted
   * service): its marked objects are checked against the plan and what is missing is made again,
   * the rules are replaced in one transaction per namespace with the bucket table the kernel has
   * now, and the cluster serves on; flows on live nodes are not interrupted. Without a cluster to
   * adopt, it is built as usual. `up` always adopts.
   */
  adopt?: boolean;
}

/** Creates a cluster as `spec` says (or adopts one, see {@link CreateOptions.adopt}). Nothing is left behind if it fails. */
export async function createCluster(spec: ClusterSpec, o: CreateOptions = {}): Promise<Cluster> {
  return Cluster.create(resolveSpec(spec), o, spec.service);
}

export { clusterNames };

export class Cluster extends EventEmitter<ClusterEvents> implements AsyncDisposable {
  #spec: ResolvedSpec;
  /** The spec with its defaults filled in (the new one after {@link Cluster.update}). */
  get spec(): ResolvedSpec {
    return this.#spec;
  }
  readonly name: string;
  /** Name of the host namespace (undefined: the caller's own). */
  readonly hostNetns: string | undefined;
  readonly bridge: string;
  /** The MAC the outside sees for the VIP (the bridge's). */
  readonly vmac: string;
  #nodes: ClusterNode[];
  /** The nodes, in order (their number changes with {@link Cluster.update}). */
  get nodes(): readonly ClusterNode[] {
    return this.#nodes;
  }
  /** Things the operator should know, e.g. br_netfilter being on in the caller's namespace. */
  readonly warnings: string[] = [];

  readonly #names: ReturnType<typeof clusterNames>;
  /** Backend 'iptables': what the kernel offers (iptables.variant 'auto' is decided with it). */
  readonly #iptSupport: Record<IptablesKind, boolean> | undefined;
  readonly #backend: DataPlaneBackend;
  #layout: Layout;
  #host: Netns | undefined;
  #nodeNs: Netns[] = [];
  #owners: number[];
  #home: number[];
  #state: NodeState[];
  #closed = false;
  #closing: Promise<void> | undefined;
  #lock: ControllerLock | undefined;
  /** br_netfilter sysctls of the host namespace that exist, with their values (read in preflight). */
  #bridgeNf: [string, string][] = [];
  /** Host settings as they were before the cluster (read in preflight, put back on close). */
  #restore: HostRestore = {};
  readonly #mark: string;
  #services: NodeService[] = [];
  /** Why a node is down: only a service failure is undone automatically (failback). */
  #downReason: ('manual' | 'exit' | 'failed' | undefined)[];
  #queue: Promise<unknown> = Promise.resolve();
  /** BIRD announcing the VIP (spec `announce`), and its binary as the preflight found it. */
  #announcer: BgpAnnouncer | undefined;
  #birdBinary: string | undefined;

  private constructor(spec: ResolvedSpec) {
    super();
    this.#spec = spec;
    this.name = spec.name;
    this.hostNetns = spec.hostNetns;
    this.#names = clusterNames(spec.name);
    this.#mark = markOf(spec.name);
    this.#iptSupport = spec.backend === 'iptables' ? iptablesSupport() : undefined;
    this.#backend = backendFor(spec, this.#iptSupport);
    this.bridge = this.#names.bridge;
    const { vmac, nodes } = planNodes(spec);
    this.vmac = vmac;
    this.#nodes = nodes;
    this.#layout = planLayout(spec);
    this.#home = homeBuckets(spec.buckets, spec.nodes);
    this.#owners = [...this.#home];
    this.#state = this.nodes.map(() => 'up');
    this.#downReason = this.nodes.map(() => undefined);
  }

  /**
   * How long each step of building the cluster took, in ms (lock, preflight, state, namespaces,
   * ops: building the requests of the links+rules job, links+rules: running it): measured inside
   * createCluster, for the benchmark's phase breakdown.
   */
  readonly buildPhases: Record<string, number> = {};
  #phaseAt = 0;
  #phase(name: string): void {
    const now = performance.now();
    this.buildPhases[name] = now - this.#phaseAt;
    this.#phaseAt = now;
  }

  /**
   * Set when the cluster was adopted from a controller that was gone: its pid, the node namespaces
   * and nft tables that were missing and made again, the surplus marked nodes removed, the plan's
   * objects (keys, see {@link keyOf}) that were missing and made (`made`) or there but different and
   * set right (`fixed`, with why), how many were found as planned and left alone, and how long it
   * took. Tables are always replaced whole, atomically, with the bucket table read from the kernel.
   */
  adopted:
    | { pid?: number; namespacesMade: number; tablesMade: number; nodesRemoved: number; made: string[]; fixed: string[]; untouched: number; ms: number }
    | undefined;
  #adopting = false;
  /** The spec's `service` as the user gave it (what {@link Cluster.update} compares). */
  #serviceInput: ClusterSpec['service'];

  /** @internal Use {@link createCluster}. */
  static async create(spec: ResolvedSpec, o: CreateOptions = {}, serviceInput: ClusterSpec['service'] = spec.service): Promise<Cluster> {
    const c = new Cluster(spec);
    c.#serviceInput = serviceInput;
    c.#phaseAt = performance.now();
    c.#adopting = o.adopt === true;
    // One controller per name: a second one fails here, before looking at anything else.
    c.#lock = await ControllerLock.acquire(spec.name);
    c.#phase('lock');
    faultPoint('create:locked');
    try {
      await c.#preflight();
    } catch (err) {
      await c.#host?.close();
      c.#lock.release({ remove: true });
      throw err;
    }
    c.#phase('preflight');
    if (c.#adopting) {
      try {
        await c.#adopt();
        await c.#startAnnouncer();
      } catch (err) {
        await c.#announcer?.close().catch(() => {});
        // The data plane we found stays as it was (it may be serving); the next controller can try again.
        await Promise.all(c.#nodeNs.splice(0).map((h) => h.close()));
        await c.#host?.close();
        c.#lock.release();
        throw err;
      }
      return c;
    }
    try {
      // Written before anything is created, so that a crash at any point can be swept.
      await writeState(c.#stateRecord());
      c.#phase('state');
      faultPoint('create:state-written');
      await c.#build();
      c.#bridgeNetfilterWarnings();
      faultPoint('create:built');
      await c.#startAnnouncer();
    } catch (err) {
      await c.#announcer?.close().catch(() => {});
      await c.#teardown().catch(() => {});
      await removeState(spec.name);
      c.#lock.release({ remove: true });
      throw err;
    }
    return c;
  }

  #stateRecord(): ClusterState {
    return {
      version: 1,
      name: this.name,
      pid: process.pid,
      startedAt: new Date().toISOString(),
      ...(this.spec.hostNetns !== undefined ? { hostNetns: this.spec.hostNetns } : {}),
      nodes: this.nodes.map((n) => n.netns),
      ...(this.spec.uplink.kind === 'bridge' ? { uplink: this.spec.uplink.ifname } : {}),
      restore: this.#restore,
      home: this.#home,
      vmac: this.vmac,
      ...(this.#backend.iptablesTable ? { iptablesTable: this.#backend.iptablesTable } : {}),
    };
  }

  /** Checks everything that can be checked before creating anything. */
  async #preflight(): Promise<void> {
    const spec = this.spec;
    if (spec.hostNetns !== undefined) {
      this.#host = await Netns.open(spec.hostNetns).catch((e) => {
        if (isKernelError(e) && e.code === 'ENOENT')
          throw new InvalidArgumentError('hostNetns', `namespace '${spec.hostNetns}' does not exist; create it first, or leave hostNetns out to use this process's own namespace`);
        throw e;
      });
    } else {
      this.#host = await Netns.open();
    }
    const host = this.#host;
    try {
      // In parallel: the host's links and its br_netfilter switches (absent without br_netfilter).
      const forwarding = forwardingSysctls(this.spec);
      const [linkList, ...values] = await Promise.all([
        host.listLinks(),
        ...[...BRIDGE_NF_SYSCTLS, ...forwarding].map((key) => host.readSysctl(key).catch(() => undefined)),
      ]);
      const nf = values.slice(0, BRIDGE_NF_SYSCTLS.length);
      this.#bridgeNf = BRIDGE_NF_SYSCTLS.flatMap((key, i) => (nf[i] === undefined ? [] : [[key, nf[i] as string] as [string, string]]));
      // What the build will change in the host namespace, as it was: put back on close and destroy.
      const sysctls: Record<string, string> = {};
      if (spec.hostNetns !== undefined) for (const [key, value] of this.#bridgeNf) if (value !== '0') sysctls[key] = value;
      forwarding.forEach((key, i) => {
        const v = values[BRIDGE_NF_SYSCTLS.length + i];
        if (v !== undefined && v !== '1') sysctls[key] = v;
      });
      if (Object.keys(sysctls).length) this.#restore.sysctls = sysctls;
      const links = new Map(linkList.map((l) => [l.name, l]));
      const up = spec.uplink;
      const upName = up.kind === 'bridge' ? up.ifname : up.via;
      const upField = up.kind === 'bridge' ? 'uplink.bridge' : 'uplink.routed.via';
      const uplink = links.get(upName);
      if (!uplink) throw new InvalidArgumentError(upField, `interface '${upName}' does not exist in ${this.#where()}`);
      await this.#checkNamesFree(host, linkList);
      // Adopting: the uplink is enslaved to our own bridge, and the routes to the nodes are ours.
      const ourBridge = linkList.find((l) => l.name === this.bridge && l.alias === this.#mark);
      const enslavedToUs = this.#adopting && ourBridge !== undefined && uplink.master === ourBridge.index;
      if (up.kind === 'bridge' && uplink.master !== undefined && !enslavedToUs)
        throw new InvalidArgumentError(upField, `interface '${upName}' is already enslaved to another device; release it first`);
      if (up.kind === 'bridge' && !uplink.up) this.#restore.uplinkWasDown = true;
      if (up.kind === 'bridge') this.#restore.uplinkIndex = uplink.index;
      this.#restore.hostId = await namespaceId(host);
      if (!this.#adopting) await this.#checkHostRoutes(host);
      // BIRD is there and is BIRD 2, and every peer is reachable from the host namespace.
      if (spec.announce) this.#birdBinary = (await preflightBgp(spec.announce.bgp, host, this.#where())).binary;
    } catch (e) {
      await host.close();
      this.#host = undefined;
      throw e;
    }
  }

  /**
   * When the host will hold an address on the node network (routed uplink, or a service whose
   * networks the host routes via the nodes) or route the VIP, those must not collide with routes it
   * already has — another cluster on the same host with the default node network, for one.
   */
  async #checkHostRoutes(host: Netns): Promise<void> {
    const spec = this.spec;
    const routed = spec.uplink.kind === 'routed';
    if (!routed && !spec.service?.hostRoutes) return;
    const routes = (await host.listRoutes()).filter((r) => r.destination !== 'default' && r.type === 'unicast');
    const clash = (net: Cidr) =>
      routes.find((r) => {
        const [address, prefix] = r.destination.split('/');
        return cidrOverlap(net, { address, prefix: Number(prefix), family: r.family });
      });
    for (const [i, net] of spec.nodeNetworks.entries()) {
      const r = clash(net);
      if (r)
        throw new InvalidArgumentError(
          spec.nodeNetworks.length > 1 ? `nodeNetwork[${i}]` : 'nodeNetwork',
          `${net.address}/${net.prefix} overlaps the route to ${r.destination} in ${this.#where()} (another cluster's?); give this cluster a nodeNetwork of its own`,
        );
    }
    if (!routed) return;
    for (const vip of spec.vips) {
      const r = clash({ ...vip, prefix: vip.family === 4 ? 32 : 128 });
      if (r) throw new InvalidArgumentError('vip', `${vip.address} is already routed (${r.destination}) in ${this.#where()}; a routed uplink needs the VIP to itself`);
    }
  }

  /**
   * Every name the build will create must be free: links in the host namespace, node namespaces
   * and the host's nft table. One left by a crashed controller of this cluster (marked) asks for
   * `down`; one that is not netns-cluster's asks for another cluster name.
   */
  async #checkNamesFree(host: Netns, links: LinkInfo[]): Promise<void> {
    const n = this.#names;
    const linkNames = [n.bridge, ...this.nodes.map((_, k) => n.outerVeth(k)), ...(this.spec.uplink.kind === 'routed' ? [n.routedUplinkPort, n.routedGateway] : [])];
    const [namespaces, tables] = await Promise.all([Netns.list(), hostTables(host)]);
    const ours: string[] = [];
    const foreign: string[] = [];
    const nsTaken = this.nodes.map((x) => x.netns).filter((x) => namespaces.includes(x));
    const marks = await Promise.all(nsTaken.map((x) => Netns.readMark(x).catch(() => undefined)));
    const ourNs = new Set(nsTaken.filter((_, i) => marks[i] === this.#mark));
    // Left between their creation and their mark by a kill: the bridge (known by its MAC), and a
    // node's outer veth (known by its inner end in that node's marked namespace, see unmarkedVethOfOurs).
    const leftUnmarked = async (l: LinkInfo): Promise<boolean> => {
      if (l.alias !== undefined) return false;
      if (l.name === n.bridge) return l.mac === this.vmac;
      const node = this.nodes.find((x) => n.outerVeth(x.index) === l.name);
      if (!node || !ourNs.has(node.netns)) return false;
      const inner = await Netns.open(node.netns);
      try {
        return unmarkedVethOfOurs(l, (await inner.listLinks()).find((x) => x.name === node.ifname), node.mac);
      } finally {
        await inner.close();
      }
    };
    for (const l of links) if (linkNames.includes(l.name)) (l.alias === this.#mark || (await leftUnmarked(l)) ? ours : foreign).push(`interface '${l.name}'`);
    for (const t of tables) if (t.name === n.table) (t.comment === this.#mark ? ours : foreign).push(`nft table ${t.family} ${t.name}`);
    nsTaken.forEach((x) => (ourNs.has(x) ? ours : foreign).push(`namespace '${x}'`));
    if (foreign.length)
      throw new InvalidArgumentError(
        'name',
        `the cluster would create ${foreign.slice(0, 4).join(', ')}${foreign.length > 4 ? ` and ${foreign.length - 4} more` : ''}, which already exist${foreign.length === 1 ? 's' : ''} in ${this.#where()} and ${foreign.length === 1 ? 'is' : 'are'} not netns-cluster's; pick another cluster name`,
      );
    if (ours.length && this.#adopting) return;
    this.#adopting = false; // nothing of ours to adopt: a fresh build
    if (ours.length)
      throw new InvalidArgumentError(
        'name',
        `cluster '${this.name}' was left behind by a controller that is gone (${ours.slice(0, 3).join(', ')}${ours.length > 3 ? ', …' : ''}); remove it first with 'netns-cluster down ${this.name}' (destroyCluster('${this.name}'))`,
      );
  }

  #where(): string {
    return this.spec.hostNetns ? `namespace '${this.spec.hostNetns}'` : "this process's namespace";
  }

  /**
   * Takes over the marked objects a dead controller left: keeps its restore record, reads the bucket
   * table from the kernel, makes what is missing (namespaces, links, addresses, routes, sysctls),
   * removes marked nodes beyond the spec's count, and replaces every table in one transaction per
   * namespace (the kernel switches rulesets atomically, so packets see the old rules or the new).
   */
  async #adopt(): Promise<void> {
    const t0 = performance.now();
    const { state } = await loadState(this.name);
    if (state?.restore) this.#restore = state.restore;
    if (state?.home && state.home.length === this.spec.buckets && state.home.every((k) => k < this.spec.nodes)) this.#home = [...state.home];
    const host = this.#host!;
    const mark = this.#mark;
    const names = this.nodes.map((x) => x.netns);
    const existing = new Set(await Netns.list());
    const missing = names.filter((x) => !existing.has(x));
    const made = await Netns.createMany(missing, { mark });
    const opened = await Promise.all(names.filter((x) => existing.has(x)).map((x) => Netns.open(x)));
    const byName = new Map([...made, ...opened].map((h) => [h.name!, h]));
    this.#nodeNs = names.map((x) => byName.get(x)!);
    // Marked nodes beyond the spec's count (a larger cluster before): theirs go with them.
    const extra = [...existing].filter((x) => new RegExp(`^${this.name}-n(\\d+)$`).test(x) && !names.includes(x));
    const extraOurs = (await Promise.all(extra.map(async (x) => ((await Netns.readMark(x)) === mark ? x : undefined)))).filter((x): x is string => !!x);
    if (extraOurs.length) await Netns.deleteMany(extraOurs);
    this.#owners = await this.#readOwners();
    this.#state.fill('up');
    await writeState(this.#stateRecord());
    const plan = this.plan();
    // Links, addresses, routes, sysctls: read what is there (the namespaces just made count as
    // missing, with everything in them), and make or set right only the difference.
    const found = new Map(opened.map((h) => [h.name!, h]));
    const diff = diffPlan(plan, await readActual(plan, host, (name) => found.get(name)));
    await applyBatch(plan, diff, host, (name) => byName.get(name)!).commit();
    // Routes to single client addresses (stable VPN addresses) went stale with the services that
    // died with the last controller: the services route their clients again as they reconnect.
    const stale = await clientRouteDeletes(host, (await host.listLinks()).filter((l) => l.alias === mark));
    if (stale.length) await submit(stale.map((x) => x.op), false);
    // Every table replaced whole, atomically per namespace, with the bucket table found.
    const tables = await Promise.all([host, ...this.#nodeNs].map((ns, i) => (i === 0 ? hostTables(ns) : listTables(ns, 'inet')).catch(() => [])));
    let tablesMade = 0;
    // The per-node counts of the host's table (steer mode) go on in the table that replaces it.
    const counted = await this.#hostRulesOf(plan);
    // A host table of ours in another family than planned (the rules of an earlier version: steer
    // mode's table was a bridge table before it moved to the uplink's netdev hooks) would steer too:
    // deleted in the same transaction that replaces the planned one.
    const staleHost: NftCommand[] = tables[0]
      .filter((x) => x.name === this.#layout.table && x.comment === mark && !plan.tables.some((t) => t.netns === undefined && t.family === x.family))
      .map((x) => ({ cmd: 'deleteTable', family: x.family, name: x.name, handle: x.handle }));
    const ops: NativeOp[] = plan.tables.map((t, i) => {
      const found = tables[i].find((x) => x.family === t.family && x.name === t.name && x.comment === mark);
      if (!found) tablesMade++;
      return replaceTableOp(t, t.netns === undefined ? host : byName.get(t.netns)!, found, counted, t.netns === undefined ? staleHost : []);
    });
    // Node tables of ours that the plan has none for (the nftables backend ran before, iptables
    // now) would filter too: deleted.
    this.#nodeNs.forEach((ns, k) => {
      if (plan.tables.some((t) => t.netns === plan.nodes[k].netns)) return;
      for (const x of tables[k + 1]) if (x.comment === mark) ops.push({ type: 'nft.batch', netns: ns.handle, commands: [{ cmd: 'deleteTable', family: 'inet', name: x.name, handle: x.handle }] });
    });
    // iptables rulesets: iptc.commit replaces the cluster's chain (and its jumps) whole.
    for (const r of plan.rulesets) ops.push(rulesetOp(r, byName.get(r.netns)!.handle));
    // The rules of the iptables backend (or of its other variant, in another table) that ran this
    // cluster before: removed, chain and jumps, from every node that had them.
    const oldTable = state?.iptablesTable;
    if (oldTable && !plan.rulesets.some((r) => r.table === oldTable))
      for (const ns of opened) ops.push({ type: 'iptc.commit', netns: ns.handle, table: oldTable, chain: IPT_CHAIN, mark, remove: true });
    const failed = (await submit(ops, false)).find((r) => r instanceof Error);
    if (failed) throw failed;
    // Rules (nft tables, iptables rulesets) are replaced whole above, never diffed.
    const rules = (k: string) => k.startsWith('nft ') || k.startsWith('iptables ');
    this.adopted = {
      pid: state?.pid,
      namespacesMade: missing.length,
      tablesMade,
      nodesRemoved: extraOurs.length,
      made: diff.missing.filter((k) => !rules(k)),
      fixed: diff.different.map((d) => `${d.key} (${d.why})`),
      untouched: diff.present.filter((k) => !rules(k)).length,
      ms: performance.now() - t0,
    };
  }

  /** The bucket table as the kernel has it now (steer: the host's map; flood: each node's set); unknown buckets go home. */
  async #readOwners(): Promise<number[]> {
    if (this.#backend.readOwners) return this.#backend.readOwners(this.#ctx(), this.#home).catch(() => [...this.#home]);
    const owners = [...this.#home];
    const t = this.#layout.table;
    const u32 = (hex: string) => Buffer.from(hex.replace(/^0x/, ''), 'hex').readUInt32LE(0);
    try {
      if (this.spec.mode === 'steer') {
        // Each element is `bucket : goto node<k>`.
        for (const e of await listElements(this.#host!, hostFamily(this.spec.mode), t, 'buckets')) {
          const b = u32(e.key);
          const k = e.chain === undefined ? -1 : this.nodes.findIndex((_, i) => nodeChain(i) === e.chain);
          if (b < owners.length && k >= 0) owners[b] = k;
        }
      } else {
        const seen = new Set<number>();
        await Promise.all(
          this.#nodeNs.map(async (ns, k) => {
            for (const e of await listElements(ns, 'inet', t, 'owned').catch(() => [])) {
              const b = u32(e.key);
              if (b < owners.length && !seen.has(b)) {
                owners[b] = k;
                seen.add(b);
              }
            }
          }),
        );
      }
    } catch {
      /* no table: every bucket at home */
    }
    return owners;
  }

  async #build(): Promise<void> {
    const host = this.#host!;
    const plan = this.plan();
    // The nodes' sysctls (the same in every node) are written inside each namespace as it is made.
    const sysctls = nodeSysctls(plan);
    // The namespaces are made on the addon's threads while this thread builds the second job:
    // links, addresses, routes, the other sysctls and the rules (the plan's tables), queued behind
    // the first with the namespaces' reserved handles. If a namespace cannot be made, the second
    // job does nothing (it fails with ENOENT) and the namespace's error is thrown.
    const early = Netns.createManyEarly(plan.namespaces, { mark: plan.mark, ...(sysctls ? { sysctls } : {}) });
    const byName = new Map(early.namespaces.map((h) => [h.name!, h]));
    let commit: Promise<void>;
    try {
      commit = planBatch(plan, host, (name) => byName.get(name)!, { nodeSysctls: !sysctls }).commit();
      // Awaited below; handled from now on, since it may fail while the namespaces are awaited.
      commit.catch(() => {});
    } catch (err) {
      await early.made.catch(() => {});
      this.#nodeNs = early.namespaces.filter((n) => !n.closed);
      throw err;
    }
    this.#phase('ops'); // building and queueing the second job's requests, while the namespaces are made
    try {
      await early.made;
    } catch (err) {
      await commit.catch(() => {});
      throw err;
    }
    this.#nodeNs = early.namespaces;
    this.#phase('namespaces');
    faultPoint('create:namespaces-created');
    await commit;
    this.#phase('links+rules');
  }

  /** What the cluster consists of, as data (see {@link planCluster}), with the current bucket table. */
  plan(): ClusterPlan {
    return planCluster(this.spec, { bridgeNetfilter: Object.fromEntries(this.#bridgeNf), ...(this.#iptSupport ? { iptables: this.#iptSupport } : {}) }, this.#owners);
  }

  /**
   * Sets the host's side right where it drifted while the cluster runs: an uplink that was made
   * again (a driver reset, a VLAN device created anew) and is off the bridge or down joins it
   * again; a host link of the plan (a node's port, the bridge, a routed uplink's pair) that is
   * gone or not as planned is made or set right with everything that went with it (a node's
   * addresses and routes), as adopt does; a host table that lost chains or rules (Linux 6.1
   * deletes netdev chains with their device), sends to ports made again, or is gone is replaced
   * whole, with the current bucket table and the per-node counters carried. Normally only the host
   * namespace is read (its links, its tables, the host table's rules): cheap enough to call every few seconds,
   * as `netns-cluster up` does. An uplink that is not there is left alone until it is. Resolves
   * with what was set right, each with why (empty: nothing had drifted), and emits `repair` when
   * that is not empty.
   */
  repair(): Promise<string[]> {
    return this.#serial(async () => {
      this.#assertOpen();
      const host = this.#host!;
      const plan = this.plan();
      const fixed: string[] = [];
      let links = await host.listLinks();
      // A host link of the plan (the bridge, a node's port, a routed uplink's pair) gone, unmarked or
      // not as planned: the whole plan is read and the difference made, as adopt does (a node port
      // made again brings its node's addresses and routes back, which went with its inner end).
      const linkOff = plan.links.some((l) => {
        const have = l.netns === undefined ? links.find((x) => x.name === l.name) : undefined;
        return l.netns === undefined && (!have || have.alias !== this.#mark || !linkState(l, have, links).ok);
      });
      if (linkOff) {
        const byName = new Map(this.#nodeNs.map((h) => [h.name!, h]));
        const diff = diffPlan(plan, await readActual(plan, host, (x) => byName.get(x)));
        await applyBatch(plan, diff, host, (x) => byName.get(x)!).commit();
        // Tables are compared and replaced below, with the links as they are now.
        const rules = (k: string) => k.startsWith('nft ') || k.startsWith('iptables ');
        fixed.push(...diff.missing.filter((k) => !rules(k)).map((k) => `${k} (not there)`), ...diff.different.filter((d) => !rules(d.key)).map((d) => `${d.key} (${d.why})`));
        links = await host.listLinks();
      }
      const up = plan.uplink && uplinkFound(plan.uplink, links);
      if (plan.uplink && up && !up.ok) {
        await host.setLink(plan.uplink.ifname, { master: plan.uplink.master, up: true });
        fixed.push(`${keyOf.uplink(plan.uplink)} (${up.why})`);
      }
      const t = plan.tables.find((x) => x.netns === undefined);
      if (t) {
        const found = (await listTables(host, t.family)).find((x) => x.name === t.name && x.comment === this.#mark);
        const rules = found ? await listRules(host, t.family, t.name) : [];
        const why = found ? tableDifferences(t, rules, links) : ['not there'];
        if (why.length) {
          const [r] = await submit([replaceTableOp(t, host, found, rules)], false);
          if (r instanceof Error) throw r;
          fixed.push(`${keyOf.table(t)} (${why.join('; ')})`);
        }
      }
      if (fixed.length) this.emit('repair', { fixed });
      return fixed;
    });
  }

  /** The rules of the plan's host table as the kernel has them (none if it is not there). */
  async #hostRulesOf(plan: ClusterPlan): Promise<NftRuleInfo[]> {
    const t = plan.tables.find((x) => x.netns === undefined);
    return t ? listRules(this.#host!, t.family, t.name).catch(() => []) : [];
  }

  #ctx(): BackendContext {
    return { spec: this.spec, layout: this.#layout, host: this.#host!, nodes: this.#nodeNs };
  }

  /** br_netfilter on in the caller's own namespace: the cluster leaves it (it is not ours), and says so. */
  #bridgeNetfilterWarnings(): void {
    if (this.spec.hostNetns !== undefined) return;
    for (const [key, value] of this.#bridgeNf) {
      if (value === '0') continue;
      this.warnings.push(
        `${key} is 1 in this namespace: bridged cluster traffic also traverses iptables/ip6tables FORWARD, where a drop policy (Docker's, for one) kills it. ` +
          'Accept it there, set the sysctl to 0 if nothing else needs it, or use a dedicated hostNetns.',
      );
    }
  }

  /** Serialises changes so concurrent calls apply in order. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => {});
    return run;
  }

  #assertOpen(): void {
    if (this.#closed) throw Object.assign(new Error(`cluster '${this.name}' is closed; create it again (createCluster) to use it`), { code: 'ERR_CLUSTER_CLOSED' });
  }

  /** For a start() that close() overtook: stops here, and close() stops whatever it had started. */
  #assertStillOpen(): void {
    if (this.#closed) throw Object.assign(new Error(`cluster '${this.name}' was closed while its services were starting`), { code: 'ERR_CLUSTER_CLOSED' });
  }

  /** The node that serves a flow now (-1 if its bucket has no live owner), computed like the kernel does. */
  ownerOf(flow: FlowKey): number {
    return this.#owners[this.bucketOf(flow)];
  }

  /** The bucket a flow hashes to. */
  bucketOf(flow: FlowKey): number {
    const { family } = checkIp('address', flow.address);
    if (!this.spec.vips.some((v) => v.family === family)) throw new InvalidArgumentError('address', `the cluster has no IPv${family} VIP`);
    return this.#backend.bucketOf(this.spec, flow);
  }

  /** Owner of every bucket (index = bucket; -1 = none). */
  buckets(): number[] {
    return [...this.#owners];
  }

  /** State of every node as far as bucket ownership goes. */
  nodeStates(): NodeState[] {
    return [...this.#state];
  }

  /**
   * Gives buckets to nodes: `{ 5: 2, 9: 0 }`. Steer mode: one atomic transaction. Flood mode: the
   * new owners take the buckets first, then the old ones let go (a moment of duplicates, no loss).
   */
  moveBuckets(moves: Record<number, number>): Promise<void> {
    return this.#serial(async () => {
      this.#assertOpen();
      const next = [...this.#owners];
      for (const [bk, node] of Object.entries(moves)) {
        const b = Number(bk);
        if (!Number.isInteger(b) || b < 0 || b >= this.spec.buckets)
          throw new InvalidArgumentError(`moves[${bk}]`, `bucket must be 0 to ${this.spec.buckets - 1}`);
        if (!Number.isInteger(node) || node < -1 || node >= this.spec.nodes)
          throw new InvalidArgumentError(`moves[${bk}]`, `node must be 0 to ${this.spec.nodes - 1} (or -1 for none), got ${String(node)}`);
        next[b] = node;
      }
      await this.#apply(next);
    });
  }

  /**
   * Takes a node out of (`down`) or back into (`up`) the distribution: its buckets move to the live
   * nodes, and back to it when it is up again.
   */
  setNodeState(index: number, state: NodeState): Promise<void> {
    return this.#setNodeState(index, state, 'manual');
  }

  #setNodeState(index: number, state: NodeState, reason: 'manual' | 'exit' | 'failed' | 'ready', since?: number): Promise<void> {
    return this.#serial(async () => {
      this.#assertOpen();
      if (!Number.isInteger(index) || index < 0 || index >= this.spec.nodes)
        throw new InvalidArgumentError('index', `node must be 0 to ${this.spec.nodes - 1}`);
      if (state !== 'up' && state !== 'down') throw new InvalidArgumentError('state', "must be 'up' or 'down'");
      if (state === 'down') this.#downReason[index] ??= reason as 'manual' | 'exit' | 'failed';
      else this.#downReason[index] = undefined;
      if (this.#state[index] === state) return;
      this.#state[index] = state;
      await this.#apply(this.#redistribute());
      if (state === 'down') {
        this.emit('node-down', { index, reason: reason as 'manual' | 'exit' | 'failed', ...(since !== undefined ? { latencyMs: performance.now() - since } : {}) });
      } else {
        this.emit('node-up', { index, reason: reason === 'ready' ? 'ready' : 'manual' });
      }
    });
  }

  /** Home owners where they are up; each other bucket goes round-robin over the live nodes. */
  #redistribute(home: readonly number[] = this.#home, m: number = this.nodes.length): number[] {
    // Nodes at or past `m` (about to be removed by an update) take nothing.
    const up = (k: number) => k < m && this.#state[k] === 'up';
    const live = this.nodes.map((n) => n.index).filter(up);
    let next = 0;
    return home.map((h, b) => {
      if (up(h)) return h;
      if (live.length === 0) return -1;
      // Keep a bucket where it already is if that node is live: fewer moves, fewer reconnects.
      const cur = this.#owners[b];
      if (cur >= 0 && up(cur)) return cur;
      return live[next++ % live.length];
    });
  }

  async #apply(next: number[]): Promise<void> {
    const moved = next.flatMap((to, b) => (to !== this.#owners[b] ? [b] : []));
    if (moved.length === 0) return;
    await this.#backend.move(this.#ctx(), this.#owners, next);
    const moves: Record<number, [number, number]> = {};
    for (const b of moved) moves[b] = [this.#owners[b], next[b]];
    this.#owners = next;
    this.emit('rebalance', { moves });
    this.#notifyLost(moves);
  }

  /** Tells each running node's service which buckets it lost (in the background: failover must not wait). */
  #notifyLost(moves: Record<number, [number, number]>): void {
    const def = this.spec.service;
    if (!def?.bucketsLost) return;
    const lost = new Map<number, Set<number>>();
    for (const [b, [from]] of Object.entries(moves)) if (from >= 0) lost.set(from, (lost.get(from) ?? new Set()).add(Number(b)));
    for (const [k, buckets] of lost) {
      const svc = this.#services[k];
      if (svc?.state !== 'running') continue;
      def.bucketsLost(svc.ctx, buckets, (flow) => this.bucketOf(flow)).catch((err) =>
        this.emit('log', { index: k, stream: 'stderr', line: `netns-cluster: telling clients of moved buckets failed: ${err}` }),
      );
    }
  }

  /**
   * Changes the running cluster to `spec` without dropping flows that need not move:
   * - nodes N→M: new nodes are built and take about 1/M of the buckets each (only those flows
   *   move); removed nodes hand their buckets over first, then go; the other nodes keep their
   *   processes and their clients;
   * - ports: every table is replaced in one transaction per namespace, with the same bucket table;
   * - the service's options: its processes are restarted with the new definition;
   * - anything else (name, VIP, uplink, mode, hash, buckets, seed, networks, gateways, host
   *   namespace) cannot change live and is refused, with the reason, before anything changes.
   */
  update(spec: ClusterSpec): Promise<UpdateReport> {
    return this.#serial(async () => {
      this.#assertOpen();
      const next = resolveSpec(spec);
      const prev = this.#spec;
      const fixed: [keyof ResolvedSpec, string][] = [
        ['name', 'it names every object'],
        ['vips', 'every node holds it'],
        ['uplink', 'the bridge is built around it'],
        ['mode', 'steer and flood are different rulesets on different hooks'],
        ['backend', 'the rules live in another packet filter'],
        ['iptables', 'the variants are different rules'],
        ['hash', 'every flow would move'],
        ['buckets', 'every flow would move'],
        ['seed', 'every flow would move'],
        ['hostNetns', 'the bridge lives there'],
        ['nodeNetworks', 'the nodes are addressed on it'],
        ['gateways', "the nodes' routes use it"],
        ['announce', 'BIRD runs with it'],
      ];
      for (const [key, why] of fixed) {
        if (JSON.stringify(next[key] ?? null) !== JSON.stringify(prev[key] ?? null))
          throw new InvalidArgumentError(String(key === 'vips' ? 'vip' : key === 'nodeNetworks' ? 'nodeNetwork' : key === 'gateways' ? 'gateway' : key), `cannot change while the cluster runs (${why}); stop it and start it with the new config`);
      }
      const t0 = performance.now();
      const report: UpdateReport = { nodesAdded: [], nodesRemoved: [], bucketsMoved: 0, tablesReplaced: false, servicesRestarted: [], ms: 0 };
      const before = [...this.#owners];
      const N = prev.nodes;
      const M = next.nodes;
      const portsChanged = JSON.stringify(next.ports) !== JSON.stringify(prev.ports);
      // The same options, but what the service reads besides them changed (an edited server.conf): changed too.
      const serviceChanged = !sameService(this.#serviceInput, spec.service) || prev.service?.revision !== next.service?.revision;
      const running = this.#services.length > 0;

      if (M < N) {
        // Hand the buckets of the nodes that go to the others first (their flows move, nothing else).
        const home = rebalanceHome(this.#home, M);
        this.#home = home;
        await this.#apply(this.#redistribute(home, M));
        const gone = this.#nodeNs.slice(M);
        await Promise.all(this.#services.slice(M).map((svc) => svc?.dispose()));
        this.#services.length = Math.min(this.#services.length, M);
        this.#spec = next;
        this.#nodes = this.#nodes.slice(0, M);
        this.#nodeNs = this.#nodeNs.slice(0, M);
        this.#state = this.#state.slice(0, M);
        this.#downReason = this.#downReason.slice(0, M);
        this.#layout = planLayout(next);
        await this.#backend.nodesChanged?.(this.#ctx(), N);
        await Netns.deleteMany(gone);
        // Their veths go with them (or, if a lingering namespace keeps one, are deleted from this side).
        const veths = Array.from({ length: N - M }, (_, i) => this.#names.outerVeth(M + i));
        await waitMarkedVethsGone(this.#host!, this.#mark, { only: veths });
        report.nodesRemoved = gone.map((h) => h.name!);
      } else if (M > N) {
        this.#spec = next;
        const { nodes } = planNodes(next);
        const added = nodes.slice(N);
        const made = await Netns.createMany(added.map((x) => x.netns), { mark: this.#mark });
        this.#nodes = nodes;
        this.#nodeNs = [...this.#nodeNs, ...made];
        this.#layout = planLayout(next);
        this.#state = [...this.#state, ...added.map((): NodeState => 'up')];
        this.#downReason = [...this.#downReason, ...added.map(() => undefined)];
        const plan = this.plan();
        const byName = new Map(this.#nodeNs.map((h) => [h.name!, h]));
        const b = planBatch(plan, this.#host!, (name) => byName.get(name)!, { only: added.map((x) => x.index) });
        await b.commit();
        await this.#backend.nodesChanged?.(this.#ctx(), N);
        report.nodesAdded = added.map((x) => x.netns);
        if (running && next.service) {
          const failed = await this.#startNodes(added.map((x) => x.index));
          for (const k of failed) {
            this.#state[k] = 'down';
            this.#downReason[k] = 'exit';
          }
        }
        // The new nodes take their share: about 1/M of the buckets move, the rest stay.
        this.#home = rebalanceHome(this.#home, M);
        await this.#apply(this.#redistribute());
      }
      this.#spec = next;
      if (portsChanged) {
        // Rules depend on the ports: every table replaced, atomically, with the same bucket table.
        const plan = this.plan();
        const byName = new Map(this.#nodeNs.map((h) => [h.name!, h]));
        const counted = await this.#hostRulesOf(plan);
        const ops: NativeOp[] = plan.tables.map((t) => {
          const ns = t.netns === undefined ? this.#host! : byName.get(t.netns)!;
          const commands = t.netns === undefined ? carryCounters(t.commands, counted) : t.commands;
          return { type: 'nft.batch', netns: ns.handle, commands: [{ cmd: 'deleteTable', family: t.family, name: t.name }, ...commands] };
        });
        for (const r of plan.rulesets) ops.push(rulesetOp(r, byName.get(r.netns)!.handle));
        await submitAll(ops);
        report.tablesReplaced = true;
      }
      if (running && serviceChanged && next.service) {
        const keep = Math.min(N, M);
        const old = this.#services.slice(0, keep);
        await Promise.all(old.map((svc) => svc?.dispose()));
        const failed = await this.#startNodes(Array.from({ length: keep }, (_, k) => k));
        for (const k of failed) {
          this.#state[k] = 'down';
          this.#downReason[k] = 'exit';
        }
        report.servicesRestarted = Array.from({ length: keep }, (_, k) => k);
      }
      this.#serviceInput = spec.service;
      report.bucketsMoved = this.#owners.filter((o, b) => o !== before[b]).length;
      await writeState(this.#stateRecord());
      report.ms = performance.now() - t0;
      this.emit('update', report);
      return report;
    });
  }

  /** Packets and bytes to the VIP per node: steer mode, what the host steered to each (its chain's counter in the host table); flood mode, what each node accepted and dropped (its own table). */
  async counters(): Promise<NodeCounters[]> {
    this.#assertOpen();
    return this.#backend.counters(this.#ctx());
  }

  #context(k: number, dir: string): ServiceContext {
    const n = this.nodes[k];
    return {
      cluster: this.name,
      index: k,
      netns: n.netns,
      address: n.address,
      addresses: n.addresses,
      vips: this.spec.vips.map((v) => v.address),
      dir,
      routes: this.#nodeRoutes(k),
      log: (line) => this.emit('log', { index: k, stream: 'stderr', line: `netns-cluster: ${line}` }),
    };
  }

  /** Host routes to single addresses via node k, marked with the cluster's routing protocol number. */
  #nodeRoutes(k: number): NodeRoutes {
    const route = (address: string) => {
      const { family, address: a } = checkIp('address', address);
      const via = this.nodes[k]?.addresses.find((x) => checkIp('via', x).family === family);
      if (via === undefined) throw new InvalidArgumentError('address', `node ${k} has no IPv${family} address to route ${a} via`);
      return { destination: `${a}/${family === 4 ? 32 : 128}`, via, protocol: CLIENT_ROUTE_PROTOCOL, family };
    };
    return {
      add: async (address) => {
        const r = route(address);
        const host = this.#host;
        if (!host || this.#closed) return;
        try {
          await host.addRoute(r);
        } catch (e) {
          if (!isKernelError(e) || e.code !== 'EEXIST') throw e;
          // A route to it exists: ours (via another node) is replaced in one step; anyone else's stays.
          const existing = (await host.listRoutes({ family: r.family })).find((x) => x.destination === r.destination);
          if (existing && existing.protocol !== CLIENT_ROUTE_PROTOCOL)
            throw new Error(`the host already has a route to ${r.destination} (protocol ${existing.protocol}) that is not netns-cluster's; it is left alone, so ${address} is not reachable via node ${k}`);
          await host.addRoute({ ...r, replace: true });
        }
      },
      remove: async (address) => {
        const host = this.#host;
        if (!host || this.#closed) return;
        await host.deleteRoute(route(address)).catch((e) => {
          if (!isKernelError(e) || e.code !== 'ESRCH') throw e; // not there, or via another node now
        });
      },
    };
  }

  /**
   * Starts the spec's service in every node (each inside its namespace, supervised) and resolves
   * once every node has either come up or failed its first start (such a node stays out of the
   * distribution until its service is up). A service that exits later is restarted with backoff;
   * meanwhile its buckets go to the live nodes within a few milliseconds.
   */
  start(): Promise<void> {
    return this.#serialStart();
  }

  async #serialStart(): Promise<void> {
    this.#assertOpen();
    const def = this.spec.service;
    if (!def) throw new InvalidArgumentError('service', 'the cluster has no service; give one in the spec (service: { command: [...] } or { openvpn: {...} })');
    if (this.#services.length) {
      // Started before and stopped since: start the same supervisors again.
      await Promise.allSettled(this.#services.map((svc) => svc.start()));
      return;
    }
    const failed = await this.#startNodes(this.nodes.map((n) => n.index));
    // A node whose first start failed stays out until its service is ready.
    await Promise.all(failed.map((k) => this.#setNodeState(k, 'down', 'exit')));
  }

  /** Starts the service in these nodes (new supervisors), each inside its namespace; returns the nodes whose first start failed. */
  async #startNodes(indexes: number[]): Promise<number[]> {
    const def = this.spec.service!;
    const dir = await ensureRuntimeDir(this.name);
    const contexts = await Promise.all(
      indexes.map(async (k) => {
        const nodeDir = join(dir, `node${k}`);
        await mkdir(nodeDir, { recursive: true, mode: 0o700 });
        return this.#context(k, nodeDir);
      }),
    );
    this.#assertStillOpen();
    await this.#prepareNetwork(contexts);
    faultPoint('start:network-prepared');
    for (const ctx of contexts) {
      this.#assertStillOpen();
      await def.prepare?.(ctx);
    }
    this.#assertStillOpen();
    for (const ctx of contexts) this.#services[ctx.index] = this.#supervise(new NodeService(def, ctx));
    const warning = await cgroupWarning();
    if (warning && !this.warnings.includes(warning)) this.warnings.push(warning);
    this.#assertStillOpen();
    const starting = indexes.map((k) => this.#services[k].start());
    faultPoint('start:services-spawned');
    const results = await Promise.allSettled(starting);
    faultPoint('start:done');
    // close() stopped them meanwhile: nothing it stopped may come back.
    this.#assertStillOpen();
    return indexes.filter((_, i) => results[i].status === 'rejected');
  }

  /** Host routes to the nodes' service networks (e.g. VPN pools) and the sysctls the service needs. */
  async #prepareNetwork(contexts: ServiceContext[]): Promise<void> {
    const def = this.spec.service!;
    const host = this.#host!;
    const b = new Batch();
    // Each network via the node's address of its family (an IPv6 pool via the node's IPv6 address).
    const via = (ctx: ServiceContext, cidr: string) => (cidr.includes(':') ? (ctx.addresses.find((a) => a.includes(':')) ?? ctx.address) : ctx.address);
    const routes = contexts.flatMap((ctx) => (def.hostRoutes?.(ctx) ?? []).map((cidr) => ({ cidr, via: via(ctx, cidr) })));
    if ((routes.length || def.routesToNodes) && this.spec.uplink.kind === 'bridge') {
      // The host needs an address on the node network to route via the nodes: the bridge gets the
      // last one (a routed uplink's gateway end has it already).
      const links = await host.listAddresses({ link: this.bridge });
      for (const net of this.spec.nodeNetworks) {
        const gw = lastHost(net);
        if (!links.some((a) => a.address === gw)) b.in(host).addAddress(this.bridge, `${gw}/${net.prefix}`, { nodad: true });
      }
    }
    for (const r of routes) b.in(host).addRoute({ destination: r.cidr, via: r.via });
    for (const ctx of contexts) {
      for (const [key, value] of Object.entries(def.nodeSysctls ?? {})) b.in(this.#nodeNs[ctx.index]).writeSysctl(key, value);
    }
    // After an adopt the routes are there already.
    await b.commit({ tolerate: ['EEXIST'] });
    const snat = contexts.flatMap((ctx) => {
      const nets = def.nodeSnat?.(ctx) ?? [];
      return nets.length ? [{ type: 'nft.batch', netns: this.#nodeNs[ctx.index].handle, commands: [...snatRules(this.#layout, nets, ctx.address, this.#mark).commands] } as NativeOp] : [];
    });
    if (snat.length) await submitAll(snat);
  }

  #supervise(svc: NodeService): NodeService {
    const k = svc.ctx.index;
    svc.on('log', (l) => this.emit('log', l));
    svc.on('state', (e) => this.emit('service-state', e));
    svc.on('exit', (e) => {
      this.emit('node-exit', { index: k, pid: e.pid, code: e.code, signal: e.signal });
      // Failover: the node's buckets go to the live nodes now, not when clients notice.
      if (!this.#closed) this.#setNodeState(k, 'down', 'exit', e.at).catch((err) => this.emit('log', { index: k, stream: 'stderr', line: `netns-cluster: failover failed: ${err}` }));
    });
    svc.on('failed', () => {
      this.#downReason[k] = 'failed';
      // Whatever order the last run's events were queued in, a service that gave up leaves its node
      // out of the distribution (queued after them, so it is the last word).
      if (!this.#closed)
        this.#setNodeState(k, 'down', 'failed').catch((err) => this.emit('log', { index: k, stream: 'stderr', line: `netns-cluster: taking node ${k} out failed: ${err}` }));
    });
    svc.on('ready', () => {
      const reason = this.#downReason[k];
      if (this.#closed || this.#state[k] === 'up') return;
      if (reason === 'exit' && this.spec.failback === 'auto') {
        this.#setNodeState(k, 'up', 'ready').catch(() => {});
      }
    });
    return svc;
  }

  /** Nodes that serve now: in the distribution, and (with a service) their service running. */
  liveNodes(): number[] {
    return this.nodes.flatMap((n, k) => (this.#state[k] === 'up' && (!this.spec.service || this.#services[k]?.state === 'running') ? [n.index] : []));
  }

  /** Starts BIRD when the spec announces the VIP, and lets the nodes' health drive what it announces. */
  async #startAnnouncer(): Promise<void> {
    const bgp = this.spec.announce?.bgp;
    if (!bgp) return;
    const a = new BgpAnnouncer({ cluster: this.name, hostNetns: this.spec.hostNetns, vips: this.spec.vips, bgp, dir: await ensureRuntimeDir(this.name), binary: this.#birdBinary ?? bgp.binary });
    this.#announcer = a;
    a.on('log', (l) => this.emit('log', l));
    a.on('change', (e) => this.emit('announce', e));
    await a.start();
    const sync = () => {
      if (this.#closed) return;
      a.setLive(this.liveNodes().length).catch((err) => this.emit('log', { index: -1, stream: 'stderr', line: `netns-cluster: updating the BGP announcement failed: ${err}` }));
    };
    for (const ev of ['node-down', 'node-up', 'service-state', 'update'] as const) this.on(ev, sync);
    await a.setLive(this.liveNodes().length);
  }

  /**
   * Withdraws the VIP's BGP announcement for good (until close): routers move new flows to the
   * other hosts while this one still serves what reaches it. `netns-cluster drain` waits after
   * this, then stops the cluster. Without `announce` in the spec it does nothing.
   */
  async drain(): Promise<void> {
    this.#assertOpen();
    await this.#announcer?.drain();
  }

  /** The BGP announcement: sessions, what is announced, the last change (undefined without `announce`). */
  async announcement(): Promise<BgpStatus | undefined> {
    return this.#announcer?.status();
  }

  /**
   * Kills every node's service process at once, forked children included (their cgroups), without
   * waiting for a graceful stop; supervisors that were stopping see the exits. For a second Ctrl-C.
   */
  kill(): void {
    killClusterCgroups(this.name).catch((err) => this.emit('log', { index: -1, stream: 'stderr', line: `netns-cluster: kill failed: ${err}` }));
  }

  /** Stops every node's service (SIGTERM, then SIGKILL after the service's stop timeout). */
  async stop(): Promise<void> {
    await Promise.all(this.#services.map((s) => s.stop()));
  }

  /** Per node: service state, pid, restarts, data-plane state, owned buckets, counters, and service details (e.g. VPN clients). */
  async status(): Promise<NodeStatus[]> {
    this.#assertOpen();
    const counters = await this.counters();
    const def = this.spec.service;
    return Promise.all(
      this.nodes.map(async (n, k) => {
        const svc = this.#services[k];
        const extra = svc && svc.state === 'running' && def?.status ? await def.status(svc.ctx).catch(() => ({})) : {};
        return {
          index: k,
          netns: n.netns,
          address: n.address,
          state: svc ? svc.state : 'none',
          pid: svc?.pid,
          restarts: svc?.restarts ?? 0,
          dataPlane: this.#state[k],
          buckets: this.#owners.flatMap((o, b) => (o === k ? [b] : [])),
          counters: counters[k],
          ...extra,
        };
      }),
    );
  }

  /**
   * Removes everything the cluster created and waits until the kernel has really removed it.
   * Idempotent; an uplink interface given by the user is released, not deleted.
   */
  close(): Promise<void> {
    this.#closed = true;
    this.#closing ??= this.#serial(async () => {
      try {
        faultPoint('close:begin');
        // The VIP is withdrawn (and BIRD stopped) before any node stops serving.
        await this.#announcer?.close();
        // Final: no supervisor starts or restarts anything after this, even a start() in flight.
        await Promise.all(this.#services.map((svc) => svc.dispose()));
        faultPoint('close:services-stopped');
        await this.#teardown();
        await removeState(this.name);
        faultPoint('close:state-removed');
      } finally {
        this.#lock?.release({ remove: true });
        this.#lock = undefined;
      }
    });
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #teardown(): Promise<void> {
    const nodes = [...this.#nodeNs, ...this.nodes.map((x) => x.netns).filter((x) => !this.#nodeNs.some((h) => h.name === x))];
    this.#nodeNs = [];
    const host = this.#host;
    this.#host = undefined;
    try {
      await removeClusterObjects({
        name: this.name,
        host,
        nodes,
        uplink: this.spec.uplink.kind === 'bridge' ? this.spec.uplink.ifname : undefined,
        restore: this.#restore,
        hostNetns: this.spec.hostNetns,
        // This process recorded what it changed, in this very namespace.
        trusted: true,
        vmac: this.vmac,
      });
    } finally {
      await host?.close();
    }
  }
}
