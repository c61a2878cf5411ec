// A `netns-cluster up` run as a child process, for the CLI and operations tests: its process and
// everything it printed so far, a wait for what it prints, and the config of a small cluster whose
// nodes run the test responder.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { CLI, SLOWDOWN } from './helpers.js';
import { PORT } from './world.js';

const responder = fileURLToPath(new URL('./fixtures/responder.mjs', import.meta.url));

/** A running `up`: its process and everything it printed so far. */
export interface Up {
  proc: ChildProcess;
  out: { stdout: string; stderr: string };
  exited: Promise<[number | null, NodeJS.Signals | null]>;
}

/** Runs the CLI with `args` (e.g. ['up', file]); `stdin`, when given, is written to it and closed. */
export function startUp(args: string[], o: { env?: NodeJS.ProcessEnv; stdin?: string } = {}): Up {
  const proc = spawn(process.execPath, [CLI, ...args], { stdio: [o.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env: o.env ?? process.env });
  if (o.stdin !== undefined) proc.stdin!.end(o.stdin);
  const out = { stdout: '', stderr: '' };
  proc.stdout!.on('data', (d) => (out.stdout += d));
  proc.stderr!.on('data', (d) => (out.stderr += d));
  return { proc, out, exited: once(proc, 'exit') as Promise<[number | null, NodeJS.Signals | null]> };
}

/** Waits until `cond` holds; fails early if `up` exits, and after `ms` (× SLOWDOWN) with what it printed. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, up?: Up, ms = 30_000): Promise<void> {
  const end = Date.now() + ms * SLOWDOWN;
  while (!(await cond())) {
    if (up && up.proc.exitCode !== null) throw new Error(`up exited (${up.proc.exitCode}) before ${what}:\n${up.out.stderr}`);
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${up ? `:\n${up.out.stderr}` : ''}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A 3-node steer cluster on uplink c0 of `hostNetns`, serving UDP PORT with the responder in every node. */
export const responderConfig = (name: string, hostNetns: string | undefined, extra: object = {}) => ({
  name,
  nodes: 3,
  vip: '192.0.2.1/24',
  ports: [{ protocol: 'udp', port: PORT }],
  hostNetns,
  uplink: { bridge: 'c0' },
  service: { command: [process.execPath, responder, '{node}', String(PORT), '{vip}'], restart: { initialDelayMs: 300 } },
  ...extra,
});
