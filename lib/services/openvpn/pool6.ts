/**
 * IPv6 client pools: node k serves the k-th block of the cluster's IPv6 client range
 * (`server-ipv6` per node), as node k serves the k-th IPv4 block.
 * @module
 */
import { isIPv6 } from 'node:net';
import { InvalidArgumentError } from '../../util/errors.js';
import { addressValue, nthHost } from '../../util/ipmath.js';
import { show } from '../../util/shape.js';
import { checkUint } from '../../util/validate.js';

export interface Pool6Spec {
  /** The first node's IPv6 client network, e.g. `fd00:8::`. Node k gets the k-th block after it. */
  base: string;
  /** Prefix length of each node's block: 64 to 124 (what OpenVPN's `server-ipv6` takes). Default 112. */
  prefix?: number;
}

/** OpenVPN's `server-ipv6` takes /64 to /124. */
export const POOL6_PREFIX = { min: 64, max: 124, default: 112 } as const;

export interface NodePool6 {
  /** e.g. `fd00:8::1:0`. */
  network: string;
  prefix: number;
  /** The server's own tunnel address (the block's first host), e.g. `fd00:8::1:1`. */
  serverAddress: string;
}

/** Node k's IPv6 client network: the k-th block of 2^(128-prefix) addresses after `pool6.base`. */
export function nodePool6(index: number, pool6: Pool6Spec): NodePool6 {
  checkUint('index', index, 0, 0xffff);
  if (typeof pool6?.base !== 'string' || !isIPv6(pool6.base) || pool6.base.includes('%'))
    throw new InvalidArgumentError('pool6.base', `${show(pool6?.base)} is not an IPv6 network address such as fd00:8::`);
  const prefix = checkUint('pool6.prefix', pool6.prefix ?? POOL6_PREFIX.default, POOL6_PREFIX.min, POOL6_PREFIX.max);
  const size = 1n << BigInt(128 - prefix);
  const base = addressValue(pool6.base);
  if (base % size !== 0n) {
    const aligned = nthHost({ address: pool6.base, prefix, family: 6 }, 0);
    throw new InvalidArgumentError('pool6.base', `${pool6.base} is not aligned to a /${prefix} block; use ${aligned}`);
  }
  const network = base + BigInt(index) * size;
  if (network + size > 1n << 128n) throw new InvalidArgumentError('index', `node ${index}'s /${prefix} IPv6 pool after ${pool6.base} runs past the end of IPv6`);
  const zero = { address: '::', prefix: 0, family: 6 as const };
  return { network: nthHost(zero, network), prefix, serverAddress: nthHost(zero, network + 1n) };
}
