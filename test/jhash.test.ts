// The TypeScript jhash must agree with the kernel's for every hash mode, IPv4 and IPv6. The kernel's
// answer is read with nft itself: a dynamic set records (source, port, jhash … mod 64 seed S) for
// every datagram that arrives.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HASH_MODES, bucketOf, jhash, reciprocalScale, seedFromName, type HashMode } from '../lib/rules/jhash.js';
import type { Netns } from '../lib/index.js';
import { describeAsRoot, scratch } from './helpers.js';

const sender = fileURLToPath(new URL('./fixtures/udp-send.mjs', import.meta.url));
const SEED = 0x5eed1234;
const M = 64;

describe('jhash (pure)', () => {
  it('has the kernel’s edge cases', () => {
    // An empty key returns the initial value untouched, as the kernel's `case 0: return c`.
    expect(jhash(new Uint8Array([]), 0)).toBe(0xdeadbeef);
    expect(reciprocalScale(0xffffffff, 64)).toBe(63);
    expect(reciprocalScale(0, 64)).toBe(0);
  });
  it('derives a stable seed from a name', () => {
    expect(seedFromName('vpn')).toBe(seedFromName('vpn'));
    expect(seedFromName('vpn')).not.toBe(seedFromName('vpn2'));
  });
});

describeAsRoot('jhash agrees with the kernel', () => {
  const s = scratch('jh');
  let a: Netns;
  let b: Netns;
  const sources4 = Array.from({ length: 64 }, (_, i) => `192.0.2.${10 + i}`);
  const sources6 = Array.from({ length: 64 }, (_, i) => `2001:db8::${(0x10 + i).toString(16)}`);

  beforeAll(async () => {
    [a, b] = await s.make('a', 'b');
    await a.addVeth({ name: 'eth0', up: true, peer: { name: 'eth0', netns: b, up: true } });
    await Promise.all([
      ...sources4.map((ip) => a.addAddress('eth0', `${ip}/24`)),
      ...sources6.map((ip) => a.addAddress('eth0', `${ip}/64`, { nodad: true })),
      b.addAddress('eth0', '192.0.2.1/24'),
      b.addAddress('eth0', '2001:db8::1/64', { nodad: true }),
    ]);
  });
  afterAll(() => s.cleanup());

  const nftKey: Record<HashMode, (fam: 'ip' | 'ip6') => string> = {
    sourceip: (f) => `${f} saddr`,
    'sourceip-sourceport': (f) => `${f} saddr . udp sport`,
    'sourceip-sourceport-destport': (f) => `${f} saddr . udp sport . udp dport`,
  };

  for (const family of [4, 6] as const) {
    for (const mode of HASH_MODES) {
      it(`${mode}, IPv${family}: every flow's bucket equals bucketOf()`, () => {
        const f = family === 4 ? 'ip' : 'ip6';
        const ns = `${s.prefix}b`;
        const vip = family === 4 ? '192.0.2.1' : '2001:db8::1';
        const ruleset = [
          `add table ${f} t`,
          `flush table ${f} t`,
          `add set ${f} t seen { type ${family === 4 ? 'ipv4_addr' : 'ipv6_addr'} . inet_service . inet_service . mark; flags dynamic; size 65535; }`,
          `add chain ${f} t pre { type filter hook prerouting priority raw; policy accept; }`,
          `add rule ${f} t pre ${f} daddr ${vip} meta mark set jhash ${nftKey[mode](f)} mod ${M} seed ${SEED}`,
          `add rule ${f} t pre ${f} daddr ${vip} add @seen { ${f} saddr . udp sport . udp dport . meta mark }`,
        ].join('\n');
        execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: ruleset });
        const sources = family === 4 ? sources4 : sources6;
        const flows = sources.map((from, i) => ({ from, port: 20000 + i * 7, to: vip, destPort: 1194 + (i % 3) }));
        execFileSync('ip', ['netns', 'exec', `${s.prefix}a`, process.execPath, sender, JSON.stringify(flows)]);
        const out = JSON.parse(execFileSync('ip', ['netns', 'exec', ns, 'nft', '-j', 'list', 'set', f, 't', 'seen'], { encoding: 'utf8' }));
        const elems: { concat: [string, number, number, number] }[] = out.nftables[1].set.elem.map((e: any) => e.elem?.val ?? e);
        expect(elems).toHaveLength(64);
        const kernel = new Map(elems.map((e) => [`${e.concat[0]}|${e.concat[1]}|${e.concat[2]}`, e.concat[3]]));
        const buckets = new Set<number>();
        for (const fl of flows) {
          const mine = bucketOf(mode, { address: fl.from, port: fl.port, destPort: fl.destPort }, M, SEED);
          expect(kernel.get(`${fl.from}|${fl.port}|${fl.destPort}`), `${fl.from}:${fl.port}`).toBe(mine);
          buckets.add(mine);
        }
        expect(buckets.size).toBeGreaterThan(20); // a real spread, not one bucket
        execFileSync('ip', ['netns', 'exec', ns, 'nft', 'delete', 'table', f, 't']);
      });
    }
  }
});
