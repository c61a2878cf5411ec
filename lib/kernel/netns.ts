/**
 * Network namespaces and everything in them: links, addresses, routes, neighbours, sysctls.
 *
 * Namespace entry only ever happens on the addon's own thread, never on the Node main thread or a
 * libuv pool thread. Every call returns a Promise; many may be in flight at once.
 * @module
 */
import { readdir } from 'node:fs/promises';
import { binding, type NativeHandle, type NativeOp, type Outcomes, type ResultOf } from './binding.js';
import { BatchError, InvalidArgumentError, isKernelError, type KernelError } from '../util/errors.js';
import * as ops from './ops.js';
import type { AddressInfo, LinkInfo, NeighbourInfo, RouteInfo } from './types.js';
import { checkAlias, checkFamily, checkLinkRef, checkNetnsName, checkUint, got, show, sysctlPath } from '../util/validate.js';

/** Where named namespaces live, as with `ip netns`. */
export const NETNS_RUN_DIR = '/run/netns';

/** The handle a successful netns.create/netns.open resolved to (null: the op was skipped). */
function opened(h: NativeHandle | KernelError | null): NativeHandle {
  if (h instanceof Error) throw h;
  if (h === null) throw new Error('netns-cluster: a namespace op was skipped without a failure (addon bug)');
  return h;
}

/** Runs ops as one pipelined job and throws the first failure. */
async function runOps<const O extends readonly NativeOp[]>(list: O): Promise<Outcomes<O>> {
  const results = await binding().submit(list, true);
  const failed = results.find((r): r is KernelError => r instanceof Error);
  if (failed) throw failed;
  return results;
}

/** Runs ops as one job and resolves with the first op's value (the others are its follow-ups). */
async function runOne<O extends NativeOp>(list: readonly [O, ...NativeOp[]]): Promise<ResultOf<O>> {
  const [first] = await runOps(list);
  return first as ResultOf<O>; // no op failed, and none is skipped without a failure
}

export interface NetnsCreateOptions {
  /** A mark (≤ 255 bytes, no NUL), e.g. `netns-cluster:lab`: set as lo's alias before the namespace is named. */
  mark?: string;
  /**
   * Sysctls (`net.*` keys) written inside each new namespace before it is named, e.g.
   * `{ 'net.ipv6.conf.default.accept_dad': 0 }`: a namespace is never visible without them, and
   * they cost no extra namespace switch.
   */
  sysctls?: Record<string, string | number | boolean>;
}

function pathOf(nameOrPath: string): { path: string; name?: string } {
  if (typeof nameOrPath !== 'string' || nameOrPath.length === 0)
    throw new InvalidArgumentError('nameOrPath', `expected a namespace name or a path such as /proc/PID/ns/net, ${got(nameOrPath)}`);
  if (nameOrPath.includes('/')) {
    if (nameOrPath.includes('\0') || Buffer.byteLength(nameOrPath) > 4096)
      throw new InvalidArgumentError('nameOrPath', `${show(nameOrPath)} is not a usable path: no NUL characters, at most 4096 bytes`);
    return { path: nameOrPath };
  }
  return { path: `${NETNS_RUN_DIR}/${checkNetnsName('name', nameOrPath)}`, name: nameOrPath };
}

/** The error for using a closed Netns. */
export function closedError(ns: { name?: string; path: string }): InvalidArgumentError {
  return new InvalidArgumentError('netns', `the handle on namespace ${show(ns.name ?? ns.path)} is closed; open it again with Netns.open`);
}

function options(o: unknown): void {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new InvalidArgumentError('options', `expected an options object, ${got(o)}`);
}

/**
 * A handle on one network namespace. Holds an open file descriptor of it; sockets the addon opens
 * inside it are cached until {@link Netns.close}. Closing does not delete a named namespace.
 */
export class Netns implements ops.HasHandle, AsyncDisposable {
  /** @internal */
  readonly handle: NativeHandle;
  /** The name under /run/netns, if it has one (usable with `ip -n NAME`). */
  readonly name: string | undefined;
  /** The namespace file this handle was opened from. */
  readonly path: string;
  #closed = false;

  /** @internal */
  constructor(handle: NativeHandle, path: string, name?: string) {
    this.handle = handle;
    this.path = path;
    this.name = name;
  }

  /**
   * Creates a persistent named namespace, exactly as `ip netns add NAME` does. With `mark`, the new
   * namespace's `lo` gets that alias before the namespace is bind-mounted under its name, so it is
   * never visible unmarked (read it back with {@link Netns.mark} / {@link Netns.readMark}).
   */
  static async create(name: string, o: NetnsCreateOptions = {}): Promise<Netns> {
    return (await Netns.createMany([name], o))[0];
  }

  /**
   * Creates several named namespaces in one job (each marked as with {@link Netns.create}). All or
   * nothing: if one fails, those already made are deleted again and the error is thrown.
   */
  static async createMany(names: string[], o: NetnsCreateOptions = {}): Promise<Netns[]> {
    const early = Netns.createManyEarly(names, o);
    await early.made;
    return early.namespaces;
  }

  /**
   * {@link Netns.createMany}, with the handles at once: `namespaces` can be given to {@link Batch.in}
   * (and as a veth peer's namespace) before they exist, and such a batch committed right away runs
   * once they do (the addon runs jobs in order). `made` resolves when all exist; if one could not be
   * made, those made are deleted again, `made` rejects with the error, the handles are closed, and
   * a batch queued for them does nothing and fails with ENOENT. Overlaps building the next job's
   * requests on this thread with the kernel's work of making the namespaces.
   */
  static createManyEarly(names: string[], o: NetnsCreateOptions = {}): { namespaces: Netns[]; made: Promise<void> } {
    if (!Array.isArray(names)) throw new InvalidArgumentError('names', `expected an array of namespace names, ${got(names)}`);
    if (typeof o !== 'object' || o === null) throw new InvalidArgumentError('options', 'expected an options object such as { mark }');
    const paths = names.map((n, i) => pathOf(checkNetnsName(names.length === 1 ? 'name' : `names[${i}]`, n)));
    const mark = o.mark === undefined ? undefined : checkAlias('mark', o.mark);
    if (o.sysctls !== undefined && (typeof o.sysctls !== 'object' || o.sysctls === null || Array.isArray(o.sysctls)))
      throw new InvalidArgumentError('sysctls', `expected an object of sysctl keys and values such as { 'net.ipv4.ip_forward': 1 }, ${got(o.sysctls)}`);
    const sysctls = Object.entries(o.sysctls ?? {}).map(([key, value]) => ({ path: sysctlPath(key), value: ops.sysctlValue(value, `sysctls['${key}']`) }));
    const handles = paths.map((p) => binding().reserveNetns(p.path));
    const namespaces = handles.map((h, i) => new Netns(h, paths[i].path, paths[i].name));
    const submitted = binding().submit(
      paths.map((p, i) => ({ type: 'netns.create', path: p.path, into: handles[i], ...(mark !== undefined ? { mark } : {}), ...(sysctls.length ? { sysctls } : {}) })),
      true,
    );
    const made = submitted.then(async (results) => {
      const failed = results.findIndex((r) => r instanceof Error);
      if (failed < 0) return;
      // Every handle is released (those never made hold no file); the ones made are deleted.
      await binding().submit(
        handles.flatMap((h, i): NativeOp[] => [
          { type: 'netns.release', netns: h },
          ...(results[i] && !(results[i] instanceof Error) ? [{ type: 'netns.delete' as const, path: paths[i].path }] : []),
        ]),
        false,
      );
      for (const n of namespaces) n.#closed = true;
      throw results[failed];
    });
    return { namespaces, made };
  }

  /**
   * The mark of a named namespace (its lo alias, see {@link Netns.create}); undefined when there is
   * no such namespace, when the name is not (yet) a namespace, or when it has no mark.
   */
  static async readMark(name: string): Promise<string | undefined> {
    const { path } = pathOf(checkNetnsName('name', name));
    const [h] = await binding().submit([{ type: 'netns.open', path }], true);
    if (h instanceof Error) {
      if (h.code === 'ENOENT' || h.code === 'EINVAL') return undefined;
      throw h;
    }
    const ns = new Netns(opened(h), path, name);
    try {
      return await ns.mark();
    } finally {
      await ns.close();
    }
  }

  /**
   * Opens an existing namespace: a name under /run/netns, or any path to a namespace file
   * (`/proc/PID/ns/net`). With no argument: the caller's own namespace.
   */
  static async open(nameOrPath?: string): Promise<Netns> {
    const { path, name } = pathOf(nameOrPath ?? '/proc/self/ns/net');
    const h = await runOne([{ type: 'netns.open', path }]);
    return new Netns(h, path, name);
  }

  /**
   * Deletes a named namespace like `ip netns del`. A missing namespace is not an error. Given a
   * handle, closes it too: an open handle would keep the namespace (and its links) alive.
   */
  static async delete(target: string | Netns): Promise<void> {
    await Netns.deleteMany([target]);
  }

  /** Deletes several named namespaces (names or handles, which are closed) in one job; missing ones are not an error. */
  static async deleteMany(targets: (string | Netns)[]): Promise<void> {
    if (!Array.isArray(targets)) throw new InvalidArgumentError('targets', `expected an array of names or Netns handles, ${got(targets)}`);
    const list: NativeOp[] = [];
    for (const t of targets) {
      if (typeof t === 'string') {
        list.push({ type: 'netns.delete', path: pathOf(checkNetnsName('name', t)).path });
        continue;
      }
      if (!(t instanceof Netns)) throw new InvalidArgumentError('targets', `expected namespace names or Netns handles, ${got(t)}`);
      if (t.name === undefined) throw new InvalidArgumentError('targets', `${t.path} is not a named namespace; only /run/netns entries can be deleted`);
      list.push(...t.#release(), { type: 'netns.delete', path: t.path });
    }
    await runOps(list);
  }

  /** Closes this handle and deletes the named namespace (see {@link Netns.delete}). */
  async delete(): Promise<void> {
    await Netns.deleteMany([this]);
  }

  /** The op that drops the addon's sockets and fd for this handle (none if already closed). */
  #release(): NativeOp[] {
    if (this.#closed) return [];
    this.#closed = true;
    return [{ type: 'netns.release', netns: this.handle }];
  }

  /** Names of the namespaces under /run/netns, like `ip netns list`. */
  static async list(): Promise<string[]> {
    try {
      return (await readdir(NETNS_RUN_DIR)).sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Runs this namespace's ops (built by lib/kernel/ops.ts). */
  #run<O extends NativeOp>(list: readonly [O, ...NativeOp[]]): Promise<ResultOf<O>> {
    if (this.#closed) return Promise.reject(closedError(this));
    return runOne(list);
  }

  /** Builds the ops (validation errors reject, never throw) and runs them: resolves with the first op's value. */
  #try<O extends NativeOp>(build: () => readonly [O, ...NativeOp[]]): Promise<ResultOf<O>> {
    try {
      return this.#run(build());
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Like #try, for changes that resolve to nothing. */
  async #do(build: () => readonly NativeOp[]): Promise<void> {
    if (this.#closed) throw closedError(this);
    await runOps(build());
  }

  /** This namespace's mark: the alias of its lo (ifindex 1), or undefined without one. */
  async mark(): Promise<string | undefined> {
    const lo = await this.#run([{ type: 'link.get', netns: this.handle, link: 1 }]);
    return lo.alias;
  }

  /** Adds a veth pair; the peer may be created directly inside another namespace. */
  addVeth(o: ops.VethOptions): Promise<void> {
    return this.#do(() => ops.addVeth(this, o));
  }

  /** Adds a bridge (multicast snooping, VLAN filtering and STP off unless asked for). */
  addBridge(o: ops.BridgeOptions): Promise<void> {
    return this.#do(() => ops.addBridge(this, o));
  }

  /** Adds a dummy interface. */
  addDummy(o: ops.DummyOptions): Promise<void> {
    return this.#do(() => ops.addDummy(this, o));
  }

  /** Changes a link: up/down, MAC, MTU, name, master (null = nomaster), namespace. */
  setLink(link: string | number, changes: ops.LinkChanges): Promise<void> {
    return this.#do(() => ops.setLink(this, link, changes));
  }

  /** Deletes a link (for a veth, both ends go). */
  deleteLink(link: string | number): Promise<void> {
    return this.#do(() => ops.deleteLink(this, link));
  }

  /** One link by name or index; rejects with code ENODEV if there is none. */
  getLink(link: string | number): Promise<LinkInfo> {
    return this.#try(() => [{ type: 'link.get', netns: this.handle, link: checkLinkRef('link', link) }]);
  }

  /**
   * Every link in this namespace. With `resolvePeers`, a veth whose peer is in a named namespace
   * gets `peerNetns` (its name).
   */
  async listLinks(o: { resolvePeers?: boolean } = {}): Promise<LinkInfo[]> {
    options(o);
    const links = await this.#run([{ type: 'link.list', netns: this.handle }]);
    if (o.resolvePeers && links.some((l) => l.peerNetnsId !== undefined && l.peerNetnsId >= 0)) {
      const ids = await this.netnsIds();
      for (const l of links) if (l.peerNetnsId !== undefined && ids.has(l.peerNetnsId)) l.peerNetns = ids.get(l.peerNetnsId);
    }
    return links;
  }

  /** Map from this namespace's ids for other namespaces to their names under /run/netns. */
  async netnsIds(): Promise<Map<number, string>> {
    const names = await Netns.list();
    const opened = await binding().submit(
      names.map((n) => ({ type: 'netns.open', path: `${NETNS_RUN_DIR}/${n}` })),
      false,
    );
    const handles = opened.map((h) => (h instanceof Error || h === null ? undefined : h));
    const list: NativeOp[] = handles.flatMap((h) => (h ? [{ type: 'nsid.get', netns: this.handle, target: h } as NativeOp] : []));
    const ids = await binding().submit(list, false);
    const map = new Map<number, string>();
    let k = 0;
    handles.forEach((h, i) => {
      if (!h) return;
      const id = ids[k++];
      if (typeof id === 'number' && id >= 0) map.set(id, names[i]);
    });
    await binding().submit(
      handles.flatMap((h) => (h ? [{ type: 'netns.release', netns: h } as NativeOp] : [])),
      false,
    );
    return map;
  }

  /** Adds an address (`192.0.2.1/24`, `2001:db8::1/64`) to a link. */
  addAddress(link: string | number, cidr: string, o?: ops.AddressOptions): Promise<void> {
    return this.#do(() => ops.addAddress(this, link, cidr, o));
  }

  deleteAddress(link: string | number, cidr: string): Promise<void> {
    return this.#do(() => ops.deleteAddress(this, link, cidr));
  }

  /** Addresses, optionally of one family and/or one link. */
  async listAddresses(o: { family?: 4 | 6; link?: string | number } = {}): Promise<AddressInfo[]> {
    options(o);
    if (o.family !== undefined) checkFamily('family', o.family);
    if (o.link !== undefined) checkLinkRef('link', o.link);
    let all = await this.#run([{ type: 'addr.list', netns: this.handle, family: o.family }]);
    if (o.link !== undefined) {
      const index = typeof o.link === 'number' ? o.link : (await this.getLink(o.link)).index;
      all = all.filter((a) => a.index === index);
    }
    return all;
  }

  /** Adds a route: `{ destination: 'default', via: '192.0.2.254' }`, `{ destination: '198.51.100.0/24', dev: 'eth0' }`. */
  addRoute(r: ops.RouteSpec): Promise<void> {
    return this.#do(() => ops.addRoute(this, r));
  }

  deleteRoute(r: ops.RouteSpec): Promise<void> {
    return this.#do(() => ops.deleteRoute(this, r));
  }

  /** Routes of the main table (or `table`, or every table with `table: 'all'`). */
  async listRoutes(o: { family?: 4 | 6; table?: number | 'all' } = {}): Promise<RouteInfo[]> {
    options(o);
    if (o.family !== undefined) checkFamily('family', o.family);
    if (o.table !== undefined && o.table !== 'all') checkUint('table', o.table, 0, 0xffffffff);
    const all = await this.#run([{ type: 'route.list', netns: this.handle, family: o.family }]);
    const table = o.table ?? 254;
    return table === 'all' ? all : all.filter((r) => r.table === table);
  }

  /** Adds (or replaces) a permanent neighbour entry. */
  addNeighbour(link: string | number, address: string, mac: string): Promise<void> {
    return this.#do(() => ops.addNeighbour(this, link, address, mac));
  }

  deleteNeighbour(link: string | number, address: string): Promise<void> {
    return this.#do(() => ops.deleteNeighbour(this, link, address));
  }

  listNeighbours(o: { family?: 4 | 6 } = {}): Promise<NeighbourInfo[]> {
    try {
      options(o);
      if (o.family !== undefined) checkFamily('family', o.family);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#run([{ type: 'neigh.list', netns: this.handle, family: o.family }]);
  }

  /** Reads a sysctl of this namespace: `net.ipv4.ip_forward`, `net/ipv6/conf/eth0.10/disable_ipv6`. */
  readSysctl(key: string): Promise<string> {
    return this.#try(() => [{ type: 'sysctl.read', netns: this.handle, path: sysctlPath(key) }]);
  }

  /** Writes a sysctl of this namespace (booleans become 1/0). */
  writeSysctl(key: string, value: string | number | boolean): Promise<void> {
    return this.#do(() => ops.writeSysctl(this, key, value));
  }

  /**
   * Closes the handle: the addon drops its cached sockets for this namespace and closes the fd.
   * Idempotent. A named namespace stays until {@link Netns.delete}.
   */
  async close(): Promise<void> {
    const release = this.#release();
    if (release.length) await binding().submit(release, false);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Write operations a batch can queue, all targeting the namespace given to {@link Batch.in}. */
export class BatchScope {
  readonly #batch: Batch;
  readonly #ns: Netns;
  /** @internal */
  constructor(batch: Batch, ns: Netns) {
    this.#batch = batch;
    this.#ns = ns;
  }
  #add(list: NativeOp[]): this {
    this.#batch.push(list);
    return this;
  }
  addVeth(o: ops.VethOptions): this {
    return this.#add(ops.addVeth(this.#ns, o));
  }
  addBridge(o: ops.BridgeOptions): this {
    return this.#add(ops.addBridge(this.#ns, o));
  }
  addDummy(o: ops.DummyOptions): this {
    return this.#add(ops.addDummy(this.#ns, o));
  }
  setLink(link: string | number, c: ops.LinkChanges): this {
    return this.#add(ops.setLink(this.#ns, link, c));
  }
  deleteLink(link: string | number): this {
    return this.#add(ops.deleteLink(this.#ns, link));
  }
  addAddress(link: string | number, cidr: string, o?: ops.AddressOptions): this {
    return this.#add(ops.addAddress(this.#ns, link, cidr, o));
  }
  deleteAddress(link: string | number, cidr: string): this {
    return this.#add(ops.deleteAddress(this.#ns, link, cidr));
  }
  addRoute(r: ops.RouteSpec): this {
    return this.#add(ops.addRoute(this.#ns, r));
  }
  deleteRoute(r: ops.RouteSpec): this {
    return this.#add(ops.deleteRoute(this.#ns, r));
  }
  addNeighbour(link: string | number, address: string, mac: string): this {
    return this.#add(ops.addNeighbour(this.#ns, link, address, mac));
  }
  deleteNeighbour(link: string | number, address: string): this {
    return this.#add(ops.deleteNeighbour(this.#ns, link, address));
  }
  writeSysctl(key: string, value: string | number | boolean): this {
    return this.#add(ops.writeSysctl(this.#ns, key, value));
  }
}

/**
 * Many changes across any number of namespaces, sent as one job: consecutive requests to the same
 * namespace are pipelined (one sendmsg, many acks), which is what makes building a cluster fast.
 *
 * ```ts
 * const b = new Batch();
 * b.in(host).addBridge({ name: 'br0', up: true }).addVeth({ name: 'v0', master: 'br0', up: true, peer: { name: 'eth0', netns: node, up: true } });
 * b.in(node).addAddress('eth0', '192.0.2.1/24');
 * await b.commit();
 * ```
 * Netlink changes are not transactional: on failure {@link Batch.commit} stops starting new work and
 * throws a {@link BatchError} that says what did and did not happen, so the caller can undo it.
 */
export class Batch {
  readonly #ops: NativeOp[] = [];

  /** Queue ops targeting `ns`. */
  in(ns: Netns): BatchScope {
    if (!(ns instanceof Netns))
      throw new InvalidArgumentError('netns', `Batch.in expects a Netns (from Netns.create or Netns.open), ${got(ns)}`);
    if (ns.closed) throw closedError(ns);
    return new BatchScope(this, ns);
  }

  /** @internal */
  push(list: NativeOp[]): void {
    this.#ops.push(...list);
  }

  /** Number of kernel requests queued. */
  get size(): number {
    return this.#ops.length;
  }

  /**
   * Sends everything. Throws a {@link BatchError} for the first failure. With `tolerate` (error
   * codes such as `EEXIST`), every request is sent and failures with those codes count as done:
   * applying a plan to what partly exists already.
   */
  async commit(o: { tolerate?: string[] } = {}): Promise<void> {
    const tolerate = o.tolerate ?? [];
    const results = await binding().submit(groupDeferrable(this.#ops.splice(0)), tolerate.length === 0);
    const i = results.findIndex((r) => r instanceof Error && !tolerate.includes(r.code));
    const failed = results[i];
    if (failed instanceof Error) throw new BatchError(i, failed, results);
  }
}

/**
 * Moves each deferrable op (such as bringing a veth peer up in the peer's namespace) to just before
 * the next op for the same namespace, so requests to one namespace stay consecutive. Result indexes
 * of a BatchError refer to this order.
 */
function groupDeferrable(list: NativeOp[]): NativeOp[] {
  const out: NativeOp[] = [];
  const waiting = new Map<NativeHandle | undefined, NativeOp[]>();
  for (const op of list) {
    const held = waiting.get(op.netns);
    if (held) {
      out.push(...held);
      waiting.delete(op.netns);
    }
    if (op.deferrable) {
      const q = waiting.get(op.netns) ?? [];
      q.push(op);
      waiting.set(op.netns, q);
    } else {
      out.push(op);
    }
  }
  for (const q of waiting.values()) out.push(...q);
  return out;
}

export { isKernelError };
