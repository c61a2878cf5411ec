/**
 * A cluster's metrics in the Prometheus text exposition format (version 0.0.4), for the opt-in
 * HTTP endpoint of `netns-cluster up` (`metrics: { listen: '127.0.0.1:9464' }`) and for
 * `netns-cluster status <name> --format prometheus` (e.g. node_exporter's textfile collector).
 *
 * Names follow Prometheus conventions: a `netns_cluster_` prefix, `_total` on counters, base
 * units (`_seconds`, `_bytes`). Every series has a `cluster` label; per-node series add `node`
 * (the index) and `netns`.
 * @module
 */
import { isIP } from 'node:net';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { BgpStatus } from '../services/bgp/bird.js';
import type { NodeStatus } from './cluster.js';
import { InvalidArgumentError } from '../util/errors.js';
import { checkObject, got, show } from '../util/shape.js';
import type { ServiceState } from '../services/service.js';

/** The content type of the text format. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Every state a node's service can be in (`none`: the cluster has no service). */
export const SERVICE_STATES: readonly (ServiceState | 'none')[] = ['none', 'stopped', 'starting', 'running', 'exited', 'backing-off', 'failed'];

/** What the controller counts itself, per node, besides {@link NodeStatus}. */
export interface NodeFailovers {
  /** Times the node left the distribution because its service exited or failed. */
  failovers: number;
  /** Time from seeing the last exit to the new bucket table being in the kernel, in ms. */
  lastFailoverLatencyMs?: number;
}

/** What the metrics are made from: a live cluster's status, or the status file `up` publishes. */
export interface MetricsSnapshot {
  cluster: string;
  /** Whether a controller runs the cluster. */
  running: boolean;
  /** When the status was taken (ISO time). */
  updatedAt?: string;
  /** How long building the cluster took, in ms. */
  buildMs?: number;
  /** How long the last reload (cluster.update) took, in ms, and how many there were. */
  reloadMs?: number;
  reloads?: number;
  buckets?: number;
  nodes: NodeStatus[];
  /** Indexed by node. */
  failovers?: NodeFailovers[];
  /** The BGP announcement, when the spec has `announce`. */
  bgp?: BgpStatus;
}

type Labels = Record<string, string | number>;
interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  samples: [Labels, number][];
}

/** A label value with `\`, `"` and newlines escaped, as the format requires. */
function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function renderFamilies(families: Family[]): string {
  const out: string[] = [];
  for (const f of families) {
    if (!f.samples.length) continue;
    out.push(`# HELP ${f.name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${f.name} ${f.type}`);
    for (const [labels, value] of f.samples) {
      const l = Object.entries(labels)
        .map(([k, v]) => `${k}="${escapeLabel(String(v))}"`)
        .join(',');
      out.push(`${f.name}${l ? `{${l}}` : ''} ${formatValue(value)}`);
    }
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

/** VPN clients of a node, when its service reports them (`openvpn: { clients }`). */
function vpnClients(n: NodeStatus): number | undefined {
  const c = (n.openvpn as { clients?: unknown[] } | undefined)?.clients;
  return Array.isArray(c) ? c.length : undefined;
}

/** The snapshot in the text exposition format. */
export function renderMetrics(s: MetricsSnapshot): string {
  const cluster = { cluster: s.cluster };
  const node = (n: NodeStatus): Labels => ({ cluster: s.cluster, node: n.index, netns: n.netns });
  const perNode = (name: string, help: string, type: Family['type'], value: (n: NodeStatus) => number | undefined): Family => ({
    name,
    help,
    type,
    samples: s.nodes.flatMap((n) => {
      const v = value(n);
      return v === undefined ? [] : [[node(n), v] as [Labels, number]];
    }),
  });
  const fo = (n: NodeStatus) => s.failovers?.[n.index];
  const families: Family[] = [
    { name: 'netns_cluster_up', help: 'Whether a controller runs the cluster (1) or it is gone (0).', type: 'gauge', samples: [[cluster, s.running ? 1 : 0]] },
    { name: 'netns_cluster_nodes', help: 'Nodes of the cluster.', type: 'gauge', samples: [[cluster, s.nodes.length]] },
    {
      name: 'netns_cluster_nodes_up',
      help: 'Nodes taking part in the distribution.',
      type: 'gauge',
      samples: [[cluster, s.nodes.filter((n) => n.dataPlane === 'up').length]],
    },
    { name: 'netns_cluster_buckets', help: 'Hash buckets of the cluster.', type: 'gauge', samples: s.buckets !== undefined ? [[cluster, s.buckets]] : [] },
    {
      name: 'netns_cluster_build_duration_seconds',
      help: 'Time it took to build the cluster (namespaces, links, addresses, rules).',
      type: 'gauge',
      samples: s.buildMs !== undefined ? [[cluster, s.buildMs / 1000]] : [],
    },
    {
      name: 'netns_cluster_last_reload_duration_seconds',
      help: 'Time the last live reload (config applied with cluster.update) took.',
      type: 'gauge',
      samples: s.reloadMs !== undefined ? [[cluster, s.reloadMs / 1000]] : [],
    },
    {
      name: 'netns_cluster_reloads_total',
      help: 'Live reloads applied since the controller started.',
      type: 'counter',
      samples: s.reloads !== undefined ? [[cluster, s.reloads]] : [],
    },
    {
      name: 'netns_cluster_status_timestamp_seconds',
      help: 'When this status was taken (Unix time).',
      type: 'gauge',
      samples: s.updatedAt && Number.isFinite(Date.parse(s.updatedAt)) ? [[cluster, Date.parse(s.updatedAt) / 1000]] : [],
    },
    perNode('netns_cluster_node_accepted_packets_total', 'Packets to the VIP the node accepted (steer mode: steered to the node by the host, counted in its chain of the host table).', 'counter', (n) => n.counters?.packets),
    perNode('netns_cluster_node_accepted_bytes_total', 'Bytes to the VIP the node accepted (steer mode: steered to the node by the host, counted in its chain of the host table).', 'counter', (n) => n.counters?.bytes),
    perNode('netns_cluster_node_dropped_packets_total', "Packets to the VIP the node saw and dropped (flood mode: other nodes' buckets).", 'counter', (n) => n.counters?.droppedPackets),
    perNode('netns_cluster_node_dropped_bytes_total', "Bytes to the VIP the node saw and dropped (flood mode: other nodes' buckets).", 'counter', (n) => n.counters?.droppedBytes),
    perNode('netns_cluster_node_buckets', 'Hash buckets the node owns.', 'gauge', (n) => n.buckets.length),
    perNode('netns_cluster_node_up', 'Whether the node takes part in the distribution (1) or not (0).', 'gauge', (n) => (n.dataPlane === 'up' ? 1 : 0)),
    {
      name: 'netns_cluster_node_service_state',
      help: "The node's service state: 1 for the state it is in, 0 for the others.",
      type: 'gauge',
      samples: s.nodes.flatMap((n) => SERVICE_STATES.map((st) => [{ ...node(n), state: st }, n.state === st ? 1 : 0] as [Labels, number])),
    },
    perNode('netns_cluster_node_service_restarts_total', "Restarts of the node's service.", 'counter', (n) => n.restarts),
    perNode('netns_cluster_node_vpn_clients', 'VPN clients connected to the node (OpenVPN services).', 'gauge', vpnClients),
    perNode('netns_cluster_node_failovers_total', 'Times the node left the distribution because its service exited or failed.', 'counter', (n) => (s.failovers ? (fo(n)?.failovers ?? 0) : undefined)),
    perNode(
      'netns_cluster_node_last_failover_latency_seconds',
      "Time from the node's last service exit to its buckets being moved in the kernel.",
      'gauge',
      (n) => (fo(n)?.lastFailoverLatencyMs !== undefined ? fo(n)!.lastFailoverLatencyMs! / 1000 : undefined),
    ),
    ...bgpFamilies(s),
  ];
  return renderFamilies(families);
}

/** The BGP announcement's series: whether the VIP is announced, each session's state and exports, the last change. */
function bgpFamilies(s: MetricsSnapshot): Family[] {
  const b = s.bgp;
  if (!b) return [];
  const cluster = { cluster: s.cluster };
  const peer = (p: BgpStatus['peers'][number]): Labels => ({ cluster: s.cluster, peer: p.protocol, address: p.address, as: p.as });
  return [
    { name: 'netns_cluster_bgp_announcing', help: 'Whether the VIP is announced (1: at least one node is up and the cluster is not drained) or withdrawn (0).', type: 'gauge', samples: [[cluster, b.announcing ? 1 : 0]] },
    { name: 'netns_cluster_bgp_drained', help: 'Whether the cluster was drained (netns-cluster drain).', type: 'gauge', samples: [[cluster, b.drained ? 1 : 0]] },
    {
      name: 'netns_cluster_bgp_last_change_timestamp_seconds',
      help: 'When the announcement was last switched on or off (Unix time).',
      type: 'gauge',
      samples: b.lastChange ? [[cluster, Date.parse(b.lastChange) / 1000]] : [],
    },
    { name: 'netns_cluster_bgp_session_established', help: 'Whether the BGP session with the peer is established (1) or not (0).', type: 'gauge', samples: b.peers.map((p) => [peer(p), p.session === 'Established' ? 1 : 0]) },
    { name: 'netns_cluster_bgp_announced_prefixes', help: 'Prefixes exported to the peer now (the VIPs as /32 and /128).', type: 'gauge', samples: b.peers.map((p) => [peer(p), p.announced.length]) },
    { name: 'netns_cluster_bgp_restarts_total', help: "Restarts of the cluster's BIRD.", type: 'counter', samples: [[cluster, b.bird.restarts]] },
  ];
}

/** Where the endpoint listens, as the spec's `metrics.listen` resolves. */
export interface MetricsListen {
  host: string;
  port: number;
}

/**
 * Serves `GET /metrics` (and HEAD) with the text format; `snapshot` is called for every scrape.
 * Resolves once listening; close the server to stop.
 */
export async function serveMetrics(listen: MetricsListen, snapshot: () => Promise<MetricsSnapshot>, onError?: (e: Error) => void): Promise<Server> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('netns-cluster: metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('GET or HEAD only\n');
      return;
    }
    snapshot().then(
      (s) => {
        const body = renderMetrics(s);
        res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'content-length': Buffer.byteLength(body) });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (e: Error) => {
        onError?.(e);
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`netns-cluster: ${e.message}\n`);
      },
    );
  });
  server.keepAliveTimeout = 5000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Scrapers must not keep `up` from exiting once the cluster is gone.
  server.unref();
  return server;
}

/**
 * The spec's `metrics` (`{ listen: '127.0.0.1:9464' }` or `'[::1]:9464'`): an IP literal and a
 * port. Throws {@link InvalidArgumentError} naming `metrics.listen`.
 */
export function checkMetrics(field: string, v: unknown): { listen: MetricsListen } {
  const m = checkObject(field, v, ['listen'], "{ listen: '127.0.0.1:9464' }: the address and port of the Prometheus endpoint");
  const f = `${field}.listen`;
  const example = "e.g. '127.0.0.1:9464' or '[::1]:9464'";
  if (typeof m.listen !== 'string') throw new InvalidArgumentError(f, `give an address and a port as a string, ${example}; ${got(m.listen)}`);
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(m.listen);
  const host = match ? (match[1] ?? match[2]) : undefined;
  if (!match || host === undefined) throw new InvalidArgumentError(f, `${show(m.listen)} is not address:port; ${example}`);
  const family = isIP(host);
  if (family === 0 || (family === 6 && match[1] === undefined) || (family === 4 && match[1] !== undefined))
    throw new InvalidArgumentError(f, `${show(host)} is not an IP address (write IPv6 in brackets); ${example}`);
  const port = Number(match[3]);
  if (!(port >= 1 && port <= 65535)) throw new InvalidArgumentError(f, `port must be 1 to 65535, got ${match[3]}`);
  return { listen: { host, port } };
}
