/**
 * Loads the native addon and declares exactly what it accepts and returns. Everything else in the
 * library talks to the kernel through {@link binding}.
 * @module
 */
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KernelError } from '../util/errors.js';
import type { AddressInfo, LinkInfo, NeighbourInfo, RouteInfo } from './types.js';

/** An open namespace file held by the addon (opaque). */
export interface NativeHandle {
  readonly __nativeNetnsHandle: unique symbol;
}

type LinkRef = string | number;

/** nftables address families. */
export type NftFamily = 'ip' | 'ip6' | 'inet' | 'bridge' | 'arp' | 'netdev';
/**
 * Bytes for the kernel: a number is a u32 in host byte order (as nft stores integer types); a string
 * is `0x<hex>`, a MAC (`02:00:00:00:00:01`) or an IPv4/IPv6 address; a Uint8Array is taken as is.
 */
export type NftData = number | string | Uint8Array;
export type NftVerdictName = 'accept' | 'drop' | 'continue' | 'return' | 'jump' | 'goto' | 'break';
export type NftPayloadBase = 'll' | 'network' | 'transport' | 'inner';
export type NftMetaKey =
  | 'len' | 'protocol' | 'priority' | 'mark' | 'iif' | 'oif' | 'iifname' | 'oifname' | 'iiftype'
  | 'oiftype' | 'nfproto' | 'l4proto' | 'pkttype' | 'cpu' | 'ibrname' | 'obrname' | 'iifgroup'
  | 'oifgroup' | 'nftrace' | 'prandom' | 'skuid' | 'skgid' | 'cgroup' | 'iifkind' | 'oifkind';
export type NftCmpOp = 'eq' | 'neq' | 'lt' | 'lte' | 'gt' | 'gte';

/**
 * One low-level nftables expression (what `nft --debug=netlink` prints). Registers: 0 = verdict,
 * 1..4 = 16-byte registers, 8..23 = 32-bit registers (8..11 alias register 1).
 */
export type NftExpr =
  | { type: 'payload'; base: NftPayloadBase; offset: number; len: number; dreg: number }
  | {
      type: 'payload';
      base: NftPayloadBase;
      offset: number;
      len: number;
      sreg: number;
      csumType?: 'none' | 'inet' | 'sctp';
      csumOffset?: number;
      csumFlags?: number;
    }
  | { type: 'meta'; key: NftMetaKey; dreg: number }
  | { type: 'meta'; key: NftMetaKey; sreg: number }
  | { type: 'cmp'; sreg: number; op?: NftCmpOp; data: NftData }
  | { type: 'bitwise'; sreg: number; dreg: number; mask: NftData; xor: NftData }
  | { type: 'hash'; hashType?: 'jhash'; sreg: number; len: number; modulus: number; seed: number; offset?: number; dreg: number }
  | { type: 'hash'; hashType: 'symhash'; modulus: number; offset?: number; dreg: number }
  | { type: 'lookup'; set: string; sreg: number; dreg?: number; invert?: boolean }
  | { type: 'immediate'; dreg: number; data: NftData }
  /** The index of link `ifindexOf` in the table's namespace, looked up when the transaction is sent. */
  | { type: 'immediate'; dreg: number; ifindexOf: string }
  /** netdev family: the packet leaves through the link whose index is in `sreg` (it is stolen). */
  | { type: 'fwd'; sreg: number }
  | { type: 'verdict'; verdict: Exclude<NftVerdictName, 'jump' | 'goto'> }
  | { type: 'verdict'; verdict: 'jump' | 'goto'; chain: string }
  | { type: 'counter'; packets?: number; bytes?: number }
  /** Connection tracking skips the packet (in a chain hooked before conntrack, priority raw). */
  | { type: 'notrack' }
  /** `snat`/`dnat` to the address in `regAddrMin` (a nat-type chain), or `masquerade`. */
  | { type: 'nat'; natType: 'snat' | 'dnat'; family: 'ip' | 'ip6'; regAddrMin: number }
  | { type: 'nat'; natType: 'masquerade' };

/**
 * nft's `typeof` user data for a set key or map data (only `nft list` reads it): a meta key, or a
 * payload field named by nft's protocol description id and field index (ether daddr = 17/1).
 */
export type NftTypeof = { expr: 'meta'; key: NftMetaKey } | { expr: 'payload'; desc: number; field: number };

export type NftHook = 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting' | 'ingress' | 'egress';
export type NftSetFlag = 'constant' | 'interval' | 'timeout' | 'dynamic' | 'map';

/** A set/map element. `data` for data maps, `verdict` (and `chain`) for verdict maps. */
export type NftElement =
  | { key: NftData; data?: NftData }
  | { key: NftData; verdict: Exclude<NftVerdictName, 'jump' | 'goto'> }
  | { key: NftData; verdict: 'jump' | 'goto'; chain: string };

/** One command of an nftables transaction (all of a batch is applied, or none). */
export type NftCommand = { family: NftFamily } & (
  | {
      cmd: 'addTable';
      name: string;
      /** Stored as nft stores a table comment (user data), so `nft list table` prints `comment "…"`. < 128 bytes. */
      comment?: string;
      /** NLM_F_EXCL: an existing table of that name fails the transaction with EEXIST instead of being adopted. */
      exclusive?: boolean;
    }
  /** `handle` (from nft.tables) deletes exactly that table: ENOENT if it is gone, even if another has its name. */
  | { cmd: 'deleteTable'; name: string; handle?: number }
  | { cmd: 'flushTable'; name: string }
  | {
      cmd: 'addChain';
      table: string;
      name: string;
      hook?: NftHook;
      /** Numeric priority (e.g. -300 for bridge dstnat); needs `hook`. */
      priority?: number;
      policy?: 'accept' | 'drop';
      chainType?: 'filter' | 'nat' | 'route';
      /** netdev ingress chains: the device. */
      device?: string;
    }
  | { cmd: 'deleteChain' | 'flushChain'; table: string; name: string }
  | {
      cmd: 'addSet';
      table: string;
      name: string;
      /** nft datatype id of the key (4 = integer, as for `typeof meta cpu`; 7 = ipv4_addr; 9 = ether_addr). */
      keyType: number;
      /** Key length in bytes. */
      keyLen: number;
      /** How `nft list` should print keys (user data only; the kernel ignores it). */
      keyByteorder?: 'host' | 'big';
      keyTypeof?: NftTypeof;
      /** Makes it a map: an nft datatype id (9 = ether_addr) with `dataLen`, or 'verdict'. */
      dataType?: number | 'verdict';
      dataLen?: number;
      dataByteorder?: 'host' | 'big';
      dataTypeof?: NftTypeof;
      flags?: NftSetFlag[];
      size?: number;
      comment?: string;
    }
  | { cmd: 'deleteSet' | 'flushSet'; table: string; name: string }
  | { cmd: 'addElements' | 'deleteElements'; table: string; set: string; elements: NftElement[] }
  | { cmd: 'addRule'; table: string; chain: string; exprs: NftExpr[]; comment?: string }
  | { cmd: 'deleteRule'; table: string; chain: string; handle: number }
);

/** A rule as `nft.list` returns it. `packets`/`bytes` sum the rule's counters (absent without one). */
export interface NftRuleInfo {
  chain: string;
  handle: number;
  comment?: string;
  packets?: number;
  bytes?: number;
  /** The index of the link a `fwd` in the rule sends to (as loaded into its register). */
  fwdIndex?: number;
}

/** A table as `nft.tables` returns it. */
export interface NftTableInfo {
  family: NftFamily;
  name: string;
  /** The kernel's handle: unique in the namespace and never reused. */
  handle: number;
  /** The table's comment (nft's user data), if it has one. */
  comment?: string;
}

/** A set element as `nft.elements` returns it: key/data as `0x<hex>` of the kernel's bytes. */
export interface NftElementInfo {
  key: string;
  data?: string;
  verdict?: string;
  chain?: string;
}

/** One request for the addon's worker thread. `netns` absent means the caller's own namespace. */
export type NativeOp = {
  netns?: NativeHandle;
  /**
   * Not for the addon: a {@link Batch} may move this op later, up to the next op for the same
   * namespace, so that requests to one namespace stay together (and are pipelined).
   */
  deferrable?: boolean;
} & (
  | {
      type: 'netns.create';
      path: string;
      /** Set as the new namespace's lo alias before the namespace gets its name (≤ 255 bytes, no NUL). */
      mark?: string;
      /** Written inside the new namespace (paths under /proc/sys) before it gets its name. */
      sysctls?: { path: string; value: string }[];
      /**
       * A handle from {@link Binding.reserveNetns} for this path: the new namespace fills it (and it
       * is the op's result), so ops for it could be queued before this job ran.
       */
      into?: NativeHandle;
    }
  | { type: 'netns.delete' | 'netns.open'; path: string }
  | { type: 'netns.release'; netns: NativeHandle }
  | { type: 'sysctl.read'; path: string }
  | { type: 'sysctl.write'; path: string; value: string }
  | { type: 'nsid.get'; target: NativeHandle }
  | {
      type: 'link.add';
      kind: string;
      name: string;
      index?: number;
      mac?: string;
      mtu?: number;
      txqueuelen?: number;
      up?: boolean;
      master?: LinkRef;
      /**
       * IFLA_IFALIAS (≤ 255 bytes, no NUL). Set by index right after the create succeeded (the
       * kernel ignores it in a create request), in the same job; a failed create marks nothing.
       */
      alias?: string;
      /** `peer.alias` only when the peer stays in this namespace (no `peer.netns`). */
      peer?: { name: string; netns?: NativeHandle; index?: number; mac?: string; mtu?: number; alias?: string };
      bridge?: { mcastSnooping?: boolean; vlanFiltering?: boolean; stp?: boolean; forwardDelay?: number };
    }
  | {
      type: 'link.set';
      link: LinkRef;
      up?: boolean;
      mac?: string;
      mtu?: number;
      txqueuelen?: number;
      name?: string;
      master?: LinkRef | null;
      /** IFLA_IFALIAS; '' removes it. */
      alias?: string;
      /** Move the link into this namespace (IFLA_NET_NS_FD). */
      moveTo?: NativeHandle;
      /** A bridge port's options (slave data, sent with RTM_NEWLINK on the existing link). */
      bridgePort?: { unicastFlood?: boolean };
    }
  | { type: 'link.del' | 'link.get'; link: LinkRef }
  | { type: 'link.list' }
  | { type: 'addr.add' | 'addr.del'; link: LinkRef; address: string; nodad?: boolean; noprefixroute?: boolean }
  | { type: 'addr.list' | 'route.list' | 'neigh.list'; family?: 4 | 6 }
  | {
      type: 'route.add' | 'route.del';
      destination: string;
      family?: 4 | 6;
      via?: string;
      dev?: LinkRef;
      metric?: number;
      table?: number;
      source?: string;
      /** rtm_protocol: who made the route (add: default RTPROT_STATIC; del: only a route of this origin). */
      protocol?: number;
      /** add: replace the route to this destination (NLM_F_REPLACE) instead of failing with EEXIST. */
      replace?: boolean;
    }
  | { type: 'neigh.add'; link: LinkRef; address: string; mac: string }
  | { type: 'neigh.del'; link: LinkRef; address: string }
  /** One nftables transaction; resolves to undefined. */
  | { type: 'nft.batch'; commands: NftCommand[] }
  /** The rules of a table (or one chain of it): resolves to NftRuleInfo[]. */
  | { type: 'nft.list'; family: NftFamily; table: string; chain?: string }
  /** The tables of one family, or of all: resolves to NftTableInfo[]. */
  | { type: 'nft.tables'; family?: NftFamily }
  /** The elements of a set or map: resolves to NftElementInfo[]. */
  | { type: 'nft.elements'; family: NftFamily; table: string; set: string }
  /**
   * Replaces the chain `chain` of legacy iptables table `table` (libiptc) and the jump rules
   * (`hooks`) into it, every rule marked with the comment `mark`, in one iptc_commit; `remove`
   * takes them away. With `vip` and `nodes` (CLUSTERIP), the namespace then answers for exactly
   * those node numbers; resolves to them (else undefined). `needs` and `hint` word an ENOENT.
   */
  | {
      type: 'iptc.commit';
      table: IptTable;
      chain: string;
      mark: string;
      rules?: IptRule[];
      hooks?: IptHook[];
      remove?: boolean;
      needs?: IptNeed[];
      hint?: string;
      vip?: string;
      nodes?: number[];
    }
  /** The chain's rules with counters: resolves to IptListedRule[], or null if there is no such chain. */
  | { type: 'iptc.list'; table: IptTable; chain: string }
  /** The CLUSTERIP node numbers the namespace answers for `vip` (set to `nodes` first if given): number[]. */
  | { type: 'clusterip.nodes'; vip: string; nodes?: number[] }
);

/** Legacy iptables tables the iptables backend uses. */
export type IptTable = 'filter' | 'mangle' | 'raw';

/** One iptables rule, as data (the native side lays it out as iptables does). */
export interface IptRule {
  /** `-i`. */
  in?: string;
  /** `-d <dst>/32` (IPv4). */
  dst?: string;
  proto?: 'tcp' | 'udp' | 'icmp';
  /** `--dport` (tcp/udp). */
  dport?: number;
  /** `-m cluster` (xt_cluster): matches when bit reciprocal_scale(jhash(saddr, seed), totalNodes) is in nodeMask. */
  cluster?: { totalNodes: number; nodeMask: number; seed: number; invert?: boolean };
  /** ACCEPT, DROP, RETURN, a chain, or the CLUSTERIP target. */
  target: string | { clusterip: IptClusterip };
}

/** `-j CLUSTERIP --new …`: node numbers are 1 … totalNodes. */
export interface IptClusterip {
  clustermac: string;
  totalNodes: number;
  localNodes: number[];
  hashMode: 'sourceip' | 'sourceip-sourceport' | 'sourceip-sourceport-destport';
  hashInit: number;
}

/** A jump from a built-in chain into the cluster's chain (the rule's target is the chain). */
export interface IptHook {
  chain: string;
  rule: Omit<IptRule, 'target'>;
}

/** An extension the rules use, named in the error when the kernel lacks it. */
export interface IptNeed {
  kind: 'match' | 'target';
  name: string;
  what: string;
}

/** A rule as `iptc.list` gives it. */
export interface IptListedRule {
  target: string;
  comment: string;
  packets: number;
  bytes: number;
  cluster?: { totalNodes: number; nodeMask: number; seed: number; invert: boolean };
  localNodes?: number[];
}

/** What each op resolves to when it succeeds (the addon's parsers make these shapes). */
export interface OpResultMap {
  'netns.create': NativeHandle;
  'netns.open': NativeHandle;
  'netns.delete': undefined;
  'netns.release': undefined;
  'sysctl.read': string;
  'sysctl.write': undefined;
  'nsid.get': number;
  'link.add': undefined;
  'link.set': undefined;
  'link.del': undefined;
  'link.get': LinkInfo;
  'link.list': LinkInfo[];
  'addr.add': undefined;
  'addr.del': undefined;
  'addr.list': AddressInfo[];
  'route.add': undefined;
  'route.del': undefined;
  'route.list': RouteInfo[];
  'neigh.add': undefined;
  'neigh.del': undefined;
  'neigh.list': NeighbourInfo[];
  'nft.batch': undefined;
  'nft.list': NftRuleInfo[];
  'nft.tables': NftTableInfo[];
  'nft.elements': NftElementInfo[];
  /** The CLUSTERIP node numbers after the commit, or undefined without `nodes`. */
  'iptc.commit': number[] | undefined;
  'iptc.list': IptListedRule[] | null;
  'clusterip.nodes': number[];
}
/** Every op type has its result type (a compile error here means OpResultMap misses one). */
type Exhaustive<T extends never> = T;
export type OpResultsComplete = Exhaustive<Exclude<NativeOp['type'], keyof OpResultMap>>;

/** What op `O` resolves to when it succeeds. */
export type ResultOf<O extends NativeOp> = OpResultMap[O['type']];
/** One entry of a job's results: the op's value, its kernel error, or null if skipped after an earlier failure. */
export type Outcome<O extends NativeOp> = ResultOf<O> | KernelError | null;
/** A job's results, one per op, typed per op when the ops are a tuple. */
export type Outcomes<O extends readonly NativeOp[]> = { -readonly [K in keyof O]: Outcome<O[K]> };
/** Any op's outcome. */
export type NativeResult = Outcome<NativeOp>;

export interface Binding {
  /**
   * Runs ops in order on the addon's own thread. Consecutive netlink requests to one namespace are
   * pipelined. Resolves with one entry per op: its value, an Error (with code/errno/syscall/extack),
   * or null when skipped after an earlier failure (only with stopOnError).
   */
  submit<const O extends readonly NativeOp[]>(ops: O, stopOnError: boolean): Promise<Outcomes<O>>;
  /**
   * Takes an exclusive open-file-description lock (F_OFD_SETLK) on `path` (created 0600, never
   * following a symlink, regular files only), then truncates the file and writes `content` into it.
   * Returns the fd holding the lock. Throws code EAGAIN (= EWOULDBLOCK) if another holder has it.
   */
  lockFile(path: string, content?: string): number;
  /**
   * Whether some open file description (in any process, this one included) holds a lock on `path`.
   * Only asks (F_OFD_GETLK): never takes the lock, so it never makes a concurrent lockFile fail;
   * never creates the file (false when it does not exist).
   */
  lockHeld(path: string): boolean;
  /** Releases a lock taken with lockFile. */
  unlockFile(fd: number): void;
  /**
   * sd_notify(3): sends `message` (KEY=VALUE lines) as one datagram to the service manager's
   * socket `socketPath` ($NOTIFY_SOCKET: an absolute path, or `@name` in the abstract namespace).
   * Never blocks. Throws a kernel error (code, syscall `sendto`) if it cannot be sent.
   */
  sdNotify(socketPath: string, message: string): void;
  /**
   * A handle for the namespace a later `netns.create` op with `into` will make at `path`. Ops for
   * it can be submitted at once, in later jobs: a job that needs it runs once the namespace exists;
   * if the create failed, that job (with stopOnError) does nothing and fails with ENOENT.
   */
  reserveNetns(path: string): NativeHandle;
}

/** The directory of this package (the one whose package.json is named netns-cluster). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'netns-cluster') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('netns-cluster: cannot find the package root');
    dir = up;
  }
}

/** glibc or musl: the libc the prebuilt binaries are tagged with. */
function libc(): string {
  const report = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  return report?.glibcVersionRuntime ? 'glibc' : 'musl';
}

/**
 * What to do when the addon does not load, for where it is: a checkout of the repository (has
 * scripts/bootstrap.sh and the TypeScript sources) or an installed package (has neither).
 */
export function loadAdvice(root: string, cause: string): string {
  const checkout = existsSync(join(root, 'scripts', 'bootstrap.sh')) && existsSync(join(root, 'tsconfig.json'));
  const lib = /lib(mnl|nftnl)\.so[.\d]*/.exec(cause);
  if (lib) {
    // The binary is there; a shared library it links is not.
    const pkg = lib[1] === 'mnl' ? 'libmnl0' : 'libnftnl11';
    return `It needs the shared library ${lib[0]}: install it (Debian/Ubuntu: apt-get install ${pkg}).`;
  }
  if (checkout) {
    return 'Build it with "sudo bash scripts/bootstrap.sh" (installs g++, make, python3, pkg-config, libmnl-dev and libnftnl-dev on Debian/Ubuntu, then builds), or "npm run build:native".';
  }
  const tag = `${process.platform}-${process.arch} (${libc()})`;
  return (
    `This package has no prebuilt binary for ${tag}. Build one from the sources it ships: install g++, make, python3, ` +
    `pkg-config, libmnl-dev and libnftnl-dev (Debian/Ubuntu: apt-get install build-essential python3 pkg-config libmnl-dev libnftnl-dev), ` +
    `then run "npm rebuild netns-cluster" in the project that depends on it.`
  );
}

function load(): Binding {
  const root = packageRoot();
  const require = createRequire(import.meta.url);
  try {
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
    return nodeGypBuild(root) as Binding;
  } catch (err) {
    const cause = (err as Error).message;
    const e = new Error(
      `netns-cluster: the native addon could not be loaded from ${root} ` +
        `(tried prebuilds/${process.platform}-${process.arch}/ and build/Release/). ${loadAdvice(root, cause)} Cause: ${cause}`,
      { cause: err },
    );
    (e as NodeJS.ErrnoException).code = 'ERR_NETNS_CLUSTER_ADDON';
    throw e;
  }
}

let loaded: Binding | undefined;

/** The native addon, loaded on first use. */
export function binding(): Binding {
  loaded ??= load();
  return loaded;
}
