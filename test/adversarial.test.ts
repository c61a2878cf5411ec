// An adversarial kill-9 fault run and race run, written apart from test/crash.test.ts: controllers
// in processes of their own are SIGKILLed at random moments over their whole life (build, start of
// a service that double-forks and calls setsid, steady state, close) and recovered by a random one
// of destroyCluster, `netns-cluster down` and `netns-cluster sweep --prefix`; then iproute2, nft,
// /proc and /sys/fs/cgroup are asked, independently of the library, whether anything of the cluster
// remains, and whether the decoys a user made with similar names (a namespace, a veth, an inet
// table) are untouched. Races: destroy/down/sweep/list/status in processes of their own against a
// controller creating the same name; a live cluster must never be broken. Also odd runtime-directory
// contents (symlinks out of /run/netns-cluster) that destroy, down and sweep must not follow.
//
// CI runs a sample; NETNS_CLUSTER_FULL_FAULTS=1 runs 120 fault runs and 60 race runs.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { destroyCluster, sweepClusters, RUNTIME_DIR } from '../lib/index.js';
import { CLI, describeAsRoot, ipj, runCli, scratch, markedProcesses, SLOWDOWN } from './helpers.js';
import { cgroup2Roots } from './leftovers.js';

const FULL = process.env.NETNS_CLUSTER_FULL_FAULTS === '1';
const FAULT_RUNS = FULL ? 120 : 10;
const RACE_RUNS = FULL ? 60 : 8;
const fixture = (f: string) => fileURLToPath(new URL(`./fixtures/${f}`, import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)];



const nftTables = (ns: string) => execFileSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'tables'], { encoding: 'utf8' });

/** Everything of cluster `name` on the machine, found without the library (empty: nothing left). */
function traces(name: string, host: string): string[] {
  const t: string[] = [];
  for (const n of readdirSync('/run/netns')) if (n.startsWith(`${name}-`) && n !== `${name}-n9`) t.push(`netns ${n}`);
  for (const l of ipj<{ ifname: string; ifalias?: string }[]>('-n', host, '-d', 'link')) {
    if (l.ifname.startsWith(name) && l.ifname !== `${name}v9` && l.ifname !== `${name}p9`) t.push(`link ${l.ifname}`);
    if (l.ifalias === `netns-cluster:${name}`) t.push(`marked link ${l.ifname}`);
  }
  for (const l of nftTables(host).split('\n')) if (l.includes(`nc-${name}`) && l.trim() !== `table inet nc-${name}`) t.push(`nft ${l.trim()}`);
  for (const m of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) if (m.includes(`/run/netns/${name}-n`) && !m.includes(`/run/netns/${name}-n9 `)) t.push(`mount ${m.split(' ')[4]}`);
  for (const f of existsSync(RUNTIME_DIR) ? readdirSync(RUNTIME_DIR) : []) if (f === name || f.startsWith(`${name}.`)) t.push(`file ${f}`);
  for (const p of markedProcesses(name)) t.push(`process ${p}`);
  for (const root of cgroup2Roots()) if (existsSync(join(root, 'netns-cluster', name))) t.push(`cgroup ${join(root, 'netns-cluster', name)}`);
  return t;
}

/** A user's own objects with the cluster's names, which no recovery may touch. */
function makeDecoys(name: string, host: string): void {
  execFileSync('ip', ['netns', 'add', `${name}-n9`]);
  execFileSync('ip', ['-n', host, 'link', 'add', `${name}v9`, 'type', 'veth', 'peer', 'name', `${name}p9`]);
  execFileSync('ip', ['netns', 'exec', host, 'nft', 'add', 'table', 'inet', `nc-${name}`]);
}
function decoysIntact(name: string, host: string): string[] {
  const missing: string[] = [];
  if (!existsSync(`/run/netns/${name}-n9`)) missing.push(`netns ${name}-n9`);
  const links = ipj<{ ifname: string }[]>('-n', host, 'link').map((l) => l.ifname);
  if (!links.includes(`${name}v9`)) missing.push(`link ${name}v9`);
  if (!nftTables(host).includes(`table inet nc-${name}\n`)) missing.push(`table inet nc-${name}`);
  return missing;
}
function removeDecoys(name: string, host: string): void {
  for (const args of [
    ['netns', 'del', `${name}-n9`],
    ['-n', host, 'link', 'del', `${name}v9`],
    ['netns', 'exec', host, 'nft', 'delete', 'table', 'inet', `nc-${name}`],
  ]) {
    try {
      execFileSync('ip', args, { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  }
}

function uplink(host: string): { master?: string; up: boolean } {
  const l = ipj<{ master?: string; flags: string[] }[]>('-n', host, 'link', 'show', 'up0')[0];
  return { master: l.master, up: l.flags.includes('UP') };
}

/** A process of our own; `out` collects its stdout, `exited` resolves with [code, signal]. */
function start(args: string[]) {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) => child.on('exit', (c, s) => r([c, s])));
  return { child, exited, out: () => out, err: () => err };
}

async function recover(how: 'destroy' | 'down' | 'sweep', name: string): Promise<void> {
  if (how === 'destroy') await destroyCluster(name);
  else if (how === 'sweep') expect(await sweepClusters({ prefix: name })).toEqual(expect.any(Array));
  else {
    const r = await runCli('down', name);
    expect(r.code, r.stderr).toBe(0);
  }
}

describeAsRoot('adversarial fault and race runs', () => {
  const s = scratch('av');
  let host: string;
  beforeAll(async () => {
    const [h] = await s.make('h');
    host = h.name!;
    // The bridged uplink starts DOWN: every recovery must leave it released and down.
    await h.addVeth({ name: 'up0', peer: { name: 'up0p' } });
  });
  afterAll(async () => {
    for (const f of existsSync(RUNTIME_DIR) ? readdirSync(RUNTIME_DIR) : []) if (f.startsWith(s.prefix)) rmSync(join(RUNTIME_DIR, f), { recursive: true, force: true });
    await s.cleanup();
  });

  /** Whatever a failed run left: its controller (ours), its cluster, its decoys. */
  async function cleanupRun(name: string, p: ReturnType<typeof start> | undefined): Promise<void> {
    if (p && p.child.exitCode === null && p.child.signalCode === null) {
      p.child.kill('SIGKILL');
      await p.exited;
    }
    await destroyCluster(name).catch(() => undefined);
    removeDecoys(name, host);
  }

  let seq = 0;
  // Fixed width, so that no name is a prefix of another (sweep --prefix takes the exact run's name).
  const nextName = () => `${s.prefix}${(seq++).toString(36).padStart(2, '0')}`;
  const specFor = (name: string) => ({
    name,
    nodes: 2,
    vip: '192.0.2.1/24',
    mode: 'flood',
    hostNetns: host,
    uplink: { bridge: 'up0' },
    // Forks three ways: a setsid'd daemon (leaves the process group), a double fork, an exec.
    service: { command: ['sh', '-c', 'setsid -f sleep 3000; (sleep 3001 &); exec sleep 3002'], env: { NCMARK: name }, stopTimeoutMs: 2000 },
  });

  it(`controllers SIGKILLed at random moments of their life (${FAULT_RUNS} runs): recovery leaves nothing, decoys untouched`, async () => {
    const tally: Record<string, number> = {};
    let life = 400;
    for (let i = 0; i < FAULT_RUNS; i++) {
      const name = nextName();
      makeDecoys(name, host);
      let p: ReturnType<typeof start> | undefined;
      try {
        // Where in its life: from spawn (build, service start), after ready (steady state), or during close.
        const phase = pick(['from-spawn', 'steady', 'closing'] as const);
        p = start([fixture('fault-controller.mjs'), JSON.stringify(specFor(name)), ...(phase === 'closing' ? ['close'] : [])]);
        const t0 = Date.now();
        let delay = 0;
        if (phase === 'from-spawn') {
          delay = Math.floor(Math.random() * life);
          await sleep(delay);
        } else {
          while (!p.out().includes('ready') && p.child.exitCode === null && p.child.signalCode === null) await sleep(2);
          life = Math.max(life, Date.now() - t0);
          delay = Math.floor(Math.random() * (phase === 'steady' ? 300 : 60));
          await sleep(delay);
        }
        p.child.kill('SIGKILL');
        const [code, signal] = await p.exited;
        // A run that ended by itself must have ended cleanly (only 'closing' can).
        if (signal !== 'SIGKILL') expect({ phase, code, err: p.err() }).toEqual({ phase: 'closing', code: 0, err: '' });
        const how = pick(['destroy', 'down', 'sweep'] as const);
        await recover(how, name);
        const key = `${phase}/${how}`;
        tally[key] = (tally[key] ?? 0) + 1;
        // A kill anywhere leaves nothing recovery does not remove: no unmarked runtime directory (it is
        // renamed before it is emptied), no unmarked bridge (recognised by its MAC), no empty
        // /run/netns file (recognised by the state file).
        expect(traces(name, host), `run ${i}: killed ${phase} after ${delay} ms, recovered by ${how}`).toEqual([]);
        expect(decoysIntact(name, host), `run ${i}: decoys after ${how}`).toEqual([]);
        expect(uplink(host), `run ${i}: uplink after ${how}`).toEqual({ master: undefined, up: false });
      } finally {
        await cleanupRun(name, p);
      }
    }
    console.log(`fault runs: ${FAULT_RUNS}; phase/recovery: ${JSON.stringify(tally)}`);
  }, (60_000 + FAULT_RUNS * 8_000) * SLOWDOWN);

  it(`destroy/down/sweep/list/status racing a controller of the same name (${RACE_RUNS} runs): a live cluster is never broken`, async () => {
    const outcomes: Record<string, number> = {};
    const racers = ['destroy', 'down', 'sweep', 'list', 'status'] as const;
    for (let i = 0; i < RACE_RUNS; i++) {
      const name = nextName();
      makeDecoys(name, host);
      let ctl: ReturnType<typeof start> | undefined;
      try {
        // Every third run the controller closes the cluster as soon as it is ready: racers then meet
        // create, start and close of the same name.
        const closing = i % 3 === 2;
        ctl = start([fixture('fault-controller.mjs'), JSON.stringify(specFor(name)), ...(closing ? ['close'] : [])]);
        // One to three racers, each in a process of its own, at random moments of the build.
        const chosen = Array.from({ length: 1 + Math.floor(Math.random() * 3) }, () => pick(racers));
        const runs = chosen.map(async (r) => {
          await sleep(Math.floor(Math.random() * 350));
          const args =
            r === 'destroy' ? [fixture('fault-destroy.mjs'), name] : r === 'sweep' ? [CLI, 'sweep', '--prefix', name] : r === 'list' ? [CLI, 'list'] : [CLI, r, name];
          const p = start(args);
          const [code] = await p.exited;
          return { r, code, err: p.err() };
        });
        const results = await Promise.all(runs);
        const downRan = results.some((x) => x.r === 'down' && x.code === 0);
        if (closing) {
          // It closes by itself: exit 0 after 'closed', unless a `down` stopped it first.
          const [code, signal] = await ctl.exited;
          const clean = code === 0 && ctl.out().includes('closed');
          expect(clean || (downRan && (signal === 'SIGTERM' || code === 0)), `run ${i}: closing controller ended ${code}/${signal} after ${chosen.join(',')}: ${ctl.err()}`).toBe(true);
          const k = clean ? `closed cleanly after ${chosen.join('+')}` : 'stopped by down';
          outcomes[k] = (outcomes[k] ?? 0) + 1;
        }
        // The controller is ready, or a `down` stopped it (SIGTERM: it closes the cluster and exits 0).
        else while (!ctl.out().includes('ready') && ctl.child.exitCode === null && ctl.child.signalCode === null) await sleep(5);

        for (const x of results) {
          // destroy may be refused (EBUSY: the cluster runs); list/status/sweep never fail; down stops it.
          if (x.r === 'destroy') expect(x.code === 0 || /EBUSY|is running/.test(x.err), `destroy: ${x.err}`).toBe(true);
          else if (x.r === 'status') expect([0, 1, 3], `status: ${x.err}`).toContain(x.code);
          // down stops whatever controller holds the name, even one that took it during down's look.
          else if (x.r === 'down') expect(x.code, `down: ${x.err}`).toBe(0);
          else expect(x.code, `${x.r}: ${x.err}`).toBe(0);
        }
        if (closing) {
          // Checked above.
        } else if (ctl.out().includes('ready') && ctl.child.exitCode === null && ctl.child.signalCode === null) {
          // Alive: it must be whole, and its lock held — no racer may have taken part of it.
          const nss = readdirSync('/run/netns').filter((n) => n.startsWith(`${name}-`)).sort();
          expect(nss, `run ${i} (${chosen.join(',')})`).toEqual([`${name}-n0`, `${name}-n1`, `${name}-n9`]);
          expect(uplink(host).master, `run ${i}: uplink enslaved`).toBe(`${name}br`);
          expect(nftTables(host), `run ${i}: host table`).toContain(`table bridge nc-${name}`);
          expect(existsSync(join(RUNTIME_DIR, `${name}.json`)), `run ${i}: state file`).toBe(true);
          expect(existsSync(join(RUNTIME_DIR, `${name}.lock`)), `run ${i}: lock file`).toBe(true);
          for (const n of ['n0', 'n1']) expect(nftTables(`${name}-${n}`), `run ${i}: node table`).toContain(`table inet nc-${name}`);
          // Every node's service runs (the exec'd sleep), with its forked children.
          await sleep(100);
          expect(markedProcesses(name).filter((p) => p.endsWith('sleep 3002')).length, `run ${i}: services`).toBe(2);
          outcomes[`alive after ${chosen.join('+')}`] = (outcomes[`alive after ${chosen.join('+')}`] ?? 0) + 1;
          ctl.child.kill('SIGKILL');
          await ctl.exited;
          await destroyCluster(name);
        } else {
          // Only a `down` may stop it; then `down` has removed everything itself.
          const [code, signal] = await ctl.exited;
          // down's SIGTERM: the controller closes the cluster and exits 0.
          expect({ downRan, clean: code === 0 || signal === 'SIGTERM' }, `run ${i}: controller ended (${code}/${signal}) after ${chosen.join(',')}: ${ctl.err()}`).toEqual({ downRan: true, clean: true });
          outcomes['stopped by down'] = (outcomes['stopped by down'] ?? 0) + 1;
        }
        expect(traces(name, host), `run ${i} (${chosen.join(',')})`).toEqual([]);
        expect(decoysIntact(name, host), `run ${i}: decoys`).toEqual([]);
        expect(uplink(host), `run ${i}: uplink`).toEqual({ master: undefined, up: false });
      } finally {
        await cleanupRun(name, ctl);
      }
    }
    console.log(`race runs: ${RACE_RUNS}; outcomes: ${JSON.stringify(outcomes)}`);
  }, (60_000 + RACE_RUNS * 10_000) * SLOWDOWN);

  it('symlinks out of the runtime directory: destroy, down and sweep follow none of them', async () => {
    const outside = join('/tmp', `${s.prefix}-outside`);
    mkdirSync(join(outside, 'dir'), { recursive: true });
    writeFileSync(join(outside, 'dir', 'keep'), 'precious');
    writeFileSync(join(outside, 'file.json'), 'precious');
    const names = [nextName(), nextName(), nextName()];
    try {
      for (const [k, name] of names.entries()) {
        // <name>/ → a directory outside; <name>.json → a file outside; interrupted-write names → the directory outside.
        symlinkSync(join(outside, 'dir'), join(RUNTIME_DIR, name));
        symlinkSync(join(outside, 'file.json'), join(RUNTIME_DIR, `${name}.json`));
        symlinkSync(join(outside, 'dir'), join(RUNTIME_DIR, `${name}.json.4242.tmp`));
        symlinkSync(join(outside, 'dir'), join(RUNTIME_DIR, `${name}.4242.dir.tmp`));
        if (k === 0) await destroyCluster(name).catch(() => undefined);
        if (k === 1) await runCli('down', name);
      }
      await sweepClusters({ prefix: s.prefix }).catch(() => undefined);
      await runCli('sweep', '--prefix', s.prefix);
      expect(readFileSync(join(outside, 'dir', 'keep'), 'utf8')).toBe('precious');
      expect(readFileSync(join(outside, 'file.json'), 'utf8')).toBe('precious');
    } finally {
      for (const name of names) for (const f of readdirSync(RUNTIME_DIR)) if (f === name || f.startsWith(`${name}.`)) rmSync(join(RUNTIME_DIR, f), { force: true, recursive: true });
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it("a state file naming a host namespace the cluster never used: a user's bridge, veths and tables there with the cluster's names stay", async () => {
    const name = nextName();
    const other = `${s.prefix}o`;
    execFileSync('ip', ['netns', 'add', other]);
    try {
      execFileSync('ip', ['-n', other, 'link', 'add', `${name}br`, 'type', 'bridge']);
      execFileSync('ip', ['-n', other, 'link', 'add', `${name}up`, 'type', 'veth', 'peer', 'name', `${name}gw`]);
      execFileSync('ip', ['-n', other, 'link', 'add', `${name}v0`, 'type', 'veth', 'peer', 'name', `${name}p0`]);
      execFileSync('ip', ['netns', 'exec', other, 'nft', 'add', 'table', 'bridge', `nc-${name}`]);
      const state = { version: 1, name, pid: 999_999, startedAt: new Date().toISOString(), hostNetns: other, nodes: [`${name}-n0`], uplink: `${name}v0` };
      for (const how of ['destroy', 'down', 'sweep'] as const) {
        writeFileSync(join(RUNTIME_DIR, `${name}.json`), JSON.stringify(state));
        await recover(how, name);
        expect(existsSync(join(RUNTIME_DIR, `${name}.json`)), how).toBe(false);
        const links = ipj<{ ifname: string }[]>('-n', other, 'link').map((l) => l.ifname).sort();
        expect(links, how).toEqual(['lo', `${name}br`, `${name}gw`, `${name}p0`, `${name}up`, `${name}v0`].sort());
        expect(nftTables(other), how).toContain(`table bridge nc-${name}`);
      }
    } finally {
      execFileSync('ip', ['netns', 'del', other]);
      for (const f of readdirSync(RUNTIME_DIR)) if (f === name || f.startsWith(`${name}.`)) rmSync(join(RUNTIME_DIR, f), { force: true, recursive: true });
    }
  });

  it('a lock that is a FIFO or a directory never hangs destroy, down or sweep, and is refused with its path', async () => {
    for (const kind of ['fifo', 'dir'] as const) {
      const name = nextName();
      const lock = join(RUNTIME_DIR, `${name}.lock`);
      if (kind === 'fifo') execFileSync('mkfifo', [lock]);
      else mkdirSync(lock);
      try {
        const err = await destroyCluster(name).catch((e: NodeJS.ErrnoException) => e);
        expect(err, kind).toBeInstanceOf(Error);
        expect((err as Error).message, kind).toContain(lock);
        const d = await runCli('down', name);
        expect(d.code, kind).toBe(1);
        expect(d.stderr, kind).toContain(lock);
      } finally {
        rmSync(lock, { recursive: true, force: true });
      }
    }
  });
});
