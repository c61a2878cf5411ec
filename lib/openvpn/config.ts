/**
 * OpenVPN configuration text for cluster nodes and for test/demo clients. Pure: renders strings,
 * touches nothing. Every node's server config is the same except its client pool
 * (`server 10.8.K.0 255.255.255.0` for node K by default), as verified in DESIGN.md.
 * @module
 */
import { isIPv4 } from 'node:net';
import { InvalidArgumentError } from '../errors.js';
import { checkIfname, checkIp, checkUint } from '../validate.js';
import { checkFingerprint, type Identity } from './keys.js';

export type OpenvpnProtocol = 'udp' | 'tcp';

export interface PoolSpec {
  /** The first node's client network, e.g. `10.8.0.0`. Node K gets the K-th block after it. */
  base: string;
  /** Prefix length of each node's block. Default 24 (254 clients per node). */
  prefix?: number;
}

export interface ServerConfigOptions {
  /** The node's index K: selects the node's client pool. */
  index: number;
  /** The shared virtual IP the server listens on (`local`). */
  vip: string;
  /** Default 1194. */
  port?: number;
  /** Default `udp`. */
  protocol?: OpenvpnProtocol;
  /** Default `{ base: '10.8.0.0', prefix: 24 }`. */
  pool?: PoolSpec;
  /** The server's certificate and key (inlined into the config). */
  serverIdentity: Pick<Identity, 'certPem' | 'keyPem'>;
  /** The SHA-256 fingerprints of the client certificates the server accepts. At least one. */
  clientFingerprints: string[];
  /** Path of the management unix socket OpenVPN creates. */
  managementSocket: string;
  /** If set, only this user may connect to the management socket (`management-client-user`). */
  managementClientUser?: string;
  /** Path of the status file, rewritten every `statusInterval` seconds. */
  statusFile: string;
  /** Default 1 (seconds). */
  statusInterval?: number;
  /** Tunnel device: `tun` (the kernel picks tunN) or a fixed name such as `tun-vpn`. Default `tun`. */
  dev?: string;
  /** Data-channel offload. Default false: writes `disable-dco` (kernels without the ovpn module need it). */
  dco?: boolean;
  /** `keepalive <interval> <timeout>`. Default [2, 10]: a client finds a dead node in about 11 s. */
  keepalive?: [number, number];
  /** Default 3. */
  verb?: number;
  /**
   * The user's own directives, appended after the generated ones (OpenVPN lets a later directive
   * win). If it contains `{generated}`, it is a whole template instead and the generated
   * directives go there. Placeholders: {node} {netns} {address} {dir} {vip} {port} {pool}
   * {generated}.
   */
  extra?: string;
  /** Values for the `{netns}`, `{address}` (the node's unique address) and `{dir}` placeholders. */
  netns?: string;
  address?: string;
  dir?: string;
}

export interface NodePool {
  /** e.g. `10.8.3.0`. */
  network: string;
  /** e.g. `255.255.255.0`. */
  netmask: string;
  prefix: number;
  /** The server's own tunnel address (the pool's first host), e.g. `10.8.3.1`. */
  serverAddress: string;
}

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

function intToIpv4(v: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(v / 2 ** s) % 256).join('.');
}

/** Node K's client network: the K-th block of `2^(32-prefix)` addresses after `pool.base`. */
export function nodePool(index: number, pool: PoolSpec = { base: '10.8.0.0' }): NodePool {
  checkUint('index', index, 0, 0xffff);
  if (typeof pool !== 'object' || pool === null) throw new InvalidArgumentError('pool', "must be an object such as { base: '10.8.0.0' }");
  if (typeof pool.base !== 'string' || !isIPv4(pool.base))
    throw new InvalidArgumentError('pool.base', `'${String(pool.base)}' is not an IPv4 network address such as 10.8.0.0`);
  const prefix = checkUint('pool.prefix', pool.prefix ?? 24, 8, 29);
  const size = 2 ** (32 - prefix);
  const base = ipv4ToInt(pool.base);
  if (base % size !== 0)
    throw new InvalidArgumentError('pool.base', `${pool.base} is not aligned to a /${prefix} block; use ${intToIpv4(base - (base % size))}`);
  const network = base + index * size;
  if (network + size > 2 ** 32)
    throw new InvalidArgumentError('index', `node ${index}'s /${prefix} pool after ${pool.base} runs past 255.255.255.255; choose a lower pool.base`);
  return {
    network: intToIpv4(network),
    netmask: intToIpv4(2 ** 32 - size),
    prefix,
    serverAddress: intToIpv4(network + 1),
  };
}

function checkPath(field: string, p: unknown): string {
  if (typeof p !== 'string' || !p.startsWith('/'))
    throw new InvalidArgumentError(field, `'${String(p)}' must be an absolute path`);
  if (/[\s"'\\#;]/.test(p) || p.includes('\0'))
    throw new InvalidArgumentError(field, `'${p}' must not contain spaces, quotes, backslashes, '#' or ';' (OpenVPN config syntax)`);
  return p;
}

function checkPem(field: string, pem: unknown, label: RegExp): string {
  if (typeof pem !== 'string' || !label.test(pem))
    throw new InvalidArgumentError(field, 'must be a PEM block as generateIdentity() returns it');
  if (/<\/?[a-z-]+>/.test(pem)) throw new InvalidArgumentError(field, 'must not contain inline-file tags such as </cert>');
  return pem.trim();
}

function checkDev(field: string, dev: unknown): string {
  const name = checkIfname(field, dev);
  if (!name.startsWith('tun'))
    throw new InvalidArgumentError(field, `'${name}' must start with 'tun' (a routed tun device): 'tun' or a name such as tun-vpn`);
  return name;
}

/** `dev tun` lets the kernel pick tunN; any other name needs `dev-type tun`. */
function devLines(dev: string): string[] {
  return dev === 'tun' ? ['dev tun'] : [`dev ${dev}`, 'dev-type tun'];
}

function checkProtocol(field: string, p: unknown): OpenvpnProtocol {
  if (p !== 'udp' && p !== 'tcp') throw new InvalidArgumentError(field, `must be 'udp' or 'tcp', got ${String(p)}`);
  return p;
}

function inline(tag: string, body: string): string[] {
  return [`<${tag}>`, body, `</${tag}>`];
}

export const SERVER_PLACEHOLDERS = ['node', 'netns', 'address', 'dir', 'vip', 'port', 'pool', 'generated'] as const;

/** Replaces `{name}` placeholders; an unknown or unset placeholder is an error. */
function fillPlaceholders(field: string, text: string, values: Partial<Record<string, string>>): string {
  return text.replace(/\{([a-z]+)\}/g, (whole, name: string) => {
    if (!(SERVER_PLACEHOLDERS as readonly string[]).includes(name))
      throw new InvalidArgumentError(field, `unknown placeholder ${whole}; known: ${SERVER_PLACEHOLDERS.map((p) => `{${p}}`).join(' ')}`);
    const v = values[name];
    if (v === undefined) throw new InvalidArgumentError(field, `placeholder ${whole} is used but the '${name}' option is not set`);
    return v;
  });
}

/** Directives that would break supervision (the node must stay in the foreground, logging to stdout). */
const FORBIDDEN_EXTRA = ['daemon', 'log', 'log-append', 'syslog'];

function checkExtra(extra: unknown): string {
  if (typeof extra !== 'string') throw new InvalidArgumentError('extra', 'must be a string of OpenVPN directives');
  for (const line of extra.split('\n')) {
    const word = line.trim().split(/\s+/)[0];
    if (FORBIDDEN_EXTRA.includes(word))
      throw new InvalidArgumentError('extra', `'${word}' is not allowed: the node runs in the foreground and its output is collected`);
  }
  return extra;
}

/** One node's server config. Throws {@link InvalidArgumentError} on bad input. */
export function renderServerConfig(o: ServerConfigOptions): string {
  if (typeof o !== 'object' || o === null) throw new InvalidArgumentError('options', 'must be an object');
  const index = checkUint('index', o.index, 0, 0xffff);
  const vip = checkIp('vip', o.vip);
  const port = checkUint('port', o.port ?? 1194, 1, 65535);
  const protocol = checkProtocol('protocol', o.protocol ?? 'udp');
  const pool = nodePool(index, o.pool ?? { base: '10.8.0.0' });
  if (typeof o.serverIdentity !== 'object' || o.serverIdentity === null)
    throw new InvalidArgumentError('serverIdentity', 'must be { certPem, keyPem } as generateIdentity() returns');
  const cert = checkPem('serverIdentity.certPem', o.serverIdentity.certPem, /-----BEGIN CERTIFICATE-----/);
  const key = checkPem('serverIdentity.keyPem', o.serverIdentity.keyPem, /-----BEGIN (EC |ENCRYPTED )?PRIVATE KEY-----/);
  if (!Array.isArray(o.clientFingerprints) || o.clientFingerprints.length === 0)
    throw new InvalidArgumentError('clientFingerprints', 'must list at least one client certificate fingerprint (AB:CD:...)');
  const fps = o.clientFingerprints.map((fp, i) => checkFingerprint(`clientFingerprints[${i}]`, fp));
  const mgmt = checkPath('managementSocket', o.managementSocket);
  // sun_path is 108 bytes including the terminating NUL.
  if (Buffer.byteLength(mgmt) > 107) throw new InvalidArgumentError('managementSocket', `'${mgmt}' is longer than the 107 bytes a unix socket path may have`);
  const status = checkPath('statusFile', o.statusFile);
  const statusInterval = checkUint('statusInterval', o.statusInterval ?? 1, 1, 3600);
  const dev = checkDev('dev', o.dev ?? 'tun');
  const [kaInterval, kaTimeout] = o.keepalive ?? [2, 10];
  checkUint('keepalive[0]', kaInterval, 1, 3600);
  checkUint('keepalive[1]', kaTimeout, 2, 7200);
  if (kaTimeout <= kaInterval) throw new InvalidArgumentError('keepalive', `timeout ${kaTimeout} must be longer than the interval ${kaInterval}`);
  const verb = checkUint('verb', o.verb ?? 3, 0, 11);
  if (o.managementClientUser !== undefined && (typeof o.managementClientUser !== 'string' || !/^[a-z_][a-z0-9_-]*$/i.test(o.managementClientUser)))
    throw new InvalidArgumentError('managementClientUser', `'${String(o.managementClientUser)}' is not a user name`);
  if (o.address !== undefined) checkIp('address', o.address);
  if (o.dir !== undefined) checkPath('dir', o.dir);
  if (o.netns !== undefined && (typeof o.netns !== 'string' || o.netns.length === 0)) throw new InvalidArgumentError('netns', 'must be a non-empty string');

  const generated = [
    `# netns-cluster node ${index}`,
    `local ${vip.address}`,
    `port ${port}`,
    protocol === 'udp' ? 'proto udp' : 'proto tcp-server',
    ...devLines(dev),
    'topology subnet',
    `server ${pool.network} ${pool.netmask}`,
    `keepalive ${kaInterval} ${kaTimeout}`,
    // Tell clients at once when this node restarts, instead of after ping-restart.
    ...(protocol === 'udp' ? ['explicit-exit-notify 1'] : []),
    ...(o.dco ? [] : ['disable-dco']),
    'dh none',
    ...inline('cert', cert),
    ...inline('key', key),
    ...inline('peer-fingerprint', fps.join('\n')),
    `management ${mgmt} unix`,
    ...(o.managementClientUser ? [`management-client-user ${o.managementClientUser}`] : []),
    `status ${status} ${statusInterval}`,
    `verb ${verb}`,
  ].join('\n');

  if (o.extra === undefined) return generated + '\n';
  const extra = checkExtra(o.extra);
  const values: Partial<Record<string, string>> = {
    node: String(index),
    netns: o.netns,
    address: o.address,
    dir: o.dir,
    vip: vip.address,
    port: String(port),
    pool: `${pool.network}/${pool.prefix}`,
    generated,
  };
  const filled = fillPlaceholders('extra', extra, values);
  const out = extra.includes('{generated}') ? filled : `${generated}\n# user directives\n${filled}`;
  return out.endsWith('\n') ? out : out + '\n';
}

export interface ClientConfigOptions {
  /** The server's address (the cluster's VIP). */
  remote: string;
  /** Default 1194. */
  port?: number;
  /** Default `udp`. */
  protocol?: OpenvpnProtocol;
  identity: Pick<Identity, 'certPem' | 'keyPem'>;
  /** The server certificate's SHA-256 fingerprint. */
  serverFingerprint: string;
  /**
   * Bind to this source address (`local`) and port (`lport`, default 0: any free port). Without it
   * the client uses `nobind`.
   */
  bind?: { address: string; port?: number };
  /** Default `tun`; give each client on one host its own name (e.g. `tun-c0`). */
  dev?: string;
  /** Default false: `disable-dco`. */
  dco?: boolean;
  /** Seconds between connection attempts. Default 1. */
  connectRetry?: number;
  /** Management socket for the client, if wanted. */
  managementSocket?: string;
  verb?: number;
  /** Appended verbatim (no placeholders). */
  extra?: string;
}

/** A client config for tests and the demo. Throws {@link InvalidArgumentError} on bad input. */
export function renderClientConfig(o: ClientConfigOptions): string {
  if (typeof o !== 'object' || o === null) throw new InvalidArgumentError('options', 'must be an object');
  const remote = checkIp('remote', o.remote);
  const port = checkUint('port', o.port ?? 1194, 1, 65535);
  const protocol = checkProtocol('protocol', o.protocol ?? 'udp');
  if (typeof o.identity !== 'object' || o.identity === null)
    throw new InvalidArgumentError('identity', 'must be { certPem, keyPem } as generateIdentity() returns');
  const cert = checkPem('identity.certPem', o.identity.certPem, /-----BEGIN CERTIFICATE-----/);
  const key = checkPem('identity.keyPem', o.identity.keyPem, /-----BEGIN (EC |ENCRYPTED )?PRIVATE KEY-----/);
  const serverFp = checkFingerprint('serverFingerprint', o.serverFingerprint);
  const dev = checkDev('dev', o.dev ?? 'tun');
  const retry = checkUint('connectRetry', o.connectRetry ?? 1, 1, 300);
  const verb = checkUint('verb', o.verb ?? 3, 0, 11);
  let bindLines = ['nobind'];
  if (o.bind !== undefined) {
    if (typeof o.bind !== 'object' || o.bind === null) throw new InvalidArgumentError('bind', 'must be { address, port? }');
    const local = checkIp('bind.address', o.bind.address);
    if (local.family !== remote.family)
      throw new InvalidArgumentError('bind.address', `${local.address} is IPv${local.family} but remote ${remote.address} is IPv${remote.family}`);
    bindLines = [`local ${local.address}`, `lport ${checkUint('bind.port', o.bind.port ?? 0, 0, 65535)}`];
  }
  const mgmt = o.managementSocket === undefined ? [] : [`management ${checkPath('managementSocket', o.managementSocket)} unix`];
  const lines = [
    'client',
    ...devLines(dev),
    protocol === 'udp' ? 'proto udp' : 'proto tcp-client',
    `remote ${remote.address} ${port}`,
    ...bindLines,
    `connect-retry ${retry} ${retry}`,
    'resolv-retry infinite',
    ...(o.dco ? [] : ['disable-dco']),
    ...inline('cert', cert),
    ...inline('key', key),
    `peer-fingerprint ${serverFp}`,
    ...mgmt,
    `verb ${verb}`,
  ];
  if (o.extra !== undefined) lines.push(checkExtra(o.extra));
  return lines.join('\n') + '\n';
}
