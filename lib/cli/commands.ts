/** The commands besides `up`: down, status, list, sweep, check, schema, demo, bench. @module */
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { clusterSchema, ConfigError } from '../config/config.js';
import { renderMetrics } from '../cluster/metrics.js';
import { resolveSpec } from '../cluster/spec.js';
import { checkOpenvpn, OpenvpnError } from '../services/openvpn/version.js';
import { ControllerLock, listClusters, loadState, lockOwner, lockPath, type StateProblem } from '../cluster/state.js';
import { destroyCluster, sweepClusters } from '../cluster/destroy.js';
import { checkClusterName, EXIT_FAILURE, EXIT_NOT_RUNNING, EXIT_OK, EXIT_USAGE, JSON_OPTION, parse, say, showHelp, UsageError, type Command } from './args.js';
import { configName, readConfig } from './input.js';
import { bgpTable, nodeTable } from './render.js';
import { readStatus } from './status-file.js';
import { age, table } from './table.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A file name as the terminal may show it: control characters escaped (a crafted name cannot inject escapes). */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Whether a live process holds the cluster's lock; a lock file that is not one (a symlink, a FIFO) says what to remove. */
function heldSafely(name: string): boolean {
  try {
    return ControllerLock.held(name);
  } catch (e) {
    throw new Error(`${lockPath(name)} is not a lock file netns-cluster made (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); remove it, then try again`);
  }
}

export const down: Command = {
  name: 'down',
  summary: 'stop a cluster (or clean up after a crashed one)',
  help: `Usage: netns-cluster down <name> [--leftovers] [--timeout <seconds>] [--host-netns <netns>] [--json]

If a live 'netns-cluster up' (or any controller) manages the cluster, sends it SIGTERM and waits
until it has removed everything and exited. Otherwise (its controller crashed or was killed) removes
what it left: node namespaces, bridge, nft table, runtime files. Doing nothing is fine: a name with
nothing left exits 0.

  --leftovers          only remove what a controller that is gone left: a running controller is
                       left alone (exit 0, nothing done). For systemd's ExecStopPost, which runs
                       after its own controller exited: a cluster of that name running now is
                       someone else's.
  --timeout <s>        how long to wait for the controller (default 60)
  --host-netns <ns>    the host namespace, if the state file is lost and it was not the default
  -j, --json           print what was done as JSON on stdout: { name, result: 'stopped' |
                       'removed' | 'nothing', … }

Only ever acts on the cluster of that name: a running controller of another cluster is never
signalled (the lock it signals is the one named <name>).

Exit status: 0 gone, 1 the controller did not stop in time or cleanup failed, 2 usage error.
`,
  async run(argv) {
    const { values, positionals, help } = parse(
      'down',
      argv,
      { timeout: { type: 'string' }, 'host-netns': { type: 'string' }, json: JSON_OPTION, leftovers: { type: 'boolean' } },
      ['name'],
    );
    if (help) return showHelp(this.help);
    const name = checkClusterName('down', positionals[0]);
    const json = (o: object) => values.json && process.stdout.write(`${JSON.stringify({ name, ...o }, null, 2)}\n`);
    const timeout = Number(values.timeout ?? 60);
    if (!(timeout > 0 && timeout <= 86_400)) throw new UsageError(`--timeout: give a number of seconds from 1 to 86400, got '${String(values.timeout).slice(0, 40)}'`, 'down');
    if (values['host-netns'] !== undefined && values['host-netns'] === '')
      throw new UsageError("--host-netns: give the name of the host namespace (under /run/netns), or leave the option out", 'down');
    let stoppedPid: number | undefined;
    let report: Awaited<ReturnType<typeof destroyCluster>> | undefined;
    // A controller may take the name between our look and our lock (EBUSY): then it is running,
    // and `down` stops it like any other. A few rounds at most.
    for (let round = 0; !report; round++) {
      if (heldSafely(name)) {
        // The lock file names its holder; a destroy at work holds it only briefly.
        const owner = lockOwner(name);
        if (values.leftovers) {
          say(`cluster '${name}' is running${owner ? ` (pid ${owner.pid})` : ''}: --leftovers leaves a live controller alone`, 'notice');
          json({ result: 'running', pid: owner?.pid });
          return EXIT_OK;
        }
        if (!owner || owner.role !== 'controller') {
          if (round < 50) {
            await sleep(100);
            continue;
          }
          say(`cluster '${name}' is being ${owner ? `removed by process ${owner.pid}` : 'set up or removed by another process'}; try again in a moment`, 'error');
          json({ result: 'busy', pid: owner?.pid });
          return EXIT_FAILURE;
        }
        say(`stopping cluster '${name}' (controller pid ${owner.pid}) …`);
        try {
          process.kill(owner.pid, 'SIGTERM');
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
        }
        const deadline = Date.now() + timeout * 1000;
        while (heldSafely(name)) {
          if (Date.now() > deadline) {
            say(`pid ${owner.pid} still holds cluster '${name}' after ${timeout} s; if it is stuck, 'kill -KILL ${owner.pid}' and run 'netns-cluster down ${name}' again`, 'error');
            json({ result: 'timeout', pid: owner.pid });
            return EXIT_FAILURE;
          }
          await sleep(50);
        }
        stoppedPid = owner.pid;
      }
      // Whatever the controller left (nothing after a clean stop; its files if it died on the way).
      try {
        report = await destroyCluster(name, values['host-netns'] ? { hostNetns: values['host-netns'] } : {});
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EBUSY' || round >= 5) throw e;
      }
    }
    if (stoppedPid !== undefined && report.namespaces.length === 0 && report.hostObjects.length === 0 && report.processes === 0) {
      say(`cluster '${name}' stopped`);
      json({ result: 'stopped', pid: stoppedPid });
      return EXIT_OK;
    }
    for (const p of report.problems) say(p, 'warning');
    for (const x of report.notOurs) say(`left alone: ${x} has this cluster's name but is not netns-cluster's`, 'warning');
    const what = [
      `${report.namespaces.length} namespaces`,
      ...report.hostObjects,
      ...(report.processes ? [`${report.processes} service processes`] : []),
      ...report.restored.map((r) => `restored ${r}`),
    ];
    if (report.namespaces.length === 0 && report.hostObjects.length === 0 && report.processes === 0) {
      say(`no cluster named '${name}' was left: nothing to do`);
      json({ result: 'nothing', problems: report.problems, notOurs: report.notOurs });
      return EXIT_OK;
    }
    say(`cluster '${name}' removed (its controller was gone): ${what.join(', ')}`);
    json({ result: 'removed', ...report });
    return EXIT_OK;
  },
};

export const status: Command = {
  name: 'status',
  summary: "show a cluster's nodes: service state, data plane, buckets, traffic, VPN clients",
  help: `Usage: netns-cluster status <name> [--json | --format table|json|prometheus]

Shows what 'netns-cluster up' last published for the cluster (every event, at least every 2 s):
per node its namespace, address, service state, pid, restarts, data-plane state, buckets owned,
packets and VPN clients.

  -j, --json             print the status as JSON (the content of
                         /run/netns-cluster/<name>/status.json plus 'running'); same as --format json
  --format prometheus    print it as Prometheus metrics (text exposition format), e.g. for
                         node_exporter's textfile collector; netns_cluster_up is 0 when the
                         controller is gone

Exit status: 0 running, 3 not running (no such cluster, or its controller is gone: as
'systemctl status' does), 2 usage error.
`,
  async run(argv) {
    const { values, positionals, help } = parse('status', argv, { json: JSON_OPTION, format: { type: 'string' } }, ['name']);
    if (help) return showHelp(this.help);
    const name = checkClusterName('status', positionals[0]);
    const formats = ['table', 'json', 'prometheus'];
    if (values.format !== undefined && !formats.includes(values.format))
      throw new UsageError(`--format: give one of ${formats.join(', ')}, got '${values.format.slice(0, 40)}'`, 'status');
    if (values.json && values.format !== undefined && values.format !== 'json') throw new UsageError(`--json and --format ${values.format} contradict each other; give one`, 'status');
    const format = values.json ? 'json' : (values.format ?? 'table');
    const running = ControllerLock.held(name);
    const { state, problem } = await loadState(name);
    if (problem) say(problem, 'warning');
    const st = await readStatus(name).catch((e: Error) => (say(e.message, 'warning'), undefined));
    say(`status of '${name}': lock ${running ? 'held' : 'free'}, state file ${state ? `pid ${state.pid}` : 'absent'}, status file ${st ? `from ${st.updatedAt}` : 'absent'}`, 'debug', 'status');
    if (!state && !st) {
      say(`no cluster named '${name}'${running ? ' yet (its controller is starting)' : ''}; 'netns-cluster list' shows the clusters there are`);
      if (format === 'prometheus') process.stdout.write(renderMetrics({ cluster: name, running: false, nodes: [] }));
      return EXIT_NOT_RUNNING;
    }
    const code = running ? EXIT_OK : EXIT_NOT_RUNNING;
    if (format === 'prometheus') {
      process.stdout.write(
        renderMetrics({
          cluster: name,
          running,
          updatedAt: st?.updatedAt,
          buildMs: st?.buildMs,
          reloadMs: st?.reloadMs,
          reloads: st?.reloads,
          buckets: st?.buckets,
          nodes: st?.nodes ?? [],
          failovers: st?.failovers,
          bgp: st?.bgp,
        }),
      );
    } else if (format === 'json') {
      process.stdout.write(`${JSON.stringify({ name, running, pid: state?.pid ?? st?.pid, startedAt: state?.startedAt, ...st, ...(st ? {} : { nodes: null }) }, null, 2)}\n`);
    } else {
      const head = running ? `running (pid ${state?.pid ?? st?.pid}, up ${age(state?.startedAt ?? st?.startedAt)})` : 'NOT RUNNING';
      process.stdout.write(`cluster ${name}: ${head}\n`);
      if (st) {
        process.stdout.write(`  VIP ${st.vips.join(' ')}  ports ${st.ports.join(' ') || 'all'}  ${st.mode} mode  uplink ${st.uplink}${st.hostNetns ? ` (netns ${st.hostNetns})` : ''}\n`);
        const old = Date.now() - Date.parse(st.updatedAt);
        process.stdout.write(`  status from ${st.updatedAt}${running && old > 10_000 ? ` (${age(st.updatedAt)} old: the controller is not publishing)` : ''}, ${st.phase}\n\n`);
        process.stdout.write(nodeTable(st.nodes));
        if (st.bgp) process.stdout.write(`\n${bgpTable(st.bgp)}`);
      } else {
        process.stdout.write(`  nodes: ${state!.nodes.join(' ')}\n  (no status published: its controller is not 'netns-cluster up', or it is still starting)\n`);
      }
    }
    if (!running) say(`cluster '${name}' is not running: its controller (pid ${state?.pid ?? st?.pid}) is gone; 'netns-cluster down ${name}' removes what it left`, 'warning');
    return code;
  },
};

export const list: Command = {
  name: 'list',
  summary: 'list the clusters on this host',
  help: `Usage: netns-cluster list [-j|--json]

Lists the clusters that have a state file in /run/netns-cluster: name, controller pid, whether it
is running (a live controller holds its lock), nodes, and when it started. A cluster that is not
running was left by a crashed controller: 'netns-cluster down <name>' or 'sweep' removes it.

Exit status: 0, or 1 if the runtime directory cannot be read.
`,
  async run(argv) {
    const { values, help } = parse('list', argv, { json: JSON_OPTION });
    if (help) return showHelp(this.help);
    const problems: StateProblem[] = [];
    const clusters = await listClusters({ problems });
    for (const p of problems) say(printable(p.reason.startsWith(p.file) ? p.reason : `${p.file}: ${p.reason}`), 'warning');
    if (values.json) {
      process.stdout.write(`${JSON.stringify(clusters.map((c) => ({ name: c.name, pid: c.state.pid, running: c.running, nodes: c.state.nodes.length, startedAt: c.state.startedAt, hostNetns: c.state.hostNetns })), null, 2)}\n`);
      return EXIT_OK;
    }
    if (!clusters.length) {
      say('no clusters');
      return EXIT_OK;
    }
    process.stdout.write(
      table(
        ['NAME', 'PID', 'RUNNING', 'NODES', 'STARTED'],
        clusters.map((c) => [c.name, c.state.pid, c.running ? 'yes' : 'NO (crashed: down or sweep)', c.state.nodes.length, `${age(c.state.startedAt)} ago`]),
      ),
    );
    return EXIT_OK;
  },
};

export const sweep: Command = {
  name: 'sweep',
  summary: 'remove every cluster whose controller is gone',
  help: `Usage: netns-cluster sweep [--prefix PREFIX] [-j|--json]

Removes what crashed controllers left: every cluster with a state file but no live controller
(running clusters are not touched); with --prefix, only clusters whose name starts with PREFIX.
Prints the clusters it removed (with --json: { removed: [names], leftAlone: [{ file, reason }] }).

Exit status: 0, or 1 if a cleanup failed.
`,
  async run(argv) {
    const { help, values } = parse('sweep', argv, { prefix: { type: 'string' }, json: JSON_OPTION });
    if (help) return showHelp(this.help);
    if (values.prefix !== undefined && !/^[a-z][a-z0-9-]{0,9}$/.test(values.prefix))
      throw new UsageError(`--prefix: '${values.prefix.slice(0, 40)}' is not the start of a cluster name; give at least its first letter`, 'sweep');
    const problems: StateProblem[] = [];
    const swept = await sweepClusters({ prefix: values.prefix, problems });
    for (const p of problems) say(p.failed ? `${p.name}: ${p.reason}` : `left alone: ${printable(p.file)}: ${p.reason}`, p.failed ? 'error' : 'warning');
    if (values.json) process.stdout.write(`${JSON.stringify({ removed: swept, leftAlone: problems.map((p) => ({ file: p.file, reason: p.reason })) }, null, 2)}\n`);
    else for (const n of swept) process.stdout.write(`removed ${n}\n`);
    if (!swept.length) say('nothing to sweep');
    return problems.some((p) => p.failed) ? EXIT_FAILURE : EXIT_OK;
  },
};

export const check: Command = {
  name: 'check',
  summary: 'validate a config file without creating anything',
  help: `Usage: netns-cluster check <config.yaml|config.json|-> [-j|--json]

Checks a config file as 'up' would (its shape, every value, the service definition; for OpenVPN
also that the binary runs and is 2.6 or newer) and prints the cluster it describes, with defaults
filled in. Creates nothing; does not look at interfaces. Reads regular files only, at most 1 MiB;
'-' reads the config from standard input (JSON if it parses as JSON, YAML otherwise).

  -j, --json    print the resolved spec (every default filled in) as JSON on stdout

Prints every problem it finds, one line each: '<file>: <field>: <what to fix>'.

Exit status: 0 valid, 2 invalid.
`,
  async run(argv) {
    const { positionals, help, values } = parse('check', argv, { json: JSON_OPTION }, ['config']);
    if (help) return showHelp(this.help);
    const file = configName(positionals[0]);
    let spec;
    try {
      spec = await readConfig(positionals[0]);
    } catch (e) {
      // A file that cannot be read or parsed is one error, reported as any other.
      if (!(e instanceof ConfigError) || e.problems.length === 0) throw e;
      // Every problem, one line each: file: field: what to fix.
      for (const line of e.lines()) process.stderr.write(`${line}\n`);
      return EXIT_USAGE;
    }
    const r = resolveSpec(spec);
    // What start() would also refuse, and only running it can tell: an OpenVPN that is too old.
    const ovpn = (spec.service as { openvpn?: { binary?: string } } | undefined)?.openvpn;
    if (ovpn) {
      await checkOpenvpn({ binary: ovpn.binary }).catch((e: unknown) => {
        if (e instanceof OpenvpnError) throw new ConfigError(file, 'service.openvpn.binary', e.message);
        throw e;
      });
    }
    if (values.json) {
      const { service, vips, nodeNetworks, metrics, announce, ...rest } = r;
      const shown = {
        ...rest,
        vips: vips.map((v) => `${v.address}/${v.prefix}`),
        nodeNetworks: nodeNetworks.map((n) => `${n.address}/${n.prefix}`),
        service: service ? JSON.parse(JSON.stringify(service)) : null,
        // BGP passwords are secrets: said to be set, not printed.
        announce: announce ? { bgp: { ...announce.bgp, peers: announce.bgp.peers.map((p) => ({ ...p, ...(p.password !== undefined ? { password: '(set)' } : {}) })) } } : null,
        metrics: metrics ? { listen: metrics.listen.host.includes(':') ? `[${metrics.listen.host}]:${metrics.listen.port}` : `${metrics.listen.host}:${metrics.listen.port}` } : null,
      };
      process.stdout.write(`${JSON.stringify({ file, ok: true, spec: shown }, null, 2)}\n`);
      return EXIT_OK;
    }
    const uplink = r.uplink.kind === 'bridge' ? `bridge ${r.uplink.ifname}` : `routed via ${r.uplink.via}`;
    process.stdout.write(
      `${file}: ok: cluster '${r.name}', ${r.nodes} nodes, VIP ${r.vips.map((v) => `${v.address}/${v.prefix}`).join(' ')}, ` +
        `ports ${r.ports.map((p) => `${p.protocol}/${p.port}`).join(' ') || 'all'}, ${r.mode}/${r.hash}, ${r.buckets} buckets, ${r.backend === 'iptables' ? `backend iptables (${r.iptables?.variant ?? 'auto'}), ` : ''}uplink ${uplink}, ` +
        `service ${r.service ? (r.service.name ?? r.service.command[0]) : 'none'}` +
        `${r.announce ? `, announced with BGP from AS ${r.announce.bgp.localAs} to ${r.announce.bgp.peers.map((p) => `${p.address} (AS ${p.as})`).join(', ')}` : ''}\n`,
    );
    return EXIT_OK;
  },
};

export const schema: Command = {
  name: 'schema',
  summary: 'print the JSON Schema of config files',
  help: `Usage: netns-cluster schema

Prints the JSON Schema (draft-07) config files follow; schema/cluster.schema.json is its output.
It is generated from the same definition 'check' and 'up' validate against. Editors use it for
completion: '# yaml-language-server: $schema=<path>' in a YAML config, or a "$schema" key in a
JSON one (the key is accepted and ignored).
`,
  async run(argv) {
    const { help } = parse('schema', argv, {});
    if (help) return showHelp(this.help);
    process.stdout.write(`${JSON.stringify(clusterSchema, null, 2)}\n`);
    return EXIT_OK;
  },
};

const DEMO_FILES = ['../../examples/demo.js'];
const BENCH_FILES = ['../../benchmarks/main.js', '../../benchmarks/setup.js'];
const existing = (candidates: string[]) => candidates.map((relative) => fileURLToPath(new URL(relative, import.meta.url))).find((f) => existsSync(f));

/**
 * Whether the program a command runs is there: the demo and the benchmark are built from a
 * checkout of the repository (dist/examples, dist/benchmarks); the npm package ships neither,
 * and its command list does not show them.
 */
export function available(cmd: Command): boolean {
  if (cmd === demo) return existing(DEMO_FILES) !== undefined;
  if (cmd === bench) return existing(BENCH_FILES) !== undefined;
  return true;
}

/**
 * Runs another program of the package (the demo, the benchmark) in this process with the given
 * arguments; it runs its own main on import. Resolves undefined: the program decides when to exit.
 */
async function delegate(what: string, candidates: string[], argv: string[]): Promise<number | undefined> {
  const file = existing(candidates);
  if (!file) {
    say(`the ${what} is not part of the installed package: it runs from a checkout of the repository ('npm run build:ts' there, then 'sudo npm run ${what === 'demo' ? 'demo' : 'bench'}')`, 'error');
    return EXIT_FAILURE;
  }
  process.argv = [process.argv[0], file, ...argv];
  await import(pathToFileURL(file).href);
  return undefined;
}

export const demo: Command = {
  name: 'demo',
  summary: 'run the quick-start demo in namespaces of its own',
  help: `Usage: netns-cluster demo [demo options…]

Runs the quick-start demo (dist/examples/demo.js): it builds a cluster in namespaces of its own,
shows it carrying traffic, and removes it. Options are passed to the demo (e.g. --nodes 8).
'--hosts 3 --nodes 2' runs the multi-host demo instead: a router namespace with BIRD and ECMP,
three hosts each announcing the VIP with BGP, clients behind the router; it drains one host and
kills another's controller, and shows the routes and the clients moving.
`,
  async run(argv) {
    if (argv[0] === '--help' || argv[0] === '-h') return showHelp(this.help);
    return delegate('demo', DEMO_FILES, argv);
  },
};

export const bench: Command = {
  name: 'bench',
  summary: 'run the setup benchmark',
  help: `Usage: netns-cluster bench [benchmark options…]

Runs the benchmark harness (dist/benchmarks/main.js, or setup.js in older trees). Options are
passed to it, e.g. --quick, --sizes 1,4,16, --no-openvpn.
`,
  async run(argv) {
    if (argv[0] === '--help' || argv[0] === '-h') return showHelp(this.help);
    return delegate('benchmark harness', BENCH_FILES, argv);
  },
};
