/**
 * The one door to the addon for the layers above the kernel layer: ops go to the addon's own
 * worker thread (which enters namespaces; Node's threads never do), and the op and result types
 * they are written in. Nothing outside lib/kernel imports the binding itself.
 * @module
 */
import { binding, type NativeOp, type Outcomes } from './binding.js';

export type {
  NativeHandle,
  NativeOp,
  NativeResult,
  OpResultMap,
  Outcome,
  Outcomes,
  ResultOf,
  NftCmpOp,
  NftCommand,
  NftData,
  NftElement,
  NftElementInfo,
  NftExpr,
  NftFamily,
  NftHook,
  NftMetaKey,
  NftPayloadBase,
  NftRuleInfo,
  NftSetFlag,
  NftTableInfo,
  NftTypeof,
  NftVerdictName,
  IptClusterip,
  IptHook,
  IptListedRule,
  IptNeed,
  IptRule,
  IptTable,
} from './binding.js';

/**
 * Runs ops in order on the addon's worker thread and resolves with one entry per op: its value,
 * an Error (code, errno, syscall, extack), or null when skipped after an earlier failure (only with
 * `stopOnError`).
 */
export function submit<const O extends readonly NativeOp[]>(ops: O, stopOnError: boolean): Promise<Outcomes<O>> {
  return binding().submit(ops, stopOnError);
}

/** Runs ops as one job (stopping at the first failure) and throws that failure. */
export async function submitAll(ops: readonly NativeOp[]): Promise<void> {
  const failed = (await binding().submit(ops, true)).find((r) => r instanceof Error);
  if (failed) throw failed;
}

/**
 * An exclusive open-file-description lock on `path` (0600, never through a symlink), holding
 * `content`; returns the fd. Throws code EAGAIN when another holder has it.
 */
export function lockFile(path: string, content?: string): number {
  return binding().lockFile(path, content);
}

/** Whether any open file description holds a lock on `path` (asks only; never takes it). */
export function lockHeld(path: string): boolean {
  return binding().lockHeld(path);
}

/** Releases a lock taken with {@link lockFile}. */
export function unlockFile(fd: number): void {
  binding().unlockFile(fd);
}
