/**
 * `netns-cluster import-openvpn /etc/openvpn/server/server.conf --vip 192.0.2.1/24 --nodes 4 >
 * cluster.yaml`: a cluster config from the OpenVPN server config an operator already has. The
 * server config is kept as it is (the cluster config names it; netns-cluster reads it at start and
 * sets per node only local, the pool, the management socket, the status file and the log); the
 * cluster gets its port and protocol from it. The result is checked as `check` would check it
 * before it is printed: what the server config must change first is listed with `file:line`.
 * @module
 */
import { readFileSync } from 'node:fs';
import { basename, extname, resolve } from 'node:path';
import { stringify } from 'yaml';
import { validateSpec } from '../cluster/spec.js';
import { nodePool } from '../services/openvpn/config.js';
import { nodePool6 } from '../services/openvpn/pool6.js';
import { readOperatorConfig } from '../services/openvpn/server-conf.js';
import { EXIT_OK, EXIT_USAGE, parse, say, showHelp, UsageError, type Command } from './args.js';

/** The interface of the host's default IPv4 route (from /proc/net/route), if any. */
export function defaultRouteInterface(table = '/proc/net/route'): string | undefined {
  try {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const [iface, destination, , , , , , mask] = line.trim().split(/\s+/);
      if (destination === '00000000' && mask === '00000000' && iface) return iface;
    }
  } catch {
    // no /proc: the caller falls back
  }
  return undefined;
}

/** A cluster name from the config's file name (`server.conf` → `server`), or `vpn`. */
export function nameFromFile(file: string): string {
  const stem = basename(file, extname(file)).toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^[^a-z]+/, '').slice(0, 10).replace(/-+$/, '');
  return stem || 'vpn';
}

/** `bridge:eth1`, `routed:eth0`, or a bare interface name (bridged, as the classic setup does). */
function uplinkOf(v: string): { bridge: string } | { routed: { via: string } } {
  const m = /^(bridge|routed):(.+)$/.exec(v);
  if (!m) return { bridge: v };
  return m[1] === 'bridge' ? { bridge: m[2] } : { routed: { via: m[2] } };
}

export const importOpenvpn: Command = {
  name: 'import-openvpn',
  summary: 'write a cluster config from an existing OpenVPN server.conf',
  help: `Usage: netns-cluster import-openvpn <server.conf> --vip ADDRESS/PREFIX [options] > cluster.yaml

Writes (on stdout, as YAML) a cluster config that runs the OpenVPN server config you already have
in every node: the same file, read at start, with per node only local (the VIP), the client pool
(node k gets the k-th block of the size 'server' gives, from its network; the same for
server-ipv6), the management socket, the status file and the log (to the supervisor) set by
netns-cluster. The cluster's port and protocol come from the file. The result is checked as
'check' checks it; if the server config has something that cannot run in N supervised nodes
(daemon, writepid, a TCP management interface, a missing CRL…), each is listed as
'<file>:<line>: <what to fix>' and nothing is written (exit 2).

  --vip A/P        the shared address with its prefix (repeat for IPv4 + IPv6)   (required)
  --nodes N        number of nodes (default: the number of CPUs, at start)
  --uplink U       bridge:IFACE (enslave IFACE to the cluster's bridge, as the classic setup does),
                   routed:IFACE (the host routes the VIP; safe over SSH), or IFACE (= bridge:IFACE).
                   Default: routed via the interface of the host's default route
  --name NAME      the cluster's name (default: from the file name, e.g. 'server')
  --gateway IP     the nodes' default gateway (bridged uplink; repeat for IPv4 + IPv6)
  --host-netns NS  the namespace that holds the bridge (default: this one)

Example:
  netns-cluster import-openvpn /etc/openvpn/server/server.conf --vip 192.0.2.1/24 --nodes 4 \\
      --uplink bridge:eth1 > /etc/netns-cluster/vpn.yaml
  netns-cluster check /etc/netns-cluster/vpn.yaml && sudo netns-cluster up /etc/netns-cluster/vpn.yaml

Exit status: 0 written, 2 usage error or a config that cannot be used.
`,
  async run(argv) {
    const { values, positionals, help } = parse(
      'import-openvpn',
      argv,
      {
        vip: { type: 'string', multiple: true },
        nodes: { type: 'string' },
        uplink: { type: 'string' },
        name: { type: 'string' },
        gateway: { type: 'string', multiple: true },
        'host-netns': { type: 'string' },
      },
      ['server.conf'],
    );
    if (help) return showHelp(this.help);
    const v = values as { vip?: string[]; nodes?: string; uplink?: string; name?: string; gateway?: string[]; 'host-netns'?: string };
    if (!v.vip?.length) throw new UsageError('--vip: give the shared address with its prefix, e.g. --vip 192.0.2.1/24', 'import-openvpn');
    const file = resolve(positionals[0]);
    const nodes = v.nodes === undefined ? undefined : /^\d+$/.test(v.nodes) ? Number(v.nodes) : NaN;
    if (Number.isNaN(nodes)) throw new UsageError(`--nodes: give a whole number, got '${String(v.nodes).slice(0, 40)}'`, 'import-openvpn');
    const via = defaultRouteInterface();
    const uplink = v.uplink !== undefined ? uplinkOf(v.uplink) : { routed: { via: via ?? 'eth0' } };

    // The server config first: what it says (port, protocol, pools) and what it must change.
    const { config, problems } = readOperatorConfig(file);
    if (!config || problems.length) {
      for (const p of problems) say(p, 'error');
      say(`${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'} to fix before it can run in a cluster; nothing written`, 'error');
      return EXIT_USAGE;
    }
    const spec = {
      name: v.name ?? nameFromFile(file),
      ...(nodes !== undefined ? { nodes } : {}),
      vip: v.vip.length === 1 ? v.vip[0] : v.vip,
      ports: [{ protocol: config.protocol, port: config.port }],
      ...(v.gateway?.length ? { gateway: v.gateway.length === 1 ? v.gateway[0] : v.gateway } : {}),
      uplink,
      ...(v['host-netns'] !== undefined ? { hostNetns: v['host-netns'] } : {}),
      service: { openvpn: { config: file } },
    };
    // Checked as `check` checks it: what is printed is a config `check` and `up` accept.
    const result = validateSpec(spec, { data: true });
    if (!result.resolved) {
      for (const p of result.problems) say(`${p.field}: ${p.message}`, 'error');
      say('the cluster config would not be valid; nothing written', 'error');
      return EXIT_USAGE;
    }
    const r = result.resolved;
    const pools = Array.from({ length: Math.min(r.nodes, 4) }, (_, k) => {
      const p = nodePool(k, config.pool!);
      const p6 = config.pool6 ? nodePool6(k, config.pool6) : undefined;
      return `#   node ${k}: ${p.network}/${p.prefix}${p6 ? ` and ${p6.network}/${p6.prefix}` : ''}`;
    });
    const header = [
      `# netns-cluster config from the OpenVPN server config ${file}`,
      `# (netns-cluster import-openvpn). The server config is used as it is, read at start; per node`,
      `# netns-cluster sets local (the VIP), the client pool, the management socket, the status file`,
      `# and the log (the supervisor's: 'netns-cluster up' prints it, journald keeps it under systemd).`,
      `# Client pools (node k: the k-th block after the one 'server' names):`,
      ...pools,
      ...(r.nodes > 4 ? [`#   … node ${r.nodes - 1}: ${nodePool(r.nodes - 1, config.pool!).network}/${config.pool!.prefix}`] : []),
      ...(nodes === undefined ? ['# nodes: not given, so one per CPU of the host it runs on (add nodes: N to fix it).'] : []),
      `# Check it with 'netns-cluster check <this file>', run it with 'netns-cluster up <this file>'.`,
    ];
    process.stdout.write(`${header.join('\n')}\n${stringify(spec, { lineWidth: 0 })}`);
    return EXIT_OK;
  },
};
