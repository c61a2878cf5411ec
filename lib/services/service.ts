/**
 * Services in the nodes: one process per node, started inside the node's namespace (through the
 * netns-exec helper), supervised — restarted with exponential backoff up to a limit, stopped with
 * SIGTERM then SIGKILL, optionally health-checked — with its output as line-based logs.
 * @module
 */
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { chown, readdir, readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { CGROUP_FALLBACK_WARNING, cgroupPopulated, emptyCgroup, killCgroup, removeClusterCgroupDir, serviceCgroup, signalCgroup } from './cgroup.js';
import { Type, type SchemaOptions, type Static, type TSchema, type TUnsafe } from '@sinclair/typebox';
import { DEFAULT_RESTART, DEFAULT_STOP_TIMEOUT_MS, MAX_TIMER_MS } from '../util/defaults.js';
import { InvalidArgumentError } from '../util/errors.js';
import { annotate, collect, invalid, refusal, structuralProblems, throwProblems, type Problem, type WalkOptions } from '../util/schema.js';
import { got, nearest, show } from '../util/shape.js';
import { resolveCredentials, resolveGroup, resolveUser, spawnInNetns } from '../kernel/spawn.js';
import { sysctlPath, type Cidr } from '../util/validate.js';

/** What a service knows about the node it runs in. */
export interface ServiceContext {
  cluster: string;
  index: number;
  /** The node's namespace name. */
  netns: string;
  /** The node's unique address (first node network). */
  address: string;
  addresses: string[];
  /** The VIP(s), without prefix. */
  vips: string[];
  /** A private directory for this node (mode 0700), e.g. for configs and sockets. */
  dir: string;
}

export interface HealthCheck {
  /** Default 2 s. */
  intervalMs?: number;
  /** Consecutive failures before the process is killed and restarted. Default 3. */
  failures?: number;
  check(ctx: ServiceContext): Promise<boolean>;
}

/**
 * A service to run in every node: the data a config file can hold ({@link CommandServiceSchema}:
 * name, command, env, envAllow, cwd, user, group, restart, stopTimeoutMs) plus what only code can
 * give. `command`, `env` and `cwd` may use the placeholders {node}, {netns}, {address}, {dir},
 * {vip} and {cluster}.
 */
export interface ServiceDefinition extends CommandServiceData {
  healthCheck?: HealthCheck;
  /** Called before a node's first start: write configs, keys. */
  prepare?(ctx: ServiceContext): Promise<void>;
  /** Resolves once a fresh process serves (e.g. its control socket answers). Default: at once. */
  ready?(ctx: ServiceContext, signal: AbortSignal): Promise<void>;
  /** Called when a node's process has exited (release connections to it). */
  exited?(ctx: ServiceContext): void;
  /** Service-specific status of a running node (e.g. VPN clients). */
  status?(ctx: ServiceContext): Promise<Record<string, unknown>>;
  /**
   * Buckets this node just lost to other nodes (failover, failback, a manual move). Sessions of
   * those flows are dead here: a service can tell their clients at once (OpenVPN sends RESTART) so
   * they reconnect to the new owner instead of waiting for a timeout. `bucketOf` hashes a flow as
   * the kernel does.
   */
  bucketsLost?(ctx: ServiceContext, buckets: ReadonlySet<number>, bucketOf: (flow: { address: string; port?: number; destPort?: number }) => number): Promise<void>;
  /** Networks whose traffic leaving the node gets the node's unique address (source NAT), e.g. VPN client pools. */
  nodeSnat?(ctx: ServiceContext): string[];
  /** Networks the host should route to this node via its unique address (e.g. VPN client pools). */
  hostRoutes?(ctx: ServiceContext): string[];
  /** Sysctls to set in every node before it starts (e.g. net.ipv4.ip_forward for a VPN). */
  nodeSysctls?: Record<string, string | number | boolean>;
  /**
   * What the service reads besides its options, as a fingerprint (e.g. OpenVPN's own server.conf:
   * its directives): an update restarts the service when it differs, even if the options are equal.
   */
  readonly revision?: string;
}

export type ServiceState = 'stopped' | 'starting' | 'running' | 'exited' | 'backing-off' | 'failed';

export interface LogLine {
  index: number;
  stream: 'stdout' | 'stderr';
  line: string;
}

export interface ServiceEvents {
  state: [{ index: number; state: ServiceState }];
  log: [LogLine];
  /** The process exited while it was meant to run. `at` is performance.now() when Node saw it. */
  exit: [{ index: number; pid: number | undefined; code: number | null; signal: NodeJS.Signals | null; at: number }];
  /** A (re)started process is ready to serve. */
  ready: [{ index: number; pid: number | undefined; restarts: number }];
  /** The restart limit was reached. */
  failed: [{ index: number; restarts: number }];
  unhealthy: [{ index: number }];
}

export const PLACEHOLDERS = ['node', 'netns', 'address', 'dir', 'vip', 'cluster'] as const;

/** What a placeholder looks like: the one pattern that filling and validation share. */
const PLACEHOLDER = /\{([a-z]+)\}/g;
const KNOWN_PLACEHOLDERS = `known: ${PLACEHOLDERS.map((p) => `{${p}}`).join(' ')}`;

/** The first placeholder in `text` that is not one of {@link PLACEHOLDERS}, if any. */
function unknownPlaceholder(text: string): string | undefined {
  for (const m of text.matchAll(PLACEHOLDER)) if (!(PLACEHOLDERS as readonly string[]).includes(m[1])) return m[0];
  return undefined;
}

/** Replaces {node} {netns} {address} {dir} {vip} {cluster}; an unknown placeholder is an error. */
export function fillPlaceholders(field: string, text: string, ctx: ServiceContext): string {
  const values: Record<(typeof PLACEHOLDERS)[number], string> = {
    node: String(ctx.index),
    netns: ctx.netns,
    address: ctx.address,
    dir: ctx.dir,
    vip: ctx.vips[0] ?? '',
    cluster: ctx.cluster,
  };
  return text.replace(PLACEHOLDER, (m, key: string) => {
    if (!(PLACEHOLDERS as readonly string[]).includes(key)) throw new InvalidArgumentError(field, `unknown placeholder ${clip(m)}; ${KNOWN_PLACEHOLDERS}`);
    return values[key as (typeof PLACEHOLDERS)[number]];
  });
}

export { MAX_TIMER_MS };

/** A value for a message: never more than ~40 characters of it. */
function clip(v: string, max = 40): string {
  const flat = v.replace(/[\0-\x1f\x7f]/g, (c) => (c === '\0' ? '\\0' : c === '\n' ? '\\n' : '?'));
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Why `v` is not a duration from `min` ms, or undefined: the one wording of that rule. */
function durationProblem(v: unknown, min: number): string | undefined {
  const rule = `must be a whole number of milliseconds from ${min} to ${MAX_TIMER_MS}`;
  if (typeof v !== 'number') return `${rule}, ${got(v, 'integer')}`;
  if (!Number.isInteger(v)) return `${rule}, got ${v}${Number.isFinite(v) ? `; round it to ${Math.max(min, Math.round(v))}` : ''}`;
  if (v < min) return `${rule}, got ${v}`;
  if (v > MAX_TIMER_MS) return `${rule} (about 24.8 days), got ${v}: Node would fire such a timer after 1 ms`;
  return undefined;
}

/** Why `v` is not a count (a whole number from `min` to 2147483647), or undefined. */
function countProblem(v: unknown, min: number): string | undefined {
  const rule = `must be a whole number ≥ ${min} (at most ${MAX_TIMER_MS})`;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > MAX_TIMER_MS) return `${rule}, ${got(v, 'integer')}`;
  return undefined;
}

/**
 * A duration option: a whole number of milliseconds from `min` to 2147483647 (Node turns longer
 * timers into 1 ms). Refuses numeric strings, saying to drop the quotes.
 */
export function checkDuration(field: string, v: unknown, min = 0): number {
  const p = durationProblem(v, min);
  if (p) throw new InvalidArgumentError(field, p);
  return v as number;
}

/** A count option (e.g. maxRestarts): a whole number from `min` to 2147483647. */
export function checkCount(field: string, v: unknown, min = 0): number {
  const p = countProblem(v, min);
  if (p) throw new InvalidArgumentError(field, p);
  return v as number;
}

/** The schema of a duration in milliseconds (at most 2^31-1: what Node's timers honour). */
export function DurationMs(min: number, options: SchemaOptions = {}) {
  return annotate(Type.Integer({ minimum: min, maximum: MAX_TIMER_MS, ...options }), { message: (v) => durationProblem(v, min)! });
}

function Count(min: number, options: SchemaOptions = {}) {
  return annotate(Type.Integer({ minimum: min, maximum: MAX_TIMER_MS, ...options }), { message: (v) => countProblem(v, min)! });
}

/** A string without NUL bytes (the kernel would cut it there); `what` says what it must be. */
function Text(what: (field: string) => string, options: SchemaOptions & { minLength?: number } = {}) {
  return annotate(Type.String({ pattern: '^[^\\u0000]*$', ...options }), {
    message: (v, field) =>
      typeof v !== 'string'
        ? `must be ${what(field)}, ${got(v)}`
        : v === ''
          ? `must be ${what(field)}, got an empty string`
          : `must not contain NUL bytes (got ${show(v)})`,
  });
}

/** A user or group: a name from /etc/passwd or /etc/group, or a numeric id. */
function Account(what: 'user' | 'group', description: string) {
  const resolve = what === 'user' ? resolveUser : resolveGroup;
  return annotate(Type.Union([Type.String({ minLength: 1 }), Type.Integer({ minimum: 0, maximum: 4294967294 })], { description }), {
    message: (v) => refusal(() => resolve(what, v)) ?? `must be a ${what} name or a numeric id, ${got(v)}`,
  });
}

/** A restart policy: exponential backoff up to a limit (a service's `restart`, and openvpn()'s). */
export const RestartPolicySchema = annotate(
  Type.Object(
    {
      maxRestarts: Type.Optional(Count(0, { default: DEFAULT_RESTART.maxRestarts, description: 'Give up after this many failures in a row (a run that lasted resetAfterMs resets the count).' })),
      initialDelayMs: Type.Optional(DurationMs(0, { default: DEFAULT_RESTART.initialDelayMs, description: 'First delay before a restart; doubles each time.' })),
      maxDelayMs: Type.Optional(DurationMs(0, { default: DEFAULT_RESTART.maxDelayMs, description: 'Longest delay.' })),
      resetAfterMs: Type.Optional(DurationMs(0, { default: DEFAULT_RESTART.resetAfterMs, description: 'A run this long counts as healthy and resets the backoff.' })),
    },
    { additionalProperties: false, description: 'Restart with exponential backoff up to a limit.' },
  ),
  { message: (v) => `must be an object such as { maxRestarts: 10, initialDelayMs: 100 }, ${got(v)}` },
);
export type RestartPolicy = Static<typeof RestartPolicySchema>;
/** The data fields of a {@link ServiceDefinition}, as the schema defines them. */
export type CommandServiceData = Static<typeof CommandServiceSchema>;

/** SIGTERM, then SIGKILL after this long. */
export const StopTimeoutSchema = () => DurationMs(0, { default: DEFAULT_STOP_TIMEOUT_MS, description: 'SIGTERM, then SIGKILL after this long.' });

const ENV_NAME = '^[^=\\u0000]+$';
const envName = () => annotate(Type.String({ pattern: ENV_NAME }), { message: (v) => refusal(() => checkEnvName('', v)) ?? `must be a variable name, ${got(v)}` });
const COMMAND_EXAMPLE = "['openvpn', '--config', '{dir}/server.conf']";
const HEALTH_KEYS = ['intervalMs', 'failures', 'check'] as const;
const FUNCTION_KEYS = ['prepare', 'ready', 'exited', 'status', 'bucketsLost', 'nodeSnat', 'hostRoutes'] as const;
/** Keys only a definition written in code has: functions, a health check, sysctls (`serverFingerprint` is what openvpn() adds). */
const RUNTIME_KEYS = ['healthCheck', 'nodeSysctls', ...FUNCTION_KEYS, 'serverFingerprint', 'revision'] as const;

/**
 * A command service as data: what a config file can hold. {@link ServiceDefinition} adds what
 * only code can give (functions, a health check). `command`, `env` and `cwd` may use the
 * placeholders {node} {netns} {address} {dir} {vip} {cluster}.
 */
export const CommandServiceSchema = annotate(
  Type.Object(
    {
      name: Type.Optional(
        annotate(Type.String({ minLength: 1, maxLength: 64, pattern: '^[^\\u0000-\\u001f\\u007f]*$', description: 'A name for logs and errors.' }), {
          message: (v) =>
            typeof v !== 'string' || v === '' ? `must be a non-empty string, ${v === '' ? 'got an empty string' : got(v)}` : `must be at most 64 characters without control characters, got ${show(v)}`,
        }),
      ),
      command: annotate(
        Type.Array(
          Text((field) => (field.endsWith('[0]') ? 'the program (a non-empty string)' : 'a string')),
          { minItems: 1, description: 'The program and its arguments.', examples: [['openvpn', '--config', '{dir}/server.conf']] },
        ),
        {
          missing: `is missing: give the program and its arguments, e.g. ${COMMAND_EXAMPLE} (or use { openvpn: { … } })`,
          message: (v) => `must be a non-empty array of strings, e.g. ${COMMAND_EXAMPLE}, ${Array.isArray(v) ? 'got an empty array' : got(v)}`,
        },
      ),
      env: Type.Optional(
        annotate(
          Type.Record(
            Type.String(),
            annotate(Type.String({ pattern: '^[^\\u0000]*$' }), {
              message: (v) =>
                typeof v === 'number' || typeof v === 'boolean' ? `must be a string, got ${v}; write '${v}' in quotes` : typeof v === 'string' ? `must not contain NUL bytes (got ${show(v)})` : `must be a string, ${got(v)}`,
            }),
            { description: "Variables for the service, on top of the controller's environment (or of envAllow's part of it)." },
          ),
          { message: (v) => `must map variable names to strings, e.g. { LOG_DIR: '{dir}' }, ${got(v)}` },
        ),
      ),
      envAllow: Type.Optional(
        annotate(
          Type.Array(envName(), {
            description:
              "Names of the controller's environment variables the service gets (plus env). Default: all of them, as a child process normally inherits; []: none, only env (programs are then looked up in /bin:/usr/bin unless env sets PATH).",
          }),
          { message: (v) => `must be an array of variable names, e.g. ['PATH', 'LANG'], ${got(v)}` },
        ),
      ),
      cwd: Type.Optional(Text(() => 'a directory (a non-empty string)', { minLength: 1, description: 'The working directory.' })),
      user: Type.Optional(
        Account(
          'user',
          "Run as this user: a name from /etc/passwd or a numeric id. The helper enters the node's namespace (and the service's cgroup) as root, then switches; the node's private directory ({dir}) is given to this user and group. Default: root.",
        ),
      ),
      group: Type.Optional(
        Account(
          'group',
          "Run as this group: a name from /etc/group or a numeric id. Default: the user's primary group. Supplementary groups: none (root's are dropped whenever user or group is given).",
        ),
      ),
      restart: Type.Optional(RestartPolicySchema),
      stopTimeoutMs: Type.Optional(StopTimeoutSchema()),
    },
    { additionalProperties: false, description: 'A command run in every node. Placeholders: {node} {netns} {address} {dir} {vip} {cluster}.' },
  ),
  { runtimeKeys: RUNTIME_KEYS },
);

/** Every key a service definition may have. */
export const SERVICE_KEYS = [...Object.keys(CommandServiceSchema.properties), ...RUNTIME_KEYS] as readonly string[];

/**
 * A service definition may carry a check against the whole cluster under this key; resolveSpec
 * calls it with the cluster's facts (nodes, VIPs, ports, node networks), once those are valid.
 */
export const CLUSTER_CHECK: unique symbol = Symbol('netns-cluster.clusterCheck');

/** A kind of service a spec may give as `{ <key>: options }` (e.g. `{ openvpn: {...} }`): its options' schema and its factory. */
export interface ServiceKind {
  /** The options' schema (structure only; `make` checks the rest). */
  schema: TSchema;
  /** The definition for checked options; throws an InvalidArgumentError naming `service.<key>.…`. */
  make(options: never): ServiceDefinition;
}

const kinds = new Map<string, ServiceKind>();

/** Facts about the cluster a service definition may check itself against (see openvpn()). */
export interface ClusterFacts {
  /** The cluster's name (node k's namespace is `<name>-n<k>`), when it is valid. */
  name?: string;
  nodes: number;
  vips: Cidr[];
  ports: { protocol: 'udp' | 'tcp'; port: number }[];
  nodeNetworks: Cidr[];
}

/**
 * Registers a service kind: `{ <key>: options }` in a spec then becomes `kind.make(options)`.
 * The OpenVPN service registers itself as `openvpn` when its module is loaded (the package root
 * loads it), so the spec does not depend on it.
 */
export function registerServiceKind(key: string, kind: ServiceKind): void {
  kinds.set(key, kind);
}

/**
 * The schema of a spec's `service`: a command service, or `{ <key>: options }` for each kind in
 * `others` (the spec gives `{ openvpn: … }`). Exactly one of them.
 */
export function serviceSchema<K extends Record<string, TSchema>>(others: K) {
  const keys = Object.keys(others);
  const alone = (k: string) => () =>
    `unknown field: ${k === 'openvpn' ? 'an OpenVPN' : `a ${k}`} service is { ${k}: { … } } alone; its options (restart, stopTimeoutMs, …) go inside '${k}'`;
  const wrapped = keys.map((k) => annotate(Type.Object({ [k]: others[k] }, { additionalProperties: false, required: [k] }), { unknown: alone(k) }));
  const shapes = ['{ command: [...] }', ...keys.map((k) => `{ ${k}: { … } }`)].join(' or ');
  const u = Type.Union([CommandServiceSchema, ...wrapped] as [typeof CommandServiceSchema, ...TSchema[]], { description: 'What runs in every node.' });
  return annotate(u, {
    message: (v) => `expected { command: ['program', 'arg', …] }${keys.map((k) => ` or { ${k}: { … } }`).join('')}, ${got(v)}`,
    choice: { keys: ['command', ...keys], none: `give one of ${shapes}`, many: `give exactly one of ${shapes}, not both`, fallback: 0 },
  }) as unknown as TUnsafe<Static<typeof CommandServiceSchema> | { [P in keyof K]: { [Q in P]: Static<K[P]> } }[keyof K]>;
}

/**
 * Checks a service definition (or `{ openvpn: {...} }`, which the registered OpenVPN kind turns
 * into the definition openvpn() makes) and returns it: shape (the schema), placeholders,
 * credentials, functions. Every refusal is an InvalidArgumentError naming the field and saying
 * what to fix, with every problem found in its `problems`. Functions (prepare, ready…) must be
 * functions; what they do is the caller's business. `runtime: false` checks the data form a
 * config file can hold (no functions, health check or sysctls).
 */
export function checkServiceDefinition(field: string, s: unknown, o: WalkOptions = { runtime: true }): ServiceDefinition {
  const registered = Object.fromEntries([...kinds].map(([k, kind]) => [k, kind.schema]));
  if (isPlainObject(s) && s.openvpn !== undefined && !kinds.has('openvpn'))
    throw new InvalidArgumentError(`${field}.openvpn`, 'the OpenVPN service is not loaded: import netns-cluster (the package root) or its openvpn/service module before resolving a spec with { openvpn: { … } }');
  const problems = structuralProblems(serviceSchema(registered), s, field, o);
  // Which `{ … }` it is must be clear; then each part is checked on its own, so a mistake in one
  // field does not hide the others' (a check of a broken field is skipped).
  if (!isPlainObject(s) || problems.some((p) => p.field === field || !p.field.startsWith(`${field}.`))) throw invalid(problems);
  const kind = Object.keys(s).find((k) => kinds.has(k));
  const own = (p: Problem) => p.field.slice(field.length + 1).split(/[.[]/)[0];
  if (kind) {
    // The kind's own check reports its options' structure and the rest; anything else is beside them.
    if (problems.some((p) => own(p) !== kind)) throw invalid(problems);
    return kinds.get(kind)!.make(s[kind] as never);
  }
  checkServiceData(field, s, problems, new Set(problems.map(own)));
  throwProblems(problems);
  return s as unknown as ServiceDefinition;
}

/** The checks of a command service that JSON Schema cannot express, on its fields that are not `broken`. */
function checkServiceData(field: string, s: Record<string, unknown>, out: Problem[], broken: ReadonlySet<string>): void {
  const ok = (k: string) => s[k] !== undefined && !broken.has(k);
  if (ok('command')) {
    const command = s.command as string[];
    if (command[0] === '') out.push({ field: `${field}.command[0]`, message: 'must be the program (a non-empty string), got an empty string' });
    command.forEach((c, i) => collect(out, () => checkPlaceholders(`${field}.command[${i}]`, c)));
  }
  for (const [k, v] of Object.entries((ok('env') ? s.env : {}) as Record<string, string>)) {
    if (collect(out, () => checkEnvName(`${field}.env`, k)) === undefined) continue;
    collect(out, () => checkPlaceholders(`${field}.env.${clip(k, 30)}`, v));
  }
  if (ok('cwd')) collect(out, () => checkPlaceholders(`${field}.cwd`, s.cwd as string));
  if ((s.user !== undefined || s.group !== undefined) && !broken.has('user') && !broken.has('group')) collect(out, () => resolveCredentials(field, s.user, s.group));
  if (s.healthCheck !== undefined) {
    const hc = s.healthCheck;
    const f = `${field}.healthCheck`;
    if (!isPlainObject(hc)) out.push({ field: f, message: `must be an object { check(ctx) { … }, intervalMs, failures }, ${got(hc)}` });
    else {
      for (const k of Object.keys(hc))
        if (!(HEALTH_KEYS as readonly string[]).includes(k)) {
          const near = nearest(k, HEALTH_KEYS);
          out.push({ field: `${f}.${clip(k, 30)}`, message: `unknown field${near ? `; did you mean '${near}'?` : ''}; known fields are ${HEALTH_KEYS.join(', ')}` });
        }
      if (typeof hc.check !== 'function') out.push({ field: `${f}.check`, message: `must be a function (ctx) => Promise<boolean>, ${got(hc.check)}` });
      if (hc.intervalMs !== undefined) collect(out, () => checkDuration(`${f}.intervalMs`, hc.intervalMs, 1));
      if (hc.failures !== undefined) collect(out, () => checkCount(`${f}.failures`, hc.failures, 1));
    }
  }
  for (const k of FUNCTION_KEYS) if (s[k] !== undefined && typeof s[k] !== 'function') out.push({ field: `${field}.${k}`, message: `must be a function, ${got(s[k])}` });
  if (s.nodeSysctls !== undefined) {
    const f = `${field}.nodeSysctls`;
    if (!isPlainObject(s.nodeSysctls)) out.push({ field: f, message: `must map sysctl keys to values, e.g. { 'net.ipv4.ip_forward': 1 }, ${got(s.nodeSysctls)}` });
    else
      for (const [k, v] of Object.entries(s.nodeSysctls)) {
        if (k.includes('\0')) {
          out.push({ field: f, message: `the key '${clip(k)}' contains a NUL byte` });
          continue;
        }
        if (refusal(() => sysctlPath(k)))
          out.push({ field: f, message: `'${clip(k)}' is not a per-namespace sysctl; use a net.* key such as net.ipv4.ip_forward (write keys containing dots in interface names with '/')` });
        else if (!['string', 'number', 'boolean'].includes(typeof v) || (typeof v === 'string' && v.includes('\0')) || (typeof v === 'number' && !Number.isFinite(v)))
          out.push({ field: `${f}.${clip(k, 40)}`, message: `must be a string, a finite number or a boolean, ${got(v)}` });
      }
  }
}

function checkPlaceholders(field: string, text: string): void {
  const bad = unknownPlaceholder(text);
  if (bad) throw new InvalidArgumentError(field, `unknown placeholder ${clip(bad)}; ${KNOWN_PLACEHOLDERS}`);
}

/** An environment variable name: non-empty, without '=' or NUL. */
function checkEnvName(field: string, k: unknown): string {
  if (typeof k !== 'string' || k === '') throw new InvalidArgumentError(field, `a variable name must be a non-empty string, ${k === '' ? 'got an empty string' : got(k)}`);
  if (k.includes('=') || k.includes('\0'))
    throw new InvalidArgumentError(field, `'${clip(k)}' is not a variable name: it must not contain '=' or NUL bytes`);
  return k;
}

/** Checks a restart policy (for a service's `restart`, and for options that take one, such as openvpn()'s). */
export function checkRestartPolicy(field: string, r: unknown): RestartPolicy {
  throwProblems(structuralProblems(RestartPolicySchema, r, field));
  return r as RestartPolicy;
}

/** The service's environment: the controller's (all of it, or the `envAllow` part), then `env` with placeholders filled. */
export function serviceEnv(def: Pick<ServiceDefinition, 'env' | 'envAllow'>, ctx: ServiceContext): Record<string, string> {
  const env: Record<string, string> = {};
  const allowed = def.envAllow ?? Object.keys(process.env);
  for (const k of allowed) {
    const v = process.env[k];
    if (v !== undefined) env[k] = v;
  }
  for (const [k, v] of Object.entries(def.env ?? {})) env[k] = fillPlaceholders(`env.${k}`, v, ctx);
  return env;
}

/** How a node's service is contained: its own cgroup v2 group, or (fallback) its own process group. */
export type Containment = 'cgroup' | 'process-group';

export interface NodeServiceOptions {
  /**
   * `auto` (default): a cgroup v2 group `<cgroup2>/netns-cluster/<cluster>/node<index>` when
   * cgroup2 is mounted and writable, otherwise a process group of its own with a warning (see
   * {@link NodeService.warning}). `cgroup`: the group or a failed start. `process-group`: never a cgroup.
   */
  containment?: 'auto' | Containment;
  /**
   * A service of the cluster's host namespace rather than of a node (BIRD, see lib/announce): the
   * name of its group under the cluster's, `host-<name>`, instead of `node<index>`. Its context's
   * `netns` is then the host namespace (a name, or a path such as /proc/PID/ns/net).
   */
  group?: string;
}

/** The error a start gets when a stop() or dispose() overtook it. `code` is `ABORT_ERR`. */
function stoppedError(ctx: ServiceContext, what: string): Error {
  const e = new Error(`node ${ctx.index}: ${what} stopped before it was ready`);
  e.name = 'AbortError';
  (e as NodeJS.ErrnoException).code = 'ABORT_ERR';
  return e;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether a process that is not a zombie is in process group `pgid` (from /proc/PID/stat). */
async function processGroupRuns(pgid: number): Promise<boolean> {
  try {
    process.kill(-pgid, 0);
  } catch {
    return false;
  }
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let stat: string;
    try {
      stat = await readFile(`/proc/${d}/stat`, 'utf8');
    } catch {
      continue; // gone
    }
    // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so parse from the last ')'.
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(pgrp) === pgid && state !== 'Z' && state !== 'X') return true;
  }
  return false;
}

/**
 * One node's process and its supervision. Every process the service forks is contained with it
 * (a cgroup v2 group of its own, as systemd's KillMode=control-group; a process group where
 * cgroup2 is not available) and killed with it: on stop(), when the main process exits (before
 * the restart) and on dispose(). A stop() overtakes a start() in progress: nothing the start
 * spawns survives it, and no restart follows.
 */
export class NodeService extends EventEmitter<ServiceEvents> {
  readonly ctx: ServiceContext;
  readonly #def: ServiceDefinition;
  readonly #opts: NodeServiceOptions;
  #state: ServiceState = 'stopped';
  #child: ChildProcess | undefined;
  #restarts = 0;
  #failuresInRow = 0;
  #startedAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #health: NodeJS.Timeout | undefined;
  /** Bumped whenever health checking stops: a check still running from before ends there. */
  #healthRun = 0;
  #wanted = false;
  #disposed = false;
  /** Bumped by every stop(): a start or restart begun before it gives up. */
  #epoch = 0;
  /** The part of a start before the spawn (setting up and emptying the group); a stop waits for it. */
  #spawning: Promise<void> | undefined;
  /** The start in progress, shared by concurrent start() calls. */
  #starting: Promise<void> | undefined;
  #exitWaiters: (() => void)[] = [];
  /** A stop() in progress: a start() waits for it. */
  #stopping: Promise<void> | undefined;
  #group: { kind: 'cgroup'; path: string } | { kind: 'process-group' } | undefined;
  /** Process-group fallback: the group of the last process started (its pid). */
  #pgid: number | undefined;
  #warning: string | undefined;

  constructor(def: ServiceDefinition, ctx: ServiceContext, options: NodeServiceOptions = {}) {
    super();
    this.#def = def;
    this.ctx = ctx;
    this.#opts = options;
  }

  get state(): ServiceState {
    return this.#state;
  }
  get pid(): number | undefined {
    return this.#child?.pid;
  }
  /** Restarts after unexpected exits so far. */
  get restarts(): number {
    return this.#restarts;
  }
  /** How the service is contained (known once it was started). */
  get containment(): Containment | undefined {
    return this.#group?.kind;
  }
  /** The service's cgroup directory, when it runs in one. */
  get cgroup(): string | undefined {
    return this.#group?.kind === 'cgroup' ? this.#group.path : undefined;
  }
  /** Set when the service could not get a cgroup: why, and that forked children may escape. */
  get warning(): string | undefined {
    return this.#warning;
  }
  /** True after dispose(): it never starts again. */
  get disposed(): boolean {
    return this.#disposed;
  }

  #setState(state: ServiceState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.emit('state', { index: this.ctx.index, state });
  }

  #log(line: string): void {
    this.emit('log', { index: this.ctx.index, stream: 'stderr', line: `netns-cluster: ${line}` });
  }

  /**
   * Starts the process; resolves once it is ready, rejects if it dies first, or (code
   * `ABORT_ERR`) when a stop() overtakes it. Rejects after dispose().
   */
  start(): Promise<void> {
    if (this.#disposed) return Promise.reject(stoppedError(this.ctx, `${this.#def.name ?? 'service'} is disposed and`));
    this.#wanted = true;
    if (this.#child && !this.#starting) return Promise.resolve();
    if (this.#starting) return this.#starting;
    // Backing off or given up: an explicit start begins afresh.
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#failuresInRow = 0;
    return this.#begin();
  }

  #begin(): Promise<void> {
    const p = this.#launch().finally(() => {
      if (this.#starting === p) this.#starting = undefined;
    });
    this.#starting = p;
    return p;
  }

  /** Creates the group on first use (or falls back), then kills whatever is left in it. */
  async #prepareGroup(): Promise<void> {
    if (this.#group?.kind === 'cgroup') {
      // Made again on every start: stop() removes it.
      await serviceCgroup(this.ctx.cluster, this.#opts.group ?? this.ctx.index);
    } else if (!this.#group) {
      const want = this.#opts.containment ?? 'auto';
      let why = '';
      if (want !== 'process-group') {
        try {
          const path = await serviceCgroup(this.ctx.cluster, this.#opts.group ?? this.ctx.index);
          if (path) this.#group = { kind: 'cgroup', path };
          else why = 'cgroup2 is not mounted';
        } catch (e) {
          if (want === 'cgroup') throw e;
          why = (e as Error).message;
        }
        if (!this.#group && want === 'cgroup') throw new Error(`node ${this.ctx.index}: no cgroup for the service: ${why}`);
      }
      if (!this.#group) {
        this.#group = { kind: 'process-group' };
        if (want === 'auto') {
          this.#warning = `${CGROUP_FALLBACK_WARNING}${why ? ` (${why})` : ''}`;
          this.#log(`warning: ${this.#warning}`);
        }
      }
    }
    await this.#emptyGroup();
  }

  /** SIGKILL to every process of the group; resolves once none is left. */
  async #emptyGroup(): Promise<void> {
    const g = this.#group;
    if (g?.kind === 'cgroup') {
      await emptyCgroup(g.path);
      return;
    }
    const pgid = this.#pgid;
    if (pgid === undefined) return;
    for (let i = 0; ; i++) {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        break; // ESRCH: not even a zombie is left in the group
      }
      // Zombies count for kill(2) until their parent reaps them, but they run nothing.
      if (!(await processGroupRuns(pgid))) break;
      if (i > 500) throw new Error(`node ${this.ctx.index}: process group ${pgid} still has processes after SIGKILL`);
      await sleep(i < 20 ? 2 : 20);
    }
    if (this.#pgid === pgid && !this.#child) this.#pgid = undefined;
  }

  /** Whether any process of the group is left. */
  async #groupPopulated(): Promise<boolean> {
    const g = this.#group;
    if (g?.kind === 'cgroup') return cgroupPopulated(g.path);
    if (this.#pgid === undefined) return false;
    return processGroupRuns(this.#pgid);
  }

  /** Sends `signal` to the main process and every process of its group. */
  #signalAll(signal: NodeJS.Signals): void {
    const child = this.#child;
    const g = this.#group;
    if (g?.kind === 'cgroup') {
      // The helper joins the group first thing; until then only the direct signal reaches it.
      if (child) child.kill(signal);
      if (signal === 'SIGKILL') emptyCgroup(g.path).catch((e) => this.#log(`killing the service's group failed: ${(e as Error).message}`));
      else signalCgroup(g.path, signal).catch(() => {});
      return;
    }
    const pid = child?.pid ?? this.#pgid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, signal);
    } catch {
      child?.kill(signal); // the helper has not made its session yet
    }
  }

  async #launch(): Promise<void> {
    const epoch = this.#epoch;
    const ctx = this.ctx;
    const def = this.#def;
    const what = def.name ?? 'service';
    this.#setState('starting');
    const setup = (this.#stopping ?? Promise.resolve()).then(async () => {
      await this.#prepareGroup();
      const creds = resolveCredentials('service', def.user, def.group);
      // The node's private directory ({dir}) belongs to the user the service runs as.
      if (creds.uid !== undefined || creds.gid !== undefined) await chown(ctx.dir, creds.uid ?? 0, creds.gid ?? 0);
      return creds;
    });
    this.#spawning = setup.then(
      () => {},
      () => {},
    );
    let creds: { uid?: number; gid?: number };
    try {
      creds = await setup;
    } catch (err) {
      if (epoch === this.#epoch) {
        this.#log(`cannot start: ${(err as Error).message}`);
        this.#giveUp();
      }
      throw err;
    } finally {
      this.#spawning = undefined;
    }
    // Nothing awaits between this check and the spawn: a stop() either came before (and this
    // start gives up) or comes after (and finds the child to kill).
    if (epoch !== this.#epoch || !this.#wanted || this.#disposed) throw stoppedError(ctx, what);
    let child: ChildProcess;
    try {
      const fill = (f: string, t: string) => fillPlaceholders(f, t, ctx);
      const { uid, gid } = creds;
      child = spawnInNetns(
        ctx.netns,
        def.command.map((c, i) => fill(`command[${i}]`, c)),
        {
          env: serviceEnv(def, ctx),
          cwd: def.cwd === undefined ? undefined : fill('cwd', def.cwd),
          stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
          execFd: 3,
          setsid: true,
          uid,
          gid,
          cgroup: this.cgroup,
        },
      );
    } catch (err) {
      this.#log(`cannot start: ${(err as Error).message}`);
      this.#giveUp();
      throw err;
    }
    // EOF on fd 3 once exec has replaced the helper: from then on the pid is the service's, inside its namespace.
    const execed = new Promise<void>((resolve) => {
      const s = child.stdio[3] as NodeJS.ReadableStream | null;
      if (!s) return resolve();
      s.on('data', () => {});
      s.once('end', () => resolve());
      s.once('close', () => resolve());
      s.once('error', () => resolve());
    });
    this.#child = child;
    this.#pgid = child.pid;
    this.#startedAt = performance.now();
    for (const stream of ['stdout', 'stderr'] as const) {
      createInterface({ input: child[stream]! }).on('line', (line) => this.emit('log', { index: ctx.index, stream, line }));
    }
    const abort = new AbortController();
    const exited = new Promise<void>((resolve) => {
      const done = (code: number | null, signal: NodeJS.Signals | null) => {
        if (abort.signal.aborted) return;
        const at = performance.now();
        abort.abort();
        this.#onExit(child, code, signal, at);
        resolve();
      };
      child.once('error', (err) => {
        this.#log(`cannot start: ${err.message}`);
        if (child.pid === undefined) done(null, null); // never ran: no 'exit' will come
      });
      child.once('exit', done);
    });
    try {
      await Promise.race([execed.then(() => (def.ready ? def.ready(ctx, abort.signal) : undefined)), exited]);
    } catch (err) {
      if (!abort.signal.aborted) {
        // Not ready: treat as a failed start (the exit schedules the next try).
        this.#log(`not ready: ${(err as Error).message}`);
        this.#signalAll('SIGKILL');
        await exited;
      }
    }
    if (epoch !== this.#epoch) throw stoppedError(ctx, what);
    if (this.#child !== child || abort.signal.aborted) {
      throw new Error(`node ${ctx.index}: ${what} exited during start-up (see its log)`);
    }
    this.#setState('running');
    this.#startHealth();
    this.emit('ready', { index: ctx.index, pid: child.pid, restarts: this.#restarts });
  }

  #giveUp(): void {
    this.#wanted = false;
    this.#setState('failed');
    this.emit('failed', { index: this.ctx.index, restarts: this.#restarts });
  }

  #onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null, at: number): void {
    if (this.#child !== child) return;
    this.#child = undefined;
    this.#stopHealth();
    try {
      this.#def.exited?.(this.ctx);
    } catch (e) {
      this.#log(`exited() failed: ${(e as Error).message}`);
    }
    const waiters = this.#exitWaiters.splice(0);
    waiters.forEach((w) => w());
    // Stopping: stop() ends the rest of the group and sets the state.
    if (!this.#wanted) return;
    this.emit('exit', { index: this.ctx.index, pid: child.pid, code, signal, at });
    this.#setState('exited');
    // KillMode=control-group: what the main process forked goes with it, now (the restart waits for it too).
    this.#emptyGroup().catch((e) => this.#log(`killing what the service left behind failed: ${(e as Error).message}`));
    const p = this.#def.restart ?? {};
    const ranFor = at - this.#startedAt;
    if (ranFor >= (p.resetAfterMs ?? DEFAULT_RESTART.resetAfterMs)) this.#failuresInRow = 0;
    this.#failuresInRow++;
    if (this.#failuresInRow > (p.maxRestarts ?? DEFAULT_RESTART.maxRestarts)) {
      this.#giveUp();
      return;
    }
    const delay = Math.min((p.initialDelayMs ?? DEFAULT_RESTART.initialDelayMs) * 2 ** (this.#failuresInRow - 1), p.maxDelayMs ?? DEFAULT_RESTART.maxDelayMs);
    this.#setState('backing-off');
    const epoch = this.#epoch;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#wanted || this.#disposed || epoch !== this.#epoch || this.#starting) return;
      this.#restarts++;
      this.#begin().catch(() => {}); // a failed start exits, and #onExit schedules the next try
    }, delay);
  }

  #startHealth(): void {
    const hc = this.#def.healthCheck;
    if (!hc) return;
    let failures = 0;
    const run = ++this.#healthRun;
    const tick = async () => {
      const ok = await hc.check(this.ctx).catch(() => false);
      if (this.#healthRun !== run || !this.#health) return; // stopped or restarted meanwhile
      failures = ok ? 0 : failures + 1;
      if (failures >= (hc.failures ?? 3)) {
        this.emit('unhealthy', { index: this.ctx.index });
        this.#signalAll('SIGKILL'); // the exit restarts it
        return;
      }
      this.#health = setTimeout(tick, hc.intervalMs ?? 2000);
    };
    this.#health = setTimeout(tick, hc.intervalMs ?? 2000);
  }

  #stopHealth(): void {
    this.#healthRun++;
    clearTimeout(this.#health);
    this.#health = undefined;
  }

  /**
   * Stops the service: SIGTERM to every process of its group, SIGKILL to whatever is left after
   * `stopTimeoutMs`; resolves once none is left and its cgroup directory is removed. A start in
   * progress gives up (its promise rejects with code `ABORT_ERR`) and no restart follows.
   * Idempotent; start() may follow (see {@link dispose} for a final stop).
   */
  stop(): Promise<void> {
    const p = this.#stop().finally(() => {
      if (this.#stopping === p) this.#stopping = undefined;
    });
    this.#stopping = p;
    return p;
  }

  async #stop(): Promise<void> {
    this.#epoch++;
    this.#wanted = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#stopHealth();
    // A start that has not spawned yet decides first (it sees the new epoch and gives up).
    await this.#spawning;
    const timeout = this.#def.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
    const deadline = performance.now() + timeout;
    if (this.#child) {
      const gone = new Promise<void>((r) => this.#exitWaiters.push(r));
      this.#signalAll('SIGTERM');
      const killer = setTimeout(() => this.#signalAll('SIGKILL'), timeout);
      await gone;
      clearTimeout(killer);
    }
    // The rest of the group got SIGTERM too: let it go within the same time, then SIGKILL.
    while (performance.now() < deadline && (await this.#groupPopulated().catch(() => false))) await sleep(10);
    await this.#emptyGroup();
    // The group's directory goes too (the next start makes it again), and the cluster's when it was the last.
    const g = this.#group;
    if (g?.kind === 'cgroup') {
      await killCgroup(g.path);
      await removeClusterCgroupDir(this.ctx.cluster);
    }
    if (this.#state !== 'failed') this.#setState('stopped');
  }

  /**
   * Stops the service for good (see {@link stop}): it never starts or restarts again, and
   * start() rejects. Idempotent.
   */
  async dispose(): Promise<void> {
    this.#disposed = true;
    await this.stop();
  }
}
