/**
 * The service manager's notification protocol (sd_notify(3)) for `netns-cluster up` under
 * `Type=notify`: READY=1 once the cluster serves, STATUS= one-line summaries, STOPPING=1, and
 * WATCHDOG=1 keep-alives at half of `$WATCHDOG_USEC`. The datagram is sent by the addon (no
 * libsystemd). Without `$NOTIFY_SOCKET` every call does nothing.
 *
 * The keep-alive timer runs on the event loop on purpose: a loop blocked for longer than
 * `WatchdogSec=` stops the pings, and systemd kills and restarts the controller.
 * @module
 */
import { binding } from './binding.js';

/** Variables the service manager sets for this process only: removed from process.env once read, so services in the nodes do not inherit them. */
const NOTIFY_VARS = ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID'] as const;

export interface NotifierOptions {
  /** Where to send (default: $NOTIFY_SOCKET). */
  socket?: string;
  /** The watchdog period in microseconds (default: $WATCHDOG_USEC when $WATCHDOG_PID is unset or this process). */
  watchdogUsec?: number;
  /** Called once when a message could not be sent (the socket is gone, say). */
  onError?: (e: Error) => void;
  /** Called for every message sent (debug logging). */
  onSend?: (message: string) => void;
  /** Sends one datagram (default: the addon's sdNotify). */
  send?: (socket: string, message: string) => void;
}

export class Notifier {
  /** The socket, or undefined: not under a service manager, every call is a no-op. */
  readonly socket: string | undefined;
  /** Keep-alive period (half the watchdog timeout) in ms, or undefined without a watchdog. */
  readonly watchdogMs: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #status: string | undefined;
  #failed = false;
  readonly #o: NotifierOptions;

  constructor(o: NotifierOptions = {}) {
    this.#o = o;
    this.socket = o.socket || undefined;
    const usec = o.watchdogUsec;
    // Half the timeout, within what a timer can wait (longer would fire at once, every millisecond).
    this.watchdogMs = this.socket && usec !== undefined && Number.isFinite(usec) && usec > 0 ? Math.min(2 ** 31 - 1, Math.max(1, Math.floor(usec / 2000))) : undefined;
  }

  /**
   * From the environment systemd gives a `Type=notify` service, which is then cleared (as
   * sd_notify's unset_environment does): children must not talk to our service manager.
   */
  static fromEnv(env: NodeJS.ProcessEnv = process.env, o: Omit<NotifierOptions, 'socket' | 'watchdogUsec'> = {}): Notifier {
    const socket = env.NOTIFY_SOCKET;
    const pid = env.WATCHDOG_PID;
    const usec = env.WATCHDOG_USEC !== undefined && (pid === undefined || Number(pid) === process.pid) ? Number(env.WATCHDOG_USEC) : undefined;
    for (const k of NOTIFY_VARS) delete env[k];
    return new Notifier({ ...o, socket, watchdogUsec: usec });
  }

  get enabled(): boolean {
    return this.socket !== undefined;
  }

  /** Sends KEY=VALUE lines in one datagram. Returns whether it was sent. */
  notify(fields: Record<string, string | number>): boolean {
    if (!this.socket) return false;
    const message = Object.entries(fields)
      .map(([k, v]) => `${k}=${String(v).replace(/\n/g, ' ')}`)
      .join('\n');
    try {
      (this.#o.send ?? ((s, m) => binding().sdNotify(s, m)))(this.socket, message);
      this.#o.onSend?.(message);
      return true;
    } catch (e) {
      if (!this.#failed) this.#o.onError?.(e as Error);
      this.#failed = true;
      return false;
    }
  }

  /** READY=1 (with a status line). */
  ready(status?: string): void {
    if (status !== undefined) this.#status = status;
    this.notify({ READY: 1, ...(status !== undefined ? { STATUS: status } : {}) });
  }

  /** STATUS=, sent only when it changed. */
  status(line: string): void {
    if (line === this.#status) return;
    this.#status = line;
    this.notify({ STATUS: line });
  }

  /**
   * RELOADING=1 with MONOTONIC_USEC (as systemd's Type=notify-reload wants it); send {@link ready}
   * when the reload is done.
   */
  reloading(status?: string): void {
    if (status !== undefined) this.#status = status;
    const usec = process.hrtime.bigint() / 1000n;
    this.notify({ RELOADING: 1, MONOTONIC_USEC: usec.toString(), ...(status !== undefined ? { STATUS: status } : {}) });
  }

  /** STOPPING=1; also ends the keep-alives. */
  stopping(status?: string): void {
    this.stopWatchdog();
    if (status !== undefined) this.#status = status;
    this.notify({ STOPPING: 1, ...(status !== undefined ? { STATUS: status } : {}) });
  }

  /** Starts WATCHDOG=1 keep-alives at half the watchdog timeout (unref'd: they keep nothing alive). */
  startWatchdog(): void {
    if (this.watchdogMs === undefined || this.#timer) return;
    this.notify({ WATCHDOG: 1 });
    this.#timer = setInterval(() => this.notify({ WATCHDOG: 1 }), this.watchdogMs);
    this.#timer.unref();
  }

  stopWatchdog(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
