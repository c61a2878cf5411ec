// OpenVPN as operators run it, for real: a PKI made here with openssl (a CA, a server certificate,
// three clients, a CRL revoking one, a tls-crypt key), the operator's own server.conf with
// username/password checked by an auth-user-pass-verify script, three nodes behind one VIP, real
// clients from sources each node owns. Valid clients connect on the node ownerOf names, get an
// IPv4 and an IPv6 tunnel address and pass traffic; the revoked one and a wrong password are
// refused on every node. A config with `daemon`, or a missing CRL, is refused before anything is
// built. A PKI given in code with an IPv6 pool: the host reaches a client at its IPv6 tunnel address.
import { type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { makePki, pkiClientConfig, type MadePki } from '../examples/pki.js';
import { createCluster, Netns, openvpn, spawnInNetns, writeSecretFile, type Cluster, type OpenvpnNodeStatus } from '../lib/index.js';
import { InvalidArgumentError } from '../lib/util/errors.js';
import { CLIENT_ROUTE_PROTOCOL } from '../lib/util/names.js';
import { describeAsRoot, ipj, scratch, sh, cleanUpAfterAll } from './helpers.js';
import { sources, wire } from './world.js';

const until = async (what: string, cond: () => boolean | Promise<boolean>, ms = 30_000) => {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

/** A tunnel device's address of one family in a namespace (undefined while it is down or absent). */
function tunAddress(netns: string, dev: string, family: 4 | 6): string | undefined {
  try {
    const info = ipj<{ addr_info: { family: string; local: string; scope: string }[] }[]>('-n', netns, 'addr', 'show', 'dev', dev)[0];
    return info?.addr_info.find((a) => a.family === (family === 4 ? 'inet' : 'inet6') && a.scope === 'global')?.local;
  } catch {
    return undefined;
  }
}

const pings = (netns: string, args: string[]) => {
  try {
    sh('ip', ['netns', 'exec', netns, 'ping', '-c1', '-W1', ...args]);
    return true;
  } catch {
    return false;
  }
};

/** The server.conf an operator has: relative paths, an include, a script, a log file and status file of its own. */
function serverConf(more = ''): string {
  return [
    '# /etc/openvpn/server/server.conf, as the classic setup copies it into every namespace',
    'port 1194',
    'proto udp',
    'dev tun',
    'topology subnet',
    'server 10.8.0.0 255.255.255.0',
    'server-ipv6 fd00:8::/112',
    'ca ca.crt',
    'cert server.crt',
    'key server.key',
    'dh none',
    'crl-verify crl.pem',
    'tls-crypt tc.key',
    'remote-cert-tls client',
    'data-ciphers AES-256-GCM:AES-128-GCM',
    'keepalive 1 4',
    'explicit-exit-notify 1',
    'push "route 198.18.0.0 255.255.255.0"',
    'script-security 2',
    'auth-user-pass-verify check.sh via-file',
    'config common.conf',
    'log openvpn-own.log',
    'status openvpn-own-status.log',
    more,
    '',
  ].join('\n');
}

describeAsRoot('OpenVPN with the operator’s server.conf and PKI: CRL, tls-crypt, auth-user-pass-verify, IPv6 pools', () => {
  const s = scratch('ob');
  const dir = mkdtempSync(join(tmpdir(), 'nc-ovpn-byo-'));
  const name = `${s.prefix}b`;
  const procs: ChildProcess[] = [];
  const logs: { index: number; line: string }[] = [];
  let pki: MadePki;
  let clientNs: Netns;
  let host: Netns;
  let cluster: Cluster | undefined;

  const dataSpec = () => ({
    name,
    nodes: 3,
    vip: '192.0.2.1/24',
    ports: [{ protocol: 'udp' as const, port: 1194 }],
    hostNetns: host.name,
    uplink: { bridge: 'c0' },
    service: { openvpn: { config: join(dir, 'server.conf') } },
  });

  beforeAll(async () => {
    [clientNs, host] = await s.make('c', 'h');
    await wire(clientNs, host, 'bridged');
    pki = makePki(dir, { clients: ['c0', 'c1', 'c2'], revoke: ['c2'] });
    writeFileSync(join(dir, 'users.txt'), 'alice:s3cret\nbob:hunter2\n');
    // The service's own exec: OpenVPN runs it with a file holding the username and the password.
    writeFileSync(join(dir, 'check.sh'), '#!/bin/sh\n{ read -r user; read -r pass; } < "$1"\ngrep -qx "$user:$pass" users.txt\n');
    chmodSync(join(dir, 'check.sh'), 0o755);
    writeFileSync(join(dir, 'common.conf'), 'verb 3\nmute 20\n');
    writeFileSync(join(dir, 'server.conf'), serverConf());
  });
  cleanUpAfterAll({ scratch: s, dir, procs, cluster: () => cluster });

  it('valid clients connect on the node ownerOf names and pass IPv4 and IPv6 traffic; the revoked one and a wrong password are refused on every node', async () => {
    // The data form, as a config file gives it (openvpn({ config }) in code is the same).
    cluster = await createCluster(dataSpec());
    cluster.on('log', (l) => logs.push({ index: l.index, line: l.line }));
    await cluster.start();

    // Per node: three sources it owns, for a good client, a wrong password and the revoked certificate.
    const owned = new Map<number, string[]>();
    for (const src of sources('bridged', 4)) {
      const k = cluster.ownerOf({ address: src });
      owned.set(k, [...(owned.get(k) ?? []), src]);
    }
    const auth = (who: string, text: string) => {
      const p = join(dir, `${who}.auth`);
      writeFileSync(p, text, { mode: 0o600 });
      return p;
    };
    const good = auth('good', 'alice\ns3cret\n');
    const wrong = auth('wrong', 'alice\nnot-the-password\n');
    type Client = { kind: 'good' | 'wrong' | 'revoked'; node: number; source: string; dev: string };
    const clients: Client[] = [];
    for (const k of [0, 1, 2]) {
      const [a, b, c] = owned.get(k)!;
      clients.push({ kind: 'good', node: k, source: a, dev: `tun-g${k}` }, { kind: 'wrong', node: k, source: b, dev: `tun-w${k}` }, { kind: 'revoked', node: k, source: c, dev: `tun-r${k}` });
    }
    for (const c of clients) {
      const cert = c.kind === 'revoked' ? 'c2' : c.kind === 'good' ? `c${c.node % 2}` : 'c0';
      const path = join(dir, `${c.dev}.conf`);
      await writeSecretFile(path, pkiClientConfig(pki, cert, { remote: '192.0.2.1', source: c.source, dev: c.dev, authFile: c.kind === 'wrong' ? wrong : good }));
      procs.push(spawnInNetns(clientNs, ['openvpn', '--config', path], { stdio: 'ignore' }));
    }

    const ns = clientNs.name!;
    const goods = clients.filter((c) => c.kind === 'good');
    await until('every valid client has its tunnel addresses', () => goods.every((c) => tunAddress(ns, c.dev, 4) && tunAddress(ns, c.dev, 6)));
    for (const c of goods) {
      // The pool of the node ownerOf names: 10.8.<k>.0/24 and fd00:8::<k>:0/112.
      expect(tunAddress(ns, c.dev, 4)!.startsWith(`10.8.${c.node}.`), `${c.dev} on node ${c.node}`).toBe(true);
      expect(tunAddress(ns, c.dev, 6)!.startsWith(`fd00:8::${c.node === 0 ? '' : `${c.node}:`}`), `${c.dev} IPv6 on node ${c.node}`).toBe(true);
      await until(`ping through ${c.dev}`, () => pings(ns, ['-I', c.dev, `10.8.${c.node}.1`]), 5000);
      await until(`ping6 through ${c.dev}`, () => pings(ns, ['-6', '-I', c.dev, c.node === 0 ? 'fd00:8::1' : `fd00:8::${c.node}:1`]), 5000);
    }
    const status = await cluster.status();
    for (const c of goods) {
      const ov = status[c.node].openvpn as OpenvpnNodeStatus;
      expect(ov.clients.find((x) => x.realIp === c.source)?.commonName).toBe(`c${c.node % 2}`);
      expect(ov.pool6).toBe(c.node === 0 ? 'fd00:8::/112' : `fd00:8::${c.node}:0/112`);
    }

    // Refused on every node: the revoked certificate by the CRL, the wrong password by the script.
    const said = (k: number, source: string, what: RegExp) => logs.some((l) => l.index === k && l.line.includes(source) && what.test(l.line));
    await until('every node refused the revoked certificate and the wrong password', () =>
      clients.every((c) => c.kind === 'good' || said(c.node, c.source, c.kind === 'revoked' ? /certificate revoked/ : /Auth Username\/Password verification failed/)),
    );
    for (const c of clients.filter((x) => x.kind !== 'good')) expect(tunAddress(ns, c.dev, 4), `${c.kind} client on node ${c.node}`).toBeUndefined();

    // The operator's own log and status files are not used: the log goes to the supervisor, status to the node's directory.
    expect(existsSync(join(dir, 'openvpn-own.log'))).toBe(false);
    expect(existsSync(join(dir, 'openvpn-own-status.log'))).toBe(false);
    expect(logs.some((l) => /Initialization Sequence Completed/.test(l.line))).toBe(true);
    const nodeConf = readFileSync(`/run/netns-cluster/${name}/node1/server.conf`, 'utf8');
    expect(nodeConf).toContain('crl-verify crl.pem');
    expect(nodeConf).toContain('server 10.8.1.0 255.255.255.0');
    expect(nodeConf).toContain('server-ipv6 fd00:8::1:0/112');
  });

  it('a reload restarts the nodes when server.conf changed, and leaves them alone when it did not', async () => {
    const pids = async () => (await cluster!.status()).map((n) => n.pid);
    const before = await pids();
    expect((await cluster!.update(dataSpec())).servicesRestarted).toEqual([]);
    expect(await pids()).toEqual(before);
    writeFileSync(join(dir, 'common.conf'), 'verb 4\nmute 20\n'); // an include counts too
    expect((await cluster!.update(dataSpec())).servicesRestarted).toEqual([0, 1, 2]);
    const after = await pids();
    for (const k of [0, 1, 2]) expect(after[k]).not.toBe(before[k]);
    expect(readFileSync(`/run/netns-cluster/${name}/node0/server.conf`, 'utf8')).toContain('verb 4');
  });

  it('a config with `daemon`, or a missing CRL file, is refused before anything is built', async () => {
    await cluster?.close();
    cluster = undefined;
    const refused = async (conf: string) => {
      const n = `${s.prefix}r`;
      const e = await Promise.resolve()
        .then(() => createCluster({ name: n, nodes: 3, vip: '192.0.2.1/24', hostNetns: host.name, uplink: { bridge: 'c0' }, service: openvpn({ config: conf }) }))
        .then(
          () => undefined,
          (x: unknown) => x,
        );
      // Nothing was created: no namespace, no runtime file, no link in the host.
      expect((await Netns.list()).filter((x) => x.startsWith(`${n}-`))).toEqual([]);
      expect(readdirSync('/run/netns-cluster').filter((f) => f.startsWith(n))).toEqual([]);
      expect(ipj<{ ifname: string }[]>('-n', host.name!, 'link').map((l) => l.ifname).filter((x) => x.startsWith(n))).toEqual([]);
      return e;
    };
    // openvpn() itself refuses: the check runs when the service is defined, before any cluster exists.
    const daemon = join(dir, 'daemon.conf');
    writeFileSync(daemon, serverConf('daemon'));
    const e1 = await refused(daemon);
    expect(e1).toBeInstanceOf(InvalidArgumentError);
    expect(e1).toMatchObject({ field: 'service.openvpn.config' });
    expect((e1 as Error).message).toMatch(new RegExp(`daemon\\.conf:24: 'daemon': it would leave the foreground, out of the supervisor’s reach; remove it`));

    rmSync(join(dir, 'crl.pem'));
    const e2 = await refused(join(dir, 'server.conf'));
    expect(e2).toMatchObject({ field: 'service.openvpn.config' });
    expect((e2 as Error).message).toMatch(/server\.conf:12: 'crl-verify': .*crl\.pem: no such file or directory; create it or fix the path/);
    // The same spec as a config file: `check` says so too, and the spec form refuses it as well.
    const spec = { name: `${s.prefix}r`, nodes: 3, vip: '192.0.2.1/24', hostNetns: host.name, uplink: { bridge: 'c0' }, service: { openvpn: { config: join(dir, 'server.conf') } } };
    await expect(createCluster(spec)).rejects.toThrow(/crl-verify/);
  });

  it('a file the node’s mount view hides (/etc/netns/<node>/… over /etc/…) is refused before anything is built', async () => {
    // A CA bundle the host has; node 1's namespace gets an /etc/netns/<node>/ssl of its own, without it.
    const bundle = '/etc/ssl/certs/ca-certificates.crt';
    if (!existsSync(bundle)) return;
    const n = `${s.prefix}v`;
    const etc = `/etc/netns/${n}-n1`;
    mkdirSync(`${etc}/ssl`, { recursive: true });
    try {
      makePki(dir, { clients: [] }); // the CRL went in the last test
      const conf = join(dir, 'view.conf');
      writeFileSync(conf, serverConf(`extra-certs ${bundle}`));
      const e = await Promise.resolve()
        .then(() => createCluster({ name: n, nodes: 3, vip: '192.0.2.1/24', hostNetns: host.name, uplink: { bridge: 'c0' }, service: { openvpn: { config: conf } } }))
        .then(
          () => undefined,
          (x: unknown) => x,
        );
      expect(e).toMatchObject({ field: 'service.openvpn.config' });
      expect((e as Error).message).toMatch(new RegExp(`view\\.conf:24: 'extra-certs': ${bundle.replaceAll('.', '\\.')} \\(seen as /etc/netns/${n}-n1/ssl/certs/ca-certificates\\.crt\\) in node namespace ${n}-n1's view: no such file or directory`));
      expect((await Netns.list()).filter((x) => x.startsWith(`${n}-`))).toEqual([]);
      // openvpn() alone accepts it: the host's view has the file; only the cluster knows its nodes.
      expect(() => openvpn({ config: conf })).not.toThrow();
    } finally {
      rmSync(etc, { recursive: true, force: true });
    }
  });
});

describeAsRoot('OpenVPN with a PKI given in code and an IPv6 pool: the host reaches the client at its IPv6 tunnel address', () => {
  const s = scratch('op');
  const dir = mkdtempSync(join(tmpdir(), 'nc-ovpn-pki-'));
  const procs: ChildProcess[] = [];
  let cluster: Cluster | undefined;
  cleanUpAfterAll({ scratch: s, dir, procs, cluster: () => cluster });

  it('pki: { ca (PEM), cert, key, crl, tlsCrypt (paths) } and pool6: a client gets fd00:9::<node>:x, pings the server’s, and the host pings it', async () => {
    const [clientNs, host] = await s.make('c', 'h');
    await wire(clientNs, host, 'bridged');
    const pki = makePki(dir, { clients: ['c0'] });
    const service = openvpn({
      pki: { ca: readFileSync(pki.ca, 'utf8'), cert: pki.cert, key: pki.key, crl: pki.crl, tlsCrypt: pki.tlsCrypt },
      pool: { base: '10.9.0.0' },
      pool6: { base: 'fd00:9::', prefix: 112 },
      keepalive: [1, 4],
      extra: 'remote-cert-tls client\npush "route-ipv6 fd00:198:18::/64"',
    });
    cluster = await createCluster({
      name: `${s.prefix}p`,
      nodes: 2,
      vip: ['192.0.2.1/24', '2001:db8::1/64'],
      ports: [{ protocol: 'udp', port: 1194 }],
      hostNetns: host.name,
      uplink: { bridge: 'c0' },
      service,
    });
    await cluster.start();
    const source = sources('bridged', 4)[0];
    const k = cluster.ownerOf({ address: source });
    const path = join(dir, 'c0.conf');
    await writeSecretFile(path, pkiClientConfig(pki, 'c0', { remote: '192.0.2.1', source, dev: 'tun-p0' }));
    procs.push(spawnInNetns(clientNs, ['openvpn', '--config', path], { stdio: 'ignore' }));
    const ns = clientNs.name!;
    await until('tunnel up with an IPv6 address', () => tunAddress(ns, 'tun-p0', 6) !== undefined && tunAddress(ns, 'tun-p0', 4) !== undefined);
    const v6 = tunAddress(ns, 'tun-p0', 6)!;
    expect(v6.startsWith(`fd00:9::${k === 0 ? '' : `${k}:`}`)).toBe(true);
    expect(tunAddress(ns, 'tun-p0', 4)!.startsWith(`10.9.${k}.`)).toBe(true);
    await until('ping6 to the server', () => pings(ns, ['-6', '-I', 'tun-p0', k === 0 ? 'fd00:9::1' : `fd00:9::${k}:1`]), 5000);
    // The host routes each node's IPv6 pool via the node's IPv6 address.
    const routes = ipj<{ dst: string; gateway?: string }[]>('-6', '-n', host.name!, 'route');
    expect(routes.find((r) => r.dst === (k === 0 ? 'fd00:9::/112' : `fd00:9::${k}:0/112`))?.gateway).toBe(cluster.nodes[k].addresses.find((a) => a.includes(':')));
    await until('the host pings the client at its IPv6 tunnel address', () => pings(host.name!, ['-6', v6]), 5000);
  });
});

describeAsRoot('stable addresses with the operator’s server.conf: a client keeps its IPv4 and IPv6 address across a node kill', () => {
  const s = scratch('oa');
  const dir = mkdtempSync(join(tmpdir(), 'nc-ovpn-byo-stable-'));
  const name = `${s.prefix}s`;
  const procs: ChildProcess[] = [];
  let cluster: Cluster | undefined;
  cleanUpAfterAll({ scratch: s, dir, procs, cluster: () => cluster });

  it("the file's server and server-ipv6 are the cluster's pools; addresses are kept by username (the file checks passwords) and routed via the serving node", async () => {
    const [clientNs, host] = await s.make('c', 'h');
    await wire(clientNs, host, 'bridged');
    const pki = makePki(dir, { clients: ['c0', 'c1'] });
    writeFileSync(join(dir, 'users.txt'), 'alice:s3cret\nbob:hunter2\n');
    writeFileSync(join(dir, 'check.sh'), '#!/bin/sh\n{ read -r user; read -r pass; } < "$1"\ngrep -qx "$user:$pass" users.txt\n');
    chmodSync(join(dir, 'check.sh'), 0o755);
    writeFileSync(join(dir, 'common.conf'), 'verb 3\n');
    // The operator's file as it is; the host's IPv6 node network pushed too, so the host reaches clients over IPv6.
    writeFileSync(join(dir, 'server.conf'), serverConf('push "route-ipv6 fd00:198:18::/64"'));
    const logs: string[] = [];
    cluster = await createCluster({
      name,
      nodes: 3,
      vip: ['192.0.2.1/24', '2001:db8::1/64'],
      ports: [{ protocol: 'udp', port: 1194 }],
      hostNetns: host.name,
      uplink: { bridge: 'c0' },
      service: openvpn({ config: join(dir, 'server.conf'), addresses: 'stable' }),
      failback: 'manual',
    });
    cluster.on('log', (l) => logs.push(`[n${l.index}] ${l.line}`));
    await cluster.start();
    // Every node serves the whole pool (no block of its own), and the controller answers every client.
    const node2 = readFileSync(`/run/netns-cluster/${name}/node2/server.conf`, 'utf8');
    expect(node2).toContain('server 10.8.0.0 255.255.255.0\n'); // no nopool next to server-ipv6 (OpenVPN refuses both)
    expect(node2).toContain('server-ipv6 fd00:8::/112\n');
    expect(node2).toContain('management-client-auth\nmanagement-hold\n');
    expect(node2).not.toContain('auth-user-pass-optional'); // the file checks passwords

    const src = sources('bridged', 4);
    const onNode = (k: number) => src.find((a) => cluster!.ownerOf({ address: a }) === k)!;
    const ns = clientNs.name!;
    const start = async (cert: string, who: string, source: string, dev: string) => {
      const auth = join(dir, `${who}.auth`);
      writeFileSync(auth, `${who}\n${who === 'alice' ? 's3cret' : 'hunter2'}\n`, { mode: 0o600 });
      const path = join(dir, `${dev}.conf`);
      await writeSecretFile(path, pkiClientConfig(pki, cert, { remote: '192.0.2.1', source, dev, authFile: auth }));
      procs.push(spawnInNetns(clientNs, ['openvpn', '--config', path], { stdio: 'ignore' }));
    };
    // With a password check in the file, the username names the client (the book's key).
    const aliceSrc = onNode(1);
    await start('c0', 'alice', aliceSrc, 'tun-a');
    await start('c1', 'bob', onNode(2), 'tun-b');
    await until('both tunnels up', () => ['tun-a', 'tun-b'].every((d) => tunAddress(ns, d, 4) && tunAddress(ns, d, 6)));
    const X = tunAddress(ns, 'tun-a', 4)!;
    const X6 = tunAddress(ns, 'tun-a', 6)!;
    const Y = tunAddress(ns, 'tun-b', 4)!;
    expect(X).toMatch(/^10\.8\.0\./); // the cluster's pool, not node 1's block
    expect(Y).toMatch(/^10\.8\.0\./);
    expect(X).not.toBe(Y);
    expect(X6).toBe(`fd00:8::${Number(X.split('.')[3]).toString(16)}`);
    // Kept once each session is established (the book is written after the client is told).
    const book = () => new Map((JSON.parse(readFileSync(`/run/netns-cluster/${name}/addresses.json`, 'utf8')) as { clients: [string, string][] }).clients);
    await until('both kept in the address book', () => book().size === 2, 5000);
    expect(book()).toEqual(new Map([['user:alice', X], ['user:bob', Y]]));

    // Both clients share one namespace (and one pushed route to the node network): alice's replies
    // leave through her own tunnel by a rule on her source address.
    const hostPings = (address: string, family: 4 | 6): boolean => {
      const f = `-${family}`;
      try {
        sh('ip', [f, '-n', ns, 'rule', 'del', 'priority', '301']);
      } catch {}
      try {
        sh('ip', [f, '-n', ns, 'rule', 'add', 'from', address, 'table', '301', 'priority', '301']);
        sh('ip', [f, '-n', ns, 'route', 'replace', family === 4 ? '198.18.0.0/24' : 'fd00:198:18::/64', 'dev', 'tun-a', 'table', '301']);
      } catch {
        return false;
      }
      return pings(host.name!, family === 4 ? [address] : ['-6', address]);
    };
    const node = (k: number, family: 4 | 6) => cluster!.nodes[k].addresses.find((a) => a.includes(':') === (family === 6))!;
    const routeVia = (address: string, family: 4 | 6) =>
      ipj<{ dst: string; gateway?: string }[]>(`-${family}`, '-n', host.name!, 'route', 'show', 'proto', String(CLIENT_ROUTE_PROTOCOL)).find((r) => r.dst === address)?.gateway;
    await until('the host routes X and X6 via node 1', () => routeVia(X, 4) === node(1, 4) && routeVia(X6, 6) === node(1, 6), 5000);
    await until('the host pings alice at X and X6', () => hostPings(X, 4) && hostPings(X6, 6), 5000);

    // Node 1's OpenVPN killed: alice reconnects to another node and keeps X and X6; the host follows her.
    process.kill((await cluster.status())[1].pid!, 'SIGKILL');
    const servedBy = async (source: string) => (await cluster!.status()).findIndex((n) => (n.openvpn as OpenvpnNodeStatus | undefined)?.clients.some((c) => c.realIp === source));
    await until('alice on another node', async () => {
      const k = await servedBy(aliceSrc);
      return k >= 0 && k !== 1 && tunAddress(ns, 'tun-a', 4) !== undefined;
    });
    const k = await servedBy(aliceSrc);
    expect(tunAddress(ns, 'tun-a', 4)).toBe(X);
    await until('alice has X6 again', () => tunAddress(ns, 'tun-a', 6) === X6);
    await until(`the host routes X and X6 via node ${k}`, () => routeVia(X, 4) === node(k, 4) && routeVia(X6, 6) === node(k, 6), 5000);
    await until(`the host pings alice at X and X6 on node ${k}`, () => hostPings(X, 4) && hostPings(X6, 6), 5000);
    expect(tunAddress(ns, 'tun-b', 4)).toBe(Y);
    expect(logs.filter((l) => /stable addresses/.test(l))).toEqual([]);
  });
});
