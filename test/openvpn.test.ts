// OpenVPN pieces against the real thing: version check, key material (checked by openssl), config
// rendering and validation, and a real server with two real clients in scratch namespaces, read
// back through the management interface.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../lib/util/errors.js';
import { Batch } from '../lib/kernel/netns.js';
import { nodePool, renderClientConfig, renderServerConfig, type ServerConfigOptions } from '../lib/services/openvpn/config.js';
import { fingerprintOf, generateIdentity, writeIdentity, writeSecretFile, type Identity } from '../lib/services/openvpn/keys.js';
import { ManagementClient, parseStatus, splitHostPort, type ManagementError } from '../lib/services/openvpn/management.js';
import { checkOpenvpn, compareVersions, parseOpenvpnVersion, type OpenvpnError } from '../lib/services/openvpn/version.js';
import { createCluster, type Cluster } from '../lib/cluster/cluster.js';
import { openvpn } from '../lib/services/openvpn/service.js';
import { describeAsRoot, ipj, scratch, sh } from './helpers.js';
import { wire } from './world.js';

const VERSION_TEXT = `OpenVPN 2.6.14 x86_64-pc-linux-gnu [SSL (OpenSSL)] [LZO] [LZ4] [EPOLL] [PKCS11] [MH/PKTINFO] [AEAD] [DCO]
library versions: OpenSSL 3.0.19 27 Jan 2026, LZO 2.10
DCO version: N/A
Originally developed by James Yonan
`;

const tempDirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'nov-'));
  tempDirs.push(d);
  return d;
}
afterAll(async () => {
  await Promise.all(tempDirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return (e as { code?: string }).code;
  }
}

describe('openvpn --version', () => {
  it('parses version, platform, features, SSL library and DCO', () => {
    const v = parseOpenvpnVersion(VERSION_TEXT)!;
    expect(v).toMatchObject({ version: '2.6.14', major: 2, minor: 6, patch: 14, suffix: '', platform: 'x86_64-pc-linux-gnu' });
    expect(v.features).toEqual(['SSL (OpenSSL)', 'LZO', 'LZ4', 'EPOLL', 'PKCS11', 'MH/PKTINFO', 'AEAD', 'DCO']);
    expect(v.ssl).toBe('OpenSSL 3.0.19 27 Jan 2026');
    expect(v.dcoVersion).toBe('N/A');
    expect(parseOpenvpnVersion('OpenVPN 2.7_rc2 x86_64')).toBeNull();
    expect(parseOpenvpnVersion('OpenVPN 2.7.0_git x86_64-pc-linux-gnu [SSL]')?.suffix).toBe('_git');
    expect(parseOpenvpnVersion('bash: openvpn: command not found')).toBeNull();
  });

  it('compares versions numerically', () => {
    expect(compareVersions('2.6.14', '2.6.9')).toBe(1);
    expect(compareVersions('2.5.11', '2.6.0')).toBe(-1);
    expect(compareVersions('2.6.0', '2.6.0')).toBe(0);
  });

  it('finds the installed binary and reads its version', async () => {
    const { binary, version } = await checkOpenvpn({ minimum: '2.6.0' });
    expect(binary).toMatch(/\/openvpn$/);
    expect(version.major).toBe(2);
    expect(version.minor).toBeGreaterThanOrEqual(6);
    expect(version.features).toContain('AEAD');
  });

  it('says how to fix a missing or too old OpenVPN', async () => {
    const missing = await checkOpenvpn({ binary: '/nonexistent/openvpn' }).catch((e: OpenvpnError) => e);
    expect(missing).toMatchObject({ code: 'ERR_OPENVPN_MISSING' });
    expect((missing as Error).message).toContain('apt-get install openvpn');
    expect(await codeOf(checkOpenvpn({ binary: 'no-such-openvpn-binary' }))).toBe('ERR_OPENVPN_MISSING');
    const old = await checkOpenvpn({ minimum: '99.0.0' }).catch((e: OpenvpnError) => e);
    expect(old).toMatchObject({ code: 'ERR_OPENVPN_TOO_OLD' });
    expect((old as Error).message).toMatch(/older than 99\.0\.0.*apt-get install openvpn/);
    // A binary that is not OpenVPN.
    expect(await codeOf(checkOpenvpn({ binary: '/bin/true' }))).toBe('ERR_OPENVPN_VERSION_UNREADABLE');
    expect(await codeOf(checkOpenvpn({ minimum: '2.6' }))).toBe('ERR_INVALID_ARG_VALUE');
  });
});

describe('key material', () => {
  let id: Identity;
  beforeAll(async () => {
    id = await generateIdentity('node-0');
  });

  it('is a P-256 self-signed certificate and a PKCS#8 key whose fingerprint matches openssl', async () => {
    expect(id.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(id.fingerprint).toMatch(/^[0-9A-F]{2}(:[0-9A-F]{2}){31}$/);
    expect(fingerprintOf(id.certPem)).toBe(id.fingerprint);
    const dir = await tempDir();
    const { certPath, keyPath } = await writeIdentity(dir, 'node-0', id);
    for (const p of [certPath, keyPath]) expect((await stat(p)).mode & 0o777).toBe(0o600);
    const printed = sh('openssl', ['x509', '-in', certPath, '-noout', '-fingerprint', '-sha256']).trim();
    expect(printed.replace(/^.*Fingerprint=/i, '')).toBe(id.fingerprint);
    const text = sh('openssl', ['x509', '-in', certPath, '-noout', '-subject', '-issuer', '-text']);
    expect(text).toMatch(/subject=CN\s*=\s*node-0/);
    expect(text).toMatch(/issuer=CN\s*=\s*node-0/);
    expect(text).toContain('NIST CURVE: P-256');
    // The key belongs to the certificate.
    const pubFromKey = sh('openssl', ['pkey', '-in', keyPath, '-pubout']);
    const pubFromCert = sh('openssl', ['x509', '-in', certPath, '-noout', '-pubkey']);
    expect(pubFromKey).toBe(pubFromCert);
  });

  it('writes secrets 0600 even over a wider existing file', async () => {
    const p = join(await tempDir(), 'secret');
    await writeSecretFile(p, 'a');
    sh('chmod', ['0644', p]);
    await writeSecretFile(p, 'b');
    expect((await stat(p)).mode & 0o777).toBe(0o600);
    expect(await readFile(p, 'utf8')).toBe('b');
  });

  it('gives every identity its own key and fingerprint', async () => {
    const other = await generateIdentity('node-0');
    expect(other.fingerprint).not.toBe(id.fingerprint);
    expect(other.keyPem).not.toBe(id.keyPem);
  });

  it('rejects a bad common name', async () => {
    await expect(generateIdentity('')).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(generateIdentity('a,b')).rejects.toThrow(/commonName/);
  });
});

describe('config rendering', () => {
  let server: Identity;
  let client: Identity;
  let base: ServerConfigOptions;
  beforeAll(async () => {
    [server, client] = await Promise.all([generateIdentity('server'), generateIdentity('client')]);
    base = {
      index: 2,
      vip: '192.0.2.1',
      port: 1194,
      protocol: 'udp',
      serverIdentity: server,
      clientFingerprints: [client.fingerprint],
      managementSocket: '/run/x/mgmt.sock',
      statusFile: '/run/x/status',
    };
  });

  it('gives node K the K-th /24 after the pool base', () => {
    expect(nodePool(0)).toEqual({ network: '10.8.0.0', netmask: '255.255.255.0', prefix: 24, serverAddress: '10.8.0.1' });
    expect(nodePool(5, { base: '10.8.0.0' }).network).toBe('10.8.5.0');
    expect(nodePool(300, { base: '10.8.0.0' }).network).toBe('10.9.44.0');
    expect(nodePool(3, { base: '10.64.0.0', prefix: 26 })).toMatchObject({ network: '10.64.0.192', netmask: '255.255.255.192' });
  });

  it('renders the server directives', () => {
    const text = renderServerConfig(base);
    const lines = text.split('\n');
    for (const l of [
      'local 192.0.2.1',
      'port 1194',
      'proto udp',
      'dev tun',
      'topology subnet',
      'server 10.8.2.0 255.255.255.0',
      'dh none',
      'disable-dco',
      'management /run/x/mgmt.sock unix',
      'status /run/x/status 1',
      'keepalive 2 10',
      'verb 3',
      '<cert>',
      '<key>',
      '<peer-fingerprint>',
      client.fingerprint,
    ])
      expect(lines, l).toContain(l);
    expect(text).toContain(server.certPem.trim());
    expect(renderServerConfig({ ...base, protocol: 'tcp', dco: true, dev: 'tun-vpn' })).toMatch(/proto tcp-server\ndev tun-vpn\ndev-type tun\n/);
    expect(renderServerConfig({ ...base, dco: true })).not.toContain('disable-dco');
  });

  it('renders user and group with persist-key and persist-tun', () => {
    const text = renderServerConfig({ ...base, user: 'nobody', group: 'nogroup' });
    expect(text).toMatch(/\nuser nobody\ngroup nogroup\npersist-key\npersist-tun\n/);
    expect(renderServerConfig({ ...base, group: 'nogroup' })).toMatch(/\ngroup nogroup\npersist-key\npersist-tun\n/);
    expect(renderServerConfig(base)).not.toMatch(/persist-|\nuser |\ngroup /);
  });

  it('lets through directives that only look like forbidden ones, and comments', () => {
    const text = renderServerConfig({ ...base, extra: '# daemon\n; log /x\nlocal-ip {vip}\nlogfile-ish 1\nstatus-version 3\nchroot /var/empty' });
    expect(text).toContain('chroot /var/empty');
    expect(text).toContain('local-ip 192.0.2.1');
  });

  it('fills placeholders in extra directives and whole templates', () => {
    const opts = { ...base, netns: 'vpn-n2', address: '198.18.0.3', dir: '/run/vpn/2' };
    const appended = renderServerConfig({ ...opts, extra: 'push "route 198.51.100.0 255.255.255.0"\nsetenv NODE {node}\nlocal-ip {address} {netns} {dir} {vip} {port} {pool}' });
    expect(appended).toMatch(/verb 3\n# user directives\npush "route/);
    expect(appended).toContain('local-ip 198.18.0.3 vpn-n2 /run/vpn/2 192.0.2.1 1194 10.8.2.0/24');
    const templated = renderServerConfig({ ...opts, extra: '# mine {node}\n{generated}\nmssfix 1400\n' });
    expect(templated.startsWith('# mine 2\n# netns-cluster node 2\n')).toBe(true);
    expect(templated.endsWith('verb 3\nmssfix 1400\n')).toBe(true);
  });

  it('rejects bad input with the field to fix', () => {
    const cases: [Partial<ServerConfigOptions> & Record<string, unknown>, string][] = [
      [{ index: -1 }, 'index'],
      [{ vip: '192.0.2.300' }, 'vip'],
      [{ port: 0 }, 'port'],
      [{ protocol: 'sctp' as 'udp' }, 'protocol'],
      [{ pool: { base: '10.8.0.1' } }, 'pool.base'],
      [{ pool: { base: '10.8.0.0', prefix: 31 } }, 'pool.prefix'],
      [{ index: 300, pool: { base: '255.255.0.0' } }, 'index'],
      [{ clientFingerprints: [] }, 'clientFingerprints'],
      [{ clientFingerprints: ['AA:BB'] }, 'clientFingerprints[0]'],
      [{ managementSocket: 'relative.sock' }, 'managementSocket'],
      [{ managementSocket: '/' + 'x'.repeat(120) }, 'managementSocket'],
      [{ statusFile: '/tmp/with space' }, 'statusFile'],
      [{ dev: 'tap0' }, 'dev'],
      [{ dev: 'tun-much-too-long-name' }, 'dev'],
      [{ keepalive: [10, 5] }, 'keepalive'],
      [{ serverIdentity: { certPem: 'nope', keyPem: server.keyPem } }, 'serverIdentity.certPem'],
      [{ extra: 'daemon' }, 'extra'],
      [{ extra: 'setenv X {bogus}' }, 'extra'],
      [{ extra: 'setenv X {netns}' }, 'extra'], // used, but netns not given
    ];
    for (const [patch, field] of cases) {
      let err: unknown;
      try {
        renderServerConfig({ ...base, ...patch } as ServerConfigOptions);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(patch).slice(0, 80)).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).field, JSON.stringify(patch).slice(0, 80)).toBe(field);
    }
  });

  it('renders client configs', () => {
    const text = renderClientConfig({ remote: '192.0.2.1', identity: client, serverFingerprint: server.fingerprint, bind: { address: '192.0.2.10' }, dev: 'tun-c0', protocol: 'tcp' });
    expect(text).toMatch(/^client\ndev tun-c0\ndev-type tun\nproto tcp-client\nremote 192.0.2.1 1194\nlocal 192.0.2.10\nlport 0\n/);
    expect(text).toContain(`peer-fingerprint ${server.fingerprint}`);
    expect(renderClientConfig({ remote: '192.0.2.1', identity: client, serverFingerprint: server.fingerprint })).toContain('\nnobind\n');
    expect(() => renderClientConfig({ remote: '192.0.2.1', identity: client, serverFingerprint: server.fingerprint, bind: { address: '2001:db8::2' } })).toThrow(
      /bind\.address/,
    );
    expect(() => renderClientConfig({ remote: 'vpn.example', identity: client, serverFingerprint: server.fingerprint })).toThrow(/^remote:/);
  });
});

describe('management protocol parsing', () => {
  it('parses status 3 through its HEADER lines', () => {
    const lines = [
      'TITLE\tOpenVPN 2.6.14 x86_64-pc-linux-gnu [SSL (OpenSSL)]',
      'TIME\t2026-11-26 17:00:00\t1795712400',
      'HEADER\tCLIENT_LIST\tCommon Name\tReal Address\tVirtual Address\tVirtual IPv6 Address\tBytes Received\tBytes Sent\tConnected Since\tConnected Since (time_t)\tUsername\tClient ID\tPeer ID\tData Channel Cipher',
      'CLIENT_LIST\tc0\t192.0.2.10:40312\t10.8.3.2\t\t5017\t4201\t2026-11-26 16:59:58\t1795712398\tUNDEF\t0\t0\tAES-256-GCM',
      'CLIENT_LIST\tc1\t2001:db8::11\t10.8.3.3\t\t10\t20\t2026-11-26 16:59:59\t1795712399\tUNDEF\t1\t1\tAES-256-GCM',
      'HEADER\tROUTING_TABLE\tVirtual Address\tCommon Name\tReal Address\tLast Ref\tLast Ref (time_t)',
      'ROUTING_TABLE\t10.8.3.2\tc0\t192.0.2.10:40312\t2026-11-26 17:00:00\t1795712400',
      'GLOBAL_STATS\tMax bcast/mcast queue length\t0',
      'GLOBAL_STATS\tdco_enabled\t0',
    ];
    const s = parseStatus(lines);
    expect(s.title).toMatch(/^OpenVPN 2\.6\.14/);
    expect(s.time.getTime()).toBe(1795712400_000);
    expect(s.clients).toHaveLength(2);
    expect(s.clients[0]).toEqual({
      commonName: 'c0',
      realAddress: '192.0.2.10:40312',
      realIp: '192.0.2.10',
      realPort: 40312,
      virtualAddress: '10.8.3.2',
      virtualIpv6Address: '',
      bytesReceived: 5017,
      bytesSent: 4201,
      connectedSince: new Date(1795712398_000),
      clientId: 0,
      peerId: 0,
      dataCipher: 'AES-256-GCM',
    });
    // OpenVPN 2.6 prints IPv6 real addresses without a port.
    expect(s.clients[1]).toMatchObject({ realAddress: '2001:db8::11', realIp: '2001:db8::11', realPort: null });
    expect(s.routes).toEqual([{ virtualAddress: '10.8.3.2', commonName: 'c0', realAddress: '192.0.2.10:40312', lastRef: new Date(1795712400_000) }]);
    expect(s.globalStats).toEqual({ 'Max bcast/mcast queue length': '0', dco_enabled: '0' });
    expect(splitHostPort('[2001:db8::1]:1194')).toEqual({ ip: '2001:db8::1', port: 1194 });
    expect(splitHostPort('198.18.0.7:1194')).toEqual({ ip: '198.18.0.7', port: 1194 });
  });

  it('keeps answers in order while notifications arrive in the middle of them', async () => {
    const path = join(await tempDir(), 'fake.sock');
    const server = createServer((sock) => {
      sock.write(">INFO:OpenVPN Management Interface Version 5 -- type 'help' for more info\n");
      let buf = '';
      sock.on('data', (d) => {
        buf += d.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const cmd = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (cmd === 'state') sock.write('1795712400,CONNECTED,SUCCESS,10.8.0.1,,,,\r\n>BYTECOUNT:1,2\r\nEND\r\n');
          else if (cmd === 'kill x') sock.write('ERROR: common name \'x\' not found\r\n');
          else if (cmd === 'load-stats') sock.write('SUCCESS: nclients=2,bytesin=10,bytesout=20\r\n');
          else if (cmd === 'status 3') sock.write('>LOG:1,I,hi\r\n'); // then never answers
        }
      });
    });
    await new Promise<void>((r) => server.listen(path, r));
    try {
      const mgmt = await ManagementClient.connect(path);
      const notes: string[] = [];
      mgmt.on('notification', (n) => notes.push(`${n.type}:${n.text}`));
      const [state, killed, stats] = await Promise.all([
        mgmt.state(),
        mgmt.kill('x').catch((e: ManagementError) => e),
        mgmt.loadStats(),
      ]);
      expect(state).toMatchObject({ state: 'CONNECTED', description: 'SUCCESS', localTunnelAddress: '10.8.0.1' });
      expect(killed).toMatchObject({ code: 'ERR_MANAGEMENT_COMMAND', command: 'kill x' });
      expect(stats).toEqual({ nclients: 2, bytesin: 10, bytesout: 20 });
      const pending = mgmt.status();
      await new Promise((r) => setTimeout(r, 50));
      await mgmt.close();
      await expect(pending).rejects.toMatchObject({ code: 'ERR_MANAGEMENT_CLOSED' });
      expect(notes).toEqual(['BYTECOUNT:1,2', 'LOG:1,I,hi']);
      await expect(mgmt.state()).rejects.toMatchObject({ code: 'ERR_MANAGEMENT_CLOSED' });
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('gives up on a socket that never appears, or when aborted', async () => {
    const path = join(await tempDir(), 'never.sock');
    const t0 = Date.now();
    const err = await ManagementClient.connect(path, { timeoutMs: 300 }).catch((e: ManagementError) => e);
    expect(err).toMatchObject({ code: 'ERR_MANAGEMENT_TIMEOUT' });
    expect(Date.now() - t0).toBeLessThan(2000);
    const aborted = await ManagementClient.connect(path, { timeoutMs: 10_000, signal: AbortSignal.timeout(100) }).catch((e: Error) => e);
    expect((aborted as Error).name).toBe('TimeoutError');
  });
});

/** A process started with `ip netns exec`, its output kept for diagnostics. */
interface Proc {
  name: string;
  child: ChildProcess;
  output: string;
  exited: Promise<number | null>;
}

describeAsRoot('a real OpenVPN server with two real clients', () => {
  const s = scratch('ov');
  const procs: Proc[] = [];
  let dir = '';
  let binary = '';

  function start(name: string, netns: string, config: string): Proc {
    const child = spawn('ip', ['netns', 'exec', netns, binary, '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    const p: Proc = { name, child, output: '', exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
    child.stdout!.on('data', (d: Buffer) => (p.output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (p.output += d.toString()));
    procs.push(p);
    return p;
  }

  async function waitForOutput(p: Proc, text: string, timeoutMs: number): Promise<number> {
    const t0 = Date.now();
    while (!p.output.includes(text)) {
      if (p.child.exitCode !== null) throw new Error(`${p.name} exited (${p.child.exitCode}) before '${text}':\n${p.output}`);
      if (Date.now() - t0 > timeoutMs) throw new Error(`${p.name}: no '${text}' within ${timeoutMs} ms:\n${p.output}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    return Date.now() - t0;
  }

  afterAll(async () => {
    // Every OpenVPN we started, even when a test failed: TERM, then KILL after 3 s.
    await Promise.all(
      procs.splice(0).map(async (p) => {
        if (p.child.exitCode !== null || p.child.signalCode !== null) return;
        p.child.kill('SIGTERM');
        const t = setTimeout(() => p.child.kill('SIGKILL'), 3000);
        await p.exited;
        clearTimeout(t);
      }),
    );
    await s.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const cases = [
    { tag: 'u4', protocol: 'udp', vip: '192.0.2.1', sources: ['192.0.2.10', '192.0.2.11'], prefix: 24 },
    { tag: 't4', protocol: 'tcp', vip: '192.0.2.1', sources: ['192.0.2.10', '192.0.2.11'], prefix: 24 },
    { tag: 'u6', protocol: 'udp', vip: '2001:db8::1', sources: ['2001:db8::10', '2001:db8::11'], prefix: 64 },
  ] as const;

  it('with user nobody and group nogroup: the server drops its privileges after start and still serves a client', async () => {
    binary ||= (await checkOpenvpn()).binary;
    dir ||= await mkdtemp(join(tmpdir(), 'nov-'));
    const [srv, cli] = await s.make('sug', 'cug');
    const b = new Batch();
    b.in(srv)
      .setLink('lo', { up: true })
      .addVeth({ name: 'eth0', up: true, peer: { name: 'eth0', netns: cli, up: true } })
      .addAddress('eth0', '192.0.2.1/24', { nodad: true });
    b.in(cli).setLink('lo', { up: true }).addAddress('eth0', '192.0.2.10/24', { nodad: true });
    await b.commit();
    const [serverId, c0] = await Promise.all([generateIdentity('server'), generateIdentity('c0')]);
    const mgmtPath = join(dir, 'ug.sock');
    const serverConfig = join(dir, 'ug-server.conf');
    await writeSecretFile(
      serverConfig,
      renderServerConfig({
        index: 1,
        vip: '192.0.2.1',
        serverIdentity: serverId,
        clientFingerprints: [c0.fingerprint],
        managementSocket: mgmtPath,
        statusFile: join(dir, 'ug-status'),
        user: 'nobody',
        group: 'nogroup',
      }),
    );
    const server = start('server ug', srv.name!, serverConfig);
    const mgmt = await ManagementClient.connect(mgmtPath, { timeoutMs: 15_000 });
    try {
      await waitForOutput(server, 'Initialization Sequence Completed', 30_000);
      // The real and effective ids, as the kernel has them.
      const ids = (await readFile(`/proc/${server.child.pid}/status`, 'utf8')).split('\n').filter((l) => /^(Uid|Gid):/.test(l));
      const nobody = sh('id', ['-u', 'nobody']).trim();
      const nogroup = sh('getent', ['group', 'nogroup']).split(':')[2];
      expect(ids[0].split(/\s+/).slice(1, 3)).toEqual([nobody, nobody]);
      expect(ids[1].split(/\s+/).slice(1, 3)).toEqual([nogroup, nogroup]);
      const clientConfig = join(dir, 'ug-c0.conf');
      await writeSecretFile(clientConfig, renderClientConfig({ remote: '192.0.2.1', identity: c0, serverFingerprint: serverId.fingerprint, dev: 'tun-ug' }));
      const client = start('client ug', cli.name!, clientConfig);
      await waitForOutput(client, 'Initialization Sequence Completed', 30_000);
      expect(sh('ip', ['netns', 'exec', cli.name!, 'ping', '-c', '2', '-i', '0.2', '-W', '2', '-I', 'tun-ug', '10.8.1.1'])).toMatch(/2 received/);
      expect((await mgmt.status()).clients.map((c) => c.commonName)).toEqual(['c0']);
      const closed = new Promise<void>((r) => mgmt.once('close', () => r()));
      await mgmt.signal('SIGTERM');
      await closed;
      expect(await server.exited).toBe(0);
      expect(server.output).not.toMatch(/Permission denied|ERROR:|Cannot open/);
      client.child.kill('SIGTERM');
      await client.exited;
    } finally {
      await mgmt.close();
    }
  });

  for (const tc of cases) {
    it(`${tc.protocol.toUpperCase()} over IPv${tc.vip.includes(':') ? 6 : 4}: both tunnels come up, each pings the server, status 3 lists both clients`, async () => {
      binary ||= (await checkOpenvpn()).binary;
      dir ||= await mkdtemp(join(tmpdir(), 'nov-'));
      const [srv, cli] = await s.make(`s${tc.tag}`, `c${tc.tag}`);
      const b = new Batch();
      b.in(srv)
        .setLink('lo', { up: true })
        .addVeth({ name: 'eth0', up: true, peer: { name: 'eth0', netns: cli, up: true } })
        .addAddress('eth0', `${tc.vip}/${tc.prefix}`, { nodad: true });
      b.in(cli).setLink('lo', { up: true });
      for (const src of tc.sources) b.in(cli).addAddress('eth0', `${src}/${tc.prefix}`, { nodad: true });
      await b.commit();

      const [serverId, c0, c1] = await Promise.all([generateIdentity('server'), generateIdentity('c0'), generateIdentity('c1')]);
      const mgmtPath = join(dir, `${tc.tag}.sock`);
      const serverConfig = join(dir, `${tc.tag}-server.conf`);
      await writeSecretFile(
        serverConfig,
        renderServerConfig({
          index: 3, // pool 10.8.3.0/24: the server is 10.8.3.1
          vip: tc.vip,
          port: 1194,
          protocol: tc.protocol,
          serverIdentity: serverId,
          clientFingerprints: [c0.fingerprint, c1.fingerprint],
          managementSocket: mgmtPath,
          statusFile: join(dir, `${tc.tag}-status`),
          dev: 'tun',
          dco: false,
        }),
      );
      expect((await stat(serverConfig)).mode & 0o777).toBe(0o600);

      const t0 = Date.now();
      const server = start(`server ${tc.tag}`, srv.name!, serverConfig);
      const mgmt = await ManagementClient.connect(mgmtPath, { timeoutMs: 15_000 });
      try {
        expect(mgmt.banner).toMatch(/OpenVPN Management Interface/);
        const clients = [
          { name: 'c0', id: c0, source: tc.sources[0], dev: 'tun-c0' },
          { name: 'c1', id: c1, source: tc.sources[1], dev: 'tun-c1' },
        ];
        const started = await Promise.all(
          clients.map(async (c) => {
            const path = join(dir, `${tc.tag}-${c.name}.conf`);
            await writeSecretFile(
              path,
              renderClientConfig({
                remote: tc.vip,
                port: 1194,
                protocol: tc.protocol,
                identity: c.id,
                serverFingerprint: serverId.fingerprint,
                bind: { address: c.source },
                dev: c.dev,
              }),
            );
            expect((await stat(path)).mode & 0o777).toBe(0o600);
            return start(`${c.name} ${tc.tag}`, cli.name!, path);
          }),
        );
        const upMs = await Promise.all(started.map((p) => waitForOutput(p, 'Initialization Sequence Completed', 30_000)));
        console.log(`openvpn ${tc.tag}: server start to both tunnels up ${Date.now() - t0} ms (clients after their start: ${upMs.join(', ')} ms)`);

        for (const c of clients) {
          const out = sh('ip', ['netns', 'exec', cli.name!, 'ping', '-c', '2', '-i', '0.2', '-W', '2', '-I', c.dev, '10.8.3.1']);
          expect(out, c.name).toMatch(/2 received/);
        }

        const status = await mgmt.status();
        const byName = new Map(status.clients.map((c) => [c.commonName, c]));
        expect([...byName.keys()].sort()).toEqual(['c0', 'c1']);
        for (const c of clients) {
          const entry = byName.get(c.name)!;
          const tunAddr = ipj<{ addr_info: { family: string; local: string }[] }[]>('-n', cli.name!, 'addr', 'show', 'dev', c.dev)[0].addr_info.find(
            (a) => a.family === 'inet',
          )!.local;
          expect(entry.realIp, `${c.name} real address ${entry.realAddress}`).toBe(c.source);
          // OpenVPN 2.6 prints the port of IPv4 real addresses only.
          if (tc.vip.includes(':')) expect(entry.realPort).toBeNull();
          else expect(entry.realPort).toBeGreaterThan(0);
          expect(entry.virtualAddress, c.name).toBe(tunAddr);
          expect(entry.virtualAddress).toMatch(/^10\.8\.3\.\d+$/);
          expect(entry.bytesReceived).toBeGreaterThan(0);
        }
        expect(status.globalStats.dco_enabled).toBe('0');
        expect((await mgmt.state()).state).toBe('CONNECTED');
        expect((await mgmt.loadStats()).nclients).toBe(2);
        await expect(mgmt.kill('nobody-by-this-name')).rejects.toMatchObject({ code: 'ERR_MANAGEMENT_COMMAND' });
        // By real address where OpenVPN shows one with its port (IPv4), else by common name.
        expect(await mgmt.kill(tc.vip.includes(':') ? 'c1' : byName.get('c1')!.realAddress)).toMatch(/killed/);

        // SIGTERM over the management socket stops the server; the connection closes with it.
        const closed = new Promise<void>((r) => mgmt.once('close', () => r()));
        const tStop = Date.now();
        expect(await mgmt.signal('SIGTERM')).toMatch(/SIGTERM/);
        await closed;
        expect(await server.exited).toBe(0);
        console.log(`openvpn ${tc.tag}: SIGTERM to exit ${Date.now() - tStop} ms`);
      } finally {
        await mgmt.close();
      }
    });
  }
});

describeAsRoot('OpenVPN in cluster nodes with user nobody and group nogroup', () => {
  const s = scratch('ou');
  let cluster: Cluster | undefined;
  let client: ChildProcess | undefined;
  let dir = '';
  afterAll(async () => {
    if (client && client.exitCode === null && client.signalCode === null) {
      client.kill('SIGTERM');
      await once(client, 'exit');
    }
    await cluster?.close();
    await s.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** The node's OpenVPN pids: processes whose command line names the cluster's runtime directory. */
  const servers = (name: string) =>
    readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`/run/netns-cluster/${name}/`);
        } catch {
          return false;
        }
      });
  const ids = (pid: string) =>
    Object.fromEntries(
      readFileSync(`/proc/${pid}/status`, 'utf8')
        .split('\n')
        .filter((l) => /^(Uid|Gid):/.test(l))
        .map((l) => [l.slice(0, 3), l.split(/\s+/).slice(1, 3)]),
    );

  it('every node drops to nobody/nogroup after start, serves a client, and still restarts after its process is killed', async () => {
    const [clientNs, host] = await s.make('c', 'h');
    await wire(clientNs, host, 'bridged');
    dir = await mkdtemp(join(tmpdir(), 'nou-'));
    const c0 = await generateIdentity('c0');
    const name = `${s.prefix}a`;
    const service = openvpn({ clientFingerprints: [c0.fingerprint], user: 'nobody', group: 'nogroup', restart: { initialDelayMs: 100 } });
    cluster = await createCluster({ name, nodes: 2, vip: '192.0.2.1/24', ports: [{ protocol: 'udp', port: 1194 }], hostNetns: host.name, uplink: { bridge: 'c0' }, service });
    await cluster.start();
    const nobody = sh('id', ['-u', 'nobody']).trim();
    const nogroup = sh('getent', ['group', 'nogroup']).split(':')[2];
    const dropped = async () => {
      const pids = servers(name);
      if (pids.length !== 2) return false;
      return pids.every((p) => {
        const x = ids(p);
        return x.Uid?.join() === `${nobody},${nobody}` && x.Gid?.join() === `${nogroup},${nogroup}`;
      });
    };
    const until = async (what: string, cond: () => Promise<boolean> | boolean) => {
      const end = Date.now() + 30_000;
      while (!(await cond())) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    await until('both servers running as nobody/nogroup', dropped);
    const text = readFileSync(`/run/netns-cluster/${name}/node0/server.conf`, 'utf8');
    expect(text).toMatch(/\nuser nobody\ngroup nogroup\npersist-key\npersist-tun\n/);

    const source = '192.0.2.10';
    const k = cluster.ownerOf({ address: source });
    const path = join(dir, 'c0.conf');
    await writeSecretFile(path, renderClientConfig({ remote: '192.0.2.1', identity: c0, serverFingerprint: service.serverFingerprint()!, bind: { address: source }, dev: 'tun-ou' }));
    client = spawn('ip', ['netns', 'exec', clientNs.name!, binaryPath ||= (await checkOpenvpn()).binary, '--config', path], { stdio: 'ignore' });
    const pingsNode = () => {
      try {
        return /1 received/.test(sh('ip', ['netns', 'exec', clientNs.name!, 'ping', '-c', '1', '-W', '1', '-I', 'tun-ou', `10.8.${k}.1`]));
      } catch {
        return false;
      }
    };
    await until('the tunnel to the owning node', pingsNode);
    // The management interface still answers (status is read through it).
    const st = await cluster.status();
    expect((st[k].openvpn as { clients: { realIp: string }[] }).clients.map((c) => c.realIp)).toEqual([source]);

    // A killed server is restarted by the supervisor (as root), and drops its privileges again.
    const before = servers(name);
    process.kill(Number(before[0]), 'SIGKILL');
    await until('a fresh server in place of the killed one', async () => !servers(name).includes(before[0]) && (await dropped()));
    await until('the client served again', pingsNode);
  });
});
let binaryPath = '';
