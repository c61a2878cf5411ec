// The operable parts that need no cluster: sd_notify's datagram to a path socket, the notifier
// without NOTIFY_SOCKET, log rendering (levels, journald priorities, JSON), the metrics format and
// the spec's metrics field, and CLI polish (-j, --json on check/sweep, help frob, a config on stdin,
// status exit 3).
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import parsePrometheus from 'parse-prometheus-text-format';
import { afterAll, describe, expect, it } from 'vitest';
import { binding, loadAdvice } from '../lib/kernel/binding.js';
import { LEVELS, Logger, type LogLevel } from '../lib/util/log.js';
import { renderMetrics } from '../lib/cluster/metrics.js';
import { Notifier } from '../lib/kernel/notify.js';
import { ConfigError, InvalidArgumentError, resolveSpec } from '../lib/index.js';
import { checkConfig } from '../lib/config/config.js';
import type { NodeStatus } from '../lib/cluster/cluster.js';
import { CLI, runCli, SLOWDOWN } from './helpers.js';
import { startRecorder } from './recorder.js';

const base = { name: 'opx', vip: '192.0.2.1/24', uplink: { bridge: 'eth9' } };

function runWithStdin(stdin: string, ...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = execFile(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 * SLOWDOWN }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
    p.stdin!.end(stdin);
  });
}

describe('sd_notify', () => {
  const dir = mkdtempSync(join(tmpdir(), 'netns-cluster-notify-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('the addon sends one datagram to a path socket; the notifier sends READY/STATUS/STOPPING in order and stops its keep-alives', async () => {
    const path = join(dir, 'notify.sock');
    const rec = await startRecorder(path);
    try {
      binding().sdNotify(path, 'STATUS=hello\nX=1');
      const n = new Notifier({ socket: path });
      n.ready('all good');
      n.status('all good'); // unchanged: not sent again
      n.status('changed');
      n.stopping();
      const end = Date.now() + 5000;
      while (rec.messages.length < 4 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      expect(rec.messages.map((m) => m.msg)).toEqual(['STATUS=hello\nX=1', 'READY=1\nSTATUS=all good', 'STATUS=changed', 'STOPPING=1']);
    } finally {
      rec.proc.kill();
    }
  });

  it('a socket that is not there is a kernel error; a bad address is refused before sending', () => {
    expect(() => binding().sdNotify(join(dir, 'absent.sock'), 'READY=1')).toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'sendto' }));
    for (const bad of ['relative.sock', '@', '', `/${'x'.repeat(200)}`]) expect(() => binding().sdNotify(bad, 'READY=1'), bad).toThrow(/socketPath/);
    expect(() => binding().sdNotify('/run/x.sock', '')).toThrow(/message/);
  });

  it('without NOTIFY_SOCKET nothing is sent and there is no watchdog; with it, the variables leave the environment', () => {
    const off = Notifier.fromEnv({ WATCHDOG_USEC: '1000000' });
    expect(off.enabled).toBe(false);
    expect(off.watchdogMs).toBeUndefined();
    expect(off.notify({ READY: 1 })).toBe(false);
    const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: '@x', WATCHDOG_USEC: '3000000', KEEP: '1' };
    const on = Notifier.fromEnv(env);
    expect(on.watchdogMs).toBe(1500);
    expect(env).toEqual({ KEEP: '1' });
    // A watchdog of months: the keep-alive period stays within what a timer can wait.
    expect(Notifier.fromEnv({ NOTIFY_SOCKET: '@x', WATCHDOG_USEC: String(90 * 86400e6) }).watchdogMs).toBe(2 ** 31 - 1);
    // WATCHDOG_PID naming another process: that process is watched, not this one.
    expect(Notifier.fromEnv({ NOTIFY_SOCKET: '@x', WATCHDOG_USEC: '3000000', WATCHDOG_PID: String(process.pid + 1) }).watchdogMs).toBeUndefined();
  });
});

describe('logs', () => {
  const at = new Date('2026-01-02T03:04:05.000Z');

  it('under journald every line carries its syslog priority; debug only when asked', () => {
    const j = new Logger({ journal: true, debug: false });
    const line = (level: LogLevel) => j.render({ level, event: 'e', message: 'm' }, at);
    expect(line('error')).toBe('<3>netns-cluster: error: m\n');
    expect(line('warning')).toBe('<4>netns-cluster: warning: m\n');
    expect(line('notice')).toBe('<5>netns-cluster: m\n');
    expect(line('info')).toBe('<6>netns-cluster: m\n');
    expect(line('debug')).toBeUndefined();
    expect(new Logger({ journal: true, debug: true }).render({ level: 'debug', event: 'e', message: 'm' }, at)).toBe('<7>netns-cluster: debug: m\n');
    expect(LEVELS).toEqual({ error: 3, warning: 4, notice: 5, info: 6, debug: 7 });
    // Without journald: no prefix. A message is always one line.
    expect(new Logger({ journal: false }).render({ level: 'info', event: 'e', message: 'a\nb' }, at)).toBe('netns-cluster: a ⏎ b\n');
  });

  it('--log-format json: one object per line with time, level, cluster, node, event, message', () => {
    const l = new Logger({ format: 'json', journal: false });
    l.cluster = 'vpn';
    expect(JSON.parse(l.render({ level: 'warning', event: 'node-exit', message: 'n1: service exited', node: 1 }, at)!)).toEqual({
      time: '2026-01-02T03:04:05.000Z',
      level: 'warning',
      cluster: 'vpn',
      node: 1,
      event: 'node-exit',
      message: 'n1: service exited',
    });
  });

  it('NETNS_CLUSTER_DEBUG turns debug output and stack traces on (documented in --help)', async () => {
    const help = await runCli('--help');
    expect(help.stdout).toContain('NETNS_CLUSTER_DEBUG');
    const status = (debug: string | undefined) =>
      new Promise<string>((resolve) => {
        const env: NodeJS.ProcessEnv = { ...process.env, JOURNAL_STREAM: '1:1' };
        if (debug === undefined) delete env.NETNS_CLUSTER_DEBUG;
        else env.NETNS_CLUSTER_DEBUG = debug;
        execFile(process.execPath, [CLI, 'status', 'opx'], { env, encoding: 'utf8' }, (_e, _o, stderr) => resolve(stderr));
      });
    const on = await status('1');
    expect(on).toMatch(/^<7>netns-cluster: debug: status of 'opx': lock free/m);
    expect(on).toMatch(/^<6>netns-cluster: no cluster named 'opx'/m);
    for (const off of [undefined, '0', '']) expect(await status(off)).not.toMatch(/debug/);
  });
});

describe('metrics', () => {
  const node = (index: number, extra: Partial<NodeStatus> = {}): NodeStatus => ({
    index,
    netns: `vpn-n${index}`,
    address: `198.18.0.${index + 1}`,
    state: 'running',
    pid: 100 + index,
    restarts: index,
    dataPlane: 'up',
    buckets: [index],
    counters: { index, packets: 10 * index, bytes: 1000 * index, droppedPackets: 0, droppedBytes: 0 },
    ...extra,
  });

  it('renders the text format a real parser accepts, with conventional names, types and escaped labels', () => {
    const text = renderMetrics({
      cluster: 'vpn',
      running: true,
      updatedAt: '2026-01-02T03:04:05.000Z',
      buildMs: 12.5,
      buckets: 2,
      nodes: [node(0, { openvpn: { clients: [{}, {}] } }), node(1, { netns: 'we"ird\\ns\nx', state: 'backing-off', dataPlane: 'down', buckets: [] })],
      failovers: [{ failovers: 0 }, { failovers: 2, lastFailoverLatencyMs: 1.5 }],
    });
    const families = parsePrometheus(text);
    const get = (name: string) => families.find((f) => f.name === name);
    expect(get('netns_cluster_build_duration_seconds')).toMatchObject({ type: 'GAUGE', metrics: [{ value: '0.0125' }] });
    expect(get('netns_cluster_node_accepted_bytes_total')).toMatchObject({ type: 'COUNTER' });
    expect(get('netns_cluster_node_failovers_total')!.metrics.map((m) => m.value)).toEqual(['0', '2']);
    expect(get('netns_cluster_node_last_failover_latency_seconds')!.metrics).toEqual([{ value: '0.0015', labels: { cluster: 'vpn', node: '1', netns: 'we"ird\\ns\nx' } }]);
    expect(get('netns_cluster_node_vpn_clients')!.metrics).toEqual([{ value: '2', labels: { cluster: 'vpn', node: '0', netns: 'vpn-n0' } }]);
    const states = get('netns_cluster_node_service_state')!.metrics.filter((m) => m.labels!.node === '1' && m.value === '1');
    expect(states.map((m) => m.labels!.state)).toEqual(['backing-off']);
    expect(get('netns_cluster_nodes_up')!.metrics[0].value).toBe('1');
    expect(text).toContain('\\"');
  });

  it("the spec's metrics.listen is checked in resolveSpec and by the config loader", () => {
    expect(resolveSpec({ ...base, metrics: { listen: '127.0.0.1:9464' } }).metrics).toEqual({ listen: { host: '127.0.0.1', port: 9464 } });
    expect(resolveSpec({ ...base, metrics: { listen: '[::1]:9464' } }).metrics).toEqual({ listen: { host: '::1', port: 9464 } });
    expect(resolveSpec(base).metrics).toBeUndefined();
    for (const [bad, why] of [
      ['localhost:9464', /not an IP address/],
      ['127.0.0.1', /not address:port/],
      ['::1:9464', /not address:port|not an IP/],
      ['127.0.0.1:0', /port must be 1 to 65535/],
      ['127.0.0.1:70000', /port must be 1 to 65535/],
    ] as const) {
      expect(() => resolveSpec({ ...base, metrics: { listen: bad } }), bad).toThrow(expect.objectContaining({ field: 'metrics.listen', message: expect.stringMatching(why) }));
    }
    expect(() => resolveSpec({ ...base, metrics: { listne: 'x' } as never })).toThrow(InvalidArgumentError);
    expect(() => checkConfig('c.yaml', { ...base, metrics: { listen: 9464 } })).toThrow(ConfigError);
  });
});

describe('the addon load error', () => {
  it('advises for where the package is: a checkout (bootstrap), an installed package (npm rebuild), a missing shared library (its apt package)', () => {
    const repo = join(import.meta.dirname, '..');
    expect(loadAdvice(repo, 'Cannot find module')).toContain('scripts/bootstrap.sh');
    const installed = mkdtempSync(join(tmpdir(), 'netns-cluster-installed-'));
    try {
      const advice = loadAdvice(installed, 'No native build was found');
      expect(advice).toContain('npm rebuild netns-cluster');
      expect(advice).toContain('libmnl-dev');
      expect(advice).not.toContain('bootstrap');
      expect(advice).toContain(`no prebuilt binary for ${process.platform}-${process.arch}`);
    } finally {
      rmSync(installed, { recursive: true, force: true });
    }
    expect(loadAdvice(repo, 'libnftnl.so.11: cannot open shared object file: No such file or directory')).toContain('apt-get install libnftnl11');
  });
});

describe('CLI polish', () => {
  it('help frob is a usage error; help <command> prints its help', async () => {
    const r = await runCli('help', 'frob');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown command 'frob'");
    const ok = await runCli('help', 'status');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^Usage: netns-cluster status/);
    expect((await runCli('--log-format', 'xml', 'list')).code).toBe(2);
  });

  it('check reads a config from stdin with -, and --json / -j prints the resolved spec', async () => {
    const json = await runWithStdin(JSON.stringify({ ...base, metrics: { listen: '127.0.0.1:9464' } }), 'check', '-', '-j');
    expect(json.code, json.stderr).toBe(0);
    const out = JSON.parse(json.stdout);
    expect(out).toMatchObject({ file: '<stdin>', ok: true, spec: { name: 'opx', nodes: expect.any(Number), buckets: 64, mode: 'steer', vips: ['192.0.2.1/24'], metrics: { listen: '127.0.0.1:9464' } } });
    const yaml = await runWithStdin('name: opx\nvip: 192.0.2.1/24\nuplink: { bridge: eth9 }\n', 'check', '-');
    expect(yaml.code, yaml.stderr).toBe(0);
    expect(yaml.stdout).toMatch(/^<stdin>: ok: cluster 'opx'/);
    const bad = await runWithStdin('name: opx\nvip: 192.0.2.1/24\nuplink: { bridge: eth9 }\nports: [{ protocol: udp, port: 70000 }]\n', 'check', '-', '--json');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('<stdin>: ports[0].port: must be 1 to 65535, got 70000');
    const broken = await runWithStdin('{ "name": "opx", ', 'check', '-');
    expect(broken.code).toBe(2);
    expect(broken.stderr).toMatch(/<stdin>(:\d+:\d+)?: not valid YAML/);
  });

  it('status of a cluster that is not running exits 3; -j works on list and sweep --json prints JSON', async () => {
    const st = await runCli('status', 'opxnone');
    expect(st.code).toBe(3);
    const list = await runCli('list', '-j');
    expect(list.code).toBe(0);
    expect(Array.isArray(JSON.parse(list.stdout))).toBe(true);
    // A prefix no cluster has: nothing is removed, and the JSON says so.
    const sweep = await runCli('sweep', '--prefix', 'opxnone', '-j');
    expect(sweep.code).toBe(0);
    expect(JSON.parse(sweep.stdout)).toEqual({ removed: [], leftAlone: [] });
  });

  it('up - reads the config from stdin too (a bad one exits 2 naming <stdin>)', async () => {
    const p = spawn(process.execPath, [CLI, 'up', '-'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (d) => (err += d));
    p.stdin!.end('name: opx\nvip: nope\nuplink: { bridge: eth9 }\n');
    const [code] = await once(p, 'exit');
    expect(code).toBe(2);
    expect(err).toContain('<stdin>: vip:');
  });
});
