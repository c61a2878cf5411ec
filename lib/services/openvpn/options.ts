/**
 * The OpenVPN service's options: their schema (which is also their TypeScript type and their part
 * of schema/cluster.schema.json) and the checks JSON Schema cannot express: pools that must fit
 * IPv4 and miss the cluster's networks, PEM that must parse, `extra` directives that must not
 * escape supervision, accounts that must exist, a binary that must be installed. One place per
 * rule; openvpn() and the spec both use it.
 * @module
 */
import { readFileSync } from 'node:fs';
import { Type, type Static } from '@sinclair/typebox';
import { OPENVPN_DEFAULTS } from '../../util/defaults.js';
import { InvalidArgumentError } from '../../util/errors.js';
import { addressValue, cidrOverlap, networkOf, specialRange } from '../../util/ipmath.js';
import { annotate, Bool, collect, Enum, Int, refusal, structuralProblems, throwProblems, type Problem } from '../../util/schema.js';
import { RestartPolicySchema, StopTimeoutSchema } from '../service.js';
import { got, show, under } from '../../util/shape.js';
import type { ClusterFacts } from '../service.js';
import { ACCOUNT_PATTERN, checkAccountName, checkExtra, checkIdentity, checkKeepalive, nodePool, type PoolSpec } from './config.js';
import { serverIpv6Of } from './addresses.js';
import { checkFingerprint, FINGERPRINT_PATTERN } from './keys.js';
import { findOpenvpn } from './version.js';

/** Where the options sit in a spec: every field is named from here. */
const FIELD = 'service.openvpn';

/** The largest cluster-wide pool with addresses: 'stable' (/16: 65533 clients). */
const STABLE_MIN_PREFIX = 16;

const fingerprint = (description?: string) =>
  annotate(Type.String({ pattern: FINGERPRINT_PATTERN, ...(description ? { description } : {}) }), { message: (v) => refusal(() => checkFingerprint('', v))! });
const account = (what: 'user' | 'group', description: string, example: string) =>
  annotate(Type.String({ pattern: ACCOUNT_PATTERN, description, examples: [example] }), { message: (v) => refusal(() => checkAccountName('', v, what))! });
const pem = (what: string, description: string) => {
  const message = `must be ${what} in PEM, as generateIdentity() returns it, got nothing`;
  return annotate(Type.String({ description }), { missing: message, message: (v) => `must be ${what} in PEM, as generateIdentity() returns it, ${got(v)}` });
};

/** The options of {@link openvpn} (and of `{ openvpn: {...} }` in a spec or config file). */
export const OpenvpnOptionsSchema = annotate(
  Type.Object(
    {
      port: Type.Optional(Int(1, 65535, { default: OPENVPN_DEFAULTS.port, description: "When the cluster lists 'ports', this port must be among them." })),
      protocol: Type.Optional(Enum(['udp', 'tcp'] as const, { default: OPENVPN_DEFAULTS.protocol })),
      pool: Type.Optional(
        annotate(
          Type.Object(
            {
              base: annotate(Type.String({ default: OPENVPN_DEFAULTS.pool.base, description: 'The first node’s client network; node k gets the k-th block after it.' }), {
                message: (v) => `${show(v)} is not an IPv4 network address such as 10.8.0.0`,
                missing: 'is missing: give the first client network, e.g. 10.8.0.0',
              }),
              prefix: Type.Optional(Int(8, 29, { default: OPENVPN_DEFAULTS.pool.prefix, description: 'Prefix length of each node’s block.' })),
            },
            {
              additionalProperties: false,
              description: "Client pools: node k gets the k-th block after 'base'; all of them must fit in IPv4 and miss the VIP's subnet and the node networks.",
            },
          ),
          { message: (v) => `expected { base: '10.8.0.0', prefix: 24 }, ${got(v)}` },
        ),
      ),
      clientFingerprints: annotate(Type.Array(fingerprint(), { minItems: 1, description: 'SHA-256 fingerprints of the client certificates the servers accept (peer-fingerprint mode).' }), {
        message: (v) => `list the SHA-256 fingerprints (AB:CD:…) of the client certificates to accept, ${got(v)}`,
        missing: 'list the SHA-256 fingerprints (AB:CD:…) of the client certificates to accept, got nothing',
      }),
      serverIdentity: Type.Optional(
        annotate(
          Type.Object(
            {
              certPem: pem('a certificate', 'The certificate (PEM).'),
              keyPem: pem('a private key', 'Its private key (PEM, unencrypted).'),
              fingerprint: Type.Optional(fingerprint("The certificate's SHA-256 fingerprint, as generateIdentity() returns it (checked if given).")),
            },
            { additionalProperties: false, description: 'The servers’ certificate and key (the same on every node). Default: a throwaway one, made at start.' },
          ),
          { message: (v) => `expected { certPem, keyPem } as generateIdentity() returns, ${got(v)}` },
        ),
      ),
      extra: Type.Optional(
        annotate(
          Type.String({
            description:
              'More server directives, or a whole template with {generated}. Refused in any spelling: daemon, inetd, writepid, log, log-append, syslog, config, management*, local, port, lport, proto, server, status, user, group (use the options).',
          }),
          { message: (v) => `must be a string of OpenVPN directives, one per line, ${got(v)}` },
        ),
      ),
      keepalive: Type.Optional(
        annotate(Type.Tuple([Int(1, 3600), Int(2, 7200)], { description: '[interval, timeout] in seconds; the interval shorter than the timeout.', default: OPENVPN_DEFAULTS.keepalive }), {
          message: (v) => `must be [interval, timeout] in seconds, e.g. [2, 10], ${got(v)}`,
        }),
      ),
      binary: Type.Optional(
        annotate(Type.String({ minLength: 1, description: 'The openvpn binary (default: looked up in PATH, then /usr/sbin, /sbin, /usr/local/sbin); it must exist.' }), {
          message: (v) => `must be the path of the openvpn program or a name looked up on PATH, ${got(v)}`,
        }),
      ),
      addresses: Type.Optional(
        Enum(['per-node', 'stable'] as const, {
          default: OPENVPN_DEFAULTS.addresses,
          description:
            "per-node: node k gives clients addresses from its own block of 'pool'. stable: 'pool' is one block for the whole cluster and each client (by common name, or by username when the server checks passwords) keeps one address across failover and failback; the host routes it via the node that serves it.",
        }),
      ),
      routePools: Type.Optional(Bool({ default: OPENVPN_DEFAULTS.routePools, description: "Route each node's pool on the host via the node's address." })),
      nat: Type.Optional(
        Bool({ default: OPENVPN_DEFAULTS.nat, description: "Source-NAT the clients' traffic leaving the node to the node's unique address (never the VIP); default: the pools are routed (routePools)." }),
      ),
      user: Type.Optional(account('user', 'Drop privileges to this user after start (e.g. nobody); adds persist-key and persist-tun. It must be in /etc/passwd.', 'nobody')),
      group: Type.Optional(account('group', 'Drop privileges to this group after start (e.g. nogroup). It must be in /etc/group.', 'nogroup')),
      restart: Type.Optional(RestartPolicySchema),
      stopTimeoutMs: Type.Optional(StopTimeoutSchema()),
    },
    { additionalProperties: false, description: 'An OpenVPN 2.6 server in every node (peer-fingerprint mode).' },
  ),
  { message: (v) => `expected { clientFingerprints: ['AB:CD:…'], … }, ${got(v)}` },
);

/** The options of {@link openvpn}: the schema's type. */
export type OpenvpnServiceOptions = Static<typeof OpenvpnOptionsSchema>;

/** Every option openvpn() takes (the config schema lists the same: it is the same object). */
export const OPENVPN_FIELDS = Object.keys(OpenvpnOptionsSchema.properties) as (keyof OpenvpnServiceOptions)[];

/** The options once checked, with their defaults. */
export interface CheckedOpenvpnOptions {
  clientFingerprints: string[];
  port: number;
  protocol: 'udp' | 'tcp';
  pool: PoolSpec;
  binary: string;
  addresses: 'per-node' | 'stable';
  /** With stable addresses: the IPv6 pool the servers get from a `server-ipv6` line in extra (the same in every node). */
  pool6?: { base: string; prefix: number };
}

/** Whether `name` is in the colon-separated database `file` (/etc/passwd, /etc/group). Unknown when unreadable. */
function inDatabase(file: string, name: string): boolean | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  return text.split('\n').some((l) => l.split(':')[0] === name);
}

/**
 * Every check of the options that needs no cluster: the schema first, then what it cannot say.
 * Throws an InvalidArgumentError naming `service.openvpn.…`, with every problem in `problems`.
 */
export function checkOpenvpnOptions(o: unknown): CheckedOpenvpnOptions {
  const out = structuralProblems(OpenvpnOptionsSchema, o, FIELD);
  // A check of a field that is structurally broken is skipped; the others still run.
  const broken = new Set(out.map((p) => (p.field.slice(FIELD.length + 1).split(/[.[]/)[0] || '*')));
  if (broken.has('*')) throwProblems(out);
  const opts = o as OpenvpnServiceOptions;
  const ok = (k: keyof OpenvpnServiceOptions) => opts[k] !== undefined && !broken.has(k);
  const clientFingerprints = ok('clientFingerprints') ? opts.clientFingerprints.map((fp) => fp.toUpperCase()) : [];
  const pool = { ...OPENVPN_DEFAULTS.pool, ...opts.pool };
  if (!broken.has('pool')) collect(out, () => under(FIELD, () => nodePool(0, pool)));
  if (ok('keepalive')) collect(out, () => checkKeepalive(`${FIELD}.keepalive`, opts.keepalive));
  if (ok('serverIdentity')) collect(out, () => checkIdentity(`${FIELD}.serverIdentity`, opts.serverIdentity));
  const addresses = ok('addresses') ? opts.addresses! : OPENVPN_DEFAULTS.addresses;
  if (ok('extra')) collect(out, () => checkExtra(`${FIELD}.extra`, opts.extra, true, addresses === 'stable'));
  const pool6 = addresses === 'stable' && ok('extra') ? serverIpv6Of(opts.extra!) : undefined;
  // Only on a pool that passed its structural checks (a broken prefix is reported above).
  const v4Bits = broken.has('pool') ? 0 : 32 - (pool.prefix ?? OPENVPN_DEFAULTS.pool.prefix);
  if (pool6 && 128 - pool6.prefix < v4Bits)
    out.push({
      field: `${FIELD}.extra`,
      message: `server-ipv6 ${pool6.base}/${pool6.prefix} is smaller than the IPv4 pool (/${32 - v4Bits}); with addresses: 'stable' each client's IPv6 address is paired with its IPv4 one, so give a /${128 - v4Bits} or larger`,
    });
  if (addresses === 'stable' && !broken.has('pool') && (pool.prefix ?? OPENVPN_DEFAULTS.pool.prefix) < STABLE_MIN_PREFIX)
    out.push({
      field: `${FIELD}.pool.prefix`,
      message: `with addresses: 'stable' the pool is one block for the whole cluster, at most /${STABLE_MIN_PREFIX} (${2 ** (32 - STABLE_MIN_PREFIX) - 3} clients); got /${pool.prefix}`,
    });
  for (const k of ['user', 'group'] as const) {
    const name = ok(k) ? opts[k] : undefined;
    const db = k === 'user' ? '/etc/passwd' : '/etc/group';
    if (name !== undefined && inDatabase(db, name) === false)
      out.push({ field: `${FIELD}.${k}`, message: `${k} '${name}' is not in ${db}; OpenVPN could not switch to it after start. Create it, or use ${k === 'user' ? 'nobody' : 'nogroup'}` });
  }
  const binary = opts.binary ?? 'openvpn';
  if (broken.has('binary')) {
    // reported above
  } else if (binary.includes('\0')) out.push({ field: `${FIELD}.binary`, message: `must be the path of the openvpn program or a name looked up on PATH, got ${show(binary)}` });
  else if (!findOpenvpn(binary))
    out.push({
      field: `${FIELD}.binary`,
      message:
        `OpenVPN is not installed: ${binary.includes('/') ? `${show(binary)} is not an executable file` : `${show(binary)} is not on PATH nor in /usr/sbin, /sbin, /usr/local/sbin`}; ` +
        `install it with 'apt install openvpn' (Debian/Ubuntu, 2.6 or later), or set binary to its path`,
    });
  throwProblems(out);
  return { clientFingerprints, port: opts.port ?? OPENVPN_DEFAULTS.port, protocol: opts.protocol ?? OPENVPN_DEFAULTS.protocol, pool, binary, addresses, ...(pool6 ? { pool6 } : {}) };
}

/** The checks that need the cluster: the port among its ports, every node's pool in IPv4 and clear of its networks. */
export function checkAgainstCluster(o: Pick<CheckedOpenvpnOptions, 'port' | 'protocol' | 'pool'> & Partial<Pick<CheckedOpenvpnOptions, 'addresses' | 'pool6'>>, facts: ClusterFacts): void {
  // The host routes each client's IPv6 address via its node's IPv6 address, on the node network.
  if (o.pool6 && !facts.nodeNetworks.some((n) => n.family === 6))
    throw new InvalidArgumentError(
      `${FIELD}.extra`,
      `server-ipv6 ${o.pool6.base}/${o.pool6.prefix} with addresses: 'stable' needs an IPv6 node network to route clients' IPv6 addresses via their node; give the cluster an IPv6 VIP too (its node network then gets IPv6), or leave server-ipv6 out`,
    );
  const key = `${o.protocol}/${o.port}`;
  if (facts.ports.length && !facts.ports.some((p) => p.protocol === o.protocol && p.port === o.port))
    throw new InvalidArgumentError(
      `${FIELD}.port`,
      `the server listens on ${key}, which is not among the cluster's ports (${facts.ports.map((p) => `${p.protocol}/${p.port}`).join(' ')}), so no client would reach it; add { protocol: '${o.protocol}', port: ${o.port} } to ports`,
    );
  const prefix = o.pool.prefix ?? OPENVPN_DEFAULTS.pool.prefix;
  const others = [
    ...facts.vips.filter((v) => v.family === 4).map((v) => ({ what: `the VIP's subnet ${networkOf(v)}`, net: v })),
    ...facts.nodeNetworks.filter((n) => n.family === 4).map((n) => ({ what: `the node network ${networkOf(n)}`, net: n })),
  ];
  // Stable addresses: one block for the whole cluster.
  const blocks = o.addresses === 'stable' ? 1 : facts.nodes;
  /** What is wrong with the pools starting at `base`, or undefined. */
  const problem = (base: string): string | undefined => {
    const end = addressValue(base) + 2n ** BigInt(32 - prefix) * BigInt(blocks); // one past the last node's block
    if (end > 2n ** 32n) return `${facts.nodes} nodes need ${facts.nodes} /${prefix} pools after ${base}, which run past 255.255.255.255`;
    for (let k = 0; k < blocks; k++) {
      const pool = { address: nodePool(k, { base, prefix }).network, prefix, family: 4 as const };
      const clash = others.find((x) => cidrOverlap(x.net, pool));
      if (clash)
        return blocks === 1 && o.addresses === 'stable'
          ? `the cluster's client pool ${pool.address}/${prefix} overlaps ${clash.what}`
          : `the client pools (${base} on, one /${prefix} per node) overlap ${clash.what} (node ${k}'s pool ${pool.address}/${prefix})`;
      const special = specialRange(pool);
      if (special) return `node ${k}'s pool ${pool.address}/${prefix} overlaps ${special}`;
    }
    return undefined;
  };
  const wrong = problem(o.pool.base);
  if (wrong) {
    const better = ['10.8.0.0', '172.16.0.0', '100.64.0.0', '10.128.0.0'].find((b) => !problem(b));
    throw new InvalidArgumentError(`${FIELD}.pool`, `${wrong}; choose ${better ? `another pool.base, e.g. ${better}` : 'another pool.base or prefix'}`);
  }
}
