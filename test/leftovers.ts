// Independent views of the machine's state (through iproute2 and nft, not through the library).
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';

function lines(cmd: string, args: string[]): string[] {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
  } catch {
    return [];
  }
}

export interface HostSnapshot {
  netns: string[];
  links: string[];
  mounts: string[];
  nft: string[];
  /** Entries of /run/netns-cluster (state files, locks, runtime directories). */
  runtime: string[];
  /** Service cgroups: <cgroup2>/netns-cluster/<cluster>. */
  cgroups: string[];
}

function entries(dir: string): string[] {
  try {
    return readdirSync(dir).map((f) => `${dir}/${f}`);
  } catch {
    return [];
  }
}

/** Where cgroup2 is mounted (here /sys/fs/cgroup/unified; elsewhere usually /sys/fs/cgroup). */
export function cgroup2Roots(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(' - cgroup2 '))
    .map((l) => l.split(' ')[4]);
}

export function snapshotHost(): HostSnapshot {
  return {
    netns: lines('ip', ['netns', 'list']).map((l) => l.split(' ')[0]),
    links: (JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })) as { ifname: string }[]).map(
      (l) => l.ifname,
    ),
    mounts: readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((m) => m?.startsWith('/run/netns/')),
    nft: lines('nft', ['list', 'tables']),
    runtime: entries('/run/netns-cluster'),
    // The clusters' groups (directories), not the control files every cgroup directory has.
    cgroups: cgroup2Roots().flatMap((root) => entries(`${root}/netns-cluster`).filter((p) => statSync(p).isDirectory())),
  };
}

export function diffSnapshots(a: HostSnapshot, b: HostSnapshot): string[] {
  const out: string[] = [];
  for (const k of Object.keys(a) as (keyof HostSnapshot)[]) {
    const extra = b[k].filter((x) => !a[k].includes(x));
    if (extra.length) out.push(`${k}: ${extra.join(', ')}`);
  }
  return out;
}
