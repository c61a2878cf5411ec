import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  rmdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { InvalidArgumentError } from '../lib/util/errors.js';
import type { Netns } from '../lib/kernel/netns.js';
import { execInNetns, netnsExecPath, spawnInNetns } from '../lib/kernel/spawn.js';
import { describeAsRoot, scratch, processesWith, SLOWDOWN } from './helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const mainThreadNetns = () => readlinkSync(`/proc/self/task/${process.pid}/ns/net`);

/** Fds a command sees, from `ls -l /proc/self/fd` (without the one ls opens to list them). */
function fdsOf(lsOutput: string): number[] {
  return lsOutput
    .split('\n')
    .map((l) => /\s(\d+) -> (.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => !!m && !/^\/proc\/\d+\/fd$/.test(m[2]))
    .map((m) => Number(m[1]));
}


async function until<T>(what: string, f: () => T | undefined, ms = 5000): Promise<T> {
  const end = Date.now() + ms * SLOWDOWN;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function collect(child: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (b) => (stdout += b));
  child.stderr?.on('data', (b) => (stderr += b));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describeAsRoot('spawnInNetns / execInNetns', () => {
  const s = scratch('sp');
  let ns: Netns;
  let peer: Netns;
  const veth = `${s.prefix}v`;
  const etcDir = `/etc/netns/${s.prefix}a`;
  const etcParentExisted = existsSync('/etc/netns');
  const hostsText = `192.0.2.77 ${s.prefix}-only-in-the-namespace\n`;
  const tmp = mkdtempSync(join(tmpdir(), 'netns-spawn-test-'));
  const strays: number[] = [];
  let before: string;

  beforeAll(async () => {
    before = mainThreadNetns();
    [ns, peer] = await s.make('a', 'b');
    await ns.addVeth({ name: veth, up: true, peer: { name: `${s.prefix}p`, netns: peer } });
    mkdirSync(etcDir, { recursive: true });
    writeFileSync(join(etcDir, 'hosts'), hostsText);
  });

  afterAll(async () => {
    for (const pid of strays) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(etcDir, { recursive: true, force: true });
    if (!etcParentExisted) {
      try {
        rmdirSync('/etc/netns'); // only if empty: another user may have put something there meanwhile
      } catch {
        // not empty or gone
      }
    }
    rmSync(tmp, { recursive: true, force: true });
    await s.cleanup();
  });

  it('runs the command inside the namespace: its netns inode, its own links', async () => {
    const self = await execInNetns(ns, ['readlink', '/proc/self/ns/net']);
    expect(self).toMatchObject({ code: 0, signal: null, stderr: '' });
    expect(self.stdout.trim()).toBe(`net:[${statSync(ns.path).ino}]`);

    const links = await execInNetns(`${s.prefix}a`, ['ip', '-j', 'link']);
    expect(links.code).toBe(0);
    expect((JSON.parse(links.stdout) as { ifname: string }[]).map((l) => l.ifname).sort()).toEqual([veth, 'lo'].sort());
    // By path too, and the peer namespace sees the other end.
    const other = await execInNetns(peer.path, ['ip', '-j', 'link']);
    expect((JSON.parse(other.stdout) as { ifname: string }[]).map((l) => l.ifname)).toContain(`${s.prefix}p`);
  });

  it('/etc/netns/NAME/hosts is /etc/hosts for the command, and only for it', async () => {
    const r = await execInNetns(ns, ['cat', '/etc/hosts']);
    expect(r).toMatchObject({ code: 0, stdout: hostsText });
    expect(readFileSync('/etc/hosts', 'utf8')).not.toContain(s.prefix);
    // Nothing propagated back to the host's mount table.
    const mountPoints = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]);
    expect(mountPoints).not.toContain('/etc/hosts');
    expect(mountPoints.filter((m) => m?.startsWith('/etc/netns'))).toEqual([]);
    // A namespace without an /etc/netns directory sees the host's file.
    expect((await execInNetns(peer, ['cat', '/etc/hosts'])).stdout).toBe(readFileSync('/etc/hosts', 'utf8'));
  });

  it('/sys/class/net lists the namespace’s devices', async () => {
    const r = await execInNetns(ns, ['ls', '/sys/class/net']);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n').filter(Boolean).sort()).toEqual([veth, 'lo'].sort());
    expect(readdirSync('/sys/class/net')).not.toContain(veth);
  });

  it('the command gets no fds beyond 0, 1, 2 unless asked for', async () => {
    // Node marks its own fds close-on-exec, so also hand the helper stray inherited ones directly.
    const r = execFileSync('sh', ['-c', 'exec 5</dev/null 7</dev/null; exec "$0" "$@"', netnsExecPath(), '--netns', ns.path, '--keep-fd', '7', '--', 'ls', '-l', '/proc/self/fd'], { encoding: 'utf8' });
    expect(fdsOf(r)).toEqual([0, 1, 2, 7]);

    const plain = await execInNetns(ns, ['ls', '-l', '/proc/self/fd']);
    expect(fdsOf(plain.stdout)).toEqual([0, 1, 2]);

    // An extra stdio entry is closed unless listed in keepFds.
    const dropped = await collect(spawnInNetns(ns, ['ls', '-l', '/proc/self/fd'], { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] }));
    expect(fdsOf(dropped.stdout)).toEqual([0, 1, 2]);
    const kept = await collect(spawnInNetns(ns, ['ls', '-l', '/proc/self/fd'], { stdio: ['ignore', 'pipe', 'pipe', 'pipe'], keepFds: [3] }));
    expect(fdsOf(kept.stdout)).toEqual([0, 1, 2, 3]);
  });

  it('cwd, uid/gid, setsid, env and input reach the command', async () => {
    const r = await execInNetns(ns, ['sh', '-c', 'id -u; id -g; id -G; pwd; ps -o sid= -p $$; echo $$; echo "$GREETING"; cat'], {
      cwd: tmp,
      uid: 65534,
      gid: 65534,
      setsid: true,
      env: { PATH: process.env.PATH, GREETING: 'hello' },
      input: 'from stdin',
    });
    expect(r.stderr).toBe('');
    const [uid, gid, groups, cwd, sid, pid, greeting, input] = r.stdout.split('\n').map((l) => l.trim());
    expect([uid, gid, groups, cwd, greeting, input]).toEqual(['65534', '65534', '65534', tmp, 'hello', 'from stdin']);
    expect(sid).toBe(pid);
  });

  it('a missing namespace, a missing command and a non-executable file: 125, 127, 126 with a clear message', async () => {
    const missing = await execInNetns(`${s.prefix}missing`, ['true']);
    expect(missing.code).toBe(125);
    expect(missing.stderr).toBe(`netns-exec: cannot open network namespace '/run/netns/${s.prefix}missing': No such file or directory\n`);

    const notNet = await execInNetns('/proc/self/ns/uts', ['true']);
    expect(notNet.code).toBe(125);
    expect(notNet.stderr).toMatch(/^netns-exec: setns '\/proc\/self\/ns\/uts': Invalid argument/);

    const cmd = `${s.prefix}-no-such-command`;
    const notFound = await execInNetns(ns, [cmd]);
    expect(notFound).toMatchObject({ code: 127, stderr: `netns-exec: ${cmd}: command not found\n` });

    const file = join(tmp, 'not-executable');
    writeFileSync(file, '#!/bin/sh\necho ran\n');
    chmodSync(file, 0o644);
    const notExec = await execInNetns(ns, [file]);
    expect(notExec).toMatchObject({ code: 126, stdout: '', stderr: `netns-exec: ${file}: cannot execute: Permission denied\n` });

    const badCwd = await execInNetns(ns, ['true'], { cwd: join(tmp, 'nowhere') });
    expect(badCwd.code).toBe(125);
    expect(badCwd.stderr).toMatch(/cannot change directory to .*nowhere.*No such file/);
  });

  it('rejects bad arguments before spawning anything', async () => {
    expect(() => spawnInNetns(ns, [])).toThrow(InvalidArgumentError);
    expect(() => spawnInNetns(ns, ['echo', 1 as unknown as string])).toThrow(/command\[1\]: must be a string/);
    expect(() => spawnInNetns('', ['true'])).toThrow(InvalidArgumentError);
    expect(() => spawnInNetns(ns, ['true'], { keepFds: [3] })).toThrow(/keepFds\[0\].*stdio\[3\]/);
    expect(() => spawnInNetns(ns, ['true'], { uid: -1 })).toThrow(InvalidArgumentError);
    const [closed] = await s.make('closed');
    await closed.close();
    expect(() => spawnInNetns(closed, ['true'])).toThrow(/netns: namespace .* is closed/);
    await expect(execInNetns(ns, ['true'], { timeoutMs: -1 })).rejects.toThrow(InvalidArgumentError);
    await expect(execInNetns(ns, [])).rejects.toThrow(InvalidArgumentError);
  });

  it('a timeout kills the command', async () => {
    const r = await execInNetns(ns, ['sleep', '30'], { timeoutMs: 200 });
    expect(r).toMatchObject({ code: null, signal: 'SIGKILL', timedOut: true });
  });

  it('never changes the namespace of the Node main thread', async () => {
    const seen = new Set<string>();
    const watch = setInterval(() => seen.add(mainThreadNetns()), 1);
    await Promise.all(Array.from({ length: 20 }, (_, i) => execInNetns(i % 2 ? ns : peer, ['true'])));
    clearInterval(watch);
    seen.add(mainThreadNetns());
    expect([...seen]).toEqual([before]);
  });

  // The controller is a separate Node process using the library (compiled to a scratch directory
  // inside the package, so the addon and the helper are found as they would be when installed).
  describeAsRoot('when the controller is SIGKILLed, nothing it spawned survives', () => {
    let lib: string;
    beforeAll(() => {
      mkdirSync(join(root, 'node_modules', '.cache'), { recursive: true });
      lib = mkdtempSync(join(root, 'node_modules', '.cache', 'netns-spawn-test-'));
      execFileSync(process.execPath, [
        join(root, 'node_modules', 'typescript', 'bin', 'tsc'),
        '--outDir', lib, '--rootDir', join(root, 'lib'), '--module', 'nodenext', '--moduleResolution', 'nodenext',
        '--target', 'ES2022', '--skipLibCheck', '--types', 'node', join(root, 'lib', 'kernel', 'spawn.ts'),
      ]);
      writeFileSync(join(lib, 'package.json'), '{"type":"module"}');
      writeFileSync(
        join(lib, 'controller.js'),
        `import { spawnInNetns } from './kernel/spawn.js';
const [netns, marker, opts] = process.argv.slice(2);
const c = spawnInNetns(netns, ['sleep', marker], { stdio: 'ignore', ...JSON.parse(opts) });
c.on('spawn', () => console.log(c.pid));
setInterval(() => {}, 1000);
`,
      );
    }, 60_000 * SLOWDOWN);
    afterAll(() => {
      rmSync(lib, { recursive: true, force: true });
      try {
        rmdirSync(join(root, 'node_modules', '.cache')); // only if empty
      } catch {
        // in use by something else
      }
    });

    async function startController(opts: object): Promise<{ controller: ChildProcess; pid: number; marker: string }> {
      const marker = `1000${Math.floor(Math.random() * 1e6)}.${randomBytes(2).readUInt16BE()}`; // unique `sleep` argument
      const controller = spawn(process.execPath, [join(lib, 'controller.js'), ns.path, marker, JSON.stringify(opts)], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      controller.stdout!.on('data', (b) => (out += b));
      const pid = await until('the service pid', () => (/^\d+\n/.test(out) ? Number(out) : undefined));
      strays.push(pid);
      // Wait until the helper has exec'd: then the process is `sleep` itself, inside the namespace.
      await until('sleep to start', () => (processesWith(marker).includes(pid) ? true : undefined));
      expect(readlinkSync(`/proc/${pid}/ns/net`)).toBe(`net:[${statSync(ns.path).ino}]`);
      const exited = new Promise((r) => controller.on('exit', r));
      controller.kill('SIGKILL');
      await exited;
      return { controller, pid, marker };
    }

    it.each([
      ['as root', {}],
      ['after switching to uid/gid 65534 (which clears the parent-death signal: it must be set again)', { uid: 65534, gid: 65534 }],
      ['in its own session', { setsid: true }],
    ])('%s', async (_, opts) => {
      const { marker } = await startController(opts);
      await until('no sleep left', () => (processesWith(marker).length === 0 ? true : undefined), 5000);
    });

    it('(control) without a parent-death signal the same sleep would survive', async () => {
      const { pid, marker } = await startController({ pdeathsig: 'none' });
      await new Promise((r) => setTimeout(r, 500));
      expect(processesWith(marker)).toEqual([pid]);
      process.kill(pid, 'SIGKILL');
      await until('the control sleep to go', () => (processesWith(marker).length === 0 ? true : undefined));
    });
  });
});
