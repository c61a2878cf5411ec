/**
 * The cluster spec: what users write, its defaults, and its validation. Every check names the
 * field (`ports[1].port`) and says what to fix; nothing is created before the spec is valid.
 * @module
 */
import { availableParallelism } from 'node:os';
import { InvalidArgumentError } from './errors.js';
import { checkClusterName, MAX_NAME_BYTES } from './names.js';
import { HASH_MODES, seedFromName, type HashMode } from './jhash.js';
import { checkCidr, checkIfname, checkIp, checkNetnsName, type Cidr } from './validate.js';
import { checkServiceDefinition, type ServiceDefinition } from './service.js';
import { openvpn, type OpenvpnServiceOptions } from './openvpn/service.js';

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
}

/** Every field a {@link ClusterSpec} may have (config files and the JSON Schema are checked against it). */
export const SPEC_FIELDS = ['name', 'nodes', 'vip', 'ports', 'mode', 'hash', 'buckets', 'seed', 'hostNetns', 'gateway', 'uplink', 'nodeNetwork', 'service', 'failback'] as const;

export { MAX_NAME_BYTES };
export const MAX_NODES = 256;
export const MAX_BUCKETS = 4096;

function fail(field: string, msg: string): never {
  throw new InvalidArgumentError(field, msg);
}

function list<T>(v: T | T[] | undefined): T[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

function checkFamilies(field: string, cidrs: Cidr[]): void {
  const fams = cidrs.map((c) => c.family);
  if (new Set(fams).size !== fams.length) fail(field, 'give at most one IPv4 and one IPv6 value');
}

/** Checks a spec and fills in defaults. Throws {@link InvalidArgumentError} naming the field. */
export function resolveSpec(spec: ClusterSpec): ResolvedSpec {
  if (typeof spec !== 'object' || spec === null) fail('spec', 'expected an object');
  const known = new Set<string>(SPEC_FIELDS);
  for (const k of Object.keys(spec)) if (!known.has(k)) fail(k, `unknown field; known fields are ${[...known].join(', ')}`);

  const name = checkClusterName('name', spec.name);

  const nodes = spec.nodes ?? availableParallelism();
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > MAX_NODES) fail('nodes', `must be an integer from 1 to ${MAX_NODES}, got ${String(nodes)}`);

  const vipList = list(spec.vip);
  if (vipList.length === 0) fail('vip', "give the shared address with its prefix, e.g. '192.0.2.1/24'");
  const vips = vipList.map((v, i) => checkCidr(vipList.length > 1 ? `vip[${i}]` : 'vip', v, true));
  checkFamilies('vip', vips);

  const ports = spec.ports ?? [];
  if (!Array.isArray(ports)) fail('ports', "expected an array such as [{ protocol: 'udp', port: 1194 }]");
  const seen = new Set<string>();
  ports.forEach((p, i) => {
    if (typeof p !== 'object' || p === null) fail(`ports[${i}]`, "expected { protocol: 'udp' | 'tcp', port }");
    if (p.protocol !== 'udp' && p.protocol !== 'tcp') fail(`ports[${i}].protocol`, `must be 'udp' or 'tcp', got '${String(p.protocol)}'`);
    if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) fail(`ports[${i}].port`, `must be 1 to 65535, got ${String(p.port)}`);
    const key = `${p.protocol}/${p.port}`;
    if (seen.has(key)) fail(`ports[${i}]`, `${key} is listed twice`);
    seen.add(key);
  });

  const mode = spec.mode ?? 'steer';
  if (mode !== 'steer' && mode !== 'flood') fail('mode', `must be 'steer' or 'flood', got '${String(mode)}'`);
  const hash = spec.hash ?? 'sourceip';
  if (!HASH_MODES.includes(hash)) fail('hash', `must be one of ${HASH_MODES.join(', ')}, got '${String(hash)}'`);
  if (hash !== 'sourceip' && ports.length === 0)
    fail('hash', `'${hash}' hashes on ports, so list the services in 'ports' (traffic without ports, such as ICMP, cannot be hashed on them)`);

  const buckets = spec.buckets ?? Math.max(64, nodes);
  if (!Number.isInteger(buckets) || buckets < nodes || buckets > MAX_BUCKETS)
    fail('buckets', `must be an integer from nodes (${nodes}) to ${MAX_BUCKETS}, got ${String(buckets)}`);
  const seed = spec.seed ?? seedFromName(name);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) fail('seed', 'must be an integer from 0 to 4294967295');

  if (spec.hostNetns !== undefined) checkNetnsName('hostNetns', spec.hostNetns);
  const gateways = list(spec.gateway).map((g, i, a) => checkIp(a.length > 1 ? `gateway[${i}]` : 'gateway', g).address);

  const up = spec.uplink as Record<string, unknown> | undefined;
  let uplink: ResolvedSpec['uplink'];
  if (typeof up !== 'object' || up === null) fail('uplink', "give { bridge: '<ifname>' } or { routed: { via: '<ifname>' } }");
  if ('bridge' in up && !('routed' in up)) {
    uplink = { kind: 'bridge', ifname: checkIfname('uplink.bridge', up.bridge) };
  } else if ('routed' in up && !('bridge' in up)) {
    const r = up.routed as { via?: unknown } | undefined;
    if (typeof r !== 'object' || r === null) fail('uplink.routed', "give { via: '<ifname>' }: the host interface clients come in on");
    uplink = { kind: 'routed', via: checkIfname('uplink.routed.via', r.via) };
  } else {
    fail('uplink', "give exactly one of { bridge: '<ifname>' } or { routed: { via: '<ifname>' } }");
  }

  const netList = spec.nodeNetwork === undefined ? ['198.18.0.0/24', ...(vips.some((v) => v.family === 6) ? ['fd00:198:18::/64'] : [])] : list(spec.nodeNetwork);
  const nodeNetworks = netList.map((n, i) => checkCidr(netList.length > 1 ? `nodeNetwork[${i}]` : 'nodeNetwork', n, true));
  checkFamilies('nodeNetwork', nodeNetworks);
  for (const v of vips) {
    if (!nodeNetworks.some((n) => n.family === v.family))
      fail('nodeNetwork', `the VIP ${v.address} is IPv${v.family}: add an IPv${v.family} network for the nodes' unique addresses`);
  }
  for (const [i, n] of nodeNetworks.entries()) {
    const hostBits = (n.family === 4 ? 32 : 128) - n.prefix;
    // Node k is host k+1; a routed uplink's gateway takes the last one.
    if (hostBits < 31 && 2 ** hostBits - 2 < nodes + 1)
      fail(netList.length > 1 ? `nodeNetwork[${i}]` : 'nodeNetwork', `/${n.prefix} has room for ${2 ** hostBits - 2} hosts; ${nodes} nodes and a gateway need a larger network`);
  }
  let service: ServiceDefinition | undefined;
  if (spec.service !== undefined) {
    service = 'openvpn' in spec.service && !('command' in spec.service) ? openvpn(spec.service.openvpn) : checkServiceDefinition('service', spec.service as ServiceDefinition);
  }
  const failback = spec.failback ?? 'auto';
  if (failback !== 'auto' && failback !== 'manual') fail('failback', `must be 'auto' or 'manual', got '${String(failback)}'`);
  return { name, nodes, vips, ports, mode, hash, buckets, seed, hostNetns: spec.hostNetns, gateways, uplink, nodeNetworks, service, failback };
}
