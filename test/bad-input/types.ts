// The bad-input corpus: every case is a call that must be refused with a clear error, and must
// leave nothing behind. Each area keeps its cases in test/bad-input/<area>.cases.ts, exporting
// `cases: BadInputCase[]`; test/bad-input.test.ts runs them all.
import { Netns } from '../../lib/index.js';

/** What a case gets: names it creates must start with `prefix`; `dir` is a private scratch directory. */
export interface CaseContext {
  prefix: string;
  dir: string;
}

export interface BadInputCase {
  /** What is wrong, e.g. 'vip is a multicast address'. Unique within its area. */
  name: string;
  /** Makes the bad call. It must throw or reject; returning normally counts as "accepted". */
  run(ctx: CaseContext): unknown;
  expect: {
    /** The error's `code`: 'ERR_INVALID_ARG_VALUE' for spec/argument errors, 'EBUSY', 'EXIT_2' for a CLI usage exit… */
    code: string;
    /** The error's `field`, when the error names one (the spec path, e.g. 'ports[1].port'). */
    field?: string;
    /** The message must say what to fix: this must match it. */
    message: RegExp;
  };
  /** Longest time the call may take before it counts as a hang. Default 10 s. */
  timeoutMs?: number;
}

/** Runs `fn` with a fresh namespace named after the case, deleted afterwards whatever happens. */
export async function inNs<T>(ctx: CaseContext, fn: (ns: Netns) => T | Promise<T>): Promise<T> {
  const ns = await Netns.create(`${ctx.prefix}a`);
  try {
    return await fn(ns);
  } finally {
    await Netns.delete(ns);
  }
}
