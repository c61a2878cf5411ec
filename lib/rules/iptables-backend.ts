/**
 * The iptables backend: the nodes keep their buckets with legacy iptables rules (lib/rules/iptables,
 * sent through the addon's libiptc ops, one iptc_commit per node namespace); the host's bridge
 * floods VIP traffic to every node with the same nftables bridge table as the nftables backend's
 * flood mode (the multicast MAC, ARP toward the VIP, the VMAC on ARP leaving through the uplink).
 * @module
 */
import { submit as submitJob, submitAll, type IptListedRule, type NativeHandle, type NativeOp } from '../kernel/engine.js';
import type { DataPlaneBackend, DataPlaneSpec, NodeCounters } from './backend.js';
import { nftBackend } from './backend-nft.js';
import { InvalidArgumentError } from '../util/errors.js';
import { IPT_CHAIN, iptablesBucketOf, iptablesRulesets, nodeRuleset, ownedBy, type IptablesKind, type IptablesRuleset } from './iptables.js';

/** The `iptc.commit` request that installs a ruleset in namespace `netns`. */
export function rulesetOp(r: IptablesRuleset, netns: NativeHandle): NativeOp {
  return {
    type: 'iptc.commit',
    netns,
    table: r.table,
    chain: r.chain,
    mark: r.mark,
    rules: r.rules,
    hooks: r.hooks,
    needs: r.needs,
    hint: r.hint,
    ...(r.clusterip ? { vip: r.clusterip.vip, nodes: r.clusterip.nodes } : {}),
  };
}

async function submit(ops: NativeOp[]): Promise<unknown[]> {
  const results = await submitJob(ops, true);
  const failed = results.find((r) => r instanceof Error);
  if (failed) throw failed;
  return results;
}

const union = (a: readonly number[], b: readonly number[]) => [...new Set([...a, ...b])].sort((x, y) => x - y);

export function iptablesBackend(variant: IptablesKind): DataPlaneBackend {
  const table = variant === 'xt_cluster' ? 'mangle' : 'filter';
  return {
    name: `iptables (${variant})`,
    iptablesTable: table,

    // The host's bridge table: flood mode's (the spec's validation allows nothing else).
    tables: (spec, layout, owners) => nftBackend.tables(spec, layout, owners, 0),

    rulesets: (spec, _layout, owners, nodes) => iptablesRulesets(spec, variant, owners, nodes),

    bucketOf: (spec, flow) => iptablesBucketOf(variant, spec, flow),

    async move(ctx, from, to) {
      const { spec, nodes } = ctx;
      const moved = to.flatMap((owner, b) => (owner !== from[b] ? [b] : []));
      if (moved.length === 0) return;
      const changed = [...new Set(moved.flatMap((b) => [from[b], to[b]]).filter((k) => k >= 0))].sort((a, b) => a - b);
      // Add before remove, in one job: first every changed node owns its old and new buckets
      // (duplicates for a moment, no loss), then exactly its new ones.
      const step = (k: number, owned: number[]): NativeOp => {
        if (variant === 'clusterip') {
          // The target's node numbers move through /proc; the rule stays as it is.
          return { type: 'clusterip.nodes', netns: nodes[k].handle, vip: nodeRuleset(spec, variant, k, owned).clusterip!.vip, nodes: owned.map((b) => b + 1) };
        }
        return rulesetOp(nodeRuleset(spec, variant, k, owned), nodes[k].handle);
      };
      await submitAll([
        ...changed.filter((k) => moved.some((b) => to[b] === k)).map((k) => step(k, union(ownedBy(from, k), ownedBy(to, k)))),
        ...changed.map((k) => step(k, ownedBy(to, k))),
      ]);
    },

    async counters(ctx): Promise<NodeCounters[]> {
      const lists = (await submit(ctx.nodes.map((ns) => ({ type: 'iptc.list', netns: ns.handle, table, chain: IPT_CHAIN }) as NativeOp))) as (IptListedRule[] | null)[];
      return lists.map((rules, index) => {
        const rs = rules ?? [];
        const sum = (f: (r: IptListedRule) => boolean, what: 'packets' | 'bytes') => rs.filter(f).reduce((a, r) => a + r[what], 0);
        const accepted = (w: 'packets' | 'bytes') => sum((r) => r.target === 'ACCEPT', w);
        // CLUSTERIP drops what is not the node's inside the target: all it saw, less what went on.
        const dropped = (w: 'packets' | 'bytes') =>
          variant === 'clusterip' ? sum((r) => r.target === 'CLUSTERIP', w) - accepted(w) : sum((r) => r.target === 'DROP', w);
        return { index, packets: accepted('packets'), bytes: accepted('bytes'), droppedPackets: dropped('packets'), droppedBytes: dropped('bytes') };
      });
    },

    removeOps: (ctx) => nftBackend.removeOps(ctx),

    async readOwners(ctx, home) {
      const owners = [...home];
      const seen = new Set<number>();
      const vip = ctx.spec.vips.find((v) => v.family === 4)!.address;
      const ops: NativeOp[] = ctx.nodes.map((ns) =>
        variant === 'clusterip' ? { type: 'clusterip.nodes', netns: ns.handle, vip } : { type: 'iptc.list', netns: ns.handle, table, chain: IPT_CHAIN },
      );
      const results = await submitJob(ops, false);
      results.forEach((r, k) => {
        if (!Array.isArray(r)) return; // no rules there (yet): its buckets stay home
        const buckets =
          variant === 'clusterip'
            ? (r as number[]).map((n) => n - 1)
            : (() => {
                const mask = (r as IptListedRule[]).find((x) => x.cluster)?.cluster?.nodeMask ?? 0;
                return owners.flatMap((_, b) => (b < 32 && (mask >>> b) & 1 ? [b] : []));
              })();
        for (const b of buckets) {
          if (b >= 0 && b < owners.length && !seen.has(b)) {
            owners[b] = k;
            seen.add(b);
          }
        }
      });
      return owners;
    },
  };
}

/**
 * The variant an iptables cluster runs: the one asked for, or with 'auto' CLUSTERIP where the
 * kernel has it (`support`, see iptablesSupport), else xt_cluster. 'auto' landing on xt_cluster
 * with a port hash is refused here: xt_cluster hashes the source address only.
 */
export function resolveVariant(spec: DataPlaneSpec, support: Record<IptablesKind, boolean> | undefined): IptablesKind {
  const asked = spec.iptables?.variant ?? 'auto';
  if (asked !== 'auto') return asked;
  if (support?.clusterip) return 'clusterip';
  if (spec.hash !== 'sourceip')
    throw new InvalidArgumentError(
      'iptables.variant',
      `'auto' chose xt_cluster (this kernel has no CLUSTERIP target), which hashes the source address only, but hash is '${spec.hash}'; use hash 'sourceip', or run on a kernel with CLUSTERIP (up to 6.2)`,
    );
  return 'xt_cluster';
}
