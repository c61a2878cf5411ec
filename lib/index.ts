/**
 * netns-cluster: one Linux host, many network namespaces sharing one virtual IP.
 *
 * The low-level API (this release): {@link Netns} for namespaces, links, addresses, routes,
 * neighbours and sysctls over rtnetlink, and {@link Batch} to pipeline many changes in one call.
 * @module
 */
export { Netns, Batch, BatchScope, NETNS_RUN_DIR } from './netns.js';
export { InvalidArgumentError, BatchError, isKernelError, type KernelError } from './errors.js';
export type { LinkInfo, AddressInfo, RouteInfo, NeighbourInfo } from './types.js';
export type {
  VethOptions,
  BridgeOptions,
  DummyOptions,
  LinkChanges,
  AddressOptions,
  RouteSpec,
  LinkCommon,
} from './ops.js';
export { MAX_IFNAME_BYTES } from './validate.js';
