/** Small files the library writes for itself (state, status, address books). @module */
import { rename, rm, writeFile } from 'node:fs/promises';

/** Writes JSON (mode 0600) through a temporary file and a rename: a reader never sees half a file. */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  // A fresh file (O_EXCL): never through a symlink or into a file someone else left at that name.
  await rm(tmp, { force: true });
  await writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  await rename(tmp, path);
}
