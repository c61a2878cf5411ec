/**
 * `openvpn({...})`: an OpenVPN 2.6 server in every node as a cluster service. Each node gets its
 * own config (`local` = VIP, its own client pool 10.8.<k>.0/24, a management socket and a status
 * file in the node's private 0700 directory); the host routes each pool via the node's unique
 * address so VPN clients are reachable from the host.
 * @module
 */
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from '../errors.js';
import { addressValue, cidrOverlap, networkOf, specialRange } from '../ipmath.js';
import { checkServiceDefinition, type ServiceContext, type ServiceDefinition } from '../service.js';
import { checkBoolean, checkObject, got, show, under } from '../shape.js';
import type { ClusterFacts } from '../spec.js';
import {
  checkAccountName,
  checkExtra,
  checkFingerprints,
  checkIdentity,
  checkKeepalive,
  checkPort,
  checkProtocol,
  nodePool,
  renderServerConfig,
  type OpenvpnProtocol,
  type PoolSpec,
} from './config.js';
import { generateIdentity, writeSecretFile, type Identity } from './keys.js';
import { ManagementClient, type ConnectedClient } from './management.js';
import { checkOpenvpn, findOpenvpn } from './version.js';

export interface OpenvpnServiceOptions {
  /** Default 1194. */
  port?: number;
  /** Default `udp`. */
  protocol?: OpenvpnProtocol;
  /** Client pools: node k gets the k-th block after `base`. Default `{ base: '10.8.0.0', prefix: 24 }`. */
  pool?: PoolSpec;
  /** SHA-256 fingerprints of the client certificates the servers accept (peer-fingerprint mode). */
  clientFingerprints: string[];
  /** The servers' certificate and key (the same on every node). Default: a throwaway one, made at start. */
  serverIdentity?: Pick<Identity, 'certPem' | 'keyPem'>;
  /** More directives, or a whole template with `{generated}`; see renderServerConfig. */
  extra?: string;
  /** Default [2, 10]. */
  keepalive?: [number, number];
  /** The openvpn binary (default: looked up in PATH). */
  binary?: string;
  /** Route each node's pool on the host via the node's address. Default true. */
  routePools?: boolean;
  /**
   * Source-NAT the clients' traffic leaving the node to the node's unique address (never the VIP).
   * Default false: the pools are routed instead (`routePools`).
   */
  nat?: boolean;
  /**
   * Drop privileges after start (`user`/`group` directives, e.g. `nobody` and `nogroup`); adds
   * `persist-key` and `persist-tun` so that OpenVPN keeps what it could no longer reopen. Each must
   * exist in /etc/passwd or /etc/group.
   */
  user?: string;
  group?: string;
  /** Restart policy and stop timeout, as for any service. */
  restart?: ServiceDefinition['restart'];
  stopTimeoutMs?: number;
}

/** Every option {@link openvpn} takes (the config schema lists the same). */
export const OPENVPN_FIELDS = [
  'port',
  'protocol',
  'pool',
  'clientFingerprints',
  'serverIdentity',
  'extra',
  'keepalive',
  'binary',
  'routePools',
  'nat',
  'user',
  'group',
  'restart',
  'stopTimeoutMs',
] as const;

/**
 * A service definition may carry a check against the whole cluster under this key; resolveSpec
 * calls it with the cluster's facts (nodes, VIPs, ports, node networks).
 */
export const CLUSTER_CHECK: unique symbol = Symbol('netns-cluster.clusterCheck');

const FIELD = 'service.openvpn';
const DEFAULT_POOL: PoolSpec = { base: '10.8.0.0', prefix: 24 };

/** Whether `name` is in the colon-separated database `file` (/etc/passwd, /etc/group). Unknown when unreadable. */
function inDatabase(file: string, name: string): boolean | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  return text.split('\n').some((l) => l.split(':')[0] === name);
}

/** Every check of the options that needs no cluster: the same values start() would use. */
function checkOptions(o: unknown) {
  const opts = checkObject(FIELD, o, OPENVPN_FIELDS, "{ clientFingerprints: ['AB:CD:…'], … }") as Partial<Record<(typeof OPENVPN_FIELDS)[number], unknown>>;
  const clientFingerprints = checkFingerprints(`${FIELD}.clientFingerprints`, opts.clientFingerprints);
  const port = opts.port === undefined ? 1194 : checkPort(`${FIELD}.port`, opts.port);
  const protocol = opts.protocol === undefined ? 'udp' : checkProtocol(`${FIELD}.protocol`, opts.protocol);
  const pool = opts.pool === undefined ? DEFAULT_POOL : (opts.pool as PoolSpec);
  under(FIELD, () => nodePool(0, pool));
  const keepalive = opts.keepalive === undefined ? undefined : checkKeepalive(`${FIELD}.keepalive`, opts.keepalive);
  const serverIdentity = opts.serverIdentity === undefined ? undefined : checkIdentity(`${FIELD}.serverIdentity`, opts.serverIdentity);
  const extra = opts.extra === undefined ? undefined : checkExtra(`${FIELD}.extra`, opts.extra);
  for (const k of ['routePools', 'nat'] as const) if (opts[k] !== undefined) checkBoolean(`${FIELD}.${k}`, opts[k]);
  const account = (k: 'user' | 'group') => {
    if (opts[k] === undefined) return undefined;
    const name = checkAccountName(`${FIELD}.${k}`, opts[k], k);
    const db = k === 'user' ? '/etc/passwd' : '/etc/group';
    if (inDatabase(db, name) === false)
      throw new InvalidArgumentError(`${FIELD}.${k}`, `${k} '${name}' is not in ${db}; OpenVPN could not switch to it after start. Create it, or use ${k === 'user' ? 'nobody' : 'nogroup'}`);
    return name;
  };
  const user = account('user');
  const group = account('group');
  if (opts.binary !== undefined && (typeof opts.binary !== 'string' || opts.binary.length === 0 || opts.binary.includes('\0')))
    throw new InvalidArgumentError(`${FIELD}.binary`, `must be the path of the openvpn program or a name looked up on PATH, ${got(opts.binary)}`);
  const wanted = (opts.binary as string | undefined) ?? 'openvpn';
  if (!findOpenvpn(wanted))
    throw new InvalidArgumentError(
      `${FIELD}.binary`,
      `OpenVPN is not installed: ${wanted.includes('/') ? `${show(wanted)} is not an executable file` : `${show(wanted)} is not on PATH nor in /usr/sbin, /sbin, /usr/local/sbin`}; ` +
        `install it with 'apt install openvpn' (Debian/Ubuntu, 2.6 or later), or set binary to its path`,
    );
  if (opts.restart !== undefined || opts.stopTimeoutMs !== undefined)
    checkServiceDefinition(FIELD, {
      command: [wanted],
      ...(opts.restart !== undefined ? { restart: opts.restart as ServiceDefinition['restart'] } : {}),
      ...(opts.stopTimeoutMs !== undefined ? { stopTimeoutMs: opts.stopTimeoutMs as number } : {}),
    });
  return { clientFingerprints, port, protocol, pool, keepalive, serverIdentity, extra, user, group };
}

/** The checks that need the cluster: the port among its ports, every node's pool in IPv4 and clear of its networks. */
function checkAgainstCluster(o: { port: number; protocol: OpenvpnProtocol; pool: PoolSpec }, facts: ClusterFacts): void {
  const key = `${o.protocol}/${o.port}`;
  if (facts.ports.length && !facts.ports.some((p) => p.protocol === o.protocol && p.port === o.port))
    throw new InvalidArgumentError(
      `${FIELD}.port`,
      `the server listens on ${key}, which is not among the cluster's ports (${facts.ports.map((p) => `${p.protocol}/${p.port}`).join(' ')}), so no client would reach it; add { protocol: '${o.protocol}', port: ${o.port} } to ports`,
    );
  const prefix = o.pool.prefix ?? 24;
  const others = [
    ...facts.vips.filter((v) => v.family === 4).map((v) => ({ what: `the VIP's subnet ${networkOf(v)}`, net: v })),
    ...facts.nodeNetworks.filter((n) => n.family === 4).map((n) => ({ what: `the node network ${networkOf(n)}`, net: n })),
  ];
  /** What is wrong with the pools starting at `base`, or undefined. */
  const problem = (base: string): string | undefined => {
    const end = addressValue(base) + 2n ** BigInt(32 - prefix) * BigInt(facts.nodes); // one past the last node's block
    if (end > 2n ** 32n) return `${facts.nodes} nodes need ${facts.nodes} /${prefix} pools after ${base}, which run past 255.255.255.255`;
    for (let k = 0; k < facts.nodes; k++) {
      const pool = { address: nodePool(k, { base, prefix }).network, prefix, family: 4 as const };
      const clash = others.find((x) => cidrOverlap(x.net, pool));
      if (clash) return `the client pools (${base} on, one /${prefix} per node) overlap ${clash.what} (node ${k}'s pool ${pool.address}/${prefix})`;
      const special = specialRange(pool);
      if (special) return `node ${k}'s pool ${pool.address}/${prefix} overlaps ${special}`;
    }
    return undefined;
  };
  const wrong = problem(o.pool.base);
  if (wrong) {
    const better = ['10.8.0.0', '172.16.0.0', '100.64.0.0', '10.128.0.0'].find((b) => !problem(b));
    throw new InvalidArgumentError(`${FIELD}.pool`, `${wrong}; choose ${better ? `another pool.base, e.g. ${better}` : 'another pool.base or prefix'}`);
  }
}

/** What `status()` reports per node for an OpenVPN service. */
export interface OpenvpnNodeStatus {
  pool: string;
  clients: Pick<ConnectedClient, 'commonName' | 'realIp' | 'realPort' | 'virtualAddress' | 'bytesReceived' | 'bytesSent' | 'connectedSince'>[];
}

/** The OpenVPN service for {@link ClusterSpec.service}. Fingerprints are checked here; the binary at start. */
export function openvpn(o: OpenvpnServiceOptions): ServiceDefinition & {
  readonly serverFingerprint: () => string | undefined;
  readonly [CLUSTER_CHECK]: (facts: ClusterFacts) => void;
} {
  const checked = checkOptions(o);

  let binary: string | undefined;
  let identity: Promise<Pick<Identity, 'certPem' | 'keyPem'>> | undefined = o.serverIdentity && Promise.resolve(o.serverIdentity);
  let fingerprint: string | undefined;
  const management = new Map<number, ManagementClient>();
  const paths = (ctx: ServiceContext) => ({
    config: join(ctx.dir, 'server.conf'),
    socket: join(ctx.dir, 'management.sock'),
    status: join(ctx.dir, 'status.txt'),
  });
  const pool = (k: number) => {
    const p = nodePool(k, o.pool ?? { base: '10.8.0.0' });
    return `${p.network}/${p.prefix}`;
  };

  return {
    name: 'openvpn',
    // The binary is resolved in prepare(); `{dir}` is the node's private directory.
    get command() {
      return [binary ?? o.binary ?? 'openvpn', '--config', '{dir}/server.conf'];
    },
    restart: o.restart,
    stopTimeoutMs: o.stopTimeoutMs ?? 5000,
    nodeSysctls: { 'net.ipv4.ip_forward': 1 },
    serverFingerprint: () => fingerprint,
    [CLUSTER_CHECK]: (facts: ClusterFacts) => checkAgainstCluster(checked, facts),

    async prepare(ctx) {
      binary ??= (await checkOpenvpn({ binary: o.binary })).binary;
      // One identity for every node (clients pin its fingerprint), made once even when nodes prepare at once.
      identity ??= generateIdentity(`${ctx.cluster}-server`).then((made) => {
        fingerprint = made.fingerprint;
        return made;
      });
      const p = paths(ctx);
      const config = renderServerConfig({
        index: ctx.index,
        vip: ctx.vips.find((v) => !v.includes(':')) ?? ctx.vips[0],
        port: o.port,
        protocol: o.protocol,
        pool: o.pool,
        serverIdentity: await identity,
        clientFingerprints: o.clientFingerprints,
        managementSocket: p.socket,
        statusFile: p.status,
        keepalive: o.keepalive,
        user: o.user,
        group: o.group,
        extra: o.extra,
        netns: ctx.netns,
        address: ctx.address,
        dir: ctx.dir,
      });
      await writeSecretFile(p.config, config); // it holds the key inline: 0600
    },

    async ready(ctx, signal) {
      management.get(ctx.index)?.close().catch(() => {});
      const client = await ManagementClient.connect(paths(ctx).socket, { timeoutMs: 15_000, signal });
      management.set(ctx.index, client);
      // OpenVPN creates the socket with its umask; the directory is 0700 already, the socket 0600 too.
      await chmod(paths(ctx).socket, 0o600);
    },

    exited(ctx) {
      management.get(ctx.index)?.close().catch(() => {});
      management.delete(ctx.index);
    },

    async status(ctx): Promise<Record<string, unknown>> {
      const m = management.get(ctx.index);
      const status: OpenvpnNodeStatus = { pool: pool(ctx.index), clients: [] };
      if (!m) return { openvpn: status };
      const s = await m.status();
      status.clients = s.clients.map((c) => ({
        commonName: c.commonName,
        realIp: c.realIp,
        realPort: c.realPort,
        virtualAddress: c.virtualAddress,
        bytesReceived: c.bytesReceived,
        bytesSent: c.bytesSent,
        connectedSince: c.connectedSince,
      }));
      return { openvpn: status };
    },

    async bucketsLost(ctx, buckets, bucketOf) {
      const m = management.get(ctx.index);
      if (!m) return;
      const { clients } = await m.status();
      for (const c of clients) {
        const b = bucketOf({ address: c.realIp, port: c.realPort ?? undefined, destPort: o.port ?? 1194 });
        // IPv6 clients are listed without a port: kill by common name then.
        if (buckets.has(b)) await m.kill(c.realPort !== null ? `${c.realIp}:${c.realPort}` : c.commonName).catch(() => {});
      }
    },

    nodeSnat(ctx) {
      return o.nat ? [pool(ctx.index)] : [];
    },

    hostRoutes(ctx) {
      return o.routePools === false ? [] : [pool(ctx.index)];
    },
  };
}
