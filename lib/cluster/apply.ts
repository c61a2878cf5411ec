/**
 * Plan, then apply. What exists is read from the kernel (the cluster's marked objects, and what
 * lives in its marked namespaces), compared with the plan key by key ({@link keyOf}), and only the
 * difference becomes requests: missing objects are made (the plan's own requests, filtered to
 * those keys), objects that exist but differ are set right, and what matches is not touched.
 * Building a new cluster is the same with nothing found; removing one is lib/cluster/destroy.ts,
 * which deletes marked objects only.
 * @module
 */
import type { Batch, Netns } from '../kernel/netns.js';
import { listRules, listTables } from '../kernel/nft.js';
import type { NftRuleInfo } from '../rules/nft.js';
import type { LinkInfo } from '../kernel/types.js';
import { canonicalAddress } from '../util/ipmath.js';
import { keyOf, planBatch, planKeys, type ClusterPlan, type PlannedLink, type PlannedTable } from './plan.js';

/** What was found for one planned object: as planned, or present but different (and why). */
export type Found = { ok: true } | { ok: false; why: string };

/** The kernel's side of a plan: every planned key that exists, and whether it matches. */
export type ActualState = Map<string, Found>;

/** How the kernel differs from a plan. Keys are the plan's (see {@link keyOf}). */
export interface PlanDiff {
  /** Planned, not there: made by the apply. */
  missing: string[];
  /** There, but not as planned (e.g. a link down or off the bridge, a sysctl changed): set right. */
  different: { key: string; why: string }[];
  /** There as planned: not touched. */
  present: string[];
}

/** The difference between a plan and what was found (pure). */
export function diffPlan(plan: ClusterPlan, actual: ActualState): PlanDiff {
  const d: PlanDiff = { missing: [], different: [], present: [] };
  for (const key of planKeys(plan).keys()) {
    const f = actual.get(key);
    if (!f) d.missing.push(key);
    else if (f.ok) d.present.push(key);
    else d.different.push({ key, why: f.why });
  }
  return d;
}

/**
 * Whether host link `have` is a veth a kill left between its creation and its mark: its inner end
 * is `peer`, found in the node's (marked) namespace under the planned name, paired with it and with
 * the MAC the create gave it. Nobody else makes a veth into a namespace of ours.
 */
export function unmarkedVethOfOurs(have: LinkInfo, peer: LinkInfo | undefined, mac: string | undefined): boolean {
  return have.kind === 'veth' && have.alias === undefined && peer?.kind === 'veth' && peer.peerIndex === have.index && mac !== undefined && peer.mac === mac;
}

/** A marked link of the plan as found (`have`): on its master, up, with its port options; or why not. */
export function linkState(l: PlannedLink, have: LinkInfo, hostLinks: readonly LinkInfo[]): Found {
  const master = l.master === undefined ? undefined : hostLinks.find((x) => x.name === l.master)?.index;
  if (l.master !== undefined && have.master !== master) return { ok: false, why: `${l.name} is not on ${l.master}` };
  if (l.up && !have.up) return { ok: false, why: `${l.name} is down` };
  if (l.unicastFlood === false && have.bridgePort?.unicastFlood !== false) return { ok: false, why: `${l.name} floods frames to unknown MACs` };
  return { ok: true };
}

/** The uplink as found: on its bridge and up, or why not; undefined when it is not there at all. */
export function uplinkFound(uplink: NonNullable<ClusterPlan['uplink']>, hostLinks: readonly LinkInfo[]): Found | undefined {
  const up = hostLinks.find((x) => x.name === uplink.ifname);
  const bridge = hostLinks.find((x) => x.name === uplink.master);
  if (!up) return undefined;
  if (bridge && up.master === bridge.index && up.up) return { ok: true };
  return { ok: false, why: `${up.name} is ${bridge && up.master === bridge.index ? 'down' : `not on ${uplink.master}`}` };
}

/**
 * How a marked table differs from its plan (nothing: as planned), from its rules (listRules) and
 * the links of its namespace. A table keeps its chains unless someone deletes them, with one
 * exception: a netdev chain goes with its device on some kernels (Linux 6.1 deletes it when the
 * uplink is removed). So the rules per chain are counted, not compared; and a rule that sends to a
 * link (steer's fwd to a node's port) holds that link's index: a link made again since has
 * another, and the rule sends nowhere.
 */
export function tableDifferences(t: PlannedTable, rules: readonly NftRuleInfo[], links: readonly LinkInfo[]): string[] {
  const planned = new Map<string, number>();
  for (const c of t.commands) if (c.cmd === 'addChain') planned.set(c.name, 0);
  for (const c of t.commands) if (c.cmd === 'addRule') planned.set(c.chain, (planned.get(c.chain) ?? 0) + 1);
  const have = new Map<string, number>();
  for (const r of rules) have.set(r.chain, (have.get(r.chain) ?? 0) + 1);
  const why = [...planned].filter(([chain, n]) => (have.get(chain) ?? 0) !== n).map(([chain, n]) => `chain ${chain} has ${have.get(chain) ?? 0} rules, not ${n}`);
  const index = new Map(links.map((l) => [l.name, l.index]));
  for (const c of t.commands) {
    if (c.cmd !== 'addRule' || (have.get(c.chain) ?? 0) !== planned.get(c.chain)) continue;
    for (const e of c.exprs) {
      if (e.type !== 'immediate' || !('ifindexOf' in e)) continue;
      const want = index.get(e.ifindexOf);
      if (!rules.some((r) => r.chain === c.chain && r.fwdIndex !== undefined && r.fwdIndex === want)) why.push(`chain ${c.chain} does not send to ${e.ifindexOf}${want === undefined ? ' (not there)' : ` (index ${want})`}`);
    }
  }
  return why;
}

/**
 * Reads what exists of a plan. `ns(name)` is a node namespace's handle, undefined when the
 * namespace does not exist (or is not the cluster's). Links count only when they carry the
 * cluster's mark (a veth's inner end lives and dies with its outer end); tables only with the
 * mark as their comment, and as different when a chain has not the planned number of rules (a
 * netdev chain gone with its device). Their contents are not compared further: an apply replaces
 * each table whole, in one transaction, with the bucket table it read.
 */
export async function readActual(plan: ClusterPlan, host: Netns, ns: (name: string) => Netns | undefined): Promise<ActualState> {
  const found: ActualState = new Map();
  const ok = (key: string) => found.set(key, { ok: true });
  const where = (netns?: string) => (netns === undefined ? host : ns(netns));
  const spaces = [undefined, ...plan.namespaces].filter((x) => x === undefined || ns(x) !== undefined);
  for (const x of plan.namespaces) if (ns(x)) ok(keyOf.netns(x));
  const links = new Map<string | undefined, LinkInfo[]>(await Promise.all(spaces.map(async (x) => [x, await where(x)!.listLinks()] as const)));
  const hostLinks = links.get(undefined)!;
  const byName = (netns: string | undefined, name: string) => links.get(netns)?.find((l) => l.name === name);
  for (const l of plan.links) {
    const have = byName(l.netns, l.name);
    // A bridge a kill left between its creation and its mark is recognised by its MAC.
    if (have && l.kind === 'bridge' && have.kind === 'bridge' && have.alias === undefined && have.mac === plan.vmac) {
      found.set(keyOf.link(l), { ok: false, why: `${l.name} is not marked yet` });
      continue;
    }
    if (have && l.peer?.netns !== undefined && ns(l.peer.netns) && unmarkedVethOfOurs(have, byName(l.peer.netns, l.peer.name), l.peer.mac)) {
      found.set(keyOf.link(l), { ok: false, why: `${l.name} is not marked yet` });
      continue;
    }
    if (!have || have.alias !== plan.mark || have.kind !== l.kind) continue;
    if (l.peer) {
      const peer = byName(l.peer.netns, l.peer.name);
      if (!peer || peer.kind !== 'veth') continue;
      if (l.peer.up && !peer.up) {
        found.set(keyOf.link(l), { ok: false, why: `${l.peer.name} in ${l.peer.netns ?? 'the host'} is down` });
        continue;
      }
    }
    found.set(keyOf.link(l), linkState(l, have, hostLinks));
  }
  if (plan.uplink) {
    const f = uplinkFound(plan.uplink, hostLinks);
    if (f) found.set(keyOf.uplink(plan.uplink), f);
  }
  const addresses = new Map(
    await Promise.all(
      spaces.map(async (x) => {
        const names = new Map(links.get(x)!.map((l) => [l.index, l.name]));
        const list = await where(x)!.listAddresses();
        return [x, new Set(list.map((a) => `${names.get(a.index)} ${canonicalAddress(a.cidr)}`))] as const;
      }),
    ),
  );
  for (const a of plan.addresses) if (addresses.get(a.netns)?.has(`${a.ifname} ${canonicalAddress(a.cidr)}`)) ok(keyOf.address(a));
  if (plan.routes.length) {
    const routes = new Map(await Promise.all(spaces.map(async (x) => [x, await where(x)!.listRoutes()] as const)));
    for (const r of plan.routes) {
      const dest = r.destination === 'default' ? undefined : canonicalAddress(r.destination.includes('/') ? r.destination : `${r.destination}/${r.destination.includes(':') ? 128 : 32}`);
      const dev = r.dev === undefined ? undefined : byName(r.netns, r.dev)?.index;
      const match = routes
        .get(r.netns)
        ?.some(
          (k) =>
            k.table === 254 &&
            // A kernel route's destination may be 'default' (the host's own default route), not an address.
            (dest === undefined ? /^(0\.0\.0\.0|::)\/0$|^default$/.test(k.destination) : k.destination !== 'default' && canonicalAddress(k.destination) === dest) &&
            (r.via === undefined || (k.via !== undefined && canonicalAddress(k.via) === canonicalAddress(r.via))) &&
            (r.dev === undefined || k.index === dev),
        );
      if (match) ok(keyOf.route(r));
    }
  }
  await Promise.all(
    plan.sysctls.map(async (s) => {
      const space = where(s.netns);
      if (!space) return;
      const value = await space.readSysctl(s.key).catch(() => undefined);
      if (value === undefined) return;
      found.set(keyOf.sysctl(s), value.trim() === s.value ? { ok: true } : { ok: false, why: `${s.key} is ${value.trim()}, not ${s.value}` });
    }),
  );
  await Promise.all(
    plan.tables.map(async (t) => {
      const space = where(t.netns);
      if (!space) return;
      const tables = await listTables(space, t.family).catch(() => []);
      if (!tables.some((x) => x.name === t.name && x.comment === plan.mark)) return;
      const why = tableDifferences(t, await listRules(space, t.family, t.name).catch(() => []), links.get(t.netns) ?? []);
      if (why.length === 0) ok(keyOf.table(t));
      else found.set(keyOf.table(t), { ok: false, why: why.join('; ') });
    }),
  );
  return found;
}

/**
 * The one job that turns `actual` into `plan` for links, addresses, routes and sysctls: the plan's
 * requests for the missing keys, and for keys that differ, the change that sets them right.
 * Tables are left to the caller (they are replaced whole, with the bucket table it read).
 */
export function applyBatch(plan: ClusterPlan, diff: PlanDiff, host: Netns, ns: (name: string) => Netns): Batch {
  const b = planBatch(plan, host, ns, { tables: false, keys: new Set(diff.missing) });
  const fix = new Set(diff.different.map((d) => d.key));
  const scope = (netns?: string) => b.in(netns === undefined ? host : ns(netns));
  for (const l of plan.links) {
    if (!fix.has(keyOf.link(l))) continue;
    scope(l.netns).setLink(l.name, { up: l.up, alias: plan.mark, ...(l.master !== undefined ? { master: l.master } : {}) });
    if (l.unicastFlood === false) scope(l.netns).setLink(l.name, { bridgePort: { unicastFlood: false } });
    if (l.peer) scope(l.peer.netns).setLink(l.peer.name, { up: l.peer.up, alias: plan.mark });
  }
  if (plan.uplink && fix.has(keyOf.uplink(plan.uplink))) b.in(host).setLink(plan.uplink.ifname, { master: plan.uplink.master, up: true });
  for (const s of plan.sysctls) if (fix.has(keyOf.sysctl(s))) scope(s.netns).writeSysctl(s.key, s.value);
  return b;
}
