// The iptables backend (libiptc) with xt_cluster: real namespaces, rules and traffic.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binding, type IptListedRule, type NativeOp } from '../lib/binding.js';
import { describeAsRoot, scratch } from './helpers.js';
import type { Netns } from '../lib/index.js';

const submit = async (ops: NativeOp[]) => {
  const [r] = await binding().submit(ops, true);
  if (r instanceof Error) throw r;
  return r;
};

describeAsRoot('libiptc in a namespace', () => {
  const s = scratch('ipt');
  let ns: Netns;
  beforeAll(async () => {
    [ns] = await s.make('a');
  });
  afterAll(() => s.cleanup());

  const commit = (extra: Partial<Extract<NativeOp, { type: 'iptc.commit' }>> = {}) =>
    submit([{ type: 'iptc.commit', netns: ns.handle, table: 'mangle', chain: 'netns-cluster', mark: 'netns-cluster:x', ...extra } as NativeOp]);
  const list = async () => (await submit([{ type: 'iptc.list', netns: ns.handle, table: 'mangle', chain: 'netns-cluster' }])) as IptListedRule[] | null;

  it('commits a marked chain with a cluster match, lists it, replaces and removes it', async () => {
    const rules = (mask: number) => [
      { proto: 'udp' as const, dport: 1194, cluster: { totalNodes: 4, nodeMask: mask, seed: 7 }, target: 'ACCEPT' },
      { target: 'DROP' },
    ];
    await commit({ rules: rules(0b0101), hooks: [{ chain: 'PREROUTING', rule: { dst: '192.0.2.1' } }] });
    let got = await list();
    expect(got?.map((r) => [r.target, r.comment, r.cluster?.nodeMask])).toEqual([
      ['ACCEPT', 'netns-cluster:x', 0b0101],
      ['DROP', 'netns-cluster:x', undefined],
    ]);
    await commit({ rules: rules(0b1010), hooks: [{ chain: 'PREROUTING', rule: { dst: '192.0.2.1' } }] });
    got = await list();
    expect(got?.[0].cluster).toEqual({ totalNodes: 4, nodeMask: 0b1010, seed: 7, invert: false });
    const pre = (await submit([{ type: 'iptc.list', netns: ns.handle, table: 'mangle', chain: 'PREROUTING' }])) as IptListedRule[];
    expect(pre.filter((r) => r.target === 'netns-cluster')).toHaveLength(1);
    await commit({ remove: true });
    expect(await list()).toBeNull();
    const after = (await submit([{ type: 'iptc.list', netns: ns.handle, table: 'mangle', chain: 'PREROUTING' }])) as IptListedRule[];
    expect(after).toEqual([]);
  });
});
