// The iptables backend (libiptc): the spec's rules for it, the kernels' hashes, the addon's libiptc
// ops in a namespace, and (through test/iptables-suite.ts) whole xt_cluster clusters with real
// traffic. The CLUSTERIP variant: test/iptables-clusterip.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binding, type IptListedRule, type NativeOp } from '../lib/kernel/binding.js';
import { resolveSpec, validateSpec, type ClusterSpec } from '../lib/cluster/spec.js';
import { bucketOf, jhash, jhashWords } from '../lib/rules/jhash.js';
import { clusteripNodeOf, iptablesSupport, nodeMask, xtClusterNodeOf } from '../lib/rules/iptables.js';
import { describeAsRoot, isRoot, runCli, scratch } from './helpers.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { iptablesSuite } from './iptables-suite.js';
import type { Netns } from '../lib/index.js';

const submit = async (ops: NativeOp[]) => {
  const [r] = await binding().submit(ops, true);
  if (r instanceof Error) throw r;
  return r;
};

const base: ClusterSpec = { name: 'ipt', nodes: 4, vip: '192.0.2.1/24', uplink: { bridge: 'eth1' }, backend: 'iptables' };
const problems = (spec: object) => validateSpec(spec).problems.map((p) => `${p.field}: ${p.message}`);

describe("backend 'iptables' in the spec", () => {
  it('defaults: nftables; with iptables, flood mode, variant auto and 16 buckets (32 with xt_cluster)', () => {
    const nft = resolveSpec({ ...base, backend: undefined });
    expect(nft).toMatchObject({ backend: 'nftables', mode: 'steer', buckets: 64 });
    expect(nft.iptables).toBeUndefined();
    expect(resolveSpec(base)).toMatchObject({ backend: 'iptables', mode: 'flood', iptables: { variant: 'auto' }, buckets: 16 });
    expect(resolveSpec({ ...base, iptables: { variant: 'xt_cluster' } })).toMatchObject({ buckets: 32 });
    expect(resolveSpec({ ...base, iptables: { variant: 'clusterip' }, hash: 'sourceip-sourceport', ports: [{ protocol: 'udp', port: 1 }] }).hash).toBe('sourceip-sourceport');
  });

  it('refuses steer, IPv6, too many buckets, port hashes with xt_cluster, and iptables options without the backend, each with a reason', () => {
    expect(problems({ ...base, mode: 'steer' })).toEqual([expect.stringMatching(/^mode: 'steer' needs the hash on the bridge.*mode 'flood'/)]);
    expect(problems({ ...base, vip: ['192.0.2.1/24', '2001:db8::1/64'] })).toEqual([expect.stringMatching(/^vip\[1\]: 2001:db8::1 is IPv6: backend 'iptables' is IPv4 only \(CLUSTERIP cannot do IPv6.*backend 'nftables'/)]);
    expect(problems({ ...base, vip: '2001:db8::1/64' })[0]).toMatch(/^vip: .*IPv4 only/);
    expect(problems({ ...base, buckets: 17 })).toEqual([expect.stringMatching(/^buckets: must be an integer from nodes \(4\) to 16 \(CLUSTERIP has 16 node numbers; iptables.variant 'xt_cluster' allows 32\)/)]);
    expect(problems({ ...base, iptables: { variant: 'xt_cluster' }, buckets: 33 })[0]).toMatch(/^buckets: .* to 32 \(xt_cluster's node mask has 32 bits\)/);
    expect(problems({ ...base, nodes: 20 })).toEqual([expect.stringMatching(/^nodes: 20 nodes need 20 buckets, but backend 'iptables' has at most 16/)]);
    expect(problems({ ...base, iptables: { variant: 'xt_cluster' }, hash: 'sourceip-sourceport', ports: [{ protocol: 'udp', port: 1 }] })).toEqual([
      expect.stringMatching(/^hash: 'sourceip-sourceport': the xt_cluster match hashes the source address only/),
    ]);
    expect(problems({ ...base, backend: 'nftables', iptables: { variant: 'clusterip' } })).toEqual([expect.stringMatching(/^iptables: applies only with backend 'iptables'/)]);
    expect(problems({ ...base, iptables: { variant: 'ipvs' } })[0]).toMatch(/^iptables.variant: must be one of auto, clusterip, xt_cluster, got 'ipvs'/);
    expect(problems({ ...base, backend: 'pf' })[0]).toMatch(/^backend: must be 'nftables' or 'iptables', got 'pf'/);
  });
});

describe("the CLI with backend 'iptables'", () => {
  it("check names the backend; plan prints each node's rules as iptables-save would", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ipt-cli-'));
    try {
      const file = join(dir, 'c.yaml');
      writeFileSync(file, "name: demo\nnodes: 2\nvip: 192.0.2.1/24\nuplink: { bridge: eth1 }\nbackend: iptables\niptables: { variant: xt_cluster }\nports: [{ protocol: udp, port: 1194 }]\n");
      const check = await runCli('check', file);
      expect(check.stdout).toContain('32 buckets, backend iptables (xt_cluster), uplink bridge eth1');
      const plan = await runCli('plan', file);
      expect(plan.code).toBe(0);
      expect(plan.stdout).toContain('iptables rules (iptables (xt_cluster), legacy iptables through libiptc):');
      expect(plan.stdout).toContain('-A PREROUTING -d 192.0.2.1/32 -m comment --comment "netns-cluster:demo" -j netns-cluster');
      expect(plan.stdout).toMatch(/-A netns-cluster -p udp -m udp --dport 1194 -m cluster --cluster-total-nodes 32 --cluster-local-nodemask 0x55555555 .* -j ACCEPT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the kernels' hashes", () => {
  it('jhash_1word/2words/3words are jhash over the words in memory (little-endian)', () => {
    for (const [words, seed] of [[[0xc0000201], 1], [[1, 2], 0xdeadbeef], [[0xffffffff, 0x1234, 0xabcd], 7]] as [number[], number][]) {
      const bytes = Buffer.alloc(words.length * 4);
      words.forEach((w, i) => bytes.writeUInt32LE(w, i * 4));
      expect(jhashWords(words, seed)).toBe(jhash(bytes, seed));
    }
  });

  it("xt_cluster's bucket is nft's `jhash ip saddr mod N seed S`; CLUSTERIP's node numbers run 1…N and use the ports", () => {
    const addrs = Array.from({ length: 200 }, (_, i) => `10.${i >> 4}.${i & 15}.${(i * 7) & 255}`);
    for (const a of addrs) expect(xtClusterNodeOf({ address: a }, 32, 12345)).toBe(bucketOf('sourceip', { address: a }, 32, 12345));
    const nodes = new Set(addrs.map((a) => clusteripNodeOf('sourceip', { address: a }, 16, 99)));
    expect([...nodes].sort((a, b) => a - b)).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
    const byPort = new Set(Array.from({ length: 64 }, (_, p) => clusteripNodeOf('sourceip-sourceport', { address: '192.0.2.10', port: 30000 + p }, 16, 99)));
    expect(byPort.size).toBeGreaterThan(8);
    expect(() => clusteripNodeOf('sourceip', { address: '2001:db8::1' }, 16, 1)).toThrow(/IPv4/);
    expect(nodeMask([0, 3, 31])).toBe(0x80000009);
  });
});

describe('libiptc ops: bad requests are refused before anything runs', () => {
  const op = (o: object) => () => binding().submit([{ type: 'iptc.commit', table: 'mangle', chain: 'netns-cluster', mark: 'm', ...o } as NativeOp], true);
  it('names the field and what to fix', () => {
    expect(op({ chain: 'x'.repeat(40) })).toThrow(/^chain: chain must be 1..28 bytes/);
    expect(op({ mark: '' })).toThrow(/^mark: mark must be 1..255 bytes/);
    expect(op({ rules: [{ dport: 80, target: 'ACCEPT' }] })).toThrow(/^rules\[0\]: dport needs proto 'tcp' or 'udp'/);
    expect(op({ rules: [{ dst: '2001:db8::1', target: 'ACCEPT' }] })).toThrow(/not an IPv4 address/);
    expect(op({ rules: [{ target: { clusterip: { clustermac: '02:00:00:00:00:01', totalNodes: 2, localNodes: [1], hashMode: 'sourceip', hashInit: 0 } } }] })).toThrow(/clustermac must be a multicast MAC/);
    expect(op({ rules: [{ dst: '192.0.2.1', in: 'eth0', target: { clusterip: { clustermac: '01:00:5e:00:00:20', totalNodes: 2, localNodes: [3], hashMode: 'sourceip', hashInit: 0 } } }] })).toThrow(/localNodes must be node numbers 1..totalNodes/);
    expect(op({ rules: [{ cluster: { totalNodes: 33, nodeMask: 1, seed: 0 }, target: 'ACCEPT' }] })).toThrow(/totalNodes must be an integer 0..32/);
    expect(() => binding().submit([{ type: 'clusterip.nodes', vip: 'x', nodes: [1] } as NativeOp], true)).toThrow(/^vip: 'x' is not an IPv4 address/);
    expect(() => binding().submit([{ type: 'clusterip.nodes', vip: '192.0.2.1', nodes: [0] } as NativeOp], true)).toThrow(/^nodes: node numbers are 1..16/);
  });
});

describeAsRoot('libiptc in a namespace', () => {
  const s = scratch('ipt');
  let ns: Netns;
  beforeAll(async () => {
    [ns] = await s.make('a');
  });
  afterAll(() => s.cleanup());

  const commit = (extra: Partial<Extract<NativeOp, { type: 'iptc.commit' }>> = {}) =>
    submit([{ type: 'iptc.commit', netns: ns.handle, table: 'mangle', chain: 'netns-cluster', mark: 'netns-cluster:x', ...extra } as NativeOp]);
  const list = async (chain = 'netns-cluster') => (await submit([{ type: 'iptc.list', netns: ns.handle, table: 'mangle', chain }])) as IptListedRule[] | null;

  it('commits a marked chain with a cluster match, lists it, replaces and removes it; other rules stay', async () => {
    const rules = (mask: number) => [
      { proto: 'udp' as const, dport: 1194, cluster: { totalNodes: 4, nodeMask: mask, seed: 7 }, target: 'ACCEPT' },
      { target: 'DROP' },
    ];
    const hooks = [{ chain: 'PREROUTING', rule: { dst: '192.0.2.1' } }];
    // Someone else's chain and rule in the same table.
    await submit([{ type: 'iptc.commit', netns: ns.handle, table: 'mangle', chain: 'theirs', mark: 'not-ours', rules: [{ target: 'RETURN' }], hooks: [{ chain: 'PREROUTING', rule: {} }] }]);
    await commit({ rules: rules(0b0101), hooks });
    let got = await list();
    expect(got?.map((r) => [r.target, r.comment, r.cluster?.nodeMask])).toEqual([
      ['ACCEPT', 'netns-cluster:x', 0b0101],
      ['DROP', 'netns-cluster:x', undefined],
    ]);
    await commit({ rules: rules(0b1010), hooks });
    got = await list();
    expect(got?.[0].cluster).toEqual({ totalNodes: 4, nodeMask: 0b1010, seed: 7, invert: false });
    expect((await list('PREROUTING'))!.map((r) => r.target)).toEqual(['netns-cluster', 'theirs']);
    await commit({ remove: true });
    expect(await list()).toBeNull();
    expect((await list('PREROUTING'))!.map((r) => [r.target, r.comment])).toEqual([['theirs', 'not-ours']]);
    expect(await list('theirs')).toHaveLength(1);
  });

  it("refuses a chain of that name that is not the cluster's, changing nothing", async () => {
    await expect(commit({ chain: 'theirs', rules: [{ target: 'ACCEPT' }] })).rejects.toMatchObject({ code: 'EEXIST', message: expect.stringMatching(/not this cluster's; nothing was changed/) });
    expect((await list('theirs'))!.map((r) => r.comment)).toEqual(['not-ours']);
  });

  it('a kernel without a match or target: ENOENT naming the module and the alternative', async () => {
    const err = await commit({
      rules: [{ target: 'ACCEPT', cluster: { totalNodes: 2, nodeMask: 1, seed: 0 } }],
      needs: [{ kind: 'match', name: 'cluster', what: 'cluster match (module xt_cluster)' }, { kind: 'match', name: 'nosuchmatch', what: 'nosuch match (module xt_nosuch)' }],
      hint: "use backend 'nftables'",
    }).catch((e: Error) => e);
    // The cluster match exists here: commit it, then ask for a CLUSTERIP this kernel may lack.
    expect(err).toBeUndefined();
    if (iptablesSupport().clusterip) return;
    const e2 = (await submit([
      {
        type: 'iptc.commit',
        netns: ns.handle,
        table: 'filter',
        chain: 'netns-cluster',
        mark: 'netns-cluster:x',
        rules: [{ dst: '192.0.2.1', in: 'lo', target: { clusterip: { clustermac: '01:00:5e:00:00:20', totalNodes: 2, localNodes: [1], hashMode: 'sourceip', hashInit: 1 } } }],
        needs: [{ kind: 'target', name: 'CLUSTERIP', what: 'CLUSTERIP target (module ipt_CLUSTERIP; removed in Linux 6.3)' }],
        hint: "use iptables.variant 'xt_cluster' or backend 'nftables'",
      },
    ]).catch((e: Error) => e)) as Error & { code?: string; syscall?: string };
    expect(e2).toBeInstanceOf(Error);
    expect(e2.code).toBe('ENOENT');
    expect(e2.syscall).toBe('iptc_commit');
    expect(e2.message).toMatch(/the kernel has no CLUSTERIP target \(module ipt_CLUSTERIP; removed in Linux 6.3\); use iptables.variant 'xt_cluster' or backend 'nftables'/);
    expect(await submit([{ type: 'iptc.list', netns: ns.handle, table: 'filter', chain: 'netns-cluster' }])).toBeNull();
  });
});

const support = isRoot ? iptablesSupport() : { xt_cluster: false, clusterip: false };
if (support.xt_cluster || !isRoot) {
  iptablesSuite('xt_cluster', ['sourceip'], 'ix');
} else {
  describe.skip('backend iptables (xt_cluster) (skipped: this kernel has no cluster match, module xt_cluster)', () => {
    it('runs where the kernel has it', () => {});
  });
}
