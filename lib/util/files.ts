/** Small files the library writes for itself (state, status, address books). @module */
import { renameSync, rmSync, writeFileSync } from 'node:fs';

/**
 * Writes JSON (mode 0600) through a temporary file and a rename: a reader never sees half a file.
 * The calls are synchronous: these are small files (most in /run), where three system calls on this
 * thread take microseconds, less than three round trips through libuv's pool on createCluster's path.
 */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  // A fresh file (O_EXCL): never through a symlink or into a file someone else left at that name.
  rmSync(tmp, { force: true });
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  renameSync(tmp, path);
}
