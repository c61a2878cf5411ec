/**
 * Every default and limit of the cluster spec, in one place: the spec's schema (its `default`s and
 * bounds, hence schema/cluster.schema.json), its validation and the code that runs the cluster all
 * read them from here.
 * @module
 */

/** The largest timer delay Node honours (2^31-1 ms, about 24.8 days): longer ones fire after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Nodes per cluster: 1 to this. */
export const MAX_NODES = 256;
/** Hash buckets: from the number of nodes to this. */
export const MAX_BUCKETS = 4096;
/** Buckets when the spec gives none: this, or the number of nodes if larger. */
export const DEFAULT_BUCKETS = 64;
/**
 * The most `ports` a spec may list. Every port is one rule per VIP in the host, and in flood mode
 * two more per VIP in every node, all sent to the kernel in one nftables batch: measured on
 * Linux 6.x, a flood-mode dual-stack cluster hashing on source and destination ports fails with
 * EMSGSIZE from about 700 ports. 256 leaves a wide margin.
 */
export const MAX_PORTS = 256;
export const DEFAULT_MODE = 'steer';
export const DEFAULT_HASH = 'sourceip';
export const DEFAULT_FAILBACK = 'auto';
export const DEFAULT_BACKEND = 'nftables';
export const DEFAULT_IPTABLES_VARIANT = 'auto';
/** CLUSTERIP's node numbers (CLUSTERIP_MAX_NODES): the iptables backend's buckets with that target. */
export const CLUSTERIP_MAX_NODES = 16;
/** xt_cluster's node bits (XT_CLUSTER_NODES_MAX): the iptables backend's buckets with that match. */
export const XT_CLUSTER_MAX_NODES = 32;

/** The node network used when the spec gives none (IPv4; IPv6 adds {@link DEFAULT_NODE_NETWORK6}). */
export const DEFAULT_NODE_NETWORK = '198.18.0.0/24';
export const DEFAULT_NODE_NETWORK6 = 'fd00:198:18::/64';

/** A service's restart policy when it gives none (or leaves a field out). */
export const DEFAULT_RESTART = { maxRestarts: 10, initialDelayMs: 100, maxDelayMs: 10_000, resetAfterMs: 30_000 } as const;
/** SIGTERM, then SIGKILL after this long. */
export const DEFAULT_STOP_TIMEOUT_MS = 5000;

/** The OpenVPN service's defaults. */
export const OPENVPN_DEFAULTS = {
  port: 1194,
  protocol: 'udp',
  /** Node k's client pool is the k-th /prefix block after base. */
  pool: { base: '10.8.0.0', prefix: 24 },
  keepalive: [2, 10] as [number, number],
  routePools: true,
  nat: false,
} as const;

/** The host's br_netfilter switches: a cluster turns them off in a dedicated host namespace. */
export const BRIDGE_NF_SYSCTLS = ['net.bridge.bridge-nf-call-iptables', 'net.bridge.bridge-nf-call-ip6tables', 'net.bridge.bridge-nf-call-arptables'];
/** The host's forwarding switches a routed uplink turns on (IPv4, IPv6). */
export const FORWARDING_SYSCTLS = { 4: 'net.ipv4.ip_forward', 6: 'net.ipv6.conf.all.forwarding' } as const;
/** The only host sysctls a cluster changes, and so the only ones it may ever put back. */
export const RESTORABLE_SYSCTLS: readonly string[] = [...Object.values(FORWARDING_SYSCTLS), ...BRIDGE_NF_SYSCTLS];

/** BGP announcement (`announce.bgp`) defaults: hold and keepalive times (s), BFD, the BIRD binary. */
export const BGP_DEFAULTS = {
  holdTime: 9,
  keepalive: 3,
  bfd: { intervalMs: 300, multiplier: 3 },
  binary: 'bird',
} as const;
/** At most this many BGP peers, communities and AS-path prepends. */
export const MAX_BGP_PEERS = 16;
export const MAX_BGP_COMMUNITIES = 32;
export const MAX_BGP_PREPEND = 16;
