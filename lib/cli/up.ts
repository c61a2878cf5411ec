/**
 * `netns-cluster up <config>`: builds the cluster a config file describes, starts its service in
 * every node and supervises it in the foreground until SIGINT or SIGTERM, then removes everything.
 * Node output is streamed prefixed `[n<k>]`; status is published in status.json for `status`.
 * @module
 */
import type { Server } from 'node:http';
import { createCluster, type Cluster, type NodeStatus } from '../cluster/cluster.js';
import { ConfigError, fromInvalidArgument } from '../config/config.js';
import { InvalidArgumentError } from '../util/errors.js';
import { log } from '../util/log.js';
import { serveMetrics, type MetricsSnapshot, type NodeFailovers } from '../cluster/metrics.js';
import { Notifier } from '../kernel/notify.js';
import type { ClusterSpec } from '../cluster/spec.js';
import { EXIT_FAILURE, EXIT_OK, parse, say, type Command } from './args.js';
import { configName, readConfig } from './input.js';
import { nodeTable } from './render.js';
import { writeStatus, type StatusFile } from './status-file.js';
import { table } from './table.js';

const PUBLISH_EVERY_MS = 2000;
/** How often the host's side is checked for drift (Cluster.repair: three dumps in the host namespace when nothing is off). */
const REPAIR_EVERY_MS = 2000;

/** Calls cluster.repair() every REPAIR_EVERY_MS (never two at once); a failure is said once until it changes. */
class HostWatch {
  #timer: NodeJS.Timeout;
  #running: Promise<void> | undefined;
  #lastError = '';

  constructor(private readonly cluster: Cluster) {
    this.#timer = setInterval(() => this.#tick(), REPAIR_EVERY_MS);
    this.#timer.unref();
  }

  #tick(): void {
    if (this.#running) return;
    this.#running = this.cluster
      .repair()
      .then(
        () => {
          this.#lastError = '';
        },
        (e: Error) => {
          if (e.message !== this.#lastError) say(`checking the host's side failed: ${e.message}`, 'warning', 'repair');
          this.#lastError = e.message;
        },
      )
      .finally(() => (this.#running = undefined));
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }
}

/** Rewrites status.json on request (coalesced: at most one write in flight) and every 2 s. */
class StatusPublisher {
  #timer: NodeJS.Timeout;
  #writing: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #warned = false;
  phase: StatusFile['phase'] = 'starting';

  constructor(
    private readonly cluster: Cluster,
    private readonly startedAt: string,
    private readonly extra: () => Pick<StatusFile, 'buildMs' | 'failovers' | 'reloadMs' | 'reloads'>,
    /** Called with every status written (for sd_notify's STATUS=). */
    private readonly onPublished: (nodes: NodeStatus[]) => void = () => {},
  ) {
    // Ref'd on purpose: a cluster without a service has nothing else keeping `up` in the foreground.
    this.#timer = setInterval(() => this.kick(), PUBLISH_EVERY_MS);
  }

  kick(): void {
    if (this.#stopped) return;
    if (this.#writing) {
      this.#again = true;
      return;
    }
    this.#writing = this.#write().finally(() => {
      this.#writing = undefined;
      if (this.#again) {
        this.#again = false;
        this.kick();
      }
    });
  }

  /** Writes now and waits for it. */
  async flush(): Promise<void> {
    while (this.#writing) await this.#writing;
    this.kick();
    await this.#writing;
  }

  /** No more writes (close() removes the runtime directory; a late write would recreate it). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    while (this.#writing) await this.#writing;
  }

  async #write(): Promise<void> {
    const c = this.cluster;
    try {
      const nodes = await c.status();
      const bgp = await c.announcement().catch(() => undefined);
      if (this.#stopped && this.phase !== 'stopping') return;
      await writeStatus({
        version: 1,
        name: c.name,
        pid: process.pid,
        startedAt: this.startedAt,
        updatedAt: new Date().toISOString(),
        phase: this.phase,
        vips: c.spec.vips.map((v) => `${v.address}/${v.prefix}`),
        ports: c.spec.ports.map((p) => `${p.protocol}/${p.port}`),
        mode: c.spec.mode,
        uplink: c.spec.uplink.kind === 'bridge' ? `bridge ${c.spec.uplink.ifname}` : `routed via ${c.spec.uplink.via}`,
        ...(c.hostNetns !== undefined ? { hostNetns: c.hostNetns } : {}),
        buckets: c.spec.buckets,
        ...this.extra(),
        nodes,
        ...(bgp ? { bgp } : {}),
      });
      this.onPublished(nodes);
    } catch (e) {
      if (this.#stopped) return;
      if (!this.#warned) say(`could not publish status: ${(e as Error).message}`, 'warning', 'status');
      this.#warned = true;
    }
  }
}

/** STATUS= for the service manager: one line, e.g. `3/3 nodes up, 64/64 buckets served, 5 VPN clients`. */
export function statusLine(nodes: NodeStatus[], buckets: number, phase: string): string {
  const up = nodes.filter((n) => n.dataPlane === 'up').length;
  const served = nodes.reduce((a, n) => a + n.buckets.length, 0);
  const clients = nodes.map((n) => (n.openvpn as { clients?: unknown[] } | undefined)?.clients).filter(Array.isArray);
  const running = nodes.filter((n) => n.state === 'running').length;
  const services = nodes.some((n) => n.state !== 'none') ? `, ${running}/${nodes.length} services running` : '';
  return `${phase}: ${up}/${nodes.length} nodes up, ${served}/${buckets} buckets served${services}${clients.length ? `, ${clients.reduce((a, c) => a + c.length, 0)} VPN clients` : ''}`;
}

/** A table on stdout; under journald each line is info (`<6>`), like the rest of stdout. */
function printTable(t: string): void {
  process.stdout.write(log.journal ? t.replace(/^(?=.)/gm, '<6>') : t);
}

function describe(spec: ClusterSpec, c: Cluster): string {
  const r = c.spec;
  const uplink = r.uplink.kind === 'bridge' ? `bridged to ${r.uplink.ifname}` : `routed via ${r.uplink.via}`;
  const ports = r.ports.length ? r.ports.map((p) => `${p.protocol}/${p.port}`).join(' ') : 'every port';
  return `${r.nodes} nodes, VIP ${r.vips.map((v) => `${v.address}/${v.prefix}`).join(' ')} (${ports}), ${r.mode} mode, ${uplink}${spec.hostNetns ? ` in namespace ${spec.hostNetns}` : ''}`;
}

export const up: Command = {
  name: 'up',
  summary: 'build a cluster from a config file and supervise it in the foreground',
  help: `Usage: netns-cluster up [--name <name>] <config.yaml|config.json|->

Builds the cluster the config describes (see schema/cluster.schema.json; '-' reads it from
standard input), starts its service in every node, and supervises it in the foreground: node
output is printed prefixed [n<k>], failover and failback as they happen. SIGINT (Ctrl-C) or SIGTERM
(e.g. 'netns-cluster down <name>', systemd) stops the services and
removes everything the cluster created, and puts back what it changed on the host (an uplink's
down state, forwarding sysctls). A second signal does not wait for the services to stop
gracefully: it kills them at once and removes the cluster. A signal while the config is still
being read exits at once (nothing has been built).

SIGHUP ('netns-cluster reload <name>', systemctl reload) reads the config file again and applies it
live: nodes added or removed (only the buckets the change needs move), ports, the service's options.
A change that cannot be made live (VIP, uplink, mode, hash, buckets, seed, networks) is refused and
nothing changes. A cluster left by a controller that is gone is adopted, not refused.

SIGUSR1 ('netns-cluster drain <name>'): with 'announce' in the config, withdraws the VIP's BGP
announcement for good; the nodes keep serving what still arrives until the cluster is stopped.

While it runs, 'netns-cluster status <name>' shows its nodes (from
/run/netns-cluster/<name>/status.json, rewritten on every event and every 2 s).

Under systemd (Type=notify, see deploy/): READY=1 once the cluster is built and every node's
service has been started, STATUS= summaries (nodes up, buckets, VPN clients), STOPPING=1 on stop,
and WATCHDOG=1 every WatchdogSec/2 from the event loop. Nothing is sent without NOTIFY_SOCKET.

  --name <name>   refuse (exit 2) a config whose cluster has another name: a systemd unit
                  (deploy/) passes its instance name, which its ExecStopPost cleans up by

With 'metrics: { listen: "127.0.0.1:9464" }' in the config, serves Prometheus metrics at
http://127.0.0.1:9464/metrics.

Exit status: 0 stopped by a signal, 1 the cluster could not be built or started, 2 a usage or
config error (nothing was created).
`,
  async run(argv) {
    const { positionals, help, values } = parse('up', argv, { name: { type: 'string' } }, ['config']);
    if (help) {
      process.stdout.write(this.help);
      return EXIT_OK;
    }
    const file = configName(positionals[0]);
    const text = log.format === 'text';

    // The service manager's socket and watchdog: read (and removed from the environment the
    // services inherit) first; the watchdog runs from here on, a build included.
    const notifier = Notifier.fromEnv(process.env, {
      onError: (e) => say(`could not notify the service manager (${e.message}); carrying on`, 'warning', 'notify'),
      onSend: (m) => log.debug('notify', () => `sd_notify: ${m.replace(/\n/g, ' ')}`),
    });
    notifier.startWatchdog();
    // JOURNAL_STREAM names our stderr; the services' stdout and stderr are pipes to us, not the journal.
    delete process.env.JOURNAL_STREAM;

    // Signal handlers first: from here on, Ctrl-C always means "tear down, then exit".
    let cluster: Cluster | undefined;
    let publisher: StatusPublisher | undefined;
    let watch: HostWatch | undefined;
    let metricsServer: Server | undefined;
    let signalled: NodeJS.Signals | undefined;
    let finish!: (code: number) => void;
    const finished = new Promise<number>((resolve) => (finish = resolve));
    let stopping: Promise<void> | undefined;
    const stop = () => {
      stopping ??= (async () => {
        const t = performance.now();
        notifier.stopping(`stopping: removing cluster '${cluster!.name}'`);
        metricsServer?.close();
        metricsServer?.closeAllConnections();
        if (publisher) publisher.phase = 'stopping';
        await publisher?.stop();
        await watch?.stop();
        try {
          await cluster!.close();
          say(`cluster '${cluster!.name}' removed in ${((performance.now() - t) / 1000).toFixed(2)} s`, 'info', 'stopped');
          finish(EXIT_OK);
        } catch (e) {
          say(`error while removing cluster '${cluster!.name}': ${(e as Error).message}; run 'netns-cluster down ${cluster!.name}' to finish`, 'error', 'stopped');
          finish(EXIT_FAILURE);
        }
      })();
    };
    let phase: 'loading' | 'building' | 'built' = 'loading';
    const onSignal = (sig: NodeJS.Signals) => {
      if (phase === 'loading') {
        // Nothing is built yet, and a read may be stuck (a slow file): die of the signal at once.
        say(`${sig}: stopping (nothing was built)`, 'notice', 'signal');
        notifier.stopping();
        process.removeAllListeners(sig);
        process.kill(process.pid, sig);
        return;
      }
      if (signalled) {
        // A second signal: no more waiting for services to stop on their own.
        say(`${sig}: again — killing the services now and removing the cluster`, 'warning', 'signal');
        cluster?.kill();
        return;
      }
      signalled = sig;
      say(`${sig}: stopping${cluster ? ` cluster '${cluster.name}'` : ' (once the cluster is built)'}`, 'notice', 'signal');
      if (cluster) stop();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    // SIGHUP (systemctl reload, 'netns-cluster reload'): read the config again and apply it live.
    let reloading = false;
    let reloadMs: number | undefined;
    let reloads = 0;
    process.on('SIGHUP', () => {
      const c = cluster;
      if (phase === 'loading') return onSignal('SIGHUP');
      if (!c || phase !== 'built' || signalled) return say('SIGHUP: the cluster is not running yet, or stopping: no reload', 'warning', 'reload');
      if (reloading) return say('SIGHUP: a reload is in progress already', 'warning', 'reload');
      if (positionals[0] === '-') return say('SIGHUP: the config came from standard input, which cannot be read again: no reload', 'warning', 'reload');
      reloading = true;
      say(`SIGHUP: reloading ${file} …`, 'notice', 'reload');
      notifier.reloading(`reloading ${file}`);
      void (async () => {
        try {
          const r = await c.update(await readConfig(positionals[0]));
          reloadMs = r.ms;
          reloads++;
          // Failover counts per node follow the node count.
          while (failovers.length < c.nodes.length) failovers.push({ failovers: 0 });
          failovers.length = c.nodes.length;
          say(
            `reloaded in ${(r.ms / 1000).toFixed(2)} s: ${r.nodesAdded.length ? `+${r.nodesAdded.length} nodes, ` : ''}${r.nodesRemoved.length ? `-${r.nodesRemoved.length} nodes, ` : ''}` +
              `${r.bucketsMoved} buckets moved${r.tablesReplaced ? ', rules replaced' : ''}${r.servicesRestarted.length ? `, ${r.servicesRestarted.length} services restarted` : ''}`,
            'notice',
            'reloaded',
          );
        } catch (e) {
          say(`reload refused: ${(e as Error).message}`, 'error', 'reload');
        } finally {
          reloading = false;
          notifier.ready();
          publisher?.kick();
        }
      })();
    });

    // SIGUSR1 ('netns-cluster drain'): withdraw the VIP's BGP announcement; the drain command then waits and stops us.
    process.on('SIGUSR1', () => {
      const c = cluster;
      if (!c || phase !== 'built') return say('SIGUSR1: the cluster is not built yet: nothing to drain', 'warning', 'drain');
      say('SIGUSR1: draining: withdrawing the VIP from the routers', 'notice', 'drain');
      c.drain().then(
        () => publisher?.kick(),
        (e: Error) => say(`drain failed: ${e.message}`, 'error', 'drain'),
      );
    });

    const spec = await readConfig(positionals[0]);
    if (values.name !== undefined && spec.name !== values.name)
      throw new ConfigError(file, 'name', `is '${spec.name}', but --name says '${values.name.slice(0, 40)}': name the cluster after the unit instance (netns-cluster@${spec.name}), or rename it in the file`);
    phase = 'building';
    log.cluster = spec.name;
    const t0 = performance.now();
    say(`building cluster '${spec.name}' from ${file} …`, 'info', 'building');
    notifier.status(`building cluster '${spec.name}'`);
    try {
      // A cluster of this name left by a controller that is gone is taken over, not refused.
      cluster = await createCluster(spec, { adopt: true });
    } catch (e) {
      notifier.status(`failed to build cluster '${spec.name}': ${(e as Error).message}`);
      if (e instanceof InvalidArgumentError) throw fromInvalidArgument(file, spec, e);
      throw e;
    }
    const c = cluster;
    const buildMs = performance.now() - t0;
    phase = 'built';
    if (c.adopted)
      say(
        `adopted cluster '${c.name}' left by ${c.adopted.pid ? `process ${c.adopted.pid}` : 'a controller that is gone'} in ${(c.adopted.ms / 1000).toFixed(2)} s (made again: ${c.adopted.namespacesMade} namespaces, ${c.adopted.tablesMade} tables): ${describe(spec, c)}`,
        'notice',
        'adopted',
      );
    else say(`built in ${(buildMs / 1000).toFixed(2)} s: ${describe(spec, c)}`, 'info', 'built');
    for (const w of c.warnings) say(w, 'warning', 'warning');
    if (signalled) {
      stop();
      return finished;
    }

    // Failovers seen, per node: for the metrics.
    const failovers: NodeFailovers[] = c.nodes.map(() => ({ failovers: 0 }));
    let ready = false;
    publisher = new StatusPublisher(
      c,
      new Date().toISOString(),
      () => ({ buildMs, failovers, ...(reloads ? { reloadMs, reloads } : {}) }),
      (nodes) => {
        // Nothing after STOPPING=1: a write that was under way when the stop began says nothing.
        if (ready && !stopping) notifier.status(statusLine(nodes, c.spec.buckets, 'running'));
      },
    );
    const pub = publisher;
    const node = (index: number) => ({ node: index });
    c.on('log', (l) =>
      log.log({ level: l.stream === 'stderr' ? 'notice' : 'info', event: 'output', message: text ? `${l.index >= 0 ? `[n${l.index}]` : '[host]'} ${l.line}` : l.line, stream: l.stream, ...(l.index >= 0 ? node(l.index) : {}) }),
    );
    c.on('announce', (e) => {
      log.notice('announce', `BGP: the VIP is ${e.announcing ? 'announced' : 'withdrawn'} (${e.reason})`);
      pub.kick();
    });
    c.on('node-exit', (e) => {
      say(`n${e.index}: service exited (${e.signal ?? `code ${e.code}`})`, 'warning', 'node-exit');
      pub.kick();
    });
    c.on('node-down', (e) => {
      if (e.reason !== 'manual') {
        failovers[e.index].failovers++;
        if (e.latencyMs !== undefined) failovers[e.index].lastFailoverLatencyMs = e.latencyMs;
      }
      log.log({
        level: e.reason === 'manual' ? 'notice' : 'warning',
        event: 'node-down',
        message: `n${e.index}: out of the distribution (${e.reason}${e.latencyMs !== undefined ? `, buckets moved in ${e.latencyMs.toFixed(1)} ms` : ''})`,
        ...node(e.index),
      });
      pub.kick();
    });
    c.on('node-up', (e) => {
      log.notice('node-up', `n${e.index}: back in the distribution (${e.reason})`, node(e.index));
      pub.kick();
    });
    c.on('rebalance', (e) => {
      log.info('rebalance', `rebalanced: ${Object.keys(e.moves).length} buckets moved`);
      log.debug('rebalance', () => `moves (bucket: from→to): ${Object.entries(e.moves).map(([b, [f, t]]) => `${b}:${f}→${t}`).join(' ')}`);
      pub.kick();
    });
    c.on('repair', (e) => {
      for (const f of e.fixed) say(`repaired on the host: ${f}`, 'warning', 'repair');
      pub.kick();
    });
    c.on('service-state', (e) => {
      if (e.state === 'failed') log.error('service-failed', `n${e.index}: service gave up after repeated failures; the node stays out of the distribution`, node(e.index));
      else log.debug('service-state', `n${e.index}: service ${e.state}`, node(e.index));
      pub.kick();
    });

    if (c.spec.metrics) {
      const { host, port } = c.spec.metrics.listen;
      const snapshot = async (): Promise<MetricsSnapshot> => ({
        cluster: c.name,
        running: true,
        updatedAt: new Date().toISOString(),
        buildMs,
        ...(reloads ? { reloadMs, reloads } : {}),
        buckets: c.spec.buckets,
        nodes: await c.status(),
        failovers,
        bgp: await c.announcement().catch(() => undefined),
      });
      try {
        metricsServer = await serveMetrics({ host, port }, snapshot, (e) => log.debug('metrics', `a scrape failed: ${e.message}`));
        const shown = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
        say(`metrics at http://${shown}/metrics`, 'info', 'metrics');
      } catch (e) {
        // Not serving metrics is no reason to refuse to serve clients.
        say(`metrics: cannot listen on ${host}:${port}: ${(e as Error).message}; carrying on without the endpoint`, 'error', 'metrics');
      }
    }

    if (text) printTable(table(['NODE', 'NETNS', 'ADDRESS', 'MAC'], c.nodes.map((n) => [`n${n.index}`, n.netns, n.addresses.join(' '), n.mac])));
    if (c.spec.service) {
      say(`starting ${c.spec.service.name ?? 'the service'} in every node …`, 'info', 'starting');
      notifier.status(`starting the services of cluster '${c.name}'`);
      try {
        await c.start();
      } catch (e) {
        if (signalled) return finished;
        say(`the service could not be started: ${(e as Error).message}`, 'error', 'start-failed');
        signalled = 'SIGTERM';
        stop();
        await finished;
        return EXIT_FAILURE;
      }
    }
    if (signalled) return finished;
    // From here on the host's side is kept as planned (an uplink made again joins the bridge again).
    watch = new HostWatch(c);
    pub.phase = 'running';
    await pub.flush();
    const nodes = await c.status();
    if (text && c.spec.service) printTable(nodeTable(nodes));
    if (signalled) return finished;
    // Built, and every service started: units ordered After= this one may start now.
    ready = true;
    notifier.ready(statusLine(nodes, c.spec.buckets, 'running'));
    say(`ready: cluster '${c.name}' is up (${c.nodes.length} nodes); stop it with Ctrl-C or 'netns-cluster down ${c.name}'`, 'notice', 'ready');
    return finished;
  },
};
