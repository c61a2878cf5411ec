/**
 * How the cluster talks to the kernel's packet filter. The nftables backend (libnftnl) is the one
 * there is; an iptables (libiptc) backend for older kernels can implement the same interface.
 * @module
 */
import type { NativeOp, NftCommand } from './binding.js';
import type { Netns } from './netns.js';
import type { Layout } from './rules.js';
import type { ResolvedSpec } from './spec.js';

/** What a backend works on. `nodes[k]` is node k's namespace. */
export interface BackendContext {
  spec: ResolvedSpec;
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
  tables(spec: ResolvedSpec, layout: Layout, owners: readonly number[], nodes?: number): BackendTable[];
  /**
   * Changes ownership from `from` to `to`. Steer mode must do it atomically; flood mode gives a
   * bucket to its new owner before taking it from the old one (duplicates, never loss).
   */
  move(ctx: BackendContext, from: readonly number[], to: readonly number[]): Promise<void>;
  counters(ctx: BackendContext): Promise<NodeCounters[]>;
  /** Requests that remove the host namespace's rules (node rules go with the node namespaces). */
  removeOps(ctx: BackendContext): NativeOp[];
}
