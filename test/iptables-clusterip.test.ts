// The iptables backend with the CLUSTERIP target (kernels up to 6.2; removed in 6.3). Whether the
// kernel has it is found by a real attempt: a CLUSTERIP rule committed through libiptc in a
// scratch namespace. Where the target is missing (this project's 6.18 hosts), the suite is skipped
// with that reason; the Linux 6.1 guest lane runs it.
import { describe, expect, it } from 'vitest';
import { binding } from '../lib/kernel/binding.js';
import { HASH_MODES } from '../lib/rules/jhash.js';
import { isRoot, scratch } from './helpers.js';
import { iptablesSuite } from './iptables-suite.js';

/** 'ok', or why CLUSTERIP cannot be used here. */
async function clusteripHere(): Promise<string> {
  if (!isRoot) return 'needs root';
  const s = scratch('ipq');
  try {
    const [ns] = await s.make('p');
    // An eth0 as in the nodes (CLUSTERIP needs the interface to exist).
    await ns.addVeth({ name: 'eth0', up: true, peer: { name: 'p0', up: true } });
    const [r] = await binding().submit(
      [
        {
          type: 'iptc.commit',
          netns: ns.handle,
          table: 'filter',
          chain: 'netns-cluster',
          mark: 'netns-cluster:probe',
          rules: [{ dst: '192.0.2.1', in: 'eth0', target: { clusterip: { clustermac: '01:00:5e:00:00:20', totalNodes: 2, localNodes: [1], hashMode: 'sourceip', hashInit: 1 } } }],
          needs: [{ kind: 'target', name: 'CLUSTERIP', what: 'CLUSTERIP target (module ipt_CLUSTERIP)' }],
          vip: '192.0.2.1',
          nodes: [1, 2],
        },
      ],
      true,
    );
    if (r instanceof Error) {
      if ((r as Error & { code?: string }).code === 'ENOENT') return `this kernel has no CLUSTERIP target (${r.message})`;
      throw r; // anything else is a failure to look at, not a reason to skip
    }
    if (JSON.stringify(r) !== '[1,2]') throw new Error(`/proc/net/ipt_CLUSTERIP/192.0.2.1 says ${JSON.stringify(r)} after +1 +2`);
    return 'ok';
  } finally {
    await s.cleanup();
  }
}

const here = await clusteripHere();
if (here === 'ok') {
  describe('CLUSTERIP through libiptc', () => {
    it('a rule and its /proc node list work in a namespace (checked while probing)', () => {
      expect(here).toBe('ok');
    });
  });
  iptablesSuite('clusterip', HASH_MODES, 'iq');
} else {
  describe.skip(`backend iptables (clusterip) (skipped: ${here.replace(/\s+/g, ' ').slice(0, 300)})`, () => {
    it('runs where the kernel has the CLUSTERIP target (Linux up to 6.2, e.g. the 6.1 guest)', () => {});
  });
}
