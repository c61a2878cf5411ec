/**
 * The quick-start demo: an OpenVPN cluster in a sandbox, with real clients.
 *
 * Builds, entirely inside namespaces it creates: a client side with M source addresses, a host with
 * a bridge, N nodes each running OpenVPN 2.6 on the same VIP with throwaway keys. Connects M real
 * OpenVPN clients, shows which node serves which client and the traffic through every tunnel,
 * kills one node to show the failover (its clients move to live nodes), lets the supervisor bring
 * it back (its clients come home), and tears everything down. Touches nothing outside its own
 * namespaces; Ctrl-C cleans up.
 *
 *   sudo npm run demo -- --nodes 3 --clients 6 --mode steer
 *   sudo npm run demo -- --pki      (a CA-based PKI made with openssl and the operator's own server.conf)
 *
 * With `--hosts H` (2-4) it runs the multi-host BGP demo instead (examples/bgp-demo.ts): H hosts of
 * `--nodes` nodes each behind a router with ECMP.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Batch,
  Netns,
  checkOpenvpn,
  createCluster,
  destroyCluster,
  execInNetns,
  generateIdentity,
  jhash,
  openvpn,
  reciprocalScale,
  seedFromName,
  renderClientConfig,
  spawnInNetns,
  writeSecretFile,
  type Cluster,
  type Identity,
  type OpenvpnNodeStatus,
} from '../lib/index.js';
import { makePki, pkiClientConfig, type MadePki } from './pki.js';
import { bgpDemo } from './bgp-demo.js';

interface Options {
  nodes: number;
  clients: number;
  mode: 'steer' | 'flood';
  /** A CA-based PKI made with openssl and a server.conf as an operator writes one, instead of throwaway fingerprints. */
  pki: boolean;
  /** Run the multi-host BGP demo with this many hosts. */
  hosts?: number;
}

function parseOptions(argv: string[]): Options {
  const o: Options = { nodes: 3, clients: 6, mode: 'steer', pki: false };
  for (let i = 0; i < argv.length; i++) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === '--help' || flag === '-h') {
      console.log('usage: demo [--nodes N (1-16, default 3)] [--clients M (1-32, default 6)] [--mode steer|flood] [--pki]');
      console.log('  --pki  make a CA, a server certificate, client certificates, a CRL and a tls-crypt key with openssl,');
      console.log('         write a server.conf as an operator would, and run the cluster with openvpn({ config })');
      console.log('       demo --hosts H (2-4) [--nodes N (1-8, default 2)]: the multi-host BGP demo (BIRD, ECMP, drain, crash)');
      process.exit(0);
    } else if (flag === '--pki') {
      o.pki = true;
    } else if (flag === '--hosts') {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 2 || n > 4) usage('--hosts must be 2 to 4');
      o.hosts = n;
      i++;
    } else if (flag === '--nodes' || flag === '--clients') {
      const n = Number(value);
      const max = flag === '--nodes' ? 16 : 32;
      if (!Number.isInteger(n) || n < 1 || n > max) usage(`${flag} must be 1 to ${max}`);
      o[flag === '--nodes' ? 'nodes' : 'clients'] = n;
      i++;
    } else if (flag === '--mode') {
      if (value !== 'steer' && value !== 'flood') usage('--mode must be steer or flood');
      o.mode = value;
      i++;
    } else {
      usage(`unknown option ${flag}`);
    }
  }
  return o;
}

function usage(msg: string): never {
  console.error(`demo: ${msg} (try --help)`);
  process.exit(2);
}

const prefix = `demo${process.pid % 1000}`;

/** The server config --pki writes: what an operator's /etc/openvpn/server/server.conf says. */
const SERVER_CONF = `# An operator's server.conf: a CA-based PKI, a CRL, tls-crypt, pushed routes.
port 1194
proto udp
dev tun
topology subnet
server 10.8.0.0 255.255.255.0
ca ca.crt
cert server.crt
key server.key
dh none
crl-verify crl.pem
tls-crypt tc.key
remote-cert-tls client
data-ciphers AES-256-GCM:AES-128-GCM
keepalive 1 4
explicit-exit-notify 1
push "route 198.18.0.0 255.255.255.0"
verb 3
`;
const VIP = '192.0.2.1';
const say = (s: string) => console.log(s);
const step = (s: string) => process.stdout.write(`  ${s} … `);
const done = (t: number) => console.log(`done (${(performance.now() - t).toFixed(0)} ms)`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface DemoClient {
  index: number;
  source: string;
  dev: string;
  /** Peer-fingerprint mode only (with --pki, the CA signs the client's certificate). */
  identity?: Identity;
  proc?: ChildProcess;
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  if (o.hosts !== undefined) {
    if (o.nodes > 8) usage('--nodes must be 1 to 8 with --hosts');
    const given = process.argv.includes('--nodes');
    return bgpDemo({ hosts: o.hosts, nodes: given ? o.nodes : 2 });
  }
  const name = `${prefix}`;
  const tmp = mkdtempSync(join(tmpdir(), 'netns-cluster-demo-'));
  let cluster: Cluster | undefined;
  const clients: DemoClient[] = [];
  let clientNs: Netns | undefined;
  let host: Netns | undefined;

  const cleanup = async () => {
    for (const c of clients) c.proc?.kill('SIGKILL');
    await cluster?.close().catch(() => {});
    await destroyCluster(name, { hostNetns: `${prefix}-host` }).catch(() => {});
    await Netns.deleteMany([`${prefix}-client`, `${prefix}-host`]).catch(() => {});
    rmSync(tmp, { recursive: true, force: true });
  };
  let interrupted = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      interrupted = true;
      console.log('\ninterrupted: cleaning up');
      void cleanup().then(() => process.exit(130));
    });
  }

  try {
    const { version } = await checkOpenvpn();
    say(`netns-cluster demo: ${o.nodes} OpenVPN ${version.version} nodes behind ${VIP}, ${o.clients} real clients, ${o.mode} mode${o.pki ? ', a PKI and a server.conf of its own' : ''}\n`);

    let t = performance.now();
    step('sandbox: a client namespace and a host namespace, wired by a veth');
    [clientNs, host] = await Netns.createMany([`${prefix}-client`, `${prefix}-host`]);
    // Source addresses to connect from: spread over the nodes by the same hash the kernel uses (the
    // demo picks them; real clients come from wherever they are).
    const sources = pickSources(name, o);
    const wire = new Batch();
    wire.in(clientNs).writeSysctl('net.ipv6.conf.default.accept_dad', 0).setLink('lo', { up: true });
    wire.in(host).addVeth({ name: 'uplink0', up: true, peer: { name: 'eth0', netns: clientNs, up: true } });
    for (const ip of sources) wire.in(clientNs).addAddress('eth0', `${ip}/24`);
    await wire.commit();
    done(t);

    t = performance.now();
    let pki: MadePki | undefined;
    let service: ReturnType<typeof openvpn>;
    if (o.pki) {
      step(`a PKI with openssl: a CA, a server certificate, ${o.clients} client certificates, a CRL, a tls-crypt key; and a server.conf`);
      pki = makePki(tmp, { clients: sources.map((_, i) => `client${i}`) });
      sources.forEach((source, i) => clients.push({ index: i, source, dev: `tun-c${i}` }));
      const conf = join(tmp, 'server.conf');
      writeFileSync(conf, SERVER_CONF);
      done(t);
      say(`  ${conf}: the server config, as an operator writes it (every node runs it; netns-cluster sets local, the pool, management, status and the log per node)`);
      service = openvpn({ config: conf, restart: { initialDelayMs: 8000 } });
    } else {
      step(`throwaway keys: ${o.clients} client certificates (EC P-256, peer-fingerprint mode)`);
      const identities = await Promise.all(sources.map((_, i) => generateIdentity(`client${i}`)));
      sources.forEach((source, i) => clients.push({ index: i, source, dev: `tun-c${i}`, identity: identities[i] }));
      done(t);
      service = openvpn({ clientFingerprints: identities.map((i) => i.fingerprint), keepalive: [1, 4], restart: { initialDelayMs: 8000 } });
    }

    t = performance.now();
    step(`cluster: ${o.nodes} namespaces, veths, bridge, VIP, nftables rules`);
    cluster = await createCluster({
      name,
      nodes: o.nodes,
      vip: `${VIP}/24`,
      ports: [{ protocol: 'udp', port: 1194 }],
      mode: o.mode,
      hostNetns: host.name,
      uplink: { bridge: 'uplink0' },
      service,
    });
    done(t);

    t = performance.now();
    step('OpenVPN: one server per node, started inside its namespace, supervised');
    await cluster.start();
    done(t);

    t = performance.now();
    step(`clients: ${o.clients} OpenVPN clients, each from its own source address`);
    for (const c of clients) {
      const path = join(tmp, `${c.dev}.conf`);
      await writeSecretFile(
        path,
        pki
          ? pkiClientConfig(pki, `client${c.index}`, { remote: VIP, source: c.source, dev: c.dev })
          : renderClientConfig({ remote: VIP, identity: c.identity!, serverFingerprint: service.serverFingerprint()!, bind: { address: c.source }, dev: c.dev }),
      );
      c.proc = spawnInNetns(clientNs, ['openvpn', '--config', path], { stdio: 'ignore' });
    }
    await waitFor(() => allOnPredicted(cluster!, clientNs!, clients), 20_000);
    done(t);

    await showTable(cluster, clientNs, clients, 'Who serves whom');

    const victim = busiestNode(cluster, clients);
    const moving = clients.filter((c) => cluster!.ownerOf({ address: c.source }) === victim);
    say(`\nFailover: killing node ${victim}'s OpenVPN (SIGKILL); it serves ${moving.map((c) => `client${c.index}`).join(', ')}`);
    const downAt = new Promise<number>((resolve) => cluster!.once('node-down', (e) => resolve(e.latencyMs ?? NaN)));
    const pid = (await cluster.status())[victim].pid!;
    const killedAt = performance.now();
    process.kill(pid, 'SIGKILL');
    say(`  its buckets moved to the live nodes ${(await downAt).toFixed(1)} ms after the exit`);
    await waitFor(() => allOnPredicted(cluster!, clientNs!, clients), 30_000);
    say(`  its clients reconnected to live nodes ${((performance.now() - killedAt) / 1000).toFixed(1)} s after the kill (their ping-restart is 4 s)`);
    await showTable(cluster, clientNs, clients, 'After the failover');

    say(`\nFailback: the supervisor restarts node ${victim} (after an 8 s backoff) and it takes its buckets back`);
    // Polled, not awaited as an event: with a slow failover the node may be back already.
    await waitFor(async () => (await cluster!.status())[victim].dataPlane === 'up', 30_000);
    say(`  node ${victim} is up again (restart ${(await cluster.status())[victim].restarts})`);
    await waitFor(() => allOnPredicted(cluster!, clientNs!, clients), 30_000);
    await showTable(cluster, clientNs, clients, 'Back home');

    t = performance.now();
    say('');
    step('teardown: clients, servers, cluster, sandbox');
    for (const c of clients) c.proc?.kill('SIGTERM');
    await cluster.close();
    cluster = undefined;
    await Netns.deleteMany([clientNs, host]);
    done(t);
    const left = (await Netns.list()).filter((n) => n.startsWith(prefix));
    say(`\nNamespaces left behind: ${left.length}. That was netns-cluster.`);
  } catch (err) {
    if (interrupted) return;
    console.error(`\ndemo failed: ${(err as Error).message}`);
    await cleanup();
    process.exit(1);
  }
  rmSync(tmp, { recursive: true, force: true });
}

/** Client addresses from 192.0.2.10 up, at most ceil(clients/nodes) per node by `ownerOf`. */
function pickSources(name: string, o: Options): string[] {
  const quota = Math.ceil(o.clients / o.nodes);
  const taken = new Map<number, number>();
  const out: string[] = [];
  const seed = seedFromName(name);
  for (let i = 10; out.length < o.clients && i < 250; i++) {
    const ip = `192.0.2.${i}`;
    const node = reciprocalScale(jhash(Uint8Array.from([192, 0, 2, i]), seed), 64) % o.nodes; // bucket b starts on node b mod N
    if ((taken.get(node) ?? 0) >= quota) continue;
    taken.set(node, (taken.get(node) ?? 0) + 1);
    out.push(ip);
  }
  return out;
}

async function waitFor(cond: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`gave up after ${ms / 1000} s`);
    await sleep(100);
  }
}

/** The client's tunnel address, read with the library (undefined while it reconnects). */
async function tunnelAddress(clientNs: Netns, dev: string): Promise<string | undefined> {
  const addrs = await clientNs.listAddresses({ family: 4, link: dev }).catch(() => []);
  return addrs[0]?.address;
}

async function allOnPredicted(cluster: Cluster, clientNs: Netns, clients: DemoClient[]): Promise<boolean> {
  for (const c of clients) {
    const a = await tunnelAddress(clientNs, c.dev);
    if (!a || Number(a.split('.')[2]) !== cluster.ownerOf({ address: c.source })) return false;
  }
  return true;
}

function busiestNode(cluster: Cluster, clients: DemoClient[]): number {
  const count = new Map<number, number>();
  for (const c of clients) {
    const k = cluster.ownerOf({ address: c.source });
    count.set(k, (count.get(k) ?? 0) + 1);
  }
  return [...count].sort((a, b) => b[1] - a[1])[0][0];
}

async function showTable(cluster: Cluster, clientNs: Netns, clients: DemoClient[], title: string): Promise<void> {
  const status = await cluster.status();
  say(`\n${title}:`);
  say('  client    source        node (predicted)  tunnel address  ping through the tunnel  bytes in/out at the server');
  for (const c of clients) {
    const addr = (await tunnelAddress(clientNs, c.dev)) ?? '-';
    const node = addr === '-' ? '-' : Number(addr.split('.')[2]);
    const predicted = cluster.ownerOf({ address: c.source });
    const ping = await execInNetns(clientNs, ['ping', '-c1', '-W1', '-I', c.dev, `10.8.${node}.1`], { timeoutMs: 3000 });
    const rtt = /time=([\d.]+ ms)/.exec(ping.stdout)?.[1] ?? 'no reply';
    const server = typeof node === 'number' ? (status[node]?.openvpn as OpenvpnNodeStatus | undefined)?.clients.find((x) => x.realIp === c.source) : undefined;
    const bytes = server ? `${server.bytesReceived}/${server.bytesSent}` : '-';
    say(`  client${String(c.index).padEnd(3)} ${c.source.padEnd(13)} ${String(node).padEnd(4)} (${predicted})${' '.repeat(9)}${addr.padEnd(15)} ${rtt.padEnd(24)} ${bytes}`);
  }
  say(`  nodes: ${status.map((n) => `n${n.index} ${n.state}/${n.dataPlane} ${n.buckets.length} buckets`).join(', ')}`);
}

await main();
