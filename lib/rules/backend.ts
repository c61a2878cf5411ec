/**
 * How the cluster talks to the kernel's packet filter. The nftables backend (libnftnl) is the one
 * there is; an iptables (libiptc) backend for older kernels can implement the same interface.
 * @module
 */
import type { NativeOp, NftCommand } from '../kernel/engine.js';
import type { Netns } from '../kernel/netns.js';
import type { Layout } from './ruleset.js';
import type { HashMode } from './jhash.js';
import type { Cidr } from '../util/validate.js';

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
}

/** What a backend works on. `nodes[k]` is node k's namespace. */
export interface BackendContext {
  spec: DataPlaneSpec;
  layout: Layout;
  host: Netns;
  nodes: readonly Netns[];
}

/** Per-node traffic to the VIP, from the nodes' own counters. */
export interface NodeCounters {
  index: number;
  /** Packets/bytes the node accepted (in flood mode: the ones it owns). */
  packets: number;
  bytes: number;
  /** Flood mode: packets the node saw but dropped (another node's buckets). */
  droppedPackets: number;
  droppedBytes: number;
}

/** One table a backend installs: in the host namespace (`node` undefined) or in node `node`. */
export interface BackendTable {
  node?: number;
  family: 'bridge' | 'inet';
  name: string;
  commands: NftCommand[];
}

export interface DataPlaneBackend {
  readonly name: string;
  /**
   * The host's and every node's rules with bucket b owned by `owners[b]` (-1: nobody), as data:
   * one table per namespace (`node` undefined: the host), each installed as one transaction. The
   * plan holds them; the build sends them in the same job as the links and addresses.
   */
  tables(spec: DataPlaneSpec, layout: Layout, owners: readonly number[], nodes?: number): BackendTable[];
  /**
   * Changes ownership from `from` to `to`. Steer mode must do it atomically; flood mode gives a
   * bucket to its new owner before taking it from the old one (duplicates, never loss).
   */
  move(ctx: BackendContext, from: readonly number[], to: readonly number[]): Promise<void>;
  counters(ctx: BackendContext): Promise<NodeCounters[]>;
  /** Requests that remove the host namespace's rules (node rules go with the node namespaces). */
  removeOps(ctx: BackendContext): NativeOp[];
}
