/**
 * A client for OpenVPN's management interface over its unix socket. Commands are answered in
 * order, so several may be in flight; lines starting with `>` are real-time notifications (they may
 * arrive at any time, even between the lines of a multi-line answer) and are emitted as events.
 * @module
 */
import { EventEmitter } from 'node:events';
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidArgumentError } from '../../util/errors.js';

export type ManagementErrorCode =
  | 'ERR_MANAGEMENT_TIMEOUT' // the socket did not appear / answer in time
  | 'ERR_MANAGEMENT_CLOSED' // the connection closed with commands pending
  | 'ERR_MANAGEMENT_COMMAND'; // OpenVPN answered `ERROR: ...`

export class ManagementError extends Error {
  readonly code: ManagementErrorCode;
  /** The command, for ERR_MANAGEMENT_COMMAND and ERR_MANAGEMENT_CLOSED. */
  readonly command?: string;
  constructor(code: ManagementErrorCode, message: string, command?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ManagementError';
    this.code = code;
    if (command !== undefined) this.command = command;
  }
}

/** A real-time notification: `>STATE:...` gives `{ type: 'STATE', text: '...' }`. */
export interface Notification {
  type: string;
  text: string;
}

export interface ManagementEvents {
  notification: [Notification];
  close: [];
  error: [Error];
}

export interface ConnectedClient {
  commonName: string;
  /** As OpenVPN prints it: `198.18.1.2:40312`, but a bare `2001:db8::10` for IPv6 (2.6 prints no port there). */
  realAddress: string;
  /** The address part of realAddress. */
  realIp: string;
  /** The port, or null when OpenVPN did not print one (IPv6). */
  realPort: number | null;
  /** The client's tunnel IPv4 address, or '' when none. */
  virtualAddress: string;
  /** The client's tunnel IPv6 address, or '' when none. */
  virtualIpv6Address: string;
  bytesReceived: number;
  bytesSent: number;
  connectedSince: Date;
  username?: string;
  clientId?: number;
  peerId?: number;
  dataCipher?: string;
}

export interface RoutingEntry {
  virtualAddress: string;
  commonName: string;
  realAddress: string;
  lastRef: Date;
}

export interface ServerStatus {
  /** The TITLE line, e.g. `OpenVPN 2.6.14 x86_64-pc-linux-gnu ...`. */
  title: string;
  time: Date;
  clients: ConnectedClient[];
  routes: RoutingEntry[];
  /** GLOBAL_STATS, e.g. `{ 'Max bcast/mcast queue length': '0', dco_enabled: '0' }`. */
  globalStats: Record<string, string>;
}

export interface OpenvpnState {
  time: Date;
  /** CONNECTING, WAIT, AUTH, GET_CONFIG, ASSIGN_IP, ADD_ROUTES, CONNECTED, RECONNECTING, EXITING, ... */
  state: string;
  description: string;
  /** The local tunnel IPv4 address, when assigned. */
  localTunnelAddress: string;
  remoteAddress: string;
  remotePort: string;
  localAddress: string;
  localPort: string;
  localTunnelIpv6Address: string;
}

/**
 * Splits OpenVPN's real address: `ip:port` for IPv4, `[v6]:port`, or a bare IPv6 address (what
 * 2.6's status prints for IPv6 clients; a trailing `:port` there would be ambiguous). Port null when absent.
 */
export function splitHostPort(s: string): { ip: string; port: number | null } {
  const bracket = /^\[([^\]]+)\]:(\d+)$/.exec(s);
  if (bracket) return { ip: bracket[1], port: Number(bracket[2]) };
  if (isIP(s) !== 0) return { ip: s, port: null };
  const v4 = /^([\d.]+):(\d+)$/.exec(s);
  if (v4) return { ip: v4[1], port: Number(v4[2]) };
  return { ip: s, port: null };
}

function epoch(v: string | undefined): Date {
  return new Date(Number(v ?? 0) * 1000);
}

/**
 * Parses the answer to `status 3` (tab-separated; `status 2` with commas also works). Fields are
 * found through the HEADER lines, so columns added by later versions do not shift anything.
 */
export function parseStatus(lines: string[]): ServerStatus {
  const out: ServerStatus = { title: '', time: new Date(0), clients: [], routes: [], globalStats: {} };
  const sep = lines.some((l) => l.includes('\t')) ? '\t' : ',';
  const headers = new Map<string, string[]>();
  for (const line of lines) {
    const f = line.split(sep);
    const kind = f[0];
    if (kind === 'TITLE') out.title = f.slice(1).join(sep);
    else if (kind === 'TIME') out.time = epoch(f[2]);
    else if (kind === 'HEADER') headers.set(f[1], f.slice(2));
    else if (kind === 'GLOBAL_STATS') out.globalStats[f[1]] = f[2] ?? '';
    else if (kind === 'CLIENT_LIST' || kind === 'ROUTING_TABLE') {
      const names = headers.get(kind) ?? [];
      const row = new Map(names.map((n, i) => [n, f[i + 1] ?? '']));
      if (kind === 'CLIENT_LIST') {
        const real = row.get('Real Address') ?? '';
        const { ip, port } = splitHostPort(real);
        const c: ConnectedClient = {
          commonName: row.get('Common Name') ?? '',
          realAddress: real,
          realIp: ip,
          realPort: port,
          virtualAddress: row.get('Virtual Address') ?? '',
          virtualIpv6Address: row.get('Virtual IPv6 Address') ?? '',
          bytesReceived: Number(row.get('Bytes Received') ?? 0),
          bytesSent: Number(row.get('Bytes Sent') ?? 0),
          connectedSince: epoch(row.get('Connected Since (time_t)')),
        };
        const username = row.get('Username');
        if (username !== undefined && username !== 'UNDEF') c.username = username;
        if (row.has('Client ID')) c.clientId = Number(row.get('Client ID'));
        if (row.has('Peer ID')) c.peerId = Number(row.get('Peer ID'));
        if (row.has('Data Channel Cipher')) c.dataCipher = row.get('Data Channel Cipher');
        out.clients.push(c);
      } else {
        out.routes.push({
          virtualAddress: row.get('Virtual Address') ?? '',
          commonName: row.get('Common Name') ?? '',
          realAddress: row.get('Real Address') ?? '',
          lastRef: epoch(row.get('Last Ref (time_t)')),
        });
      }
    }
  }
  return out;
}

/** Parses one line of `state` output: `time,STATE,desc,tunIp,remoteIp,remotePort,localIp,localPort,tunIpv6`. */
export function parseState(line: string): OpenvpnState {
  const f = line.split(',');
  return {
    time: epoch(f[0]),
    state: f[1] ?? '',
    description: f[2] ?? '',
    localTunnelAddress: f[3] ?? '',
    remoteAddress: f[4] ?? '',
    remotePort: f[5] ?? '',
    localAddress: f[6] ?? '',
    localPort: f[7] ?? '',
    localTunnelIpv6Address: f[8] ?? '',
  };
}

interface Pending {
  command: string;
  multiline: boolean;
  lines: string[];
  resolve: (v: string[]) => void;
  reject: (e: Error) => void;
}

export interface ConnectOptions {
  /** How long to keep retrying while the socket does not exist or refuses (OpenVPN still starting). Default 10 s. */
  timeoutMs?: number;
  /** Pause between attempts. Default 50 ms. */
  retryIntervalMs?: number;
  signal?: AbortSignal;
}

const SIGNALS = ['SIGHUP', 'SIGTERM', 'SIGUSR1', 'SIGUSR2'] as const;
export type ManagementSignal = (typeof SIGNALS)[number];

export class ManagementClient extends EventEmitter<ManagementEvents> implements AsyncDisposable {
  /** The `>INFO:` banner OpenVPN greets with. */
  banner = '';
  readonly path: string;
  #socket: Socket;
  #buffer = '';
  #pending: Pending[] = [];
  #closed = false;

  private constructor(path: string, socket: Socket) {
    super();
    this.path = path;
    this.#socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.#onData(chunk));
    socket.on('error', (err) => {
      // Pending commands learn about it from 'close'; surface it only to listeners that care.
      if (this.listenerCount('error') > 0) this.emit('error', err);
    });
    socket.on('close', () => this.#onClose());
  }

  /**
   * Connects to the management socket at `path`, retrying while it does not exist yet or refuses
   * (OpenVPN creates it during start-up and serves one client at a time), and waits for the
   * `>INFO:` banner.
   */
  static async connect(path: string, options: ConnectOptions = {}): Promise<ManagementClient> {
    if (typeof path !== 'string' || !path.startsWith('/')) throw new InvalidArgumentError('path', `'${String(path)}' must be an absolute socket path`);
    const timeoutMs = options.timeoutMs ?? 10_000;
    const interval = options.retryIntervalMs ?? 50;
    const deadline = Date.now() + timeoutMs;
    const signal = options.signal;
    let lastError: unknown;
    for (;;) {
      signal?.throwIfAborted();
      try {
        const socket = await openSocket(path, signal);
        const client = new ManagementClient(path, socket);
        await client.#waitForBanner(Math.max(deadline - Date.now(), 1000), signal);
        return client;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (signal?.aborted) throw signal.reason;
        if (code !== 'ENOENT' && code !== 'ECONNREFUSED' && code !== 'ERR_MANAGEMENT_CLOSED') throw err;
        lastError = err;
      }
      if (Date.now() + interval > deadline)
        throw new ManagementError(
          'ERR_MANAGEMENT_TIMEOUT',
          `no OpenVPN management interface answered at ${path} within ${timeoutMs} ms (last: ${(lastError as Error)?.message ?? 'none'}); ` +
            'is OpenVPN running with `management <path> unix`?',
          undefined,
          { cause: lastError },
        );
      try {
        await sleep(interval, undefined, { signal });
      } catch (err) {
        // timers/promises rejects with a generic AbortError; callers expect the signal's own reason.
        throw signal?.reason ?? err;
      }
    }
  }

  #waitForBanner(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = (err?: unknown) => {
        clearTimeout(timer);
        this.off('notification', onNote);
        this.off('close', onClose);
        signal?.removeEventListener('abort', onAbort);
        if (err) {
          this.#socket.destroy();
          reject(err);
        } else resolve();
      };
      const onNote = (n: Notification) => {
        if (n.type === 'INFO') {
          this.banner = n.text;
          done();
        }
      };
      const onClose = () => done(new ManagementError('ERR_MANAGEMENT_CLOSED', `${this.path} closed before OpenVPN's banner`));
      const onAbort = () => done(signal?.reason);
      const timer = setTimeout(
        () => done(new ManagementError('ERR_MANAGEMENT_TIMEOUT', `${this.path} accepted but sent no >INFO: banner in ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.on('notification', onNote);
      this.on('close', onClose);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  #onData(chunk: string): void {
    this.#buffer += chunk;
    let nl: number;
    while ((nl = this.#buffer.indexOf('\n')) >= 0) {
      const line = this.#buffer.slice(0, nl).replace(/\r$/, '');
      this.#buffer = this.#buffer.slice(nl + 1);
      this.#onLine(line);
    }
  }

  #onLine(line: string): void {
    if (line.startsWith('>')) {
      const colon = line.indexOf(':');
      const n = colon < 0 ? { type: line.slice(1), text: '' } : { type: line.slice(1, colon), text: line.slice(colon + 1) };
      this.emit('notification', n);
      return;
    }
    const p = this.#pending[0];
    if (!p) return; // nothing asked: ignore stray output
    if (p.lines.length === 0 && line.startsWith('ERROR:')) {
      this.#pending.shift();
      p.reject(new ManagementError('ERR_MANAGEMENT_COMMAND', `'${p.command}': ${line.slice(6).trim()}`, p.command));
      return;
    }
    if (!p.multiline) {
      this.#pending.shift();
      p.resolve([line.startsWith('SUCCESS:') ? line.slice(8).trim() : line]);
      return;
    }
    if (line === 'END') {
      this.#pending.shift();
      p.resolve(p.lines);
      return;
    }
    p.lines.push(line);
  }

  #onClose(): void {
    if (this.#closed && this.#pending.length === 0) return this.#emitClose();
    this.#closed = true;
    for (const p of this.#pending.splice(0))
      p.reject(new ManagementError('ERR_MANAGEMENT_CLOSED', `the management connection closed before '${p.command}' was answered`, p.command));
    this.#emitClose();
  }

  #closeEmitted = false;
  #emitClose(): void {
    if (this.#closeEmitted) return;
    this.#closeEmitted = true;
    this.emit('close');
  }

  /** True once the connection is closed (by `close()`, OpenVPN exiting, or an error). */
  get closed(): boolean {
    return this.#closed || this.#socket.destroyed;
  }

  /**
   * Sends one command. `multiline` answers end with `END` and resolve to their lines; the others
   * resolve to the text after `SUCCESS:`. `ERROR:` rejects with ERR_MANAGEMENT_COMMAND.
   */
  command(command: string, multiline: boolean): Promise<string[]> {
    if (typeof command !== 'string' || command.length === 0 || /[\r\n]/.test(command))
      throw new InvalidArgumentError('command', 'must be one line of text');
    if (this.closed)
      return Promise.reject(new ManagementError('ERR_MANAGEMENT_CLOSED', `the management connection to ${this.path} is closed`, command));
    return new Promise((resolve, reject) => {
      this.#pending.push({ command, multiline, lines: [], resolve, reject });
      this.#socket.write(command + '\n');
    });
  }

  /** `status 3`: connected clients, routing table and global stats. */
  async status(): Promise<ServerStatus> {
    return parseStatus(await this.command('status 3', true));
  }

  /** `state`: the current state (CONNECTED, ...). */
  async state(): Promise<OpenvpnState> {
    const lines = await this.command('state', true);
    return parseState(lines[lines.length - 1] ?? '');
  }

  /** `version`: e.g. `['OpenVPN Version: OpenVPN 2.6.14 ...', 'Management Version: 5']`. */
  version(): Promise<string[]> {
    return this.command('version', true);
  }

  /** `load-stats`: e.g. `{ nclients: 2, bytesin: 1234, bytesout: 5678 }`. */
  async loadStats(): Promise<Record<string, number>> {
    const [text] = await this.command('load-stats', false);
    return Object.fromEntries(text.split(',').map((kv) => kv.split('=')).map(([k, v]) => [k, Number(v)]));
  }

  /** `signal SIGTERM` etc. With SIGTERM OpenVPN answers, then exits and closes the connection. */
  async signal(sig: ManagementSignal): Promise<string> {
    if (!SIGNALS.includes(sig)) throw new InvalidArgumentError('signal', `must be one of ${SIGNALS.join(', ')}`);
    const [text] = await this.command(`signal ${sig}`, false);
    return text;
  }

  /** `kill <common name>` or `kill <ip:port>` (the client's real address): disconnects it. */
  async kill(target: string): Promise<string> {
    if (typeof target !== 'string' || target.length === 0 || /\s/.test(target))
      throw new InvalidArgumentError('target', 'must be a common name or a real address ip:port, without spaces');
    const [text] = await this.command(`kill ${target}`, false);
    return text;
  }

  /** `state on` / `bytecount N` etc. turn on notifications, delivered as 'notification' events. */
  async enable(what: 'state' | 'log' | 'echo', on = true): Promise<void> {
    await this.command(`${what} ${on ? 'on' : 'off'}`, false);
  }

  /** Sends `quit` politely and closes. Idempotent; pending commands are rejected. */
  async close(): Promise<void> {
    if (this.#socket.destroyed) return;
    this.#closed = true;
    await new Promise<void>((resolve) => {
      this.#socket.once('close', () => resolve());
      this.#socket.end('quit\n');
      // OpenVPN closes on quit; do not wait on a stuck peer for long.
      setTimeout(() => this.#socket.destroy(), 1000).unref();
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function openSocket(path: string, signal?: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ path });
    const onAbort = () => {
      s.destroy();
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    s.once('connect', () => {
      signal?.removeEventListener('abort', onAbort);
      s.removeListener('error', reject);
      resolve(s);
    });
    s.once('error', (err) => {
      signal?.removeEventListener('abort', onAbort);
      reject(err);
    });
  });
}
