/**
 * nftables transactions and listings, sent to the addon's libnftnl engine on its worker thread.
 * A transaction is applied by the kernel as a whole or not at all; a failure names the command
 * that caused it (e.g. `ENOENT ... add chain ip t c #1`). The expressions rules are written in come
 * from lib/rules/nft.ts.
 * @module
 */
import {
  binding,
  type NativeHandle,
  type NftCommand,
  type NftElement,
  type NftElementInfo,
  type NftExpr,
  type NftFamily,
  type NftHook,
  type NftRuleInfo,
  type NftSetFlag,
  type NftTableInfo,
  type NftTypeof,
} from './binding.js';
import { InvalidArgumentError } from '../util/errors.js';
import { Netns, closedError } from './netns.js';
import { got, show } from '../util/validate.js';

const NFT_FAMILIES: readonly NftFamily[] = ['ip', 'ip6', 'inet', 'bridge', 'arp', 'netdev'];

// Sets, chains, transactions

/** nft datatype ids and lengths for set keys and map data. */
export const NftTypes = {
  /** `integer` (`typeof meta cpu`, `meta mark`, hash results): host byte order. */
  integer: { type: 4, len: 4 },
  ipv4Addr: { type: 7, len: 4 },
  ipv6Addr: { type: 8, len: 16 },
  etherAddr: { type: 9, len: 6 },
  inetService: { type: 13, len: 2 },
  mark: { type: 19, len: 4 },
  ifname: { type: 41, len: 16 },
} as const;

export interface NftType {
  type: number;
  len: number;
}

/** Named chain priorities, as nft resolves them per family. */
export type NftPriorityName = 'raw' | 'mangle' | 'dstnat' | 'filter' | 'security' | 'srcnat' | 'out';

const PRIORITIES: Record<'inet' | 'bridge' | 'other', Partial<Record<NftPriorityName, number>>> = {
  inet: { raw: -300, mangle: -150, dstnat: -100, filter: 0, security: 50, srcnat: 100 },
  bridge: { dstnat: -300, filter: -200, out: 100, srcnat: 300 },
  other: { filter: 0 },
};

/** The number for a named priority in a family (`dstnat` is -300 in bridge, -100 in ip). */
export function priorityOf(family: NftFamily, p: number | NftPriorityName): number {
  if (typeof p === 'number') return p;
  const table = family === 'bridge' ? PRIORITIES.bridge : family === 'arp' || family === 'netdev' ? PRIORITIES.other : PRIORITIES.inet;
  const v = table[p];
  if (v === undefined)
    throw new InvalidArgumentError('priority', `priority ${show(p)} does not exist in the ${family} family; use a number or one of ${Object.keys(table).join(', ')}`);
  return v;
}

export interface TableOptions {
  /** A comment (< 128 bytes, no NUL), e.g. a mark saying who made the table. */
  comment?: string;
  /** Fail with EEXIST if the table exists, instead of adopting it. */
  exclusive?: boolean;
}

export interface ChainOptions {
  hook: NftHook;
  priority?: number | NftPriorityName;
  policy?: 'accept' | 'drop';
  type?: 'filter' | 'nat' | 'route';
  /** netdev ingress/egress: the device. */
  device?: string;
}

export interface SetOptions {
  key: NftType;
  keyByteorder?: 'host' | 'big';
  /** For `nft list` only: print the key as `typeof ...` (e.g. {@link typeofMeta}('cpu')). */
  keyTypeof?: NftTypeof;
  flags?: NftSetFlag[];
  size?: number;
  comment?: string;
}

export interface MapOptions extends SetOptions {
  /** Data type (`NftTypes.etherAddr`) or `'verdict'`. */
  data: NftType | 'verdict';
  dataByteorder?: 'host' | 'big';
  /** For `nft list` only, e.g. `fields.etherDaddr.typeof`. */
  dataTypeof?: NftTypeof;
}

/** Flattens a rule written as expressions and expression groups. */
export type NftRuleParts = ReadonlyArray<NftExpr | readonly NftExpr[]>;

/**
 * One nftables transaction in one namespace. Queue commands, then {@link commit}: the kernel
 * applies all of them or none.
 */
export class NftTransaction {
  readonly #netns: Netns | undefined;
  readonly #commands: NftCommand[] = [];

  /** `netns` absent: the caller's own namespace. */
  constructor(netns?: Netns) {
    if (netns !== undefined && !(netns instanceof Netns))
      throw new InvalidArgumentError('netns', `expected a Netns (from Netns.create or Netns.open) or undefined for the caller's own namespace, ${got(netns)}`);
    this.#netns = netns;
  }

  /** The commands queued so far (the JSON sent to the addon). */
  get commands(): readonly NftCommand[] {
    return this.#commands;
  }

  /** Queues a raw command. */
  push(...cmds: NftCommand[]): this {
    this.#commands.push(...cmds);
    return this;
  }

  /**
   * Adds a table. `comment` is stored as nft stores table comments; `exclusive` makes an existing
   * table of that name fail the transaction with EEXIST (without it, an existing table is reused).
   */
  addTable(family: NftFamily, name: string, o: TableOptions = {}): this {
    return this.push({
      cmd: 'addTable',
      family,
      name,
      ...(o.comment !== undefined ? { comment: o.comment } : {}),
      ...(o.exclusive !== undefined ? { exclusive: o.exclusive } : {}),
    });
  }
  /** Deletes a table; with `handle` (from {@link listTables}) exactly that one, or ENOENT. */
  deleteTable(family: NftFamily, name: string, o: { handle?: number } = {}): this {
    return this.push({ cmd: 'deleteTable', family, name, ...(o.handle !== undefined ? { handle: o.handle } : {}) });
  }
  /** Deletes every rule of the table (chains and sets stay). */
  flushTable(family: NftFamily, name: string): this {
    return this.push({ cmd: 'flushTable', family, name });
  }

  /** A base chain with `o`, or a regular chain (jump target) without. */
  addChain(family: NftFamily, table: string, name: string, o?: ChainOptions): this {
    const c: NftCommand = { cmd: 'addChain', family, table, name };
    if (o) {
      c.hook = o.hook;
      c.priority = priorityOf(family, o.priority ?? 0);
      if (o.policy) c.policy = o.policy;
      if (o.type) c.chainType = o.type;
      if (o.device) c.device = o.device;
    }
    return this.push(c);
  }
  deleteChain(family: NftFamily, table: string, name: string): this {
    return this.push({ cmd: 'deleteChain', family, table, name });
  }
  flushChain(family: NftFamily, table: string, name: string): this {
    return this.push({ cmd: 'flushChain', family, table, name });
  }

  addSet(family: NftFamily, table: string, name: string, o: SetOptions): this {
    return this.push(setCommand(family, table, name, o, {}));
  }

  addMap(family: NftFamily, table: string, name: string, o: MapOptions): this {
    return this.push(
      setCommand(family, table, name, { ...o, flags: [...new Set<NftSetFlag>([...(o.flags ?? []), 'map'])] }, {
        ...(o.data === 'verdict' ? { dataType: 'verdict' as const } : { dataType: o.data.type, dataLen: o.data.len }),
        ...(o.dataByteorder ? { dataByteorder: o.dataByteorder } : {}),
        ...(o.dataTypeof ? { dataTypeof: o.dataTypeof } : {}),
      }),
    );
  }

  deleteSet(family: NftFamily, table: string, name: string): this {
    return this.push({ cmd: 'deleteSet', family, table, name });
  }
  /** Removes every element. */
  flushSet(family: NftFamily, table: string, name: string): this {
    return this.push({ cmd: 'flushSet', family, table, name });
  }

  /** Adds elements. An empty list sends nothing. */
  addElements(family: NftFamily, table: string, set: string, elements: NftElement[]): this {
    return elements.length ? this.push({ cmd: 'addElements', family, table, set, elements }) : this;
  }
  /** Deletes elements; deleting a missing one fails the whole transaction (ENOENT), so diff first. */
  deleteElements(family: NftFamily, table: string, set: string, elements: NftElement[]): this {
    return elements.length ? this.push({ cmd: 'deleteElements', family, table, set, elements }) : this;
  }

  /** Appends a rule; `exprs` may mix single expressions and groups from the helpers. */
  addRule(family: NftFamily, table: string, chain: string, exprs: NftRuleParts, comment?: string): this {
    const flat = exprs.flatMap((e) => (Array.isArray(e) ? (e as readonly NftExpr[]) : [e as NftExpr]));
    return this.push({ cmd: 'addRule', family, table, chain, exprs: flat, ...(comment !== undefined ? { comment } : {}) });
  }
  deleteRule(family: NftFamily, table: string, chain: string, handle: number): this {
    return this.push({ cmd: 'deleteRule', family, table, chain, handle });
  }

  /** Sends everything as one transaction and empties the queue. Throws the kernel's error. */
  async commit(): Promise<void> {
    if (this.#netns?.closed) throw closedError(this.#netns);
    const commands = this.#commands.splice(0);
    if (commands.length === 0) return;
    const [r] = await binding().submit([{ type: 'nft.batch', netns: handleOf(this.#netns), commands }], true);
    if (r instanceof Error) throw r;
  }
}

/** An `addSet` command (a map when `data` carries its data type). */
function setCommand(
  family: NftFamily,
  table: string,
  name: string,
  o: SetOptions,
  data: Pick<Extract<NftCommand, { cmd: 'addSet' }>, 'dataType' | 'dataLen' | 'dataByteorder' | 'dataTypeof'>,
): NftCommand {
  return {
    cmd: 'addSet',
    family,
    table,
    name,
    keyType: o.key.type,
    keyLen: o.key.len,
    ...(o.keyByteorder ? { keyByteorder: o.keyByteorder } : {}),
    ...(o.keyTypeof ? { keyTypeof: o.keyTypeof } : {}),
    ...data,
    ...(o.flags ? { flags: o.flags } : {}),
    ...(o.size !== undefined ? { size: o.size } : {}),
    ...(o.comment !== undefined ? { comment: o.comment } : {}),
  };
}

function handleOf(ns: Netns | undefined): NativeHandle | undefined {
  // Anything but a Netns would silently mean "the caller's own namespace".
  if (ns !== undefined && !(ns instanceof Netns))
    throw new InvalidArgumentError('netns', `expected a Netns (from Netns.create or Netns.open) or undefined for the caller's own namespace, ${got(ns)}`);
  if (ns?.closed) throw closedError(ns);
  return ns?.handle;
}

/** The rules of a table (or of one chain), in order, with their handles, comments and counters. */
export async function listRules(netns: Netns | undefined, family: NftFamily, table: string, chain?: string): Promise<NftRuleInfo[]> {
  const [r] = await binding().submit(
    [{ type: 'nft.list', netns: handleOf(netns), family, table, ...(chain !== undefined ? { chain } : {}) }],
    true,
  );
  if (r instanceof Error) throw r;
  return r ?? [];
}

/** The tables of a namespace (of one family, or all), with their handles and comments. */
export async function listTables(netns: Netns | undefined, family?: NftFamily): Promise<NftTableInfo[]> {
  if (family !== undefined && !NFT_FAMILIES.includes(family))
    throw new InvalidArgumentError('family', `${show(family)} is not an nftables family; use one of ${NFT_FAMILIES.join(', ')}`);
  const [r] = await binding().submit([{ type: 'nft.tables', netns: handleOf(netns), ...(family !== undefined ? { family } : {}) }], true);
  if (r instanceof Error) throw r;
  return r ?? [];
}

/** The elements of a set or map (key/data as `0x<hex>`). */
export async function listElements(netns: Netns | undefined, family: NftFamily, table: string, set: string): Promise<NftElementInfo[]> {
  const [r] = await binding().submit([{ type: 'nft.elements', netns: handleOf(netns), family, table, set }], true);
  if (r instanceof Error) throw r;
  return r ?? [];
}
