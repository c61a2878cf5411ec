// netns-exec hardening and the services' credentials: the helper refuses to run privileged by a
// setuid bit or file capabilities (AT_SECURE), never keeps group 0 or root's supplementary groups
// when it switches user, and services run as `user`/`group` with only the environment allowed.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, rmdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { killClusterCgroups } from '../lib/services/cgroup.js';
import { InvalidArgumentError } from '../lib/util/errors.js';
import type { Netns } from '../lib/kernel/netns.js';
import { NodeService, type ServiceContext, type ServiceDefinition } from '../lib/services/service.js';
import { execInNetns, netnsExecPath, resolveCredentials, resolveGroup, resolveUser } from '../lib/kernel/spawn.js';
import { describeAsRoot, scratch } from './helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The Uid/Gid/Groups lines of /proc/PID/status. */
function ids(pid: number): { uid: string; gid: string; groups: string } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const line = (k: string) => new RegExp(`^${k}:\\t?(.*)$`, 'm').exec(status)![1].trim().replace(/\s+/g, ' ');
  return { uid: line('Uid'), gid: line('Gid'), groups: line('Groups') };
}

const hasSetcap = (() => {
  try {
    execFileSync('setcap', ['-h'], { stdio: 'ignore' });
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ENOENT';
  }
})();

describeAsRoot('netns-exec hardening', () => {
  const s = scratch('hd');
  let ns: Netns;
  let copies: string;

  beforeAll(async () => {
    [ns] = await s.make('a');
    // On the package's own file system (a tmpfs /tmp is often nosuid, which would hide the bit).
    mkdirSync(join(root, 'node_modules', '.cache'), { recursive: true });
    copies = mkdtempSync(join(root, 'node_modules', '.cache', 'netns-hardening-test-'));
    chmodSync(copies, 0o755); // nobody must reach the copies
  });
  afterAll(async () => {
    rmSync(copies, { recursive: true, force: true });
    try {
      rmdirSync(join(root, 'node_modules', '.cache'));
    } catch {
      // in use by something else
    }
    await s.cleanup();
  });

  /** Runs a copy of the helper as nobody (setpriv), so that only the copy's privileges count. */
  function runAsNobody(helper: string): { status: number | null; stderr: string } {
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--', helper, '--netns', ns.path, '--', 'true'], { encoding: 'utf8' });
    return { status: r.status, stderr: r.stderr };
  }

  const refusal = /^netns-exec: refusing to run: the kernel marked this execution secure \(AT_SECURE: a setuid or setgid bit or file capabilities on the executable\)/;

  it('(control) an unprivileged copy run by nobody fails at setns, not with the AT_SECURE refusal', () => {
    const plain = join(copies, 'plain');
    copyFileSync(netnsExecPath(), plain);
    chmodSync(plain, 0o755);
    const r = runAsNobody(plain);
    expect(r.status).toBe(125);
    expect(r.stderr).not.toMatch(refusal);
    expect(r.stderr).toMatch(/^netns-exec: /);
  });

  it('refuses to run setuid root', () => {
    const suid = join(copies, 'suid');
    copyFileSync(netnsExecPath(), suid);
    chmodSync(suid, 0o4755);
    const r = runAsNobody(suid);
    expect(r.status).toBe(125);
    expect(r.stderr).toMatch(refusal);
  });

  it.runIf(hasSetcap)('refuses to run with file capabilities (setcap cap_net_admin,cap_sys_admin+ep)', () => {
    const capped = join(copies, 'capped');
    copyFileSync(netnsExecPath(), capped);
    chmodSync(capped, 0o755);
    execFileSync('setcap', ['cap_net_admin,cap_sys_admin+ep', capped]);
    const r = runAsNobody(capped);
    expect(r.status).toBe(125);
    expect(r.stderr).toMatch(refusal);
  });

  it('--uid without --gid is refused by the helper; spawnInNetns takes the user’s primary group', async () => {
    const r = spawnSync(netnsExecPath(), ['--uid', '65534', '--netns', ns.path, '--', 'id'], { encoding: 'utf8' });
    expect(r.status).toBe(125);
    expect(r.stderr).toMatch(/^netns-exec: --uid needs --gid too/);
    const nobody = resolveUser('user', 'nobody');
    const viaLib = await execInNetns(ns, ['sh', '-c', 'id -u; id -g; id -G; grep Groups /proc/self/status'], { uid: nobody.uid });
    expect(viaLib.stderr).toBe('');
    expect(viaLib.stdout.split('\n').slice(0, 3)).toEqual([String(nobody.uid), String(nobody.gid), String(nobody.gid)]);
    expect(viaLib.stdout.split('\n')[3].replace(/\s+/g, ' ').trim()).toBe('Groups:');
    // A uid /etc/passwd does not know needs gid.
    const unknownUid = 4_000_000_000 + randomInt(0, 1000);
    await expect(execInNetns(ns, ['true'], { uid: unknownUid })).rejects.toThrow(/gid: uid \d+ has no entry in \/etc\/passwd to take its group from: give gid too/);
  });

  it('gid alone (staying root) still drops every supplementary group', async () => {
    const r = await execInNetns(ns, ['sh', '-c', 'id -u; id -g; grep Groups /proc/self/status'], { gid: 65534 });
    const [uid, gid, groups] = r.stdout.split('\n');
    expect([uid, gid, groups.replace(/\s+/g, ' ').trim()]).toEqual(['0', '65534', 'Groups:']);
  });
});

describeAsRoot('service user, group and envAllow', () => {
  const s = scratch('uc');
  const cluster = s.prefix;
  let ns: Netns;
  const dir = mkdtempSync(join(tmpdir(), 'netns-creds-test-'));
  const ctx = (index: number): ServiceContext => ({ cluster, index, netns: ns.name!, address: '198.18.0.1', addresses: ['198.18.0.1'], vips: ['192.0.2.1'], dir });
  const marker = () => `3000${randomInt(100_000, 999_999)}`;
  const markers: string[] = [];
  const secretName = `NETNS_TEST_SECRET_${randomInt(1000, 9999)}`;
  const made: NodeService[] = [];
  const track = (svc: NodeService) => (made.push(svc), svc);

  beforeAll(async () => {
    [ns] = await s.make('a');
    chmodSync(dir, 0o755);
    process.env[secretName] = 'do-not-leak';
  });
  afterAll(async () => {
    await Promise.allSettled(made.map((svc) => svc.dispose()));
    delete process.env[secretName];
    for (const m of markers)
      for (const d of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
        try {
          if (readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').includes(m)) process.kill(Number(d), 'SIGKILL');
        } catch {
          // gone
        }
      }
    await killClusterCgroups(cluster);
    rmSync(dir, { recursive: true, force: true });
    await s.cleanup();
  });

  it('resolves names through /etc/passwd and /etc/group, and refuses unknown ones clearly', () => {
    const passwd = readFileSync('/etc/passwd', 'utf8');
    const nobodyLine = passwd.split('\n').find((l) => l.startsWith('nobody:'))!.split(':');
    expect(resolveUser('user', 'nobody')).toEqual({ uid: Number(nobodyLine[2]), gid: Number(nobodyLine[3]), name: 'nobody' });
    expect(resolveUser('user', 0)).toMatchObject({ uid: 0, gid: 0, name: 'root' });
    expect(resolveUser('user', '65534')).toMatchObject({ uid: 65534 });
    expect(resolveGroup('group', 'nogroup')).toBe(Number(readFileSync('/etc/group', 'utf8').split('\n').find((l) => l.startsWith('nogroup:'))!.split(':')[2]));
    expect(() => resolveUser('service.user', 'no-such-user-x')).toThrow(/service.user: there is no user 'no-such-user-x' in \/etc\/passwd/);
    expect(() => resolveGroup('service.group', 'no-such-group-x')).toThrow(/service.group: there is no group 'no-such-group-x' in \/etc\/group/);
    expect(() => resolveUser('service.user', 'bad:name')).toThrow(InvalidArgumentError);
    expect(() => resolveUser('service.user', -1)).toThrow(InvalidArgumentError);
    expect(() => resolveCredentials('service', 4_000_000_001, undefined)).toThrow(/service.group: user 4000000001 has no entry in \/etc\/passwd to take its group from: give group too/);
    expect(resolveCredentials('service', 4_000_000_001, 'nogroup')).toEqual({ uid: 4_000_000_001, gid: 65534 });
  });

  it.each<[string, Partial<ServiceDefinition>]>([
    ['user nobody, group nogroup', { user: 'nobody', group: 'nogroup' }],
    ['user nobody (its primary group)', { user: 'nobody' }],
    ['numeric ids', { user: 65534, group: '65534' }],
  ])('a service as %s runs with exactly those ids and no supplementary group', async (_, creds) => {
    const m = marker();
    markers.push(m);
    chownSync(dir, 0, 0);
    const svc = track(new NodeService({ command: ['sleep', m], ...creds }, ctx(0)));
    await svc.start();
    const pid = svc.pid!;
    // After exec: the sleep itself.
    for (let i = 0; i < 200 && !readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(m); i++) await sleep(10);
    expect(ids(pid)).toEqual({ uid: '65534 65534 65534 65534', gid: '65534 65534 65534 65534', groups: '' });
    expect(statSync(dir)).toMatchObject({ uid: 65534, gid: 65534 }); // its {dir} is its own
    await svc.dispose();
  });

  it('a user that does not exist fails the start with a clear message, and nothing runs', async () => {
    const svc = track(new NodeService({ command: ['true'], user: 'no-such-user-x' }, ctx(1)));
    await expect(svc.start()).rejects.toThrow(/service.user: there is no user 'no-such-user-x'/);
    expect(svc.state).toBe('failed');
    await svc.dispose();
  });

  async function envOf(def: Partial<ServiceDefinition>, index: number): Promise<Record<string, string>> {
    const svc = track(new NodeService({ command: ['sh', '-c', 'env; echo END'], restart: { maxRestarts: 0 }, ...def }, ctx(index)));
    const lines: string[] = [];
    svc.on('log', (l) => l.stream === 'stdout' && lines.push(l.line));
    await svc.start().catch(() => {});
    for (let i = 0; i < 500 && !lines.includes('END'); i++) await sleep(10);
    await svc.dispose();
    return Object.fromEntries(lines.filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  }

  it('by default the controller’s environment passes; with envAllow only the listed names (plus env)', async () => {
    const all = await envOf({ env: { NODE_NUMBER: '{node}' } }, 2);
    expect(all[secretName]).toBe('do-not-leak');
    expect(all.NODE_NUMBER).toBe('2');
    const allowed = await envOf({ envAllow: ['PATH'], env: { NODE_NUMBER: '{node}' } }, 3);
    expect(allowed[secretName]).toBeUndefined();
    expect(allowed.PATH).toBe(process.env.PATH);
    expect(allowed.NODE_NUMBER).toBe('3');
    const none = await envOf({ envAllow: [] }, 4);
    expect(Object.keys(none).filter((k) => k !== 'PWD' && k !== 'SHLVL' && k !== '_')).toEqual([]);
  });
});
