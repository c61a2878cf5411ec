// A stop() that races a start() in progress wins: whatever the start spawns is killed, the start
// rejects (code ABORT_ERR), and no supervisor restarts anything later. dispose() is final.
import { randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { killClusterCgroups } from '../lib/services/cgroup.js';
import type { Netns } from '../lib/kernel/netns.js';
import { NodeService, type ServiceContext, type ServiceDefinition, type ServiceState } from '../lib/services/service.js';
import { describeAsRoot, scratch, processesWith, SLOWDOWN } from './helpers.js';


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every process with the marker seen while watching for `ms`. */
async function watch(ms: number, marker: string): Promise<number[]> {
  const seen = new Set<number>();
  const end = Date.now() + ms * SLOWDOWN;
  while (Date.now() < end) {
    for (const p of processesWith(marker)) seen.add(p);
    await sleep(5);
  }
  return [...seen];
}

async function until(what: string, f: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms * SLOWDOWN;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** A forking service with unique `sleep` arguments, restarting fast (backoff 30 ms, so a watch of 500 ms spans many backoffs). */
function service(extra: Partial<ServiceDefinition> = {}): { def: ServiceDefinition; marker: string; bg: string } {
  const r = randomInt(100_000, 999_999);
  const marker = `2000${r}`;
  const bg = `1000${r}`;
  return {
    marker,
    bg,
    def: { name: 'sleeper', command: ['sh', '-c', `sleep ${bg} & exec sleep ${marker}`], restart: { initialDelayMs: 30, maxDelayMs: 30 }, stopTimeoutMs: 1000, ...extra },
  };
}

/** A ready() that only ends when the process exits (the start stays pending). */
const neverReady: ServiceDefinition['ready'] = (_ctx, signal) =>
  new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true }));

describeAsRoot('NodeService: stop() wins over a start() in progress', () => {
  const s = scratch('lc');
  const cluster = s.prefix;
  let ns: Netns;
  const dir = mkdtempSync(join(tmpdir(), 'netns-lifecycle-test-'));
  const markers: string[] = [];
  const ctx = (index = 0): ServiceContext => ({ cluster, index, netns: ns.name!, address: '198.18.0.1', addresses: ['198.18.0.1'], vips: ['192.0.2.1'], dir });
  const made: NodeService[] = [];
  const make = (def: ServiceDefinition, k = 0) => {
    const svc = new NodeService(def, ctx(k));
    made.push(svc);
    const states: ServiceState[] = [];
    svc.on('state', (e) => states.push(e.state));
    return { svc, states };
  };

  beforeAll(async () => {
    [ns] = await s.make('a');
  });
  afterAll(async () => {
    await Promise.allSettled(made.map((svc) => svc.dispose())); // even after a failed test: no supervisor restarts anything
    for (const m of markers) for (const pid of processesWith(m)) process.kill(pid, 'SIGKILL');
    await killClusterCgroups(cluster);
    rmSync(dir, { recursive: true, force: true });
    await s.cleanup();
  });

  it('stop() while start() waits for ready(): the process is killed, start rejects, nothing restarts', async () => {
    const { def, marker, bg } = service({ ready: neverReady });
    markers.push(marker, bg);
    const { svc, states } = make(def);
    const started = svc.start();
    started.catch(() => {}); // checked below
    await until('the process', () => processesWith(marker).length === 1);
    await svc.stop();
    await expect(started).rejects.toMatchObject({ code: 'ABORT_ERR', message: /node 0: sleeper stopped before it was ready/ });
    expect(svc.state).toBe('stopped');
    expect(await watch(500, marker)).toEqual([]);
    expect(processesWith(bg)).toEqual([]);
    expect(states).not.toContain('backing-off');
    expect(svc.restarts).toBe(0);
  });

  it('stop() right after start(), before the spawn: nothing is ever started', async () => {
    const { def, marker } = service();
    markers.push(marker);
    const { svc, states } = make(def);
    const started = svc.start();
    const stopped = svc.stop();
    await expect(started).rejects.toMatchObject({ code: 'ABORT_ERR' });
    await stopped;
    expect(await watch(500, marker)).toEqual([]);
    expect(svc.state).toBe('stopped');
    expect(states.at(-1)).toBe('stopped');
  });

  it('stop() during the backoff after a crash: no restart follows', async () => {
    const { def, marker } = service({ restart: { initialDelayMs: 300 } });
    markers.push(marker);
    const { svc } = make(def);
    await svc.start();
    process.kill(svc.pid!, 'SIGKILL');
    await until('backing off', () => svc.state === 'backing-off');
    await svc.stop();
    expect(await watch(900, marker)).toEqual([]);
    expect(svc.state).toBe('stopped');
    expect(svc.restarts).toBe(0);
  });

  it('stop() at random points of start(), 25 times: each time nothing is left and nothing comes back', async () => {
    const { def, marker, bg } = service();
    markers.push(marker, bg);
    const { svc } = make(def, 1);
    const outcomes = { resolved: 0, aborted: 0 };
    for (let i = 0; i < 25; i++) {
      const started = svc.start().then(
        () => outcomes.resolved++,
        (e: NodeJS.ErrnoException) => {
          expect(e.code).toBe('ABORT_ERR');
          outcomes.aborted++;
        },
      );
      await sleep(randomInt(0, 40));
      await svc.stop();
      await started;
      expect([...processesWith(marker), ...processesWith(bg)]).toEqual([]);
    }
    expect(outcomes.resolved + outcomes.aborted).toBe(25);
    expect(await watch(300, marker)).toEqual([]);
  });

  it('dispose() during start() is final: start() rejects afterwards, no timer restarts it', async () => {
    const { def, marker } = service({ ready: neverReady });
    markers.push(marker);
    const { svc } = make(def, 2);
    const started = svc.start();
    started.catch(() => {}); // checked below
    await until('the process', () => processesWith(marker).length === 1);
    await svc.dispose();
    await expect(started).rejects.toMatchObject({ code: 'ABORT_ERR' });
    expect(svc.disposed).toBe(true);
    await expect(svc.start()).rejects.toMatchObject({ code: 'ABORT_ERR', message: /disposed/ });
    expect(await watch(500, marker)).toEqual([]);
    await svc.dispose(); // idempotent
  });

  it('concurrent start() calls share one process; a start after stop() runs again', async () => {
    const { def, marker } = service();
    markers.push(marker);
    const { svc } = make(def, 3);
    await Promise.all([svc.start(), svc.start(), svc.start()]);
    // (sh execs sleep a moment after the start resolves)
    await until('one sleep, the service', () => processesWith(marker).length === 1 && processesWith(marker)[0] === svc.pid);
    await svc.stop();
    await svc.start();
    await until('one sleep, the service', () => processesWith(marker).length === 1 && processesWith(marker)[0] === svc.pid);
    await svc.dispose();
    expect(processesWith(marker)).toEqual([]);
  });
});
