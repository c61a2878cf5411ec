// Calls at the wrong moment: a second controller, a destroy of a live cluster, calls on a closed
// cluster. Each is refused with a code and a message that says what to do; nothing is left.
import { createCluster, destroyCluster, Netns, type Cluster } from '../../lib/index.js';
import type { BadInputCase, CaseContext } from './types.js';

/** A small live cluster in a host namespace of the case's own, closed (and its host deleted) after `fn`. */
async function withCluster<T>(c: CaseContext, fn: (cluster: Cluster, spec: object) => Promise<T>): Promise<T> {
  const host = await Netns.create(`${c.prefix}h`);
  let cluster: Cluster | undefined;
  try {
    await host.addVeth({ name: 'up0', peer: { name: 'up0p' } });
    const spec = { name: `${c.prefix}c`, nodes: 2, vip: '192.0.2.1/24', hostNetns: host.name, uplink: { bridge: 'up0' } };
    cluster = await createCluster(spec as never);
    return await fn(cluster, spec);
  } finally {
    await cluster?.close();
    await host.delete();
  }
}

const closed = async (c: CaseContext, call: (cluster: Cluster) => unknown) =>
  withCluster(c, async (cluster) => {
    await cluster.close();
    return call(cluster);
  });

export const cases: BadInputCase[] = [
  {
    name: 'a second controller for a running name',
    run: (c) => withCluster(c, (_, spec) => createCluster(spec as never)),
    expect: { code: 'EBUSY', message: /is already managed by process \d+; stop that one first/ },
  },
  {
    name: 'destroyCluster of a running cluster',
    run: (c) => withCluster(c, (cluster) => destroyCluster(cluster.name)),
    expect: { code: 'EBUSY', message: /is running \(its controller, process \d+, holds .*\.lock\); stop it instead/ },
  },
  { name: 'moveBuckets on a closed cluster', run: (c) => closed(c, (x) => x.moveBuckets({ 0: 1 })), expect: { code: 'ERR_CLUSTER_CLOSED', message: /is closed; create it again/ } },
  { name: 'setNodeState on a closed cluster', run: (c) => closed(c, (x) => x.setNodeState(0, 'down')), expect: { code: 'ERR_CLUSTER_CLOSED', message: /is closed; create it again/ } },
  { name: 'counters on a closed cluster', run: (c) => closed(c, (x) => x.counters()), expect: { code: 'ERR_CLUSTER_CLOSED', message: /is closed; create it again/ } },
  { name: 'status on a closed cluster', run: (c) => closed(c, (x) => x.status()), expect: { code: 'ERR_CLUSTER_CLOSED', message: /is closed; create it again/ } },
  { name: 'start on a closed cluster', run: (c) => closed(c, (x) => x.start()), expect: { code: 'ERR_CLUSTER_CLOSED', message: /is closed; create it again/ } },
  {
    name: 'start without a service',
    run: (c) => withCluster(c, (x) => x.start()),
    expect: { code: 'ERR_INVALID_ARG_VALUE', field: 'service', message: /the cluster has no service; give one in the spec/ },
  },
  {
    name: 'moveBuckets to a node that does not exist',
    run: (c) => withCluster(c, (x) => x.moveBuckets({ 0: 7 })),
    expect: { code: 'ERR_INVALID_ARG_VALUE', field: 'moves[0]', message: /node must be 0 to 1 \(or -1 for none\), got 7/ },
  },
  {
    name: 'moveBuckets of a bucket that does not exist',
    run: (c) => withCluster(c, (x) => x.moveBuckets({ 64: 0 })),
    expect: { code: 'ERR_INVALID_ARG_VALUE', field: 'moves[64]', message: /bucket must be 0 to 63/ },
  },
  {
    name: 'setNodeState with a bad state',
    run: (c) => withCluster(c, (x) => x.setNodeState(0, 'sideways' as never)),
    expect: { code: 'ERR_INVALID_ARG_VALUE', field: 'state', message: /must be 'up' or 'down'/ },
  },
  {
    name: 'setNodeState of a node that does not exist',
    run: (c) => withCluster(c, (x) => x.setNodeState(2, 'down')),
    expect: { code: 'ERR_INVALID_ARG_VALUE', field: 'index', message: /node must be 0 to 1/ },
  },
  {
    name: 'bucketOf an address of a family without a VIP',
    run: (c) => withCluster(c, async (x) => x.bucketOf({ address: '2001:db8::5' })),
    expect: { code: 'ERR_INVALID_ARG_VALUE', field: 'address', message: /the cluster has no IPv6 VIP/ },
  },
];
