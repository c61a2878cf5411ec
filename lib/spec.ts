/**
 * The cluster spec: what users write, its defaults, and its validation. Every check names the
 * field (`ports[1].port`) and says what to fix; nothing is created before the spec is valid.
 * @module
 */
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { InvalidArgumentError } from './errors.js';
import { cidrContains, cidrOverlap, hostRole, networkOf, specialAddress, specialRange } from './ipmath.js';
import { checkClusterName, MAX_NAME_BYTES } from './names.js';
import { HASH_MODES, seedFromName, type HashMode } from './jhash.js';
import { checkChoice, checkInteger, checkList, checkObject, got, show } from './shape.js';
import { checkCidr, checkIfname, checkIp, checkNetnsName, type Cidr } from './validate.js';
import { checkServiceDefinition, type ServiceDefinition } from './service.js';
import { CLUSTER_CHECK, openvpn, type OpenvpnServiceOptions } from './openvpn/service.js';
import { checkMetrics, type MetricsListen } from './metrics.js';

export type ClusterMode = 'steer' | 'flood';

export interface PortSpec {
  protocol: 'udp' | 'tcp';
  port: number;
}

/** How the outside reaches the cluster. */
export type UplinkSpec =
  /** Enslave this existing interface (of the host namespace) to the cluster's bridge: the classic setup. */
  | { bridge: string }
  /**
   * The host keeps its addresses and routes the VIP into the bridge (safe over SSH). `via` is the
   * host interface clients come in on (it must exist); the host becomes the nodes' gateway.
   */
  | { routed: { via: string } };

export interface ClusterSpec {
  /** Short name, `[a-z][a-z0-9-]*`, at most 10 bytes: it prefixes every object the cluster creates. */
  name: string;
  /** Number of nodes, 1 to 256. Default: the number of CPUs. */
  nodes?: number;
  /** The shared virtual IP with its prefix (`192.0.2.1/24`), or one IPv4 and one IPv6 for dual stack. */
  vip: string | string[];
  /** Services on the VIP. Traffic to other ports of the VIP is dropped. Default: every port. */
  ports?: PortSpec[];
  /** `steer` (default): the bridge hashes and delivers to the owner only. `flood`: every node sees every frame and keeps its own. */
  mode?: ClusterMode;
  /** Flow key. Default `sourceip`, which is safe with IP fragments. */
  hash?: HashMode;
  /** Hash buckets, at least `nodes`, at most 4096. Default 64. */
  buckets?: number;
  /** jhash seed. Default: derived from the name (never random, so every rule agrees). */
  seed?: number;
  /** Namespace that holds the bridge. Default: the caller's own. */
  hostNetns?: string;
  /** The nodes' default gateway(s). With a routed uplink the host is the gateway and this is not needed. */
  gateway?: string | string[];
  uplink: UplinkSpec;
  /** Networks for the nodes' unique addresses (node k gets host number k+1). Default `198.18.0.0/24`; add an IPv6 one for dual stack. */
  nodeNetwork?: string | string[];
  /**
   * What runs in every node once `cluster.start()` is called: a command (`{ command: [...] }`,
   * placeholders {node} {netns} {address} {dir} {vip} {cluster}), `{ openvpn: {...} }`, or a
   * definition such as `openvpn({...})` returns.
   */
  service?: ServiceDefinition | { openvpn: OpenvpnServiceOptions };
  /** When a node's service is back after a failure: take its buckets back at once (`auto`, default) or on request (`manual`). */
  failback?: 'auto' | 'manual';
  /** `netns-cluster up` only: serve Prometheus metrics over HTTP at `listen` (`'127.0.0.1:9464'`, `'[::1]:9464'`). The library ignores it. */
  metrics?: { listen: string };
}

/** The spec with every default filled in and every value checked. */
export interface ResolvedSpec {
  name: string;
  nodes: number;
  vips: Cidr[];
  ports: PortSpec[];
  mode: ClusterMode;
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
}

/** Every field a {@link ClusterSpec} may have (config files and the JSON Schema are checked against it). */
export const SPEC_FIELDS = ['name', 'nodes', 'vip', 'ports', 'mode', 'hash', 'buckets', 'seed', 'hostNetns', 'gateway', 'uplink', 'nodeNetwork', 'service', 'failback', 'metrics'] as const;

export { MAX_NAME_BYTES };
export const MAX_NODES = 256;
export const MAX_BUCKETS = 4096;
/**
 * The most `ports` a spec may list. Every port is one rule per VIP in the host, and in flood mode
 * two more per VIP in every node, all sent to the kernel in one nftables batch: measured on
 * Linux 6.x, a flood-mode dual-stack cluster hashing on source and destination ports fails with
 * EMSGSIZE from about 700 ports. 256 leaves a wide margin.
 */
export const MAX_PORTS = 256;
/** The node network used when the spec gives none (IPv4; IPv6 adds {@link DEFAULT_NODE_NETWORK6}). */
export const DEFAULT_NODE_NETWORK = '198.18.0.0/24';
export const DEFAULT_NODE_NETWORK6 = 'fd00:198:18::/64';

/** Facts about the cluster a service definition may check itself against (see openvpn()). */
export interface ClusterFacts {
  nodes: number;
  vips: Cidr[];
  ports: PortSpec[];
  nodeNetworks: Cidr[];
}

function fail(field: string, msg: string): never {
  throw new InvalidArgumentError(field, msg);
}

function checkFamilies(field: string, cidrs: { family: 4 | 6 }[]): void {
  const fams = cidrs.map((c) => c.family);
  if (new Set(fams).size !== fams.length) fail(field, 'give at most one IPv4 and one IPv6 value');
}

/** The value, or the default when it is left out (undefined; null is a value, and refused). */
const or = <T>(v: unknown, d: T): unknown => (v === undefined ? d : v);
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
  if (role === 'network')
    fail(field, `${c.address} is the ${c.family === 4 ? 'network' : 'subnet-router anycast'} address of ${networkOf(c)}; use a host address such as ${example(c.family, '192.0.2.1/24', '2001:db8::1/64')}`);
  if (role === 'broadcast') fail(field, `${c.address} is the broadcast address of ${networkOf(c)}; use a host address such as 192.0.2.1/24`);
  return c;
}

/** A node network: an ordinary unicast network, not all of the address space. */
function checkNodeNetwork(field: string, v: unknown): Cidr {
  checkNoZone(field, v);
  const c = checkCidr(field, v, true);
  const ex = example(c.family, '198.18.0.0/24', 'fd00:198:18::/64');
  if (c.prefix === 0) fail(field, `a /0 network is every address; give a network of its own for the nodes, e.g. ${ex}`);
  const special = specialRange(c);
  if (special) fail(field, `${networkOf(c)} overlaps ${special}; give a unicast network such as ${ex}`);
  return c;
}

const NUMBER_FIELDS = { nodes: [1, MAX_NODES], seed: [0, 0xffffffff] } as const;

/** Checks a spec and fills in defaults. Throws {@link InvalidArgumentError} naming the field. */
export function resolveSpec(spec: ClusterSpec): ResolvedSpec {
  const s = checkObject('', spec, SPEC_FIELDS, "a cluster spec such as { name: 'vpn', vip: '192.0.2.1/24', uplink: { bridge: 'eth1' } }");

  const name = checkClusterName('name', s.name);

  const nodes = checkInteger('nodes', or(s.nodes, availableParallelism()), ...NUMBER_FIELDS.nodes);

  if (s.vip === undefined) fail('vip', "give the shared address with its prefix, e.g. '192.0.2.1/24'");
  const vipList = checkList('vip', s.vip, 2, "one IPv4 and one IPv6 address, e.g. ['192.0.2.1/24', '2001:db8::1/64']");
  if (vipList.length === 0) fail('vip', "give the shared address with its prefix, e.g. '192.0.2.1/24'");
  const vips = vipList.map((v, i) => checkVip(itemField('vip', i, vipList.length), v));
  checkFamilies('vip', vips);

  const ports = checkPorts(s.ports);

  const mode = checkChoice('mode', or(s.mode, 'steer'), ['steer', 'flood'] as const);
  const hash = checkChoice('hash', or(s.hash, 'sourceip'), HASH_MODES);
  if (hash !== 'sourceip' && ports.length === 0)
    fail('hash', `'${hash}' hashes on ports, so list the services in 'ports' (traffic without ports, such as ICMP, cannot be hashed on them)`);

  const buckets = or(s.buckets, Math.max(64, nodes));
  if (typeof buckets !== 'number' || !Number.isInteger(buckets) || buckets < nodes || buckets > MAX_BUCKETS)
    fail('buckets', `must be an integer from nodes (${nodes}) to ${MAX_BUCKETS}, ${got(buckets, 'integer')}`);
  const seed = checkInteger('seed', or(s.seed, seedFromName(name)), ...NUMBER_FIELDS.seed);

  const hostNetns = s.hostNetns === undefined ? undefined : checkNetnsName('hostNetns', s.hostNetns);

  const uplink = checkUplink(s.uplink);

  const netList =
    s.nodeNetwork === undefined
      ? [DEFAULT_NODE_NETWORK, ...(vips.some((v) => v.family === 6) ? [DEFAULT_NODE_NETWORK6] : [])]
      : checkList('nodeNetwork', s.nodeNetwork, 2, "one IPv4 and one IPv6 network, e.g. ['198.18.0.0/24', 'fd00:198:18::/64']");
  const nodeNetworks = netList.map((n, i) => checkNodeNetwork(itemField('nodeNetwork', i, netList.length), n));
  checkFamilies('nodeNetwork', nodeNetworks);
  for (const v of vips) {
    if (!nodeNetworks.some((n) => n.family === v.family))
      fail('nodeNetwork', `the VIP ${v.address} is IPv${v.family}: add an IPv${v.family} network for the nodes' unique addresses`);
  }
  for (const [i, n] of nodeNetworks.entries()) {
    const field = itemField('nodeNetwork', i, netList.length);
    const hostBits = (n.family === 4 ? 32 : 128) - n.prefix;
    // Node k is host k+1; a routed uplink's gateway takes the last one.
    if (hostBits < 31 && 2 ** hostBits - 2 < nodes + 1)
      fail(field, `/${n.prefix} has room for ${2 ** hostBits - 2} hosts; ${nodes} nodes and a gateway need a larger network`);
    const given = s.nodeNetwork === undefined ? `the default node network ${cidrText(n)}` : networkOf(n);
    for (const [j, v] of vips.entries()) {
      if (cidrContains(n, v.address))
        fail(itemField('vip', j, vips.length), `${v.address} lies inside ${given}, where the nodes' own addresses are; give the VIP an address outside it, or the nodes another nodeNetwork`);
      if (cidrOverlap(n, v))
        fail(
          s.nodeNetwork === undefined ? 'vip' : field,
          `${given} overlaps the VIP's subnet ${networkOf(v)}: the nodes would have two routes to it; ${s.nodeNetwork === undefined ? 'set nodeNetwork to a network outside it' : 'choose a node network outside it'}, e.g. ${freeNetwork(v.family, vips)}`,
        );
    }
  }

  const gateways = checkGateways(s.gateway, vips, uplink);

  let service: ServiceDefinition | undefined;
  if (s.service !== undefined) {
    const sv = s.service;
    if (typeof sv !== 'object' || sv === null || Array.isArray(sv))
      fail('service', `expected { command: ['program', 'arg', …] } or { openvpn: { … } }, ${got(sv)}`);
    if ('openvpn' in sv) {
      if ('command' in sv) fail('service', "give exactly one of { command: [...] } or { openvpn: { … } }, not both");
      const other = Object.keys(sv).find((k) => k !== 'openvpn');
      if (other !== undefined)
        fail(`service.${other.length > 60 ? `${other.slice(0, 59)}…` : other}`, "unknown field: an OpenVPN service is { openvpn: { … } } alone; its options (restart, stopTimeoutMs, …) go inside 'openvpn'");
      service = openvpn((sv as { openvpn: OpenvpnServiceOptions }).openvpn);
    } else {
      service = checkServiceDefinition('service', sv as ServiceDefinition);
    }
    const check = (service as { [CLUSTER_CHECK]?: (facts: ClusterFacts) => void })[CLUSTER_CHECK];
    if (typeof check === 'function') check.call(service, { nodes, vips, ports, nodeNetworks });
  }
  const failback = checkChoice('failback', or(s.failback, 'auto'), ['auto', 'manual'] as const);
  const metrics = s.metrics === undefined ? undefined : checkMetrics('metrics', s.metrics);
  return { name, nodes, vips, ports, mode, hash, buckets, seed, hostNetns, gateways, uplink, nodeNetworks, service, failback, ...(metrics ? { metrics } : {}) };
}

function checkPorts(v: unknown): PortSpec[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) fail('ports', `expected a list such as [{ protocol: 'udp', port: 1194 }], ${got(v)}`);
  if (v.length > MAX_PORTS)
    fail('ports', `lists ${v.length} ports; at most ${MAX_PORTS} (each is a rule per VIP, and the kernel refuses one nftables batch of many hundreds); leave ports out to accept every port`);
  const seen = new Set<string>();
  return v.map((item, i) => {
    const p = checkObject(`ports[${i}]`, item, ['protocol', 'port'], "{ protocol: 'udp' | 'tcp', port: 1 to 65535 }");
    if (p.protocol === undefined) fail(`ports[${i}].protocol`, "is missing: give 'udp' or 'tcp'");
    const protocol = checkChoice(`ports[${i}].protocol`, p.protocol, ['udp', 'tcp'] as const);
    if (p.port === undefined) fail(`ports[${i}].port`, 'is missing: give a port from 1 to 65535');
    if (typeof p.port !== 'number' || !Number.isInteger(p.port) || p.port < 1 || p.port > 65535) fail(`ports[${i}].port`, `must be 1 to 65535, ${got(p.port, 'integer')}`);
    const key = `${protocol}/${p.port}`;
    if (seen.has(key)) fail(`ports[${i}]`, `${key} is listed twice`);
    seen.add(key);
    return { protocol, port: p.port };
  });
}

function checkUplinkIfname(field: string, v: unknown): string {
  const name = checkIfname(field, v);
  if (name === 'lo') fail(field, "'lo' is the loopback interface: no client comes in on it; give the interface clients reach this host on, e.g. eth0");
  return name;
}

function checkUplink(v: unknown): ResolvedSpec['uplink'] {
  const choices = "{ bridge: '<ifname>' } or { routed: { via: '<ifname>' } }";
  if (v === undefined) fail('uplink', `give ${choices}`);
  const up = checkObject('uplink', v, ['bridge', 'routed'], choices);
  const hasBridge = up.bridge !== undefined;
  const hasRouted = up.routed !== undefined;
  if (hasBridge === hasRouted) fail('uplink', `give exactly one of ${choices}`);
  if (hasBridge) return { kind: 'bridge', ifname: checkUplinkIfname('uplink.bridge', up.bridge) };
  const r = checkObject('uplink.routed', up.routed, ['via'], "{ via: '<ifname>' }: the host interface clients come in on");
  if (r.via === undefined) fail('uplink.routed.via', 'is missing: give the host interface clients come in on, e.g. eth0');
  return { kind: 'routed', via: checkUplinkIfname('uplink.routed.via', r.via) };
}

/** The nodes' default gateways: one per family, each a router on its VIP's subnet. */
function checkGateways(v: unknown, vips: Cidr[], uplink: ResolvedSpec['uplink']): string[] {
  const list = checkList('gateway', v, 2, "one IPv4 and one IPv6 router, e.g. ['192.0.2.254', '2001:db8::fffe']");
  if (list.length && uplink.kind === 'routed') fail('gateway', "with a routed uplink the host is the nodes' gateway; leave gateway out");
  const gws = list.map((g, i) => {
    const field = itemField('gateway', i, list.length);
    checkNoZone(field, g);
    if (typeof g === 'string' && g.includes('/') && isIP(g.split('/')[0]))
      fail(field, `${show(g)} has a prefix; give the router's address alone, e.g. ${g.split('/')[0]}`);
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
  });
  checkFamilies('gateway', gws);
  return gws.map((g) => g.address);
}
