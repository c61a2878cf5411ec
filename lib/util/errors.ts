/**
 * Errors raised before anything reaches the kernel. Kernel failures are built by the addon: they
 * carry `code` (e.g. `EEXIST`), `errno`, `syscall` (e.g. `RTM_NEWLINK`), `object` and `extack`.
 * @module
 */

/** The longest message an error about bad input carries; a longer one is cut (a bad value is never echoed whole). */
export const MAX_MESSAGE = 1000;
const MAX_FIELD = 200;

/** A message as every error about bad input carries it: long quoted values clipped, at most {@link MAX_MESSAGE} characters. */
export function boundedMessage(message: string): string {
  return capText(clipQuoted(message));
}

/** `text` cut to `max` characters, saying how much was left out. */
export function capText(text: string, max = MAX_MESSAGE): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length - max} more characters)`;
}

/**
 * A message with every long quoted value in it clipped to 60 characters: a quoted run without
 * spaces longer than that, or any quoted run of 200 characters or more (no prose runs that long).
 */
export function clipQuoted(message: string): string {
  const parts = message.split("'");
  const long = (v: string) => v.length >= 200 || (v.length > 60 && !/\s/.test(v));
  let out = parts[0];
  for (let i = 1; i < parts.length; i++) {
    const v = parts[i];
    if (i < parts.length - 1 && long(v)) {
      const after = parts[++i];
      out += `'${v.slice(0, 59)}…'${/^ \(\d+ characters\)/.test(after) ? '' : ` (${v.length} characters)`}${after}`;
    } else {
      out += `'${v}`;
    }
  }
  return out;
}

/**
 * A bad argument: says which field is wrong and what to do instead. `code` is `ERR_INVALID_ARG_VALUE`.
 * Its message is at most {@link MAX_MESSAGE} characters, whatever value it is about.
 */
export class InvalidArgumentError extends TypeError {
  readonly code = 'ERR_INVALID_ARG_VALUE';
  /** The argument or spec field that is wrong, e.g. `name` or `ports[1].port`: the first problem's. */
  readonly field: string;
  /**
   * Every problem found, the first being the one `field` and the message name. Validation of a
   * whole spec reports all its independent mistakes here; a single check reports one.
   */
  readonly problems: readonly { field: string; message: string }[];
  constructor(field: string, message: string, problems?: readonly { field: string; message: string }[]) {
    const f = capText(String(field), MAX_FIELD);
    super(capText(`${f}: ${clipQuoted(message)}`));
    this.name = 'InvalidArgumentError';
    this.field = f;
    const bounded = (p: { field: string; message: string }) => ({ field: capText(String(p.field), MAX_FIELD), message: capText(clipQuoted(p.message)) });
    this.problems = problems?.length ? problems.map(bounded) : [{ field: f, message: capText(clipQuoted(message)) }];
  }
}

/** An error from the kernel or a system call, as the addon reports it. */
export interface KernelError extends Error {
  /** errno name, e.g. `EEXIST`, `ENOENT`, `EPERM`. */
  code: string;
  /** Negative errno, as in Node's own system errors. */
  errno: number;
  /** The request or system call, e.g. `RTM_NEWLINK`, `mount`, `setns`. */
  syscall?: string;
  /** What it was about, e.g. `veth 'a' (peer 'b')`. */
  object?: string;
  /** The kernel's extended-ack message, when it gave one. */
  extack?: string;
}

/** Raised by a batch: the first failure, with every op's outcome. */
export class BatchError extends Error {
  readonly code: string;
  /** Index (in the batch) of the first op that failed. */
  readonly index: number;
  /** One entry per op: its value, its Error, or null when it was skipped. */
  readonly results: unknown[];
  constructor(index: number, cause: KernelError, results: unknown[]) {
    super(`batch op ${index} failed: ${cause.message}`, { cause });
    this.name = 'BatchError';
    this.code = cause.code;
    this.index = index;
    this.results = results;
  }
}

export function isKernelError(v: unknown): v is KernelError {
  return v instanceof Error && typeof (v as KernelError).code === 'string' && typeof (v as KernelError).errno === 'number';
}
