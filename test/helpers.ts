// Shared test scaffolding: unique names, root checks, independent checks with iproute2.
import { execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { afterAll, describe } from 'vitest';
import { Netns, sweepClusters } from '../lib/index.js';

export const isRoot = process.getuid?.() === 0;

/**
 * How many times slower than the host the machine running the tests is: 1, except where time is
 * emulated (scripts/kernel-guest.sh sets NETNS_CLUSTER_TEST_SLOWDOWN in its qemu guest). Limits
 * on how long to wait for something (never assertions about time) are multiplied by it.
 */
export const SLOWDOWN = Math.max(1, Number(process.env.NETNS_CLUSTER_TEST_SLOWDOWN) || 1);

/**
 * `describe` for tests that need root. Without root they are skipped with a reason, except under
 * CI (CI=true), where a skip would hide a broken setup and so fails instead.
 */
export const describeAsRoot: typeof describe = ((name: string, fn: () => void) => {
  if (isRoot) return describe(name, fn);
  if (process.env.CI) {
    return describe(name, () => {
      throw new Error('these tests need root (CAP_NET_ADMIN + CAP_SYS_ADMIN), and CI must run them');
    });
  }
  return describe.skip(`${name} (skipped: needs root)`, fn);
}) as typeof describe;

/** A short unique prefix for every kernel object a test creates, e.g. `nt3f9a`. */
export function uniquePrefix(tag = 't'): string {
  return `n${tag}${randomBytes(2).toString('hex')}`;
}

/** `ip -j ...` parsed. */
export function ipj<T = any>(...args: string[]): T {
  return JSON.parse(execFileSync('ip', ['-j', ...args], { encoding: 'utf8' }) || '[]') as T;
}

export function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8' });
}

export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/**
 * Namespaces for one test file: `make(...)` creates them under the prefix; `cleanup()` closes the
 * handles and deletes every namespace whose name starts with the prefix (also ones made by `ip`).
 */
export function scratch(tag: string) {
  const prefix = uniquePrefix(tag);
  const handles: Netns[] = [];
  return {
    prefix,
    async make(...names: string[]): Promise<Netns[]> {
      const made = await Netns.createMany(names.map((n) => prefix + n));
      handles.push(...made);
      return made;
    },
    async cleanup(): Promise<void> {
      await Promise.all(handles.splice(0).map((h) => h.close()));
      // Clusters a failed test left (their controller is this process, which no longer holds them).
      await sweepClusters({ prefix }).catch(() => {});
      const left = (await Netns.list()).filter((n) => n.startsWith(prefix));
      await Netns.deleteMany(left);
    },
  };
}

/** Live (not zombie) processes whose command line has `marker` as an argument. */
export function processesWith(marker: string): number[] {
  const found: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (!readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').includes(marker)) continue;
      if (readFileSync(`/proc/${d}/stat`, 'utf8').replace(/^.*\) /, '')[0] !== 'Z') found.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** The compiled CLI (dist/, built by scripts/bootstrap.sh). */
export const CLI = fileURLToPath(new URL('../dist/lib/cli/main.js', import.meta.url));

/** Runs the CLI to its end: exit code (null if killed), stdout, stderr. */
export function runCli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 * SLOWDOWN }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    ),
  );
}

/** Live (not zombie) processes whose environment has NCMARK=<marker>: a test's services and all they forked. */
export function markedProcesses(marker: string): string[] {
  const out: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (!readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`NCMARK=${marker}`)) continue;
      if (readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '')[0] === 'Z') continue;
      out.push(`${pid} ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim()}`);
    } catch {
      /* gone */
    }
  }
  return out;
}

/**
 * After the file's tests: kill the processes it started, close its cluster (if one is open), clean
 * its scratch prefix and remove its temporary directory. `cluster` is read then, so the tests may
 * assign and reset it.
 */
export function cleanUpAfterAll(o: { scratch: { cleanup(): Promise<void> }; dir?: string; procs?: ChildProcess[]; cluster?: () => { close(): Promise<void> } | undefined }): void {
  afterAll(async () => {
    for (const p of o.procs ?? []) p.kill('SIGKILL');
    await o.cluster?.()?.close();
    await o.scratch.cleanup();
    if (o.dir) rmSync(o.dir, { recursive: true, force: true });
  });
}
