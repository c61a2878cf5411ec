// Migration from the classic setup: `netns-cluster import-openvpn` on three real-world-shaped
// server configs (Debian's sample, an openvpn-install script's output with IPv6 and a CRL, a TCP
// config with easy-rsa paths, the PAM plugin and an include) gives cluster configs that `check`
// accepts; one of them is brought up with `up` and a real client connects through it. A config
// that cannot run supervised is refused with file:line and nothing is written.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { makePki, pkiClientConfig, type MadePki } from '../examples/pki.js';
import { nameFromFile } from '../lib/cli/import-openvpn.js';
import { seedFromName, spawnInNetns, writeSecretFile, type Netns } from '../lib/index.js';
import { bucketOf } from '../lib/rules/jhash.js';
import { CLI, describeAsRoot, ipj, runCli, scratch, sh } from './helpers.js';
import { sources, wire } from './world.js';

const fixture = (f: string) => fileURLToPath(new URL(`./fixtures/openvpn-import/${f}`, import.meta.url));

const until = async (what: string, cond: () => boolean | Promise<boolean>, ms = 30_000, info = () => '') => {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}\n${info()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

describe('import-openvpn without root', () => {
  it('names the cluster after the file', () => {
    expect(nameFromFile('/etc/openvpn/server/server.conf')).toBe('server');
    expect(nameFromFile('/etc/openvpn/server/TCP_443.conf')).toBe('tcp-443');
    expect(nameFromFile('/x/1194.conf')).toBe('vpn');
    expect(nameFromFile('/x/a-very-long-name.conf')).toBe('a-very-lon');
  });

  it('needs --vip and a file; says what is wrong', async () => {
    const none = await runCli('import-openvpn', fixture('debian-sample.conf'));
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--vip: give the shared address with its prefix/);
    const missing = await runCli('import-openvpn', '/nonexistent/server.conf', '--vip', '192.0.2.1/24');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/\/nonexistent\/server\.conf: cannot read it: no such file/);
    expect((await runCli('help', 'import-openvpn')).stdout).toMatch(/^Usage: netns-cluster import-openvpn <server\.conf> --vip/);
  });
});

describeAsRoot('import-openvpn on real-world server configs: check accepts them, up runs one', () => {
  const s = scratch('oi');
  const dir = mkdtempSync(join(tmpdir(), 'nc-ovpn-import-'));
  let pki: MadePki;
  let clientNs: Netns;
  let host: Netns;
  const procs: ChildProcess[] = [];
  let up: ChildProcess | undefined;

  beforeAll(async () => {
    // Where /etc/openvpn/server would be: readable by nobody on the way (openvpn-install's config switches to it).
    chmodSync(dir, 0o755);
    pki = makePki(dir, { clients: ['c0', 'c1'], revoke: ['c1'] });
    execFileSync('openssl', ['genpkey', '-genparam', '-algorithm', 'DH', '-pkeyopt', 'group:ffdhe2048', '-out', join(dir, 'dh.pem')]);
    copyFileSync(join(dir, 'dh.pem'), join(dir, 'dh2048.pem'));
    execFileSync('openvpn', ['--genkey', 'tls-auth', join(dir, 'ta.key')]);
    // easy-rsa's layout for the TCP config.
    for (const d of ['pki/issued', 'pki/private', 'ccd']) mkdirSync(join(dir, d), { recursive: true });
    for (const [from, to] of [['ca.crt', 'pki/ca.crt'], ['server.crt', 'pki/issued/server.crt'], ['server.key', 'pki/private/server.key'], ['ta.key', 'pki/ta.key'], ['crl.pem', 'pki/crl.pem']]) copyFileSync(join(dir, from), join(dir, to));
    for (const f of ['debian-sample.conf', 'openvpn-install.conf', 'tcp-pam.conf']) copyFileSync(fixture(f), join(dir, f));
    copyFileSync(fixture('tcp-pam-common.conf'), join(dir, 'common.conf'));
    [clientNs, host] = await s.make('c', 'h');
    await wire(clientNs, host, 'bridged');
  });
  afterAll(async () => {
    for (const p of procs) p.kill('SIGKILL');
    if (up && up.exitCode === null) {
      up.kill('SIGTERM');
      await once(up, 'exit');
    }
    await s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  const imported = async (conf: string, ...args: string[]) => {
    const r = await runCli('import-openvpn', join(dir, conf), '--vip', '192.0.2.1/24', '--host-netns', host.name!, ...args);
    expect(r.stderr, r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = join(dir, conf.replace(/\.conf$/, '.yaml'));
    writeFileSync(out, r.stdout);
    return { text: r.stdout, file: out, spec: parse(r.stdout) as Record<string, unknown> };
  };

  it.each([
    ['debian-sample.conf', 'udp', 1194, ['#   node 3: 10.8.3.0/24']],
    ['openvpn-install.conf', 'udp', 1194, ['#   node 1: 10.8.1.0/24 and fddd:1194:1194:1195::/64']],
    ['tcp-pam.conf', 'tcp', 443, ['#   node 2: 10.20.8.0/22']],
  ] as const)('%s: a config that check accepts, with the port and pools from the file', async (conf, protocol, port, pools) => {
    const name = `${s.prefix}${conf[0]}`;
    const { text, file, spec } = await imported(conf, '--nodes', '4', '--uplink', 'bridge:c0', '--name', name);
    expect(spec).toEqual({
      name,
      nodes: 4,
      vip: '192.0.2.1/24',
      ports: [{ protocol, port }],
      uplink: { bridge: 'c0' },
      hostNetns: host.name,
      service: { openvpn: { config: join(dir, conf) } },
    });
    for (const line of pools) expect(text.split('\n')).toContain(line);
    const check = await runCli('check', file);
    expect(check.stderr).toBe('');
    expect(check.code).toBe(0);
    expect(check.stdout).toMatch(new RegExp(`ok: cluster '${name}', 4 nodes, VIP 192\\.0\\.2\\.1/24, ports ${protocol}/${port}, .*service openvpn`));
  });

  it('a server config that cannot run supervised is listed with file:line, and nothing is written', async () => {
    const sample = readFileSync(join(dir, 'debian-sample.conf'), 'utf8');
    const n = sample.split('\n').length; // the first added line's number
    writeFileSync(join(dir, 'classic.conf'), `${sample}daemon\nwritepid /run/openvpn/server.pid\nmanagement 0.0.0.0 7505\n`);
    const r = await runCli('import-openvpn', join(dir, 'classic.conf'), '--vip', '192.0.2.1/24');
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines[0]).toMatch(new RegExp(`classic\\.conf:${n}: 'daemon': it would leave the foreground, out of the supervisor’s reach`));
    expect(lines[1]).toMatch(new RegExp(`classic\\.conf:${n + 1}: 'writepid': `));
    expect(lines[2]).toMatch(new RegExp(`classic\\.conf:${n + 2}: 'management': a management interface on TCP 0\\.0\\.0\\.0:7505`));
    expect(lines[3]).toMatch(/3 problems to fix before it can run in a cluster; nothing written/);
  });

  it('up runs the imported openvpn-install config: a client connects on the node ownerOf names, the revoked one is refused', async () => {
    const name = `${s.prefix}u`;
    const { file } = await imported('openvpn-install.conf', '--nodes', '2', '--uplink', 'bridge:c0', '--name', name);
    up = spawn(process.execPath, [CLI, 'up', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = { stdout: '', stderr: '' };
    up.stdout!.on('data', (d) => (out.stdout += d));
    up.stderr!.on('data', (d) => (out.stderr += d));
    await until('the ready line', () => out.stderr.includes(`ready: cluster '${name}' is up`), 30_000, () => out.stderr);
    const ns = clientNs.name!;
    const [good, revoked] = sources('bridged', 4).slice(0, 2);
    const start = async (cert: string, source: string, dev: string) => {
      const path = join(dir, `${dev}.conf`);
      await writeSecretFile(path, pkiClientConfig(pki, cert, { remote: '192.0.2.1', source, dev }));
      procs.push(spawnInNetns(clientNs, ['openvpn', '--config', path], { stdio: 'ignore' }));
    };
    await start('c0', good, 'tun-i0');
    await start('c1', revoked, 'tun-i1');
    const addr = (dev: string) => {
      try {
        return ipj<{ addr_info: { family: string; local: string }[] }[]>('-n', ns, 'addr', 'show', 'dev', dev)[0]?.addr_info.find((a) => a.family === 'inet')?.local;
      } catch {
        return undefined;
      }
    };
    await until('the client’s tunnel', () => addr('tun-i0') !== undefined, 30_000, () => out.stdout.slice(-3000));
    // The node that serves it is the one whose pool its address is in; its server answers there.
    const k = Number(addr('tun-i0')!.split('.')[2]);
    expect([0, 1]).toContain(k);
    await until('ping through the tunnel', () => {
      try {
        sh('ip', ['netns', 'exec', ns, 'ping', '-c1', '-W1', '-I', 'tun-i0', `10.8.${k}.1`]);
        return true;
      } catch {
        return false;
      }
    }, 10_000);
    // `status` (from another process) lists the client on that node, which owns its source's bucket.
    type Status = { nodes: { index: number; buckets: number[]; openvpn?: { clients: { commonName: string }[] } }[] };
    let nodes: Status['nodes'] = [];
    await until('status lists the client', async () => {
      const st = await runCli('status', name, '--json');
      nodes = st.code === 0 ? (JSON.parse(st.stdout) as Status).nodes : [];
      return nodes[k]?.openvpn?.clients.some((c) => c.commonName === 'c0') === true;
    }, 15_000);
    expect(nodes[k].buckets).toContain(bucketOf('sourceip', { address: good }, 64, seedFromName(name)));
    await until('the revoked client refused', () => /certificate revoked/.test(out.stdout), 20_000, () => out.stdout.slice(-3000));
    expect(addr('tun-i1')).toBeUndefined();
    up.kill('SIGTERM');
    const [code] = (await once(up, 'exit')) as [number | null];
    expect(code).toBe(0);
  });
});
