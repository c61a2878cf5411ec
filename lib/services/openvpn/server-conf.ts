/**
 * An operator's own OpenVPN server config (`openvpn({ config: '/etc/openvpn/server/server.conf' })`)
 * turned into one config per node.
 *
 * Everything the operator wrote is kept (PKI, ciphers, `push`, plugins, scripts with their
 * `script-security`, `client-config-dir`, `user`/`group`, …), in order, `config` includes read in
 * place. Per node, netns-cluster sets only what must differ: `local` (the VIP), the pool (`server`
 * and `server-ipv6`: node k gets the k-th block of the size written, starting at the network
 * written), the management socket and the status file (in the node's private directory), and the
 * log (stdout, which the supervisor collects: `log`, `log-append` and `syslog` are dropped).
 * `ifconfig-pool-persist` and `replay-persist` are made per node: their file moves into the node's
 * private directory (it lasts as long as the cluster runs).
 *
 * Refused, with `file:line`: what would escape supervision or cannot work in N nodes at once
 * (`daemon`, `inetd`, `writepid`, management on TCP or options that wait for a management client,
 * a second `local`, `tap` devices, a client config), scripts without `script-security 2`, and
 * files the config names that the node could not read (missing, the wrong kind, not readable by
 * the `user` OpenVPN switches to, shadowed by `/etc/netns/<node>/…` in the node's mount view).
 * All of that is checked when the spec is checked, before anything is built.
 * @module
 */
import { constants, readFileSync, statSync, type Stats } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { InvalidArgumentError } from '../../util/errors.js';
import { SUPERVISION, type PoolSpec } from './config.js';
import { nodeView } from './node-view.js';
import { at, ConfSyntaxError, loadConf, quoteParam, renderDirective, type ConfDirective } from './conf-parse.js';
import type { Pool6Spec } from './pool6.js';

export { nodeView };

/** What a spec calls the option. */
export const CONFIG_FIELD = 'service.openvpn.config';

/** What the reader makes of an operator's config. */
export interface OperatorConfig {
  /** The config file, absolute. */
  file: string;
  /** Every directive, includes read in place. */
  directives: ConfDirective[];
  port: number;
  protocol: 'udp' | 'tcp';
  /** IPv4 or IPv6 transport when `proto` says so (`udp6`, `tcp4-server`). */
  family?: 4 | 6;
  /** Node 0's IPv4 block, from `server NETWORK NETMASK`. */
  pool?: PoolSpec;
  /** Node 0's IPv6 block, from `server-ipv6 NETWORK/BITS`. */
  pool6?: Pool6Spec;
  /** Where `server` and `server-ipv6` are written (`file:line`), for messages about the pools. */
  poolAt?: string;
  pool6At?: string;
  user?: string;
  group?: string;
  chroot?: string;
  /** Files and directories the config names, to check in each node's view. */
  files: FileRef[];
}

/** A file the config names. */
export interface FileRef {
  path: string;
  kind: 'file' | 'dir' | 'program';
  d: ConfDirective;
  /** Read after OpenVPN has dropped its privileges and entered its chroot (so under the chroot, as that user). */
  late: boolean;
}

/** Why a directive is refused. */
const REFUSED: Record<string, string> = {
  // What escapes supervision is refused in the same words as in `extra`.
  daemon: `${SUPERVISION.daemon}; remove it (netns-cluster supervises every node’s process)`,
  inetd: `${SUPERVISION.inetd}; remove it (netns-cluster supervises every node’s process)`,
  writepid: `${SUPERVISION.writepid}, and every node would write this one file; remove it (\`netns-cluster status\` shows each node’s pid)`,
  'management-hold': 'OpenVPN would wait for a management client to release it; netns-cluster’s controller is the only client and does not; remove it',
  'management-query-passwords': 'OpenVPN would ask a management client for passwords; netns-cluster’s controller is the only client and does not answer; remove it',
  'management-query-proxy': 'OpenVPN would ask a management client; netns-cluster’s controller is the only client and does not answer; remove it',
  'management-query-remote': 'OpenVPN would ask a management client; netns-cluster’s controller is the only client and does not answer; remove it',
  'management-client-auth': 'every client would wait for a management client to authorise it; netns-cluster’s controller is the only client and does not; use auth-user-pass-verify or a plugin',
  'management-client-pf': 'every client would wait for a management client; netns-cluster’s controller is the only client and does not; remove it',
  'management-external-key': 'the key would come from a management client; netns-cluster’s controller is the only client and has none; give the key as a file',
  'management-external-cert': 'the certificate would come from a management client; netns-cluster’s controller is the only client and has none; give the certificate as a file',
  'management-client-user': 'only that user could use the management socket, and netns-cluster’s controller (root) must; remove it (the socket is 0600 in a 0700 directory)',
  'management-client-group': 'only that group could use the management socket, and netns-cluster’s controller (root) must; remove it (the socket is 0600 in a 0700 directory)',
  'server-bridge': 'netns-cluster runs routed (tun) servers; write `server NETWORK NETMASK` with `dev tun`',
  'ifconfig-pool': 'netns-cluster gives each node its block of the pool through `server`; write the whole range as `server NETWORK NETMASK`',
  'ifconfig-ipv6-pool': 'netns-cluster gives each node its block of the pool through `server-ipv6`; write the range as `server-ipv6 NETWORK/BITS`',
  client: 'this is a client config; give the server’s',
  'tls-client': 'this is a client config; give the server’s',
  remote: 'this is a client config (a server does not connect to a remote); give the server’s',
  askpass: 'OpenVPN would stop at start to ask for the key’s passphrase (or read it from a file each node shares); give the key unencrypted, readable by root only',
};

/** Set per node by netns-cluster: the operator's line is dropped (its value is read where it matters). */
const PER_NODE = new Set(['local', 'port', 'lport', 'proto', 'server', 'server-ipv6', 'management', 'status', 'log', 'log-append', 'syslog', 'ifconfig-pool-persist', 'replay-persist']);

/** Directives that name a file (parameter 0) OpenVPN reads, unless given inline. */
const FILES: Record<string, { kind: FileRef['kind']; late?: boolean }> = {
  ca: { kind: 'file' },
  cert: { kind: 'file' },
  key: { kind: 'file' },
  dh: { kind: 'file' },
  'extra-certs': { kind: 'file' },
  pkcs12: { kind: 'file' },
  'tls-auth': { kind: 'file' },
  'tls-crypt': { kind: 'file' },
  'tls-crypt-v2': { kind: 'file' },
  secret: { kind: 'file' },
  'auth-gen-token-secret': { kind: 'file' },
  'crl-verify': { kind: 'file', late: true }, // read again at every connection
  capath: { kind: 'dir' },
  'client-config-dir': { kind: 'dir', late: true },
  'tmp-dir': { kind: 'dir', late: true },
  chroot: { kind: 'dir' },
};

/** Directives whose parameter 0 is a command OpenVPN runs (needs `script-security 2`). */
const SCRIPTS: Record<string, { late: boolean }> = {
  up: { late: false },
  'route-up': { late: true },
  'route-pre-down': { late: true },
  down: { late: true },
  ipchange: { late: true },
  'auth-user-pass-verify': { late: true },
  'client-connect': { late: true },
  'client-disconnect': { late: true },
  'learn-address': { late: true },
  'tls-verify': { late: true },
};

/** Where OpenVPN looks for a plugin given without a directory (Debian/Ubuntu, then other layouts). */
export const PLUGIN_DIRS = ['/usr/lib/x86_64-linux-gnu/openvpn/plugins', '/usr/lib/aarch64-linux-gnu/openvpn/plugins', '/usr/lib/openvpn/plugins', '/usr/lib64/openvpn/plugins', '/usr/local/lib/openvpn/plugins'];

/** A directive as it takes effect: `setenv opt X …` is X when OpenVPN knows X. */
function effective(d: ConfDirective): ConfDirective {
  if (d.name === 'setenv' && d.args[0] === 'opt' && d.args[1] !== undefined) return { ...d, name: d.args[1], args: d.args.slice(2) };
  return d;
}

const problem = (d: Pick<ConfDirective, 'file' | 'line' | 'name'>, why: string) => `${at(d)}: '${d.name}': ${why}`;

/** The protocol a `proto` value means for a server, or undefined. */
function protocolOf(v: string): { protocol: 'udp' | 'tcp'; family?: 4 | 6 } | undefined {
  const m = /^(udp|tcp)(4|6)?(-server)?$/.exec(v);
  if (!m || (m[1] === 'udp' && m[3])) return undefined;
  return { protocol: m[1] as 'udp' | 'tcp', family: m[2] ? (Number(m[2]) as 4 | 6) : undefined };
}

const maskBits = (mask: string): number | undefined => {
  const parts = mask.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return undefined;
  const v = parts.reduce((a, p) => a * 256 + p, 0);
  const bits = 32 - Math.log2(2 ** 32 - v);
  return Number.isInteger(bits) && bits >= 0 ? bits : undefined;
};

/**
 * Reads and checks the operator's config `path`: the grammar, then every directive. Returns the
 * config with every problem found (each `file:line: 'directive': what to fix`), the host's view
 * of the files it names included; no config when it cannot be read at all.
 */
export function readOperatorConfig(path: string): { config?: OperatorConfig; problems: string[] } {
  const file = resolve(path);
  let directives: ConfDirective[];
  try {
    directives = loadConf(file);
  } catch (e) {
    if (e instanceof ConfSyntaxError) return { problems: [e.message] };
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EACCES' ? 'permission denied' : err.message;
    return { problems: [`${file}: cannot read it: ${why}; give the path of the server's config (e.g. /etc/openvpn/server/server.conf)`] };
  }
  const problems: string[] = [];
  const c: OperatorConfig = { file, directives, port: 1194, protocol: 'udp', files: [] };
  let local: ConfDirective | undefined;
  let scriptSecurity = 1;
  const scripts: ConfDirective[] = [];
  let sawServer = false;
  for (const raw of directives) {
    const d = effective(raw);
    const refused = REFUSED[d.name];
    if (refused) {
      problems.push(problem(d, refused));
      continue;
    }
    const a = d.args;
    switch (d.name) {
      case 'local':
        if (local) problems.push(problem(d, `a second 'local' (the first is at line ${local.line}${local.file === d.file ? '' : ` of ${local.file}`}): every node listens on the VIP, which netns-cluster sets; remove it`));
        local = d;
        break;
      case 'port':
      case 'lport': {
        const n = Number(a[0]);
        if (!/^\d+$/.test(a[0] ?? '') || n < 1 || n > 65535) problems.push(problem(d, `must be a port from 1 to 65535, got ${quoteParam(a[0] ?? '')}`));
        else c.port = n;
        break;
      }
      case 'proto': {
        const p = protocolOf(a[0] ?? '');
        if (!p) problems.push(problem(d, `${quoteParam(a[0] ?? '')} is not a server protocol; write udp or tcp-server (udp4, udp6, tcp4-server, tcp6-server)`));
        else Object.assign(c, p.family ? p : { protocol: p.protocol });
        break;
      }
      case 'server': {
        sawServer = true;
        const bits = maskBits(a[1] ?? '');
        if (!/^\d+\.\d+\.\d+\.\d+$/.test(a[0] ?? '') || bits === undefined) problems.push(problem(d, 'must be `server NETWORK NETMASK`, e.g. server 10.8.0.0 255.255.255.0'));
        else if (bits < 8 || bits > 29) problems.push(problem(d, `a /${bits} block per node: give a netmask from 255.0.0.0 to 255.255.255.248 (/8 to /29); node k gets the k-th block of that size`));
        else {
          c.pool = { base: a[0], prefix: bits };
          c.poolAt = at(d);
        }
        break;
      }
      case 'server-ipv6': {
        const [net, bits] = (a[0] ?? '').split('/');
        if (!net || !bits || !/^\d+$/.test(bits)) problems.push(problem(d, 'must be `server-ipv6 NETWORK/BITS`, e.g. server-ipv6 fd00:8::/112'));
        else {
          c.pool6 = { base: net, prefix: Number(bits) };
          c.pool6At = at(d);
        }
        break;
      }
      case 'dev':
        if ((a[0] ?? '').startsWith('tap')) problems.push(problem(d, 'netns-cluster runs routed servers: use `dev tun` (a tap device would need a bridge in every node)'));
        break;
      case 'dev-type':
        if (a[0] === 'tap') problems.push(problem(d, 'netns-cluster runs routed servers: use `dev-type tun`'));
        break;
      case 'mode':
        if (a[0] !== 'server') problems.push(problem(d, `'mode ${a[0] ?? ''}' serves one peer; a cluster node is a server: write \`server NETWORK NETMASK\``));
        break;
      case 'management':
        if (a[1] !== 'unix')
          problems.push(
            problem(
              d,
              `a management interface on TCP ${a[0] ?? ''}:${a[1] ?? ''} would be opened by every node at once, and lets anyone who can connect control the server; remove it (each node has its own management socket, which the controller uses: \`netns-cluster status\` shows the clients)`,
            ),
          );
        break;
      case 'script-security':
        scriptSecurity = Number(a[0] ?? 1);
        break;
      case 'user':
        c.user = a[0];
        break;
      case 'group':
        c.group = a[0];
        break;
      case 'chroot':
        c.chroot = a[0] === undefined ? undefined : resolve(d.cwd, a[0]);
        break;
      case 'plugin': {
        const mod = a[0];
        if (!mod) break;
        if (isAbsolute(mod) || mod.includes('/')) c.files.push({ path: resolve(d.cwd, mod), kind: 'file', d, late: false });
        else if (!PLUGIN_DIRS.some((dir) => isFile(join(dir, mod))))
          problems.push(problem(d, `no plugin ${quoteParam(mod)} in ${PLUGIN_DIRS.filter((x) => isDir(x)).join(', ') || PLUGIN_DIRS[0]}; install it or give its absolute path`));
        break;
      }
    }
    const f = FILES[d.name];
    if (f && d.inline === undefined && a[0] !== undefined && a[0] !== '[[INLINE]]' && !(d.name === 'dh' && a[0] === 'none')) {
      const kind = d.name === 'crl-verify' && a[1] === 'dir' ? 'dir' : f.kind;
      c.files.push({ path: resolve(d.cwd, a[0]), kind, d, late: f.late ?? false });
    }
    const s = SCRIPTS[d.name];
    if (s && a[0] !== undefined) {
      scripts.push(d);
      const program = a[0].trim().split(/\s+/)[0];
      if (program) c.files.push({ path: resolve(d.cwd, program), kind: 'program', d, late: s.late });
    }
  }
  if (scripts.length && !(scriptSecurity >= 2))
    problems.push(problem(scripts[0], `runs a program, which OpenVPN refuses below 'script-security 2' (this config has ${scriptSecurity === 1 ? 'the default, 1' : scriptSecurity}); add 'script-security 2'`));
  if (!sawServer)
    problems.push(`${file}: has no 'server NETWORK NETMASK' line; add one (netns-cluster gives node k the k-th block of that size after NETWORK)`);
  problems.push(...checkFiles(c, undefined));
  return { config: c, problems };
}

const isFile = (p: string) => {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
};
const isDir = (p: string) => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
};

/** uid and primary gid of a user name (or id), and the gid of a group, from /etc/passwd and /etc/group. */
function account(db: '/etc/passwd' | '/etc/group', name: string): { id: number; gid?: number } | undefined {
  if (/^\d+$/.test(name)) return { id: Number(name) };
  let text = '';
  try {
    text = readFileSync(db, 'utf8');
  } catch {
    return undefined;
  }
  for (const l of text.split('\n')) {
    const f = l.split(':');
    if (f[0] === name) return { id: Number(f[2]), gid: db === '/etc/passwd' ? Number(f[3]) : undefined };
  }
  return undefined;
}

/** Whether uid/gid may do `want` (r, x, or rx) on a file with stats `st` (root may always read, and run what anyone may). */
function allowed(st: Stats, uid: number, gid: number, want: number): boolean {
  if (uid === 0) return (want & 1) === 0 || st.isDirectory() || (st.mode & 0o111) !== 0;
  const bits = st.uid === uid ? (st.mode >> 6) & 7 : st.gid === gid ? (st.mode >> 3) & 7 : st.mode & 7;
  return (bits & want) === want;
}

/** The directories above `path`, from the root down (the root itself left out). */
function ancestors(path: string): string[] {
  const parts = path.split('/').filter(Boolean).slice(0, -1);
  return parts.map((_, i) => `/${parts.slice(0, i + 1).join('/')}`);
}


/**
 * Problems with the files the config names, as the node `netns` sees them (undefined: the host's
 * view): each must exist and be of its kind; what OpenVPN reads after dropping privileges must be
 * readable by that user, and after `chroot` lies under it.
 */
export function checkFiles(c: OperatorConfig, netns: string | undefined): string[] {
  const out: string[] = [];
  const user = c.user === undefined ? undefined : account('/etc/passwd', c.user);
  const group = c.group === undefined ? undefined : account('/etc/group', c.group);
  const uid = user?.id ?? 0;
  const gid = group?.id ?? user?.gid ?? 0;
  const where = netns ? ` in node namespace ${netns}'s view` : '';
  for (const f of c.files) {
    // What OpenVPN opens after chroot is found under the chroot directory.
    const inJail = f.late && c.chroot && f.d.name !== 'chroot' ? join(c.chroot, f.path) : f.path;
    const seen = nodeView(inJail, netns);
    const shown = seen === f.path ? f.path : `${f.path} (${seen === inJail ? `under the chroot: ${inJail}` : `seen as ${seen}`})`;
    let st: Stats;
    try {
      st = statSync(seen);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      out.push(problem(f.d, `${shown}${where}: ${code === 'ENOENT' ? 'no such file or directory' : code}; ${code === 'ENOENT' ? `create it or fix the path${f.late && c.chroot ? ` (after 'chroot ${c.chroot}' OpenVPN looks for it there)` : ''}` : 'make it readable'}`));
      continue;
    }
    const kindOk = f.kind === 'dir' ? st.isDirectory() : st.isFile();
    if (!kindOk) {
      const is = st.isDirectory() ? 'a directory' : st.isFile() ? 'a file' : 'not a regular file';
      out.push(problem(f.d, `${shown}${where} is ${is}; give ${f.kind === 'dir' ? 'a directory' : 'a file'}`));
      continue;
    }
    const want = f.kind === 'file' ? constants.R_OK : f.kind === 'dir' ? constants.R_OK | constants.X_OK : constants.X_OK;
    const [u, g] = f.late ? [uid, gid] : [0, 0];
    // After the switch, every directory on the way must let that user through.
    const closed = u === 0 ? undefined : ancestors(seen).find((d) => !allowed(statSync(d), u, g, constants.X_OK));
    if (closed) {
      out.push(problem(f.d, `${shown}: user ${c.user} cannot reach it (OpenVPN switches to that user before it ${f.kind === 'program' ? 'runs' : 'reads'} it): the directory ${closed} is mode ${(statSync(closed).mode & 0o777).toString(8).padStart(4, '0')}; chmod o+x it, or move the file`));
      continue;
    }
    if (!allowed(st, u, g, want)) {
      const who = u === 0 ? 'root' : `user ${c.user}${c.group ? `/group ${c.group}` : ''} (OpenVPN switches to it before it ${f.kind === 'program' ? 'runs this' : 'reads this'})`;
      const what = f.kind === 'program' ? 'executable' : 'readable';
      out.push(problem(f.d, `${shown} is not ${what} by ${who} (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); ${f.kind === 'program' ? 'chmod +x it' : 'make it readable (chmod/chgrp)'}`));
      continue;
    }
    if (f.d.name === 'key' && f.kind === 'file' && u === 0) {
      try {
        const text = readFileSync(seen, 'utf8');
        if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(text))
          out.push(problem(f.d, `${shown} is encrypted: OpenVPN would stop at start to ask for its passphrase; give the key unencrypted (readable by root only)`));
      } catch {
        // permission problems are reported above
      }
    }
  }
  return out;
}

/** What differs per node. */
export interface NodeSettings {
  index: number;
  vip: string;
  port: number;
  protocol: 'udp' | 'tcp';
  /** This node's IPv4 block. */
  pool: { network: string; netmask: string };
  /** This node's IPv6 block (`network/prefix`), if any. */
  pool6?: string;
  managementSocket: string;
  statusFile: string;
  /** The node's private directory (per-node persistence files go there). */
  dir: string;
  /** Lines to add after the per-node ones (e.g. a management option another feature needs). */
  more?: string[];
}

/** One node's config: the operator's directives, in order, with the per-node ones replaced. */
export function renderNodeConfig(c: OperatorConfig, n: NodeSettings): string {
  const out = [`# netns-cluster node ${n.index}, from ${c.file}: the operator's directives, then the ones set per node.`, `cd ${quoteParam(c.directives[0]?.cwd ?? '/')}`];
  let dco = false;
  for (const raw of c.directives) {
    const d = effective(raw);
    if (d.name === 'disable-dco') dco = true;
    if (!PER_NODE.has(d.name)) {
      out.push(renderDirective(raw));
      continue;
    }
    // Persistence files: the same directive, with a file of the node's own.
    if (d.name === 'ifconfig-pool-persist') out.push(renderDirective({ name: d.name, args: [join(n.dir, 'ipp.txt'), ...d.args.slice(1)] }));
    if (d.name === 'replay-persist') out.push(renderDirective({ name: d.name, args: [join(n.dir, 'replay-persist.txt')] }));
  }
  out.push(
    `# set per node by netns-cluster`,
    `local ${n.vip}`,
    `port ${n.port}`,
    `proto ${n.protocol === 'udp' ? 'udp' : 'tcp-server'}`,
    `server ${n.pool.network} ${n.pool.netmask}`,
    ...(n.pool6 ? [`server-ipv6 ${n.pool6}`] : []),
    ...(dco ? [] : ['disable-dco']),
    `management ${quoteParam(n.managementSocket)} unix`,
    `status ${quoteParam(n.statusFile)} 1`,
    ...(n.more ?? []),
  );
  return `${out.join('\n')}\n`;
}

/** An InvalidArgumentError for `problems` about the config (field `service.openvpn.config`). */
export function configError(problems: string[]): InvalidArgumentError {
  return new InvalidArgumentError(
    CONFIG_FIELD,
    problems[0],
    problems.map((message) => ({ field: CONFIG_FIELD, message })),
  );
}
