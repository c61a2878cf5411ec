/**
 * The floor (benchmarks/floor.c): compiled here, run as one long-lived child process, fed the
 * cluster's own plan (planCluster, the same function createCluster builds from) in a line format
 * it parses without a JSON library. Every nft expression and set is passed through as numbers and
 * hex, so floor.c sends what the library's nft.batch would send for the same plan.
 * @module
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import type { ClusterPlan } from '../lib/cluster/plan.js';
import type { NftCommand, NftExpr } from '../lib/kernel/binding.js';
import { packageRoot, tmpDir } from './common.js';

const FAMILY: Record<string, number> = { inet: 1, ip: 2, arp: 3, netdev: 5, bridge: 7, ip6: 10 };
const HOOK: Record<string, number> = { prerouting: 0, input: 1, forward: 2, output: 3, postrouting: 4, ingress: 5 };
/** The netdev family numbers its hooks apart (NF_NETDEV_INGRESS, NF_NETDEV_EGRESS). */
const NETDEV_HOOK: Record<string, number> = { ingress: 0, egress: 1 };
const META: Record<string, number> = {
  len: 0, protocol: 1, priority: 2, mark: 3, iif: 4, oif: 5, iifname: 6, oifname: 7, iiftype: 8, oiftype: 9, skuid: 10, skgid: 11,
  nftrace: 12, nfproto: 15, l4proto: 16, ibrname: 17, obrname: 18, pkttype: 19, cpu: 20, iifgroup: 21, oifgroup: 22, cgroup: 23,
  prandom: 24, iifkind: 26, oifkind: 27,
};
const BASE: Record<string, number> = { ll: 0, network: 1, transport: 2, inner: 3 };
const CMP: Record<string, number> = { eq: 0, neq: 1, lt: 2, lte: 3, gt: 4, gte: 5 };
const CSUM: Record<string, number> = { none: 0, inet: 1, sctp: 2 };
const VERDICT: Record<string, number> = { accept: 1, drop: 0, continue: -1, break: -2, jump: -3, goto: -4, return: -5 };
/** A verdict as one word: its number, and the chain of a jump or goto. */
const verdictWord = (v: string, chain?: string): string => {
  if (!(v in VERDICT)) throw new Error(`floor: verdict ${v} is not supported`);
  return VERDICT[v] === -3 || VERDICT[v] === -4 ? `${VERDICT[v]}/${word(chain ?? '')}` : `${VERDICT[v]}`;
};
const SETFLAG: Record<string, number> = { constant: 0x2, interval: 0x4, map: 0x8, timeout: 0x10, dynamic: 0x20 };
const ORDER: Record<string, number> = { host: 1, big: 2 };

/** NftData as the bytes the addon puts in a register (see native/nft.cc Bytes). */
function bytes(v: unknown): Buffer {
  if (v instanceof Uint8Array) return Buffer.from(v);
  if (typeof v === 'number') {
    const b = Buffer.alloc(4);
    if (os.endianness() === 'LE') b.writeUInt32LE(v);
    else b.writeUInt32BE(v);
    return b;
  }
  if (typeof v === 'string') {
    if (v.startsWith('0x')) return Buffer.from(v.slice(2), 'hex');
    if (/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(v)) return Buffer.from(v.replaceAll(':', ''), 'hex');
    if (/^\d+\.\d+\.\d+\.\d+$/.test(v)) return Buffer.from(v.split('.').map(Number));
  }
  throw new Error(`floor: cannot encode ${JSON.stringify(v)}`);
}
const hex = (v: unknown): string => bytes(v).toString('hex');

function word(s: string): string {
  if (!s || /\s/.test(s)) throw new Error(`floor: '${s}' cannot be passed as one word`);
  return s;
}

function expr(e: NftExpr): string {
  const x = e as any;
  switch (e.type) {
    case 'payload':
      return 'dreg' in x
        ? `pl,${BASE[x.base]},${x.offset},${x.len},${x.dreg}`
        : `ps,${BASE[x.base]},${x.offset},${x.len},${x.sreg},${CSUM[x.csumType ?? 'none']},${x.csumOffset ?? 0},${x.csumFlags ?? 0}`;
    case 'meta':
      return 'dreg' in x ? `ml,${META[x.key]},${x.dreg}` : `ms,${META[x.key]},${x.sreg}`;
    case 'cmp':
      return `cmp,${x.sreg},${CMP[x.op ?? 'eq']},${hex(x.data)}`;
    case 'hash':
      if (x.hashType === 'symhash') break;
      return `hash,${x.sreg},${x.len},${x.modulus},${x.seed},${x.offset ?? '-'},${x.dreg}`;
    case 'lookup':
      return `lk,${word(x.set)},${x.sreg},${x.dreg ?? '-'},${x.invert ? 1 : 0}`;
    case 'immediate':
      return 'ifindexOf' in x ? `ifx,${x.dreg},${word(x.ifindexOf)}` : `imm,${x.dreg},${hex(x.data)}`;
    case 'fwd':
      return `fwd,${x.sreg}`;
    case 'verdict':
      return `vd,${verdictWord(x.verdict, x.chain)}`;
    case 'counter':
      return 'ctr';
  }
  throw new Error(`floor: expression ${JSON.stringify(e)} is not supported`);
}

const typeofSpec = (t: any): string => (t === undefined ? '-' : t.expr === 'meta' ? `m:${META[t.key]}` : `p:${t.desc}:${t.field}`);

function command(c: NftCommand): string {
  const x = c as any;
  switch (c.cmd) {
    case 'addTable':
      return `t ${word(x.name)} ${x.comment === undefined ? '-' : word(x.comment)} ${x.exclusive ? 1 : 0}`;
    case 'addChain': {
      const hook = x.hook === undefined ? '-' : c.family === 'netdev' ? NETDEV_HOOK[x.hook] : HOOK[x.hook];
      if (hook === undefined) break;
      return `c ${word(x.table)} ${word(x.name)} ${hook} ${x.priority ?? 0} ${x.policy === undefined ? '-' : x.policy === 'accept' ? 1 : 0} ${x.chainType ?? 'filter'} ${x.device === undefined ? '-' : word(x.device)}`;
    }
    case 'addSet': {
      let flags = (x.flags ?? []).reduce((a: number, f: string) => a | SETFLAG[f], 0);
      if (x.dataType !== undefined) flags |= SETFLAG.map;
      // A verdict map: data type NFT_DATA_VERDICT (0xffffff00) with 4 bytes, as the addon sends it.
      const verdict = x.dataType === 'verdict';
      return [
        's', word(x.table), word(x.name), x.keyType, x.keyLen, flags, verdict ? 0xffffff00 : (x.dataType ?? '-'), verdict ? 4 : (x.dataLen ?? 0),
        ORDER[x.keyByteorder] ?? 0, verdict ? 0 : (ORDER[x.dataByteorder] ?? 0), typeofSpec(x.keyTypeof), verdict ? '-' : typeofSpec(x.dataTypeof),
        x.comment === undefined ? '-' : word(x.comment), x.size ?? 0,
      ].join(' ');
    }
    case 'addElements':
      if (x.elements.length === 0) return '';
      if (x.elements.length > 1024) break;
      // key, key:data or key@verdict (a number, with /chain for jump and goto)
      return [`e ${word(x.table)} ${word(x.set)}`, ...x.elements.map((e: any) => hex(e.key) + ('data' in e ? `:${hex(e.data)}` : 'verdict' in e ? `@${verdictWord(e.verdict, e.chain)}` : ''))].join(' ');
    case 'addRule':
      return [`r ${word(x.table)} ${word(x.chain)} ${x.comment === undefined ? '-' : word(x.comment)}`, ...x.exprs.map(expr)].join(' ');
  }
  throw new Error(`floor: command ${JSON.stringify(c).slice(0, 200)} is not supported`);
}

/** The plan in floor.c's line format. */
export function floorInput(plan: ClusterPlan): string {
  if (plan.hostNetns === undefined) throw new Error('floor: needs a host namespace');
  const L: string[] = [`mark ${word(plan.mark)}`, `host /run/netns/${word(plan.hostNetns)}`];
  for (const l of plan.links) {
    if (l.kind === 'bridge') L.push(`bridge ${word(l.name)} ${l.mac} ${l.up ? 1 : 0} 0 0 0`);
    else if (l.peer?.netns === undefined || l.netns !== undefined || l.master !== plan.bridge) throw new Error(`floor: link ${l.name} is not supported`);
  }
  if (plan.uplink) L.push(`uplink ${word(plan.uplink.ifname)}`);
  for (const l of plan.links) {
    if (l.kind !== 'veth') continue;
    const p = l.peer!;
    L.push(`node ${word(p.netns!)} ${word(p.name)} ${p.mac ?? '-'} ${word(l.name)} ${p.up ? 1 : 0} ${l.up ? 1 : 0}${l.unicastFlood === false ? ' noflood' : ''}`);
  }
  for (const s of plan.sysctls) L.push(`sysctl ${s.netns ?? '-'} ${word(s.key.replaceAll('.', '/'))} ${word(s.value)}`);
  for (const a of plan.addresses) {
    if (a.netns === undefined) throw new Error('floor: host addresses are not supported');
    const [ip, prefix] = a.cidr.split('/');
    L.push(`addr ${a.netns} ${word(a.ifname)} ${ip} ${prefix}`);
  }
  for (const r of plan.routes) {
    if (r.netns === undefined) throw new Error('floor: host routes are not supported');
    const fam = (r.via ?? r.destination).includes(':') ? 6 : 4;
    const [dst, len] = r.destination === 'default' ? ['default', '0'] : r.destination.split('/');
    L.push(`route ${r.netns} ${fam} ${dst} ${len} ${r.via ?? '-'} ${r.dev ?? '-'}`);
  }
  for (const t of plan.tables) {
    L.push(`table ${t.netns ?? '-'} ${FAMILY[t.family]}`);
    for (const c of t.commands) {
      if (c.family !== t.family) throw new Error('floor: one family per table');
      const line = command(c);
      if (line) L.push(line);
    }
  }
  return L.join('\n') + '\n';
}

export type FloorTeardown = 'ns-first' | 'host-first' | 'links-first';
export const FLOOR_TEARDOWNS: FloorTeardown[] = ['ns-first', 'host-first', 'links-first'];

/** The floor process: one for the whole run; `load` a plan, then `setup` / `teardown` it. */
export class Floor {
  #child: ChildProcess;
  #lines: Interface;
  #waiting: ((line: string) => void)[] = [];
  #loaded: string | undefined;

  private constructor(bin: string) {
    // Not detached: it exits when its stdin closes, so it never outlives the harness.
    this.#child = spawn(bin, [], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.#lines = createInterface({ input: this.#child.stdout! });
    this.#lines.on('line', (l) => this.#waiting.shift()?.(l));
  }

  static compile(): Floor {
    const out = join(tmpDir(), 'floor');
    const flags = execFileSync('pkg-config', ['--cflags', '--libs', 'libmnl', 'libnftnl'], { encoding: 'utf8' }).trim().split(/\s+/).filter(Boolean);
    execFileSync('cc', ['-O2', '-Wall', '-Wno-format-truncation', '-o', out, join(packageRoot(), 'benchmarks', 'floor.c'), ...flags, '-lpthread'], { stdio: ['ignore', 'inherit', 'inherit'] });
    return new Floor(out);
  }

  #ask(line: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const onExit = (): void => reject(new Error('the floor process exited'));
      this.#child.once('close', onExit);
      this.#waiting.push((l) => {
        this.#child.off('close', onExit);
        if (l.startsWith('ok')) resolve(l.slice(3));
        else reject(new Error(`floor: ${line}: ${l}`));
      });
      this.#child.stdin!.write(line + '\n');
    });
  }

  /** Loads a plan (written once per key). */
  async load(key: string, plan: ClusterPlan): Promise<void> {
    if (this.#loaded === key) return;
    const file = join(tmpDir(), `floor-${key}.plan`);
    writeFileSync(file, floorInput(plan));
    await this.#ask(`load ${file}`);
    this.#loaded = key;
  }

  /** Builds the loaded plan with `threads` node threads; the floor's own time in µs. */
  async setup(threads: number): Promise<number> {
    return Number(await this.#ask(`setup ${threads}`));
  }

  async teardown(variant: FloorTeardown): Promise<number> {
    return Number(await this.#ask(`teardown ${variant}`));
  }

  stop(): void {
    this.#child.stdin?.end('quit\n');
  }
}
