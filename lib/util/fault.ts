/**
 * Fault points for crash tests: with `NETNS_CLUSTER_FAULT=<point>` in its environment, a process
 * kills itself with SIGKILL when it reaches that point, exactly as a crash there would. The points
 * are the steps between taking a cluster's lock and releasing it (see {@link FAULT_POINTS}).
 * Without the variable this is one environment lookup.
 * @module
 */

/** Every fault point, in the order a cluster's life reaches them. */
export const FAULT_POINTS = [
  'create:locked',
  'create:state-written',
  'create:namespaces-created',
  'create:built',
  'start:network-prepared',
  'start:services-spawned',
  'start:done',
  'close:begin',
  'close:services-stopped',
  'remove:processes-killed',
  'remove:namespaces-deleted',
  'remove:host-cleaned',
  'close:state-removed',
  'destroy:locked',
  'destroy:state-removed',
] as const;

export type FaultPoint = (typeof FAULT_POINTS)[number];

export function faultPoint(point: FaultPoint): void {
  if (process.env.NETNS_CLUSTER_FAULT === point) process.kill(process.pid, 'SIGKILL');
}
