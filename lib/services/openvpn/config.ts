/**
 * OpenVPN configuration text for cluster nodes and for test/demo clients. Pure: renders strings,
 * touches nothing. Every node's server config is the same except its client pool
 * (`server 10.8.K.0 255.255.255.0` for node K by default), as verified in DESIGN.md.
 * @module
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { OPENVPN_DEFAULTS } from '../../util/defaults.js';
import { InvalidArgumentError } from '../../util/errors.js';
import { addressValue } from '../../util/ipmath.js';
import { checkChoice, checkInteger, checkObject, got, show } from '../../util/shape.js';
import { checkIfname, checkIp, checkUint } from '../../util/validate.js';
import { checkFingerprint, fingerprintOf, type Identity } from './keys.js';
import { pkiLines, type Pki } from './pki.js';
import { nodePool6, type Pool6Spec } from './pool6.js';

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
  /** The server's certificate and key (inlined into the config). Peer-fingerprint mode (not with `pki`). */
  serverIdentity?: Pick<Identity, 'certPem' | 'keyPem'>;
  /** The SHA-256 fingerprints of the client certificates the server accepts. At least one (not with `pki`). */
  clientFingerprints?: string[];
  /** A CA-based PKI instead of peer fingerprints (checked by the caller: see checkPki). */
  pki?: Pki;
  /** IPv6 client pools: node K gets the K-th block after `pool6.base` (`server-ipv6`). */
  pool6?: Pool6Spec;
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
   * Drop privileges after start to this user (`user`) and group (`group`), e.g. `nobody` and
   * `nogroup`. Either adds `persist-key` and `persist-tun`, so that OpenVPN keeps its key and tun
   * device instead of reopening them without the rights to.
   */
  user?: string;
  group?: string;
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
  return Number(addressValue(ip));
}

function intToIpv4(v: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(v / 2 ** s) % 256).join('.');
}

/** Node K's client network: the K-th block of `2^(32-prefix)` addresses after `pool.base`. */
export function nodePool(index: number, pool: PoolSpec = OPENVPN_DEFAULTS.pool): NodePool {
  checkUint('index', index, 0, 0xffff);
  checkObject('pool', pool, ['base', 'prefix'], "{ base: '10.8.0.0', prefix: 24 }");
  if (typeof pool.base !== 'string' || !isIPv4(pool.base))
    throw new InvalidArgumentError('pool.base', `${show(pool.base)} is not an IPv4 network address such as 10.8.0.0`);
  const prefix = checkUint('pool.prefix', pool.prefix ?? OPENVPN_DEFAULTS.pool.prefix, 8, 29);
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
    throw new InvalidArgumentError(field, `${show(p)} must be an absolute path`);
  if (/[\s"'\\#;]/.test(p) || p.includes('\0'))
    throw new InvalidArgumentError(field, `${show(p)} must not contain spaces, quotes, backslashes, '#' or ';' (OpenVPN config syntax)`);
  return p;
}

const CERT_BEGIN = '-----BEGIN CERTIFICATE-----';
const KEY_BEGIN = /-----BEGIN (RSA |EC )?PRIVATE KEY-----/;

function checkPemText(field: string, pem: unknown, what: string): string {
  if (typeof pem !== 'string') throw new InvalidArgumentError(field, `must be ${what} in PEM, as generateIdentity() returns it, ${got(pem)}`);
  if (pem.includes('\0') || /<\/?[a-z-]+>/i.test(pem)) throw new InvalidArgumentError(field, 'must be PEM text only, without NUL characters or inline-file tags such as </cert>');
  return pem.trim();
}

/**
 * A certificate and its unencrypted private key, as OpenVPN can load them without asking anything:
 * both parse, and the key is the certificate's. A `fingerprint` given with them must be the
 * certificate's.
 */
export function checkIdentity(field: string, v: unknown): Pick<Identity, 'certPem' | 'keyPem'> {
  const id = checkObject(field, v, ['certPem', 'keyPem', 'fingerprint'], '{ certPem, keyPem } as generateIdentity() returns');
  const certPem = checkPemText(`${field}.certPem`, id.certPem, 'a certificate');
  const keyPem = checkPemText(`${field}.keyPem`, id.keyPem, 'a private key');
  if (certPem.split(CERT_BEGIN).length !== 2 || !certPem.startsWith(CERT_BEGIN))
    throw new InvalidArgumentError(`${field}.certPem`, `must be one PEM certificate (${CERT_BEGIN} … -----END CERTIFICATE-----) as generateIdentity() returns it`);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (e) {
    throw new InvalidArgumentError(`${field}.certPem`, `is not a valid certificate (${(e as Error).message.slice(0, 80)}); give the PEM as generateIdentity() returns it`);
  }
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(keyPem))
    throw new InvalidArgumentError(`${field}.keyPem`, 'is encrypted: OpenVPN would stop at start to ask for its passphrase; give the key unencrypted (the node config holding it is mode 0600)');
  if (!KEY_BEGIN.test(keyPem) || !keyPem.startsWith('-----BEGIN'))
    throw new InvalidArgumentError(`${field}.keyPem`, 'must be a PEM private key (-----BEGIN PRIVATE KEY----- …) as generateIdentity() returns it');
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch (e) {
    throw new InvalidArgumentError(`${field}.keyPem`, `is not a valid private key (${(e as Error).message.slice(0, 80)}); give the PEM as generateIdentity() returns it`);
  }
  if (!cert.checkPrivateKey(key)) throw new InvalidArgumentError(`${field}.keyPem`, "is not the private key of certPem: give the certificate's own key");
  if (id.fingerprint !== undefined && checkFingerprint(`${field}.fingerprint`, id.fingerprint) !== fingerprintOf(certPem))
    throw new InvalidArgumentError(`${field}.fingerprint`, "is not certPem's fingerprint; leave it out or give the one generateIdentity() returned with it");
  return { certPem, keyPem };
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

export function checkProtocol(field: string, p: unknown): OpenvpnProtocol {
  return checkChoice(field, p, ['udp', 'tcp'] as const);
}

export function checkPort(field: string, p: unknown): number {
  return checkInteger(field, p, 1, 65535);
}

/** `[interval, timeout]` in seconds: positive whole numbers, the interval shorter. */
export function checkKeepalive(field: string, v: unknown): [number, number] {
  if (!Array.isArray(v) || v.length !== 2)
    throw new InvalidArgumentError(field, `must be [interval, timeout] in seconds, e.g. [2, 10], ${got(v)}`);
  const interval = checkInteger(`${field}[0]`, v[0], 1, 3600);
  const timeout = checkInteger(`${field}[1]`, v[1], 2, 7200);
  if (timeout <= interval) throw new InvalidArgumentError(field, `timeout ${timeout} must be longer than the interval ${interval}, e.g. [2, 10]`);
  return [interval, timeout];
}

/** The fingerprints of the client certificates to accept: at least one, each 32 hex bytes. */
export function checkFingerprints(field: string, v: unknown): string[] {
  if (!Array.isArray(v) || v.length === 0)
    throw new InvalidArgumentError(field, `list the SHA-256 fingerprints (AB:CD:…) of the client certificates to accept, ${got(v)}`);
  return v.map((fp, i) => checkFingerprint(`${field}[${i}]`, fp));
}

/** What a user or group name OpenVPN can look up looks like (the options' schema uses the same pattern). */
export const ACCOUNT_PATTERN = '^[A-Za-z_][A-Za-z0-9_.-]{0,31}$';
const ACCOUNT = new RegExp(ACCOUNT_PATTERN);

/** A user or group name OpenVPN can look up: letters, digits, '_', '-', '.', at most 32. */
export function checkAccountName(field: string, v: unknown, what: 'user' | 'group'): string {
  if (typeof v !== 'string' || !ACCOUNT.test(v))
    throw new InvalidArgumentError(field, `must be a ${what} name such as ${what === 'user' ? 'nobody' : 'nogroup'} (letters, digits, '_', '-', '.', at most 32), ${got(v)}`);
  return v;
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

/**
 * Why a directive may not be in a node's `extra` (nor, for daemon, inetd and writepid, in an
 * operator's own config): it escapes supervision, or it fights what netns-cluster sets.
 */
export const SUPERVISION: Record<string, string> = {
  daemon: 'it would leave the foreground, out of the supervisor’s reach',
  inetd: 'it would leave the foreground, out of the supervisor’s reach',
  writepid: 'the supervisor tracks the process itself; a pid file would outlive it',
  log: "the node's output goes to the log netns-cluster collects (stdout/stderr)",
  'log-append': "the node's output goes to the log netns-cluster collects (stdout/stderr)",
  syslog: "the node's output goes to the log netns-cluster collects (stdout/stderr)",
  config: 'it would read directives from a file that cannot be checked; write them in extra',
  'ifconfig-pool-persist': 'it writes a file as root wherever it says, and nodes would share it; each node has its own pool',
  'replay-persist': 'it writes a file as root wherever it says, and nodes would share it',
};
const SERVER_ONLY: Record<string, string> = {
  management: 'netns-cluster runs the management interface itself (readiness, status, moving clients)',
  local: 'the server listens on the VIP: netns-cluster sets local to it',
  port: "set the 'port' option instead (the cluster's rules and client hand-over use it)",
  lport: "set the 'port' option instead (the cluster's rules and client hand-over use it)",
  proto: "set the 'protocol' option instead (the cluster's rules and client hand-over use it)",
  server: "set the 'pool' option instead (the host routes each node's pool, and pools are checked against the cluster's networks)",
  status: 'netns-cluster sets the status file in the node’s private directory (a path elsewhere would be written as root)',
  user: "set the 'user' option instead (it adds persist-key and persist-tun, so restarts still work)",
  group: "set the 'group' option instead (it adds persist-key and persist-tun, so restarts still work)",
};

/**
 * The directive a config line starts with, as OpenVPN would read it, normalised so that no
 * spelling hides it: case folded, quotes and backslashes dropped, a leading `--` removed, and cut
 * at a comment. Undefined for blank and comment lines.
 */
export function directiveOf(line: string): string | undefined {
  const text = line.replace(/^[\s\uFEFF]+/, '');
  if (text === '' || text.startsWith('#') || text.startsWith(';')) return undefined;
  // Words: up to unquoted whitespace, quotes and backslashes dropped, cut at a comment.
  const words: string[] = [];
  let word = '';
  let quote = '';
  for (const ch of text) {
    if (quote) {
      if (ch === quote) quote = '';
      else word += ch;
    } else if (ch === '"' || ch === "'") quote = ch;
    else if (/\s/.test(ch)) {
      if (word) words.push(word);
      word = '';
      if (words.length >= 3) break;
    } else word += ch;
  }
  if (word && words.length < 3) words.push(word);
  const norm = (w: string | undefined) => w?.replace(/[\\"']/g, '').split(/[#;]/)[0].toLowerCase().replace(/^-+/, '');
  const first = norm(words[0]);
  // `setenv opt <directive> …` runs <directive> (ignored if unknown): judge what it runs.
  if (first === 'setenv' && norm(words[1]) === 'opt' && words[2] !== undefined) return norm(words[2]);
  return first;
}

/** Refuses directives that escape supervision (and, for a server, that fight the generated ones), in any spelling. */
export function checkExtra(field: string, extra: unknown, server = true): string {
  if (typeof extra !== 'string') throw new InvalidArgumentError(field, `must be a string of OpenVPN directives, one per line, ${got(extra)}`);
  if (extra.includes('\0')) throw new InvalidArgumentError(field, 'must not contain NUL characters');
  const lines = extra.split(/\r\n|\r|\n/);
  for (const [i, line] of lines.entries()) {
    const word = directiveOf(line);
    if (word === undefined) continue;
    const why = SUPERVISION[word] ?? (server ? (SERVER_ONLY[word] ?? (word.startsWith('management') ? SERVER_ONLY.management : undefined)) : undefined);
    if (why) throw new InvalidArgumentError(field, `line ${i + 1} (${show(line.trim())}): '${word}' is not allowed: ${why}`);
  }
  if (server) {
    if (extra.split('{generated}').length > 2) throw new InvalidArgumentError(field, 'uses {generated} more than once; the generated directives go in one place');
    for (const m of extra.matchAll(/\{([a-zA-Z]+)\}/g)) {
      if (!(SERVER_PLACEHOLDERS as readonly string[]).includes(m[1]))
        throw new InvalidArgumentError(field, `unknown placeholder ${show(m[0])}; known: ${SERVER_PLACEHOLDERS.map((p) => `{${p}}`).join(' ')}`);
    }
  }
  return extra;
}

/** One node's server config. Throws {@link InvalidArgumentError} on bad input. */
export function renderServerConfig(o: ServerConfigOptions): string {
  if (typeof o !== 'object' || o === null) throw new InvalidArgumentError('options', 'must be an object');
  const index = checkUint('index', o.index, 0, 0xffff);
  const vip = checkIp('vip', o.vip);
  const port = checkPort('port', o.port ?? OPENVPN_DEFAULTS.port);
  const protocol = checkProtocol('protocol', o.protocol ?? OPENVPN_DEFAULTS.protocol);
  const pool = nodePool(index, o.pool ?? OPENVPN_DEFAULTS.pool);
  const auth = o.pki
    ? pkiLines(o.pki)
    : (() => {
        const { certPem: cert, keyPem: key } = checkIdentity('serverIdentity', o.serverIdentity);
        const fps = checkFingerprints('clientFingerprints', o.clientFingerprints);
        return ['dh none', ...inline('cert', cert), ...inline('key', key), ...inline('peer-fingerprint', fps.join('\n'))];
      })();
  const pool6 = o.pool6 ? nodePool6(index, o.pool6) : undefined;
  const mgmt = checkPath('managementSocket', o.managementSocket);
  // sun_path is 108 bytes including the terminating NUL.
  if (Buffer.byteLength(mgmt) > 107) throw new InvalidArgumentError('managementSocket', `'${mgmt}' is longer than the 107 bytes a unix socket path may have`);
  const status = checkPath('statusFile', o.statusFile);
  const statusInterval = checkUint('statusInterval', o.statusInterval ?? 1, 1, 3600);
  const dev = checkDev('dev', o.dev ?? 'tun');
  const [kaInterval, kaTimeout] = checkKeepalive('keepalive', o.keepalive ?? OPENVPN_DEFAULTS.keepalive);
  const verb = checkUint('verb', o.verb ?? 3, 0, 11);
  if (o.managementClientUser !== undefined) checkAccountName('managementClientUser', o.managementClientUser, 'user');
  const user = o.user === undefined ? undefined : checkAccountName('user', o.user, 'user');
  const group = o.group === undefined ? undefined : checkAccountName('group', o.group, 'group');
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
    ...(pool6 ? [`server-ipv6 ${pool6.network}/${pool6.prefix}`] : []),
    `keepalive ${kaInterval} ${kaTimeout}`,
    // Tell clients at once when this node restarts, instead of after ping-restart.
    ...(protocol === 'udp' ? ['explicit-exit-notify 1'] : []),
    ...(o.dco ? [] : ['disable-dco']),
    ...auth,
    `management ${mgmt} unix`,
    ...(o.managementClientUser ? [`management-client-user ${o.managementClientUser}`] : []),
    `status ${status} ${statusInterval}`,
    `verb ${verb}`,
    // Privileges are dropped once the tun device and the management socket exist; the key and the
    // device are kept (OpenVPN could not reopen them as that user).
    ...(user ? [`user ${user}`] : []),
    ...(group ? [`group ${group}`] : []),
    ...(user || group ? ['persist-key', 'persist-tun'] : []),
  ].join('\n');

  if (o.extra === undefined) return generated + '\n';
  const extra = checkExtra('extra', o.extra);
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
  const port = checkPort('port', o.port ?? OPENVPN_DEFAULTS.port);
  const protocol = checkProtocol('protocol', o.protocol ?? OPENVPN_DEFAULTS.protocol);
  const { certPem: cert, keyPem: key } = checkIdentity('identity', o.identity);
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
  if (o.extra !== undefined) lines.push(checkExtra('extra', o.extra, false));
  return lines.join('\n') + '\n';
}
