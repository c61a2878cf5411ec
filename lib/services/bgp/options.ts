/**
 * The BGP announcement's options (`announce: { bgp: { … } }` in a spec): the schema (TypeBox: at
 * once the type, the JSON Schema and the structural check) and the checks between fields. The
 * cluster spec includes {@link AnnounceSchema}; {@link checkBgp} runs once the VIPs are valid.
 * @module
 */
import { Type, type Static } from '@sinclair/typebox';
import { BGP_DEFAULTS, MAX_BGP_COMMUNITIES, MAX_BGP_PEERS, MAX_BGP_PREPEND } from '../../util/defaults.js';
import { canonicalAddress, cidrContains, networkOf, specialAddress } from '../../util/ipmath.js';
import { annotate, collect, Int, throwProblems, type Problem } from '../../util/schema.js';
import { got, show } from '../../util/shape.js';
import { checkIp, type Cidr } from '../../util/validate.js';

/** An AS number: 1 to 4294967295 (4-byte ASNs), not AS_TRANS (23456). */
const Asn = (description: string) =>
  annotate(Type.Integer({ minimum: 1, maximum: 4294967295, description }), {
    message: (v) => `must be an AS number from 1 to 4294967295, ${got(v, 'integer')}`,
    missing: 'is missing: give an AS number, e.g. 65001 (private ASNs: 64512-65534, 4200000000-4294967294)',
  });

/** One BGP neighbour: its address, its AS and an optional TCP-MD5 password. */
export const BgpPeerSchema = annotate(
  Type.Object(
    {
      address: annotate(Type.String({ description: 'The neighbour (router) address, IPv4 or IPv6, reachable from the host namespace.' }), {
        message: (v) => `expected the router's IPv4 or IPv6 address, e.g. '10.0.0.1', ${got(v)}`,
        missing: "is missing: give the router's address, e.g. '10.0.0.1'",
      }),
      as: Asn("The neighbour's AS number (the same as localAs for iBGP)."),
      password: Type.Optional(
        annotate(Type.String({ minLength: 1, maxLength: 80, pattern: '^[\\x21\\x23-\\x7e]+$', description: 'TCP-MD5 password (RFC 2385): printable ASCII without spaces or double quotes, at most 80 characters.' }), {
          message: (v) => `must be 1 to 80 printable ASCII characters without spaces or double quotes (a TCP-MD5 key BIRD can quote), ${typeof v === 'string' ? `got ${v.length} characters${/[^\x21\x23-\x7e]/.test(v) ? ' with a space, a double quote, a control or a non-ASCII character' : ''}` : got(v)}`,
        }),
      ),
    },
    { additionalProperties: false },
  ),
  { message: (v) => `expected { address: '10.0.0.1', as: 65000, password?: '…' }, ${got(v)}` },
);

/** BGP announcement of the VIP(s) through BIRD 2 (see lib/announce). */
export const BgpAnnounceSchema = annotate(
  Type.Object(
    {
      localAs: Asn('The AS this host announces from.'),
      routerId: annotate(Type.String({ description: "BGP router id: an IPv4 address unique among the router's peers (usually the host's own)." }), {
        message: (v) => `expected an IPv4 address such as '10.0.0.2' (BGP router ids are IPv4-shaped), ${got(v)}`,
        missing: "is missing: give a router id, an IPv4 address unique among the router's peers, e.g. the host's own '10.0.0.2'",
      }),
      peers: annotate(Type.Array(BgpPeerSchema, { minItems: 1, maxItems: MAX_BGP_PEERS, description: `The routers to peer with (1 to ${MAX_BGP_PEERS}).` }), {
        message: (v) =>
          Array.isArray(v) ? (v.length === 0 ? "give at least one peer, e.g. [{ address: '10.0.0.1', as: 65000 }]" : `lists ${v.length} peers; at most ${MAX_BGP_PEERS}`) : `expected a list such as [{ address: '10.0.0.1', as: 65000 }], ${got(v)}`,
        missing: "is missing: give the routers to peer with, e.g. [{ address: '10.0.0.1', as: 65000 }]",
      }),
      holdTime: Type.Optional(
        annotate(Type.Integer({ minimum: 3, maximum: 65535, default: BGP_DEFAULTS.holdTime, description: `BGP hold time in seconds (3 to 65535): a silent peer's routes go after this long. Default ${BGP_DEFAULTS.holdTime}.` }), {
          message: (v) => `must be a whole number of seconds from 3 to 65535 (BGP's minimum hold time is 3), ${got(v, 'integer')}`,
        }),
      ),
      keepalive: Type.Optional(
        annotate(Type.Integer({ minimum: 1, maximum: 21845, default: BGP_DEFAULTS.keepalive, description: `Keepalive interval in seconds, shorter than holdTime (a third of it is usual). Default ${BGP_DEFAULTS.keepalive}.` }), {
          message: (v) => `must be a whole number of seconds from 1 to 21845, ${got(v, 'integer')}`,
        }),
      ),
      bfd: Type.Optional(
        annotate(
          Type.Object(
            {
              intervalMs: Type.Optional(Int(10, 10000, { default: BGP_DEFAULTS.bfd.intervalMs, description: `BFD transmit and receive interval in ms. Default ${BGP_DEFAULTS.bfd.intervalMs}.` })),
              multiplier: Type.Optional(Int(1, 255, { default: BGP_DEFAULTS.bfd.multiplier, description: `Missed BFD packets before the session is down. Default ${BGP_DEFAULTS.bfd.multiplier}.` })),
            },
            { additionalProperties: false, description: 'Bidirectional forwarding detection: the router drops the route within intervalMs × multiplier when this host goes silent (the router must run BFD too).' },
          ),
          { message: (v) => `expected { intervalMs: 300, multiplier: 3 } (or {} for the defaults), ${got(v)}` },
        ),
      ),
      communities: Type.Optional(
        annotate(
          Type.Array(
            annotate(Type.String({ pattern: '^[0-9]+:[0-9]+(:[0-9]+)?$' }), {
              message: (v) => `expected a community 'ASN:value' (each 0-65535) or a large community 'ASN:value:value' (each 0-4294967295), ${got(v)}`,
            }),
            { maxItems: MAX_BGP_COMMUNITIES, description: "BGP communities on the announcement: '65000:100' (standard) or '65000:1:2' (large)." },
          ),
          { message: (v) => (Array.isArray(v) ? `lists ${v.length} communities; at most ${MAX_BGP_COMMUNITIES}` : `expected a list such as ['65000:100'], ${got(v)}`) },
        ),
      ),
      med: Type.Optional(Int(0, 4294967295, { description: 'Multi-exit discriminator on the announcement (lower is preferred): raise it to make this host a backup.' })),
      prepend: Type.Optional(Int(0, MAX_BGP_PREPEND, { description: `Extra times the local AS is prepended to the AS path (0 to ${MAX_BGP_PREPEND}): a longer path makes this host less preferred.` })),
      binary: Type.Optional(
        annotate(Type.String({ minLength: 1, pattern: '^[^\\u0000]*$', description: `The BIRD 2 program, a path or a name looked up on PATH, then /usr/sbin, /sbin, /usr/local/sbin. Default '${BGP_DEFAULTS.binary}'.` }), {
          message: (v) => `must be the BIRD 2 program, a path or a command name, ${got(v)}`,
        }),
      ),
    },
    { additionalProperties: false, description: "Announce the VIP(s) (as /32 and /128) with BGP from this host while at least one node is up, through BIRD 2 run in the cluster's host namespace." },
  ),
  { message: (v) => `expected { localAs, routerId, peers: [{ address, as }] , … }, ${got(v)}` },
);

/** How the cluster tells the network where the VIP is: `{ bgp: { … } }`. */
export const AnnounceSchema = annotate(
  Type.Object({ bgp: BgpAnnounceSchema }, { additionalProperties: false, description: 'Announce the VIP to routers (BGP, through BIRD 2).' }),
  { message: (v) => `expected { bgp: { localAs, routerId, peers: [...] } }, ${got(v)}`, missing: 'give { bgp: { … } }' },
);

/** The checked announcement: every default filled in. */
export interface ResolvedBgp {
  localAs: number;
  routerId: string;
  peers: { address: string; family: 4 | 6; as: number; password?: string }[];
  holdTime: number;
  keepalive: number;
  bfd?: { intervalMs: number; multiplier: number };
  communities: string[];
  med?: number;
  prepend: number;
  /** As given (looked up when the cluster is created). */
  binary: string;
}

/** The semantic checks of `announce.bgp` (its structure has passed the schema). */
export function checkBgp(field: string, b: Static<typeof BgpAnnounceSchema>, vips: Cidr[], nodeNetworks: Cidr[]): ResolvedBgp {
  const out: Problem[] = [];
  const asnOk = (f: string, asn: number) => {
    if (asn === 23456) out.push({ field: f, message: 'AS 23456 is AS_TRANS, a placeholder for 4-byte ASNs on old routers; give your real AS number' });
  };
  asnOk(`${field}.localAs`, b.localAs);
  const rid = collect(out, () => checkIp(`${field}.routerId`, b.routerId));
  if (rid && rid.family !== 4) out.push({ field: `${field}.routerId`, message: `${rid.address} is IPv6; a BGP router id is a 32-bit number written as an IPv4 address, e.g. '10.0.0.2'` });
  else if (rid && (rid.address === '0.0.0.0' || rid.address === '255.255.255.255')) out.push({ field: `${field}.routerId`, message: `${rid.address} is not a valid router id; give the host's own IPv4 address, e.g. '10.0.0.2'` });
  const peers: ResolvedBgp['peers'] = [];
  const seen = new Set<string>();
  b.peers.forEach((p, i) => {
    const f = `${field}.peers[${i}]`;
    asnOk(`${f}.as`, p.as);
    if (p.address.includes('%')) return void out.push({ field: `${f}.address`, message: `${show(p.address)} has a zone index ('%…'); write the address without it` });
    const given = collect(out, () => checkIp(`${f}.address`, p.address));
    if (!given) return;
    // One spelling of each address (fd00:200:0::1 is fd00:200::1): duplicates, the VIP and status compare it.
    const ip = { ...given, address: canonicalAddress(given.address) };
    const special = specialAddress(ip.address, ip.family);
    if (special) return void out.push({ field: `${f}.address`, message: `${ip.address} is ${special}; give the router's unicast address on the network between it and this host` });
    const vip = vips.find((v) => canonicalAddress(v.address) === ip.address);
    if (vip) return void out.push({ field: `${f}.address`, message: `${ip.address} is the VIP itself; give the router's own address` });
    const net = nodeNetworks.find((n) => cidrContains(n, ip.address));
    if (net) return void out.push({ field: `${f}.address`, message: `${ip.address} is on the node network ${networkOf(net)}, inside the cluster; give the router's address outside it` });
    if (!vips.some((v) => v.family === ip.family))
      return void out.push({ field: `${f}.address`, message: `${ip.address} is IPv${ip.family} but no VIP is: nothing would be announced to it; leave it out or add an IPv${ip.family} VIP` });
    if (seen.has(ip.address)) return void out.push({ field: `${f}.address`, message: `${ip.address} is listed twice; give each router once` });
    seen.add(ip.address);
    peers.push({ address: ip.address, family: ip.family, as: p.as, ...(p.password !== undefined ? { password: p.password } : {}) });
  });
  // Every VIP goes to the peers of its family: each family needs one.
  if (peers.length === b.peers.length)
    for (const v of vips)
      if (!peers.some((p) => p.family === v.family))
        out.push({ field: `${field}.peers`, message: `the VIP ${v.address} is IPv${v.family} but no peer is: add an IPv${v.family} peer to announce it (each VIP goes to the peers of its family)` });
  const holdTime = b.holdTime ?? BGP_DEFAULTS.holdTime;
  const keepalive = b.keepalive ?? Math.min(BGP_DEFAULTS.keepalive, Math.floor(holdTime / 3));
  if (keepalive >= holdTime) out.push({ field: `${field}.keepalive`, message: `${keepalive} s is not shorter than holdTime (${holdTime} s): the session would expire between keepalives; use at most a third of it, e.g. ${Math.max(1, Math.floor(holdTime / 3))}` });
  (b.communities ?? []).forEach((c, i) => {
    const parts = c.split(':').map(Number);
    const max = parts.length === 2 ? 65535 : 4294967295;
    if (parts.some((x) => x > max))
      out.push({ field: `${field}.communities[${i}]`, message: `'${c}': each part of a ${parts.length === 2 ? "standard community must be 0 to 65535 (use 'ASN:value:value' for a large community)" : 'large community must be 0 to 4294967295'}` });
  });
  throwProblems(out);
  return {
    localAs: b.localAs,
    routerId: rid!.address,
    peers,
    holdTime,
    keepalive,
    ...(b.bfd ? { bfd: { intervalMs: b.bfd.intervalMs ?? BGP_DEFAULTS.bfd.intervalMs, multiplier: b.bfd.multiplier ?? BGP_DEFAULTS.bfd.multiplier } } : {}),
    communities: [...(b.communities ?? [])],
    ...(b.med !== undefined ? { med: b.med } : {}),
    prepend: b.prepend ?? 0,
    binary: b.binary ?? BGP_DEFAULTS.binary,
  };
}

