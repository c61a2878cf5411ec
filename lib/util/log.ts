/**
 * The CLI's log: leveled lines for the operator on stderr, as plain text (`netns-cluster: …`) or
 * JSON (one object per line: time, level, cluster, node, event, message).
 *
 * - Under systemd (`JOURNAL_STREAM` set: stdout/stderr go to the journal) every line starts with
 *   its syslog priority, `<3>` error, `<4>` warning, `<5>` notice, `<6>` info, `<7>` debug, which
 *   journald strips and stores as the priority: `journalctl -p warning` shows warnings and errors
 *   only. Service output is info (stdout) or notice (stderr): a service's chatter on stderr is
 *   not a warning of the controller's.
 * - Debug lines are written only when `NETNS_CLUSTER_DEBUG` is set to anything but '' or '0'
 *   (they also add stack traces to errors).
 * @module
 */

/** syslog priorities, as journald takes them. */
export const LEVELS = { error: 3, warning: 4, notice: 5, info: 6, debug: 7 } as const;
export type LogLevel = keyof typeof LEVELS;
export type LogFormat = 'text' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['text', 'json'];

/** One record; `node` is the node's index, when the record is about one. */
export interface LogRecord {
  level: LogLevel;
  event: string;
  message: string;
  cluster?: string;
  node?: number;
  /** Service output: the stream it came on, and where it goes (default stderr). */
  stream?: 'stdout' | 'stderr';
}

export interface LoggerOptions {
  format?: LogFormat;
  /** Prefix lines with `<priority>` (default: whether JOURNAL_STREAM is set). */
  journal?: boolean;
  /** Write debug records (default: NETNS_CLUSTER_DEBUG is set and not '0'). */
  debug?: boolean;
  /** Where lines go (default: process.stderr; service stdout to process.stdout). */
  write?: (line: string, stream: 'stdout' | 'stderr') => void;
}

/** Whether `NETNS_CLUSTER_DEBUG` asks for debug output. */
export function debugEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env.NETNS_CLUSTER_DEBUG;
  return v !== undefined && v !== '' && v !== '0';
}

export class Logger {
  format: LogFormat;
  readonly journal: boolean;
  readonly debugEnabled: boolean;
  /** Set once the cluster is known: every record then carries it. */
  cluster: string | undefined;
  readonly #write: (line: string, stream: 'stdout' | 'stderr') => void;

  constructor(o: LoggerOptions = {}) {
    this.format = o.format ?? 'text';
    this.journal = o.journal ?? Boolean(process.env.JOURNAL_STREAM);
    this.debugEnabled = o.debug ?? debugEnabled();
    this.#write = o.write ?? ((line, stream) => (stream === 'stdout' ? process.stdout : process.stderr).write(line));
  }

  /** The line a record becomes (with its newline), or undefined when it is not written. */
  render(r: LogRecord, time = new Date()): string | undefined {
    if (r.level === 'debug' && !this.debugEnabled) return undefined;
    const cluster = r.cluster ?? this.cluster;
    // One record is one line: a message never carries a newline into the journal.
    const message = r.message.replace(/\r?\n/g, ' ⏎ ');
    const prefix = this.journal ? `<${LEVELS[r.level]}>` : '';
    if (this.format === 'json') {
      const o = { time: time.toISOString(), level: r.level, ...(cluster !== undefined ? { cluster } : {}), ...(r.node !== undefined ? { node: r.node } : {}), event: r.event, message };
      return `${prefix}${JSON.stringify(o)}\n`;
    }
    if (r.event === 'output') return `${prefix}${message}\n`;
    const tag = r.level === 'warning' || r.level === 'error' || r.level === 'debug' ? `${r.level}: ` : '';
    return `${prefix}netns-cluster: ${tag}${message}\n`;
  }

  log(r: LogRecord): void {
    const line = this.render(r);
    // JSON: every record on stderr, one stream to read; text: service stdout stays on stdout.
    if (line !== undefined) this.#write(line, this.format === 'json' ? 'stderr' : (r.stream ?? 'stderr'));
  }

  error(event: string, message: string, extra: Partial<LogRecord> = {}): void {
    this.log({ level: 'error', event, message, ...extra });
  }
  warn(event: string, message: string, extra: Partial<LogRecord> = {}): void {
    this.log({ level: 'warning', event, message, ...extra });
  }
  notice(event: string, message: string, extra: Partial<LogRecord> = {}): void {
    this.log({ level: 'notice', event, message, ...extra });
  }
  info(event: string, message: string, extra: Partial<LogRecord> = {}): void {
    this.log({ level: 'info', event, message, ...extra });
  }
  debug(event: string, message: string | (() => string), extra: Partial<LogRecord> = {}): void {
    if (!this.debugEnabled) return;
    this.log({ level: 'debug', event, message: typeof message === 'function' ? message() : message, ...extra });
  }
}

/** The process's logger (the CLI sets its format from `--log-format`). */
export const log = new Logger();
