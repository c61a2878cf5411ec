/** The nftables backend: rules from lib/rules/ruleset.ts, sent through the addon's libnftnl engine. @module */
import { submitAll, type NativeOp } from '../kernel/engine.js';
import type { DataPlaneSpec } from './backend.js';
import type { BackendTable, DataPlaneBackend, NodeCounters } from './backend.js';
import { bucketOf } from './jhash.js';
import { listRules, NftTransaction, type NftCommand, type NftRuleInfo } from './nft.js';
import { bucketElements, hostFamily, hostRules, nodeChain, nodeChainRule, nodeRules, type Layout } from './ruleset.js';

const ownedBy = (owners: readonly number[], k: number) => owners.flatMap((o, b) => (o === k ? [b] : []));

/**
 * The cluster's nft tables with bucket b owned by `owners[b]`: the host's table (`node`
 * undefined), then in flood mode one inet table per node. Pure data: the plan shows it, the build sends it.
 */
function nftTables(spec: DataPlaneSpec, layout: Layout, owners: readonly number[], nodes = spec.nodes): BackendTable[] {
  const hostTx = hostRules(spec, layout);
  if (spec.mode === 'steer') hostTx.addElements('netdev', layout.table, 'buckets', bucketElements([...owners]));
  const host: BackendTable = { family: hostFamily(spec.mode), name: layout.table, commands: [...hostTx.commands] };
  // Steer mode: the host's table is all there is (it counts per node too).
  if (spec.mode === 'steer') return [host];
  return [
    host,
    ...Array.from({ length: nodes }, (_, k) => ({ node: k, family: 'inet' as const, name: layout.table, commands: [...nodeRules(spec, layout, ownedBy(owners, k)).commands] })),
  ];
}

/**
 * Steer mode: a host table's commands with each node chain's counter starting where the table it
 * replaces had it (`rules`: that table's rules, from listRules), so that replacing the table (adopt,
 * a ports update) does not reset the per-node counts. Packets counted between the read and the
 * replace are not carried.
 */
export function carryCounters(commands: readonly NftCommand[], rules: readonly NftRuleInfo[]): NftCommand[] {
  const was = new Map(rules.filter((r) => r.comment === 'accept' && /^node\d+$/.test(r.chain)).map((r) => [r.chain, r]));
  return commands.map((c) => {
    const r = c.cmd === 'addRule' && c.comment === 'accept' ? was.get(c.chain) : undefined;
    if (c.cmd !== 'addRule' || r?.packets === undefined) return c;
    return { ...c, exprs: c.exprs.map((e) => (e.type === 'counter' ? { type: 'counter' as const, packets: r.packets!, bytes: r.bytes ?? 0 } : e)) };
  });
}

export const nftBackend: DataPlaneBackend = {
  name: 'nftables',

  tables: nftTables,

  rulesets: () => [],

  bucketOf: (spec, flow) => bucketOf(spec.hash, flow, spec.buckets, spec.seed),

  async move(ctx, from, to) {
    const { spec, layout, host, nodes } = ctx;
    const moved = to.flatMap((owner, b) => (owner !== from[b] ? [b] : []));
    if (moved.length === 0) return;
    if (spec.mode === 'steer') {
      // One transaction on one map: every packet sees either the old owner or the new one.
      const tx = new NftTransaction(host);
      tx.deleteElements('netdev', layout.table, 'buckets', moved.filter((b) => from[b] >= 0).map((b) => ({ key: b })));
      tx.addElements('netdev', layout.table, 'buckets', bucketElements([...to]).filter((e) => moved.includes(e.key)));
      await tx.commit();
      return;
    }
    const byNode = (owners: readonly number[]) => {
      const m = new Map<number, number[]>();
      for (const b of moved) if (owners[b] >= 0) m.set(owners[b], [...(m.get(owners[b]) ?? []), b]);
      return m;
    };
    const ops = (m: Map<number, number[]>, cmd: 'addElements' | 'deleteElements'): NativeOp[] =>
      [...m].map(([k, buckets]) => ({
        type: 'nft.batch',
        netns: nodes[k].handle,
        commands: [{ cmd, family: 'inet', table: layout.table, set: 'owned', elements: buckets.map((b) => ({ key: b })) }],
      }));
    // Add before remove, in one job: for a moment two nodes own a bucket (duplicates, no loss).
    await submitAll([...ops(byNode(to), 'addElements'), ...ops(byNode(from), 'deleteElements')]);
  },

  async counters(ctx): Promise<NodeCounters[]> {
    if (ctx.spec.mode === 'steer') {
      // What the host steered to each node: the counter of its chain in the host's table.
      const rules = await listRules(ctx.host, 'netdev', ctx.layout.table);
      return ctx.nodes.map((_, index) => {
        const r = rules.filter((x) => x.chain === nodeChain(index) && x.comment === 'accept');
        return { index, packets: r.reduce((a, x) => a + (x.packets ?? 0), 0), bytes: r.reduce((a, x) => a + (x.bytes ?? 0), 0), droppedPackets: 0, droppedBytes: 0 };
      });
    }
    return Promise.all(
      ctx.nodes.map(async (ns, index) => {
        const rules = await listRules(ns, 'inet', ctx.layout.table);
        const sum = (comment: string, what: 'packets' | 'bytes') =>
          rules.filter((r) => r.comment === comment).reduce((a, r) => a + (r[what] ?? 0), 0);
        return {
          index,
          packets: sum('accept', 'packets'),
          bytes: sum('accept', 'bytes'),
          droppedPackets: sum('drop', 'packets'),
          droppedBytes: sum('drop', 'bytes'),
        };
      }),
    );
  },

  async nodesChanged(ctx, before) {
    if (ctx.spec.mode !== 'steer') return;
    const { layout } = ctx;
    const after = layout.nodeMacs.length;
    if (after === before) return;
    const tx = new NftTransaction(ctx.host);
    // Added nodes get their chain (counter, MAC) before any bucket points at it; removed nodes'
    // chains go once no bucket does.
    for (let k = before; k < after; k++) {
      tx.addChain('netdev', layout.table, nodeChain(k));
      tx.addRule('netdev', layout.table, nodeChain(k), nodeChainRule(layout.nodeMacs[k], layout.nodePorts[k]), 'accept');
    }
    for (let k = after; k < before; k++) tx.flushChain('netdev', layout.table, nodeChain(k)).deleteChain('netdev', layout.table, nodeChain(k));
    await tx.commit();
  },

  removeOps(ctx) {
    return [{ type: 'nft.batch', netns: ctx.host.handle, commands: [{ cmd: 'deleteTable', family: hostFamily(ctx.spec.mode), name: ctx.layout.table }] }];
  },
};
