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
import { InvalidArgumentError } from './errors.js';
import { openvpn, type OpenvpnServiceOptions } from './openvpn/service.js';
import { resolveCredentials, spawnInNetns } from './spawn.js';
import { sysctlPath } from './validate.js';

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

export interface RestartPolicy {
  /** Give up after this many failures in a row (a run that lasted `resetAfterMs` resets the count). Default 10. */
  maxRestarts?: number;
  /** First delay before a restart. Default 100 ms; doubles each time. */
  initialDelayMs?: number;
  /** Longest delay. Default 10 s. */
  maxDelayMs?: number;
  /** A run this long counts as healthy and resets the backoff. Default 30 s. */
  resetAfterMs?: number;
}

export interface HealthCheck {
  /** Default 2 s. */
  intervalMs?: number;
  /** Consecutive failures before the process is killed and restarted. Default 3. */
  failures?: number;
  check(ctx: ServiceContext): Promise<boolean>;
}

/**
 * A service to run in every node. `command`, `env` and `cwd` may use the placeholders {node},
 * {netns}, {address}, {dir}, {vip} and {cluster}.
 */
export interface ServiceDefinition {
  /** A name for logs and errors. */
  name?: string;
  command: string[];
  /** Variables for the service, on top of the controller's environment (or of `envAllow`'s part of it). */
  env?: Record<string, string>;
  /**
   * Names of the controller's environment variables the service gets. Default (not given): all
   * of them, as a child process normally inherits. `[]`: none; only `env` (the helper then looks
   * programs up in /bin:/usr/bin unless `env` sets PATH).
   */
  envAllow?: string[];
  cwd?: string;
  /**
   * The user to run as: a name from /etc/passwd or a numeric id. The helper enters the namespace
   * (and the service's cgroup) as root, then switches. The node's private directory ({dir}) is
   * given to this user and group. Default: root.
   */
  user?: string | number;
  /**
   * The group to run as: a name from /etc/group or a numeric id. Default: the user's primary
   * group. Supplementary groups: none (root's are dropped whenever `user` or `group` is given).
   */
  group?: string | number;
  restart?: RestartPolicy;
  /** SIGTERM, then SIGKILL after this long. Default 5 s. */
  stopTimeoutMs?: number;
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

/** The largest timer delay Node honours: longer ones fire after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A value for a message: never more than ~40 characters of it. */
function clip(v: string, max = 40): string {
  const flat = v.replace(/[\0-\x1f\x7f]/g, (c) => (c === '\0' ? '\\0' : c === '\n' ? '\\n' : '?'));
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

/** "a string 'x'", "an array", "null"…: what was given instead, short. */
function got(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  switch (typeof v) {
    case 'string':
      return `the string '${clip(v)}'`;
    case 'number':
    case 'bigint':
      return String(v);
    case 'boolean':
      return String(v);
    case 'undefined':
      return 'undefined';
    case 'function':
      return 'a function';
    case 'symbol':
      return 'a symbol';
    default:
      return 'an object';
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0];
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const here = d[j];
      d[j] = Math.min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = here;
    }
  }
  return d[b.length];
}

/** Refuses keys of `o` that are not in `known`, suggesting the closest known key. */
function checkKeys(field: string, o: Record<string, unknown>, known: readonly string[], hint = ''): void {
  for (const k of Object.keys(o)) {
    if (known.includes(k)) continue;
    const lower = k.toLowerCase();
    const best = known
      .map((c) => ({ c, d: c.toLowerCase() === lower ? 0 : editDistance(lower, c.toLowerCase()) }))
      .sort((x, y) => x.d - y.d)[0];
    const close = best && best.d <= Math.max(1, Math.min(3, Math.floor(best.c.length / 3)));
    throw new InvalidArgumentError(
      `${field}.${clip(k, 30)}`,
      close ? `unknown key '${clip(k)}'; did you mean '${best.c}'?${hint}` : `unknown key '${clip(k)}'; known keys: ${known.join(', ')}${hint}`,
    );
  }
}

/**
 * A duration option: a whole number of milliseconds from `min` to 2147483647 (Node turns longer
 * timers into 1 ms). Refuses numeric strings, saying to drop the quotes.
 */
export function checkDuration(field: string, v: unknown, min = 0): number {
  const rule = `must be a whole number of milliseconds from ${min} to ${MAX_TIMER_MS}`;
  if (typeof v === 'string' && /^\s*[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?\s*$/i.test(v))
    throw new InvalidArgumentError(field, `${rule}: got the string '${clip(v)}'; write ${clip(v.trim())} without quotes`);
  if (typeof v !== 'number') throw new InvalidArgumentError(field, `${rule}, got ${got(v)}`);
  if (!Number.isInteger(v)) throw new InvalidArgumentError(field, `${rule}, got ${got(v)}${Number.isFinite(v) ? `; round it to ${Math.max(min, Math.round(v))}` : ''}`);
  if (v < min) throw new InvalidArgumentError(field, `${rule}, got ${v}`);
  if (v > MAX_TIMER_MS) throw new InvalidArgumentError(field, `${rule} (about 24.8 days), got ${v}: Node would fire such a timer after 1 ms`);
  return v;
}

/** A count option (e.g. maxRestarts): a whole number from `min` to 2147483647. */
export function checkCount(field: string, v: unknown, min = 0): number {
  const rule = `must be a whole number ≥ ${min} (at most ${MAX_TIMER_MS})`;
  if (typeof v === 'string' && /^\s*[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?\s*$/i.test(v))
    throw new InvalidArgumentError(field, `${rule}: got the string '${clip(v)}'; write ${clip(v.trim())} without quotes`);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > MAX_TIMER_MS) throw new InvalidArgumentError(field, `${rule}, got ${got(v)}`);
  return v;
}

/** A string without NUL bytes (the kernel would cut it there). */
function checkText(field: string, v: unknown, what: string, opts: { empty?: boolean } = {}): string {
  if (typeof v !== 'string') throw new InvalidArgumentError(field, `must be ${what}, got ${got(v)}`);
  if (!opts.empty && v === '') throw new InvalidArgumentError(field, `must be ${what}, got an empty string`);
  if (v.includes('\0')) throw new InvalidArgumentError(field, `must not contain NUL bytes (got '${clip(v)}')`);
  return v;
}

function checkPlaceholders(field: string, text: string): void {
  const bad = unknownPlaceholder(text);
  if (bad) throw new InvalidArgumentError(field, `unknown placeholder ${clip(bad)}; ${KNOWN_PLACEHOLDERS}`);
}

/** An environment variable name: non-empty, without '=' or NUL. */
function checkEnvName(field: string, k: unknown): string {
  if (typeof k !== 'string' || k === '') throw new InvalidArgumentError(field, `a variable name must be a non-empty string, got ${k === '' ? 'an empty string' : got(k)}`);
  if (k.includes('=') || k.includes('\0'))
    throw new InvalidArgumentError(field, `'${clip(k)}' is not a variable name: it must not contain '=' or NUL bytes`);
  return k;
}

const RESTART_KEYS = ['maxRestarts', 'initialDelayMs', 'maxDelayMs', 'resetAfterMs'] as const;
const HEALTH_KEYS = ['intervalMs', 'failures', 'check'] as const;
const FUNCTION_KEYS = ['prepare', 'ready', 'exited', 'status', 'bucketsLost', 'nodeSnat', 'hostRoutes'] as const;
/** Every key a service definition may have (`serverFingerprint` is what openvpn() adds). */
export const SERVICE_KEYS = [
  'name',
  'command',
  'env',
  'envAllow',
  'cwd',
  'user',
  'group',
  'restart',
  'stopTimeoutMs',
  'healthCheck',
  'nodeSysctls',
  ...FUNCTION_KEYS,
  'serverFingerprint',
] as const;

/** Checks a restart policy (for a service's `restart`, and for options that take one, such as openvpn()'s). */
export function checkRestartPolicy(field: string, r: unknown): RestartPolicy {
  if (!isPlainObject(r)) throw new InvalidArgumentError(field, `must be an object such as { maxRestarts: 10, initialDelayMs: 100 }, got ${got(r)}`);
  checkKeys(field, r, RESTART_KEYS);
  if (r.maxRestarts !== undefined) checkCount(`${field}.maxRestarts`, r.maxRestarts, 0);
  for (const k of ['initialDelayMs', 'maxDelayMs', 'resetAfterMs'] as const) if (r[k] !== undefined) checkDuration(`${field}.${k}`, r[k], 0);
  return r as RestartPolicy;
}

/**
 * Checks a service definition (or `{ openvpn: {...} }`, which it turns into the definition
 * openvpn() makes) and returns it: types, ranges, keys, placeholders, credentials. Every refusal
 * is an InvalidArgumentError naming the field and saying what to fix. Functions (prepare, ready…)
 * must be functions; what they do is the caller's business.
 */
export function checkServiceDefinition(field: string, s: unknown): ServiceDefinition {
  if (!isPlainObject(s))
    throw new InvalidArgumentError(field, `expected { command: ['program', 'arg', …] } or { openvpn: { … } }, got ${got(s)}`);
  if ('openvpn' in s) {
    if ('command' in s) throw new InvalidArgumentError(field, 'give either command or openvpn, not both');
    checkKeys(field, s, ['openvpn'], ' (with openvpn, put restart and stopTimeoutMs inside openvpn: { … })');
    const o = s.openvpn;
    if (!isPlainObject(o)) throw new InvalidArgumentError(`${field}.openvpn`, `expected { clientFingerprints: [...], … }, got ${got(o)}`);
    if (o.restart !== undefined) checkRestartPolicy(`${field}.openvpn.restart`, o.restart);
    if (o.stopTimeoutMs !== undefined) checkDuration(`${field}.openvpn.stopTimeoutMs`, o.stopTimeoutMs, 0);
    return openvpn(o as unknown as OpenvpnServiceOptions);
  }
  checkKeys(field, s, [...SERVICE_KEYS, 'openvpn']);
  if (s.name !== undefined) {
    checkText(`${field}.name`, s.name, 'a non-empty string');
    if ((s.name as string).length > 64 || /[\0-\x1f\x7f]/.test(s.name as string))
      throw new InvalidArgumentError(`${field}.name`, `must be at most 64 characters without control characters (got '${clip(s.name as string)}')`);
  }

  const command = s.command;
  if (command === undefined) throw new InvalidArgumentError(`${field}.command`, "is missing: give the program and its arguments, e.g. ['openvpn', '--config', '{dir}/server.conf'] (or use { openvpn: { … } })");
  if (!Array.isArray(command) || command.length === 0)
    throw new InvalidArgumentError(`${field}.command`, `must be a non-empty array of strings, e.g. ['openvpn', '--config', '{dir}/server.conf'], got ${Array.isArray(command) ? 'an empty array' : got(command)}`);
  command.forEach((c, i) => {
    checkText(`${field}.command[${i}]`, c, i === 0 ? 'the program (a non-empty string)' : 'a string', { empty: i > 0 });
    checkPlaceholders(`${field}.command[${i}]`, c as string);
  });

  if (s.env !== undefined) {
    if (!isPlainObject(s.env)) throw new InvalidArgumentError(`${field}.env`, `must map variable names to strings, e.g. { LOG_DIR: '{dir}' }, got ${got(s.env)}`);
    for (const [k, v] of Object.entries(s.env)) {
      checkEnvName(`${field}.env`, k);
      const f = `${field}.env.${clip(k, 30)}`;
      if (typeof v === 'number' || typeof v === 'boolean') throw new InvalidArgumentError(f, `must be a string, got ${got(v)}; write '${v}' in quotes`);
      checkText(f, v, 'a string', { empty: true });
      checkPlaceholders(f, v as string);
    }
  }
  if (s.envAllow !== undefined) {
    if (!Array.isArray(s.envAllow)) throw new InvalidArgumentError(`${field}.envAllow`, `must be an array of variable names, e.g. ['PATH', 'LANG'], got ${got(s.envAllow)}`);
    s.envAllow.forEach((k, i) => checkEnvName(`${field}.envAllow[${i}]`, k));
  }
  if (s.cwd !== undefined) {
    checkText(`${field}.cwd`, s.cwd, 'a directory (a non-empty string)');
    checkPlaceholders(`${field}.cwd`, s.cwd as string);
  }
  if (s.user !== undefined || s.group !== undefined) resolveCredentials(field, s.user, s.group);

  if (s.restart !== undefined) checkRestartPolicy(`${field}.restart`, s.restart);
  if (s.stopTimeoutMs !== undefined) checkDuration(`${field}.stopTimeoutMs`, s.stopTimeoutMs, 0);
  if (s.healthCheck !== undefined) {
    const hc = s.healthCheck;
    const f = `${field}.healthCheck`;
    if (!isPlainObject(hc)) throw new InvalidArgumentError(f, `must be an object { check(ctx) { … }, intervalMs, failures }, got ${got(hc)}`);
    checkKeys(f, hc, HEALTH_KEYS);
    if (typeof hc.check !== 'function') throw new InvalidArgumentError(`${f}.check`, `must be a function (ctx) => Promise<boolean>, got ${got(hc.check)}`);
    if (hc.intervalMs !== undefined) checkDuration(`${f}.intervalMs`, hc.intervalMs, 1);
    if (hc.failures !== undefined) checkCount(`${f}.failures`, hc.failures, 1);
  }
  for (const k of FUNCTION_KEYS)
    if (s[k] !== undefined && typeof s[k] !== 'function') throw new InvalidArgumentError(`${field}.${k}`, `must be a function, got ${got(s[k])}`);
  if (s.nodeSysctls !== undefined) {
    const f = `${field}.nodeSysctls`;
    if (!isPlainObject(s.nodeSysctls)) throw new InvalidArgumentError(f, `must map sysctl keys to values, e.g. { 'net.ipv4.ip_forward': 1 }, got ${got(s.nodeSysctls)}`);
    for (const [k, v] of Object.entries(s.nodeSysctls)) {
      if (k.includes('\0')) throw new InvalidArgumentError(f, `the key '${clip(k)}' contains a NUL byte`);
      try {
        sysctlPath(k);
      } catch {
        throw new InvalidArgumentError(
          f,
          `'${clip(k)}' is not a per-namespace sysctl; use a net.* key such as net.ipv4.ip_forward (write keys containing dots in interface names with '/')`,
        );
      }
      if (!['string', 'number', 'boolean'].includes(typeof v) || (typeof v === 'string' && v.includes('\0')) || (typeof v === 'number' && !Number.isFinite(v)))
        throw new InvalidArgumentError(`${f}.${clip(k, 40)}`, `must be a string, a finite number or a boolean, got ${got(v)}`);
    }
  }
  return s as unknown as ServiceDefinition;
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
      await serviceCgroup(this.ctx.cluster, this.ctx.index);
    } else if (!this.#group) {
      const want = this.#opts.containment ?? 'auto';
      let why = '';
      if (want !== 'process-group') {
        try {
          const path = await serviceCgroup(this.ctx.cluster, this.ctx.index);
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
    if (ranFor >= (p.resetAfterMs ?? 30_000)) this.#failuresInRow = 0;
    this.#failuresInRow++;
    if (this.#failuresInRow > (p.maxRestarts ?? 10)) {
      this.#giveUp();
      return;
    }
    const delay = Math.min((p.initialDelayMs ?? 100) * 2 ** (this.#failuresInRow - 1), p.maxDelayMs ?? 10_000);
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
    const timeout = this.#def.stopTimeoutMs ?? 5000;
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
