/**
 * Errors raised before anything reaches the kernel. Kernel failures are built by the addon: they
 * carry `code` (e.g. `EEXIST`), `errno`, `syscall` (e.g. `RTM_NEWLINK`), `object` and `extack`.
 * @module
 */

/** A bad argument: says which field is wrong and what to do instead. `code` is `ERR_INVALID_ARG_VALUE`. */
export class InvalidArgumentError extends TypeError {
  readonly code = 'ERR_INVALID_ARG_VALUE';
  /** The argument or spec field that is wrong, e.g. `name` or `ports[1].port`. */
  readonly field: string;
  constructor(field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = 'InvalidArgumentError';
    this.field = field;
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
