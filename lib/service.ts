/**
 * Services in the nodes: one process per node, started inside the node's namespace (through the
 * netns-exec helper), supervised — restarted with exponential backoff up to a limit, stopped with
 * SIGTERM then SIGKILL, optionally health-checked — with its output as line-based logs.
 * @module
 */
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createInterface } from 'node:readline';
import { InvalidArgumentError } from './errors.js';
import { spawnInNetns } from './spawn.js';

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
  env?: Record<string, string>;
  cwd?: string;
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

/** Replaces {node} {netns} {address} {dir} {vip} {cluster}; an unknown placeholder is an error. */
export function fillPlaceholders(field: string, text: string, ctx: ServiceContext): string {
  const values: Record<string, string> = {
    node: String(ctx.index),
    netns: ctx.netns,
    address: ctx.address,
    dir: ctx.dir,
    vip: ctx.vips[0] ?? '',
    cluster: ctx.cluster,
  };
  return text.replace(/\{([a-z]+)\}/g, (m, key: string) => {
    if (!(key in values)) throw new InvalidArgumentError(field, `unknown placeholder ${m}; known: ${PLACEHOLDERS.map((p) => `{${p}}`).join(' ')}`);
    return values[key];
  });
}

/** Checks a service definition's plain fields (functions are the caller's business). */
export function checkServiceDefinition(field: string, s: ServiceDefinition): ServiceDefinition {
  if (typeof s !== 'object' || s === null) throw new InvalidArgumentError(field, "expected { command: ['program', 'arg', …] } or { openvpn: { … } }");
  if (!Array.isArray(s.command) || s.command.length === 0 || s.command.some((c) => typeof c !== 'string' || c.length === 0))
    throw new InvalidArgumentError(`${field}.command`, "must be a non-empty array of strings, e.g. ['openvpn', '--config', '{dir}/server.conf']");
  for (const t of [...s.command, ...Object.values(s.env ?? {}), s.cwd ?? '']) {
    const bad = /\{([a-z]+)\}/g.exec(t);
    if (bad && !(PLACEHOLDERS as readonly string[]).includes(bad[1]))
      throw new InvalidArgumentError(`${field}.command`, `unknown placeholder {${bad[1]}}; known: ${PLACEHOLDERS.map((p) => `{${p}}`).join(' ')}`);
  }
  if (s.env !== undefined && (typeof s.env !== 'object' || Object.values(s.env).some((v) => typeof v !== 'string')))
    throw new InvalidArgumentError(`${field}.env`, 'must map names to strings');
  const r = s.restart ?? {};
  for (const k of ['maxRestarts', 'initialDelayMs', 'maxDelayMs', 'resetAfterMs'] as const) {
    const v = r[k];
    if (v !== undefined && (!Number.isInteger(v) || v < 0)) throw new InvalidArgumentError(`${field}.restart.${k}`, 'must be a whole number ≥ 0');
  }
  if (s.stopTimeoutMs !== undefined && (!Number.isInteger(s.stopTimeoutMs) || s.stopTimeoutMs < 0))
    throw new InvalidArgumentError(`${field}.stopTimeoutMs`, 'must be a whole number of milliseconds');
  return s;
}

/** One node's process and its supervision. */
export class NodeService extends EventEmitter<ServiceEvents> {
  readonly ctx: ServiceContext;
  readonly #def: ServiceDefinition;
  #state: ServiceState = 'stopped';
  #child: ChildProcess | undefined;
  #restarts = 0;
  #failuresInRow = 0;
  #startedAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #health: NodeJS.Timeout | undefined;
  #wanted = false;
  #exitWaiters: (() => void)[] = [];

  constructor(def: ServiceDefinition, ctx: ServiceContext) {
    super();
    this.#def = def;
    this.ctx = ctx;
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

  #setState(state: ServiceState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.emit('state', { index: this.ctx.index, state });
  }

  /** Starts the process; resolves once it is ready (or rejects if it dies first). */
  async start(): Promise<void> {
    this.#wanted = true;
    if (this.#child) return;
    await this.#launch();
  }

  async #launch(): Promise<void> {
    const ctx = this.ctx;
    const def = this.#def;
    const fill = (f: string, t: string) => fillPlaceholders(f, t, ctx);
    this.#setState('starting');
    const child = spawnInNetns(ctx.netns, def.command.map((c) => fill('command', c)), {
      env: { ...process.env, ...Object.fromEntries(Object.entries(def.env ?? {}).map(([k, v]) => [k, fill(`env.${k}`, v)])) },
      cwd: def.cwd === undefined ? undefined : fill('cwd', def.cwd),
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
      execFd: 3,
      setsid: true,
    });
    // EOF on fd 3 once exec has replaced the helper: from then on the pid is the service's, inside its namespace.
    const execed = new Promise<void>((resolve) => {
      const s = child.stdio[3] as NodeJS.ReadableStream;
      s.on('data', () => {});
      s.once('end', () => resolve());
      s.once('error', () => resolve());
    });
    this.#child = child;
    this.#startedAt = performance.now();
    for (const stream of ['stdout', 'stderr'] as const) {
      createInterface({ input: child[stream]! }).on('line', (line) => this.emit('log', { index: ctx.index, stream, line }));
    }
    const abort = new AbortController();
    const exited = new Promise<void>((resolve) => {
      child.once('error', (err) => {
        this.emit('log', { index: ctx.index, stream: 'stderr', line: `netns-cluster: cannot start: ${err.message}` });
      });
      child.once('exit', (code, signal) => {
        const at = performance.now();
        abort.abort();
        this.#onExit(child, code, signal, at);
        resolve();
      });
    });
    try {
      await Promise.race([execed.then(() => (def.ready ? def.ready(ctx, abort.signal) : undefined)), exited]);
    } catch (err) {
      if (!abort.signal.aborted) {
        // Not ready in time: treat as a failed start.
        this.emit('log', { index: ctx.index, stream: 'stderr', line: `netns-cluster: not ready: ${(err as Error).message}` });
        this.#kill('SIGKILL');
      }
    }
    if (this.#child !== child || abort.signal.aborted) {
      throw new Error(`node ${ctx.index}: ${def.name ?? 'service'} exited during start-up (see its log)`);
    }
    this.#setState('running');
    this.#startHealth();
    this.emit('ready', { index: ctx.index, pid: child.pid, restarts: this.#restarts });
  }

  #onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null, at: number): void {
    if (this.#child !== child) return;
    this.#child = undefined;
    this.#stopHealth();
    this.#def.exited?.(this.ctx);
    const waiters = this.#exitWaiters.splice(0);
    waiters.forEach((w) => w());
    if (!this.#wanted) {
      this.#setState('stopped');
      return;
    }
    this.emit('exit', { index: this.ctx.index, pid: child.pid, code, signal, at });
    this.#setState('exited');
    const p = this.#def.restart ?? {};
    const ranFor = at - this.#startedAt;
    if (ranFor >= (p.resetAfterMs ?? 30_000)) this.#failuresInRow = 0;
    this.#failuresInRow++;
    if (this.#failuresInRow > (p.maxRestarts ?? 10)) {
      this.#wanted = false;
      this.#setState('failed');
      this.emit('failed', { index: this.ctx.index, restarts: this.#restarts });
      return;
    }
    const delay = Math.min((p.initialDelayMs ?? 100) * 2 ** (this.#failuresInRow - 1), p.maxDelayMs ?? 10_000);
    this.#setState('backing-off');
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#wanted) return;
      this.#restarts++;
      this.#launch().catch(() => {}); // a failed start exits, and #onExit schedules the next try
    }, delay);
  }

  #startHealth(): void {
    const hc = this.#def.healthCheck;
    if (!hc) return;
    let failures = 0;
    const tick = async () => {
      const ok = await hc.check(this.ctx).catch(() => false);
      failures = ok ? 0 : failures + 1;
      if (failures >= (hc.failures ?? 3)) {
        this.emit('unhealthy', { index: this.ctx.index });
        this.#kill('SIGKILL'); // the exit restarts it
        return;
      }
      if (this.#health) this.#health = setTimeout(tick, hc.intervalMs ?? 2000);
    };
    this.#health = setTimeout(tick, hc.intervalMs ?? 2000);
  }

  #stopHealth(): void {
    clearTimeout(this.#health);
    this.#health = undefined;
  }

  /** Signals the whole process group (the service runs in its own session). */
  #kill(signal: NodeJS.Signals): void {
    const pid = this.#child?.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, signal);
    } catch {
      this.#child?.kill(signal);
    }
  }

  /** Stops the process: SIGTERM, then SIGKILL after `stopTimeoutMs`. Idempotent. */
  async stop(): Promise<void> {
    this.#wanted = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#stopHealth();
    if (!this.#child) {
      if (this.#state !== 'failed') this.#setState('stopped');
      return;
    }
    const gone = new Promise<void>((r) => this.#exitWaiters.push(r));
    this.#kill('SIGTERM');
    const killer = setTimeout(() => this.#kill('SIGKILL'), this.#def.stopTimeoutMs ?? 5000);
    await gone;
    clearTimeout(killer);
  }
}
