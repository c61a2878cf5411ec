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
import { clusterNames } from '../../util/names.js';
import { got, show, under } from '../../util/shape.js';
import type { ClusterFacts } from '../service.js';
import { ACCOUNT_PATTERN, checkAccountName, checkExtra, checkIdentity, checkKeepalive, nodePool, type PoolSpec } from './config.js';
import { checkFingerprint, FINGERPRINT_PATTERN } from './keys.js';
import { findOpenvpn } from './version.js';
import { checkPki, PKI_KEYS, type Pki, type PkiKey } from './pki.js';
import { nodePool6, POOL6_PREFIX, type Pool6Spec } from './pool6.js';
import { checkFiles, configError, CONFIG_FIELD, nodeView, readOperatorConfig, type OperatorConfig } from './server-conf.js';

/** Where the options sit in a spec: every field is named from here. */
const FIELD = 'service.openvpn';

const fingerprint = (description?: string) =>
  annotate(Type.String({ pattern: FINGERPRINT_PATTERN, ...(description ? { description } : {}) }), { message: (v) => refusal(() => checkFingerprint('', v))! });
const account = (what: 'user' | 'group', description: string, example: string) =>
  annotate(Type.String({ pattern: ACCOUNT_PATTERN, description, examples: [example] }), { message: (v) => refusal(() => checkAccountName('', v, what))! });
const pem = (what: string, description: string) => {
  const message = `must be ${what} in PEM, as generateIdentity() returns it, got nothing`;
  return annotate(Type.String({ description }), { missing: message, message: (v) => `must be ${what} in PEM, as generateIdentity() returns it, ${got(v)}` });
};

/** One part of a PKI: an absolute path or PEM text. */
const pkiPart = (key: PkiKey) => {
  const { what } = PKI_KEYS.find((p) => p.key === key)!;
  return annotate(Type.String({ minLength: 1, description: `${what[0].toUpperCase()}${what.slice(1)}: an absolute path, or the PEM text itself.` }), {
    message: (v) => `must be ${what} as an absolute path or PEM text, ${got(v)}`,
    missing: `is missing: give ${what} (an absolute path or PEM text)`,
  });
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
      clientFingerprints: Type.Optional(
        annotate(
          Type.Array(fingerprint(), {
            minItems: 1,
            description: 'SHA-256 fingerprints of the client certificates the servers accept (peer-fingerprint mode, the zero-setup default). Not with config or pki.',
          }),
          { message: (v) => `list the SHA-256 fingerprints (AB:CD:…) of the client certificates to accept, ${got(v)}` },
        ),
      ),
      config: Type.Optional(
        annotate(
          Type.String({
            minLength: 1,
            description:
              "Your own server config (e.g. /etc/openvpn/server/server.conf): everything in it is kept; per node netns-cluster sets only local (the VIP), the pool (node k gets the k-th block of the size 'server' gives, from its network), the management socket, the status file and the log (stdout). Not with clientFingerprints, pki, serverIdentity, port, protocol, keepalive, extra, user or group: write those in the file.",
          }),
          { message: (v) => `must be the path of an OpenVPN server config, e.g. /etc/openvpn/server/server.conf, ${got(v)}` },
        ),
      ),
      pki: Type.Optional(
        annotate(
          Type.Object(
            {
              ca: pkiPart('ca'),
              cert: pkiPart('cert'),
              key: pkiPart('key'),
              crl: Type.Optional(pkiPart('crl')),
              dh: Type.Optional(pkiPart('dh')),
              tlsCrypt: Type.Optional(pkiPart('tlsCrypt')),
              tlsAuth: Type.Optional(pkiPart('tlsAuth')),
              tlsCryptV2: Type.Optional(pkiPart('tlsCryptV2')),
            },
            { additionalProperties: false, description: 'A CA-based PKI instead of peer fingerprints: files (absolute paths) or PEM text. Not with clientFingerprints or config.' },
          ),
          { message: (v) => `expected { ca, cert, key, crl?, dh?, tlsCrypt?, tlsAuth?, tlsCryptV2? }, ${got(v)}` },
        ),
      ),
      pool6: Type.Optional(
        annotate(
          Type.Object(
            {
              base: annotate(Type.String({ description: 'The first node’s IPv6 client network; node k gets the k-th block after it.', examples: ['fd00:8::'] }), {
                message: (v) => `${show(v)} is not an IPv6 network address such as fd00:8::`,
                missing: 'is missing: give the first IPv6 client network, e.g. fd00:8::',
              }),
              prefix: Type.Optional(Int(POOL6_PREFIX.min, POOL6_PREFIX.max, { default: POOL6_PREFIX.default, description: 'Prefix length of each node’s block (OpenVPN’s server-ipv6 takes /64 to /124).' })),
            },
            { additionalProperties: false, description: "IPv6 client pools (server-ipv6 per node): node k gets the k-th block after 'base'. With config, its server-ipv6 line gives them." },
          ),
          { message: (v) => `expected { base: 'fd00:8::', prefix: 112 }, ${got(v)}` },
        ),
      ),
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
      routePools: Type.Optional(Bool({ default: OPENVPN_DEFAULTS.routePools, description: "Route each node's pool on the host via the node's address." })),
      nat: Type.Optional(
        Bool({ default: OPENVPN_DEFAULTS.nat, description: "Source-NAT the clients' traffic leaving the node to the node's unique address (never the VIP); default: the pools are routed (routePools)." }),
      ),
      user: Type.Optional(account('user', 'Drop privileges to this user after start (e.g. nobody); adds persist-key and persist-tun. It must be in /etc/passwd.', 'nobody')),
      group: Type.Optional(account('group', 'Drop privileges to this group after start (e.g. nogroup). It must be in /etc/group.', 'nogroup')),
      restart: Type.Optional(RestartPolicySchema),
      stopTimeoutMs: Type.Optional(StopTimeoutSchema()),
    },
    { additionalProperties: false, description: 'An OpenVPN 2.6 server in every node: peer-fingerprint mode (clientFingerprints), a PKI built in code (pki), or your own server config (config).' },
  ),
  { message: (v) => `expected { clientFingerprints: ['AB:CD:…'], … }, { pki: { ca, cert, key } } or { config: '/etc/openvpn/server/server.conf' }, ${got(v)}` },
);

/** The options of {@link openvpn}: the schema's type. */
export type OpenvpnServiceOptions = Static<typeof OpenvpnOptionsSchema>;

/** Every option openvpn() takes (the config schema lists the same: it is the same object). */
export const OPENVPN_FIELDS = Object.keys(OpenvpnOptionsSchema.properties) as (keyof OpenvpnServiceOptions)[];

/** The options once checked, with their defaults. */
export interface CheckedOpenvpnOptions {
  /** How clients are authenticated: peer fingerprints (the default), a PKI given in code, or the operator's own config. */
  mode: 'fingerprint' | 'pki' | 'config';
  clientFingerprints: string[];
  port: number;
  protocol: 'udp' | 'tcp';
  pool: PoolSpec;
  /** IPv6 client pools, when given (or when the config has server-ipv6). */
  pool6?: Pool6Spec;
  /** Whether pool6 came from the options (else from the config's server-ipv6). */
  pool6FromOptions?: boolean;
  /** Whether the pool came from the options or the default (else from the config's server line). */
  poolFromOptions?: boolean;
  binary: string;
  /** The operator's config, read and checked (config mode). */
  config?: OperatorConfig;
  /** The PKI, checked (pki mode). */
  pki?: Pki;
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

/** Options that a config file says itself: with `config` they are refused (write them in the file). */
const IN_THE_FILE = { clientFingerprints: 'peer-fingerprint', serverIdentity: 'cert and key', port: 'port', protocol: 'proto', keepalive: 'keepalive', extra: 'the directives', user: 'user', group: 'group', pki: 'ca, cert and key' } as const;

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
  // One way to authenticate clients: fingerprints (the default), a PKI, or the operator's config.
  const mode = opts.config !== undefined ? 'config' : opts.pki !== undefined ? 'pki' : 'fingerprint';
  if (mode === 'config') {
    for (const [k, what] of Object.entries(IN_THE_FILE))
      if (opts[k as keyof OpenvpnServiceOptions] !== undefined)
        out.push({ field: `${FIELD}.${k}`, message: `not with config: the config file says it (${what}); write it there, or leave config out` });
  } else if (mode === 'pki') {
    for (const k of ['clientFingerprints', 'serverIdentity'] as const)
      if (opts[k] !== undefined) out.push({ field: `${FIELD}.${k}`, message: `not with pki: clients are checked against pki.ca; leave ${k} out, or pki out for peer-fingerprint mode` });
  } else if (opts.clientFingerprints === undefined && !broken.has('clientFingerprints'))
    out.push({
      field: `${FIELD}.clientFingerprints`,
      message: 'list the SHA-256 fingerprints (AB:CD:…) of the client certificates to accept, got nothing (or give config: your server.conf, or pki: your CA, certificate and key)',
    });
  const clientFingerprints = ok('clientFingerprints') ? opts.clientFingerprints!.map((fp) => fp.toUpperCase()) : [];
  let config: OperatorConfig | undefined;
  if (ok('config')) {
    const r = readOperatorConfig(opts.config!);
    config = r.config;
    out.push(...r.problems.map((message) => ({ field: CONFIG_FIELD, message })));
  }
  let pki: Pki | undefined;
  if (ok('pki')) pki = collect(out, () => checkPki(`${FIELD}.pki`, opts.pki!, opts.user));
  const pool = { ...OPENVPN_DEFAULTS.pool, ...config?.pool, ...opts.pool };
  if (!broken.has('pool'))
    collect(out, () => {
      if (opts.pool !== undefined || !config?.pool) return under(FIELD, () => nodePool(0, pool));
      const why = refusal(() => nodePool(0, pool));
      if (why) throw configError([`${config.poolAt}: 'server': ${why.replace(/^pool\.\w+: /, '')}`]);
    });
  const pool6 = opts.pool6 ?? config?.pool6;
  if (pool6 && !broken.has('pool6'))
    collect(out, () => {
      if (opts.pool6 !== undefined) return under(FIELD, () => nodePool6(0, pool6));
      const why = refusal(() => nodePool6(0, pool6));
      if (why) throw configError([`${config!.pool6At}: 'server-ipv6': ${why.replace(/^pool6\.\w+: /, '')}`]);
    });
  if (ok('keepalive')) collect(out, () => checkKeepalive(`${FIELD}.keepalive`, opts.keepalive));
  if (ok('serverIdentity')) collect(out, () => checkIdentity(`${FIELD}.serverIdentity`, opts.serverIdentity));
  if (ok('extra')) collect(out, () => checkExtra(`${FIELD}.extra`, opts.extra));
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
  return {
    mode,
    clientFingerprints,
    port: config?.port ?? opts.port ?? OPENVPN_DEFAULTS.port,
    protocol: config?.protocol ?? opts.protocol ?? OPENVPN_DEFAULTS.protocol,
    pool,
    ...(pool6 ? { pool6, pool6FromOptions: opts.pool6 !== undefined } : {}),
    poolFromOptions: opts.pool !== undefined || !config?.pool,
    binary,
    ...(config ? { config } : {}),
    ...(pki ? { pki } : {}),
  };
}

/**
 * The files the service reads, as each node sees them (its mount view binds /etc/netns/<node>/*
 * over /etc): checked when the cluster's names are known, before anything is built.
 */
export function checkNodeViews(o: Pick<CheckedOpenvpnOptions, 'config' | 'pki'>, facts: ClusterFacts): void {
  if (!facts.name) return;
  const out: Problem[] = [];
  for (let k = 0; k < facts.nodes; k++) {
    const netns = clusterNames(facts.name).nodeNetns(k);
    // Only files the node sees elsewhere than the host does: the host's view was checked already.
    const shadowed = o.config?.files.filter((f) => nodeView(f.path, netns) !== f.path || (o.config!.chroot && nodeView(o.config!.chroot, netns) !== o.config!.chroot));
    if (o.config && shadowed?.length) out.push(...checkFiles({ ...o.config, files: shadowed }, netns).map((message) => ({ field: CONFIG_FIELD, message })));
    if (o.pki) collect(out, () => checkPki(`${FIELD}.pki`, o.pki!, undefined, netns));
    if (out.length) break; // one node's view says it; the others would say the same
  }
  throwProblems(out);
}

/** The checks that need the cluster: the port among its ports, every node's pool in IPv4 and clear of its networks. */
export function checkAgainstCluster(o: Pick<CheckedOpenvpnOptions, 'port' | 'protocol' | 'pool' | 'pool6' | 'pool6FromOptions' | 'poolFromOptions' | 'config' | 'pki'>, facts: ClusterFacts): void {
  const key = `${o.protocol}/${o.port}`;
  const missing = facts.ports.length && !facts.ports.some((p) => p.protocol === o.protocol && p.port === o.port);
  if (missing && o.config)
    throw configError([
      `${o.config.file}: the server listens on ${key} (its port and proto lines), which is not among the cluster's ports (${facts.ports.map((p) => `${p.protocol}/${p.port}`).join(' ')}), so no client would reach it; add { protocol: '${o.protocol}', port: ${o.port} } to ports`,
    ]);
  if (missing)
    throw new InvalidArgumentError(
      `${FIELD}.port`,
      `the server listens on ${key}, which is not among the cluster's ports (${facts.ports.map((p) => `${p.protocol}/${p.port}`).join(' ')}), so no client would reach it; add { protocol: '${o.protocol}', port: ${o.port} } to ports`,
    );
  const prefix = o.pool.prefix ?? OPENVPN_DEFAULTS.pool.prefix;
  const others = [
    ...facts.vips.filter((v) => v.family === 4).map((v) => ({ what: `the VIP's subnet ${networkOf(v)}`, net: v })),
    ...facts.nodeNetworks.filter((n) => n.family === 4).map((n) => ({ what: `the node network ${networkOf(n)}`, net: n })),
  ];
  /** What is wrong with the pools starting at `base`, or undefined. */
  const problem = (base: string): string | undefined => {
    const end = addressValue(base) + 2n ** BigInt(32 - prefix) * BigInt(facts.nodes); // one past the last node's block
    if (end > 2n ** 32n) return `${facts.nodes} nodes need ${facts.nodes} /${prefix} pools after ${base}, which run past 255.255.255.255`;
    for (let k = 0; k < facts.nodes; k++) {
      const pool = { address: nodePool(k, { base, prefix }).network, prefix, family: 4 as const };
      const clash = others.find((x) => cidrOverlap(x.net, pool));
      if (clash) return `the client pools (${base} on, one /${prefix} per node) overlap ${clash.what} (node ${k}'s pool ${pool.address}/${prefix})`;
      const special = specialRange(pool);
      if (special) return `node ${k}'s pool ${pool.address}/${prefix} overlaps ${special}`;
    }
    return undefined;
  };
  const wrong = problem(o.pool.base);
  if (wrong) {
    const better = ['10.8.0.0', '172.16.0.0', '100.64.0.0', '10.128.0.0'].find((b) => !problem(b));
    if (o.config && !o.poolFromOptions) throw configError([`${o.config.poolAt}: 'server': ${wrong}; change it${better ? `, e.g. to server ${better} ${nodePool(0, { base: better, prefix }).netmask}` : ''}, or set the pool option`]);
    throw new InvalidArgumentError(`${FIELD}.pool`, `${wrong}; choose ${better ? `another pool.base, e.g. ${better}` : 'another pool.base or prefix'}`);
  }
  if (o.pool6) checkPool6(o.pool6, facts, o.config && !o.pool6FromOptions ? o.config.pool6At : undefined);
  checkNodeViews(o, facts);
}

/** Every node's IPv6 block inside IPv6 and clear of the VIP's subnet, the node networks and special ranges. */
function checkPool6(pool6: Pool6Spec, facts: ClusterFacts, fromFile: string | undefined): void {
  const prefix = pool6.prefix ?? POOL6_PREFIX.default;
  const others = [
    ...facts.vips.filter((v) => v.family === 6).map((v) => ({ what: `the VIP's subnet ${networkOf(v)}`, net: v })),
    ...facts.nodeNetworks.filter((n) => n.family === 6).map((n) => ({ what: `the node network ${networkOf(n)}`, net: n })),
  ];
  const fail = (why: string) => {
    if (fromFile) throw configError([`${fromFile}: 'server-ipv6': ${why}; change it, or set the pool6 option`]);
    throw new InvalidArgumentError(`${FIELD}.pool6`, `${why}; choose another pool6.base, e.g. fd00:8::`);
  };
  for (let k = 0; k < facts.nodes; k++) {
    let block;
    try {
      block = nodePool6(k, pool6);
    } catch (e) {
      return fail(`${facts.nodes} nodes need ${facts.nodes} /${prefix} blocks after ${pool6.base}, which run past the end of IPv6`);
    }
    const net = { address: block.network, prefix, family: 6 as const };
    const clash = others.find((x) => cidrOverlap(x.net, net));
    if (clash) return fail(`the IPv6 client pools (${pool6.base} on, one /${prefix} per node) overlap ${clash.what} (node ${k}'s pool ${block.network}/${prefix})`);
    const special = specialRange(net);
    if (special) return fail(`node ${k}'s IPv6 pool ${block.network}/${prefix} overlaps ${special}`);
  }
}
