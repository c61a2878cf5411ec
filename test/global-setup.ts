// Fails the run if the tests left anything behind: namespaces, links in the root namespace,
// mounts under /run/netns or nft tables in the root namespace that were not there before.
import { snapshotHost, diffSnapshots } from './leftovers.js';

let before: ReturnType<typeof snapshotHost>;

export function setup(): void {
  before = snapshotHost();
}

export function teardown(): void {
  const leaked = diffSnapshots(before, snapshotHost());
  if (leaked.length) {
    process.exitCode = 1;
    throw new Error(`tests left objects behind on this machine:\n  ${leaked.join('\n  ')}`);
  }
}
