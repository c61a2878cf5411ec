// The systemd unit in deploy/: parsed and checked key by key (systemd is not PID 1 here), and
// verified with `systemd-analyze verify` where it exists. What the keys promise is tested end to
// end in ops.test.ts (notify, watchdog) and below (ExecStopPost's down --leftovers, up --name).
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { isRoot, runCli } from './helpers.js';

const unitPath = fileURLToPath(new URL('../deploy/netns-cluster@.service', import.meta.url));

/** A unit file as sections of key → every value given (a key may repeat). */
function parseUnit(text: string): Record<string, Record<string, string[]>> {
  const out: Record<string, Record<string, string[]>> = {};
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) {
      section = s[1];
      out[section] ??= {};
      continue;
    }
    const eq = line.indexOf('=');
    expect(eq, `a line that is not key=value: ${line}`).toBeGreaterThan(0);
    expect(section, `a key outside a section: ${line}`).not.toBe('');
    const key = line.slice(0, eq).trim();
    (out[section][key] ??= []).push(line.slice(eq + 1).trim());
  }
  return out;
}

const which = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

describe('deploy/netns-cluster@.service', () => {
  const unit = parseUnit(readFileSync(unitPath, 'utf8'));
  const svc = unit.Service;
  const one = (k: string) => {
    expect(svc[k], k).toHaveLength(1);
    return svc[k][0];
  };

  it('is Type=notify with NotifyAccess=main and a watchdog', () => {
    expect(one('Type')).toBe('notify');
    expect(one('NotifyAccess')).toBe('main');
    expect(one('WatchdogSec')).toMatch(/^[1-9]\d*$/);
    expect(Number(one('WatchdogSec'))).toBeGreaterThanOrEqual(5);
  });

  it('runs up with the instance as the cluster name; reload is SIGHUP; no cleanup after a crash (the restart adopts)', () => {
    expect(one('ExecStart')).toBe('/usr/bin/env netns-cluster up --name %i /etc/netns-cluster/%i.yaml');
    expect(svc.ExecStopPost).toBeUndefined();
    expect(one('ExecStartPre')).toBe('/usr/bin/env netns-cluster check /etc/netns-cluster/%i.yaml');
    expect(one('KillMode')).toBe('mixed');
    expect(one('Restart')).toBe('on-failure');
    expect(one('RestartPreventExitStatus')).toBe('2');
    expect(one('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(unit.Install.WantedBy).toEqual(['multi-user.target']);
  });

  it('is hardened without a mount namespace, a private network or read-only sysctls/cgroups', () => {
    expect(one('NoNewPrivileges')).toBe('yes');
    const caps = one('CapabilityBoundingSet').split(/\s+/);
    expect(caps).toEqual(expect.arrayContaining(['CAP_NET_ADMIN', 'CAP_SYS_ADMIN']));
    expect(one('RestrictNamespaces').split(/\s+/).sort()).toEqual(['mnt', 'net']);
    expect(one('RestrictAddressFamilies').split(/\s+/)).toEqual(expect.arrayContaining(['AF_NETLINK', 'AF_UNIX', 'AF_INET', 'AF_INET6']));
    const forbidden = [
      'PrivateNetwork', 'ProtectSystem', 'ProtectHome', 'PrivateTmp', 'PrivateDevices', 'PrivateMounts', 'ReadWritePaths', 'ReadOnlyPaths',
      'InaccessiblePaths', 'BindPaths', 'BindReadOnlyPaths', 'TemporaryFileSystem', 'ProtectProc', 'ProtectKernelModules', 'ProtectKernelLogs',
      'ProtectHostname', 'ProtectKernelTunables', 'ProtectControlGroups', 'MemoryDenyWriteExecute', 'PrivateUsers', 'DynamicUser', 'User',
      'IPAddressDeny', 'MountFlags', 'RootDirectory', 'RootImage',
    ];
    for (const k of forbidden) expect(svc[k], k).toBeUndefined();
    // Every one of them is explained in deploy/README.md.
    const readme = readFileSync(fileURLToPath(new URL('../deploy/README.md', import.meta.url)), 'utf8');
    for (const k of ['PrivateNetwork', 'ProtectSystem', 'ReadWritePaths', 'ProtectKernelTunables', 'ProtectControlGroups', 'MemoryDenyWriteExecute', 'PrivateTmp'])
      expect(readme, k).toContain(`\`${k}=`);
  });

  it.skipIf(!which('systemd-analyze'))('systemd-analyze verify finds nothing to say', () => {
    const dir = mkdtempSync(join(tmpdir(), 'netns-cluster-unit-'));
    try {
      const inst = join(dir, 'netns-cluster@vpn.service');
      copyFileSync(unitPath, inst);
      const r = spawnSync('systemd-analyze', ['verify', inst], { encoding: 'utf8' });
      // It exits 0 on unknown keys and bad values, and says so on stderr.
      expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(!isRoot)('up --name refuses a config whose cluster has another name (exit 2, before building)', async () => {
    const r = spawnSync(process.execPath, [fileURLToPath(new URL('../dist/lib/cli/main.js', import.meta.url)), 'up', '--name', 'other', '-'], {
      input: 'name: dpx\nvip: 192.0.2.1/24\nuplink: { bridge: eth9 }\n',
      encoding: 'utf8',
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("<stdin>: name: is 'dpx', but --name says 'other'");
    expect(r.stderr).not.toContain('building');
    // down --leftovers of a name with nothing: nothing to do, exit 0.
    const d = await runCli('down', '--leftovers', 'dpxnone', '-j');
    expect(d.code).toBe(0);
    expect(JSON.parse(d.stdout)).toMatchObject({ name: 'dpxnone', result: 'nothing' });
  });
});
