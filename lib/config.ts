/**
 * Config files: a {@link ClusterSpec} written as JSON or YAML. {@link clusterSchema} is the one
 * description of the file's shape: `schema/cluster.schema.json` is generated from it
 * (`netns-cluster schema`), and {@link loadConfig} checks files against it. Every error names the
 * file, the path inside it (`ports[1].port`) and what to fix; nothing is created by loading.
 * @module
 */
import { constants } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { extname } from 'node:path';
import { parseDocument } from 'yaml';
import { capText, clipQuoted, InvalidArgumentError } from './errors.js';
import { HASH_MODES } from './jhash.js';
import { nearest, show as showValue } from './shape.js';
import { MAX_TIMER_MS } from './service.js';
import { resolveSpec, MAX_BUCKETS, MAX_NAME_BYTES, MAX_NODES, MAX_PORTS, type ClusterSpec, type ResolvedSpec } from './spec.js';

/** The largest config file read (1 MiB): a config is a few hundred bytes, certificates included a few KiB. */
export const MAX_CONFIG_BYTES = 1 << 20;
/** YAML aliases a config may use (each expands a node): more is refused as an alias bomb. */
export const MAX_YAML_ALIASES = 100;

/** The subset of JSON Schema (draft-07) the config schema uses. */
export interface SchemaNode {
  type?: 'string' | 'integer' | 'number' | 'boolean' | 'object' | 'array';
  description?: string;
  properties?: Record<string, SchemaNode>;
  required?: string[];
  additionalProperties?: boolean | SchemaNode;
  items?: SchemaNode;
  minItems?: number;
  maxItems?: number;
  oneOf?: SchemaNode[];
  enum?: readonly (string | number)[];
  minimum?: number;
  maximum?: number;
  pattern?: string;
  default?: unknown;
  examples?: unknown[];
}

const cidrList = (description: string): SchemaNode => ({
  description,
  oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' }, minItems: 1, maxItems: 2 }],
});

const MAX_MS = MAX_TIMER_MS;
const ms = (def: number, description: string): SchemaNode => ({ type: 'integer', minimum: 0, maximum: MAX_MS, default: def, description });
const restart: SchemaNode = {
  type: 'object',
  description: 'Restart with exponential backoff up to a limit.',
  additionalProperties: false,
  properties: {
    maxRestarts: { type: 'integer', minimum: 0, maximum: MAX_MS, default: 10, description: 'Give up after this many failures in a row.' },
    initialDelayMs: ms(100, 'First delay before a restart; doubles each time.'),
    maxDelayMs: ms(10000, 'Longest delay.'),
    resetAfterMs: ms(30000, 'A run this long counts as healthy and resets the backoff.'),
  },
};
const stopTimeoutMs: SchemaNode = ms(5000, 'SIGTERM, then SIGKILL after this long.');
const FINGERPRINT = '^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){31}$';

const commandService: SchemaNode = {
  type: 'object',
  description: 'A command run in every node. Placeholders: {node} {netns} {address} {dir} {vip} {cluster}.',
  additionalProperties: false,
  required: ['command'],
  properties: {
    name: { type: 'string', description: 'A name for logs and errors.' },
    command: { type: 'array', items: { type: 'string' }, minItems: 1, examples: [['openvpn', '--config', '{dir}/server.conf']] },
    env: { type: 'object', additionalProperties: { type: 'string' } },
    envAllow: {
      type: 'array',
      items: { type: 'string' },
      description: "Only these of the controller's environment variables pass to the service (plus env). Default: all of them.",
    },
    cwd: { type: 'string' },
    user: { oneOf: [{ type: 'string' }, { type: 'integer', minimum: 0 }], description: 'Run as this user (name or uid). Default: root.' },
    group: { oneOf: [{ type: 'string' }, { type: 'integer', minimum: 0 }], description: "Run as this group (name or gid). Default: the user's primary group." },
    restart,
    stopTimeoutMs,
  },
};

const openvpnService: SchemaNode = {
  type: 'object',
  description: 'An OpenVPN 2.6 server in every node (peer-fingerprint mode).',
  additionalProperties: false,
  required: ['openvpn'],
  properties: {
    openvpn: {
      type: 'object',
      additionalProperties: false,
      required: ['clientFingerprints'],
      properties: {
        port: { type: 'integer', minimum: 1, maximum: 65535, default: 1194, description: "When the cluster lists 'ports', this port must be among them." },
        protocol: { type: 'string', enum: ['udp', 'tcp'], default: 'udp' },
        pool: {
          type: 'object',
          description: "Client pools: node k gets the k-th block after 'base'; all of them must fit in IPv4 and miss the VIP's subnet and the node networks.",
          additionalProperties: false,
          required: ['base'],
          properties: { base: { type: 'string', default: '10.8.0.0' }, prefix: { type: 'integer', minimum: 8, maximum: 29, default: 24 } },
        },
        clientFingerprints: {
          type: 'array',
          description: 'SHA-256 fingerprints of the client certificates the servers accept.',
          minItems: 1,
          items: { type: 'string', pattern: FINGERPRINT },
        },
        serverIdentity: {
          type: 'object',
          description: 'The servers’ certificate and key (PEM). Default: a throwaway one made at start.',
          additionalProperties: false,
          required: ['certPem', 'keyPem'],
          properties: {
            certPem: { type: 'string', description: 'The certificate (PEM).' },
            keyPem: { type: 'string', description: 'Its private key (PEM, unencrypted).' },
            fingerprint: { type: 'string', pattern: FINGERPRINT, description: "The certificate's SHA-256 fingerprint, as generateIdentity() returns it (checked if given)." },
          },
        },
        extra: {
          type: 'string',
          description:
            'More server directives, or a whole template with {generated}. Refused in any spelling: daemon, inetd, writepid, log, log-append, syslog, config, management*, local, port, lport, proto, server, status, user, group (use the options).',
        },
        keepalive: {
          type: 'array',
          description: '[interval, timeout] in seconds; the interval shorter than the timeout.',
          items: { type: 'integer', minimum: 1, maximum: 7200 },
          minItems: 2,
          maxItems: 2,
          default: [2, 10],
        },
        binary: { type: 'string', description: 'The openvpn binary (default: looked up in PATH, then /usr/sbin, /sbin, /usr/local/sbin); it must exist.' },
        routePools: { type: 'boolean', default: true, description: "Route each node's pool on the host via the node's address." },
        nat: { type: 'boolean', default: false, description: "Source-NAT the clients' traffic leaving the node to the node's unique address (never the VIP)." },
        user: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_.-]{0,31}$', description: 'Drop privileges to this user after start (e.g. nobody); adds persist-key and persist-tun.', examples: ['nobody'] },
        group: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_.-]{0,31}$', description: 'Drop privileges to this group after start (e.g. nogroup).', examples: ['nogroup'] },
        restart,
        stopTimeoutMs,
      },
    },
  },
};

/** The config file's JSON Schema (draft-07). `schema/cluster.schema.json` is this, serialised. */
export const clusterSchema: SchemaNode & { $schema: string; title: string } = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'netns-cluster cluster config',
  type: 'object',
  additionalProperties: false,
  required: ['name', 'vip', 'uplink'],
  properties: {
    name: {
      type: 'string',
      pattern: `^[a-z][a-z0-9-]{0,${MAX_NAME_BYTES - 1}}$`,
      description: `Short name (at most ${MAX_NAME_BYTES} bytes): it prefixes every object the cluster creates.`,
    },
    nodes: { type: 'integer', minimum: 1, maximum: MAX_NODES, description: 'Number of nodes. Default: the number of CPUs.' },
    vip: cidrList(
      "The shared virtual IP with its prefix ('192.0.2.1/24'), or one IPv4 and one IPv6 for dual stack: a unicast host address (not the network or broadcast address, multicast, loopback, link-local, unspecified or IPv4-mapped), outside the node networks.",
    ),
    ports: {
      type: 'array',
      description: `Services on the VIP (at most ${MAX_PORTS}); traffic to other ports is dropped. Default: every port.`,
      maxItems: MAX_PORTS,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['protocol', 'port'],
        properties: { protocol: { type: 'string', enum: ['udp', 'tcp'] }, port: { type: 'integer', minimum: 1, maximum: 65535 } },
      },
    },
    mode: { type: 'string', enum: ['steer', 'flood'], default: 'steer' },
    hash: { type: 'string', enum: HASH_MODES, default: 'sourceip' },
    buckets: { type: 'integer', minimum: 1, maximum: MAX_BUCKETS, default: 64, description: 'Hash buckets, at least `nodes`.' },
    seed: { type: 'integer', minimum: 0, maximum: 0xffffffff, description: 'jhash seed. Default: derived from the name.' },
    hostNetns: { type: 'string', description: "Namespace that holds the bridge. Default: the caller's own." },
    gateway: cidrList("The nodes' default gateway(s), one per family, each a router on the VIP's subnet (not the VIP); not with a routed uplink."),
    uplink: {
      description: 'How the outside reaches the cluster.',
      oneOf: [
        {
          type: 'object',
          additionalProperties: false,
          required: ['bridge'],
          properties: { bridge: { type: 'string', description: "Host interface to enslave to the cluster bridge (not 'lo')." } },
        },
        {
          type: 'object',
          additionalProperties: false,
          required: ['routed'],
          properties: {
            routed: {
              type: 'object',
              additionalProperties: false,
              required: ['via'],
              properties: { via: { type: 'string', description: "Host interface clients come in on (not 'lo')." } },
            },
          },
        },
      ],
    },
    nodeNetwork: cidrList(
      "Networks for the nodes' unique addresses, clear of the VIP's subnet and of multicast, loopback and link-local ranges. Default 198.18.0.0/24 (+ fd00:198:18::/64 for an IPv6 VIP).",
    ),
    service: { description: 'What runs in every node.', oneOf: [commandService, openvpnService] },
    failback: { type: 'string', enum: ['auto', 'manual'], default: 'auto' },
    metrics: {
      type: 'object',
      additionalProperties: false,
      required: ['listen'],
      description: "netns-cluster up: serve Prometheus metrics over HTTP (GET /metrics).",
      properties: { listen: { type: 'string', description: "Address and port, e.g. '127.0.0.1:9464' or '[::1]:9464'." } },
    },
  },
};

/** A config file that cannot be used. `message` is `file: path: what to fix`. */
export class ConfigError extends Error {
  readonly code = 'ERR_INVALID_CONFIG';
  constructor(
    /** The file, as given. */
    readonly file: string,
    /** The path inside it (`ports[1].port`), or undefined for a file-level problem. */
    readonly field: string | undefined,
    detail: string,
  ) {
    // A path is shown whole unless it is absurdly long (the start and the end say which file).
    const shown = file.length > 200 ? `${file.slice(0, 120)}…${file.slice(-60)}` : file;
    super(capText(field ? `${shown}: ${field}: ${clipQuoted(detail)}` : `${shown}: ${clipQuoted(detail)}`));
    this.name = 'ConfigError';
  }
}

interface Problem {
  path: string;
  message: string;
}

const typeOf = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : Number.isInteger(v) ? 'integer' : typeof v);
const show = (v: unknown): string => (typeOf(v) === 'object' ? 'an object' : typeOf(v) === 'array' ? 'a list' : showValue(v));
const clipKey = (key: string) => (key.length > 60 ? `${key.slice(0, 59)}…` : key);
const join = (path: string, key: string | number) => (typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${clipKey(key)}` : clipKey(key));
const article = (t: string) => (t === 'integer' || t === 'object' || t === 'array' ? `an ${t === 'array' ? 'list' : t}` : t === 'boolean' ? 'true or false' : `a ${t}`);

/** "got …", saying how to write a number or boolean that was quoted. */
function gotFor(s: SchemaNode, v: unknown): string {
  if (typeof v === 'string' && (s.type === 'integer' || s.type === 'number' || s.type === 'boolean')) {
    const t = v.trim();
    const fits = s.type === 'boolean' ? t === 'true' || t === 'false' : t !== '' && /^[-+]?[0-9.e+-]+$/i.test(t) && Number.isFinite(Number(t));
    if (fits) return `got the string ${show(v)}; write ${t} without quotes`;
  }
  return `got ${show(v)}`;
}

function describeType(s: SchemaNode): string {
  if (s.oneOf) return s.oneOf.map(describeType).join(' or ');
  if (s.type === 'array') return `a list of ${s.items?.type ?? 'value'}s`;
  return s.type ? article(s.type) : 'a value';
}

function matchesType(s: SchemaNode, v: unknown): boolean {
  if (!s.type) return true;
  const t = typeOf(v);
  return s.type === t || (s.type === 'number' && t === 'integer');
}

/**
 * Checks `v` against `s`. `values` adds the keywords about values (enum, minimum, maximum,
 * pattern, item counts); without it, only shape: types, unknown and missing keys.
 */
function check(s: SchemaNode, v: unknown, path: string, values: boolean, out: Problem[]): void {
  if (s.oneOf) {
    const tries = s.oneOf.map((branch) => {
      const p: Problem[] = [];
      check(branch, v, path, values, p);
      return { branch, p };
    });
    if (tries.some((t) => t.p.length === 0)) return;
    const fitting = tries.filter((t) => matchesType(t.branch, v));
    if (fitting.length === 0) return void out.push({ path, message: `expected ${describeType(s)}, ${gotFor(s.oneOf.find((b) => b.type) ?? s, v)}` });
    // Objects: the branch whose required key is given (or misspelt) is the one the user meant.
    const keys = typeOf(v) === 'object' ? Object.keys(v as object) : [];
    const choices = fitting.map((t) => `{ ${t.branch.required?.join(', ')}: … }`).join(' or ');
    const meant = fitting.filter((t) => keys.some((k) => t.branch.required?.includes(k)));
    if (meant.length > 1) return void out.push({ path, message: `give exactly one of ${choices}, not ${meant.length}` });
    const misspelt = fitting.filter((t) => keys.some((k) => nearest(k, t.branch.required ?? [])));
    const pick = meant[0] ?? (misspelt.length === 1 ? misspelt[0] : undefined);
    if (!pick && fitting.length > 1 && typeOf(v) === 'object') return void out.push({ path, message: `give ${choices}` });
    out.push(...(pick ?? fitting[0]).p);
    return;
  }
  if (!matchesType(s, v)) return void out.push({ path, message: `expected ${describeType(s)}, ${gotFor(s, v)}` });
  if (s.type === 'object') {
    const o = v as Record<string, unknown>;
    const props = s.properties ?? {};
    for (const [k, val] of Object.entries(o)) {
      if (k in props) check(props[k], val, join(path, k), values, out);
      else if (typeof s.additionalProperties === 'object') check(s.additionalProperties, val, join(path, k), values, out);
      else if (s.additionalProperties === false) {
        const near = nearest(k, Object.keys(props));
        out.push({ path: join(path, k), message: `unknown field${near ? `; did you mean '${near}'?` : ''} (known: ${Object.keys(props).join(', ')})` });
      }
    }
    for (const r of s.required ?? []) if (!(r in o)) out.push({ path: join(path, r), message: `is required but missing${props[r]?.description ? ` (${props[r].description!.replace(/\.$/, '')})` : ''}` });
  }
  if (s.type === 'array') {
    const a = v as unknown[];
    if (s.items) a.forEach((item, i) => check(s.items!, item, join(path, i), values, out));
    if (values && s.minItems !== undefined && a.length < s.minItems) out.push({ path, message: `give at least ${s.minItems} item(s)` });
    if (values && s.maxItems !== undefined && a.length > s.maxItems) out.push({ path, message: `give at most ${s.maxItems} item(s), got ${a.length}` });
  }
  if (!values) return;
  if (s.enum && !s.enum.includes(v as string)) out.push({ path, message: `must be one of ${s.enum.join(', ')}, got ${show(v)}` });
  if (typeof v === 'number' && s.minimum !== undefined && v < s.minimum) out.push({ path, message: `must be at least ${s.minimum}, got ${v}` });
  if (typeof v === 'number' && s.maximum !== undefined && v > s.maximum) out.push({ path, message: `must be at most ${s.maximum}, got ${v}` });
  if (typeof v === 'string' && s.pattern && !new RegExp(s.pattern).test(v)) out.push({ path, message: `${show(v)} does not match ${s.pattern}` });
}

/** The value's problems against the config schema (shape only, or shape and values). */
export function schemaProblems(value: unknown, o: { values?: boolean } = {}): Problem[] {
  const out: Problem[] = [];
  check(clusterSchema, value, '', o.values ?? true, out);
  return out;
}

/** Parses a config file's text: JSON for `.json`, YAML for `.yaml`/`.yml`. */
export function parseConfigText(file: string, text: string): unknown {
  if (text.startsWith('\uFEFF')) text = text.slice(1); // a UTF-8 byte-order mark, as some editors write
  try {
    return parseText(file, text);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    // A parser giving up (nesting too deep for the stack, say) is still about this file.
    throw new ConfigError(file, undefined, `cannot be parsed: ${String((e as Error).message ?? e).slice(0, 120)}`);
  }
}

/** JSON.parse keeps the last of two equal keys without a word; a config says so, as for YAML. */
function checkJsonKeysUnique(file: string, text: string): void {
  let dup;
  try {
    dup = parseDocument(text, { uniqueKeys: true }).errors.find((e) => e.code === 'DUPLICATE_KEY');
  } catch {
    return; // JSON that YAML cannot read: JSON.parse had the last word
  }
  if (!dup) return;
  const at = dup.linePos?.[0];
  throw new ConfigError(at ? `${file}:${at.line}:${at.col}` : file, undefined, 'not valid JSON here: a key is given twice in one object (JSON.parse would silently keep the last)');
}

/** Deeper than this, a config is not one (a cluster's has a few levels); parsers are not asked to recurse into it. */
const MAX_NESTING = 64;

/**
 * The deepest nesting of `[`/`{` in JSON or YAML flow syntax, outside quoted strings and comments,
 * found in one linear pass: recursive parsers must never see a file nested deep enough to exhaust
 * the stack (a stack overflow inside a parser can take the whole process down, not just throw).
 */
function nesting(text: string, yaml: boolean): number {
  let depth = 0;
  let max = 0;
  let quote = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = '';
      continue;
    }
    if (c === '"' || (yaml && c === "'")) quote = c;
    else if (yaml && c === '#' && (i === 0 || /\s/.test(text[i - 1]))) {
      const nl = text.indexOf('\n', i);
      i = nl < 0 ? text.length : nl;
    } else if (c === '[' || c === '{') max = Math.max(max, ++depth);
    else if ((c === ']' || c === '}') && depth > 0) depth--;
  }
  return max;
}

function parseText(file: string, text: string): unknown {
  const ext = extname(file).toLowerCase();
  if (nesting(text, ext !== '.json') > MAX_NESTING)
    throw new ConfigError(file, undefined, `is nested more than ${MAX_NESTING} levels deep; a cluster config has a few levels (see schema/cluster.schema.json)`);
  if (ext === '.json') {
    try {
      const value = JSON.parse(text) as unknown;
      checkJsonKeysUnique(file, text);
      return value;
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      const msg = (e as Error).message;
      const pos = /position (\d+)/.exec(msg);
      if (!pos) throw new ConfigError(file, undefined, `not valid JSON: ${msg}`);
      const before = text.slice(0, Number(pos[1])).split('\n');
      throw new ConfigError(`${file}:${before.length}:${before.at(-1)!.length + 1}`, undefined, `not valid JSON: ${msg.replace(/ in JSON at position \d+.*$/, '')}`);
    }
  }
  if (ext === '.yaml' || ext === '.yml') {
    const doc = parseDocument(text, { uniqueKeys: true });
    const err = doc.errors[0];
    if (err) {
      const at = err.linePos?.[0];
      const what = err.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
      throw new ConfigError(at ? `${file}:${at.line}:${at.col}` : file, undefined, `not valid YAML: ${what}`);
    }
    try {
      return doc.toJS({ maxAliasCount: MAX_YAML_ALIASES }) as unknown;
    } catch (e) {
      if (/alias/i.test((e as Error).message))
        throw new ConfigError(file, undefined, `its YAML aliases expand too far (a resource-exhaustion 'alias bomb'; at most ${MAX_YAML_ALIASES} alias uses); write the values out`);
      throw e;
    }
  }
  throw new ConfigError(file, undefined, `unknown file type '${ext || '(none)'}'; name it .json, .yaml or .yml`);
}

/**
 * Checks a parsed config: shape first (unknown keys, wrong types), then {@link resolveSpec}'s own
 * checks (which say best what to fix), then the schema's remaining value checks.
 */
export function checkConfig(file: string, value: unknown): { spec: ClusterSpec; resolved: ResolvedSpec } {
  if (typeOf(value) !== 'object') throw new ConfigError(file, undefined, `expected a mapping of fields (name, vip, uplink, …), got ${value == null ? 'an empty file' : show(value)}`);
  const shape = schemaProblems(value, { values: false });
  if (shape.length) throw new ConfigError(file, shape[0].path, shape[0].message);
  const spec = value as ClusterSpec;
  let resolved: ResolvedSpec;
  try {
    resolved = resolveSpec(spec);
  } catch (e) {
    if (e instanceof InvalidArgumentError) throw fromInvalidArgument(file, spec, e);
    throw new ConfigError(file, undefined, `cannot be checked: ${String((e as Error)?.message ?? e).slice(0, 200)}`);
  }
  const rest = schemaProblems(value);
  if (rest.length) throw new ConfigError(file, rest[0].path, rest[0].message);
  return { spec, resolved };
}

/**
 * An {@link InvalidArgumentError} from the library as a config error of `file`. Fields the library
 * names relative to the OpenVPN options (`pool.base`) get their full path.
 */
export function fromInvalidArgument(file: string, spec: Partial<ClusterSpec>, e: InvalidArgumentError): ConfigError {
  let field = e.field;
  const head = field.split(/[.[]/)[0];
  const ovpn = (spec.service as { openvpn?: object } | undefined)?.openvpn;
  if (!(head in (clusterSchema.properties ?? {})) && ovpn && head in (openvpnService.properties!.openvpn.properties ?? {})) field = `service.openvpn.${field}`;
  const detail = e.message.startsWith(`${e.field}: `) ? e.message.slice(e.field.length + 2) : e.message;
  return new ConfigError(file, field, detail);
}

function fileKind(st: { isDirectory(): boolean; isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSocket(): boolean }): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * A config file's text: a regular file only (a FIFO, a device or a directory is refused at once,
 * never read), at most {@link MAX_CONFIG_BYTES}, UTF-8 (a byte-order mark is dropped).
 */
export async function readConfigFile(file: string): Promise<string> {
  if (typeof file !== 'string' || file.length === 0 || file.includes('\0'))
    throw new ConfigError(showValue(file), undefined, 'give the path of a .json, .yaml or .yml file');
  let fh;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
    fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new ConfigError(file, undefined, 'no such file');
    // A socket (or a device without a driver) cannot even be opened: say what it is.
    const st = await stat(file).catch(() => undefined);
    if (st && !st.isFile()) throw new ConfigError(file, undefined, `is ${fileKind(st)}, not a regular file; give the path of a .json, .yaml or .yml file`);
    throw new ConfigError(file, undefined, `cannot read it: ${err.code === 'EACCES' ? 'permission denied' : err.message}`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new ConfigError(file, undefined, `is ${fileKind(st)}, not a regular file; give the path of a .json, .yaml or .yml file`);
    const tooBig = () => new ConfigError(file, undefined, `is larger than ${MAX_CONFIG_BYTES / 1024} KiB; a cluster config is a few KiB at most`);
    if (st.size > MAX_CONFIG_BYTES) throw tooBig();
    // Read one byte past the limit: files whose size stat does not know (in /proc) are capped too.
    const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, length, buf.length - length, null).catch((e: NodeJS.ErrnoException) => {
        throw new ConfigError(file, undefined, `cannot read it: ${e.code ?? e.message}`);
      });
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > MAX_CONFIG_BYTES) throw tooBig();
    }
    const bytes = buf.subarray(0, length);
    if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff))
      throw new ConfigError(file, undefined, 'is UTF-16 text (it starts with a UTF-16 byte-order mark); save it as UTF-8');
    try {
      return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
    } catch {
      throw new ConfigError(file, undefined, 'is not UTF-8 text; save it as UTF-8');
    }
  } finally {
    await fh.close();
  }
}

/** Reads, parses and checks a config file. Throws {@link ConfigError} naming the file; creates nothing. */
export async function loadConfig(file: string): Promise<ClusterSpec> {
  const text = await readConfigFile(file);
  return checkConfig(file, parseConfigText(file, text)).spec;
}
