/** Names of the kernel objects a cluster called `name` creates: one place, so every part agrees. @module */
import { InvalidArgumentError } from './errors.js';
import { show } from './shape.js';

/** A cluster name's longest length: `<name>v255` must fit the kernel's 15-byte interface names. */
export const MAX_NAME_BYTES = 10;
const NAME_RULE = /^[a-z][a-z0-9-]*$/;

/**
 * The one rule for cluster names, used by the spec and by every entry point that takes a name
 * (destroy, sweep, the state/lock/runtime paths, the CLI): a name can never reach a path or a
 * kernel object name unchecked.
 */
export function checkClusterName(field: string, name: unknown): string {
  if (typeof name !== 'string' || !NAME_RULE.test(name)) {
    const shown = typeof name === 'string' ? show(name) : name === null ? 'null' : typeof name === 'object' ? 'an object' : `a ${typeof name}`;
    throw new InvalidArgumentError(field, `${shown} is not a cluster name: it must start with a letter and use only a-z, 0-9 and '-'`);
  }
  if (name.length > MAX_NAME_BYTES)
    throw new InvalidArgumentError(field, `'${name}' is ${name.length} bytes; at most ${MAX_NAME_BYTES}, so that interface names such as '${name}v255' fit in 15 bytes`);
  return name;
}

/**
 * The mark on everything cluster `name` creates: the alias (IFLA_IFALIAS) of its links and of the
 * loopback in its node namespaces, and the comment of its nft tables. Teardown, destroy and sweep
 * delete only objects that carry it.
 */
export function markOf(name: string): string {
  return `netns-cluster:${name}`;
}

/** Whether `name` is a valid cluster name. */
export function isClusterName(name: unknown): name is string {
  return typeof name === 'string' && NAME_RULE.test(name) && name.length <= MAX_NAME_BYTES;
}

export function clusterNames(name: string) {
  return {
    /** nft table, in the host (bridge family) and in every node (inet family). */
    table: `nc-${name}`,
    bridge: `${name}br`,
    outerVeth: (k: number) => `${name}v${k}`,
    nodeNetns: (k: number) => `${name}-n${k}`,
    routedUplinkPort: `${name}up`,
    routedGateway: `${name}gw`,
  };
}
