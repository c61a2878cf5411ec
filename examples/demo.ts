/**
 * The quick-start demo (for now: the native core). Builds the topology of shared/DESIGN.md inside
 * namespaces it creates — a client, a host with a bridge, N nodes that all carry the same VIP and
 * each a unique node address — shows what the kernel now holds, proves it carries traffic (ping
 * from the client to every node, run with iproute2 as a user would check it), and tears it all
 * down. It touches nothing outside its own namespaces.
 *
 *   sudo npm run demo -- --nodes 8
 */
import { execFileSync } from 'node:child_process';
import { Batch, Netns } from '../lib/index.js';

const nodes = Number(process.argv[process.argv.indexOf('--nodes') + 1]) || 4;
const prefix = `demo${process.pid % 10000}`;
const VIP = '192.0.2.1/24';
const mac = (k: number) => `02:00:00:00:${((k >> 8) & 0xff).toString(16).padStart(2, '0')}:${(k & 0xff).toString(16).padStart(2, '0')}`;
const nodeAddress = (k: number) => `198.18.${(k + 1) >> 8}.${(k + 1) & 0xff}`;
const ms = (t: number) => `${(performance.now() - t).toFixed(1)} ms`;

async function main(): Promise<void> {
  const names = [`${prefix}c`, `${prefix}h`, ...Array.from({ length: nodes }, (_, k) => `${prefix}n${k}`)];
  const cleanup = async () => {
    await Netns.deleteMany((await Netns.list()).filter((n) => n.startsWith(prefix)));
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));

  console.log(`Building: 1 client, 1 host (bridge), ${nodes} nodes sharing VIP ${VIP} …`);
  let t = performance.now();
  const [client, host, ...members] = await Netns.createMany(names);
  const b = new Batch();
  b.in(host).addBridge({ name: 'br0', up: true });
  b.in(host).addVeth({ name: 'up0', master: 'br0', up: true, peer: { name: 'eth0', netns: client, up: true } });
  b.in(client).setLink('lo', { up: true }).addAddress('eth0', '192.0.2.100/24').addAddress('eth0', '198.18.255.254/16');
  members.forEach((node, k) => {
    b.in(host).addVeth({ name: `v${k}`, master: 'br0', up: true, peer: { name: 'eth0', netns: node, up: true, mac: mac(k + 1) } });
    b.in(node).setLink('lo', { up: true }).addAddress('eth0', VIP).addAddress('eth0', `${nodeAddress(k)}/16`);
  });
  const requests = b.size;
  await b.commit();
  console.log(`  built ${names.length} namespaces and ran ${requests} kernel requests in ${ms(t)} (one batch, no ip/brctl processes)\n`);

  console.log('node  netns            ifname  mac                node address   VIP');
  for (const [k, node] of members.entries()) {
    const eth0 = await node.getLink('eth0');
    const addrs = (await node.listAddresses({ family: 4, link: 'eth0' })).map((a) => a.cidr);
    console.log(
      `${String(k).padEnd(5)} ${node.name!.padEnd(16)} ${eth0.name.padEnd(7)} ${eth0.mac!.padEnd(18)} ${addrs[1].padEnd(14)} ${addrs[0]}`,
    );
  }
  const ports = (await host.listLinks()).filter((l) => l.master !== undefined).length;
  console.log(`\nbridge br0 in ${host.name} has ${ports} ports (uplink + ${nodes} nodes)`);

  console.log('\nTraffic: ping from the client to every node’s unique address');
  for (let k = 0; k < nodes; k++) {
    const out = execFileSync('ip', ['netns', 'exec', client.name!, 'ping', '-c1', '-W2', nodeAddress(k)], { encoding: 'utf8' });
    const rtt = /time=([\d.]+ ms)/.exec(out)?.[1] ?? '?';
    console.log(`  node ${k} (${nodeAddress(k)}): reply in ${rtt}`);
  }
  console.log(
    '\n(Every node holds the VIP: sharing it among them by a stateless hash is the cluster data plane, next on the roadmap.)',
  );

  t = performance.now();
  await Promise.all([client, host, ...members].map((n) => n.close()));
  await cleanup();
  console.log(`\nTorn down in ${ms(t)}; namespaces left with prefix ${prefix}: ${(await Netns.list()).filter((n) => n.startsWith(prefix)).length}`);
}

main().catch(async (err) => {
  console.error(err);
  await Netns.deleteMany((await Netns.list()).filter((n) => n.startsWith(prefix))).catch(() => {});
  process.exit(1);
});
