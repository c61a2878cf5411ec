/**
 * A multi-host BGP sandbox, entirely in namespaces named after one prefix (for the BGP demo and
 * test/bgp.test.ts):
 *
 * ```
 *   client ns (64 sources 203.0.113.10-73) ── c0 ── router ns ── r0 ── host ns h0: cluster (hostNetns, routed uplink eth0)
 *                                                 (BIRD, ECMP)  ── r1 ── host ns h1: cluster …
 *                                                               ── r2 ── host ns h2: cluster …
 * ```
 *
 * The router runs its own BIRD 2 (AS 65000; not part of the library: this file starts it) that
 * learns the VIP from every host's cluster (AS 65001, each with BIRD run by its controller) and
 * installs it into its kernel table as one multipath route (`merge paths on`), hashed on L4
 * (`fib_multipath_hash_policy=1`). Each host's controller is a separate `netns-cluster up`
 * process, so a test can SIGKILL it; each node runs a small UDP responder that answers
 * `node=h<host>n<node> <seq>`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Batch, BirdControl, Netns, destroyCluster, spawnInNetns, type ReplyLine } from '../lib/index.js';

export const VIP = '192.0.2.1';
const SETPRIV = '/usr/bin/setpriv';
/** With `ipv6`: the IPv6 VIP, announced as a /128 over IPv6 sessions. */
export const VIP6 = '2001:db8::1';
export const PORT = 5000;
export const ROUTER_AS = 65000;
export const HOST_AS = 65001;

/** The responder every node runs: answers each UDP datagram `seq N` with `node=<id> N`. */
const RESPONDER = `import dgram from 'node:dgram';
const [id, port, ...hosts] = process.argv.slice(2);
for (const host of hosts) {
  const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  s.on('message', (m, r) => s.send(Buffer.from('node=' + id + ' ' + String(m).slice(4)), r.port, r.address));
  s.bind(Number(port), host);
}
process.on('SIGTERM', () => process.exit(0));
`;

/**
 * The client side: every flow (a source address and port) sends datagram \`seq N\` every
 * 1000/rate ms for durationMs (or one datagram per try in probe mode, up to 3 tries), and records
 * when each was sent and who answered. Prints per flow [[sentAtMs, answeredBy | null], …].
 */
const FLOWS = `import dgram from 'node:dgram';
const { flows, port, rate, durationMs, probe } = JSON.parse(process.argv[2]);
const t0 = performance.now();
const now = () => Math.round((performance.now() - t0) * 10) / 10;
const out = flows.map(() => []);
const socks = await Promise.all(flows.map((f, i) => new Promise((res) => {
  const s = dgram.createSocket(f.from.includes(':') ? 'udp6' : 'udp4');
  s.on('message', (m) => { const [who, seq] = String(m).slice(5).split(' '); const e = out[i][Number(seq)]; if (e && e[1] === null) e[1] = who; });
  s.bind({ address: f.from, port: f.port }, () => res(s));
})));
const send = (i) => { const seq = out[i].length; out[i].push([now(), null]); socks[i].send('seq ' + seq, port, flows[i].to); };
if (probe) {
  for (let round = 0; round < probe; round++) {
    for (let i = 0; i < flows.length; i++) send(i);
    await new Promise((r) => setTimeout(r, 300));
  }
} else {
  const every = 1000 / rate;
  let next = 0;
  while (now() < durationMs) {
    for (let i = 0; i < flows.length; i++) send(i);
    next += every;
    await new Promise((r) => setTimeout(r, Math.max(0, next - now())));
  }
}
// Late answers still count: wait until every datagram is answered, or 2 s (a stalled event loop
// must not close the sockets before it has read what is waiting in them).
for (let waited = 0; waited < 2000 && out.some((f) => f.some((e) => e[1] === null)); waited += 50) await new Promise((r) => setTimeout(r, 50));
for (const s of socks) s.close();
console.log(JSON.stringify(out));
`;

export interface SandboxOptions {
  /** Prefix of every namespace, cluster and file (≤ 8 characters: cluster names are `<prefix><host>`). */
  prefix: string;
  hosts: number;
  nodes: number;
  /** The compiled CLI (dist/lib/cli/main.js). */
  cli: string;
  holdTime?: number;
  keepalive?: number;
  /** BFD on both sides (interval ms, multiplier 3). */
  bfdIntervalMs?: number;
  /** Number of client flows (each from its own source address). Default 64. */
  flows?: number;
  /** The AS host i's cluster says the router has (default the router's: a wrong one tests the refusal). */
  peerAs?: (host: number) => number;
  /** Dual stack: an IPv6 VIP too, IPv6 sessions and ECMP, and as many IPv6 client flows. */
  ipv6?: boolean;
}

export interface SandboxHost {
  index: number;
  /** Host namespace. */
  netns: string;
  /** The cluster's name. */
  cluster: string;
  address: string;
  routerAddress: string;
  config: string;
  controller?: ChildProcess;
  /** What the controller printed (stdout and stderr). */
  output: string[];
}

export type FlowRecord = [number, string | null][];
/** A client flow: its source address and port, and the VIP it goes to. */
export interface Flow {
  from: string;
  port: number;
  to: string;
}

export class BgpSandbox {
  readonly router: string;
  readonly client: string;
  readonly hosts: SandboxHost[] = [];
  readonly dir: string;
  readonly flows: Flow[];
  routerBird: ChildProcess | undefined;
  readonly routerLog: string[] = [];
  #control: BirdControl | undefined;

  constructor(readonly o: SandboxOptions) {
    this.router = `${o.prefix}-r`;
    this.client = `${o.prefix}-c`;
    this.dir = mkdtempSync(join(tmpdir(), `${o.prefix}-`));
    const n = o.flows ?? 64;
    this.flows = [
      ...Array.from({ length: n }, (_, i) => ({ from: `203.0.113.${10 + i}`, port: 40000 + i, to: VIP })),
      ...(o.ipv6 ? Array.from({ length: n }, (_, i) => ({ from: `2001:db8:c::${(0x10 + i).toString(16)}`, port: 40000 + i, to: VIP6 })) : []),
    ];
  }

  get routerSocket(): string {
    return join(this.dir, 'router.ctl');
  }

  /** Namespaces, links, addresses, routes, the router's BIRD, and each host's config file. */
  async build(): Promise<void> {
    const o = this.o;
    const names = [this.router, this.client, ...Array.from({ length: o.hosts }, (_, i) => `${o.prefix}-h${i}`)];
    const [router, client, ...hosts] = await Netns.createMany(names);
    try {
      const b = new Batch();
      const v6 = o.ipv6 === true;
      // No duplicate address detection: tentative addresses would delay the first packets.
      if (v6) for (const ns of [router, client, ...hosts]) b.in(ns).writeSysctl('net.ipv6.conf.default.accept_dad', 0);
      b.in(router).setLink('lo', { up: true }).writeSysctl('net.ipv4.ip_forward', 1).writeSysctl('net.ipv4.fib_multipath_hash_policy', 1);
      if (v6) b.in(router).writeSysctl('net.ipv6.conf.all.forwarding', 1).writeSysctl('net.ipv6.fib_multipath_hash_policy', 1);
      b.in(router).addVeth({ name: 'c0', up: true, peer: { name: 'eth0', netns: client, up: true } });
      b.in(router).addAddress('c0', '203.0.113.1/24');
      const c = b.in(client).setLink('lo', { up: true });
      for (const f of this.flows) {
        if (f.from.includes(':')) c.addAddress('eth0', `${f.from}/64`, { nodad: true });
        else c.addAddress('eth0', `${f.from}/24`);
      }
      c.addRoute({ destination: 'default', via: '203.0.113.1' });
      if (v6) {
        b.in(router).addAddress('c0', '2001:db8:c::1/64', { nodad: true });
        c.addRoute({ destination: '::/0', via: '2001:db8:c::1' });
      }
      hosts.forEach((h, i) => {
        b.in(router).addVeth({ name: `r${i}`, up: true, peer: { name: 'eth0', netns: h, up: true } });
        b.in(router).addAddress(`r${i}`, `10.200.${i}.1/24`);
        b.in(h).setLink('lo', { up: true }).addAddress('eth0', `10.200.${i}.2/24`).addRoute({ destination: 'default', via: `10.200.${i}.1` });
        if (v6) {
          b.in(router).addAddress(`r${i}`, `fd00:200:${i}::1/64`, { nodad: true });
          b.in(h).addAddress('eth0', `fd00:200:${i}::2/64`, { nodad: true }).addRoute({ destination: '::/0', via: `fd00:200:${i}::1` });
        }
      });
      await b.commit();
    } finally {
      await Promise.all([router, client, ...hosts].map((h) => h.close()));
    }
    for (let i = 0; i < o.hosts; i++) {
      const host: SandboxHost = {
        index: i,
        netns: `${o.prefix}-h${i}`,
        cluster: `${o.prefix}${i}`,
        address: `10.200.${i}.2`,
        routerAddress: `10.200.${i}.1`,
        config: join(this.dir, `host${i}.json`),
        output: [],
      };
      this.hosts.push(host);
      writeFileSync(join(this.dir, 'responder.mjs'), RESPONDER);
      writeFileSync(host.config, JSON.stringify(this.clusterSpec(i), null, 2));
    }
    writeFileSync(join(this.dir, 'flows.mjs'), FLOWS);
    await this.startRouter();
  }

  /** Host i's cluster config (what its `netns-cluster up` reads). */
  clusterSpec(i: number): Record<string, unknown> {
    const o = this.o;
    return {
      name: `${o.prefix}${i}`,
      nodes: o.nodes,
      vip: o.ipv6 ? [`${VIP}/24`, `${VIP6}/64`] : `${VIP}/24`,
      ports: [{ protocol: 'udp', port: PORT }],
      hostNetns: `${o.prefix}-h${i}`,
      uplink: { routed: { via: 'eth0' } },
      service: { name: 'responder', command: [process.execPath, join(this.dir, 'responder.mjs'), `h${i}n{node}`, String(PORT), VIP, ...(o.ipv6 ? [VIP6] : [])], restart: { initialDelayMs: 200 } },
      announce: {
        bgp: {
          localAs: HOST_AS,
          routerId: `10.200.${i}.2`,
          peers: [{ address: `10.200.${i}.1`, as: o.peerAs?.(i) ?? ROUTER_AS }, ...(o.ipv6 ? [{ address: `fd00:200:${i}::1`, as: o.peerAs?.(i) ?? ROUTER_AS }] : [])],
          holdTime: o.holdTime ?? 9,
          keepalive: o.keepalive ?? 3,
          ...(o.bfdIntervalMs ? { bfd: { intervalMs: o.bfdIntervalMs, multiplier: 3 } } : {}),
        },
      },
    };
  }

  routerConfig(): string {
    const o = this.o;
    const L = [
      'log stderr all;',
      'router id 10.200.255.1;',
      'timeformat protocol iso long;',
      'protocol device { scan time 10; }',
      '# ECMP: every host\'s path to the VIP in one multipath kernel route.',
      'protocol kernel { ipv4 { import none; export all; }; merge paths on limit 16; }',
      ...(o.ipv6 ? ['protocol kernel { ipv6 { import none; export all; }; merge paths on limit 16; }'] : []),
    ];
    if (o.bfdIntervalMs) L.push(`protocol bfd { interface "*" { interval ${o.bfdIntervalMs} ms; multiplier 3; }; }`);
    for (let i = 0; i < o.hosts; i++) {
      L.push(
        `protocol bgp h${i} { local as ${ROUTER_AS}; neighbor 10.200.${i}.2 as ${HOST_AS}; hold time ${o.holdTime ?? 9}; keepalive time ${o.keepalive ?? 3}; ` +
          `connect delay time 1; connect retry time 2; error wait time 1, 5; graceful restart off; ${o.bfdIntervalMs ? 'bfd on; ' : ''}` +
          'ipv4 { import all; export none; }; }',
      );
      if (o.ipv6)
        L.push(
          `protocol bgp h${i}v6 { local as ${ROUTER_AS}; neighbor fd00:200:${i}::2 as ${HOST_AS}; hold time ${o.holdTime ?? 9}; keepalive time ${o.keepalive ?? 3}; ` +
            `connect delay time 1; connect retry time 2; error wait time 1, 5; graceful restart off; ${o.bfdIntervalMs ? 'bfd on; ' : ''}` +
            'ipv6 { import all; export none; }; }',
        );
    }
    return `${L.join('\n')}\n`;
  }

  async startRouter(): Promise<void> {
    const conf = join(this.dir, 'router.conf');
    writeFileSync(conf, this.routerConfig());
    const p = spawnInNetns(this.router, ['bird', '-f', '-c', conf, '-s', this.routerSocket], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.routerBird = p;
    for (const s of [p.stdout!, p.stderr!]) s.on('data', (d: Buffer) => this.routerLog.push(...String(d).split('\n').filter(Boolean)));
    for (let i = 0; ; i++) {
      try {
        this.#control = await BirdControl.connect(this.routerSocket, 1000);
        return;
      } catch (e) {
        if (i > 200 || p.exitCode !== null) throw new Error(`the router's BIRD did not start: ${this.routerLog.slice(-3).join(' | ') || (e as Error).message}`);
        await sleep(25);
      }
    }
  }

  /** A command to the router's BIRD. */
  routerCommand(cmd: string): Promise<ReplyLine[]> {
    return this.#control!.command(cmd);
  }

  /** The next hops (host addresses) of the router's best VIP route(s), from its BIRD (`family` 6: the IPv6 VIP's). */
  async routerPaths(family: 4 | 6 = 4): Promise<string[]> {
    const reply = await this.routerCommand(family === 4 ? `show route ${VIP}/32` : `show route ${VIP6}/128`).catch(() => [] as ReplyLine[]);
    const out = new Set<string>();
    for (const l of reply) for (const m of l.text.matchAll(/via ([0-9a-f.:]+)/g)) out.add(m[1]);
    return [...out].sort();
  }

  /** Starts host i's controller (`netns-cluster up`); resolves once it says ready. */
  async startController(i: number, timeoutMs = 30_000): Promise<void> {
    const h = this.hosts[i];
    // With a parent-death signal (util-linux's setpriv execs the controller in place, same pid): a
    // test or demo that dies takes its controllers, and so their BIRDs and services, with it.
    const argv = [process.execPath, this.o.cli, 'up', h.config];
    const p = existsSync(SETPRIV)
      ? spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', ...argv], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    h.controller = p;
    h.output = [];
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`host ${i}'s controller was not ready within ${timeoutMs} ms: ${h.output.slice(-5).join(' | ')}`)), timeoutMs);
      const onLine = (d: Buffer) => {
        for (const line of String(d).split('\n').filter(Boolean)) {
          h.output.push(line);
          if (line.includes('ready: cluster')) {
            clearTimeout(timer);
            resolve();
          }
        }
      };
      p.stdout!.on('data', onLine);
      p.stderr!.on('data', onLine);
      p.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`host ${i}'s controller exited (${code}): ${h.output.slice(-5).join(' | ')}`));
      });
    });
  }

  /** Waits until the router's VIP route goes via exactly `expected` host addresses. */
  async waitPaths(expected: string[], timeoutMs = 30_000, family: 4 | 6 = 4): Promise<number> {
    const t0 = performance.now();
    const want = [...expected].sort().join(',');
    for (;;) {
      if ((await this.routerPaths(family)).join(',') === want) return performance.now() - t0;
      if (performance.now() - t0 > timeoutMs) throw new Error(`the router's VIP paths are ${(await this.routerPaths(family)).join(',') || 'none'}, expected ${want || 'none'} (after ${timeoutMs} ms)`);
      await sleep(20);
    }
  }

  /** Runs the client flows (see FLOWS) and returns, per flow, [sentAtMs, answeredBy] per datagram. */
  async traffic(o: { probe?: number; rate?: number; durationMs?: number; flows?: Flow[] }): Promise<FlowRecord[]> {
    const arg = JSON.stringify({ flows: o.flows ?? this.flows, port: PORT, rate: o.rate ?? 20, durationMs: o.durationMs ?? 1000, probe: o.probe });
    const p = spawnInNetns(this.client, [process.execPath, join(this.dir, 'flows.mjs'), arg], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout!.on('data', (d) => (out += d));
    p.stderr!.on('data', (d) => (err += d));
    const [code] = (await once(p, 'exit')) as [number | null];
    if (code !== 0) throw new Error(`the client flows exited with ${code}: ${err.slice(0, 500)}`);
    return JSON.parse(out) as FlowRecord[];
  }

  /** Stops every controller (SIGTERM, then SIGKILL), the router's BIRD, and removes every namespace and cluster. */
  async cleanup(): Promise<void> {
    this.#control?.close();
    await Promise.all(
      this.hosts.map(async (h) => {
        const p = h.controller;
        if (!p || p.exitCode !== null || p.signalCode !== null) return;
        p.kill('SIGTERM');
        const t = setTimeout(() => p.kill('SIGKILL'), 15_000);
        await once(p, 'exit');
        clearTimeout(t);
      }),
    );
    for (const h of this.hosts) await destroyCluster(h.cluster, { hostNetns: h.netns }).catch(() => {});
    const r = this.routerBird;
    if (r && r.exitCode === null && r.signalCode === null) {
      r.kill('SIGTERM');
      await once(r, 'exit');
    }
    const left = (await Netns.list()).filter((n) => n.startsWith(this.o.prefix));
    await Netns.deleteMany(left);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Who answered each flow (its last answer), per flow. */
export function owners(records: FlowRecord[]): (string | null)[] {
  return records.map((r) => [...r].reverse().find((e) => e[1] !== null)?.[1] ?? null);
}
