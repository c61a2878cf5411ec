// The BGP announcement (`announce.bgp`): refused when the spec is resolved (shape, ASNs, router id,
// peers, timers, communities), or in createCluster's preflight before anything is built (BIRD
// missing or not BIRD 2, a peer no route reaches).
import { createCluster, type Netns } from '../../lib/index.js';
import { inNs, type BadInputCase, type CaseContext } from './types.js';

const CODE = 'ERR_INVALID_ARG_VALUE';
const goodBgp = { localAs: 65001, routerId: '10.1.0.2', peers: [{ address: '10.1.0.1', as: 65000 }] };
const base = (ctx: CaseContext, bgp: unknown, extra: Record<string, unknown> = {}) => ({
  name: ctx.prefix,
  nodes: 2,
  vip: '192.0.2.1/24',
  uplink: { routed: { via: 'eth0' } },
  announce: { bgp },
  ...extra,
});

function bad(name: string, bgp: unknown, field: string, message: RegExp, extra: Record<string, unknown> = {}): BadInputCase {
  return { name, run: (ctx) => createCluster(base(ctx, bgp, extra) as never), expect: { code: CODE, field, message } };
}
const patch = (p: Record<string, unknown>) => ({ ...goodBgp, ...p });

/** A host namespace with a routed uplink `d0` on 10.1.0.0/24 (so 10.1.0.1 is reachable, 10.99.0.1 is not). */
function inHost(ctx: CaseContext, bgp: unknown): Promise<unknown> {
  return inNs(ctx, async (ns: Netns) => {
    await ns.addVeth({ name: 'd0', up: true, peer: { name: 'd1', up: true } });
    await ns.addAddress('d0', '10.1.0.2/24');
    return createCluster({ ...base(ctx, bgp), hostNetns: ns.name, uplink: { routed: { via: 'd0' } } } as never);
  });
}

export const cases: BadInputCase[] = [
  bad('announce has no bgp', {}, 'announce.bgp.localAs', /is missing: give an AS number/),
  { name: 'announce names an unknown protocol', run: (ctx) => createCluster({ ...base(ctx, goodBgp), announce: { ospf: {} } } as never), expect: { code: CODE, field: 'announce.ospf', message: /unknown field/ } },
  bad('localAs is 0', patch({ localAs: 0 }), 'announce.bgp.localAs', /must be an AS number from 1 to 4294967295, got 0/),
  bad('localAs is a string', patch({ localAs: '65001' }), 'announce.bgp.localAs', /got the string '65001'; write 65001 without quotes/),
  bad('localAs is AS_TRANS', patch({ localAs: 23456 }), 'announce.bgp.localAs', /AS_TRANS.*give your real AS number/),
  bad('localAs misspelt', { ...goodBgp, localAS: 65001, localAs: undefined }, 'announce.bgp.localAS', /did you mean 'localAs'/),
  bad('routerId is IPv6', patch({ routerId: '2001:db8::2' }), 'announce.bgp.routerId', /is IPv6; a BGP router id is a 32-bit number written as an IPv4 address/),
  bad('routerId is not an address', patch({ routerId: 'router1' }), 'announce.bgp.routerId', /router1/),
  bad('routerId is 0.0.0.0', patch({ routerId: '0.0.0.0' }), 'announce.bgp.routerId', /not a valid router id/),
  bad('peers missing', { localAs: 65001, routerId: '10.1.0.2' }, 'announce.bgp.peers', /is missing: give the routers to peer with/),
  bad('peers empty', patch({ peers: [] }), 'announce.bgp.peers', /give at least one peer/),
  bad('peer address is the VIP', patch({ peers: [{ address: '192.0.2.1', as: 65000 }] }), 'announce.bgp.peers[0].address', /is the VIP itself; give the router's own address/),
  bad('peer address is multicast', patch({ peers: [{ address: '224.0.0.5', as: 65000 }] }), 'announce.bgp.peers[0].address', /multicast.*give the router's unicast address/),
  bad('peer address on the node network', patch({ peers: [{ address: '198.18.0.9', as: 65000 }] }), 'announce.bgp.peers[0].address', /on the node network 198\.18\.0\.0\/24, inside the cluster/),
  bad('peer listed twice', patch({ peers: [{ address: '10.1.0.1', as: 65000 }, { address: '10.1.0.1', as: 65000 }] }), 'announce.bgp.peers[1].address', /listed twice/),
  bad('peer listed twice, spelt differently', patch({ peers: [{ address: '10.1.0.1', as: 65000 }, { address: 'fd00:200::1', as: 65000 }, { address: 'fd00:200:0:0::1', as: 65000 }] }), 'announce.bgp.peers[2].address', /fd00:200::1 is listed twice/, { vip: ['192.0.2.1/24', '2001:db8::1/64'] }),
  bad('IPv6 peer without an IPv6 VIP', patch({ peers: [{ address: '10.1.0.1', as: 65000 }, { address: 'fd00:200::1', as: 65000 }] }), 'announce.bgp.peers[1].address', /fd00:200::1 is IPv6 but no VIP is: nothing would be announced to it/),
  bad('peer without as', patch({ peers: [{ address: '10.1.0.1' }] }), 'announce.bgp.peers[0].as', /is missing: give an AS number/),
  bad('peer password with a space', patch({ peers: [{ address: '10.1.0.1', as: 65000, password: 'two words' }] }), 'announce.bgp.peers[0].password', /printable ASCII characters without spaces or double quotes/),
  bad('peer password with a double quote', patch({ peers: [{ address: '10.1.0.1', as: 65000, password: 'a"b' }] }), 'announce.bgp.peers[0].password', /double quote/),
  bad('IPv6 VIP without an IPv6 peer', goodBgp, 'announce.bgp.peers', /the VIP 2001:db8::1 is IPv6 but no peer is: add an IPv6 peer/, { vip: ['192.0.2.1/24', '2001:db8::1/64'] }),
  bad('holdTime below 3', patch({ holdTime: 2 }), 'announce.bgp.holdTime', /from 3 to 65535/),
  bad('keepalive as long as holdTime', patch({ holdTime: 9, keepalive: 9 }), 'announce.bgp.keepalive', /not shorter than holdTime \(9 s\).*e\.g\. 3/),
  bad('bfd interval too short', patch({ bfd: { intervalMs: 5 } }), 'announce.bgp.bfd.intervalMs', /from 10 to 10000, got 5/),
  bad('community part beyond 65535', patch({ communities: ['65000:70000'] }), 'announce.bgp.communities[0]', /standard community must be 0 to 65535 \(use 'ASN:value:value' for a large community\)/),
  bad('community is not one', patch({ communities: ['no-export'] }), 'announce.bgp.communities[0]', /expected a community 'ASN:value'/),
  bad('prepend too long', patch({ prepend: 17 }), 'announce.bgp.prepend', /from 0 to 16, got 17/),
  bad('med negative', patch({ med: -1 }), 'announce.bgp.med', /from 0 to 4294967295, got -1/),
  // Preflight: in a host namespace of the case's own, before anything is built.
  {
    name: 'BIRD missing',
    run: (ctx) => inHost(ctx, patch({ binary: '/nonexistent/bird' })),
    expect: { code: CODE, field: 'announce.bgp.binary', message: /BIRD \('\/nonexistent\/bird'\) was not found; install BIRD 2 \(Debian\/Ubuntu: 'apt install bird2'\)/ },
  },
  {
    name: 'binary is not BIRD',
    run: (ctx) => inHost(ctx, patch({ binary: '/bin/true' })),
    expect: { code: CODE, field: 'announce.bgp.binary', message: /did not print a BIRD version.*is it BIRD\?/ },
  },
  {
    name: 'peer unreachable',
    run: (ctx) => inHost(ctx, patch({ peers: [{ address: '10.99.0.1', as: 65000 }] })),
    expect: { code: CODE, field: 'announce.bgp.peers[0].address', message: /10\.99\.0\.1 is unreachable from namespace '.*': no route covers it/ },
  },
];
