/** How nodes and clusters look in the terminal. @module */
import type { NodeStatus } from '../cluster/cluster.js';
import { table } from './table.js';

/** VPN clients of a node, when its service reports them (`openvpn: { clients }`). */
function clients(n: NodeStatus): string {
  const c = (n.openvpn as { clients?: unknown[] } | undefined)?.clients;
  return Array.isArray(c) ? String(c.length) : '-';
}

export function nodeTable(nodes: NodeStatus[]): string {
  return table(
    ['NODE', 'NETNS', 'ADDRESS', 'SERVICE', 'PID', 'RESTARTS', 'DATA PLANE', 'BUCKETS', 'PACKETS', 'CLIENTS'],
    nodes.map((n) => [
      `n${n.index}`,
      n.netns,
      n.address,
      n.state,
      n.pid ?? '-',
      n.restarts,
      n.dataPlane,
      n.buckets.length,
      n.counters?.packets ?? '-',
      clients(n),
    ]),
  );
}
