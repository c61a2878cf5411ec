/**
 * The status a running `up` publishes for other processes: `/run/netns-cluster/<name>/status.json`,
 * rewritten atomically (tmp + rename) on every event and every 2 s. `status` reads it instead of
 * asking the services itself (OpenVPN's management socket takes one client, and `up` holds it).
 * @module
 */
import { join } from 'node:path';
import type { BgpStatus } from '../services/bgp/bird.js';
import type { NodeStatus } from '../cluster/cluster.js';
import type { NodeFailovers } from '../cluster/metrics.js';
import { ensureRuntimeDir, readJson, runtimeDir, writeJsonAtomic } from '../cluster/state.js';

export interface StatusFile {
  version: 1;
  name: string;
  /** The `up` process. */
  pid: number;
  startedAt: string;
  updatedAt: string;
  /** `starting` until every node's service has been started once, then `running`. */
  phase: 'starting' | 'running' | 'stopping';
  vips: string[];
  ports: string[];
  mode: string;
  uplink: string;
  hostNetns?: string;
  /** Hash buckets of the cluster. */
  buckets?: number;
  /** How long building the cluster took (ms). */
  buildMs?: number;
  /** The last live reload's duration (ms) and the number of reloads. */
  reloadMs?: number;
  reloads?: number;
  nodes: NodeStatus[];
  /** Failovers the controller saw, indexed by node. */
  failovers?: NodeFailovers[];
  /** The BGP announcement (spec `announce`): sessions, announced prefixes, last change. */
  bgp?: BgpStatus;
}

export const statusPath = (name: string): string => join(runtimeDir(name), 'status.json');

export async function writeStatus(s: StatusFile): Promise<void> {
  await ensureRuntimeDir(s.name); // a cluster without a service has not made it yet
  await writeJsonAtomic(statusPath(s.name), s);
}

export function readStatus(name: string): Promise<StatusFile | undefined> {
  return readJson<StatusFile>(statusPath(name));
}
