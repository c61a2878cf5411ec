// cgroup v2 containment of the nodes' services (as systemd's KillMode=control-group): a service
// that forks leaves nothing behind on stop(), on a restart, nor after a crashed controller once
// killClusterCgroups has run. Plus the process-group fallback and the stop-wins-over-start rules.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cgroupPids,
  cgroupRoot,
  cgroupTop,
  emptyCgroup,
  killCgroup,
  killClusterCgroups,
  serviceCgroup,
  type CgroupKillMethod,
} from '../lib/services/cgroup.js';
import { InvalidArgumentError } from '../lib/util/errors.js';
import type { Netns } from '../lib/kernel/netns.js';
import { NodeService, type ServiceContext, type ServiceDefinition } from '../lib/services/service.js';
import { spawnInNetns } from '../lib/kernel/spawn.js';
import { describeAsRoot, scratch, processesWith, SLOWDOWN } from './helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');


async function until<T>(what: string, f: () => T | undefined | Promise<T | undefined>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms * SLOWDOWN;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Two unique `sleep` durations (seconds): one for the background child, one for the main process. */
function markers(): { bg: string; main: string } {
  const r = randomInt(100_000, 999_999);
  return { bg: `1000${r}`, main: `2000${r}` };
}

/** `sh -c 'sleep BG & exec sleep MAIN'`: a service whose main process forked a child. */
function forking(m: { bg: string; main: string }, extra: Partial<ServiceDefinition> = {}): ServiceDefinition {
  return { name: 'forking', command: ['sh', '-c', `sleep ${m.bg} & exec sleep ${m.main}`], stopTimeoutMs: 2000, ...extra };
}

const cgroupOf = (pid: number) =>
  readFileSync(`/proc/${pid}/cgroup`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('0::'))
    ?.slice(3);

describeAsRoot('cgroup v2 containment', () => {
  const s = scratch('cg');
  const cluster = s.prefix; // `ncg` + 4 hex digits: a valid cluster name of its own
  let ns: Netns;
  const dir = mkdtempSync(join(tmpdir(), 'netns-cgroup-test-'));
  const strays: string[] = [];
  const made: NodeService[] = [];
  const service = (def: ServiceDefinition, index: number, containment: 'cgroup' | 'process-group'): NodeService => {
    const svc = new NodeService(def, ctx(index), { containment });
    made.push(svc);
    return svc;
  };
  const ctx = (index = 0): ServiceContext => ({ cluster, index, netns: ns.name!, address: '198.18.0.1', addresses: ['198.18.0.1'], vips: ['192.0.2.1'], dir });

  beforeAll(async () => {
    [ns] = await s.make('a');
  });
  afterAll(async () => {
    await Promise.allSettled(made.map((svc) => svc.dispose())); // even after a failed test: no supervisor restarts anything
    for (const m of strays) for (const pid of processesWith(m)) process.kill(pid, 'SIGKILL');
    await killClusterCgroups(cluster);
    rmSync(dir, { recursive: true, force: true });
    await s.cleanup();
  });

  it('finds the cgroup2 mount in /proc/self/mountinfo', () => {
    const r = cgroupRoot();
    expect(r).toBeDefined();
    expect(statfsSync(r!).type).toBe(0x63677270);
    const fromFindmnt = execFileSync('findmnt', ['-n', '-t', 'cgroup2', '-o', 'TARGET'], { encoding: 'utf8' }).split('\n').filter(Boolean);
    expect(fromFindmnt).toContain(r);
    expect(cgroupTop()).toBe(join(r!, 'netns-cluster'));
  });

  it('refuses paths outside <cgroup2>/netns-cluster/ and bad cluster names', async () => {
    const r = cgroupRoot()!;
    for (const p of [r, cgroupTop()!, `${cgroupTop()}/`, `${cgroupTop()}/../x`, '/tmp', 'relative/path', `${r}/netns-clusterx/a`]) {
      await expect(killCgroup(p), p).rejects.toThrow(InvalidArgumentError);
      await expect(emptyCgroup(p), p).rejects.toThrow(/not a group of netns-cluster|absolute path/);
    }
    await expect(killClusterCgroups('../x')).rejects.toThrow(/not a cluster name/);
    await expect(killClusterCgroups('')).rejects.toThrow(InvalidArgumentError);
    await expect(serviceCgroup('Bad', 0)).rejects.toThrow(/not a cluster name/);
    await expect(serviceCgroup(cluster, -1)).rejects.toThrow(InvalidArgumentError);
    // Nothing of that name exists: idempotent, nothing done.
    expect(await killClusterCgroups(`${cluster}z`)).toEqual({ killed: 0, removed: [] });
  });

  it.each<[CgroupKillMethod]>([['cgroup.kill'], ['freeze'], ['signals']])('killCgroup via %s kills a forking process tree and removes the group', async (method) => {
    const m = markers();
    strays.push(m.bg, m.main);
    const group = (await serviceCgroup(cluster, 7))!;
    expect(group).toBe(join(cgroupTop()!, cluster, 'node7'));
    const child = spawnInNetns(ns, ['sh', '-c', `sleep ${m.bg} & exec sleep ${m.main}`], { cgroup: group, stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', r));
    const [bg] = await until('the background sleep', () => processesWith(m.bg).length === 1 ? processesWith(m.bg) : undefined);
    await until('the main sleep', () => (processesWith(m.main).length === 1 ? true : undefined));
    // Both in the group from the start, although the helper enters a mount namespace of its own.
    expect(cgroupOf(bg)).toBe(group.slice(cgroupRoot()!.length));
    expect(cgroupOf(child.pid!)).toBe(group.slice(cgroupRoot()!.length));
    expect((await cgroupPids(group)).sort()).toEqual([bg, child.pid!].sort());
    const r = await killCgroup(group, { method });
    expect(r.killed).toBe(2);
    expect(r.removed).toEqual([group]);
    await exited;
    expect([...processesWith(m.bg), ...processesWith(m.main)]).toEqual([]);
    expect(existsSync(group)).toBe(false);
    expect(await killCgroup(group)).toEqual({ killed: 0, removed: [] }); // idempotent
  });

  it('the helper refuses a directory that is not a cgroup, with status 125', async () => {
    const child = spawnInNetns(ns, ['true'], { cgroup: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (b) => (err += b));
    const code = await new Promise((r) => child.on('close', r));
    expect(code).toBe(125);
    expect(err).toMatch(/^netns-exec: cannot join cgroup '.*': open .*cgroup.procs: No such file or directory/);
    expect(() => spawnInNetns(ns, ['true'], { cgroup: 'relative' })).toThrow(/cgroup: must be the absolute path/);
  });

  describe.each<['cgroup' | 'process-group']>([['cgroup'], ['process-group']])('a service that forks, contained by %s', (containment) => {
    it('stop() leaves no process of it, and no group directory', async () => {
      const m = markers();
      strays.push(m.bg, m.main);
      const svc = service(forking(m), 0, containment);
      await svc.start();
      expect(svc.containment).toBe(containment);
      expect(svc.warning).toBeUndefined();
      const [bg] = await until('the background sleep', () => (processesWith(m.bg).length ? processesWith(m.bg) : undefined));
      if (containment === 'cgroup') {
        expect(svc.cgroup).toBe(join(cgroupTop()!, cluster, 'node0'));
        expect(cgroupOf(bg)).toBe(svc.cgroup!.slice(cgroupRoot()!.length));
      }
      await svc.stop();
      expect(svc.state).toBe('stopped');
      expect([...processesWith(m.bg), ...processesWith(m.main)]).toEqual([]);
      expect(existsSync(join(cgroupTop() ?? '/nonexistent', cluster, 'node0'))).toBe(false);
      await svc.dispose();
    });

    it('a restart after the main process was SIGKILLed leaves no child of the old run', async () => {
      const m = markers();
      strays.push(m.bg, m.main);
      const svc = service(forking(m, { restart: { initialDelayMs: 20 } }), 1, containment);
      const ready: number[] = [];
      svc.on('ready', (e) => ready.push(e.pid!));
      await svc.start();
      const [oldBg] = await until('the background sleep', () => (processesWith(m.bg).length ? processesWith(m.bg) : undefined));
      const oldMain = svc.pid!;
      process.kill(oldMain, 'SIGKILL');
      await until('the restart', () => (ready.length === 2 ? true : undefined));
      const [newBg] = await until('the new background sleep', () => (processesWith(m.bg).length ? processesWith(m.bg) : undefined));
      expect(newBg).not.toBe(oldBg);
      expect(processesWith(m.bg)).toEqual([newBg]); // the old one is gone
      expect(processesWith(m.main)).toEqual([svc.pid]);
      expect(svc.restarts).toBe(1);
      await svc.dispose();
      expect([...processesWith(m.bg), ...processesWith(m.main)]).toEqual([]);
    });
  });

  it('a child that starts its own session (a daemon) is stopped with the cgroup; a process group alone lets it escape', async () => {
    const m = markers();
    strays.push(m.bg, m.main);
    const def = { name: 'daemonising', command: ['sh', '-c', `setsid sleep ${m.bg} & exec sleep ${m.main}`], stopTimeoutMs: 2000 };
    const contained = service(def, 2, 'cgroup');
    await contained.start();
    await until('the daemon', () => (processesWith(m.bg).length ? true : undefined));
    await contained.dispose();
    expect([...processesWith(m.bg), ...processesWith(m.main)]).toEqual([]);

    // Control: the fallback's process group does not hold it (hence the fallback's warning).
    const loose = service(def, 2, 'process-group');
    await loose.start();
    // The daemon once it is `sleep` itself: while it is still `setsid sleep …` it has not left the
    // group yet (a window long enough to hit under emulation).
    const slept = () => processesWith(m.bg).filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('sleep\0');
      } catch {
        return false;
      }
    });
    await until('the daemon', () => (slept().length ? true : undefined));
    await loose.dispose();
    expect(processesWith(m.main)).toEqual([]);
    const escaped = processesWith(m.bg);
    expect(escaped).toHaveLength(1);
    process.kill(escaped[0], 'SIGKILL');
  });

  // Separate Node processes running NodeServices of the compiled library (compiled to a scratch
  // directory inside the package, so the addon and the helper are found as when installed).
  describe('in a controller process of its own', () => {
    let lib: string;
    beforeAll(() => {
      mkdirSync(join(root, 'node_modules', '.cache'), { recursive: true });
      lib = mkdtempSync(join(root, 'node_modules', '.cache', 'netns-cgroup-test-'));
      execFileSync(process.execPath, [
        join(root, 'node_modules', 'typescript', 'bin', 'tsc'),
        '--outDir', lib, '--rootDir', join(root, 'lib'), '--module', 'nodenext', '--moduleResolution', 'nodenext',
        '--target', 'ES2022', '--skipLibCheck', '--types', 'node', join(root, 'lib', 'services', 'service.ts'), join(root, 'lib', 'services', 'cgroup.ts'),
      ]);
      writeFileSync(join(lib, 'package.json'), '{"type":"module"}');
      // Starts node 0 and 1, prints their pids, groups and warnings, then waits (SIGKILL) or, on
      // SIGTERM, stops them and prints "stopped".
      writeFileSync(
        join(lib, 'controller.js'),
        `import { NodeService } from './services/service.js';
import { cgroupWarning } from './services/cgroup.js';
const [ctx, def] = process.argv.slice(2).map((a) => JSON.parse(a));
const services = [0, 1].map((index) => new NodeService(def, { ...ctx, index }));
const logs = [];
services.forEach((s) => s.on('log', (l) => logs.push(l.line)));
await Promise.all(services.map((s) => s.start()));
process.on('SIGTERM', async () => {
  await Promise.all(services.map((s) => s.dispose()));
  console.log('stopped');
  process.exit(0);
});
console.log(JSON.stringify({ services: services.map((s) => ({ pid: s.pid, cgroup: s.cgroup, containment: s.containment, warning: s.warning })), logs, warning: await cgroupWarning() }));
setInterval(() => {}, 1 << 30);
`,
      );
    }, 60_000 * SLOWDOWN);
    afterAll(() => {
      rmSync(lib, { recursive: true, force: true });
      try {
        rmdirSync(join(root, 'node_modules', '.cache'));
      } catch {
        // in use by something else
      }
    });

    interface Report {
      services: { pid: number; cgroup?: string; containment: string; warning?: string }[];
      logs: string[];
      warning?: string;
    }
    async function startController(m: { bg: string; main: string }, wrap: string[] = []): Promise<{ controller: ChildProcess; report: Report; out: () => string }> {
      const args = [join(lib, 'controller.js'), JSON.stringify(ctx(0)), JSON.stringify(forking(m))];
      const controller: ChildProcess = wrap.length ? spawn(wrap[0], [...wrap.slice(1), process.execPath, ...args], { stdio: ['ignore', 'pipe', 'inherit'] }) : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      controller.stdout!.on('data', (b) => (out += b));
      const report = await until('the services', () => (out.includes('\n') ? (JSON.parse(out.slice(0, out.indexOf('\n'))) as Report) : undefined), 30_000);
      await until('both background sleeps', () => (processesWith(m.bg).length === 2 ? true : undefined));
      return { controller, report, out: () => out };
    }

    it('after a crashed controller, killClusterCgroups kills what its services forked and removes the groups', async () => {
      const m = markers();
      strays.push(m.bg, m.main);
      const { controller, report } = await startController(m);
      expect(report.services.map((x) => [x.containment, x.cgroup])).toEqual([0, 1].map((k) => ['cgroup', join(cgroupTop()!, cluster, `node${k}`)]));
      const gone = new Promise((r) => controller.on('exit', r));
      controller.kill('SIGKILL');
      await gone;
      // The main processes die with their parent (parent-death signal); what they forked does not.
      await until('the main processes to die', () => (processesWith(m.main).length === 0 ? true : undefined));
      expect(processesWith(m.bg)).toHaveLength(2);
      const r = await killClusterCgroups(cluster);
      expect(r.killed).toBe(2);
      expect(r.removed.sort()).toEqual([join(cgroupTop()!, cluster), ...report.services.map((x) => x.cgroup!)].sort());
      expect(processesWith(m.bg)).toEqual([]);
      expect(existsSync(join(cgroupTop()!, cluster))).toBe(false);
      expect(await killClusterCgroups(cluster)).toEqual({ killed: 0, removed: [] });
    });

    it('without cgroup2 (unmounted in a mount namespace of its own): process groups, and a warning that says so', async () => {
      const m = markers();
      strays.push(m.bg, m.main);
      const mount = cgroupRoot()!;
      // The controller's own mount namespace, without the cgroup2 mount; the host keeps it.
      const { controller, report, out } = await startController(m, ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', `umount -l ${mount} && exec "$@"`, 'sh']);
      expect(report.services.map((x) => x.containment)).toEqual(['process-group', 'process-group']);
      for (const x of report.services) expect(x.warning).toMatch(/^cgroup v2 is not mounted or not writable here: .*a process it forks that starts its own session \(a daemon\) escapes.*\(cgroup2 is not mounted\)$/);
      expect(report.warning).toMatch(/^cgroup v2 is not mounted or not writable here/);
      expect(report.logs.filter((l) => l.startsWith('netns-cluster: warning: cgroup v2 is not mounted'))).toHaveLength(2);
      expect(existsSync(join(cgroupTop()!, cluster))).toBe(false); // nothing made on the host's cgroup2
      // A clean stop still ends every process of each group.
      controller.kill('SIGTERM');
      await until('stopped', () => (out().includes('stopped\n') ? true : undefined));
      await until('no process left', () => (processesWith(m.bg).length + processesWith(m.main).length === 0 ? true : undefined));
    });
  });
});
