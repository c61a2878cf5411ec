/**
 * `openvpn({...})`: an OpenVPN 2.6 server in every node as a cluster service. Each node gets its
 * own config (`local` = VIP, its own client pool 10.8.<k>.0/24, a management socket and a status
 * file in the node's private 0700 directory); the host routes each pool via the node's unique
 * address so VPN clients are reachable from the host.
 * @module
 */
import { createHash } from 'node:crypto';
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_STOP_TIMEOUT_MS } from '../../util/defaults.js';
import { CLUSTER_CHECK, registerServiceKind, type ServiceContext, type ServiceDefinition } from '../service.js';
import type { ClusterFacts } from '../service.js';
import { nodePool, renderServerConfig } from './config.js';
import { generateIdentity, writeSecretFile, type Identity } from './keys.js';
import { ManagementClient, type ConnectedClient } from './management.js';
import { checkAgainstCluster, checkOpenvpnOptions, OpenvpnOptionsSchema, OPENVPN_FIELDS, type OpenvpnServiceOptions } from './options.js';
import { checkOpenvpn } from './version.js';
import { nodePool6 } from './pool6.js';
import { renderNodeConfig } from './server-conf.js';

export { CLUSTER_CHECK, OPENVPN_FIELDS, type OpenvpnServiceOptions };

/** What `status()` reports per node for an OpenVPN service. */
export interface OpenvpnNodeStatus {
  pool: string;
  /** The node's IPv6 client pool, when the service has one. */
  pool6?: string;
  clients: Pick<ConnectedClient, 'commonName' | 'realIp' | 'realPort' | 'virtualAddress' | 'bytesReceived' | 'bytesSent' | 'connectedSince'>[];
}

/**
 * The OpenVPN service for a cluster spec's `service`: peer-fingerprint mode (the default), a PKI
 * given in code (`pki`), or the operator's own server config (`config`). Everything is checked
 * here, files included; the binary's version at start.
 */
export function openvpn(o: OpenvpnServiceOptions): ServiceDefinition & {
  readonly serverFingerprint: () => string | undefined;
  readonly [CLUSTER_CHECK]: (facts: ClusterFacts) => void;
} {
  const checked = checkOpenvpnOptions(o);

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
    const p = nodePool(k, checked.pool);
    return `${p.network}/${p.prefix}`;
  };
  const pool6 = (k: number) => {
    if (!checked.pool6) return undefined;
    const p = nodePool6(k, checked.pool6);
    return `${p.network}/${p.prefix}`;
  };

  return {
    name: 'openvpn',
    // The binary is resolved in prepare(); `{dir}` is the node's private directory.
    get command() {
      return [binary ?? o.binary ?? 'openvpn', '--config', '{dir}/server.conf'];
    },
    restart: o.restart,
    stopTimeoutMs: o.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS,
    nodeSysctls: { 'net.ipv4.ip_forward': 1, ...(checked.pool6 ? { 'net.ipv6.conf.all.forwarding': 1 } : {}) },
    serverFingerprint: () => fingerprint,
    // The operator's config as read (includes and inline blocks too): reloading an edited one restarts the nodes.
    ...(checked.config
      ? { revision: createHash('sha256').update(JSON.stringify(checked.config.directives.map((d) => [d.file, d.name, d.args, d.inline ?? null]))).digest('hex') }
      : {}),
    [CLUSTER_CHECK]: (facts: ClusterFacts) => checkAgainstCluster(checked, facts),

    async prepare(ctx) {
      binary ??= (await checkOpenvpn({ binary: o.binary })).binary;
      const p = paths(ctx);
      if (checked.config) {
        // The operator's own config, with what differs per node set here.
        const v6 = checked.config.family === 6 ? ctx.vips.find((v) => v.includes(':')) : undefined;
        const block = nodePool(ctx.index, checked.pool);
        const text = renderNodeConfig(checked.config, {
          index: ctx.index,
          vip: v6 ?? ctx.vips.find((v) => !v.includes(':')) ?? ctx.vips[0],
          port: checked.port,
          protocol: checked.protocol,
          pool: block,
          pool6: pool6(ctx.index),
          managementSocket: p.socket,
          statusFile: p.status,
          dir: ctx.dir,
        });
        await writeSecretFile(p.config, text); // it may hold inline keys: 0600
        return;
      }
      // One identity for every node (clients pin its fingerprint), made once even when nodes prepare at once.
      if (checked.mode === 'fingerprint')
        identity ??= generateIdentity(`${ctx.cluster}-server`).then((made) => {
          fingerprint = made.fingerprint;
          return made;
        });
      const config = renderServerConfig({
        index: ctx.index,
        vip: ctx.vips.find((v) => !v.includes(':')) ?? ctx.vips[0],
        port: o.port,
        protocol: o.protocol,
        pool: checked.pool,
        ...(checked.pki ? { pki: checked.pki } : { serverIdentity: await identity, clientFingerprints: o.clientFingerprints }),
        ...(checked.pool6 ? { pool6: checked.pool6 } : {}),
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
      const status: OpenvpnNodeStatus = { pool: pool(ctx.index), ...(checked.pool6 ? { pool6: pool6(ctx.index) } : {}), clients: [] };
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
        const b = bucketOf({ address: c.realIp, port: c.realPort ?? undefined, destPort: checked.port });
        // IPv6 clients are listed without a port: kill by common name then.
        if (buckets.has(b)) await m.kill(c.realPort !== null ? `${c.realIp}:${c.realPort}` : c.commonName).catch(() => {});
      }
    },

    nodeSnat(ctx) {
      return o.nat ? [pool(ctx.index)] : [];
    },

    hostRoutes(ctx) {
      if (o.routePools === false) return [];
      // The IPv6 pool is routed via the node's IPv6 address, when the node has one.
      const v6 = pool6(ctx.index);
      return [pool(ctx.index), ...(v6 && ctx.addresses.some((a) => a.includes(':')) ? [v6] : [])];
    },
  };
}

// `{ openvpn: { … } }` in a spec becomes openvpn({ … }): the spec resolves it through this hook
// and never imports this module.
registerServiceKind('openvpn', { schema: OpenvpnOptionsSchema, make: (options: OpenvpnServiceOptions) => openvpn(options) });
