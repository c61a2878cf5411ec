// Operating `netns-cluster up` as a service, end to end with the compiled CLI in sandbox
// namespaces: sd_notify to a recorded notification socket (READY only once serving, STATUS,
// WATCHDOG cadence, RELOADING/READY around a reload, STOPPING), Prometheus metrics over HTTP and from `status --format prometheus`
// (parsed with a real exposition-format parser) with a failover visible in them, journald
// priority prefixes, debug output, JSON log lines, and a config read from stdin.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import parsePrometheus, { type PromFamily } from 'parse-prometheus-text-format';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Netns } from '../lib/index.js';
import { describeAsRoot, runCli, scratch } from './helpers.js';
import { responderConfig, startUp, until, type Up } from './up-harness.js';
import { wire } from './world.js';
import { freePort, startRecorder, type Recorder } from './recorder.js';

/** One family by name; the value of the sample whose labels include `labels`. */
function sample(families: PromFamily[], name: string, labels: Record<string, string> = {}): number | undefined {
  const f = families.find((x) => x.name === name);
  const m = f?.metrics.find((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v));
  return m?.value === undefined ? undefined : Number(m.value);
}

/** Parses with the real parser and checks what it does not: names, TYPE/HELP before samples, conventions. */
function parseMetrics(text: string): PromFamily[] {
  const families = parsePrometheus(text);
  expect(families.length).toBeGreaterThan(5);
  for (const f of families) {
    expect(f.name).toMatch(/^netns_cluster_[a-z_]+$/);
    expect(f.help.length).toBeGreaterThan(0);
    expect(['COUNTER', 'GAUGE']).toContain(f.type);
    if (f.type === 'COUNTER') expect(f.name).toMatch(/_total$/);
    else expect(f.name).not.toMatch(/_total$/);
    expect(f.name).not.toMatch(/_(ms|milliseconds|kilobytes)$/);
    for (const m of f.metrics) {
      expect(m.labels?.cluster).toBeTruthy();
      expect(Number.isFinite(Number(m.value))).toBe(true);
    }
  }
  return families;
}

describeAsRoot('netns-cluster up as a service: sd_notify, watchdog, metrics, journald levels', () => {
  const s = scratch('op');
  let client: Netns;
  let host: Netns;
  let dir: string;
  const ups: Up[] = [];
  const recorders: Recorder[] = [];
  const names = { main: `${s.prefix}a`, json: `${s.prefix}b` };

  const config = (name: string, extra: object = {}) => responderConfig(name, host.name, extra);

  beforeAll(async () => {
    [client, host] = await s.make('c', 'h');
    await wire(client, host, 'bridged');
    dir = mkdtempSync(join(tmpdir(), 'netns-cluster-ops-'));
  });
  afterAll(async () => {
    for (const u of ups) if (u.proc.exitCode === null && u.proc.signalCode === null) u.proc.kill('SIGKILL');
    await Promise.all(ups.map((u) => u.exited));
    for (const r of recorders) r.proc.kill();
    for (const n of Object.values(names)) await runCli('down', n, '--host-netns', host.name!);
    await s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('READY only once built and serving, STATUS summaries, WATCHDOG at half of WATCHDOG_USEC, metrics with a failover, journald priorities, STOPPING', async () => {
    const name = names.main;
    const socket = `@${name}-notify-${process.pid}`;
    const rec = await startRecorder(socket);
    recorders.push(rec);
    const port = await freePort();
    const file = join(dir, 'main.json');
    writeFileSync(file, JSON.stringify(config(name, { metrics: { listen: `127.0.0.1:${port}` } })));
    const up = startUp(['up', file], { env: { ...process.env, NOTIFY_SOCKET: socket, WATCHDOG_USEC: '400000', JOURNAL_STREAM: '8:12345', NETNS_CLUSTER_DEBUG: '1' } });
    ups.push(up);
    const msgs = () => rec.messages.map((m) => m.msg);

    await until('READY=1', () => msgs().some((m) => m.split('\n').includes('READY=1')), up);
    // At READY every node's service runs and the cluster serves: the status `up` published says so.
    const st = JSON.parse((await runCli('status', name, '-j')).stdout);
    expect(st.phase).toBe('running');
    expect(st.nodes.map((n: { state: string; dataPlane: string }) => `${n.state}/${n.dataPlane}`)).toEqual(['running/up', 'running/up', 'running/up']);
    // The service manager's variables are the controller's alone: its services do not inherit them.
    for (const n of st.nodes) {
      const environ = readFileSync(`/proc/${n.pid}/environ`, 'utf8').split('\0');
      expect(environ.filter((v) => /^(NOTIFY_SOCKET|WATCHDOG_USEC|WATCHDOG_PID|JOURNAL_STREAM)=/.test(v))).toEqual([]);
    }
    const readyAt = msgs().findIndex((m) => m.split('\n').includes('READY=1'));
    const ready = msgs()[readyAt];
    expect(ready).toMatch(/^READY=1\nSTATUS=running: 3\/3 nodes up, 64\/64 buckets served, 3\/3 services running$/);
    // Before it, in order: keep-alives and the build and start progress, never READY or STOPPING.
    const before = msgs().slice(0, readyAt);
    expect(before[0]).toBe('WATCHDOG=1');
    const statuses = before.filter((m) => m.startsWith('STATUS='));
    expect(statuses).toEqual([`STATUS=building cluster '${name}'`, `STATUS=starting the services of cluster '${name}'`]);
    expect(before.every((m) => m === 'WATCHDOG=1' || m.startsWith('STATUS='))).toBe(true);

    // WATCHDOG_USEC=400000: a keep-alive every 200 ms from the event loop. Over 5 periods, at least 3.
    const t0 = rec.messages.at(-1)!.t;
    await new Promise((r) => setTimeout(r, 1000));
    const window = rec.messages.filter((m) => m.t > t0 && m.t <= t0 + 1.0 && m.msg === 'WATCHDOG=1');
    expect(window.length).toBeGreaterThanOrEqual(3);

    // Metrics over HTTP, parsed by a real exposition-format parser.
    const scrape = async () => {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      return parseMetrics(await res.text());
    };
    let m = await scrape();
    expect(sample(m, 'netns_cluster_up', { cluster: name })).toBe(1);
    expect(sample(m, 'netns_cluster_nodes')).toBe(3);
    expect(sample(m, 'netns_cluster_buckets')).toBe(64);
    expect(sample(m, 'netns_cluster_build_duration_seconds')).toBeGreaterThan(0);
    for (const k of ['0', '1', '2']) {
      expect(sample(m, 'netns_cluster_node_service_state', { node: k, state: 'running' })).toBe(1);
      expect(sample(m, 'netns_cluster_node_service_state', { node: k, state: 'failed' })).toBe(0);
      expect(sample(m, 'netns_cluster_node_buckets', { node: k })).toBeGreaterThan(0);
      expect(sample(m, 'netns_cluster_node_failovers_total', { node: k })).toBe(0);
      expect(sample(m, 'netns_cluster_node_accepted_packets_total', { node: k })).toBeGreaterThanOrEqual(0);
      expect(sample(m, 'netns_cluster_node_dropped_bytes_total', { node: k })).toBeGreaterThanOrEqual(0);
    }
    expect(m.find((f) => f.name === 'netns_cluster_node_last_failover_latency_seconds')).toBeUndefined();
    expect((await fetch(`http://127.0.0.1:${port}/nope`)).status).toBe(404);

    // A failover: SIGKILL node 1's service. It shows in the metrics, and as a warning in the log.
    const victim = st.nodes[1].pid as number;
    process.kill(victim, 'SIGKILL');
    await until('the failover in the metrics', async () => {
      m = await scrape();
      return (sample(m, 'netns_cluster_node_failovers_total', { node: '1' }) ?? 0) >= 1;
    }, up);
    expect(sample(m, 'netns_cluster_node_last_failover_latency_seconds', { node: '1' })).toBeGreaterThan(0);
    expect(sample(m, 'netns_cluster_node_failovers_total', { node: '0' })).toBe(0);
    // The supervisor restarts it; the restart is counted.
    await until('the restart in the metrics', async () => {
      m = await scrape();
      return sample(m, 'netns_cluster_node_service_restarts_total', { node: '1' }) === 1 && sample(m, 'netns_cluster_node_up', { node: '1' }) === 1;
    }, up);

    // The same from the published status, for node_exporter's textfile collector.
    await until('the published failover', async () => {
      const r = await runCli('status', name, '--format', 'prometheus');
      expect(r.code).toBe(0);
      return sample(parseMetrics(r.stdout), 'netns_cluster_node_failovers_total', { node: '1' }) === 1;
    }, up);

    // STATUS follows the cluster after READY.
    expect(msgs().slice(readyAt + 1).some((m) => /^STATUS=running: [23]\/3 nodes up/.test(m))).toBe(true);

    // journald: every stderr line carries its priority; the exit is a warning, the ready line a notice,
    // sd_notify traffic is debug (NETNS_CLUSTER_DEBUG).
    const lines = up.out.stderr.split('\n').filter(Boolean);
    for (const l of lines) expect(l).toMatch(/^<[3-7]>/);
    expect(lines).toContainEqual(expect.stringMatching(/^<4>netns-cluster: warning: n1: service exited \(SIGKILL\)$/));
    expect(lines).toContainEqual(expect.stringMatching(/^<5>netns-cluster: ready: cluster/));
    expect(lines).toContainEqual(expect.stringMatching(/^<7>netns-cluster: debug: sd_notify: READY=1/));
    // `journalctl -p warning`: only the failover (exit, node out of the distribution) is at warning or above.
    expect(lines.filter((l) => /^<[34]>/.test(l)).every((l) => /n1: (service exited|out of the distribution)/.test(l))).toBe(true);
    for (const l of up.out.stdout.split('\n').filter(Boolean)) expect(l).toMatch(/^<[56]>/);
    expect(up.out.stdout).toMatch(/^<6>\[n0\] ready$/m);

    // Reload (systemctl reload → SIGHUP, here through `netns-cluster reload`): RELOADING=1 with
    // MONOTONIC_USEC, then READY=1; the new node count is live and the metrics count the reload.
    const beforeReload = msgs().length;
    writeFileSync(file, JSON.stringify({ ...config(name, { metrics: { listen: `127.0.0.1:${port}` } }), nodes: 4 }));
    const rl = await runCli('reload', name);
    expect(rl.code, rl.stderr).toBe(0);
    await until('READY=1 after the reload', () => msgs().slice(beforeReload).some((x) => x.split('\n').includes('READY=1')), up);
    const reload = msgs().slice(beforeReload);
    const reloadingAt = reload.findIndex((x) => x.startsWith('RELOADING=1\nMONOTONIC_USEC='));
    expect(reloadingAt, JSON.stringify(reload)).toBeGreaterThanOrEqual(0);
    expect(reload.findIndex((x) => x.split('\n').includes('READY=1'))).toBeGreaterThan(reloadingAt);
    expect(up.out.stderr).toMatch(/reloaded in [\d.]+ s: \+1 nodes, \d+ buckets moved/);
    await until('four nodes in the metrics', async () => {
      m = await scrape();
      return sample(m, 'netns_cluster_nodes') === 4 && sample(m, 'netns_cluster_reloads_total') === 1;
    }, up);
    expect(sample(m, 'netns_cluster_last_reload_duration_seconds')).toBeGreaterThan(0);

    // ExecStopPost's `down --leftovers` leaves a running controller alone.
    const left = await runCli('down', '--leftovers', name, '--json');
    expect(left.code, left.stderr).toBe(0);
    expect(JSON.parse(left.stdout)).toMatchObject({ name, result: 'running', pid: up.proc.pid });
    expect(up.proc.exitCode).toBeNull();

    // Stop: STOPPING=1, then nothing more (no keep-alives after it); the endpoint is gone.
    const down = await runCli('down', name, '-j');
    expect(down.code, down.stderr).toBe(0);
    expect(JSON.parse(down.stdout)).toMatchObject({ name, result: 'stopped', pid: up.proc.pid });
    expect(await up.exited).toEqual([0, null]);
    await new Promise((r) => setTimeout(r, 300));
    const all = msgs();
    const stop = all.findIndex((x) => x.startsWith('STOPPING=1'));
    expect(stop).toBeGreaterThan(readyAt);
    expect(all[stop]).toBe(`STOPPING=1\nSTATUS=stopping: removing cluster '${name}'`);
    expect(all.slice(stop + 1)).toEqual([]);
    expect(all.filter((x) => x.includes('READY=1'))).toHaveLength(2); // the start, and the end of the reload
    await expect(fetch(`http://127.0.0.1:${port}/metrics`)).rejects.toThrow();

    // Not running: status exits 3 (as systemctl), and the metrics say so.
    const after = await runCli('status', name, '--format', 'prometheus');
    expect(after.code).toBe(3);
    expect(sample(parsePrometheus(after.stdout), 'netns_cluster_up', { cluster: name })).toBe(0);
  });

  it('--log-format json: one object per line (time, level, cluster, node, event, message); a config from stdin', async () => {
    const name = names.json;
    const env = { ...process.env };
    delete env.NOTIFY_SOCKET;
    delete env.JOURNAL_STREAM;
    delete env.NETNS_CLUSTER_DEBUG;
    const up = startUp(['up', '-', '--log-format', 'json'], { env, stdin: JSON.stringify(config(name)) });
    ups.push(up);
    const records = () =>
      up.out.stderr
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { time: string; level: string; cluster?: string; node?: number; event: string; message: string });
    await until('the ready record', () => records().some((r) => r.event === 'ready'), up);
    await until('every node’s output', () => [0, 1, 2].every((k) => records().some((r) => r.event === 'output' && r.node === k && r.message === 'ready')), up);
    const rs = records();
    for (const r of rs) {
      expect(Object.keys(r).filter((k) => !['time', 'level', 'cluster', 'node', 'event', 'message'].includes(k))).toEqual([]);
      expect(Number.isFinite(Date.parse(r.time))).toBe(true);
      expect(['error', 'warning', 'notice', 'info', 'debug']).toContain(r.level);
      expect(r.cluster).toBe(name);
    }
    expect(rs.find((r) => r.event === 'building')?.message).toContain(`from <stdin>`);
    expect(rs.find((r) => r.event === 'ready')?.level).toBe('notice');
    expect(rs.some((r) => r.level === 'debug')).toBe(false);
    // JSON mode prints no tables: stdout stays empty.
    expect(up.out.stdout).toBe('');
    up.proc.kill('SIGINT');
    expect(await up.exited).toEqual([0, null]);
    expect(records().find((r) => r.event === 'signal')).toMatchObject({ level: 'notice', message: `SIGINT: stopping cluster '${name}'` });
    expect(records().at(-1)).toMatchObject({ event: 'stopped', level: 'info' });
  });
});
