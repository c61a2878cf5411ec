/**
 * The BIRD 2 configuration of a cluster's BGP announcement, rendered from the resolved spec: a pure
 * function (no I/O), so that it can be checked without root against a golden file.
 *
 * What it says:
 * - one static protocol per VIP family (`vip4`, `vip6`) holding the VIP as a /32 or /128
 *   blackhole route, **disabled** at start: nothing is announced until the controller enables it
 *   through the control socket, which it does only while at least one node is up;
 * - one BGP protocol per peer (`peer0`, `peer1`, …) exporting the VIP routes of its family (and
 *   nothing else, importing nothing), with next hop self, the hold and keepalive times, graceful
 *   restart off (a dead host's routes must go, not be kept as stale), short connect retries, and
 *   BFD when asked for;
 * - the communities, MED and AS-path prepends of the spec, set by the export filter.
 *
 * No kernel protocol: the host's own BIRD never touches its routing table (the cluster's routed
 * uplink already routes the VIP into the bridge).
 * @module
 */
import type { ResolvedBgp } from './options.js';
import type { Cidr } from '../../util/validate.js';

/** The names of BIRD's protocols in the rendered config. */
export const BIRD_PROTOCOLS = {
  /** The static protocol holding the VIP of a family. */
  vip: (family: 4 | 6) => `vip${family}`,
  /** The BGP session with peer `i`. */
  peer: (i: number) => `peer${i}`,
} as const;

export interface BirdConfigInput {
  /** The cluster's name (for the header only). */
  name: string;
  vips: Cidr[];
  bgp: ResolvedBgp;
}

/** One community as BIRD writes it: `(65000,100)` or `(65000,1,2)`. */
function communityLiteral(c: string): { large: boolean; text: string } {
  const parts = c.split(':');
  return { large: parts.length === 3, text: `(${parts.join(',')})` };
}

/** The BIRD 2 configuration for `input` (see the module comment). Deterministic: same input, same text. */
export function renderBirdConfig(input: BirdConfigInput): string {
  const { bgp, vips } = input;
  const families = [...new Set(vips.map((v) => v.family))].sort();
  const L: string[] = [];
  L.push(`# BIRD 2 configuration of netns-cluster '${input.name}': generated, rewritten on every start; do not edit.`);
  L.push('log stderr all;');
  L.push(`router id ${bgp.routerId};`);
  L.push('timeformat base iso long;', 'timeformat log iso long;', 'timeformat protocol iso long;', 'timeformat route iso long;');
  L.push('');
  L.push('protocol device {', '  scan time 10;', '}');
  L.push('');
  L.push('# The VIP routes, announced only while at least one node is up: the controller enables and');
  L.push('# disables these through the control socket. Disabled until it says so.');
  for (const fam of families) {
    L.push(`protocol static ${BIRD_PROTOCOLS.vip(fam)} {`);
    L.push(`  ipv${fam};`);
    L.push('  disabled yes;');
    for (const v of vips.filter((x) => x.family === fam)) L.push(`  route ${v.address}/${fam === 4 ? 32 : 128} blackhole;`);
    L.push('}');
  }
  L.push('');
  L.push('filter netns_cluster_export {');
  L.push(`  if ${families.map((f) => `proto != "${BIRD_PROTOCOLS.vip(f)}"`).join(' && ')} then reject;`);
  for (const c of bgp.communities) {
    const { large, text } = communityLiteral(c);
    L.push(`  ${large ? 'bgp_large_community' : 'bgp_community'}.add(${text});`);
  }
  if (bgp.med !== undefined) L.push(`  bgp_med = ${bgp.med};`);
  for (let i = 0; i < bgp.prepend; i++) L.push(`  bgp_path.prepend(${bgp.localAs});`);
  L.push('  accept;');
  L.push('}');
  if (bgp.bfd) {
    L.push('');
    L.push('protocol bfd {');
    L.push(`  interface "*" { interval ${bgp.bfd.intervalMs} ms; multiplier ${bgp.bfd.multiplier}; };`);
    L.push('}');
  }
  bgp.peers.forEach((p, i) => {
    L.push('');
    L.push(`protocol bgp ${BIRD_PROTOCOLS.peer(i)} {`);
    L.push(`  local as ${bgp.localAs};`);
    L.push(`  neighbor ${p.address} as ${p.as};`);
    if (p.password !== undefined) L.push(`  password "${p.password}";`);
    L.push(`  hold time ${bgp.holdTime};`);
    L.push(`  keepalive time ${bgp.keepalive};`);
    L.push('  connect delay time 1;');
    L.push('  connect retry time 2;');
    L.push('  error wait time 1, 10;');
    L.push('  graceful restart off;');
    if (bgp.bfd) L.push('  bfd on;');
    const fam = p.family;
    if (families.includes(fam)) {
      L.push(`  ipv${fam} {`, '    import none;', '    export filter netns_cluster_export;', '    next hop self;', '  };');
    }
    L.push('}');
  });
  return `${L.join('\n')}\n`;
}
