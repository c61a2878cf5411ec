/**
 * Runs a command inside a network namespace, like `ip netns exec`, without a shell and without
 * ever changing the namespace of a Node thread: the switch happens in `netns-exec`, a small helper
 * executable built next to the addon (native/netns_exec.c), which enters the namespace, gives the
 * command its own view of /sys and /etc/netns/NAME, closes stray fds and then execs the command.
 * The returned ChildProcess's pid is the command's own pid.
 * @module
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { packageRoot } from './binding.js';
import { InvalidArgumentError } from '../util/errors.js';
import { Netns, NETNS_RUN_DIR } from './netns.js';
import { checkNetnsName, checkUint } from '../util/validate.js';

/** File name of the helper executable, next to `netns_cluster.node`. */
export const NETNS_EXEC_HELPER = 'netns-exec';

/**
 * Exit statuses of the helper when the command did not start (otherwise the status is the
 * command's own), as with `env` and `ip netns exec`. Its stderr then says which step failed.
 */
export const NetnsExecStatus = {
  /** netns-exec itself failed: namespace missing or not a network namespace, cgroup, setns, mounts, cwd, uid/gid, fds; or it was installed setuid / with file capabilities, which it refuses. */
  SETUP_FAILED: 125,
  /** The command exists but could not be executed (no permission, bad format). */
  CANNOT_EXECUTE: 126,
  /** The command was not found. */
  NOT_FOUND: 127,
} as const;

/** Options of {@link spawnInNetns}. */
export interface SpawnInNetnsOptions {
  /** Environment of the command (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** Working directory of the command (entered after the namespace, before uid/gid change). */
  cwd?: string;
  /** As for `child_process.spawn`. Entries from index 3 on are closed unless listed in `keepFds`. */
  stdio?: StdioOptions;
  /**
   * Numeric user id to run as (the helper needs root to enter the namespace, then drops it).
   * Without `gid`, the user's primary group from /etc/passwd (an uid without an entry there needs
   * `gid`): group 0 is never kept silently.
   */
  uid?: number;
  /** Numeric group id to run as. Every supplementary group is dropped when `uid` or `gid` is given. */
  gid?: number;
  /**
   * A cgroup v2 directory (see lib/services/cgroup.ts) the helper joins before anything else, so the
   * command and everything it forks are in that group from their first instruction.
   */
  cgroup?: string;
  /**
   * Start a new session and process group (`setsid`), so a supervisor can signal the whole group
   * with `process.kill(-child.pid, sig)`. `detached` is accepted as a synonym, as in Node.
   */
  setsid?: boolean;
  /** Synonym of `setsid`. */
  detached?: boolean;
  /** Fds (≥ 3, each given by an entry of `stdio`) to leave open in the command. */
  keepFds?: number[];
  /**
   * An fd (≥ 3, given by a `'pipe'` entry of `stdio`) that the helper keeps through its setup and
   * that exec closes: reading it to EOF tells when the command really runs inside the namespace.
   */
  execFd?: number;
  /** Name used for `/etc/netns/NAME/*` (default: the namespace's name, or its file's basename). */
  name?: string;
  /**
   * Signal the command gets when this process dies, even by SIGKILL (default `SIGKILL`: the
   * guarantee is that no service outlives its controller; a graceful stop is the job of a living
   * supervisor). `'none'` disables it. Note that Linux sends it when the *thread* that spawned the
   * command exits: spawn from the main thread, or from a worker thread that lives as long as
   * the service should.
   */
  pdeathsig?: NodeJS.Signals | 'none';
}

/** Options of {@link execInNetns}: those of {@link spawnInNetns} without `stdio`, plus input and a timeout. */
export interface ExecInNetnsOptions extends Omit<SpawnInNetnsOptions, 'stdio' | 'keepFds'> {
  /** Written to the command's stdin, which is then closed. */
  input?: string | Uint8Array;
  /** Kill the command (SIGKILL, its whole group with `setsid`) after this many milliseconds. */
  timeoutMs?: number;
}

/** What {@link execInNetns} resolves to. */
export interface ExecInNetnsResult {
  /** Exit status, or null when killed by a signal. 125/126/127: see {@link NetnsExecStatus}. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** True when `timeoutMs` elapsed and the command was killed. */
  timedOut: boolean;
}

let helperPath: string | undefined;

/**
 * Where the helper is: next to the addon that node-gyp-build loads (prebuilds/<platform>-<arch>/
 * or build/Release/). Throws one error saying how to build it when it is missing.
 */
export function netnsExecPath(): string {
  if (helperPath) return helperPath;
  const root = packageRoot();
  const tried: string[] = [];
  try {
    const require = createRequire(import.meta.url);
    const nodeGypBuild = require('node-gyp-build') as { resolve(dir: string): string };
    tried.push(join(dirname(nodeGypBuild.resolve(root)), NETNS_EXEC_HELPER));
  } catch {
    // No addon found at all: still say where the helper is looked for.
  }
  tried.push(join(root, 'build', 'Release', NETNS_EXEC_HELPER));
  for (const p of tried) {
    try {
      accessSync(p, constants.X_OK);
      helperPath = p;
      return p;
    } catch {
      // try the next one
    }
  }
  const e = new Error(
    `netns-cluster: the helper executable '${NETNS_EXEC_HELPER}' was not found next to the native addon ` +
      `(tried ${[...new Set(tried)].join(', ')}). Build it with "npm run build:native" (node-gyp builds it ` +
      `with the addon); a prebuilds/${process.platform}-${process.arch}/ directory must ship it next to the .node file.`,
  );
  (e as NodeJS.ErrnoException).code = 'ERR_NETNS_CLUSTER_HELPER';
  throw e;
}

function netnsTarget(netns: Netns | string): { path: string; name?: string } {
  if (netns instanceof Netns) {
    if (netns.closed) throw new InvalidArgumentError('netns', `namespace ${netns.name ?? netns.path} is closed`);
    return { path: netns.path, name: netns.name };
  }
  if (typeof netns !== 'string' || netns.length === 0)
    throw new InvalidArgumentError('netns', 'must be a Netns handle, a namespace name or a namespace file path');
  if (netns.includes('\0')) throw new InvalidArgumentError('netns', 'must not contain NUL bytes');
  if (netns.includes('/')) return { path: netns };
  return { path: `${NETNS_RUN_DIR}/${checkNetnsName('netns', netns)}`, name: netns };
}

function checkCommand(command: unknown): string[] {
  if (!Array.isArray(command) || command.length === 0)
    throw new InvalidArgumentError('command', 'must be a non-empty array: [program, ...args]');
  command.forEach((a, i) => {
    if (typeof a !== 'string') throw new InvalidArgumentError(`command[${i}]`, `must be a string, not ${typeof a}`);
    if (a.includes('\0')) throw new InvalidArgumentError(`command[${i}]`, 'must not contain NUL bytes');
  });
  if (command[0] === '') throw new InvalidArgumentError('command[0]', 'the program must not be empty');
  return command as string[];
}

/** The largest user or group id: (uid_t)-1 means "no change" to the kernel. */
export const MAX_ID = 0xfffffffe;

/** The colon-separated records of /etc/passwd or /etc/group. */
function records(file: string): string[][] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as Error).message}`);
  }
  return text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split(':'));
}

function primaryGroupOf(uid: number): number {
  const entry = records('/etc/passwd').find((r) => Number(r[2]) === uid && /^\d+$/.test(r[2] ?? ''));
  if (!entry || !/^\d+$/.test(entry[3] ?? ''))
    throw new InvalidArgumentError('gid', `uid ${uid} has no entry in /etc/passwd to take its group from: give gid too`);
  return Number(entry[3]);
}

const ID_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*\$?$/;
const shown = (v: string) => `'${v.length > 40 ? `${v.slice(0, 40)}…` : v}'`;

function checkIdSpec(field: string, v: unknown, what: 'user' | 'group'): number | string {
  if (typeof v === 'number') return checkUint(field, v, 0, MAX_ID);
  if (typeof v !== 'string' || v === '')
    throw new InvalidArgumentError(
      field,
      `must be a ${what} name such as '${what === 'user' ? 'nobody' : 'nogroup'}' or a numeric id, got ${typeof v === 'string' ? 'an empty string' : v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `a ${typeof v}`}`,
    );
  if (/^\d+$/.test(v)) {
    const n = Number(v);
    if (n > MAX_ID) throw new InvalidArgumentError(field, `${shown(v)} is not an id from 0 to ${MAX_ID}`);
    return n;
  }
  if (!ID_NAME.test(v) || v.length > 64)
    throw new InvalidArgumentError(field, `${shown(v)} is not a ${what} name: use letters, digits, '_', '.', '-' (at most 64), or a numeric id`);
  return v;
}

/** A user: its uid and primary gid (undefined for a numeric uid that /etc/passwd does not list). */
export interface ResolvedUser {
  uid: number;
  gid: number | undefined;
  name: string | undefined;
}

/**
 * Resolves a user name (through /etc/passwd) or a numeric id. An unknown name is an
 * {@link InvalidArgumentError} naming `field`.
 */
export function resolveUser(field: string, user: unknown): ResolvedUser {
  const v = checkIdSpec(field, user, 'user');
  const rows = records('/etc/passwd');
  if (typeof v === 'number') {
    const r = rows.find((x) => x[2] === String(v));
    return { uid: v, gid: r && /^\d+$/.test(r[3] ?? '') ? Number(r[3]) : undefined, name: r?.[0] };
  }
  const r = rows.find((x) => x[0] === v);
  if (!r || !/^\d+$/.test(r[2] ?? '') || !/^\d+$/.test(r[3] ?? ''))
    throw new InvalidArgumentError(field, `there is no user ${shown(v)} in /etc/passwd; give an existing user (e.g. 'nobody') or a numeric id`);
  return { uid: Number(r[2]), gid: Number(r[3]), name: v };
}

/** Resolves a group name (through /etc/group) or a numeric id; an unknown name is an {@link InvalidArgumentError}. */
export function resolveGroup(field: string, group: unknown): number {
  const v = checkIdSpec(field, group, 'group');
  if (typeof v === 'number') return v;
  const r = records('/etc/group').find((x) => x[0] === v);
  if (!r || !/^\d+$/.test(r[2] ?? ''))
    throw new InvalidArgumentError(field, `there is no group ${shown(v)} in /etc/group; give an existing group (e.g. 'nogroup') or a numeric id`);
  return Number(r[2]);
}

/**
 * The ids a `{ user, group }` pair runs as: `group` defaults to the user's primary group; a
 * numeric user without an /etc/passwd entry needs `group`. Undefined ids: stay root.
 */
export function resolveCredentials(field: string, user: unknown, group: unknown): { uid?: number; gid?: number } {
  const u = user === undefined ? undefined : resolveUser(`${field}.user`, user);
  const gid = group === undefined ? u?.gid : resolveGroup(`${field}.group`, group);
  if (u && gid === undefined)
    throw new InvalidArgumentError(`${field}.group`, `user ${u.uid} has no entry in /etc/passwd to take its group from: give group too`);
  return { uid: u?.uid, gid };
}

function stdioEntry(stdio: StdioOptions | undefined, fd: number): unknown {
  if (!Array.isArray(stdio)) return undefined; // 'pipe' | 'inherit' | 'ignore' cover 0..2 only
  return stdio[fd];
}

/** The helper's arguments for a validated request. */
function helperArgs(netns: Netns | string, command: unknown, o: SpawnInNetnsOptions): string[] {
  const target = netnsTarget(netns);
  const cmd = checkCommand(command);
  const args = ['--netns', target.path, '--parent', String(process.pid)];
  const name = o.name ?? target.name;
  if (name !== undefined) args.push('--name', checkNetnsName('name', name));
  if (o.cwd !== undefined) {
    if (typeof o.cwd !== 'string' || !o.cwd || o.cwd.includes('\0')) throw new InvalidArgumentError('cwd', 'must be a non-empty path');
    args.push('--cwd', o.cwd);
  }
  if (o.cgroup !== undefined) {
    if (typeof o.cgroup !== 'string' || !o.cgroup.startsWith('/') || o.cgroup.includes('\0'))
      throw new InvalidArgumentError('cgroup', 'must be the absolute path of a cgroup v2 directory');
    args.push('--cgroup', o.cgroup);
  }
  if (o.uid !== undefined) {
    const uid = checkUint('uid', o.uid, 0, MAX_ID);
    const gid = o.gid !== undefined ? checkUint('gid', o.gid, 0, MAX_ID) : primaryGroupOf(uid);
    args.push('--gid', String(gid), '--uid', String(uid));
  } else if (o.gid !== undefined) {
    args.push('--gid', String(checkUint('gid', o.gid, 0, MAX_ID)));
  }
  if (o.setsid ?? o.detached) args.push('--setsid');
  if (o.pdeathsig !== undefined) {
    if (o.pdeathsig !== 'none' && !/^SIG(KILL|TERM|INT|HUP|QUIT|USR1|USR2)$/.test(o.pdeathsig))
      throw new InvalidArgumentError('pdeathsig', `${typeof o.pdeathsig === 'string' ? shown(o.pdeathsig) : typeof o.pdeathsig} is not one of SIGKILL, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, none`);
    args.push('--pdeathsig', o.pdeathsig);
  }
  if (o.execFd !== undefined) {
    checkUint('execFd', o.execFd, 3, 0x7fffffff);
    if (!Array.isArray(o.stdio) || o.stdio[o.execFd] !== 'pipe')
      throw new InvalidArgumentError('execFd', `set stdio[${o.execFd}] to 'pipe' to read it`);
    args.push('--exec-fd', String(o.execFd));
  }
  if (o.keepFds !== undefined) {
    if (!Array.isArray(o.keepFds)) throw new InvalidArgumentError('keepFds', 'must be an array of fd numbers');
    o.keepFds.forEach((fd, i) => {
      checkUint(`keepFds[${i}]`, fd, 3, 0x7fffffff);
      const entry = stdioEntry(o.stdio, fd);
      if (entry === undefined || entry === null || entry === 'ignore')
        throw new InvalidArgumentError(`keepFds[${i}]`, `fd ${fd} is not given to the child: set stdio[${fd}]`);
      args.push('--keep-fd', String(fd));
    });
  }
  args.push('--', ...cmd);
  return args;
}

/**
 * Spawns `command` (`[program, ...args]`, looked up in `PATH` inside the namespace's mount view)
 * inside a network namespace, like `ip netns exec NAME program args...`: the namespace's own
 * devices under /sys/class/net, `/etc/netns/NAME/*` bound over `/etc/*`, no fds beyond stdio
 * except `keepFds`, and SIGKILL (or `pdeathsig`) when this process dies.
 *
 * Arguments are checked here first ({@link InvalidArgumentError}). Failures after the spawn show
 * as exit status 125/126/127 with a `netns-exec: ` line on stderr ({@link NetnsExecStatus}).
 *
 * ```ts
 * const child = spawnInNetns(node, ['openvpn', '--config', 'node0.conf'], { setsid: true, stdio: 'inherit' });
 * ```
 * @param netns a {@link Netns} handle (must be open), a name under /run/netns, or a namespace file path.
 */
export function spawnInNetns(netns: Netns | string, command: string[], options: SpawnInNetnsOptions = {}): ChildProcess {
  const args = helperArgs(netns, command, options);
  return spawn(netnsExecPath(), args, {
    shell: false,
    env: options.env,
    stdio: options.stdio,
    // The helper needs root to enter the namespace; it changes uid/gid itself afterwards. It makes
    // the session itself too (--setsid), so Node's `detached` is not used.
    argv0: NETNS_EXEC_HELPER,
  });
}

/**
 * Runs a short command inside a network namespace and collects its output (utf-8).
 *
 * ```ts
 * const { code, stdout } = await execInNetns('node0', ['cat', '/proc/net/dev']);
 * ```
 * Resolves whatever the exit status is; rejects on bad arguments ({@link InvalidArgumentError}) or
 * when the helper cannot be started at all.
 */
export function execInNetns(netns: Netns | string, command: string[], options: ExecInNetnsOptions = {}): Promise<ExecInNetnsResult> {
  const { input, timeoutMs, ...rest } = options;
  let child: ChildProcess;
  try {
    if (timeoutMs !== undefined && (typeof timeoutMs !== 'number' || !(timeoutMs > 0)))
      throw new InvalidArgumentError('timeoutMs', 'must be a positive number of milliseconds');
    if (input !== undefined && typeof input !== 'string' && !(input instanceof Uint8Array))
      throw new InvalidArgumentError('input', 'must be a string or a Uint8Array');
    child = spawnInNetns(netns, command, { ...rest, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (e) {
    return Promise.reject(e);
  }
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.stdin!.on('error', () => {}); // EPIPE when the command does not read its input
    child.stdin!.end(input);
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => {
        timedOut = true;
        try {
          // With setsid the command leads its own group: kill all of it.
          if (rest.setsid ?? rest.detached) process.kill(-child.pid!, 'SIGKILL');
          else child.kill('SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      }, timeoutMs);
    }
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        timedOut,
      });
    });
  });
}
