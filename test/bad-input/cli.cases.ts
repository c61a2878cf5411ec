// The command line: the built CLI (dist/lib/cli/main.js) with bad arguments and bad files. A
// non-zero exit becomes an Error with code EXIT_<status> and stderr as its message; `up` and
// `check` must refuse at once (a FIFO or /dev/zero never hangs them) and create nothing.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import type { BadInputCase, CaseContext } from './types.js';

const main = fileURLToPath(new URL('../../dist/lib/cli/main.js', import.meta.url));
const FP = '00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF';

/** Runs the CLI (with `stdin`, else an empty standard input); resolves on exit 0, rejects with EXIT_<status> (stderr as the message) otherwise. */
function cli(args: string[], stdin = ''): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = execFile(process.execPath, [main, ...args], { encoding: 'utf8', timeout: 20_000, maxBuffer: 64 << 20 }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      const e = err as Error & { code?: unknown; killed?: boolean; signal?: string };
      const status = typeof e.code === 'number' ? `EXIT_${e.code}` : e.killed ? 'TIMEOUT' : `SIGNAL_${e.signal}`;
      reject(Object.assign(new Error(stderr), { code: status }));
    });
    p.stdin?.end(stdin);
  });
}

type Content = string | Buffer | ((ctx: CaseContext) => string | Buffer);
/** Writes `file` (in the case's directory) and runs `command <file>`. */
function withFile(name: string, command: 'check' | 'up', file: string, content: Content, message: RegExp, code = 'EXIT_2'): BadInputCase {
  return {
    name,
    run: (ctx) => {
      const path = join(ctx.dir, file);
      writeFileSync(path, typeof content === 'function' ? content(ctx) : content);
      return cli([command, path]);
    },
    expect: { code, message },
    timeoutMs: 20_000,
  };
}
function args(name: string, argv: string[] | ((ctx: CaseContext) => string[]), message: RegExp, code = 'EXIT_2'): BadInputCase {
  return { name, run: (ctx) => cli(typeof argv === 'function' ? argv(ctx) : argv), expect: { code, message }, timeoutMs: 20_000 };
}

const yaml = (ctx: CaseContext, rest = '') => `name: ${ctx.prefix}\nvip: 192.0.2.1/24\nuplink: { bridge: ${ctx.prefix}u }\n${rest}`;
const ovpn = (ctx: CaseContext, o: string) => `${yaml(ctx, 'ports: [{ protocol: udp, port: 1194 }]\n')}service:\n  openvpn:\n    clientFingerprints: ["${FP}"]\n${o}`;
const laughs = (() => {
  const l = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (let i = 1; i < 12; i++) l.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`);
  return l.join('\n');
})();
const fifo = (ctx: CaseContext) => {
  const p = join(ctx.dir, 'fifo.yaml');
  execFileSync('mkfifo', [p]);
  return p;
};

export const cases: BadInputCase[] = [
  // check and up never read what is not a regular file, and never hang on it.
  args('check a FIFO', (ctx) => ['check', fifo(ctx)], /netns-cluster: .*fifo\.yaml: is a FIFO \(named pipe\), not a regular file/),
  args('up a FIFO', (ctx) => ['up', fifo(ctx)], /fifo\.yaml: is a FIFO/),
  args('check /dev/zero', ['check', '/dev/zero'], /\/dev\/zero: is a character device, not a regular file/),
  args('up /dev/zero', ['up', '/dev/zero'], /\/dev\/zero: is a character device/),
  args('check /dev/stdin (a pipe)', ['check', '/dev/stdin'], /\/dev\/stdin: is a (FIFO|socket)/),
  args('check /proc/self/mem', ['check', '/proc/self/mem'], /\/proc\/self\/mem: (cannot read it|unknown file type)/),
  args('check a directory', (ctx) => ['check', ctx.dir], /: is a directory, not a regular file/),
  args('check a missing file', (ctx) => ['check', join(ctx.dir, 'nope.yaml')], /nope\.yaml: no such file/),
  args('check an empty path', ['check', ''], /give the path of a \.json, \.yaml or \.yml file/),
  args('check - (an empty standard input)', ['check', '-'], /<stdin>: expected a mapping of fields .* got an empty file/),
  {
    name: 'check - (a bad value on standard input)',
    run: () => cli(['check', '-'], 'name: x\nvip: 192.0.2.1/24\nuplink: { bridge: eth1 }\nnodes: 0\n'),
    expect: { code: 'EXIT_2', message: /<stdin>: nodes: must be an integer from 1 to 256, got 0/ },
    timeoutMs: 20_000,
  },
  withFile('check a file over 1 MiB', 'check', 'big.yaml', (ctx) => yaml(ctx, `# ${'x'.repeat(1 << 20)}\n`), /big\.yaml: is larger than 1024 KiB/),
  withFile('check a YAML alias bomb', 'check', 'lol.yaml', (ctx) => `${yaml(ctx)}${laughs}\n`, /lol\.yaml: its YAML aliases expand too far/),
  withFile('up a YAML alias bomb', 'up', 'lol.yaml', (ctx) => `${yaml(ctx)}${laughs}\n`, /lol\.yaml: its YAML aliases expand too far/),
  withFile('check UTF-16', 'check', 'u16.yaml', (ctx) => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(yaml(ctx), 'utf16le')]), /u16\.yaml: is UTF-16 text/),
  withFile('check a BOM then a bad value', 'check', 'bom.yaml', (ctx) => `\uFEFF${yaml(ctx, 'nodes: 0\n')}`, /bom\.yaml: nodes: must be an integer from 1 to 256, got 0/),
  withFile('check an unknown extension', 'check', 'cluster.conf', (ctx) => yaml(ctx), /cluster\.conf: unknown file type '\.conf'/),

  // Bad values: exit 2, the file, the field, what to fix; nothing created.
  withFile('check a multicast VIP', 'check', 'mc.yaml', (ctx) => yaml(ctx).replace('192.0.2.1/24', '239.0.0.1/24'), /mc\.yaml: vip: 239\.0\.0\.1 is multicast/),
  withFile('up a multicast VIP', 'up', 'mc.yaml', (ctx) => yaml(ctx).replace('192.0.2.1/24', '239.0.0.1/24'), /mc\.yaml: vip: 239\.0\.0\.1 is multicast/),
  withFile('check the network address as VIP', 'check', 'net.yaml', (ctx) => yaml(ctx).replace('192.0.2.1/24', '192.0.2.0/24'), /vip: 192\.0\.2\.0 is the network address/),
  withFile('up a VIP inside the node network', 'up', 'in.yaml', (ctx) => yaml(ctx, 'nodeNetwork: 192.0.2.0/25\n'), /in\.yaml: vip: 192\.0\.2\.1 lies inside 192\.0\.2\.0\/25/),
  withFile('up a gateway off the subnet', 'up', 'gw.yaml', (ctx) => yaml(ctx, 'gateway: 198.51.100.1\n'), /gw\.yaml: gateway: 198\.51\.100\.1 is outside the VIP's subnet/),
  withFile('up a routed uplink via lo', 'up', 'lo.yaml', (ctx) => `name: ${ctx.prefix}\nvip: 192.0.2.1/32\nuplink: { routed: { via: lo } }\n`, /lo\.yaml: uplink\.routed\.via: 'lo' is the loopback interface/),
  withFile('up an uplink that does not exist', 'up', 'nouplink.yaml', (ctx) => yaml(ctx), /nouplink\.yaml: uplink\.bridge: interface '.*u' does not exist/),
  withFile('check a quoted number', 'check', 'q.yaml', (ctx) => yaml(ctx, "nodes: '3'\n"), /q\.yaml: nodes: must be an integer from 1 to 256, got the string '3'; write 3 without quotes/),
  withFile('check an unknown key in ports', 'check', 'p.yaml', (ctx) => yaml(ctx, 'ports: [{ protocol: udp, port: 1, porto: 2 }]\n'), /ports\[0\]\.porto: unknown field; did you mean 'port'\?/),
  withFile('check 65535 ports (YAML flow style)', 'check', 'many.yaml', (ctx) => yaml(ctx, `ports: [${Array.from({ length: 65535 }, (_, i) => `{protocol: udp, port: ${i + 1}}`).join(',')}]\n`), /many\.yaml: is larger than 1024 KiB/),
  withFile('check 1000 ports', 'check', 'many.json', (ctx) => JSON.stringify({ name: ctx.prefix, vip: '192.0.2.1/24', uplink: { bridge: 'eth1' }, ports: Array.from({ length: 1000 }, (_, i) => ({ protocol: 'udp', port: i + 1 })) }), /many\.json: ports: lists 1000 ports; at most 256/),
  withFile('check a 900 KB value', 'check', 'long.json', (ctx) => JSON.stringify({ name: ctx.prefix, vip: 'v'.repeat(900_000), uplink: { bridge: 'eth1' } }), /long\.json: vip: 'v{59}…' \(900000 characters\) is not an address/),
  withFile('check OpenVPN extra with --daemon', 'check', 'd.yaml', (ctx) => ovpn(ctx, '    extra: "verb 3\\n  --daemon"\n'), /d\.yaml: service\.openvpn\.extra: line 2 \('--daemon'\): 'daemon' is not allowed/),
  withFile('up OpenVPN extra with management', 'up', 'm.yaml', (ctx) => ovpn(ctx, '    extra: "Management 127.0.0.1 7505"\n'), /service\.openvpn\.extra: line 1 .*'management' is not allowed: netns-cluster runs the management interface itself/),
  withFile('check OpenVPN port not among the ports', 'check', 'port.yaml', (ctx) => ovpn(ctx, '    port: 1195\n'), /service\.openvpn\.port: the server listens on udp\/1195, which is not among the cluster's ports \(udp\/1194\)/),
  withFile('check OpenVPN binary missing', 'check', 'bin.yaml', (ctx) => ovpn(ctx, '    binary: /nonexistent/openvpn\n'), /service\.openvpn\.binary: OpenVPN is not installed.*apt install openvpn/),
  withFile('up OpenVPN binary missing', 'up', 'bin.yaml', (ctx) => ovpn(ctx, '    binary: /nonexistent/openvpn\n'), /service\.openvpn\.binary: OpenVPN is not installed/),
  withFile('check OpenVPN keepalive reversed', 'check', 'ka.yaml', (ctx) => ovpn(ctx, '    keepalive: [10, 2]\n'), /service\.openvpn\.keepalive: timeout 2 must be longer than the interval 10/),
  withFile('check OpenVPN bad PEM', 'check', 'pem.yaml', (ctx) => ovpn(ctx, '    serverIdentity: { certPem: "-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----", keyPem: "x" }\n'), /service\.openvpn\.serverIdentity\.certPem: is not a valid certificate/),
  withFile('check OpenVPN pool overflow', 'check', 'pool.yaml', (ctx) => ovpn(ctx, '    pool: { base: 255.255.254.0 }\n').replace('vip:', 'nodes: 4\nvip:'), /service\.openvpn\.pool: 4 nodes need 4 \/24 pools after 255\.255\.254\.0, which run past 255\.255\.255\.255/),
  {
    name: 'check an OpenVPN older than 2.6',
    run: (ctx) => {
      const bin = join(ctx.dir, 'openvpn-old');
      writeFileSync(bin, '#!/bin/sh\necho "OpenVPN 2.5.9 x86_64-pc-linux-gnu [SSL (OpenSSL)]"\nexit 1\n', { mode: 0o755 });
      const path = join(ctx.dir, 'old.yaml');
      writeFileSync(path, ovpn(ctx, `    binary: ${bin}\n`));
      return cli(['check', path]);
    },
    expect: { code: 'EXIT_2', message: /old\.yaml: service\.openvpn\.binary: OpenVPN 2\.5\.9 at .* is older than 2\.6\.0/ },
    timeoutMs: 20_000,
  },
  withFile('check OpenVPN user unknown', 'check', 'user.yaml', (ctx) => ovpn(ctx, '    user: nosuchuser-nc\n'), /service\.openvpn\.user: user 'nosuchuser-nc' is not in \/etc\/passwd/),

  // Arguments.
  args('no command', [], /Usage: netns-cluster <command>/),
  args('an unknown command', ['frobnicate'], /unknown command 'frobnicate'; commands: up, down/),
  args('check without a file', ['check'], /netns-cluster check: missing <config>/),
  args('check with two files', ['check', 'a.yaml', 'b.yaml'], /unexpected argument 'b\.yaml'/),
  args('check with an unknown option', ['check', '--frob', 'a.yaml'], /netns-cluster check: Unknown option '--frob'/),
  args('up without a file', ['up'], /netns-cluster up: missing <config>/),
  args('up with two files', ['up', 'a.yaml', 'b.yaml'], /unexpected argument 'b\.yaml'/),
  args('down a bad name', ['down', 'Not_A_Name'], /'Not_A_Name' is not a cluster name/),
  args('down an empty name', ['down', ''], /'' is not a cluster name/),
  args('down a path', ['down', '../../tmp/x'], /is not a cluster name/),
  args('down a name too long', ['down', 'abcdefghijk'], /'abcdefghijk' is 11 bytes; at most 10/),
  args('down a bad timeout', (ctx) => ['down', ctx.prefix, '--timeout', 'soon'], /--timeout: give a number of seconds from 1 to 86400, got 'soon'/),
  args('down a negative timeout', (ctx) => ['down', ctx.prefix, '--timeout', '-1'], /--timeout/),
  args('status a bad name', ['status', 'a/b'], /is not a cluster name/),
  args('status a 10 KB name', ['status', 'a'.repeat(10_000)], /'a{59}…' \(10000 characters\) is 10000 bytes; at most 10/),
  args('status with an unknown option', ['status', 'x', '--colour'], /Unknown option '--colour'/),
  args('list with an argument', ['list', 'x'], /netns-cluster list: unexpected argument 'x'/),
  args('a 100 KB extra argument', ['check', 'a.yaml', 'z'.repeat(100_000)], /unexpected argument 'z{59}…' \(100000 characters\)/),
  args('a 100 KB unknown option', ['check', `--${'z'.repeat(100_000)}`], /Unknown option '--z{57}…' \(100002 characters\)/),
  args('a 100 KB unknown command', ['z'.repeat(100_000)], /unknown command 'z{59}…' \(100000 characters\); commands: up/),
  args('a 100 KB config path', ['check', `/tmp/${'p'.repeat(100_000)}.yaml`], /cannot read it: ENAMETOOLONG|no such file/),
  args('schema with an argument', ['schema', 'x'], /netns-cluster schema: unexpected argument 'x'/),
];
