/**
 * The BGP announcement of a cluster's VIP(s): BIRD 2 run in the cluster's host namespace, through
 * the same supervisor and netns-exec helper as the node services ({@link NodeService}: its own
 * cgroup `<cgroup2>/netns-cluster/<cluster>/host-bird`, a parent-death SIGKILL, restarts with
 * backoff), with its config and control socket in the cluster's runtime directory (0700).
 *
 * The controller decides what is announced, through the control socket: the VIP routes' static
 * protocols are enabled while at least one node is up and the cluster is not drained, and disabled
 * otherwise. BIRD starts with them disabled, so a BIRD that restarts (or a controller that has not
 * decided yet) announces nothing. When the controller dies, BIRD dies with it (parent-death signal,
 * and the cgroup when the cluster is destroyed): its sessions close and the routers drop the route
 * at once; a host that goes silent (power, link) is dropped after the hold time, or BFD's
 * interval × multiplier.
 * @module
 */
import { execFile } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError } from '../../util/errors.js';
import { cidrContains } from '../../util/ipmath.js';
import type { Netns } from '../../kernel/netns.js';
import { findOpenvpn as findExecutable } from '../openvpn/version.js';
import { NodeService, type LogLine, type ServiceContext, type ServiceDefinition, type ServiceState } from '../service.js';
import type { ResolvedBgp } from './options.js';
import type { Cidr } from '../../util/validate.js';
import { BIRD_PROTOCOLS, renderBirdConfig } from './config.js';
import { BirdControl, parseProtocols, parseRoutePrefixes, type BirdProtocol } from './control.js';

/** The control socket's and the config's file names in the cluster's runtime directory. */
export const BIRD_SOCKET = 'bird.ctl';
export const BIRD_CONFIG = 'bird.conf';
/** The BIRD service's cgroup under the cluster's. */
export const BIRD_GROUP = 'host-bird';

/** One BGP session, as BIRD reports it. */
export interface BgpPeerStatus {
  /** BIRD's protocol name (`peer0`, …). */
  protocol: string;
  address: string;
  as: number;
  /** BIRD's protocol state (`up` once established, `start` while connecting, `down`). */
  state: string;
  /** The BGP session state: Established, Active, Connect, Idle, OpenSent, OpenConfirm. */
  session?: string;
  /** Since when (BIRD's clock, ISO) the protocol is in this state. */
  since?: string;
  /** The last error BIRD saw on the session (e.g. `Received: Bad peer AS`). */
  lastError?: string;
  /** Prefixes this session exports now (`show route export`). */
  announced: string[];
}

/** What {@link BgpAnnouncer.status} reports. */
export interface BgpStatus {
  /** Whether the controller wants the VIP announced now (≥ 1 node up, not drained, not closing). */
  announcing: boolean;
  /** Why (not): `nodes up`, `no node is up`, `drained`, `closing`. */
  reason: string;
  drained: boolean;
  /** The prefixes announced while announcing (the VIPs as /32 and /128). */
  prefixes: string[];
  /** When the announcement was last switched on or off (ISO). */
  lastChange?: string;
  /** BIRD's process. */
  bird: { state: ServiceState; pid?: number; restarts: number };
  peers: BgpPeerStatus[];
  /** Set when BIRD's control socket could not be read. */
  error?: string;
}

export interface BgpAnnouncerEvents {
  log: [LogLine];
  /** The announcement was switched on or off. */
  change: [{ announcing: boolean; reason: string; at: string }];
}

export interface BgpAnnouncerOptions {
  cluster: string;
  /** The host namespace's name; undefined: the controller's own. */
  hostNetns: string | undefined;
  vips: Cidr[];
  bgp: ResolvedBgp;
  /** The cluster's runtime directory (0700). */
  dir: string;
  /** The BIRD binary, found by {@link preflightBgp}. */
  binary: string;
}

/** The prefixes a cluster announces: each VIP as /32 or /128. */
export function announcedPrefixes(vips: Cidr[]): string[] {
  return vips.map((v) => `${v.address}/${v.family === 4 ? 32 : 128}`);
}

/** Runs `<binary> --version`; BIRD prints `BIRD version 2.0.12` (on stderr). */
function birdVersion(binary: string): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(binary, ['--version'], { timeout: 5000, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) => {
      const m = /BIRD version (\d+)\.(\d+)(?:\.(\d+))?/.exec(`${stdout}\n${stderr}`);
      if (m) return resolve(`${m[1]}.${m[2]}${m[3] !== undefined ? `.${m[3]}` : ''}`);
      reject(new Error(`'${binary} --version' did not print a BIRD version${err ? ` (${err.message.split('\n')[0]})` : ''}`));
    }),
  );
}

const INSTALL_HINT = "install BIRD 2 (Debian/Ubuntu: 'apt install bird2') or give its path in announce.bgp.binary";

/**
 * What can be checked before the cluster is built: BIRD 2 is there and runs, and every peer is
 * reachable from the host namespace (a route covers its address). Returns the binary's path.
 * Throws an InvalidArgumentError naming the field.
 */
export async function preflightBgp(bgp: ResolvedBgp, host: Netns, where: string): Promise<{ binary: string; version: string }> {
  const field = bgp.binary === 'bird' ? 'announce.bgp' : 'announce.bgp.binary';
  const binary = findExecutable(bgp.binary);
  if (!binary) throw new InvalidArgumentError(field, `BIRD ('${bgp.binary.slice(0, 60)}') was not found${bgp.binary.includes('/') ? '' : ' on PATH or in /usr/sbin, /sbin, /usr/local/sbin'}; ${INSTALL_HINT}`);
  let version: string;
  try {
    version = await birdVersion(binary);
  } catch (e) {
    throw new InvalidArgumentError(field, `${(e as Error).message}; is it BIRD? ${INSTALL_HINT}`);
  }
  if (Number(version.split('.')[0]) !== 2) throw new InvalidArgumentError(field, `${binary} is BIRD ${version}; netns-cluster renders a BIRD 2 configuration: ${INSTALL_HINT}`);
  const routes = await host.listRoutes();
  for (const [i, p] of bgp.peers.entries()) {
    const reachable = routes.some((r) => {
      if (r.family !== p.family || (r.type !== undefined && r.type !== 'unicast')) return false;
      if (r.destination === 'default') return true;
      const [address, prefix] = r.destination.split('/');
      return cidrContains({ address, prefix: Number(prefix ?? (p.family === 4 ? 32 : 128)), family: p.family }, p.address);
    });
    if (!reachable)
      throw new InvalidArgumentError(
        `announce.bgp.peers[${i}].address`,
        `${p.address} is unreachable from ${where}: no route covers it; give the router's address on a network the host is on (or add a route to it)`,
      );
  }
  return { binary, version };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** BIRD run for a cluster, and what it announces. */
export class BgpAnnouncer extends EventEmitter<BgpAnnouncerEvents> {
  readonly socketPath: string;
  readonly configPath: string;
  readonly prefixes: string[];
  readonly #o: BgpAnnouncerOptions;
  #service: NodeService | undefined;
  #control: BirdControl | undefined;
  #live = 0;
  #drained = false;
  #closing = false;
  /** What BIRD was last told (undefined: nothing yet, which BIRD's config means "withdrawn"). */
  #applied: boolean | undefined;
  #lastChange: string | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  /** The last lines BIRD printed, for the error of a start that failed. */
  #recent: string[] = [];

  constructor(o: BgpAnnouncerOptions) {
    super();
    this.#o = o;
    this.socketPath = join(o.dir, BIRD_SOCKET);
    this.configPath = join(o.dir, BIRD_CONFIG);
    this.prefixes = announcedPrefixes(o.vips);
  }

  /** The BIRD configuration this announcer runs (see {@link renderBirdConfig}). */
  config(): string {
    return renderBirdConfig({ name: this.#o.cluster, vips: this.#o.vips, bgp: this.#o.bgp });
  }

  get announcing(): boolean {
    return this.#live > 0 && !this.#drained && !this.#closing;
  }

  #reason(): string {
    if (this.#closing) return 'closing';
    if (this.#drained) return 'drained';
    return this.#live > 0 ? `${this.#live} node${this.#live === 1 ? '' : 's'} up` : 'no node is up';
  }

  /** Writes the config and starts BIRD in the host namespace; resolves once its control socket answers. Nothing is announced yet. */
  async start(): Promise<void> {
    const o = this.#o;
    await writeFile(this.configPath, this.config(), { mode: 0o600 });
    const socketPath = this.socketPath;
    const def: ServiceDefinition = {
      name: 'bird',
      command: [o.binary, '-f', '-c', this.configPath, '-s', socketPath],
      restart: { maxRestarts: 10, initialDelayMs: 200, maxDelayMs: 5000 },
      stopTimeoutMs: 3000,
      async ready(_ctx, signal) {
        // Up when its control socket answers.
        for (let i = 0; !signal.aborted; i++) {
          try {
            (await BirdControl.connect(socketPath, 1000)).close();
            return;
          } catch {
            if (i > 200) throw new Error(`BIRD's control socket ${socketPath} did not answer`);
            await sleep(25);
          }
        }
      },
    };
    const ctx: ServiceContext = {
      cluster: o.cluster,
      index: -1,
      netns: o.hostNetns ?? `/proc/${process.pid}/ns/net`,
      address: o.bgp.routerId,
      addresses: [],
      vips: o.vips.map((v) => v.address),
      dir: o.dir,
    };
    const svc = new NodeService(def, ctx, { group: BIRD_GROUP });
    this.#service = svc;
    svc.on('log', (l) => {
      this.#recent.push(l.line);
      if (this.#recent.length > 10) this.#recent.shift();
      this.emit('log', { ...l, line: `bird: ${l.line}` });
    });
    // A BIRD that exits takes its announcement with it; the one that comes back starts with the
    // VIP withdrawn: tell it again.
    svc.on('exit', () => {
      this.#control?.close();
      this.#control = undefined;
      this.#applied = undefined;
    });
    svc.on('ready', () => {
      this.#control?.close();
      this.#control = undefined;
      this.#applied = undefined;
      if (!this.#closing) this.#sync().catch((e) => this.#log(`announcing after BIRD's restart failed: ${(e as Error).message}`));
    });
    try {
      await svc.start();
    } catch (e) {
      await svc.dispose().catch(() => {});
      const said = this.#recent.filter((l) => !l.startsWith('netns-cluster:')).slice(-3).join(' | ');
      throw new Error(`BIRD did not start: ${(e as Error).message.replace(/^node -1: /, '')}${said ? `; it said: ${said}` : ''}`);
    }
  }

  #log(line: string): void {
    this.emit('log', { index: -1, stream: 'stderr', line: `netns-cluster: ${line}` });
  }

  async #connection(): Promise<BirdControl> {
    if (this.#control && !this.#control.closed) return this.#control;
    this.#control = await BirdControl.connect(this.socketPath);
    return this.#control;
  }

  /** Sets how many nodes are up: the VIP is announced while it is ≥ 1 (and not drained). */
  setLive(n: number): Promise<void> {
    this.#live = n;
    return this.#sync();
  }

  /** Withdraws the VIP for good (until close): `netns-cluster drain`. */
  drain(): Promise<void> {
    this.#drained = true;
    return this.#sync();
  }

  /** Tells BIRD what is wanted now (serialised; a no-op when it knows already). */
  #sync(): Promise<void> {
    const run = this.#queue.then(async () => {
      const want = this.announcing;
      const svc = this.#service;
      if (!svc || svc.state !== 'running') return; // its restart applies the wish
      if (this.#applied === want) return;
      const c = await this.#connection();
      const families = [...new Set(this.#o.vips.map((v) => v.family))];
      for (const f of families) await c.command(`${want ? 'enable' : 'disable'} ${BIRD_PROTOCOLS.vip(f)}`);
      const changed = this.#applied !== undefined || want;
      this.#applied = want;
      if (changed) {
        this.#lastChange = new Date().toISOString();
        this.emit('change', { announcing: want, reason: this.#reason(), at: this.#lastChange });
      }
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  /** Session states and what is exported, from BIRD's control socket. */
  async status(): Promise<BgpStatus> {
    const svc = this.#service;
    const base: BgpStatus = {
      announcing: this.#applied === true,
      reason: this.#reason(),
      drained: this.#drained,
      prefixes: this.prefixes,
      ...(this.#lastChange ? { lastChange: this.#lastChange } : {}),
      bird: { state: svc?.state ?? 'stopped', ...(svc?.pid !== undefined ? { pid: svc.pid } : {}), restarts: svc?.restarts ?? 0 },
      peers: this.#o.bgp.peers.map((p, i) => ({ protocol: BIRD_PROTOCOLS.peer(i), address: p.address, as: p.as, state: 'unknown', announced: [] })),
    };
    if (svc?.state !== 'running') return base;
    try {
      const c = await this.#connection();
      const protocols = parseProtocols(await c.command('show protocols'));
      for (const [i, p] of this.#o.bgp.peers.entries()) {
        const row: BirdProtocol | undefined = protocols.find((x) => x.name === BIRD_PROTOCOLS.peer(i));
        const peer = base.peers[i];
        if (row) Object.assign(peer, { state: row.state, since: row.since, ...(row.bgpState ? { session: row.bgpState } : {}), ...(row.lastError ? { lastError: row.lastError } : {}) });
        if (row?.state === 'up') peer.announced = parseRoutePrefixes(await c.command(`show route export ${peer.protocol} table master${p.family}`));
      }
    } catch (e) {
      base.error = (e as Error).message;
    }
    return base;
  }

  /**
   * Withdraws the VIP, then stops BIRD (its sessions close: the routers drop anything left at
   * once). Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closing && !this.#service) return;
    this.#closing = true;
    await this.#sync().catch((e) => this.#log(`withdrawing before the stop failed: ${(e as Error).message}`));
    this.#control?.close();
    this.#control = undefined;
    const svc = this.#service;
    this.#service = undefined;
    await svc?.dispose();
  }
}
