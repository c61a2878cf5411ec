/**
 * BIRD's control socket, spoken directly (no `birdc`): a Unix stream socket where each command is
 * one line and each reply is a run of lines `DDDD-text` (more follows), ` text` (continues the
 * previous code) and a last `DDDD text`. Codes 0xxx end a successful reply (0000 OK, 0001 the
 * greeting, 0009–0012 disabled/enabled…), 1xxx carry table rows (1002 protocols, 1007 routes),
 * 2xxx table headers, 8xxx runtime errors and 9xxx parse errors.
 *
 * The parsers of `show protocols` and `show route` replies are pure functions, tested without BIRD.
 * @module
 */
import { connect, type Socket } from 'node:net';

/** One line of a reply: its code and text (a continuation line carries the code before it). */
export interface ReplyLine {
  code: number;
  text: string;
}

/** A command BIRD refused (8xxx/9xxx): `birdCode` is its reply code, the message its text. */
export class BirdError extends Error {
  readonly code = 'ERR_BIRD';
  constructor(
    message: string,
    readonly birdCode: number,
    readonly command: string,
  ) {
    super(message);
    this.name = 'BirdError';
  }
}

/**
 * Splits BIRD's reply text into lines and finds where a reply ends. Returns the complete replies
 * found in `buffer` and what is left over.
 */
export function splitReplies(buffer: string): { replies: ReplyLine[][]; rest: string } {
  const replies: ReplyLine[][] = [];
  let current: ReplyLine[] = [];
  let code = 0;
  let start = 0;
  for (;;) {
    const nl = buffer.indexOf('\n', start);
    if (nl < 0) break;
    const line = buffer.slice(start, nl);
    start = nl + 1;
    const m = /^(\d{4})([ -])(.*)$/.exec(line);
    if (m) {
      code = Number(m[1]);
      current.push({ code, text: m[3] });
      if (m[2] === ' ') {
        replies.push(current);
        current = [];
      }
    } else {
      // A continuation: " text" (the previous code), or a bare line.
      current.push({ code, text: line.startsWith(' ') ? line.slice(1) : line });
    }
  }
  // Lines of a reply that has not ended stay in the buffer until it has.
  const consumed = replies.length ? endOfReplies(buffer, replies) : 0;
  return { replies, rest: buffer.slice(consumed) };
}

/** The offset just after the last complete reply. */
function endOfReplies(buffer: string, replies: ReplyLine[][]): number {
  let lines = replies.reduce((a, r) => a + r.length, 0);
  let at = 0;
  while (lines > 0) {
    at = buffer.indexOf('\n', at) + 1;
    lines--;
  }
  return at;
}

const isError = (code: number) => code >= 8000;

/** A connection to BIRD's control socket. Commands are queued: one reply at a time. */
export class BirdControl {
  #socket: Socket;
  #buffer = '';
  #waiting: { resolve: (r: ReplyLine[]) => void; reject: (e: Error) => void }[] = [];
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;
  #error: Error | undefined;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.#buffer += d;
      const { replies, rest } = splitReplies(this.#buffer);
      this.#buffer = rest;
      for (const r of replies) this.#waiting.shift()?.resolve(r);
    });
    const fail = (e: Error) => {
      this.#error ??= e;
      this.#closed = true;
      for (const w of this.#waiting.splice(0)) w.reject(e);
    };
    socket.on('error', fail);
    socket.on('close', () => fail(Object.assign(new Error('the BIRD control socket closed'), { code: 'ECONNRESET' })));
  }

  /** Connects and reads the greeting (`0001 BIRD 2.x ready.`); rejects after `timeoutMs`. */
  static connect(path: string, timeoutMs = 2000): Promise<BirdControl> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(Object.assign(new Error(`BIRD's control socket ${path} did not answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
      }, timeoutMs);
      socket.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      socket.once('connect', () => {
        const c = new BirdControl(socket);
        c.#waiting.push({
          resolve: (greeting) => {
            clearTimeout(timer);
            if (greeting[0]?.code !== 1) {
              socket.destroy();
              return reject(new Error(`${path} is not BIRD's control socket (it said '${greeting[0]?.text.slice(0, 60)}')`));
            }
            resolve(c);
          },
          reject: (e) => {
            clearTimeout(timer);
            reject(e);
          },
        });
      });
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Sends one command (one line) and resolves with its reply; a 8xxx/9xxx reply rejects with a {@link BirdError}. */
  command(cmd: string, timeoutMs = 5000): Promise<ReplyLine[]> {
    if (/[\r\n]/.test(cmd)) return Promise.reject(new BirdError('a BIRD command is one line', 9000, cmd));
    const run = this.#queue.then(
      () =>
        new Promise<ReplyLine[]>((resolve, reject) => {
          if (this.#closed) return reject(this.#error ?? new Error('the BIRD control socket is closed'));
          const timer = setTimeout(() => {
            reject(Object.assign(new Error(`BIRD did not answer '${cmd}' within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
            this.close();
          }, timeoutMs);
          this.#waiting.push({
            resolve: (r) => {
              clearTimeout(timer);
              const last = r[r.length - 1];
              if (last && isError(last.code)) reject(new BirdError(`BIRD refused '${cmd}': ${last.text} (${last.code})`, last.code, cmd));
              else resolve(r);
            },
            reject: (e) => {
              clearTimeout(timer);
              reject(e);
            },
          });
          this.#socket.write(`${cmd}\n`);
        }),
    );
    this.#queue = run.catch(() => {});
    return run;
  }

  close(): void {
    this.#closed = true;
    this.#socket.destroy();
  }
}

/** One row of `show protocols`. */
export interface BirdProtocol {
  name: string;
  proto: string;
  table: string;
  /** BIRD's protocol state: up, start, down, flush… */
  state: string;
  /** When the state last changed, as BIRD says it (ISO, the local time of the BIRD host) */
  since: string;
  /** For BGP: the session state (Established, Active, Connect, Idle, OpenSent, OpenConfirm). */
  bgpState?: string;
  /** For BGP: the last error, e.g. `Received: Bad peer AS` or `Socket: Connection refused`. */
  lastError?: string;
  info: string;
}

/** Parses the reply to `show protocols` (rows with code 1002; the config sets `timeformat protocol iso long`). */
export function parseProtocols(reply: ReplyLine[]): BirdProtocol[] {
  const out: BirdProtocol[] = [];
  for (const l of reply) {
    if (l.code !== 1002) continue;
    const m = /^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?|\S+)\s*(.*)$/.exec(l.text);
    if (!m) continue;
    const info = m[6].trim();
    const row: BirdProtocol = { name: m[1], proto: m[2], table: m[3], state: m[4], since: m[5], info };
    if (m[2] === 'BGP') {
      const [state, ...rest] = info.split(/\s{2,}/);
      row.bgpState = state || undefined;
      const err = rest.join(' ').trim();
      if (err) row.lastError = err;
    }
    out.push(row);
  }
  return out;
}

/** The prefixes in the reply to a `show route …` command (rows with code 1007). */
export function parseRoutePrefixes(reply: ReplyLine[]): string[] {
  const out: string[] = [];
  for (const l of reply) {
    if (l.code !== 1007) continue;
    const first = l.text.split(/\s+/)[0];
    if (/^[0-9a-fA-F:.]+\/\d{1,3}$/.test(first) && !out.includes(first)) out.push(first);
  }
  return out;
}
