/**
 * A {@link ClusterPlan} as text for people: every object under its key, and each nft table as a
 * ruleset in the style of `nft --debug=netlink` (the register-level expressions the kernel gets),
 * with each rule's comment.
 * @module
 */
import type { NftCommand, NftData, NftExpr } from '../kernel/engine.js';
import type { ClusterPlan } from './plan.js';
import { rulesetText } from '../rules/iptables.js';

const data = (d: NftData): string => (typeof d === 'number' ? `0x${d.toString(16).padStart(8, '0')}` : d instanceof Uint8Array ? `0x${Buffer.from(d).toString('hex')}` : d);

/** One expression, as nft's netlink debug output writes it. */
export function exprText(e: NftExpr): string {
  switch (e.type) {
    case 'payload':
      return 'dreg' in e ? `payload load ${e.len}b @ ${e.base} header + ${e.offset} => reg ${e.dreg}` : `payload write reg ${e.sreg} => ${e.len}b @ ${e.base} header + ${e.offset}${e.csumType && e.csumType !== 'none' ? ` csum_type ${e.csumType} csum_off ${e.csumOffset ?? 0}` : ''}`;
    case 'meta':
      return 'dreg' in e ? `meta load ${e.key} => reg ${e.dreg}` : `meta set ${e.key} with reg ${e.sreg}`;
    case 'cmp':
      return `cmp ${e.op ?? 'eq'} reg ${e.sreg} ${data(e.data)}`;
    case 'bitwise':
      return `bitwise reg ${e.dreg} = ( reg ${e.sreg} & ${data(e.mask)} ) ^ ${data(e.xor)}`;
    case 'hash':
      return e.hashType === 'symhash'
        ? `hash reg ${e.dreg} = symhash() % mod ${e.modulus}${e.offset ? ` offset ${e.offset}` : ''}`
        : `hash reg ${e.dreg} = jhash(reg ${e.sreg}, ${e.len}, 0x${e.seed.toString(16)}) % mod ${e.modulus}${e.offset ? ` offset ${e.offset}` : ''}`;
    case 'lookup':
      return `lookup reg ${e.sreg} set ${e.set}${e.dreg !== undefined ? ` dreg ${e.dreg}` : ''}${e.invert ? ' invert' : ''}`;
    case 'immediate':
      return 'ifindexOf' in e ? `immediate reg ${e.dreg} ifindex of "${e.ifindexOf}"` : `immediate reg ${e.dreg} ${data(e.data)}`;
    case 'fwd':
      return `fwd sreg_dev ${e.sreg}`;
    case 'verdict':
      return 'chain' in e ? `immediate reg 0 ${e.verdict} ${e.chain}` : `immediate reg 0 ${e.verdict}`;
    case 'counter':
      return 'counter';
    case 'notrack':
      return 'notrack';
    case 'nat':
      return e.natType === 'masquerade' ? 'masq' : `nat ${e.natType} ${e.family} addr_min reg ${e.regAddrMin}`;
  }
}

/** One table's commands as a ruleset. */
export function tableText(commands: readonly NftCommand[]): string[] {
  const out: string[] = [];
  for (const c of commands) {
    switch (c.cmd) {
      case 'addTable':
        out.push(`table ${c.family} ${c.name}${'comment' in c && c.comment ? ` comment "${c.comment}"` : ''}`);
        break;
      case 'addChain':
        out.push(`  chain ${c.name}${c.hook ? ` { type ${c.chainType ?? 'filter'} hook ${c.hook}${c.device ? ` device "${c.device}"` : ''} priority ${c.priority ?? 0}; policy ${c.policy ?? 'accept'}; }` : ''}`);
        break;
      case 'addSet':
        out.push(`  ${c.dataType !== undefined ? 'map' : 'set'} ${c.name} { key type ${c.keyType} len ${c.keyLen}${c.dataType !== undefined ? ` : data ${c.dataType}` : ''}${c.flags?.length ? `; flags ${c.flags.join(',')}` : ''}${c.size !== undefined ? `; size ${c.size}` : ''} }`);
        break;
      case 'addElements':
        out.push(`  elements @${c.set}: ${c.elements.length} (${c.elements.slice(0, 8).map((e) => `${data(e.key)}${'data' in e && e.data !== undefined ? ` : ${data(e.data)}` : ''}${'verdict' in e ? ` : ${e.verdict}${'chain' in e ? ` ${e.chain}` : ''}` : ''}`).join(', ')}${c.elements.length > 8 ? ', …' : ''})`);
        break;
      case 'addRule':
        out.push(`  rule ${c.chain}${c.comment ? ` comment "${c.comment}"` : ''}`);
        for (const e of c.exprs) out.push(`    [ ${exprText(e)} ]`);
        break;
      default:
        out.push(`  ${c.cmd}`);
    }
  }
  return out;
}

/** The whole plan, one object a line, grouped by namespace; tables last. */
export function planText(plan: ClusterPlan, o: { rules?: boolean } = {}): string {
  const lines: string[] = [];
  const where = (ns?: string) => (ns === undefined ? `host${plan.hostNetns ? ` (${plan.hostNetns})` : ''}` : ns);
  lines.push(`cluster ${plan.name}: ${plan.nodes.length} nodes, bridge ${plan.bridge} (${plan.vmac}), every object marked "${plan.mark}"`);
  lines.push('namespaces:');
  for (const x of plan.nodes) lines.push(`  ${x.netns}  eth0 ${x.mac}  ${x.addresses.join(' ')}`);
  lines.push('links:');
  if (plan.uplink) lines.push(`  host: ${plan.uplink.ifname} (yours) → master ${plan.uplink.master}, up`);
  for (const l of plan.links) {
    lines.push(`  ${where(l.netns)}: ${l.kind} ${l.name}${l.master ? ` master ${l.master}` : ''}${l.mac ? ` mac ${l.mac}` : ''}${l.peer ? ` peer ${l.peer.name}${l.peer.netns ? ` in ${l.peer.netns}` : ''}${l.peer.mac ? ` mac ${l.peer.mac}` : ''}` : ''}${l.unicastFlood === false ? ' flood off' : ''}`);
  }
  lines.push('addresses:');
  for (const a of plan.addresses) lines.push(`  ${where(a.netns)}: ${a.ifname} ${a.cidr}`);
  lines.push('routes:');
  for (const r of plan.routes) lines.push(`  ${where(r.netns)}: ${r.destination}${r.via ? ` via ${r.via}` : ''}${r.dev ? ` dev ${r.dev}` : ''}`);
  lines.push('sysctls:');
  for (const s of plan.sysctls) lines.push(`  ${where(s.netns)}: ${s.key} = ${s.value}`);
  const per = new Map<number, number[]>();
  plan.buckets.forEach((o, b) => per.set(o, [...(per.get(o) ?? []), b]));
  lines.push(`buckets (${plan.buckets.length}):`);
  for (const [node, bs] of [...per].sort((a, b) => a[0] - b[0])) lines.push(`  node ${node}: ${bs.length} (${bs.slice(0, 12).join(' ')}${bs.length > 12 ? ' …' : ''})`);
  lines.push('nft tables:');
  for (const t of plan.tables) {
    if (o.rules === false) {
      lines.push(`  ${where(t.netns)}: table ${t.family} ${t.name} (${t.commands.filter((c) => c.cmd === 'addRule').length} rules)`);
      continue;
    }
    lines.push(`  # ${where(t.netns)}`);
    for (const l of tableText(t.commands)) lines.push(`  ${l}`);
  }
  if (plan.rulesets.length) {
    lines.push(`iptables rules (${plan.backend}, legacy iptables through libiptc):`);
    for (const r of plan.rulesets) {
      if (o.rules === false) {
        lines.push(`  ${r.netns}: table ${r.table} chain ${r.chain} (${r.rules.length} rules)`);
        continue;
      }
      lines.push(`  # ${r.netns}`);
      for (const l of rulesetText(r)) lines.push(`  ${l}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
