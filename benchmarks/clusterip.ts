/**
 * The classic way with CLUSTERIP (issue 11, item 3): setup and teardown latency of a flood-mode
 * cluster whose nodes keep their share with the CLUSTERIP target, built two ways in the same run:
 *
 *   (a) `netns-cluster`: createCluster({ …, mode: 'flood', backend: 'iptables', iptables: { variant:
 *       'clusterip' } }) / cluster.close(). It also installs its nftables bridge table in the host
 *       (lib/rules/iptables-backend.ts), which the classic setup did not have.
 *   (b) `bash`: the classic multi-instance script, one command per step: `ip netns add`, the bridge,
 *       one veth per node, addresses, and in every node namespace
 *       `iptables -A INPUT -d VIP -i eth0 -j CLUSTERIP --new --hashmode sourceip --clustermac …
 *       --total-nodes N --local-node k --hash-init SEED` (legacy iptables: the only way to the target).
 *
 * N = 1 and 16 by default (--sizes), flood mode only. Each repetition runs both ways, the order
 * alternating (odd repetitions bash first, even ones createCluster first); setup/teardown are timed as there
 * (teardown until the last node namespace's devices are really gone). Before timing, one warm-up
 * per way checks that every node namespace holds a CLUSTERIP rule for the VIP (`iptables -S`).
 *
 * The CLUSTERIP target was removed in Linux 6.3: where it is missing (this project's 6.18 hosts) the
 * part is skipped with the kernel's reason, found by a real attempt (the library's own build, which
 * fails with code ENOENT naming the module). Run it in the Linux 6.1 guest:
 * `bash scripts/kernel-guest.sh -- node dist/benchmarks/main.js --only clusterip --reps 5`.
 * Guest times are emulated (qemu TCG): only the ratio within one run means anything.
 * @module
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import type { Netns } from '../lib/index.js';
import { createCluster, resolveSpec, type ClusterSpec } from '../lib/index.js';
import { planCluster } from '../lib/cluster/plan.js';
import { CMAC } from '../lib/rules/ruleset.js';
import { clusterNames } from '../lib/util/names.js';
import { HOST, NAME, UPLINK, VIP, VIP_PREFIX, liveClusters, ms, run, shellWord, stats, type Stats } from './common.js';
import { DAD_SYSCTL, SEED, hostIpSteps, ipLine, libraryWay, measure, nodeIpSteps, writeScript, type Case, type Sample, type Way } from './cluster-setup.js';

const NAMES = clusterNames(NAME);

export interface ClusteripRow {
  n: number;
  reps: number;
  bash: { setup: Stats; teardown: Stats };
  lib: { setup: Stats; teardown: Stats };
}

export interface ClusteripResult {
  skipped?: string;
  kernel: string;
  rows: ClusteripRow[];
}

export function clusteripSpec(n: number): ClusterSpec {
  return {
    name: NAME, nodes: n, vip: `${VIP}/${VIP_PREFIX}`, mode: 'flood', hostNetns: HOST, uplink: { bridge: UPLINK }, seed: SEED,
    backend: 'iptables', iptables: { variant: 'clusterip' }, hash: 'sourceip',
  };
}

/** (b) the classic script: ip + one legacy `iptables -j CLUSTERIP` rule per node. */
function bashWay(): Way {
  const scripts = new Map<number, { setup: string; teardown: string }>();
  return {
    id: 'bash',
    prepare(c) {
      const lines: string[] = [];
      for (const node of c.nodes) lines.push(ipLine({ args: ['netns', 'add', node] }));
      for (const node of c.nodes) lines.push(`ip netns exec ${shellWord(node)} sysctl -qw ${DAD_SYSCTL}`);
      lines.push(...hostIpSteps(c, false).map(ipLine));
      c.nodes.forEach((node, k) => {
        lines.push(...nodeIpSteps(c, k).map((args) => ipLine({ ns: node, args })));
        lines.push(
          `ip netns exec ${shellWord(node)} iptables -A INPUT -d ${VIP} -i eth0 -j CLUSTERIP --new --hashmode sourceip` +
            ` --clustermac ${CMAC} --total-nodes ${c.n} --local-node ${k + 1} --hash-init ${SEED >>> 0}`,
        );
      });
      const down = [
        ...c.nodes.map((node) => ipLine({ args: ['netns', 'del', node] })),
        ipLine({ ns: HOST, args: ['link', 'set', UPLINK, 'nomaster'] }),
        ipLine({ ns: HOST, args: ['link', 'del', NAMES.bridge] }),
      ];
      scripts.set(c.n, { setup: writeScript(`cip-bash-setup-${c.n}.sh`, lines), teardown: writeScript(`cip-bash-teardown-${c.n}.sh`, down) });
    },
    setup: async (c) => void (await run(['bash', scripts.get(c.n)!.setup])),
    teardown: async (c) => void (await run(['bash', scripts.get(c.n)!.teardown])),
  };
}

/** Every node namespace must hold a CLUSTERIP rule for the VIP (checked after each way's warm-up build). */
function checkRules(way: Way, c: Case): void {
  const bad: string[] = [];
  for (const node of c.nodes) {
    const text = execFileSync('ip', ['netns', 'exec', node, 'iptables', '-t', 'filter', '-S'], { encoding: 'utf8' });
    const rule = text.split('\n').find((l) => l.includes('-j CLUSTERIP') && l.includes(`${VIP}/32`));
    if (!rule) bad.push(`${node}: no CLUSTERIP rule for ${VIP}:\n${text}`);
  }
  if (bad.length) throw new Error(`${way.id} N=${c.n}: ${bad.slice(0, 3).join('\n')}`);
}

/** Why the CLUSTERIP target cannot be used here, or undefined: a real N = 1 build by the library. */
async function unavailable(): Promise<string | undefined> {
  try {
    const cl = await createCluster(clusteripSpec(1));
    liveClusters.add(cl);
    await cl.close();
    liveClusters.delete(cl);
    return undefined;
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return `this kernel (${os.release()}) has no CLUSTERIP target: ${(e as Error).message}`;
    throw e;
  }
}

export async function benchmarkClusterip(o: { sizes: number[]; reps: number; log: (s: string) => void }, observer: Netns): Promise<ClusteripResult> {
  const kernel = os.release();
  const why = await unavailable();
  if (why) {
    o.log(`clusterip part skipped: ${why.replace(/\s+/g, ' ')}`);
    return { skipped: why, kernel, rows: [] };
  }
  const lib = libraryWay((c) => clusteripSpec(c.n));
  const ways = [lib, bashWay()];
  const rows: ClusteripRow[] = [];
  for (const n of o.sizes) {
    const spec = resolveSpec(clusteripSpec(n));
    const c: Case = { n, mode: 'flood', spec, plan: planCluster(spec), nodes: Array.from({ length: n }, (_, k) => NAMES.nodeNetns(k)) };
    // Warm-up, the library first (its cluster gives the MACs and addresses the script uses); each checked.
    for (const w of ways) {
      if (w !== lib) w.prepare(c);
      const s = await measure({ ...w, setup: async (cc) => { await w.setup(cc); checkRules(w, cc); } }, c, observer, false);
      o.log(`clusterip N=${n} warm-up ${w.id} (CLUSTERIP rule in all ${n} nodes): setup ${ms(s.setup)} ms, teardown ${ms(s.teardown)} ms`);
    }
    const samples = new Map<string, Sample[]>(ways.map((w) => [w.id, []]));
    for (let rep = 1; rep <= o.reps; rep++) {
      for (const w of rep % 2 ? [...ways].reverse() : ways) {
        const s = await measure(w, c, observer, false);
        samples.get(w.id)!.push(s);
        o.log(`clusterip N=${n} rep ${rep}/${o.reps} ${w.id}: setup ${ms(s.setup)} ms, teardown ${ms(s.teardown)} ms`);
      }
    }
    const sum = (id: string) => ({ setup: stats(samples.get(id)!.map((s) => s.setup)), teardown: stats(samples.get(id)!.map((s) => s.teardown)) });
    const row = { n, reps: o.reps, bash: sum('bash'), lib: sum('netns-cluster') };
    rows.push(row);
    o.log(`clusterip N=${n}: bash/createCluster setup ${(row.bash.setup.median / row.lib.setup.median).toFixed(2)}×, teardown ${(row.bash.teardown.median / row.lib.teardown.median).toFixed(2)}×`);
  }
  return { kernel, rows };
}

export function renderClusterip(r: ClusteripResult, date: string): string {
  const out = [`## CLUSTERIP: classic bash vs createCluster (backend 'iptables', variant clusterip, flood)`, ''];
  out.push(`Kernel ${r.kernel}, ${date}.`);
  if (r.skipped) return [...out, '', `Skipped: ${r.skipped}`].join('\n');
  out.push(
    'Medians; the two ways interleaved in one run, the order alternating per repetition. Absolute times: **this run, emulated guest** ' +
      '(qemu TCG when run through scripts/kernel-guest.sh), so only the ratios within this run count.',
    '',
    '| N | reps | setup bash / createCluster | teardown bash / close() | bash setup ms | createCluster ms | bash teardown ms | close() ms |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const x of r.rows)
    out.push(
      `| ${x.n} | ${x.reps} | ${(x.bash.setup.median / x.lib.setup.median).toFixed(2)}× | ${(x.bash.teardown.median / x.lib.teardown.median).toFixed(2)}× | ` +
        `${ms(x.bash.setup.median)} | ${ms(x.lib.setup.median)} | ${ms(x.bash.teardown.median)} | ${ms(x.lib.teardown.median)} |`,
    );
  return out.join('\n');
}
