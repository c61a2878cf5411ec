// The `netns-cluster` command, end to end in sandbox namespaces: `up` a config as a child process,
// `status` and `list` from other processes, `down`, and nothing left; broken configs exit 2; a
// killed `up` is cleaned up by `down`. Runs the compiled CLI (dist/, built by scripts/bootstrap.sh).
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Netns, RUNTIME_DIR } from '../lib/index.js';
import { describeAsRoot, ipj, runCli, scratch, sh } from './helpers.js';
import { responderConfig, startUp, until, type Up } from './up-harness.js';
import { flowsFor, probe, wire } from './world.js';

const run = runCli;

describe('netns-cluster without root or a cluster', () => {
  it.each(['up', 'down', 'status', 'list', 'sweep', 'check', 'schema', 'demo', 'bench'])('%s --help: usage on stdout, exit 0', async (cmd) => {
    const r = await run(cmd, '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Usage: netns-cluster ${cmd}`));
  });

  it('--help lists every command; --version prints the package version', async () => {
    const help = await run('--help');
    expect(help.code).toBe(0);
    for (const cmd of ['up', 'down', 'status', 'list', 'sweep', 'demo', 'bench']) expect(help.stdout).toContain(`  ${cmd} `);
    const v = await run('--version');
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^netns-cluster \d+\.\d+\.\d+/);
  });

  it('usage errors exit 2 with a message on stderr: no command, an unknown one, a missing argument, an unknown option', async () => {
    for (const args of [[], ['frobnicate'], ['up'], ['status', 'x', '--colour'], ['down', 'Not_A_Name']]) {
      const r = await run(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/netns-cluster/);
    }
  });
});

describeAsRoot('netns-cluster up / status / list / down', () => {
  const s = scratch('cl');
  let client: Netns;
  let host: Netns;
  let dir: string;
  const ups: Up[] = [];
  const names = { main: `${s.prefix}a`, killed: `${s.prefix}b`, quiet: `${s.prefix}c`, broken: `${s.prefix}d` };

  const config = (name: string, extra: object = {}) => responderConfig(name, host.name, extra);
  const writeConfig = (file: string, content: object | string) => {
    const path = join(dir, file);
    writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
    return path;
  };

  /** Nothing of cluster `name` is left: namespaces, host links, runtime files; the uplink is released. */
  async function expectGone(name: string): Promise<void> {
    expect((await Netns.list()).filter((n) => n.startsWith(`${name}-`))).toEqual([]);
    const links = ipj<{ ifname: string; master?: string }[]>('-n', host.name!, 'link', 'show');
    expect(links.map((l) => l.ifname).sort()).toEqual(['c0', 'lo']);
    expect(links.find((l) => l.ifname === 'c0')?.master).toBeUndefined();
    expect(ipj('-n', host.name!, 'route', 'show', 'table', 'all').filter((r: { dev?: string }) => r.dev && r.dev !== 'c0' && r.dev !== 'lo')).toEqual([]);
    for (const f of [`${name}.json`, `${name}.lock`, name]) expect(existsSync(join(RUNTIME_DIR, f)), f).toBe(false);
  }

  beforeAll(async () => {
    [client, host] = await s.make('c', 'h');
    await wire(client, host, 'bridged');
    dir = mkdtempSync(join(tmpdir(), 'netns-cluster-cli-'));
  });
  afterAll(async () => {
    for (const u of ups) if (u.proc.exitCode === null && u.proc.signalCode === null) u.proc.kill('SIGKILL');
    await Promise.all(ups.map((u) => u.exited));
    for (const n of Object.values(names)) await run('down', n, '--host-netns', host.name!);
    await s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('up runs the cluster in the foreground; status and list see it from other processes; down stops it and nothing remains', async () => {
    const name = names.main;
    const up = startUp(['up', writeConfig('cfg.json', config(name))]);
    ups.push(up);
    await until('the ready line', () => up.out.stderr.includes(`ready: cluster '${name}' is up`), up);
    // Node output is streamed, prefixed with the node.
    await until('every responder’s ready line', () => [0, 1, 2].every((k) => up.out.stdout.includes(`[n${k}] ready`)), up);
    expect(up.out.stdout).toMatch(/NODE\s+NETNS\s+ADDRESS/);

    const json = await run('status', name, '--json');
    expect(json.code, json.stderr).toBe(0);
    const st = JSON.parse(json.stdout);
    expect(st).toMatchObject({ name, running: true, pid: up.proc.pid, phase: 'running', vips: ['192.0.2.1/24'], ports: ['udp/5000'], mode: 'steer' });
    expect(st.nodes.map((n: { state: string; dataPlane: string }) => [n.state, n.dataPlane])).toEqual([
      ['running', 'up'],
      ['running', 'up'],
      ['running', 'up'],
    ]);
    expect(st.nodes.map((n: { netns: string }) => n.netns)).toEqual([0, 1, 2].map((k) => `${name}-n${k}`));
    expect(st.nodes.flatMap((n: { buckets: number[] }) => n.buckets).sort((a: number, b: number) => a - b)).toEqual([...Array(64).keys()]);
    for (const n of st.nodes) expect(n.pid).toBeGreaterThan(0);

    // The cluster carries traffic; the published counters follow within the 2 s period.
    const results = probe(client.name!, flowsFor('bridged', 'udp', [4]));
    expect(results.every((r) => typeof r.node === 'number')).toBe(true);
    const end = Date.now() + 5000;
    let packets = 0;
    while (Date.now() < end && packets < results.length) {
      const now = JSON.parse((await run('status', name, '--json')).stdout);
      packets = now.nodes.reduce((a: number, n: { counters: { packets: number } }) => a + n.counters.packets, 0);
      if (packets < results.length) await new Promise((r) => setTimeout(r, 250));
    }
    expect(packets).toBeGreaterThanOrEqual(results.length);

    const table = await run('status', name);
    expect(table.code).toBe(0);
    expect(table.stdout).toContain(`cluster ${name}: running (pid ${up.proc.pid}`);
    expect(table.stdout).toMatch(new RegExp(`n1\\s+${name}-n1\\s+198\\.18\\.0\\.2\\s+running`));

    const list = await run('list', '--json');
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout)).toContainEqual(expect.objectContaining({ name, pid: up.proc.pid, running: true, nodes: 3 }));
    expect((await run('list')).stdout).toMatch(new RegExp(`${name}\\s+${up.proc.pid}\\s+yes\\s+3`));

    const down = await run('down', name);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stderr).toContain(`cluster '${name}' stopped`);
    expect(await up.exited).toEqual([0, null]);
    expect(up.out.stderr).toContain('SIGTERM: stopping');
    await expectGone(name);

    const after = await run('status', name);
    expect(after.code).toBe(3);
    expect(after.stderr).toContain(`no cluster named '${name}'`);
    const again = await run('down', name);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain('nothing to do');
  });

  it('Ctrl-C (SIGINT) stops up, which removes everything and exits 0; a cluster without a service stays up too', async () => {
    const name = names.quiet;
    const { service: _none, ...noService } = config(name);
    const up = startUp(['up', writeConfig('quiet.yaml', `# no service\n${JSON.stringify(noService)}\n`)]);
    ups.push(up);
    await until('the ready line', () => up.out.stderr.includes('ready: cluster'), up);
    await new Promise((r) => setTimeout(r, 300));
    expect(up.proc.exitCode).toBeNull();
    const st = JSON.parse((await run('status', name, '--json')).stdout);
    expect(st.nodes.map((n: { state: string }) => n.state)).toEqual(['none', 'none', 'none']);
    up.proc.kill('SIGINT');
    expect(await up.exited).toEqual([0, null]);
    await expectGone(name);
  });

  it('up keeps the host side as planned: an uplink made again joins the bridge again within seconds, and the cluster serves', async () => {
    const [client2, host2] = await s.make('c2', 'h2');
    await wire(client2, host2, 'bridged');
    const name = `${s.prefix}u`;
    const up = startUp(['up', writeConfig('uplink.json', config(name, { hostNetns: host2.name }))]);
    ups.push(up);
    try {
      await until('the ready line', () => up.out.stderr.includes('ready: cluster'), up);
      expect(probe(client2.name!, flowsFor('bridged', 'udp', [4])).every((r) => typeof r.node === 'number')).toBe(true);
      const clientMac = ipj<{ address: string }[]>('-n', client2.name!, 'link', 'show', 'eth0')[0].address;
      sh('ip', ['-n', host2.name!, 'link', 'del', 'c0']);
      await wire(client2, host2, 'bridged');
      sh('ip', ['-n', client2.name!, 'link', 'set', 'eth0', 'address', clientMac]);
      await until('the repair', () => up.out.stderr.includes('repaired on the host: uplink c0'), up, 10_000);
      expect(probe(client2.name!, flowsFor('bridged', 'udp', [4])).every((r) => typeof r.node === 'number')).toBe(true);
      const down = await run('down', name);
      expect(down.code, down.stderr).toBe(0);
      expect(await up.exited).toEqual([0, null]);
    } finally {
      await run('down', name, '--host-netns', host2.name!);
    }
  });

  it('down after up was SIGKILLed: status says it is not running, down removes what it left', async () => {
    const name = names.killed;
    const up = startUp(['up', writeConfig('killed.json', config(name))]);
    ups.push(up);
    await until('the ready line', () => up.out.stderr.includes('ready: cluster'), up);
    up.proc.kill('SIGKILL');
    await up.exited;

    expect(JSON.parse((await run('list', '--json')).stdout)).toContainEqual(expect.objectContaining({ name, running: false }));
    const st = await run('status', name);
    expect(st.code).toBe(3);
    expect(st.stdout).toContain('NOT RUNNING');
    expect(st.stderr).toContain(`'netns-cluster down ${name}' removes what it left`);

    const down = await run('down', name);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stderr).toMatch(new RegExp(`cluster '${name}' removed \\(its controller was gone\\): 3 namespaces`));
    await expectGone(name);
  });

  it('up with a broken config exits 2 naming the file and the field, and creates nothing', async () => {
    const name = names.broken;
    const bad = writeConfig('vpn.yaml', `name: ${name}\nvip: 192.0.2.1/24\nhostNetns: ${host.name}\nuplink: { bridge: c0 }\nports:\n  - { protocol: udp, port: 1194 }\n  - { protocol: udp, port: 70000 }\n`);
    const r = await run('up', bad);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${bad}: ports[1].port: must be 1 to 65535, got 70000`);
    expect(r.stderr).not.toContain('ready');

    // Only the kernel knows this one: the uplink does not exist. Still a config error, still nothing built.
    const noUplink = writeConfig('nouplink.json', config(name, { uplink: { bridge: 'nope0' } }));
    const r2 = await run('up', noUplink);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain(`${noUplink}: uplink.bridge: interface 'nope0' does not exist`);

    const check = await run('check', bad);
    expect(check.code).toBe(2);
    expect((await run('check', writeConfig('ok.json', config(name)))).code).toBe(0);
    await expectGone(name);
  });
});
