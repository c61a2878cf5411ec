/**
 * How a node's service sees the file system: netns-exec gives it a mount namespace of its own
 * with `/etc/netns/<netns>/<entry>` bound over `/etc/<entry>`, as `ip netns exec` does.
 * @module
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Where the node's process finds `path`: netns-exec binds `/etc/netns/<netns>/<entry>` over
 * `/etc/<entry>` in the node's mount namespace (as `ip netns exec` does).
 */
export function nodeView(path: string, netns: string | undefined): string {
  if (!netns || !path.startsWith('/etc/')) return path;
  const [entry, ...rest] = path.slice('/etc/'.length).split('/');
  const over = join('/etc/netns', netns, entry);
  try {
    statSync(over);
  } catch {
    return path;
  }
  return join(over, ...rest);
}
