/**
 * Loads the native addon and declares exactly what it accepts and returns. Everything else in the
 * library talks to the kernel through {@link binding}.
 * @module
 */
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** An open namespace file held by the addon (opaque). */
export interface NativeHandle {
  readonly __nativeNetnsHandle: unique symbol;
}

type LinkRef = string | number;

/** One request for the addon's worker thread. `netns` absent means the caller's own namespace. */
export type NativeOp = { netns?: NativeHandle } & (
  | { type: 'netns.create' | 'netns.delete' | 'netns.open'; path: string }
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
      peer?: { name: string; netns?: NativeHandle; index?: number; mac?: string; mtu?: number };
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
      /** Move the link into this namespace (IFLA_NET_NS_FD). */
      moveTo?: NativeHandle;
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
    }
  | { type: 'neigh.add'; link: LinkRef; address: string; mac: string }
  | { type: 'neigh.del'; link: LinkRef; address: string }
);

/** The value a successful op resolves to (see the TS layer for the shapes), an Error, or null if skipped. */
export type NativeResult = unknown;

export interface Binding {
  /**
   * Runs ops in order on the addon's own thread. Consecutive netlink requests to one namespace are
   * pipelined. Resolves with one entry per op: its value, an Error (with code/errno/syscall/extack),
   * or null when skipped after an earlier failure (only with stopOnError).
   */
  submit(ops: NativeOp[], stopOnError: boolean): Promise<NativeResult[]>;
}

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'netns-cluster') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('netns-cluster: cannot find the package root');
    dir = up;
  }
}

function load(): Binding {
  const root = packageRoot();
  const require = createRequire(import.meta.url);
  try {
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
    return nodeGypBuild(root) as Binding;
  } catch (err) {
    const e = new Error(
      `netns-cluster: the native addon could not be loaded from ${root} ` +
        `(tried prebuilds/${process.platform}-${process.arch}/ and build/Release/). ` +
        `Build it with "npm run build:native" (needs g++, make, python3, libmnl-dev and libnftnl-dev; ` +
        `"bash scripts/bootstrap.sh" installs them on Debian/Ubuntu). Cause: ${(err as Error).message}`,
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
