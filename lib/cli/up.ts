/**
 * `netns-cluster up <config>`: builds the cluster a config file describes, starts its service in
 * every node and supervises it in the foreground until SIGINT or SIGTERM, then removes everything.
 * Node output is streamed prefixed `[n<k>]`; status is published in status.json for `status`.
 * @module
 */
import { createCluster, type Cluster } from '../cluster.js';
import { fromInvalidArgument, loadConfig } from '../config.js';
import { InvalidArgumentError } from '../errors.js';
import type { ClusterSpec } from '../spec.js';
import { EXIT_FAILURE, EXIT_OK, parse, say, type Command } from './args.js';
import { nodeTable } from './render.js';
import { writeStatus, type StatusFile } from './status-file.js';
import { table } from './table.js';

const PUBLISH_EVERY_MS = 2000;

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
        nodes,
      });
    } catch (e) {
      if (this.#stopped) return;
      if (!this.#warned) say(`warning: could not publish status: ${(e as Error).message}`);
      this.#warned = true;
    }
  }
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
  help: `Usage: netns-cluster up <config.yaml|config.json>

Builds the cluster the config describes (see schema/cluster.schema.json), starts its service in
every node, and supervises it in the foreground: node output is printed prefixed [n<k>], failover
and failback as they happen. SIGINT (Ctrl-C) or SIGTERM (e.g. 'netns-cluster down <name>', systemd) stops the services and
removes everything the cluster created, and puts back what it changed on
the host (an uplink's down state, forwarding sysctls). A second signal does not wait for the
services to stop gracefully: it kills them at once and removes the cluster. A signal while the
config is still being read exits at once (nothing has been built).

SIGHUP ('netns-cluster reload <name>', systemctl reload) reads the config file again and applies it
live: nodes added or removed (only the buckets the change needs move), ports, the service's options.
A change that cannot be made live (VIP, uplink, mode, hash, buckets, seed, networks) is refused and
nothing changes. A cluster left by a controller that is gone is adopted, not refused.

While it runs, 'netns-cluster status <name>' shows its nodes (from
/run/netns-cluster/<name>/status.json, rewritten on every event and every 2 s).

Exit status: 0 stopped by a signal, 1 the cluster could not be built or started, 2 a usage or
config error (nothing was created).
`,
  async run(argv) {
    const { positionals, help } = parse('up', argv, {}, ['config']);
    if (help) {
      process.stdout.write(this.help);
      return EXIT_OK;
    }
    const file = positionals[0];

    // Signal handlers first: from here on, Ctrl-C always means "tear down, then exit".
    let cluster: Cluster | undefined;
    let publisher: StatusPublisher | undefined;
    let signalled: NodeJS.Signals | undefined;
    let finish!: (code: number) => void;
    const finished = new Promise<number>((resolve) => (finish = resolve));
    let stopping: Promise<void> | undefined;
    const stop = () => {
      stopping ??= (async () => {
        const t = performance.now();
        if (publisher) publisher.phase = 'stopping';
        await publisher?.stop();
        try {
          await cluster!.close();
          say(`cluster '${cluster!.name}' removed in ${((performance.now() - t) / 1000).toFixed(2)} s`);
          finish(EXIT_OK);
        } catch (e) {
          say(`error while removing cluster '${cluster!.name}': ${(e as Error).message}; run 'netns-cluster down ${cluster!.name}' to finish`);
          finish(EXIT_FAILURE);
        }
      })();
    };
    let phase: 'loading' | 'building' | 'built' = 'loading';
    const onSignal = (sig: NodeJS.Signals) => {
      if (phase === 'loading') {
        // Nothing is built yet, and a read may be stuck (a slow file): die of the signal at once.
        say(`${sig}: stopping (nothing was built)`);
        process.removeAllListeners(sig);
        process.kill(process.pid, sig);
        return;
      }
      if (signalled) {
        // A second signal: no more waiting for services to stop on their own.
        say(`${sig}: again — killing the services now and removing the cluster`);
        cluster?.kill();
        return;
      }
      signalled = sig;
      say(`${sig}: stopping${cluster ? ` cluster '${cluster.name}'` : ' (once the cluster is built)'}`);
      if (cluster) stop();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    // SIGHUP (systemctl reload, 'netns-cluster reload'): read the config again and apply it live.
    let reloading = false;
    process.on('SIGHUP', () => {
      const c = cluster;
      if (phase === 'loading') return onSignal('SIGHUP');
      if (!c || phase !== 'built' || signalled) return say('SIGHUP: the cluster is not running yet, or stopping: no reload');
      if (reloading) return say('SIGHUP: a reload is in progress already');
      reloading = true;
      say(`SIGHUP: reloading ${file} …`);
      void (async () => {
        try {
          const r = await c.update(await loadConfig(file));
          say(
            `reloaded in ${(r.ms / 1000).toFixed(2)} s: ${r.nodesAdded.length ? `+${r.nodesAdded.length} nodes, ` : ''}${r.nodesRemoved.length ? `-${r.nodesRemoved.length} nodes, ` : ''}` +
              `${r.bucketsMoved} buckets moved${r.tablesReplaced ? ', rules replaced' : ''}${r.servicesRestarted.length ? `, ${r.servicesRestarted.length} services restarted` : ''}`,
          );
        } catch (e) {
          say(`reload refused: ${(e as Error).message}`);
        } finally {
          reloading = false;
        }
      })();
    });

    const spec = await loadConfig(file);
    phase = 'building';
    const t0 = performance.now();
    say(`building cluster '${spec.name}' from ${file} …`);
    try {
      // A cluster of this name left by a controller that is gone is taken over, not refused.
      cluster = await createCluster(spec, { adopt: true });
    } catch (e) {
      if (e instanceof InvalidArgumentError) throw fromInvalidArgument(file, spec, e);
      throw e;
    }
    const c = cluster;
    phase = 'built';
    if (c.adopted)
      say(`adopted cluster '${c.name}' left by ${c.adopted.pid ? `process ${c.adopted.pid}` : 'a controller that is gone'} in ${(c.adopted.ms / 1000).toFixed(2)} s (${c.adopted.repaired} objects made again): ${describe(spec, c)}`);
    else say(`built in ${((performance.now() - t0) / 1000).toFixed(2)} s: ${describe(spec, c)}`);
    for (const w of c.warnings) say(`warning: ${w}`);
    if (signalled) {
      stop();
      return finished;
    }

    publisher = new StatusPublisher(c, new Date().toISOString());
    const pub = publisher;
    c.on('log', (l) => (l.stream === 'stderr' ? process.stderr : process.stdout).write(`[n${l.index}] ${l.line}\n`));
    c.on('node-exit', (e) => {
      say(`n${e.index}: service exited (${e.signal ?? `code ${e.code}`})`);
      pub.kick();
    });
    c.on('node-down', (e) => {
      say(`n${e.index}: out of the distribution (${e.reason}${e.latencyMs !== undefined ? `, buckets moved in ${e.latencyMs.toFixed(1)} ms` : ''})`);
      pub.kick();
    });
    c.on('node-up', (e) => {
      say(`n${e.index}: back in the distribution (${e.reason})`);
      pub.kick();
    });
    c.on('rebalance', (e) => {
      say(`rebalanced: ${Object.keys(e.moves).length} buckets moved`);
      pub.kick();
    });
    c.on('service-state', (e) => {
      if (e.state === 'failed') say(`n${e.index}: service gave up after repeated failures; the node stays out of the distribution`);
      pub.kick();
    });

    process.stdout.write(table(['NODE', 'NETNS', 'ADDRESS', 'MAC'], c.nodes.map((n) => [`n${n.index}`, n.netns, n.addresses.join(' '), n.mac])));
    if (c.spec.service) {
      say(`starting ${c.spec.service.name ?? 'the service'} in every node …`);
      try {
        await c.start();
      } catch (e) {
        if (signalled) return finished;
        say(`the service could not be started: ${(e as Error).message}`);
        signalled = 'SIGTERM';
        stop();
        await finished;
        return EXIT_FAILURE;
      }
    }
    if (signalled) return finished;
    pub.phase = 'running';
    await pub.flush();
    if (c.spec.service) process.stdout.write(nodeTable(await c.status()));
    say(`ready: cluster '${c.name}' is up (${c.nodes.length} nodes); stop it with Ctrl-C or 'netns-cluster down ${c.name}'`);
    return finished;
  },
};
