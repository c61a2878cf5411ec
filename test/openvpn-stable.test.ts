// Stable client addresses (addresses: 'stable'), for real: OpenVPN servers in three nodes sharing
// one client pool, real clients in a namespace of their own, a node killed and restarted, the
// controller itself killed and started again (adopt), and the host reaching each client at its one
// address wherever it is served. Plus the pure parts: the pool, the pushed line, the address book.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { createCluster, destroyCluster, generateIdentity, openvpn, renderClientConfig, spawnInNetns, writeSecretFile, type Cluster, type Identity, type Netns } from '../lib/index.js';
import {
  AddressBook,
  checksPasswords,
  clientKey,
  clusterPool,
  clusterPool6,
  ifconfigIpv6Push,
  ifconfigPush,
  pairedAddress6,
  poolAddresses,
  poolCapacity,
  serverIpv6Of,
  topologyOf,
} from '../lib/services/openvpn/addresses.js';
import { renderServerConfig } from '../lib/services/openvpn/config.js';
import { parseClientHeader } from '../lib/services/openvpn/management.js';
import { resolveSpec } from '../lib/cluster/spec.js';
import { CLIENT_ROUTE_PROTOCOL } from '../lib/util/names.js';
import { describeAsRoot, ipj, scratch, sh, cleanUpAfterAll } from './helpers.js';
import { sources, wire } from './world.js';

const stableController = fileURLToPath(new URL('./fixtures/stable-controller.mjs', import.meta.url));

const until = async (what: string, cond: () => boolean | Promise<boolean>, ms = 30_000) => {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

describe('stable addresses: the pure parts', () => {
  const pool = clusterPool('10.8.0.0', 24);

  it('the pool is the whole block; clients get every host after the server’s (subnet) or the client end of each /30 (net30)', () => {
    expect(pool).toEqual({ network: '10.8.0.0', netmask: '255.255.255.0', prefix: 24, serverAddress: '10.8.0.1' });
    const subnet = [...poolAddresses(pool, 'subnet')];
    expect(subnet[0]).toBe('10.8.0.2');
    expect(subnet.at(-1)).toBe('10.8.0.254');
    expect(subnet).toHaveLength(poolCapacity(pool, 'subnet'));
    const net30 = [...poolAddresses(pool, 'net30')];
    expect(net30.slice(0, 2)).toEqual(['10.8.0.6', '10.8.0.10']);
    expect(net30).toHaveLength(poolCapacity(pool, 'net30'));
    expect(poolCapacity(clusterPool('10.9.0.0', 29), 'subnet')).toBe(5);
  });

  it('the pushed line follows the topology', () => {
    expect(ifconfigPush(pool, 'subnet', '10.8.0.7')).toBe('ifconfig-push 10.8.0.7 255.255.255.0');
    expect(ifconfigPush(pool, 'net30', '10.8.0.6')).toBe('ifconfig-push 10.8.0.6 10.8.0.5');
    expect(ifconfigPush(pool, 'p2p', '10.8.0.7')).toBe('ifconfig-push 10.8.0.7 10.8.0.1');
    expect(topologyOf('dev tun\ntopology subnet\n# x\n')).toBe('subnet');
    expect(topologyOf('topology subnet\ntopology net30\n')).toBe('net30');
    expect(topologyOf('dev tun\n')).toBe('net30'); // OpenVPN's default
  });

  it('IPv6: the pool comes from server-ipv6; a client’s IPv6 address is paired with its IPv4 one', async () => {
    expect(serverIpv6Of('dev tun\nserver-ipv6 fd00:77::/112\n')).toEqual({ base: 'fd00:77::', prefix: 112 });
    expect(serverIpv6Of('dev tun\n')).toBeUndefined();
    const pool6 = clusterPool6('fd00:77::', 112);
    expect(pool6).toEqual({ network: 'fd00:77::', prefix: 112, serverAddress: 'fd00:77::1' });
    expect(pairedAddress6(pool, pool6, '10.8.0.7')).toBe('fd00:77::7');
    expect(pairedAddress6(pool, pool6, '10.8.0.254')).toBe('fd00:77::fe');
    expect(ifconfigIpv6Push(pool6, 'fd00:77::7')).toBe('ifconfig-ipv6-push fd00:77::7/112 fd00:77::1');
    const dir = mkdtempSync(join(tmpdir(), 'nc-book6-'));
    try {
      const book = await AddressBook.open(join(dir, 'a.json'), pool, 'subnet', pool6);
      book.reserve('cn:x');
      expect(book.addresses('cn:x')).toEqual({ v4: '10.8.0.2', v6: 'fd00:77::2' });
      await expect(AddressBook.open(join(dir, 'a.json'), pool, 'subnet', clusterPool6('fd00:77::', 124))).rejects.toThrow(/smaller than the IPv4 pool.*\/120 or larger/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a client is known by its common name; by its username only when the server checks passwords', () => {
    const env = new Map([
      ['common_name', 'laptop'],
      ['username', 'alice'],
    ]);
    expect(clientKey(env, false)).toBe('cn:laptop');
    expect(clientKey(env, true)).toBe('user:alice');
    expect(clientKey(new Map([['common_name', 'laptop']]), true)).toBe('cn:laptop');
    expect(clientKey(new Map(), true)).toBeUndefined();
    expect(checksPasswords('dev tun\nauth-user-pass-verify /x via-file\n')).toBe(true);
    expect(checksPasswords('dev tun\n# auth-user-pass-verify /x via-file\n')).toBe(false);
  });

  it('>CLIENT: headers are parsed; ADDRESS (no ENV block) is not an event', () => {
    expect(parseClientHeader('CONNECT,3,1')).toMatchObject({ event: 'CONNECT', cid: 3, kid: 1 });
    expect(parseClientHeader('ESTABLISHED,3')).toMatchObject({ event: 'ESTABLISHED', cid: 3 });
    expect(parseClientHeader('ADDRESS,3,10.8.0.2,1')).toBeUndefined();
  });

  it('the address book: distinct addresses, kept ones survive a reopen, reservations do not, exhaustion is undefined', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nc-book-'));
    try {
      const file = join(dir, 'addresses.json');
      const small = clusterPool('10.9.0.0', 29);
      const book = await AddressBook.open(file, small, 'subnet');
      const got = ['a', 'b', 'c', 'd', 'e'].map((k) => book.reserve(`cn:${k}`));
      expect(new Set(got).size).toBe(5);
      expect(book.reserve('cn:a')).toBe(got[0]); // the same client, the same address
      expect(book.reserve('cn:f')).toBeUndefined(); // exhausted
      await book.keep('cn:a');
      await book.keep('cn:b');
      book.cancel('cn:c');
      expect(book.reserve('cn:f')).toBe(got[2]); // a cancelled reservation frees its address
      const again = await AddressBook.open(file, small, 'subnet');
      expect(again.entries()).toEqual(new Map([['cn:a', got[0]], ['cn:b', got[1]]]));
      // Keys are data, never object keys.
      await again.keep(again.reserve('__proto__') ? '__proto__' : 'x');
      expect((await AddressBook.open(file, small, 'subnet')).get('__proto__')).toBeDefined();
      // Another pool: entries outside it are dropped, and said so.
      const moved = await AddressBook.open(file, clusterPool('10.10.0.0', 29), 'subnet');
      expect(moved.entries().size).toBe(0);
      expect(moved.dropped).toHaveLength(3);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the generated config serves the whole pool without a pool of its own, and waits for the controller', async () => {
    const id = await generateIdentity('srv');
    const base = { index: 2, vip: '192.0.2.1', serverIdentity: id, clientFingerprints: [id.fingerprint], managementSocket: '/run/x/m.sock', statusFile: '/run/x/s.txt' };
    const conf = renderServerConfig({ ...base, addresses: 'stable', pool: { base: '10.9.0.0', prefix: 24 } });
    expect(conf).toContain('server 10.9.0.0 255.255.255.0 nopool\n'); // node 2 too: the cluster's pool
    expect(conf).toContain('management-client-auth\nmanagement-hold\nauth-user-pass-optional\n');
    // A config that checks passwords keeps asking every client for one.
    expect(renderServerConfig({ ...base, addresses: 'stable', extra: 'script-security 2\nauth-user-pass-verify /bin/true via-file' })).not.toContain('auth-user-pass-optional');
    expect(renderServerConfig(base)).toContain('server 10.8.2.0 255.255.255.0\n');
    expect(() => renderServerConfig({ ...base, addresses: 'stable', extra: 'duplicate-cn' })).toThrow(/duplicate-cn.*one name cannot be connected twice/);
    expect(() => renderServerConfig({ ...base, addresses: 'stable', extra: 'ifconfig-pool 10.9.0.2 10.9.0.9' })).toThrow(/ifconfig-pool/);
    expect(() => renderServerConfig({ ...base, extra: 'duplicate-cn' })).not.toThrow();
    // OpenVPN refuses nopool next to server-ipv6: the pools are there then, and stay unused. Node 2
    // serves the whole IPv6 range too (per node it would be the third block).
    const v6 = renderServerConfig({ ...base, addresses: 'stable', pool: { base: '10.9.0.0', prefix: 24 }, pool6: { base: 'fd00:9::', prefix: 112 } });
    expect(v6).toContain('server 10.9.0.0 255.255.255.0\nserver-ipv6 fd00:9::/112\n');
    expect(renderServerConfig({ ...base, pool: { base: '10.9.0.0', prefix: 24 }, pool6: { base: 'fd00:9::', prefix: 112 } })).toContain('server-ipv6 fd00:9::2:0/112\n');
    // The IPv6 range is the pool6 option (server-ipv6 in extra is refused: one place for it).
    expect(() => renderServerConfig({ ...base, addresses: 'stable', extra: 'server-ipv6 fd00:9::/112' })).toThrow(/server-ipv6.*pool6/);
  });

  it('spec validation: addresses is per-node or stable; a stable pool is one block, at most /16, clear of the cluster’s networks', async () => {
    const id = await generateIdentity('v');
    const spec = (o: Record<string, unknown>) => ({ name: 'sv', nodes: 4, vip: '192.0.2.1/24', uplink: { bridge: 'x' }, service: { openvpn: { clientFingerprints: [id.fingerprint], ...o } } });
    expect(() => resolveSpec(spec({ addresses: 'sticky' }))).toThrow(/service\.openvpn\.addresses.*per-node.*stable/);
    expect(() => resolveSpec(spec({ addresses: 'stable', pool: { base: '10.0.0.0', prefix: 12 } }))).toThrow(/pool\.prefix: with addresses: 'stable' the pool is one block for the whole cluster, at most \/16/);
    expect(() => resolveSpec(spec({ addresses: 'stable', pool: { base: '198.18.0.0', prefix: 24 } }))).toThrow(/the cluster's client pool 198\.18\.0\.0\/24 overlaps the node network/);
    // Per node, 4 × /24 from 10.255.253.0 run past the end; stable needs only the one block.
    expect(() => resolveSpec(spec({ pool: { base: '255.255.253.0' } }))).toThrow(/pool/);
    expect(resolveSpec(spec({ addresses: 'stable', pool: { base: '10.20.0.0', prefix: 16 } })).service).toBeDefined();
    // An IPv6 pool (pool6) must hold as many clients, and the cluster must route IPv6.
    const pool6 = (prefix: number) => ({ base: 'fd00:77::', prefix });
    expect(() => resolveSpec({ ...spec({ addresses: 'stable', pool6: pool6(124) }), vip: ['192.0.2.1/24', '2001:db8::1/64'] })).toThrow(
      /pool6\.prefix: the IPv6 range fd00:77::\/124 is smaller than the IPv4 pool \(\/24\).*\/120 or larger/,
    );
    expect(() => resolveSpec(spec({ addresses: 'stable', pool6: pool6(112) }))).toThrow(/pool6: .*needs an IPv6 node network.*IPv6 VIP/);
    expect(resolveSpec({ ...spec({ addresses: 'stable', pool6: pool6(112) }), vip: ['192.0.2.1/24', '2001:db8::1/64'] }).service).toBeDefined();
  });
});

describeAsRoot('stable addresses with real OpenVPN clients', () => {
  const s = scratch('os');
  const dir = mkdtempSync(join(tmpdir(), 'nc-ovpn-stable-'));
  const procs: ChildProcess[] = [];
  let clientNs: Netns;
  let host: Netns;
  let cluster: Cluster | undefined;
  let server: Identity;
  const name = `${s.prefix}s`;

  beforeAll(async () => {
    [clientNs, host] = await s.make('c', 'h');
    await wire(clientNs, host, 'bridged');
    server = await generateIdentity('stable-server');
  });
  cleanUpAfterAll({ scratch: s, dir, procs, cluster: () => cluster });

  /** A client's tunnel address (undefined while its tun device is down or gone). */
  const tunAddress = (dev: string): string | undefined => {
    try {
      return ipj<{ addr_info: { family: string; local: string }[] }[]>('-n', clientNs.name!, 'addr', 'show', 'dev', dev)[0]?.addr_info.find((a) => a.family === 'inet')?.local;
    } catch {
      return undefined;
    }
  };
  /** The host's routes of the cluster's protocol: address → next hop. */
  const hostRoutes = (): Record<string, string> =>
    Object.fromEntries(
      ['-4', '-6'].flatMap((f) => ipj<{ dst: string; gateway?: string }[]>(f, '-n', host.name!, 'route', 'show', 'proto', String(CLIENT_ROUTE_PROTOCOL)).map((r) => [r.dst, r.gateway ?? ''])),
    );
  /** A client's tunnel IPv6 address (global scope). */
  const tunAddress6 = (dev: string): string | undefined => {
    try {
      return ipj<{ addr_info: { family: string; local: string; scope: string }[] }[]>('-n', clientNs.name!, 'addr', 'show', 'dev', dev)[0]?.addr_info.find((a) => a.family === 'inet6' && a.scope === 'global')?.local;
    } catch {
      return undefined;
    }
  };
  /** The host pings the client's IPv6 address (replies through its tunnel, as for IPv4). */
  const hostPings6 = (address: string, dev: string, table: number): boolean => {
    try {
      try {
        sh('ip', ['-6', '-n', clientNs.name!, 'rule', 'del', 'priority', String(table)]);
      } catch {}
      sh('ip', ['-6', '-n', clientNs.name!, 'rule', 'add', 'from', address, 'table', String(table), 'priority', String(table)]);
      sh('ip', ['-6', '-n', clientNs.name!, 'route', 'replace', 'fd00:198:18::/64', 'dev', dev, 'table', String(table)]);
      sh('ip', ['netns', 'exec', host.name!, 'ping', '-6', '-c1', '-W1', address]);
      return true;
    } catch {
      return false;
    }
  };
  /** The host pings `address` (replies leave the client through its tunnel: source routing by tunnel address). */
  const hostPings = (address: string, dev: string, table: number): boolean => {
    try {
      try {
        sh('ip', ['-n', clientNs.name!, 'rule', 'del', 'priority', String(table)]);
      } catch {}
      sh('ip', ['-n', clientNs.name!, 'rule', 'add', 'from', address, 'table', String(table), 'priority', String(table)]);
      sh('ip', ['-n', clientNs.name!, 'route', 'replace', '198.18.0.0/24', 'dev', dev, 'table', String(table)]);
      sh('ip', ['netns', 'exec', host.name!, 'ping', '-c1', '-W1', address]);
      return true;
    } catch {
      return false;
    }
  };
  const startClient = async (identity: Identity, source: string, dev: string, extra?: string) => {
    const path = join(dir, `${dev}.conf`);
    await writeSecretFile(path, renderClientConfig({ remote: '192.0.2.1', identity, serverFingerprint: server.fingerprint, bind: { address: source }, dev, extra }));
    const log: string[] = [];
    const p = spawnInNetns(clientNs, ['openvpn', '--config', path], { stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout!.on('data', (d) => log.push(String(d)));
    procs.push(p);
    return { proc: p, log };
  };
  /** The node whose status lists the client (by common name), or undefined. */
  const servedBy = async (cn: string): Promise<number | undefined> => {
    const st = await cluster!.status();
    return st.findIndex((n) => ((n.openvpn as { clients: { commonName: string }[] } | undefined)?.clients ?? []).some((c) => c.commonName === cn));
  };

  it('a client keeps its address X on node 1, after node 1 dies (on another node), and after failback; the host pings X each time', async () => {
    const [alice, bob] = await Promise.all([generateIdentity('alice'), generateIdentity('bob')]);
    cluster = await createCluster({
      name,
      nodes: 3,
      vip: ['192.0.2.1/24', '2001:db8::1/64'],
      ports: [{ protocol: 'udp', port: 1194 }],
      hostNetns: host.name,
      uplink: { bridge: 'c0' },
      service: openvpn({
        clientFingerprints: [alice.fingerprint, bob.fingerprint],
        serverIdentity: server,
        addresses: 'stable',
        pool: { base: '10.77.0.0', prefix: 24 },
        pool6: { base: 'fd00:77::', prefix: 112 }, // and an IPv6 address for every client, paired with its IPv4 one
        keepalive: [1, 4],
      }),
      // Failback when the test says so: a restart that beats the clients' reconnection (a loaded
      // machine) would otherwise bring alice home before she is seen elsewhere.
      failback: 'manual',
    });
    const logs: string[] = [];
    cluster.on('log', (l) => logs.push(`[n${l.index}] ${l.line}`));
    await cluster.start();
    const nodeAddress = (k: number) => cluster!.nodes[k].address;
    const nodeAddress6 = (k: number) => cluster!.nodes[k].addresses.find((a) => a.includes(':'))!;
    const src = sources('bridged', 4);
    const aliceSrc = src.find((a) => cluster!.ownerOf({ address: a }) === 1)!;
    const bobSrc = src.find((a) => cluster!.ownerOf({ address: a }) === 2)!;
    await startClient(alice, aliceSrc, 'tun-a');
    await startClient(bob, bobSrc, 'tun-b');
    await until('both tunnels up', () => tunAddress('tun-a') !== undefined && tunAddress('tun-b') !== undefined);
    const X = tunAddress('tun-a')!;
    const Y = tunAddress('tun-b')!;
    expect(X).toMatch(/^10\.77\.0\./);
    expect(Y).toMatch(/^10\.77\.0\./);
    expect(X).not.toBe(Y);
    expect(await servedBy('alice')).toBe(1);
    await until('host routes', () => hostRoutes()[X] === nodeAddress(1) && hostRoutes()[Y] === nodeAddress(2), 5000);
    await until(`the host pings ${X} on node 1`, () => hostPings(X, 'tun-a', 101), 5000);
    await until(`the host pings ${Y} on node 2`, () => hostPings(Y, 'tun-b', 102), 5000);
    // IPv6 too: X6 paired with X, routed as a /128 via node 1's IPv6 address.
    const X6 = tunAddress6('tun-a')!;
    expect(X6).toBe(`fd00:77::${Number(X.split('.')[3]).toString(16)}`);
    await until('the /128 route via node 1', () => hostRoutes()[X6] === nodeAddress6(1), 5000);
    await until(`the host pings ${X6} on node 1`, () => hostPings6(X6, 'tun-a', 201), 5000);
    // Kept on disk, in the cluster's runtime directory.
    const book = JSON.parse(readFileSync(`/run/netns-cluster/${name}/addresses.json`, 'utf8')) as { clients: [string, string][] };
    expect(new Map(book.clients)).toEqual(new Map([['cn:alice', X], ['cn:bob', Y]]));

    // Node 1's OpenVPN killed: alice comes back on another node, with X, and the host reaches her there.
    const pid = (await cluster.status())[1].pid!;
    process.kill(pid, 'SIGKILL');
    await until('alice on another node', async () => {
      const k = await servedBy('alice');
      return k !== undefined && k >= 0 && k !== 1 && tunAddress('tun-a') !== undefined;
    });
    const elsewhere = (await servedBy('alice'))!;
    expect(tunAddress('tun-a')).toBe(X);
    await until(`the route to ${X} via node ${elsewhere}`, () => hostRoutes()[X] === nodeAddress(elsewhere), 5000);
    await until(`the host pings ${X} on node ${elsewhere}`, () => hostPings(X, 'tun-a', 101), 5000);
    await until(`the host pings ${X6} on node ${elsewhere}`, () => tunAddress6('tun-a') === X6 && hostRoutes()[X6] === nodeAddress6(elsewhere) && hostPings6(X6, 'tun-a', 201), 5000);

    // Failback: node 1 is restarted by its supervisor; given its buckets back, it takes them and the
    // node alice is on tells her to move; she is X on node 1 again.
    await until('node 1 restarted', async () => (await cluster!.status())[1].state === 'running', 20_000);
    await cluster.setNodeState(1, 'up');
    await until('alice back on node 1', async () => (await servedBy('alice')) === 1 && tunAddress('tun-a') !== undefined, 40_000);
    expect(tunAddress('tun-a')).toBe(X);
    await until(`the route to ${X} via node 1 again`, () => hostRoutes()[X] === nodeAddress(1), 5000);
    await until(`the host pings ${X} on node 1 again`, () => hostPings(X, 'tun-a', 101), 5000);
    await until(`the host pings ${X6} on node 1 again`, () => tunAddress6('tun-a') === X6 && hostRoutes()[X6] === nodeAddress6(1) && hostPings6(X6, 'tun-a', 201), 5000);
    // Bob never moved and kept Y.
    expect(tunAddress('tun-b')).toBe(Y);
    expect(hostRoutes()[Y]).toBe(nodeAddress(2));
    expect(logs.filter((l) => /stable addresses/.test(l))).toEqual([]);
  });

  it('close() leaves no client route, no address book, nothing of the cluster', async () => {
    expect(Object.keys(hostRoutes()).length).toBeGreaterThan(0);
    await cluster!.close();
    cluster = undefined;
    expect(hostRoutes()).toEqual({});
    expect(existsSync(`/run/netns-cluster/${name}`)).toBe(false);
  });

  it('two clients never share an address; once the pool is exhausted the next client is refused, saying why', async () => {
    for (const p of procs.splice(0)) p.kill('SIGKILL');
    const ids = await Promise.all(Array.from({ length: 6 }, (_, i) => generateIdentity(`pc${i}`)));
    // A /29: 5 client addresses for the whole cluster, 2 nodes.
    cluster = await createCluster({
      name: `${s.prefix}x`,
      nodes: 2,
      vip: '192.0.2.1/24',
      hostNetns: host.name,
      uplink: { bridge: 'c0' },
      service: openvpn({
        clientFingerprints: ids.map((i) => i.fingerprint),
        serverIdentity: server,
        addresses: 'stable',
        pool: { base: '10.78.0.0', prefix: 29 },
        // A renegotiation every 4 s, each a >CLIENT:REAUTH the controller must answer within 4 s.
        extra: 'reneg-sec 4\nhand-window 4',
      }),
    });
    const logs: string[] = [];
    cluster.on('log', (l) => logs.push(l.line));
    await cluster.start();
    const src = sources('bridged', 4);
    // Three sources node 0 serves, two node 1 serves: the pool is the cluster's, not a node's.
    const chosen = [...src.filter((a) => cluster!.ownerOf({ address: a }) === 0).slice(0, 3), ...src.filter((a) => cluster!.ownerOf({ address: a }) === 1).slice(0, 2)];
    for (let i = 0; i < 5; i++) await startClient(ids[i], chosen[i], `tun-p${i}`);
    await until('five tunnels up', () => [0, 1, 2, 3, 4].every((i) => tunAddress(`tun-p${i}`) !== undefined));
    const addrs = [0, 1, 2, 3, 4].map((i) => tunAddress(`tun-p${i}`)!);
    expect(new Set(addrs).size).toBe(5);
    expect([...addrs].sort()).toEqual(['10.78.0.2', '10.78.0.3', '10.78.0.4', '10.78.0.5', '10.78.0.6']);
    expect(await Promise.all([0, 1, 2, 3, 4].map((i) => servedBy(`pc${i}`)))).toEqual([0, 0, 0, 1, 1]);
    const sixth = await startClient(ids[5], src.find((a) => !chosen.includes(a))!, 'tun-p5', 'auth-retry none');
    await until('the sixth client refused', () => sixth.log.join('').includes('AUTH_FAILED'), 20_000);
    expect(sixth.log.join('')).toContain('address pool exhausted');
    expect(logs.some((l) => /the pool 10\.78\.0\.0\/29 is exhausted \(all 5 addresses are given to other clients\); 'cn:pc5' refused/.test(l))).toBe(true);
    expect(tunAddress('tun-p5')).toBeUndefined();
    // Renegotiations (REAUTH) were answered: after several of them every session is the one it was.
    const since = async () => (await cluster!.status()).flatMap((n) => ((n.openvpn as { clients: { commonName: string; connectedSince: Date }[] }).clients ?? []).filter((c) => c.commonName !== 'pc5').map((c) => `${c.commonName}@${+c.connectedSince}`)).sort();
    const before = await since();
    expect(before).toHaveLength(5);
    await until('two rounds of renegotiations', () => logs.filter((l) => /soft reset/.test(l)).length >= 10, 20_000);
    expect(await since()).toEqual(before);
    expect(logs.filter((l) => /TLS Error|stable addresses: (?!the pool)/.test(l))).toEqual([]);
    expect([0, 1, 2, 3, 4].map((i) => tunAddress(`tun-p${i}`))).toEqual(addrs);
    await cluster.close();
    cluster = undefined;
    expect(hostRoutes()).toEqual({});
  });

  it('a controller killed and started again (adopt): clients come back with the same address; destroy leaves no route', async () => {
    for (const p of procs.splice(0)) p.kill('SIGKILL');
    const carol = await generateIdentity('carol');
    const cname = `${s.prefix}r`;
    const spec = {
      name: cname,
      nodes: 2,
      vip: '192.0.2.1/24',
      hostNetns: host.name,
      uplink: { bridge: 'c0' },
      service: { openvpn: { clientFingerprints: [carol.fingerprint], serverIdentity: { certPem: server.certPem, keyPem: server.keyPem }, addresses: 'stable' as const, pool: { base: '10.79.0.0', prefix: 24 }, keepalive: [1, 4] as [number, number] } },
    };
    const controllers: ChildProcess[] = [];
    const startController = async () => {
      const child = spawn(process.execPath, [stableController, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] });
      controllers.push(child);
      const first = await Promise.race([once(child.stdout!, 'data').then(() => 'ready'), once(child, 'exit').then(() => 'exited')]);
      expect(first).toBe('ready');
      return child;
    };
    try {
      const first = await startController();
      await startClient(carol, sources('bridged', 4)[40], 'tun-r');
      await until('carol up', () => tunAddress('tun-r') !== undefined);
      const Z = tunAddress('tun-r')!;
      await until(`the host pings ${Z}`, () => hostPings(Z, 'tun-r', 103), 5000);
      // The controller dies: its servers die with it; the routes stay (nobody removes them).
      first.kill('SIGKILL');
      await once(first, 'exit');
      await until('carol lost her tunnel', () => tunAddress('tun-r') === undefined, 20_000);
      // A client route of the dead controller to a client that never comes back: stale now.
      const node0 = resolveSpec(spec).nodeNetworks[0].address.replace(/\.0$/, '.1');
      sh('ip', ['-n', host.name!, 'route', 'add', '10.79.0.200/32', 'via', node0, 'proto', String(CLIENT_ROUTE_PROTOCOL)]);
      // A new controller adopts the cluster (removing the stale client routes), reads the address
      // book, and carol is Z again.
      await startController();
      expect(hostRoutes()['10.79.0.200']).toBeUndefined();
      await until('carol up again', () => tunAddress('tun-r') !== undefined, 40_000);
      expect(tunAddress('tun-r')).toBe(Z);
      await until(`the host pings ${Z} again`, () => hostPings(Z, 'tun-r', 103), 5000);
      // Killed again: destroy (what down and sweep do) removes the client routes with the rest.
      const last = controllers.at(-1)!;
      last.kill('SIGKILL');
      await once(last, 'exit');
      expect(Object.keys(hostRoutes())).toContain(Z);
      const report = await destroyCluster(cname);
      expect(report.hostObjects.filter((o) => o.startsWith('route '))).toEqual([expect.stringMatching(new RegExp(`^route ${Z.replaceAll('.', '\\.')}/32 via 198\\.18\\.0\\.\\d+$`))]);
      expect(hostRoutes()).toEqual({});
    } finally {
      for (const c of controllers) c.kill('SIGKILL');
    }
  });
});
