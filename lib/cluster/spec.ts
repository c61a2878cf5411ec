/**
 * The cluster spec: what users write, defined once. {@link ClusterSpecSchema} is at the same time
 * the TypeScript type ({@link ClusterSpec}), the JSON Schema of config files
 * (schema/cluster.schema.json, `netns-cluster schema`) and the structural half of the validation
 * (types, required and unknown keys with "did you mean", enums, ranges, list sizes). The semantic
 * half (address classes, overlaps, the gateway on the VIP's subnet, room for the nodes, and
 * whatever a service kind checks against the cluster) is the TypeScript below, run after the
 * structural pass on the fields that passed it. Every problem is reported, not only the first;
 * every message names the field (`ports[1].port`) and says what to fix; nothing is created before
 * the spec is valid.
 * @module
 */
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { Type, type Static } from '@sinclair/typebox';
import {
  CLUSTERIP_MAX_NODES,
  DEFAULT_BACKEND,
  DEFAULT_BUCKETS,
  DEFAULT_IPTABLES_VARIANT,
  DEFAULT_FAILBACK,
  DEFAULT_HASH,
  DEFAULT_MODE,
  DEFAULT_NODE_NETWORK,
  DEFAULT_NODE_NETWORK6,
  MAX_BUCKETS,
  MAX_NODES,
  MAX_PORTS,
  XT_CLUSTER_MAX_NODES,
} from '../util/defaults.js';
import { InvalidArgumentError } from '../util/errors.js';
import { cidrContains, cidrOverlap, hostRole, networkOf, specialAddress, specialRange } from '../util/ipmath.js';
import { checkClusterName, MAX_NAME_BYTES } from '../util/names.js';
import { HASH_MODES, seedFromName, type HashMode } from '../rules/jhash.js';
import { annotate, collect, Enum, Int, invalid, OneOrList, refusal, structuralProblems, type Problem } from '../util/schema.js';
import { got, show } from '../util/shape.js';
import { checkMetrics, type MetricsListen } from './metrics.js';
import { checkCidr, checkIfname, checkIp, checkNetnsName, type Cidr } from '../util/validate.js';
import { CLUSTER_CHECK, checkServiceDefinition, serviceSchema, type ClusterFacts, type ServiceDefinition } from '../services/service.js';
import { OpenvpnOptionsSchema } from '../services/openvpn/options.js';
import { AnnounceSchema, checkBgp, type ResolvedBgp } from '../services/bgp/options.js';

export { MAX_NAME_BYTES, MAX_NODES, MAX_BUCKETS, MAX_PORTS, DEFAULT_NODE_NETWORK, DEFAULT_NODE_NETWORK6 };

const Protocol = () => Enum(['udp', 'tcp'] as const);

export const PortSchema = annotate(
  Type.Object(
    {
      protocol: annotate(Protocol(), { missing: "is missing: give 'udp' or 'tcp'" }),
      port: annotate(Type.Integer({ minimum: 1, maximum: 65535 }), { message: (v) => `must be 1 to 65535, ${got(v, 'integer')}`, missing: 'is missing: give a port from 1 to 65535' }),
    },
    { additionalProperties: false },
  ),
  { message: (v) => `expected { protocol: 'udp' | 'tcp', port: 1 to 65535 }, ${got(v)}` },
);
export type PortSpec = Static<typeof PortSchema>;

const ifname = (description: string) => annotate(Type.String({ description }), { message: (v) => refusal(() => checkIfname('', v))! });
const UPLINK_CHOICES = "{ bridge: '<ifname>' } or { routed: { via: '<ifname>' } }";

/**
 * How the outside reaches the cluster. `{ bridge }`: enslave this existing interface (of the host
 * namespace) to the cluster's bridge, the classic setup. `{ routed: { via } }`: the host keeps its
 * addresses and routes the VIP into the bridge (safe over SSH); `via` is the host interface clients
 * come in on (it must exist), and the host becomes the nodes' gateway.
 */
export const UplinkSchema = annotate(
  Type.Union(
    [
      Type.Object({ bridge: ifname("Host interface to enslave to the cluster bridge (not 'lo').") }, { additionalProperties: false }),
      Type.Object(
        {
          routed: annotate(
            Type.Object(
              { via: annotate(ifname("Host interface clients come in on (not 'lo')."), { missing: 'is missing: give the host interface clients come in on, e.g. eth0' }) },
              { additionalProperties: false },
            ),
            { message: (v) => `expected { via: '<ifname>' }: the host interface clients come in on, ${got(v)}` },
          ),
        },
        { additionalProperties: false },
      ),
    ],
    { description: 'How the outside reaches the cluster.' },
  ),
  {
    message: (v) => `expected ${UPLINK_CHOICES}, ${got(v)}`,
    missing: `give ${UPLINK_CHOICES}`,
    choice: { keys: ['bridge', 'routed'], none: `give exactly one of ${UPLINK_CHOICES}`, many: `give exactly one of ${UPLINK_CHOICES}` },
  },
);
export type UplinkSpec = Static<typeof UplinkSchema>;

const cidrItem = () => annotate(Type.String(), { message: (v) => `expected an address with prefix such as 192.0.2.1/24, ${got(v)}` });
const tooMany = (example: string) => (v: unknown[]) => `give at most 2 values (${example}), got a list of ${v.length}`;

/** The service part of the schema: a command, or `{ openvpn: {...} }` (its options are the OpenVPN module's schema). */
const ServiceSchema = serviceSchema({ openvpn: OpenvpnOptionsSchema });

/** The cluster spec: every field, its type, its limits and defaults. */
export const ClusterSpecSchema = annotate(
  Type.Object(
    {
      $schema: Type.Optional(Type.String({ description: 'The JSON Schema this file follows (for editors); ignored.' })),
      name: annotate(Type.String({ pattern: `^[a-z][a-z0-9-]{0,${MAX_NAME_BYTES - 1}}$`, description: `Short name (at most ${MAX_NAME_BYTES} bytes): it prefixes every object the cluster creates.` }), {
        message: (v) => refusal(() => checkClusterName('name', v))!,
        missing: `is missing: give the cluster a short name such as 'vpn' (a-z, 0-9 and '-', at most ${MAX_NAME_BYTES} bytes)`,
      }),
      nodes: Type.Optional(Int(1, MAX_NODES, { description: 'Number of nodes. Default: the number of CPUs.' })),
      vip: annotate(
        OneOrList(cidrItem(), {
          min: 1,
          max: 2,
          list: (v) => (v.length === 0 ? "give the shared address with its prefix, e.g. '192.0.2.1/24'" : tooMany("one IPv4 and one IPv6 address, e.g. ['192.0.2.1/24', '2001:db8::1/64']")(v)),
          description:
            "The shared virtual IP with its prefix ('192.0.2.1/24'), or one IPv4 and one IPv6 for dual stack: a unicast host address (not the network or broadcast address, multicast, loopback, link-local, unspecified or IPv4-mapped), outside the node networks.",
        }),
        { missing: "give the shared address with its prefix, e.g. '192.0.2.1/24'" },
      ),
      ports: Type.Optional(
        annotate(Type.Array(PortSchema, { maxItems: MAX_PORTS, description: `Services on the VIP (at most ${MAX_PORTS}); traffic to other ports is dropped. Default: every port.` }), {
          message: (v) =>
            Array.isArray(v)
              ? `lists ${v.length} ports; at most ${MAX_PORTS} (each is a rule per VIP, and the kernel refuses one nftables batch of many hundreds); leave ports out to accept every port`
              : `expected a list such as [{ protocol: 'udp', port: 1194 }], ${got(v)}`,
        }),
      ),
      mode: Type.Optional(
        Enum(['steer', 'flood'] as const, { default: DEFAULT_MODE, description: "`steer`: the bridge hashes and delivers to the owner only. `flood`: every node sees every frame and keeps its own. Backend 'iptables': flood only (its default)." }),
      ),
      hash: Type.Optional(Enum(HASH_MODES, { default: DEFAULT_HASH, description: 'Flow key. `sourceip` is safe with IP fragments.' })),
      buckets: Type.Optional(
        annotate(Type.Integer({ minimum: 1, maximum: MAX_BUCKETS, default: DEFAULT_BUCKETS, description: `Hash buckets, at least \`nodes\`, at most ${MAX_BUCKETS}. Default ${DEFAULT_BUCKETS} (or nodes, if more). Backend 'iptables': at most and by default ${CLUSTERIP_MAX_NODES} (CLUSTERIP, variant auto) or ${XT_CLUSTER_MAX_NODES} (xt_cluster).` }), {
          message: (v) => `must be an integer from nodes to ${MAX_BUCKETS}, ${got(v, 'integer')}`,
        }),
      ),
      seed: Type.Optional(Int(0, 0xffffffff, { description: 'jhash seed. Default: derived from the name (never random, so every rule agrees).' })),
      hostNetns: Type.Optional(annotate(Type.String({ description: "Namespace that holds the bridge. Default: the caller's own." }), { message: (v) => refusal(() => checkNetnsName('', v))! })),
      gateway: Type.Optional(
        OneOrList(annotate(Type.String(), { message: (v) => `${show(v)} is not an IPv4 or IPv6 address` }), {
          min: 0,
          max: 2,
          list: tooMany("one IPv4 and one IPv6 router, e.g. ['192.0.2.254', '2001:db8::fffe']"),
          description: "The nodes' default gateway(s), one per family, each a router on the VIP's subnet (not the VIP); not with a routed uplink, where the host is the gateway.",
        }),
      ),
      uplink: UplinkSchema,
      nodeNetwork: Type.Optional(
        OneOrList(cidrItem(), {
          min: 1,
          max: 2,
          list: (v) => (v.length === 0 ? `give a network for the nodes' addresses, e.g. '${DEFAULT_NODE_NETWORK}', or leave nodeNetwork out` : tooMany(`one IPv4 and one IPv6 network, e.g. ['${DEFAULT_NODE_NETWORK}', '${DEFAULT_NODE_NETWORK6}']`)(v)),
          description: `Networks for the nodes' unique addresses (node k gets host number k+1), clear of the VIP's subnet and of multicast, loopback and link-local ranges. Default ${DEFAULT_NODE_NETWORK} (+ ${DEFAULT_NODE_NETWORK6} for an IPv6 VIP).`,
        }),
      ),
      service: Type.Optional(ServiceSchema),
      backend: Type.Optional(
        Enum(['nftables', 'iptables'] as const, {
          default: DEFAULT_BACKEND,
          description:
            "The packet filter the cluster's rules go into. `nftables` (libnftnl): both modes, IPv4 and IPv6. `iptables` (legacy iptables through libiptc, in the nodes): flood mode and IPv4 only; the host's bridge still floods with an nftables bridge table.",
        }),
      ),
      iptables: Type.Optional(
        Type.Object(
          {
            variant: Type.Optional(
              Enum(['auto', 'clusterip', 'xt_cluster'] as const, {
                default: DEFAULT_IPTABLES_VARIANT,
                description: `With backend 'iptables': \`clusterip\` (the CLUSTERIP target, kernels up to 6.2, at most ${CLUSTERIP_MAX_NODES} buckets), \`xt_cluster\` (the cluster match, hash sourceip only, at most ${XT_CLUSTER_MAX_NODES} buckets) or \`auto\` (clusterip where the kernel has it, else xt_cluster).`,
              }),
            ),
          },
          { additionalProperties: false, description: "Options of backend 'iptables'." },
        ),
      ),
      failback: Type.Optional(
        Enum(['auto', 'manual'] as const, { default: DEFAULT_FAILBACK, description: "When a node's service is back after a failure: take its buckets back at once (`auto`) or on request (`manual`)." }),
      ),
      announce: Type.Optional(AnnounceSchema),
      metrics: Type.Optional(
        Type.Object(
          { listen: Type.String({ description: "Address and port of the Prometheus endpoint, e.g. '127.0.0.1:9464' or '[::1]:9464'." }) },
          { additionalProperties: false, description: '`netns-cluster up` only: serve Prometheus metrics over HTTP. The library ignores it.' },
        ),
      ),
    },
    { additionalProperties: false, title: 'netns-cluster cluster config' },
  ),
  {
    quiet: ['$schema'],
    message: (v) => `expected a cluster spec such as { name: 'vpn', vip: '192.0.2.1/24', uplink: { bridge: 'eth1' } }, ${got(v)}`,
  },
);

/** The spec's data, as a config file holds it (what {@link ClusterSpecSchema} describes). */
export type ClusterSpecData = Static<typeof ClusterSpecSchema>;

export type ClusterMode = NonNullable<ClusterSpecData['mode']>;
export type BackendName = NonNullable<ClusterSpecData['backend']>;
export type IptablesVariant = NonNullable<NonNullable<ClusterSpecData['iptables']>['variant']>;

/**
 * A cluster spec: the schema's type, except that in code `service` may also be a
 * {@link ServiceDefinition} with functions (prepare, ready, …), such as openvpn() returns.
 */
export type ClusterSpec = Omit<ClusterSpecData, 'service'> & { service?: ClusterSpecData['service'] | ServiceDefinition };

/** The spec with every default filled in and every value checked. */
export interface ResolvedSpec {
  name: string;
  nodes: number;
  vips: Cidr[];
  ports: PortSpec[];
  mode: ClusterMode;
  /** The packet filter the rules go into. */
  backend: BackendName;
  /** backend 'iptables' only: the variant asked for ('auto' is decided against the kernel when the cluster is built). */
  iptables?: { variant: IptablesVariant };
  hash: HashMode;
  buckets: number;
  seed: number;
  hostNetns: string | undefined;
  gateways: string[];
  uplink: { kind: 'bridge'; ifname: string } | { kind: 'routed'; via: string };
  nodeNetworks: Cidr[];
  service: ServiceDefinition | undefined;
  failback: 'auto' | 'manual';
  /** Where `netns-cluster up` serves metrics (absent: it does not). */
  metrics?: { listen: MetricsListen };
  /** BGP announcement of the VIP(s) (absent: none). */
  announce?: { bgp: ResolvedBgp };
}

/** Every field a {@link ClusterSpec} may have (besides `$schema`, which editors use and the cluster ignores). */
export const SPEC_FIELDS = Object.keys(ClusterSpecSchema.properties).filter((k) => k !== '$schema') as Exclude<keyof ClusterSpecData, '$schema'>[];

/** The JSON Schema of config files (draft-07), as schema/cluster.schema.json holds it. */
export const SCHEMA_ID = 'urn:netns-cluster:schema:cluster-config';
export function clusterJsonSchema(): Record<string, unknown> {
  return { $schema: 'http://json-schema.org/draft-07/schema#', $id: SCHEMA_ID, ...(JSON.parse(JSON.stringify(ClusterSpecSchema)) as Record<string, unknown>) };
}

export type { ClusterFacts };

function fail(field: string, msg: string): never {
  throw new InvalidArgumentError(field, msg);
}

function checkFamilies<T extends { family: 4 | 6 }>(field: string, values: T[]): T[] {
  const fams = values.map((c) => c.family);
  if (new Set(fams).size !== fams.length) fail(field, 'give at most one IPv4 and one IPv6 value');
  return values;
}

const list = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
const itemField = (field: string, i: number, n: number) => (n > 1 ? `${field}[${i}]` : field);
const cidrText = (c: Cidr) => `${c.address}/${c.prefix}`;
const example = (family: 4 | 6, v4: string, v6: string) => (family === 4 ? v4 : v6);

/** A node network to suggest: the default, or a TEST-NET one, that none of `vips` overlaps. */
function freeNetwork(family: 4 | 6, vips: Cidr[]): string {
  const candidates = family === 4 ? [DEFAULT_NODE_NETWORK, '198.51.100.0/24', '203.0.113.0/24'] : [DEFAULT_NODE_NETWORK6, 'fd00:198:19::/64'];
  return (
    candidates.find((text) => {
      const [address, prefix] = text.split('/');
      return !vips.some((v) => cidrOverlap(v, { address, prefix: Number(prefix), family }));
    }) ?? candidates[0]
  );
}

/** An address with prefix (VIP, node network) or without (gateway): no zone index. */
function checkNoZone(field: string, v: unknown): void {
  if (typeof v === 'string' && v.includes('%')) fail(field, `${show(v)} has a zone index ('%…'); write the address without it`);
}

/** The VIP: a unicast host address on a real subnet. */
function checkVip(field: string, v: unknown): Cidr {
  checkNoZone(field, v);
  const c = checkCidr(field, v, true);
  const ex = example(c.family, '192.0.2.1/24', '2001:db8::1/64');
  if (c.prefix === 0) fail(field, `a /0 prefix makes every address on-link; give the VIP's real subnet, e.g. ${ex}`);
  const special = specialAddress(c.address, c.family);
  if (special) fail(field, `${c.address} is ${special}, not an address clients can reach; use a unicast address such as ${ex}`);
  const net = specialRange(c);
  if (net) fail(field, `the VIP's subnet ${networkOf(c)} overlaps ${net}; use a longer prefix, e.g. ${ex}`);
  const role = hostRole(c);
  if (role === 'network') fail(field, `${c.address} is the ${c.family === 4 ? 'network' : 'subnet-router anycast'} address of ${networkOf(c)}; use a host address such as ${ex}`);
  if (role === 'broadcast') fail(field, `${c.address} is the broadcast address of ${networkOf(c)}; use a host address such as 192.0.2.1/24`);
  return c;
}

/** A node network: an ordinary unicast network, not all of the address space. */
function checkNodeNetwork(field: string, v: unknown): Cidr {
  checkNoZone(field, v);
  const c = checkCidr(field, v, true);
  const ex = example(c.family, DEFAULT_NODE_NETWORK, DEFAULT_NODE_NETWORK6);
  if (c.prefix === 0) fail(field, `a /0 network is every address; give a network of its own for the nodes, e.g. ${ex}`);
  const special = specialRange(c);
  if (special) fail(field, `${networkOf(c)} overlaps ${special}; give a unicast network such as ${ex}`);
  return c;
}

function checkUplinkIfname(field: string, v: unknown): string {
  const name = checkIfname(field, v);
  if (name === 'lo') fail(field, "'lo' is the loopback interface: no client comes in on it; give the interface clients reach this host on, e.g. eth0");
  return name;
}

/** One of the nodes' default gateways: a router on its VIP's subnet. */
function checkGateway(field: string, g: string, vips: Cidr[]): { address: string; family: 4 | 6 } {
  checkNoZone(field, g);
  if (g.includes('/') && isIP(g.split('/')[0])) fail(field, `${show(g)} has a prefix; give the router's address alone, e.g. ${g.split('/')[0]}`);
  const ip = checkIp(field, g);
  const vip = vips.find((x) => x.family === ip.family);
  if (!vip) fail(field, `${ip.address} is IPv${ip.family} but the VIP has no IPv${ip.family} address; leave it out or add an IPv${ip.family} VIP`);
  const router = example(ip.family, '192.0.2.254', '2001:db8::fffe');
  const special = specialAddress(ip.address, ip.family);
  if (special) fail(field, `${ip.address} is ${special}; give the address of a router on the VIP's subnet ${networkOf(vip)}, e.g. ${router}`);
  if (ip.address === vip.address || cidrContains({ ...vip, prefix: ip.family === 4 ? 32 : 128 }, ip.address))
    fail(field, `${ip.address} is the VIP itself: the nodes would route to themselves; give the address of a router on ${networkOf(vip)}, e.g. ${router}`);
  if (!cidrContains(vip, ip.address))
    fail(field, `${ip.address} is outside the VIP's subnet ${networkOf(vip)}, so the nodes cannot reach it (the kernel says ENETUNREACH); give a router on that subnet, e.g. ${router}, or widen the VIP's prefix`);
  const role = hostRole({ ...vip, address: ip.address });
  if (role) fail(field, `${ip.address} is the ${role === 'network' ? (ip.family === 4 ? 'network' : 'subnet-router anycast') : 'broadcast'} address of ${networkOf(vip)}, not a router; give a router's address, e.g. ${router}`);
  return ip;
}

/** Each item of a one-or-list field checked by `check`; the list, or undefined if any item was refused. */
function eachItem<T>(out: Problem[], field: string, values: string[], check: (field: string, v: string) => T): T[] | undefined {
  const items = values.map((v, i) => collect(out, () => check(itemField(field, i, values.length), v)));
  return items.every((x) => x !== undefined) ? (items as T[]) : undefined;
}

export interface ValidateOptions {
  /**
   * The spec comes from a config file: only the data form is allowed (a service with functions,
   * a health check or sysctls is refused as unknown fields). Default false: a spec written in code.
   */
  data?: boolean;
}

/**
 * Checks a spec, the structure first (the schema) and then the rules between fields, and fills in
 * defaults. Returns every problem found, in the order of the spec's fields (a check that depends on
 * a field with a problem is skipped), and the resolved spec when there is none.
 */
export function validateSpec(input: unknown, o: ValidateOptions = {}): { problems: Problem[]; resolved?: ResolvedSpec } {
  let spec: unknown;
  try {
    spec = ownData(input);
  } catch (e) {
    return { problems: [{ field: 'spec', message: `could not be read (${show(String((e as Error)?.message ?? e))}); give plain data: objects, arrays, strings, numbers` }] };
  }
  const structural = structuralProblems(ClusterSpecSchema, spec, '', { runtime: !o.data });
  if (structural.some((p) => p.field === 'spec')) return { problems: structural };
  const s = spec as ClusterSpec;
  const head = (f: string) => f.split(/[.[]/)[0];
  const known = new Set<string>(Object.keys(ClusterSpecSchema.properties));
  // Unknown top-level keys first; then, field by field, its structural problems, then its own checks.
  const out: Problem[] = structural.filter((p) => !known.has(head(p.field)));
  const broken = new Set<string>();
  const step = (key: keyof ClusterSpecData, check?: () => void) => {
    const mine = key === 'service' ? [] : structural.filter((p) => head(p.field) === key);
    if (mine.length) {
      out.push(...mine);
      broken.add(key);
    } else if (check) {
      const before = out.length;
      check();
      if (out.length > before) broken.add(key);
    }
  };

  step('$schema');
  let name: string | undefined;
  step('name', () => (name = s.name));
  let nodes: number | undefined;
  step('nodes', () => (nodes = s.nodes ?? collect(out, () => checkInt('nodes', availableParallelism(), 1, MAX_NODES))));

  let vips: Cidr[] | undefined;
  step('vip', () => {
    const items = eachItem(out, 'vip', list(s.vip), checkVip);
    if (items) vips = collect(out, () => checkFamilies('vip', items));
  });

  let ports: PortSpec[] | undefined;
  step('ports', () => {
    const seen = new Set<string>();
    (s.ports ?? []).forEach((p, i) => {
      const key = `${p.protocol}/${p.port}`;
      if (seen.has(key)) out.push({ field: `ports[${i}]`, message: `${key} is listed twice` });
      seen.add(key);
    });
    ports = (s.ports ?? []).map((p) => ({ protocol: p.protocol, port: p.port }));
  });

  const backend = s.backend ?? DEFAULT_BACKEND;
  // The iptables backend can only flood (steering needs the bridge-level hash): its default mode.
  const mode = s.mode ?? (backend === 'iptables' ? 'flood' : DEFAULT_MODE);
  step('mode', () => {
    if (backend === 'iptables' && mode === 'steer')
      out.push({ field: 'mode', message: "'steer' needs the hash on the bridge, which only backend 'nftables' has; use mode 'flood' with backend 'iptables' (its default), or backend 'nftables'" });
  });
  const hash = s.hash ?? DEFAULT_HASH;
  step('hash', () => {
    if (hash !== 'sourceip' && ports?.length === 0)
      out.push({ field: 'hash', message: `'${hash}' hashes on ports, so list the services in 'ports' (traffic without ports, such as ICMP, cannot be hashed on them)` });
  });

  step('backend', () => {
    if (backend !== 'iptables') return;
    for (const [i, v] of (vips ?? []).entries())
      if (v.family === 6)
        out.push({
          field: itemField('vip', i, vips!.length),
          message: `${v.address} is IPv6: backend 'iptables' is IPv4 only (CLUSTERIP cannot do IPv6, and the library drives no ip6tables); use backend 'nftables' for an IPv6 VIP`,
        });
  });
  const variant = s.iptables?.variant ?? DEFAULT_IPTABLES_VARIANT;
  step('iptables', () => {
    if (s.iptables !== undefined && backend !== 'iptables') return void out.push({ field: 'iptables', message: "applies only with backend 'iptables'; set backend: 'iptables' or leave iptables out" });
    if (backend === 'iptables' && variant === 'xt_cluster' && hash !== 'sourceip')
      out.push({ field: 'hash', message: `'${hash}': the xt_cluster match hashes the source address only; use hash 'sourceip', or iptables.variant 'clusterip' (kernels up to 6.2)` });
  });
  /** With backend 'iptables', buckets are the target's node numbers: at most 16 (CLUSTERIP; 'auto' may pick it) or 32 (xt_cluster). */
  const maxBuckets = backend !== 'iptables' ? MAX_BUCKETS : variant === 'xt_cluster' ? XT_CLUSTER_MAX_NODES : CLUSTERIP_MAX_NODES;
  const why =
    backend !== 'iptables'
      ? ''
      : variant === 'xt_cluster'
        ? ` (xt_cluster's node mask has ${XT_CLUSTER_MAX_NODES} bits)`
        : ` (CLUSTERIP has ${CLUSTERIP_MAX_NODES} node numbers${variant === 'auto' ? "; iptables.variant 'xt_cluster' allows 32" : ''})`;
  let buckets: number | undefined;
  step('buckets', () => {
    if (nodes === undefined) return;
    buckets = s.buckets ?? Math.max(backend === 'iptables' ? maxBuckets : DEFAULT_BUCKETS, nodes);
    if (buckets < nodes || buckets > maxBuckets)
      out.push({
        field: s.buckets === undefined ? 'nodes' : 'buckets',
        message:
          s.buckets === undefined
            ? `${nodes} nodes need ${nodes} buckets, but backend 'iptables' has at most ${maxBuckets}${why}; use fewer nodes or backend 'nftables'`
            : `must be an integer from nodes (${nodes}) to ${maxBuckets}${why}, ${got(buckets, 'integer')}`,
      });
  });
  let seed: number | undefined;
  step('seed', () => (seed = s.seed ?? (name === undefined ? undefined : seedFromName(name))));

  let hostNetns: string | undefined;
  step('hostNetns', () => (hostNetns = s.hostNetns === undefined ? undefined : collect(out, () => checkNetnsName('hostNetns', s.hostNetns))));

  let uplink: ResolvedSpec['uplink'] | undefined;
  step('uplink', () => {
    const u = s.uplink as { bridge?: string; routed?: { via: string } };
    uplink =
      u.bridge !== undefined
        ? collect(out, () => ({ kind: 'bridge' as const, ifname: checkUplinkIfname('uplink.bridge', u.bridge) }))
        : collect(out, () => ({ kind: 'routed' as const, via: checkUplinkIfname('uplink.routed.via', u.routed!.via) }));
  });

  let nodeNetworks: Cidr[] | undefined;
  step('nodeNetwork', () => {
    const given = s.nodeNetwork !== undefined;
    const netList = given ? list(s.nodeNetwork) : [DEFAULT_NODE_NETWORK, ...(vips?.some((v) => v.family === 6) ? [DEFAULT_NODE_NETWORK6] : [])];
    const items = eachItem(out, 'nodeNetwork', netList, checkNodeNetwork);
    const nets = items && collect(out, () => checkFamilies('nodeNetwork', items));
    if (!nets || !vips) return;
    const before = out.length;
    for (const v of vips)
      if (!nets.some((n) => n.family === v.family))
        out.push({ field: 'nodeNetwork', message: `the VIP ${v.address} is IPv${v.family}: add an IPv${v.family} network for the nodes' unique addresses` });
    for (const [i, n] of nets.entries()) {
      const field = itemField('nodeNetwork', i, netList.length);
      const hostBits = (n.family === 4 ? 32 : 128) - n.prefix;
      // Node k is host k+1; a routed uplink's gateway takes the last one.
      if (nodes !== undefined && hostBits < 31 && 2 ** hostBits - 2 < nodes + 1)
        out.push({ field, message: `/${n.prefix} has room for ${2 ** hostBits - 2} hosts; ${nodes} nodes and a gateway need a larger network` });
      const what = given ? networkOf(n) : `the default node network ${cidrText(n)}`;
      for (const [j, v] of vips.entries()) {
        if (cidrContains(n, v.address))
          out.push({
            field: itemField('vip', j, vips.length),
            message: `${v.address} lies inside ${what}, where the nodes' own addresses are; give the VIP an address outside it, or the nodes another nodeNetwork`,
          });
        else if (cidrOverlap(n, v))
          out.push({
            field: given ? field : 'vip',
            message: `${what} overlaps the VIP's subnet ${networkOf(v)}: the nodes would have two routes to it; ${given ? 'choose a node network outside it' : 'set nodeNetwork to a network outside it'}, e.g. ${freeNetwork(v.family, vips)}`,
          });
      }
    }
    if (out.length === before) nodeNetworks = nets;
  });

  let gateways: string[] | undefined;
  step('gateway', () => {
    const gws = list(s.gateway);
    if (gws.length && uplink?.kind === 'routed') return void out.push({ field: 'gateway', message: "with a routed uplink the host is the nodes' gateway; leave gateway out" });
    if (!vips) return;
    const ips = eachItem(out, 'gateway', gws, (f, g) => checkGateway(f, g, vips!));
    gateways = ips && collect(out, () => checkFamilies('gateway', ips))?.map((g) => g.address);
  });

  // The service's definition checks its own structure too, so that one broken part (a
  // fingerprint) does not hide the checks of the others (the keepalive order, `extra`).
  let service: ServiceDefinition | undefined;
  const serviceStructure = structural.filter((p) => head(p.field) === 'service');
  step('service', () => {
    if (s.service === undefined) return;
    service = collect(out, () => checkServiceDefinition('service', s.service, { runtime: !o.data }));
    const check = (service as { [CLUSTER_CHECK]?: (facts: ClusterFacts) => void } | undefined)?.[CLUSTER_CHECK];
    if (typeof check === 'function' && nodes !== undefined && vips && ports && nodeNetworks) {
      const facts = { name, nodes, vips, ports, nodeNetworks };
      collect(out, () => check.call(service, facts));
    }
  });
  const failback = s.failback ?? DEFAULT_FAILBACK;
  step('failback');
  let announce: { bgp: ResolvedBgp } | undefined;
  step('announce', () => {
    if (s.announce === undefined || !vips) return;
    const bgp = collect(out, () => checkBgp('announce.bgp', s.announce!.bgp, vips!, nodeNetworks ?? []));
    if (bgp) announce = { bgp };
  });
  let metrics: { listen: MetricsListen } | undefined;
  step('metrics', () => {
    if (s.metrics !== undefined) metrics = collect(out, () => checkMetrics('metrics', s.metrics));
  });

  // Nothing the structural pass found may go unreported, even for a field without a step above.
  for (const p of structural) if (!out.includes(p) && !serviceStructure.includes(p)) out.push(p);
  if (out.length) return { problems: out };
  return {
    problems: [],
    resolved: { name: name!, nodes: nodes!, vips: vips!, ports: ports!, mode, backend, ...(backend === 'iptables' ? { iptables: { variant } } : {}), hash, buckets: buckets!, seed: seed!, hostNetns, gateways: gateways ?? [], uplink: uplink!, nodeNetworks: nodeNetworks!, service, failback, ...(metrics ? { metrics } : {}), ...(announce ? { announce } : {}) },
  };
}

function checkInt(field: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) fail(field, `must be an integer from ${min} to ${max}, ${got(v, 'integer')}`);
  return v;
}

/**
 * Checks a spec and fills in defaults. Throws an {@link InvalidArgumentError} whose message and
 * `field` are the first problem's, and whose `problems` lists every problem found.
 */
/**
 * The spec's own data, read once: plain objects become null-prototype copies of their own
 * enumerable properties (nothing inherited — a polluted Object.prototype — is read, and a getter
 * runs once, here), arrays become dense copies (holes are undefined). Code is kept as it is: a
 * class instance, or an object with functions or symbols (a service definition).
 */
function ownData(v: unknown, depth = 0): unknown {
  if (depth > 64) throw new Error('nested more than 64 levels deep');
  if (Array.isArray(v)) return Array.from({ length: v.length }, (_, i) => ownData(v[i], depth + 1));
  if (typeof v !== 'object' || v === null) return v;
  const proto = Object.getPrototypeOf(v) as { constructor?: unknown } | null;
  // A class instance (a Map, a Date, someone's service object) is kept; any other object is data.
  if (proto !== null && proto !== Object.prototype && typeof proto.constructor === 'function' && proto.constructor !== Object) return v;
  // Code, not data (a service definition such as openvpn() returns): kept whole.
  if (Object.getOwnPropertySymbols(v).length || Object.values(v).some((x) => typeof x === 'function')) return v;
  const out = Object.create(null) as Record<string, unknown>;
  for (const k of Object.keys(v)) out[k] = ownData((v as Record<string, unknown>)[k], depth + 1);
  return out;
}

export function resolveSpec(spec: ClusterSpec): ResolvedSpec {
  const { problems, resolved } = validateSpec(spec);
  if (!resolved) throw invalid(problems);
  return resolved;
}
