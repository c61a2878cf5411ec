/**
 * How the cluster talks to the kernel's packet filter. Two backends implement it: nftables
 * (libnftnl; both modes, IPv4 and IPv6) and iptables (legacy iptables through libiptc in the
 * nodes, flood mode, IPv4; the host's bridge still floods with an nftables table).
 * @module
 */
import type { NativeOp, NftCommand } from '../kernel/engine.js';
import type { Netns } from '../kernel/netns.js';
import type { Layout } from './ruleset.js';
import type { FlowKey, HashMode } from './jhash.js';
import type { Cidr } from '../util/validate.js';
import { nftBackend } from './backend-nft.js';
import { iptablesBackend, resolveVariant } from './iptables-backend.js';
import type { IptablesKind, IptablesRuleset } from './iptables.js';

/**
 * The part of a cluster's spec that its rules depend on. The rules layer sits below the cluster
 * layer, so it names what it reads here; a resolved spec (lib/cluster/spec.ts) is one.
 */
export interface DataPlaneSpec {
  name: string;
  nodes: number;
  vips: readonly Cidr[];
  ports: readonly { protocol: 'udp' | 'tcp'; port: number }[];
  mode: 'flood' | 'steer';
  hash: HashMode;
  buckets: number;
  seed: number;
  /** The packet filter (default nftables). */
  backend?: 'nftables' | 'iptables';
  /** backend 'iptables': the variant asked for. */
  iptables?: { variant: 'auto' | IptablesKind };
}

/** What a backend works on. `nodes[k]` is node k's namespace. */
export interface BackendContext {
  spec: DataPlaneSpec;
  layout: Layout;
  host: Netns;
  nodes: readonly Netns[];
}

/** Per-node traffic to the VIP: steer mode, the host table's counter per node; flood mode, the nodes' own. */
export interface NodeCounters {
  index: number;
  /** Packets/bytes the node accepted (steer mode: the host steered to it; flood mode: the ones it owns). */
  packets: number;
  bytes: number;
  /** Flood mode: packets the node saw but dropped (another node's buckets). */
  droppedPackets: number;
  droppedBytes: number;
}

/** One nft table a backend installs: in the host namespace (`node` undefined) or in node `node`. */
export interface BackendTable {
  node?: number;
  family: 'bridge' | 'netdev' | 'inet';
  name: string;
  commands: NftCommand[];
}

/** One node's legacy iptables rules (see lib/rules/iptables), sent as one `iptc.commit`. */
export type BackendRuleset = IptablesRuleset;

export interface DataPlaneBackend {
  /** 'nftables', or 'iptables (xt_cluster)' / 'iptables (clusterip)'. */
  readonly name: string;
  /**
   * The nft tables with bucket b owned by `owners[b]` (-1: nobody), as data: one table per
   * namespace (`node` undefined: the host), each installed as one transaction. The plan holds
   * them; the build sends them in the same job as the links and addresses.
   */
  tables(spec: DataPlaneSpec, layout: Layout, owners: readonly number[], nodes?: number): BackendTable[];
  /** The legacy iptables table the nodes' rules are in (backend 'iptables' only). */
  readonly iptablesTable?: 'filter' | 'mangle';
  /** The nodes' iptables rulesets for that bucket table (none with nftables). */
  rulesets(spec: DataPlaneSpec, layout: Layout, owners: readonly number[], nodes?: number): BackendRuleset[];
  /** The bucket the kernel's rules put a flow in. */
  bucketOf(spec: DataPlaneSpec, flow: FlowKey): number;
  /**
   * Changes ownership from `from` to `to`. Steer mode must do it atomically; flood mode gives a
   * bucket to its new owner before taking it from the old one (duplicates, never loss).
   */
  move(ctx: BackendContext, from: readonly number[], to: readonly number[]): Promise<void>;
  counters(ctx: BackendContext): Promise<NodeCounters[]>;
  /**
   * The node count changed from `before` to `ctx.nodes.length` (the context's layout already the
   * new one): host rules kept per node follow. Called before buckets move to added nodes, and after
   * they moved away from removed ones.
   */
  nodesChanged?(ctx: BackendContext, before: number): Promise<void>;
  /** Requests that remove the host namespace's rules (node rules go with the node namespaces). */
  removeOps(ctx: BackendContext): NativeOp[];
  /**
   * The bucket table as the kernel has it (adopting a running cluster): `home` with each bucket a
   * node's rules claim given to that node. Without it the cluster reads the nft sets itself.
   */
  readOwners?(ctx: BackendContext, home: readonly number[]): Promise<number[]>;
}

/**
 * The backend a spec runs on. `iptablesSupport` (see iptablesSupport in lib/rules/iptables) is
 * what the kernel offers, for iptables.variant 'auto'; without it 'auto' means xt_cluster.
 */
export function backendFor(spec: DataPlaneSpec, iptablesSupport?: Record<IptablesKind, boolean>): DataPlaneBackend {
  return spec.backend === 'iptables' ? iptablesBackend(resolveVariant(spec, iptablesSupport)) : nftBackend;
}
