/** How nodes and clusters look in the terminal. @module */
import type { BgpStatus } from '../services/bgp/bird.js';
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

/** The BGP announcement: what is announced and why, then one row per session. */
export function bgpTable(b: BgpStatus): string {
  const head =
    `  BGP: VIP ${b.announcing ? `announced (${b.prefixes.join(' ')})` : 'WITHDRAWN'}: ${b.reason}` +
    `${b.lastChange ? `, last change ${b.lastChange}` : ''}; BIRD ${b.bird.state}${b.bird.pid ? ` (pid ${b.bird.pid})` : ''}${b.bird.restarts ? `, ${b.bird.restarts} restarts` : ''}${b.error ? `; ${b.error}` : ''}\n`;
  return (
    head +
    table(
      ['PEER', 'ADDRESS', 'AS', 'STATE', 'SESSION', 'SINCE', 'ANNOUNCED', 'LAST ERROR'],
      b.peers.map((p) => [p.protocol, p.address, p.as, p.state, p.session ?? '-', p.since ?? '-', p.announced.join(' ') || '-', p.lastError ?? '-']),
    )
  );
}
