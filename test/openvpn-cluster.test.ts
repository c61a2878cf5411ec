// The point of the project, for real: an OpenVPN server per node behind one VIP, real OpenVPN
// clients from distinct source addresses, a node killed and its clients moving to live nodes,
// the node restarted and its buckets coming back, and a close() that leaves nothing behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  createCluster,
  generateIdentity,
  openvpn,
  renderClientConfig,
  spawnInNetns,
  writeSecretFile,
  type Cluster,
  type Identity,
  type Netns,
  type OpenvpnNodeStatus,
} from '../lib/index.js';
import { describeAsRoot, ipj, scratch, sh, SLOWDOWN, cleanUpAfterAll } from './helpers.js';
import { sources, wire } from './world.js';

const controller = fileURLToPath(new URL('./fixtures/controller.mjs', import.meta.url));
const HOST_ADDRESS = '198.18.0.254'; // the host's address on the node network (last host of 198.18.0.0/24)

const until = async (what: string, cond: () => boolean | Promise<boolean>, ms = 30_000) => {
  const end = Date.now() + ms * SLOWDOWN;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

/** openvpn server processes whose config lives under this cluster's runtime directory. */
function serverProcesses(name: string): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`/run/netns-cluster/${name}/`);
      } catch {
        return false;
      }
    })
    .map(Number);
}

describeAsRoot('OpenVPN in every node, with real clients', () => {
  const s = scratch('ov');
  const dir = mkdtempSync(join(tmpdir(), 'nc-ovpn-'));
  const clients: { source: string; identity: Identity; dev: string; proc?: ChildProcess }[] = [];
  let clientNs: Netns;
  let host: Netns;
  let cluster: Cluster;
  let tcpServer: ChildProcess | undefined;
  const downLatency: number[] = [];
  const name = `${s.prefix}v`;

  beforeAll(async () => {
    [clientNs, host] = await s.make('c', 'h');
    await wire(clientNs, host, 'bridged');
  });
  afterAll(async () => {
    for (const c of clients) c.proc?.kill('SIGKILL');
    tcpServer?.kill('SIGKILL');
    await cluster?.close();
    await s.cleanup();
    rmSync(dir, { recursive: true, force: true });
    if (downLatency.length) console.log(`OpenVPN failover: exit seen → buckets moved in ${downLatency.map((x) => x.toFixed(1)).join(', ')} ms`);
  });

  /** A client's tunnel address (undefined while its tun device is down or gone, e.g. reconnecting). */
  const tunAddress = (dev: string): string | undefined => {
    try {
      const info = ipj<{ addr_info: { family: string; local: string }[] }[]>('-n', clientNs.name!, 'addr', 'show', 'dev', dev)[0];
      return info?.addr_info.find((a) => a.family === 'inet')?.local;
    } catch {
      return undefined;
    }
  };
  /** The node a client's tunnel is on, from the pool its tun address is in (10.8.<node>.x). */
  const tunnelNode = (dev: string): number | undefined => {
    const a = tunAddress(dev);
    return a ? Number(a.split('.')[2]) : undefined;
  };
  /**
   * All six clients share one namespace: source routing sends each tunnel address's traffic to the
   * host's node network through its own tunnel (set again after every reconnect).
   */
  const routeThrough = (i: number) => {
    const c = clients[i];
    const table = String(100 + i);
    try {
      sh('ip', ['-n', clientNs.name!, 'rule', 'del', 'priority', table]);
    } catch {}
    sh('ip', ['-n', clientNs.name!, 'rule', 'add', 'from', tunAddress(c.dev)!, 'table', table, 'priority', table]);
    sh('ip', ['-n', clientNs.name!, 'route', 'replace', '198.18.0.0/24', 'dev', c.dev, 'table', table]);
  };
  const pingsServer = (dev: string, node: number) => {
    try {
      sh('ip', ['netns', 'exec', clientNs.name!, 'ping', '-c1', '-W1', '-I', dev, `10.8.${node}.1`]);
      return true;
    } catch {
      return false;
    }
  };
  /** A few KB of TCP from the client's tunnel address to the host, through the tunnel and the node. */
  const tcpThrough = (dev: string): number => {
    routeThrough(clients.findIndex((c) => c.dev === dev));
    const out = sh('ip', [
      'netns',
      'exec',
      clientNs.name!,
      process.execPath,
      '-e',
      `const c=require('net').connect({host:'${HOST_ADDRESS}',port:7000,localAddress:'${tunAddress(dev)}'});let n=0;c.on('data',d=>n+=d.length);c.on('end',()=>{console.log(n);process.exit()});c.on('error',e=>{console.log(-1);process.exit()});setTimeout(()=>{console.log(-2);process.exit()},4000)`,
    ]);
    return Number(out.trim().split('\n')[0]);
  };
  const onPredictedNodes = () => clients.every((c) => tunnelNode(c.dev) === cluster.ownerOf({ address: c.source }));

  it('3 nodes, 6 clients: every tunnel comes up on the node ownerOf predicts, and carries ping and TCP', async () => {
    // Six sources, two per node: picked by the same hash the kernel uses.
    const identities = await Promise.all(Array.from({ length: 6 }, (_, i) => generateIdentity(`client${i}`)));
    const service = openvpn({
      clientFingerprints: identities.map((i) => i.fingerprint),
      keepalive: [1, 4], // clients notice a dead node within ~4 s
      restart: { initialDelayMs: 6000 }, // long enough for the clients to move before failback
    });
    cluster = await createCluster({
      name,
      nodes: 3,
      vip: '192.0.2.1/24',
      ports: [{ protocol: 'udp', port: 1194 }],
      hostNetns: host.name,
      uplink: { bridge: 'c0' },
      service,
      failback: 'auto',
    });
    cluster.on('node-down', (e) => e.latencyMs !== undefined && downLatency.push(e.latencyMs));
    const t0 = performance.now();
    await cluster.start();
    const startMs = performance.now() - t0;

    const perNode = new Map<number, string[]>();
    for (const src of sources('bridged', 4)) {
      const k = cluster.ownerOf({ address: src });
      const list = perNode.get(k) ?? [];
      if (list.length < 2) perNode.set(k, [...list, src]);
    }
    const chosen = [...perNode.values()].flat();
    expect(chosen).toHaveLength(6);
    chosen.forEach((source, i) => clients.push({ source, identity: identities[i], dev: `tun-c${i}` }));

    // A TCP server in the host on its node-network address: 8 KB to whoever connects.
    tcpServer = spawn('ip', ['netns', 'exec', host.name!, process.execPath, '-e', `require('net').createServer(c=>c.on('error',()=>{}).end(Buffer.alloc(8192,1))).listen(7000,'${HOST_ADDRESS}',()=>console.log('ready'))`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await once(tcpServer.stdout!, 'data');

    const fp = service.serverFingerprint()!;
    const t1 = performance.now();
    for (const c of clients) {
      const path = join(dir, `${c.dev}.conf`);
      await writeSecretFile(path, renderClientConfig({ remote: '192.0.2.1', identity: c.identity, serverFingerprint: fp, bind: { address: c.source }, dev: c.dev }));
      c.proc = spawnInNetns(clientNs, ['openvpn', '--config', path], { stdio: 'ignore' });
    }
    await until('all tunnels up', () => clients.every((c) => tunnelNode(c.dev) !== undefined));
    console.log(`OpenVPN: servers started in ${startMs.toFixed(0)} ms; 6 tunnels up ${(performance.now() - t1).toFixed(0)} ms after starting the clients`);
    expect(onPredictedNodes()).toBe(true);
    for (const c of clients) {
      const k = tunnelNode(c.dev)!;
      await until(`ping through ${c.dev}`, () => pingsServer(c.dev, k), 5000);
      expect(tcpThrough(c.dev)).toBe(8192);
    }
    // status() shows each client on its node, by its real source address.
    const status = await cluster.status();
    for (const c of clients) {
      const k = cluster.ownerOf({ address: c.source });
      const ov = status[k].openvpn as OpenvpnNodeStatus;
      expect(ov.clients.map((x) => x.realIp)).toContain(c.source);
      expect(ov.pool).toBe(`10.8.${k}.0/24`);
    }
    // Key material and the control socket are the controller's alone.
    for (const k of [0, 1, 2]) {
      const nodeDir = `/run/netns-cluster/${name}/node${k}`;
      expect(statSync(nodeDir).mode & 0o777).toBe(0o700);
      expect(statSync(`${nodeDir}/server.conf`).mode & 0o777).toBe(0o600);
      expect(statSync(`${nodeDir}/management.sock`).mode & 0o777).toBe(0o600);
    }
  });

  it('a node’s OpenVPN killed: buckets move at once, its clients reconnect to live nodes, the node restarts and takes its buckets back', async () => {
    const victim = cluster.ownerOf({ address: clients[0].source });
    const moved = clients.filter((c) => cluster.ownerOf({ address: c.source }) === victim);
    const original = cluster.buckets();
    const pid = (await cluster.status())[victim].pid!;
    const kill = performance.now();
    process.kill(pid, 'SIGKILL');
    await until('buckets moved', () => !cluster.buckets().includes(victim), 2000);
    // The moved clients reconnect (after their ping-restart) to the nodes that own them now.
    await until('clients on live nodes', () => moved.every((c) => tunnelNode(c.dev) === cluster.ownerOf({ address: c.source }) && tunnelNode(c.dev) !== victim));
    const reconnectMs = performance.now() - kill;
    for (const c of moved) {
      await until(`ping through ${c.dev}`, () => pingsServer(c.dev, tunnelNode(c.dev)!), 5000);
      expect(tcpThrough(c.dev)).toBe(8192);
    }
    // The supervisor restarts the node (after its 6 s backoff); failback returns its buckets…
    await until('failback', () => cluster.buckets().every((o, b) => o === original[b]), 20_000);
    expect((await cluster.status())[victim]).toMatchObject({ state: 'running', restarts: 1, dataPlane: 'up' });
    // …and its clients come home.
    await until('clients back on the restarted node', onPredictedNodes);
    const backMs = performance.now() - kill;
    for (const c of clients) await until(`ping through ${c.dev}`, () => pingsServer(c.dev, tunnelNode(c.dev)!), 5000);
    console.log(`OpenVPN: after SIGKILL of node ${victim}: clients moved and passing traffic ${reconnectMs.toFixed(0)} ms later; back home ${backMs.toFixed(0)} ms later`);
  });

  it('close() with clients connected leaves no server process, namespace, link, rule or runtime file', async () => {
    expect(serverProcesses(name)).toHaveLength(3);
    await cluster.close();
    expect(serverProcesses(name)).toEqual([]);
    expect((await import('../lib/index.js')).Netns.list().then((l) => l.filter((n) => n.startsWith(`${name}-`)))).resolves.toEqual([]);
    expect(ipj<{ ifname: string }[]>('-n', host.name!, 'link').map((l) => l.ifname).filter((n) => n.startsWith(name))).toEqual([]);
    expect(sh('ip', ['netns', 'exec', host.name!, 'nft', 'list', 'tables'])).not.toContain(name);
    expect(existsSync(`/run/netns-cluster/${name}`)).toBe(false);
    expect(existsSync(`/run/netns-cluster/${name}.json`)).toBe(false);
    expect(existsSync(`/run/netns-cluster/${name}.lock`)).toBe(false);
  });

  it('a SIGKILLed controller leaves no OpenVPN behind, and a fresh process sweeps the rest', async () => {
    const cname = `${s.prefix}k`;
    await host.addVeth({ name: 'c9', peer: { name: 'c9p' } });
    const id = await generateIdentity('sweep-client');
    // Its own client pools: the first cluster's routes to 10.8.x.0/24 live in the same host namespace.
    const spec = {
      name: cname,
      nodes: 2,
      vip: '192.0.2.1/24',
      hostNetns: host.name,
      uplink: { bridge: 'c9' },
      service: { openvpn: { clientFingerprints: [id.fingerprint], pool: { base: '10.9.0.0' } } },
    };
    const child = spawn(process.execPath, [controller, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const first = await Promise.race([once(child.stdout!, 'data').then(() => 'ready'), once(child, 'exit').then(() => 'exited')]);
    expect(first).toBe('ready');
    await until('two servers', () => serverProcesses(cname).length === 2, 10_000);
    child.kill('SIGKILL');
    await once(child, 'exit');
    await until('servers gone with their controller', () => serverProcesses(cname).length === 0, 5000);
    const { sweepClusters, Netns } = await import('../lib/index.js');
    expect(await sweepClusters({ prefix: s.prefix })).toContain(cname); // this file's only: others run alongside
    expect((await Netns.list()).filter((n) => n.startsWith(`${cname}-`))).toEqual([]);
    expect(existsSync(`/run/netns-cluster/${cname}`)).toBe(false);
  });
});

describeAsRoot('OpenVPN with source NAT to the node address', () => {
  const s = scratch('on');
  const dir = mkdtempSync(join(tmpdir(), 'nc-ovpn-nat-'));
  const procs: ChildProcess[] = [];
  let cluster: Cluster | undefined;
  cleanUpAfterAll({ scratch: s, dir, procs, cluster: () => cluster });

  it('client traffic leaves the node with the node’s unique address, so the host needs no route to the pools', async () => {
    const [clientNs, host] = await s.make('c', 'h');
    await wire(clientNs, host, 'routed');
    const id = await generateIdentity('nat-client');
    const service = openvpn({ clientFingerprints: [id.fingerprint], nat: true, routePools: false, pool: { base: '10.9.0.0' } });
    cluster = await createCluster({ name: `${s.prefix}n`, nodes: 1, vip: '192.0.2.1/24', hostNetns: host.name, uplink: { routed: { via: 'c0' } }, service });
    await cluster.start();
    const node = cluster.nodes[0];
    // A TCP server on the host's address on the node network (the nodes' gateway), reporting who connected.
    const server = spawn('ip', ['netns', 'exec', host.name!, process.execPath, '-e', `require('net').createServer(c=>{console.log(c.remoteAddress);c.on('error',()=>{}).end('x'.repeat(4096))}).listen(7001,'${HOST_ADDRESS}',()=>console.log('ready'))`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    procs.push(server);
    await once(server.stdout!, 'data');
    const seen: string[] = [];
    server.stdout!.on('data', (d) => seen.push(...String(d).trim().split('\n')));
    const path = join(dir, 'c.conf');
    await writeSecretFile(path, renderClientConfig({ remote: '192.0.2.1', identity: id, serverFingerprint: service.serverFingerprint()!, bind: { address: '203.0.113.10' }, dev: 'tun-nat' }));
    procs.push(spawnInNetns(clientNs, ['openvpn', '--config', path], { stdio: 'ignore' }));
    const addr = () => {
      try {
        return ipj<{ addr_info: { family: string; local: string }[] }[]>('-n', clientNs.name!, 'addr', 'show', 'dev', 'tun-nat')[0]?.addr_info.find((a) => a.family === 'inet')?.local;
      } catch {
        return undefined;
      }
    };
    await until('tunnel up', () => addr() !== undefined, 15_000);
    sh('ip', ['-n', clientNs.name!, 'route', 'replace', `${HOST_ADDRESS}/32`, 'dev', 'tun-nat']);
    const got = sh('ip', ['netns', 'exec', clientNs.name!, process.execPath, '-e',
      `const c=require('net').connect({host:'${HOST_ADDRESS}',port:7001,localAddress:'${addr()}'});let n=0;c.on('data',d=>n+=d.length);c.on('end',()=>{console.log(n);process.exit()});c.on('error',()=>{console.log(-1);process.exit()});setTimeout(()=>{console.log(-2);process.exit()},4000)`]);
    expect(Number(got.trim())).toBe(4096);
    await until('the server saw the connection', () => seen.length > 0, 2000);
    expect(seen[0].replace('::ffff:', '')).toBe(node.address); // not the pool address, not the VIP
  });
});
