/**
 * Stable client addresses (`addresses: 'stable'`): one cluster-wide pool instead of one per node,
 * an address book that gives each client (by common name, or by username when the server checks
 * passwords) one address for good, kept in the cluster's runtime directory, and what the
 * controller pushes through the management interface (`ifconfig-push`).
 * @module
 */
import { lstat, readFile } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import type { NodeRoutes } from '../service.js';
import { show } from '../../util/shape.js';
import { writeJsonAtomic } from '../../util/files.js';
import { addressValue, nthHost } from '../../util/ipmath.js';
import type { ClientEvent, ManagementClient } from './management.js';

/** OpenVPN's `topology`: how a pushed address is written (`subnet`: address and netmask; `net30`/`p2p`: address and peer). */
export type Topology = 'subnet' | 'net30' | 'p2p';

/** The cluster-wide client network: every node's tun holds `serverAddress` on it. */
export interface ClusterPool {
  /** e.g. `10.8.0.0`. */
  network: string;
  /** e.g. `255.255.255.0`. */
  netmask: string;
  prefix: number;
  /** The servers' own tunnel address (the first host), the same in every node. */
  serverAddress: string;
}

const toInt = (ip: string): number => ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
const toIp = (v: number): string => [24, 16, 8, 0].map((s) => Math.floor(v / 2 ** s) % 256).join('.');

/** The whole `base/prefix` block as one pool (the caller has checked alignment and range). */
export function clusterPool(base: string, prefix: number): ClusterPool {
  const size = 2 ** (32 - prefix);
  const network = toInt(base) - (toInt(base) % size);
  return { network: toIp(network), netmask: toIp(2 ** 32 - size), prefix, serverAddress: toIp(network + 1) };
}

/**
 * The addresses clients may get, in order, as OpenVPN's own pool would hand them out: `subnet` and
 * `p2p` every host after the server's (not the broadcast address); `net30` the client end (`+2`)
 * of every /30 after the server's.
 */
export function* poolAddresses(pool: ClusterPool, topology: Topology): Generator<string> {
  const start = toInt(pool.network);
  const size = 2 ** (32 - pool.prefix);
  if (topology === 'net30') {
    for (let b = start + 4; b + 3 < start + size; b += 4) yield toIp(b + 2);
    return;
  }
  for (let a = start + 2; a < start + size - 1; a++) yield toIp(a);
}

/** How many clients the pool holds. */
export function poolCapacity(pool: ClusterPool, topology: Topology): number {
  const size = 2 ** (32 - pool.prefix);
  return topology === 'net30' ? size / 4 - 1 : size - 3;
}

/**
 * The cluster-wide IPv6 client network, when the servers have one (`server-ipv6`): every node's tun
 * holds `serverAddress` (`::1` of it). A client's IPv6 address is paired with its IPv4 one: the
 * same offset into the network (`10.8.0.7` ↔ `fd00:8::7`), so it needs no book of its own.
 */
export interface ClusterPool6 {
  network: string;
  prefix: number;
  serverAddress: string;
}

/** The IPv6 block `base/prefix` as the cluster's pool (the caller has checked it). */
export function clusterPool6(base: string, prefix: number): ClusterPool6 {
  const net = { address: base, prefix, family: 6 as const };
  return { network: nthHost(net, 0), prefix, serverAddress: nthHost(net, 1) };
}

/** Whether `pool6` has an address for every client of `pool` (its offsets reach as far). */
export function pool6Fits(pool: ClusterPool, pool6: ClusterPool6): boolean {
  return 128 - pool6.prefix >= 32 - pool.prefix;
}

/** The IPv6 address paired with the IPv4 `address`: the same offset into `pool6`. */
export function pairedAddress6(pool: ClusterPool, pool6: ClusterPool6, address: string): string {
  const offset = addressValue(address) - addressValue(pool.network);
  return nthHost({ address: pool6.network, prefix: pool6.prefix, family: 6 }, offset);
}

/** The client-connect line that gives a client its IPv6 address: `ifconfig-ipv6-push <address>/<prefix> <server>`. */
export function ifconfigIpv6Push(pool6: ClusterPool6, address6: string): string {
  return `ifconfig-ipv6-push ${address6}/${pool6.prefix} ${pool6.serverAddress}`;
}

/** The client-connect line that gives a client `address`: `ifconfig-push <address> <netmask | peer>`. */
export function ifconfigPush(pool: ClusterPool, topology: Topology, address: string): string {
  if (topology === 'subnet') return `ifconfig-push ${address} ${pool.netmask}`;
  if (topology === 'net30') return `ifconfig-push ${address} ${toIp(toInt(address) - 1)}`;
  return `ifconfig-push ${address} ${pool.serverAddress}`;
}

/**
 * The `topology` a server config ends up with: its last `topology` line (OpenVPN lets a later
 * directive win), `net30` (OpenVPN's default) when there is none.
 */
export function topologyOf(config: string): Topology {
  let t: Topology = 'net30';
  for (const line of config.split(/\r?\n/)) {
    const m = /^\s*-{0,2}topology\s+(subnet|net30|p2p)\b/i.exec(line);
    if (m) t = m[1].toLowerCase() as Topology;
  }
  return t;
}

/**
 * The IPv6 pool a server config ends up with: its last `server-ipv6 <network>/<prefix>` line, or
 * undefined. With stable addresses every node has the same one (the cluster's).
 */
export function serverIpv6Of(config: string): { base: string; prefix: number } | undefined {
  let found: { base: string; prefix: number } | undefined;
  for (const line of config.split(/\r?\n/)) {
    const m = /^\s*-{0,2}server-ipv6\s+([0-9a-fA-F:]+)\/(\d{1,3})\b/i.exec(line);
    if (m && isIPv6(m[1])) found = { base: m[1], prefix: Number(m[2]) };
  }
  return found;
}

/**
 * Whether the server checks passwords (an `auth-user-pass-verify` script or a plugin in its
 * config): only then may a client's username choose its address. Otherwise a client could send
 * any username and take another client's address; its certificate's common name is used then.
 */
export function checksPasswords(config: string): boolean {
  return config.split(/\r?\n/).some((l) => /^\s*-{0,2}(auth-user-pass-verify|plugin)\s/i.test(l));
}

/**
 * The name a client's address is kept under: its username when the server checks passwords and the
 * client gave one, else its certificate's common name. Undefined when it has neither.
 */
export function clientKey(env: ReadonlyMap<string, string>, byUsername: boolean): string | undefined {
  const username = env.get('username');
  if (byUsername && username) return `user:${username}`;
  const cn = env.get('common_name');
  return cn ? `cn:${cn}` : undefined;
}

/** The address book on disk: `[key, address]` pairs (a key is the client's to choose in part: never an object key). */
interface BookFile {
  version: 1;
  pool: string;
  topology: Topology;
  clients: [string, string][];
}

/** The most the address file may hold (a /16 pool fully used is about 3 MiB). */
const MAX_BOOK_BYTES = 16 << 20;

/**
 * Which client has which address, for the whole cluster. An address is reserved when a client
 * connects and kept (written to disk) once its session is established, so that a client refused
 * by an `auth-user-pass-verify` script after the reservation does not keep one. Kept addresses
 * stay the client's for as long as the cluster exists (its runtime directory); they are never
 * given to another client.
 */
export class AddressBook {
  readonly file: string;
  readonly pool: ClusterPool;
  readonly topology: Topology;
  /** The IPv6 pool, when the servers have one: each client's IPv6 address is paired with its IPv4 one. */
  readonly pool6: ClusterPool6 | undefined;
  /** key → address, kept. */
  #kept = new Map<string, string>();
  /** key → address, reserved by a connection in progress. */
  #reserved = new Map<string, string>();
  /** address → key (kept or reserved). */
  #owner = new Map<string, string>();
  #writing: Promise<void> = Promise.resolve();
  /** Entries of the file that were dropped when it was read (outside the pool, duplicates). */
  readonly dropped: string[] = [];

  private constructor(file: string, pool: ClusterPool, topology: Topology, pool6?: ClusterPool6) {
    this.file = file;
    this.pool = pool;
    this.topology = topology;
    this.pool6 = pool6;
  }

  /** The addresses of `key` (IPv4, and IPv6 when the pool has it), if it has any. */
  addresses(key: string): { v4: string; v6?: string } | undefined {
    const v4 = this.get(key);
    if (v4 === undefined) return undefined;
    return this.pool6 ? { v4, v6: pairedAddress6(this.pool, this.pool6, v4) } : { v4 };
  }

  /**
   * Reads the book at `file` (empty if there is none). Entries that are not in this pool (the pool
   * changed), duplicates and anything malformed are dropped and listed in `dropped`.
   */
  static async open(file: string, pool: ClusterPool, topology: Topology, pool6?: ClusterPool6): Promise<AddressBook> {
    if (pool6 && !pool6Fits(pool, pool6))
      throw new Error(`the IPv6 pool ${pool6.network}/${pool6.prefix} is smaller than the IPv4 pool ${pool.network}/${pool.prefix}; each client's IPv6 address is paired with its IPv4 one, so give a /${128 - (32 - pool.prefix)} or larger`);
    const book = new AddressBook(file, pool, topology, pool6);
    let text: string | undefined;
    try {
      const st = await lstat(file);
      if (!st.isFile()) throw new Error(`${file} is not a regular file; netns-cluster keeps client addresses there: move it away`);
      if (st.size > MAX_BOOK_BYTES) throw new Error(`${file} is ${st.size} bytes, more than an address book holds; move it away`);
      text = await readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (text === undefined) return book;
    let data: Partial<BookFile>;
    try {
      data = JSON.parse(text) as Partial<BookFile>;
    } catch {
      throw new Error(`${file} is not JSON; it holds the cluster's client addresses: move it away to start with an empty book`);
    }
    const valid = new Set(poolAddresses(pool, topology));
    for (const pair of Array.isArray(data.clients) ? data.clients : []) {
      const [key, address] = Array.isArray(pair) ? pair : [];
      if (typeof key !== 'string' || typeof address !== 'string' || !isIPv4(address) || !valid.has(address) || book.#owner.has(address) || book.#kept.has(key)) {
        book.dropped.push(String(JSON.stringify(pair)).slice(0, 80));
        continue;
      }
      book.#kept.set(key, address);
      book.#owner.set(address, key);
    }
    return book;
  }

  /** The address kept or reserved for `key`. */
  get(key: string): string | undefined {
    return this.#kept.get(key) ?? this.#reserved.get(key);
  }

  /** Every kept address: key → address. */
  entries(): Map<string, string> {
    return new Map(this.#kept);
  }

  /** Addresses in use (kept or reserved). */
  get size(): number {
    return this.#owner.size;
  }

  /**
   * The address of `key`: the one it has, or the lowest free one, reserved (not yet written).
   * Undefined when the pool is exhausted.
   */
  reserve(key: string): string | undefined {
    const have = this.get(key);
    if (have) return have;
    for (const a of poolAddresses(this.pool, this.topology)) {
      if (this.#owner.has(a)) continue;
      this.#reserved.set(key, a);
      this.#owner.set(a, key);
      return a;
    }
    return undefined;
  }

  /** Keeps `key`'s reserved address for good: written to the file (atomically) before this resolves. */
  async keep(key: string): Promise<void> {
    const a = this.#reserved.get(key);
    if (a === undefined) return;
    this.#reserved.delete(key);
    this.#kept.set(key, a);
    await this.#save();
  }

  /** Gives back a reservation that was never kept (the connection failed). Kept addresses stay. */
  cancel(key: string): void {
    const a = this.#reserved.get(key);
    if (a === undefined) return;
    this.#reserved.delete(key);
    this.#owner.delete(a);
  }

  /** Forgets `key`'s kept address (it may go to another client afterwards). Returns it. */
  async release(key: string): Promise<string | undefined> {
    const a = this.#kept.get(key);
    if (a === undefined) return undefined;
    this.#kept.delete(key);
    this.#owner.delete(a);
    await this.#save();
    return a;
  }

  /** Writes are serialised: each writes the book as it is then, the last one wins. */
  #save(): Promise<void> {
    const run = this.#writing.then(() => {
      const data: BookFile = { version: 1, pool: `${this.pool.network}/${this.pool.prefix}`, topology: this.topology, clients: [...this.#kept] };
      return writeJsonAtomic(this.file, data);
    });
    this.#writing = run.catch(() => {});
    return run;
  }
}

/** One node as {@link StableClients} sees it: its management connection, its host routes, its log. */
export interface StableNode {
  index: number;
  management: ManagementClient;
  routes: NodeRoutes | undefined;
  log: (line: string) => void;
}

/** A client's session: where it is served now. */
export interface StableSession {
  key: string;
  address: string;
  /** Its IPv6 address, when the pool has IPv6. */
  address6?: string;
  node: number;
  cid: number;
}

/** How long a reservation waits for its session to be established (OpenVPN's hand-window is 60 s). */
const RESERVATION_MS = 120_000;

/**
 * The controller's side of stable addresses: answers every node's `>CLIENT:CONNECT` with the
 * client's address (`client-auth` + `ifconfig-push`), keeps it once the session is established,
 * routes it on the host via the node that serves the client, and follows the client when it
 * moves: its newest session wins (the older one, on another node, is ended, as OpenVPN itself
 * does within one server without `duplicate-cn`), and a disconnect or an exit removes a route only
 * if it still goes via that node.
 */
export class StableClients {
  readonly book: AddressBook;
  /** Key by username when the server checks passwords (see {@link checksPasswords}). */
  readonly byUsername: boolean;
  #nodes = new Map<number, StableNode & { off: () => void }>();
  /** key → its current session. */
  #sessions = new Map<string, StableSession>();
  /** `${node}:${cid}` → key, from CONNECT until ESTABLISHED or DISCONNECT. */
  #pending = new Map<string, { key: string; timer: NodeJS.Timeout }>();

  constructor(book: AddressBook, byUsername: boolean) {
    this.book = book;
    this.byUsername = byUsername;
  }

  /** Every client being served, by key. */
  sessions(): StableSession[] {
    return [...this.#sessions.values()];
  }

  /** Starts answering node `n`'s clients (replacing an earlier connection of that node). */
  attach(n: StableNode): void {
    this.#nodes.get(n.index)?.off();
    const onClient = (e: ClientEvent) => {
      this.#onClient(n, e).catch((err) => n.log(`stable addresses: ${e.event} of client ${e.cid}: ${(err as Error).message}`));
    };
    n.management.on('client', onClient);
    this.#nodes.set(n.index, { ...n, off: () => n.management.off('client', onClient) });
  }

  /**
   * Node `index`'s server is gone (exited, restarting): its sessions end and their routes via it
   * go (a client that reconnected elsewhere already has its new route, which stays).
   */
  async detach(index: number, management?: ManagementClient): Promise<void> {
    const n = this.#nodes.get(index);
    // A connection given: only if it is still the node's (a restarted server may have attached again).
    if (!n || (management !== undefined && n.management !== management)) return;
    n.off();
    this.#nodes.delete(index);
    for (const [id, p] of this.#pending)
      if (id.startsWith(`${index}:`)) {
        clearTimeout(p.timer);
        this.#pending.delete(id);
        if (!this.#sessions.has(p.key)) this.book.cancel(p.key);
      }
    const gone = [...this.#sessions.values()].filter((s) => s.node === index);
    for (const s of gone) this.#sessions.delete(s.key);
    await Promise.all(gone.map((s) => routeAll(n, s, 'remove').catch((err) => n.log(`stable addresses: removing the routes to ${s.address}: ${(err as Error).message}`))));
  }

  async #onClient(n: StableNode, e: ClientEvent): Promise<void> {
    const m = n.management;
    const key = clientKey(e.env, this.byUsername);
    const id = `${n.index}:${e.cid}`;
    if (e.event === 'CONNECT' || e.event === 'REAUTH') {
      const kid = e.kid ?? 0;
      if (key === undefined) {
        n.log(`stable addresses: client ${e.cid} has neither a common name nor a username; refused`);
        await m.clientDeny(e.cid, kid, 'netns-cluster: no common name or username to give an address to', 'no address for this client');
        return;
      }
      if (e.event === 'REAUTH') {
        // A renegotiation: the session keeps its address (nothing can be pushed now).
        await m.clientAuth(e.cid, kid);
        return;
      }
      const address = this.book.reserve(key);
      if (address === undefined) {
        const capacity = poolCapacity(this.book.pool, this.book.topology);
        n.log(`stable addresses: the pool ${this.book.pool.network}/${this.book.pool.prefix} is exhausted (all ${capacity} addresses are given to other clients); ${show(key)} refused`);
        await m.clientDeny(e.cid, kid, `netns-cluster: address pool exhausted (${capacity} addresses given)`, 'address pool exhausted');
        return;
      }
      const old = this.#pending.get(id);
      if (old) clearTimeout(old.timer);
      const timer = setTimeout(() => {
        if (this.#pending.get(id)?.key !== key) return;
        this.#pending.delete(id);
        if (!this.#sessions.has(key)) this.book.cancel(key);
      }, RESERVATION_MS);
      timer.unref();
      this.#pending.set(id, { key, timer });
      const v6 = this.book.addresses(key)?.v6;
      await m.clientAuth(e.cid, kid, [ifconfigPush(this.book.pool, this.book.topology, address), ...(v6 && this.book.pool6 ? [ifconfigIpv6Push(this.book.pool6, v6)] : [])]);
      return;
    }
    if (e.event === 'ESTABLISHED') {
      const p = this.#pending.get(id);
      const k = p?.key ?? key;
      if (p) {
        clearTimeout(p.timer);
        this.#pending.delete(id);
      }
      if (k === undefined) return;
      const addresses = this.book.addresses(k);
      if (addresses === undefined) return;
      await this.book.keep(k);
      const before = this.#sessions.get(k);
      const session: StableSession = { key: k, address: addresses.v4, node: n.index, cid: e.cid, ...(addresses.v6 ? { address6: addresses.v6 } : {}) };
      this.#sessions.set(k, session);
      await routeAll(n, session, 'add');
      // The same client still has a session elsewhere (a node it left, a duplicate): the newest wins.
      if (before && (before.node !== n.index || before.cid !== e.cid)) {
        await this.#nodes.get(before.node)?.management.clientKill(before.cid).catch(() => {});
      }
      return;
    }
    if (e.event === 'DISCONNECT') {
      const p = this.#pending.get(id);
      if (p) {
        clearTimeout(p.timer);
        this.#pending.delete(id);
      }
      const k = p?.key ?? key;
      if (k === undefined) return;
      const s = this.#sessions.get(k);
      if (s && s.node === n.index && s.cid === e.cid) {
        this.#sessions.delete(k);
        await routeAll(n, s, 'remove');
      } else if (!s) this.book.cancel(k);
    }
  }
}

/** Routes (or unroutes) a session's addresses, IPv4 and IPv6, via its node. */
async function routeAll(n: StableNode, s: StableSession, how: 'add' | 'remove'): Promise<void> {
  if (!n.routes) return;
  for (const a of [s.address, ...(s.address6 ? [s.address6] : [])]) await n.routes[how](a);
}
