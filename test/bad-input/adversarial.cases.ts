// Adversarial inputs a tester wrote without looking at the other corpora's cases: odd unicode,
// numbers JSON cannot hold, prototype keys, getters, Proxies, frozen and bigint values in the spec;
// config files reached through symlinks, odd encodings and tags; CLI argument combinations; the
// low-level API with odd values; services and OpenVPN directives in unusual spellings. Every spec
// case names a host namespace that does not exist, so a spec wrongly accepted fails on ENOENT
// before anything could be built in the caller's namespace.
import { execFile } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCluster, Netns } from '../../lib/index.js';
import { loadConfig } from '../../lib/config/config.js';
import { type BadInputCase, type CaseContext, inNs } from './types.js';

const VALUE = 'ERR_INVALID_ARG_VALUE';
const CONFIG = 'ERR_INVALID_CONFIG';
const FP = '00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF';
const cli = fileURLToPath(new URL('../../dist/lib/cli/main.js', import.meta.url));

type Spec = Record<string, unknown>;
const base = (ctx: CaseContext): Spec => ({ name: ctx.prefix, nodes: 2, vip: '192.0.2.1/24', uplink: { bridge: 'eth1' }, hostNetns: `${ctx.prefix}-nohost` });

/** createCluster with the base spec patched (a function builds the whole spec). */
function spec(name: string, patch: Spec | ((b: Spec) => unknown), field: string | undefined, message: RegExp, code = VALUE): BadInputCase {
  return {
    name: `spec: ${name}`,
    run: (ctx) => createCluster((typeof patch === 'function' ? patch(base(ctx)) : { ...base(ctx), ...patch }) as never),
    expect: { code, ...(field !== undefined ? { field } : {}), message },
  };
}

/** A command service with `patch` merged into it. */
const svc = (name: string, patch: Spec, field: string | undefined, message: RegExp, code = VALUE) =>
  spec(`service ${name}`, { service: { command: ['sleep', '1'], ...patch } }, field, message, code);

/** An OpenVPN service with `patch` merged into its options. */
const ovpn = (name: string, patch: Spec, field: string | undefined, message: RegExp) =>
  spec(`openvpn ${name}`, { ports: [{ protocol: 'udp', port: 1194 }], service: { openvpn: { clientFingerprints: [FP], ...patch } } }, field, message);

/** A config file written in the case's directory (bytes, or built from the context), then loaded. */
function config(name: string, file: string, content: string | Buffer | ((ctx: CaseContext) => string | Buffer), field: string | undefined, message: RegExp, code = CONFIG): BadInputCase {
  return {
    name: `config: ${name}`,
    run: async (ctx) => {
      const path = join(ctx.dir, file);
      writeFileSync(path, typeof content === 'function' ? content(ctx) : content);
      return loadConfig(path);
    },
    expect: { code, ...(field !== undefined ? { field } : {}), message },
  };
}

/** A config path that is a symlink to `target`. */
function configLink(name: string, target: string, message: RegExp, code = CONFIG): BadInputCase {
  return {
    name: `config: symlink to ${name}`,
    run: (ctx) => {
      const path = join(ctx.dir, 'c.yaml');
      symlinkSync(target, path);
      return loadConfig(path);
    },
    expect: { code, message },
  };
}

/** Runs the CLI; a non-zero exit becomes an Error with code EXIT_<status> and stderr as its message. */
function runCli(args: string[], o: { input?: string } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 9_000 }, (err, _out, stderr) => {
      if (!err) return resolve();
      reject(Object.assign(new Error(stderr), { code: `EXIT_${(err as { code?: unknown }).code ?? (err as { signal?: unknown }).signal}` }));
    });
    child.stdin?.end(o.input ?? '');
  });
}
const cliCase = (name: string, args: (ctx: CaseContext) => string[], code: string, message: RegExp): BadInputCase => ({
  name: `CLI: ${name}`,
  run: (ctx) => runCli(args(ctx)),
  expect: { code, message },
});

const low = (name: string, fn: (ns: Netns, ctx: CaseContext) => unknown, code: string, field: string | undefined, message: RegExp): BadInputCase => ({
  name: `low-level: ${name}`,
  run: (ctx) => inNs(ctx, (ns) => fn(ns, ctx)),
  expect: { code, ...(field !== undefined ? { field } : {}), message },
});

export const cases: BadInputCase[] = [
  // Numbers JSON cannot hold, and numbers that only look like numbers.
  spec('nodes NaN', { nodes: NaN }, 'nodes', /nodes|integer/),
  spec('nodes Infinity', { nodes: Infinity }, 'nodes', /integer|Infinity/),
  spec('nodes -Infinity', { nodes: -Infinity }, 'nodes', /integer|Infinity/),
  spec('nodes -0', { nodes: -0 }, 'nodes', /must be an integer from 1 to 256, got 0/),
  spec('nodes 2^53', { nodes: 2 ** 53 }, 'nodes', /must be an integer from 1 to 256, got 9007199254740992/),
  spec('nodes a bigint', { nodes: 2n }, 'nodes', /bigint/),
  spec('nodes a boxed Number', { nodes: new Number(2) }, 'nodes', /must be an integer from 1 to 256, got an object/),
  spec('nodes an object with valueOf', { nodes: { valueOf: () => 2 } }, 'nodes', /must be an integer from 1 to 256, got an object/),
  spec('nodes [2]', { nodes: [2] }, 'nodes', /must be an integer from 1 to 256, got a list of 1/),
  spec('nodes true', { nodes: true }, 'nodes', /must be an integer from 1 to 256, got true/),
  spec('nodes "2" with fullwidth digit', { nodes: '２' }, 'nodes', /must be an integer from 1 to 256, got the string '２'/),
  spec('buckets 1e309', { buckets: 1e309 }, 'buckets', /must be an integer from nodes to 4096, got Infinity/),
  spec('buckets a bigint 2^64', { buckets: 2n ** 64n }, 'buckets', /bigint/),
  spec('buckets 4.0000000001', { buckets: 4.0000000001 }, 'buckets', /must be an integer from nodes to 4096, got 4\.0000000001/),
  spec('seed NaN', { seed: NaN }, 'seed', /must be an integer from 0 to 4294967295, got NaN/),
  spec('seed -1', { seed: -1 }, 'seed', /must be an integer from 0 to 4294967295, got -1/),
  spec('seed 2^32', { seed: 2 ** 32 }, 'seed', /must be an integer from 0 to 4294967295, got 4294967296/),
  spec('seed a bigint', { seed: 7n }, 'seed', /bigint/),
  // Unicode that looks like ASCII.
  spec('vip with fullwidth digits', { vip: '１９２.0.2.1/24' }, 'vip', /'１９２\.0\.2\.1\/24' is not an address with prefix such as 192\.0\.2\.1\/24 or 2/),
  spec('vip with Arabic-Indic digits', { vip: '١٩٢.0.2.1/24' }, 'vip', /'١٩٢\.0\.2\.1\/24' is not an address with prefix such as 192\.0\.2\.1\/24 or 2/),
  spec('vip with a zero-width space', { vip: '192.0.2.1\u200b/24' }, 'vip', /is not (an address with prefix such as 192\.0\.2\.1\/24|a cluster name)/),
  spec('vip with a right-to-left override', { vip: '\u202e42/1.2.0.291' }, 'vip', /is not (an address with prefix such as 192\.0\.2\.1\/24|a cluster name)/),
  spec('vip with a trailing newline', { vip: '192.0.2.1/24\n' }, 'vip', /prefix length in '192\.0\.2\.1\/24\\n' must be 0 to 32/),
  spec('vip with a leading space', { vip: ' 192.0.2.1/24' }, 'vip', /' 192\.0\.2\.1\/24' is not an address with prefix such as 192\.0\.2\.1\/24 or/),
  spec('vip with an octal-looking octet', { vip: '192.0.02.1/24' }, 'vip', /'192\.0\.02\.1\/24' is not an address with prefix such as 192\.0\.2\.1\/24 or/),
  spec('vip with a hex octet', { vip: '0xc0.0.2.1/24' }, 'vip', /'0xc0\.0\.2\.1\/24' is not an address with prefix such as 192\.0\.2\.1\/24 or/),
  spec('vip with a short form (192.2.1)', { vip: '192.2.1/24' }, 'vip', /'192\.2\.1\/24' is not an address with prefix such as 192\.0\.2\.1\/24 or 200/),
  spec('vip prefix +24', { vip: '192.0.2.1/+24' }, 'vip', /prefix length in '192\.0\.2\.1\/\+24' must be 0 to 32/),
  spec('vip prefix 2e1', { vip: '192.0.2.1/2e1' }, 'vip', /prefix length in '192\.0\.2\.1\/2e1' must be 0 to 32/),
  spec('vip with two prefixes', { vip: '192.0.2.1/24/24' }, 'vip', /'192\.0\.2\.1\/24\/24' is not an address with prefix such as 192\.0\.2\.1\/24 o/),
  spec('vip a boxed String', { vip: new String('192.0.2.1/24') }, 'vip', /expected an address with prefix such as 192\.0\.2\.1\/24, got an object/),
  spec('vip two IPv4 addresses', { vip: ['192.0.2.1/24', '198.51.100.1/24'] }, undefined, /give at most one IPv4 and one IPv6 value/),
  spec('vip the same address twice', { vip: ['192.0.2.1/24', '192.0.2.1/24'] }, undefined, /give at most one IPv4 and one IPv6 value/),
  spec('name with a zero-width space', { name: 'ab\u200b' }, 'name', /not a cluster name/),
  spec('name with a Cyrillic a', (b) => ({ ...b, name: 'l\u0430b' }), 'name', /not a cluster name/),
  spec('name with a trailing newline', { name: 'lab\n' }, 'name', /not a cluster name/),
  spec('name a boxed String', { name: new String('lab') }, 'name', /not a cluster name/),
  spec('name "constructor"-like but 11 bytes', { name: 'constructor' }, 'name', /11 bytes/),
  spec('mode in capitals', { mode: 'STEER' }, 'mode', /must be 'steer' or 'flood', got 'STEER'/),
  spec('mode in a list', { mode: ['steer'] }, 'mode', /must be 'steer' or 'flood', got a list of 1/),
  spec('hash with a trailing space', { hash: 'sourceip ' }, 'hash', /must be one of sourceip, sourceip-sourceport, sourceip-sourceport-dest/),
  spec('failback a boolean', { failback: true }, 'failback', /must be 'auto' or 'manual', got true/),
  // Prototype keys, getters, Proxies, frozen objects.
  spec('own __proto__ key (from JSON)', (b) => ({ ...JSON.parse('{"__proto__": {"x": 1}}'), ...b }), undefined, /unknown|__proto__/),
  spec('a constructor key', { constructor: 'x' }, undefined, /unknown|constructor/),
  spec('a toString key', { toString: 'x' }, undefined, /unknown|toString/),
  spec('vip inherited from the prototype', (b) => Object.assign(Object.create({ vip: '192.0.2.1/24' }), { ...b, vip: undefined }), 'vip', /give the shared address with its prefix, e\.g\. '192\.0\.2\.1\/24'/),
  spec('a Proxy that changes vip between reads', (b) => { let n = 0; return new Proxy(b, { get: (t, k) => (k === 'vip' ? (n++ === 0 ? '192.0.2.1/24' : '0.0.0.0/0') : Reflect.get(t, k)) }); }, 'vip', /a \/0 prefix makes every address on-link; give the VIP's real subnet, e/),
  spec('a frozen spec with a bad vip', (b) => Object.freeze({ ...b, vip: '224.0.0.1/24' }), 'vip', /multicast/),
  spec('a frozen ports list with a bad port', (b) => ({ ...b, ports: Object.freeze([Object.freeze({ protocol: 'udp', port: 0 })]) }), 'ports[0].port', /1 to 65535/),
  spec('the spec is an array', (b) => [b], undefined, /expected a cluster spec such as \{ name: 'vpn', vip: '192\.0\.2\.1\/24', up/),
  spec('the spec is a string of JSON', (b) => JSON.stringify(b), undefined, /expected a cluster spec such as \{ name: 'vpn', vip: '192\.0\.2\.1\/24', up/),
  // Ports, uplink, gateway, hostNetns.
  spec('ports an object', { ports: { protocol: 'udp', port: 53 } }, 'ports', /list/),
  spec('ports nested list', { ports: [[{ protocol: 'udp', port: 53 }]] }, 'ports[0]', /expected \{ protocol: 'udp' \| 'tcp', port: 1 to 65535 \}, got a list of/),
  spec('port -0', { ports: [{ protocol: 'udp', port: -0 }] }, 'ports[0].port', /1 to 65535/),
  spec('port 1.5', { ports: [{ protocol: 'udp', port: 1.5 }] }, 'ports[0].port', /1 to 65535/),
  spec('port a bigint', { ports: [{ protocol: 'udp', port: 53n }] }, 'ports[0].port', /must be 1 to 65535, got 53n \(a bigint\)/),
  spec('protocol with a zero-width joiner', { ports: [{ protocol: 'ud\u200dp', port: 53 }] }, 'ports[0].protocol', /must be 'udp' or 'tcp', got 'ud/),
  spec('the same port twice', { ports: [{ protocol: 'udp', port: 53 }, { protocol: 'udp', port: 53 }] }, undefined, /udp\/53 is listed twice/),
  spec('uplink a string', { uplink: 'eth1' }, 'uplink', /expected \{ bridge: '<ifname>' \} or \{ routed: \{ via: '<ifname>' \} \}, go/),
  spec('uplink null', { uplink: null }, 'uplink', /expected \{ bridge: '<ifname>' \} or \{ routed: \{ via: '<ifname>' \} \}, go/),
  spec('uplink bridge with NBSP', { uplink: { bridge: 'eth1\u00a0' } }, 'uplink.bridge', /interface name 'eth1 ' must not contain '\/', ':', '%', spaces or contr/),
  spec('uplink bridge "."', { uplink: { bridge: '.' } }, 'uplink.bridge', /interface name '\.' must not contain '\/', ':', '%', spaces or control c/),
  spec('uplink bridge ".."', { uplink: { bridge: '..' } }, 'uplink.bridge', /interface name '\.\.' must not contain '\/', ':', '%', spaces or control/),
  spec('uplink bridge a list', { uplink: { bridge: ['eth1'] } }, 'uplink.bridge', /an interface name must be a non-empty string, got a list of 1/),
  spec('uplink routed via a 16-byte name', { uplink: { routed: { via: 'abcdefghijklmnop' } } }, 'uplink.routed.via', /interface name 'abcdefghijklmnop' is 16 bytes; the kernel allows at mo/),
  spec('gateway two IPv4', { gateway: ['192.0.2.254', '192.0.2.253'] }, undefined, /give at most one IPv4 and one IPv6 value/),
  spec('gateway with NUL', { gateway: '192.0.2.254\0' }, undefined, /'192\.0\.2\.254\\u0000' is not an IPv4 or IPv6 address/),
  spec('hostNetns "."', { hostNetns: '.' }, 'hostNetns', /namespace name '\.' must not contain '\/' or control characters, nor be/),
  spec('hostNetns with a newline', { hostNetns: 'x\ny' }, 'hostNetns', /namespace name 'x\\ny' must not contain '\/' or control characters, nor/),
  spec('hostNetns 300 bytes', { hostNetns: 'h'.repeat(300) }, 'hostNetns', /namespace name is longer than 255 bytes/),
  spec('nodeNetwork with a zone', { nodeNetwork: '198.18.0.0%eth0/24' }, 'nodeNetwork', /'198\.18\.0\.0%eth0\/24' has a zone index \('%…'\); write the address withou/),
  // Services.
  svc('command a string', { command: 'sleep 1' }, undefined, /must be a non-empty array of strings, e\.g\. \['openvpn', '--config', '\{d/),
  svc('command empty list', { command: [] }, undefined, /must be a non-empty array of strings, e\.g\. \['openvpn', '--config', '\{d/),
  svc('command an empty program', { command: [''] }, undefined, /must be the program \(a non-empty string\), got an empty string/),
  svc('command with a number', { command: ['sleep', 1] }, undefined, /must be a string, got 1/),
  svc('command with NUL in an argument', { command: ['sleep', '1\0 2'] }, undefined, /must not contain NUL bytes \(got '1\\u0000 2'\)/),
  svc('command with placeholder {constructor}', { command: ['echo', '{constructor}'] }, undefined, /unknown placeholder \{constructor\}; known: \{node\} \{netns\} \{address\} \{di/),
  svc('env a list', { env: ['A=1'] }, undefined, /must map variable names to strings, e\.g\. \{ LOG_DIR: '\{dir\}' \}, got a l/),
  svc('env value a number', { env: { A: 1 } }, undefined, /must be a string, got 1; write '1' in quotes/),
  svc('env key with =', { env: { 'A=B': 'x' } }, undefined, /'A=B' is not a variable name: it must not contain '=' or NUL bytes/),
  svc('env key empty', { env: { '': 'x' } }, undefined, /a variable name must be a non-empty string, got an empty string/),
  svc('env value with NUL', { env: { A: 'x\0y' } }, undefined, /must not contain NUL bytes \(got 'x\\u0000y'\)/),
  svc('env with a placeholder {bogus}', { env: { A: '{bogus}' } }, undefined, /unknown placeholder \{bogus\}; known: \{node\} \{netns\} \{address\} \{dir\} \{vi/),
  svc('stopTimeoutMs NaN', { stopTimeoutMs: NaN }, undefined, /must be a whole number of milliseconds from 0 to 2147483647, got NaN/),
  svc('stopTimeoutMs Infinity', { stopTimeoutMs: Infinity }, undefined, /must be a whole number of milliseconds from 0 to 2147483647, got Infin/),
  svc('stopTimeoutMs 2^31', { stopTimeoutMs: 2 ** 31 }, undefined, /must be a whole number of milliseconds from 0 to 2147483647 \(about 24\./),
  svc('stopTimeoutMs a bigint', { stopTimeoutMs: 1000n }, undefined, /must be a whole number of milliseconds from 0 to 2147483647, got 1000/),
  svc('restart a string', { restart: 'always' }, undefined, /must be an object such as \{ maxRestarts: 10, initialDelayMs: 100 \}, go/),
  svc('restart.initialDelayMs 1e10', { restart: { initialDelayMs: 1e10 } }, undefined, /must be a whole number of milliseconds from 0 to 2147483647 \(about 24\./),
  svc('restart an unknown key', { restart: { forever: true } }, undefined, /unknown field; known fields are maxRestarts, initialDelayMs, maxDelayM/),
  svc('user with NUL', { user: 'root\0' }, undefined, /is not a user name: use letters, digits, '_', '\.', '-'/),
  svc('user -1', { user: -1 }, undefined, /must be an integer from 0 to 4294967294, got -1/),
  svc('group 2^32', { group: 2 ** 32 }, undefined, /must be an integer from 0 to 4294967294, got 4294967296/),
  svc('envAllow a string', { envAllow: 'PATH' }, undefined, /must be an array of variable names, e\.g\. \['PATH', 'LANG'\], got 'PATH'/),
  svc('envAllow with =', { envAllow: ['PATH=/x'] }, undefined, /'PATH=\/x' is not a variable name: it must not contain '=' or NUL bytes/),
  svc('an unknown key', { daemonize: true }, undefined, /unknown field; known fields are name, command, env, envAllow, cwd, use/),
  // OpenVPN directives in spellings the denylist may miss, and files written as root.
  ovpn('extra: daemon after a vertical tab', { extra: '\u000bdaemon' }, 'service.openvpn.extra', /not allowed/),
  ovpn('extra: daemon after a form feed', { extra: '\fdaemon' }, 'service.openvpn.extra', /not allowed/),
  ovpn('extra: ---daemon', { extra: '---daemon' }, 'service.openvpn.extra', /not allowed/),
  ovpn('extra: d"ae"mon', { extra: 'd"ae"mon' }, 'service.openvpn.extra', /not allowed/),
  ovpn('extra: management-external-key', { extra: 'management-external-key' }, 'service.openvpn.extra', /not allowed/),
  ovpn('extra: LOG after a BOM', { extra: '\ufeffLOG /tmp/x' }, 'service.openvpn.extra', /not allowed/),
  ovpn('extra: an array', { extra: ['verb 3'] }, 'service.openvpn.extra', /string/),
  ovpn('port a bigint', { port: 1194n }, undefined, /must be an integer from 1 to 65535, got 1194n \(a bigint\)/),
  ovpn('port -0', { port: -0 }, undefined, /must be an integer from 1 to 65535, got 0/),
  ovpn('an unknown option', { daemon: true }, undefined, /unknown field; known fields are port, protocol, pool, clientFingerprin/),
  // Config files.
  config('UTF-16LE with a BOM', 'c.yaml', Buffer.from('\ufeffname: lab\n', 'utf16le'), undefined, /is UTF-16 text \(it starts with a UTF-16 byte-order mark\); save it as U/),
  config('UTF-32 BOM', 'c.json', Buffer.from([0x00, 0x00, 0xfe, 0xff, 0, 0, 0, 0x7b, 0, 0, 0, 0x7d]), undefined, /is not UTF-8 text; save it as UTF-8/),
  config('Latin-1 bytes', 'c.yaml', Buffer.from([0x6e, 0x61, 0x6d, 0x65, 0x3a, 0x20, 0xe9, 0x0a]), undefined, /is not UTF-8 text; save it as UTF-8/),
  config('one 2 MB line', 'c.yaml', `name: ${'a'.repeat(2 * 1024 * 1024)}\n`, undefined, /is larger than 1024 KiB; a cluster config is a few KiB at most/),
  config('a YAML !!js/function tag', 'c.yaml', 'name: !!js/function "function(){return 1}"\n', undefined, /'function\(\)\{return 1\}' is not a cluster name: it must start with a let/),
  config('a YAML !!binary tag', 'c.yaml', 'name: !!binary aGVsbG8=\n', undefined, /an object is not a cluster name: it must start with a letter and use o/),
  config('a YAML custom tag', 'c.yaml', 'name: !evil lab\n', undefined, /give the shared address with its prefix, e\.g\. '192\.0\.2\.1\/24'/),
  config('a YAML merge key', 'c.yaml', 'base: &b {name: lab}\n<<: *b\n', undefined, /unknown field; known fields are name, nodes, vip, ports, mode, hash, b/),
  config('a YAML __proto__ key', 'c.yaml', '__proto__: {vip: 192.0.2.1/24}\nname: lab\n', undefined, /unknown field; known fields are name, nodes, vip, ports, mode, hash, b/),
  config('a JSON __proto__ key', 'c.json', '{"__proto__": {"vip": "192.0.2.1/24"}, "name": "lab"}', undefined, /unknown field; known fields are name, nodes, vip, ports, mode, hash, b/),
  config('a YAML document that is a number', 'c.yaml', '42\n', undefined, /expected a mapping of fields \(name, vip, uplink, …\), got 42/),
  config('a YAML multi-document', 'c.yaml', 'name: a\n---\nname: b\n', undefined, /not valid YAML: Source contains multiple documents; please use YAML\.pa/),
  config('JSON with a trailing NUL', 'c.json', '{"name": "lab"}\0', undefined, /not valid JSON: Unexpected non-whitespace character after JSON at posi/),
  config('an empty file', 'c.yaml', '', undefined, /expected a mapping of fields \(name, vip, uplink, …\), got an empty file/),
  config('an unknown extension', 'c.toml', 'name = "lab"\n', undefined, /unknown file type '\.toml'; name it \.json, \.yaml or \.yml/),
  configLink('/dev/stdin', '/dev/stdin', /is a socket, not a regular file; give the path of a \.json, \.yaml or \.y/),
  configLink('/dev/zero', '/dev/zero', /is a character device, not a regular file; give the path of a \.json, \./),
  configLink('/proc/self/environ', '/proc/self/environ', /expected a mapping of fields \(name, vip, uplink, …\), got '\w+=/), // whichever variable comes first in this process's environment
  configLink('/proc/self/mem', '/proc/self/mem', /cannot read it: EIO/),
  configLink('a directory', '/', /is a directory, not a regular file; give the path of a \.json, \.yaml or/),
  configLink('itself (a loop)', 'c.yaml', /cannot read it: ELOOP: too many symbolic links encountered, open '\/tmp/),
  configLink('a dangling target', '/nonexistent/x.yaml', /no such file/),
  {
    name: 'config: a FIFO reached through two symlinks',
    run: async (ctx) => {
      const fifo = join(ctx.dir, 'f');
      await new Promise((r, j) => execFile('mkfifo', [fifo], (e) => (e ? j(e) : r(undefined))));
      symlinkSync(fifo, join(ctx.dir, 'a.yaml'));
      symlinkSync(join(ctx.dir, 'a.yaml'), join(ctx.dir, 'b.yaml'));
      return loadConfig(join(ctx.dir, 'b.yaml'));
    },
    expect: { code: CONFIG, message: /b\.yaml: is a FIFO \(named pipe\), not a regular file; give the path of a \.json, \.yaml or \.yml file/ },
  },
  {
    name: 'config: a directory named like a config',
    run: (ctx) => {
      mkdirSync(join(ctx.dir, 'd.yaml'));
      return loadConfig(join(ctx.dir, 'd.yaml'));
    },
    expect: { code: CONFIG, message: /d\.yaml: is a directory, not a regular file/ },
  },
  // CLI combinations.
  cliCase('up with two configs', (c) => ['up', join(c.dir, 'a.yaml'), join(c.dir, 'b.yaml')], 'EXIT_2', /unexpected argument '/),
  cliCase('down with two names', (c) => ['down', `${c.prefix}a`, `${c.prefix}b`], 'EXIT_2', /unexpected argument '/),
  cliCase('down --host-netns ..', (c) => ['down', c.prefix, '--host-netns', '..'], 'EXIT_2', /namespace name '\.\.' must not contain '\/' or control characters, nor be/),
  cliCase('down --host-netns /proc/1/ns/net', (c) => ['down', c.prefix, '--host-netns', '/proc/1/ns/net'], 'EXIT_2', /give the name of the host namespace under \/run\/netns \(no '\/'\)/),
  cliCase('down --timeout 1e3000', (c) => ['down', c.prefix, '--timeout', '1e3000'], 'EXIT_2', /give a number of seconds from 1 to 86400, got '1e3000'/),
  cliCase('down -- --help as a name', () => ['down', '--', '--help'], 'EXIT_2', /'--help' is not a cluster name: it must start with a letter and use on/),
  cliCase('status with a name in capitals', (c) => ['status', c.prefix.toUpperCase()], 'EXIT_2', /' is not a cluster name: it must start with a letter and use only a-z, 0-9 and '-'/),
  cliCase('status --json=yes', (c) => ['status', c.prefix, '--json=yes'], 'EXIT_2', /Option '(-j, )?--json' does not take an argument/),
  cliCase('list with a positional', () => ['list', 'extra'], 'EXIT_2', /unexpected argument 'extra'/),
  cliCase('list --prefix', () => ['list', '--prefix', 'a'], 'EXIT_2', /Unknown option '--prefix'/),
  cliCase('sweep --prefix given twice', () => ['sweep', '--prefix', 'a', '--prefix', ''], 'EXIT_2', /'' is not the start of a cluster name; give at least its first letter/),
  cliCase('sweep --prefix with a newline', () => ['sweep', '--prefix', 'a\n'], 'EXIT_2', /'a/),
  cliCase('sweep --prefix=*', () => ['sweep', '--prefix=*'], 'EXIT_2', /'\*' is not the start of a cluster name; give at least its first letter/),
  cliCase('an unknown command', () => ['destroy', 'lab'], 'EXIT_2', /unknown command 'destroy'; commands: up, down, (drain, )?(reload, )?status, list, sweep, ch/),
  cliCase('a command in capitals', () => ['DOWN', 'lab'], 'EXIT_2', /unknown command 'DOWN'; commands: up, down, (drain, )?(reload, )?status, list, sweep, check/),
  cliCase('check /dev/stdin', () => ['check', '/dev/stdin'], 'EXIT_2', /\/dev\/stdin: is a socket, not a regular file; give the path of a \.json,/),
  cliCase('check /proc/self/environ', () => ['check', '/proc/self/environ'], 'EXIT_2', /\/proc\/self\/environ: unknown file type '\(none\)'; name it \.json, \.yaml o/),
  cliCase('check a 10 KB path', () => ['check', `/tmp/${'x'.repeat(10_000)}.yaml`], 'EXIT_2', /xxxx…x+\.yaml: cannot read it: ENAMETOOLONG/),
  cliCase('check with no file', () => ['check'], 'EXIT_2', /missing <config>/),
  // The low-level API with odd values, each in a namespace of the case's own.
  low('addVeth: peer name equal to its own', (ns) => ns.addVeth({ name: 'v0', peer: { name: 'v0' } }), 'EEXIST', undefined, /File exists, RTM_NEWLINK veth 'v0' \(peer 'v0'\)/),
  low('addBridge: name "."', (ns) => ns.addBridge({ name: '.' }), VALUE, undefined, /interface name '\.' must not contain '\/', ':', '%', spaces or control c/),
  low('addBridge: name ".."', (ns) => ns.addBridge({ name: '..' }), VALUE, undefined, /interface name '\.\.' must not contain '\/', ':', '%', spaces or control/),
  low('setLink: MTU NaN', async (ns) => ns.setLink('lo', { mtu: NaN }), VALUE, undefined, /must be an integer from 68 to 65535, got NaN/),
  low('setLink: MTU Infinity', async (ns) => ns.setLink('lo', { mtu: Infinity }), VALUE, undefined, /must be an integer from 68 to 65535, got Infinity/),
  low('setLink: MTU 2^32', async (ns) => ns.setLink('lo', { mtu: 2 ** 32 }), VALUE, undefined, /must be an integer from 68 to 65535, got 4294967296/),
  low('addAddress: -0 prefix', async (ns) => ns.addAddress('lo', '192.0.2.1/-0'), VALUE, undefined, /prefix length in '192\.0\.2\.1\/-0' must be 0 to 32/),
  low('addAddress: fullwidth digits', async (ns) => ns.addAddress('lo', '１９２.0.2.1/24'), VALUE, undefined, /'１９２\.0\.2\.1\/24' is not an address with prefix such as 192\.0\.2\.1\/24 or 2/),
  low('addRoute: only an unknown key dst, a bigint', async (ns) => ns.addRoute({ dst: 1n } as never), VALUE, undefined, /expected an address with prefix such as 192\.0\.2\.1\/24, got nothing/),
  low('writeSysctl: key net/../kernel', async (ns) => ns.writeSysctl('net/../kernel/hostname', 'x'), VALUE, undefined, /'net\/\.\.\/kernel\/hostname' is not a per-namespace sysctl; use a net\.\* ke/),
  low('writeSysctl: key net.....kernel', async (ns) => ns.writeSysctl('net.....kernel.hostname', 'x'), VALUE, undefined, /'net\.\.\.\.\.kernel\.hostname' is not a per-namespace sysctl; use a net\.\* k/),
  low('writeSysctl: a bigint value', async (ns) => ns.writeSysctl('net.ipv4.ip_forward', 1n as never), VALUE, undefined, /a sysctl value must be a string, a number or a boolean, got 1n \(a bigi/),
  low('readSysctl: key with a trailing dot', async (ns) => ns.readSysctl('net.ipv4.'), VALUE, undefined, /'net\.ipv4\.' is not a per-namespace sysctl; use a net\.\* key such as net/),
  low('Netns.open: a name ".."', async () => Netns.open('..'), VALUE, undefined, /namespace name '\.\.' must not contain '\/' or control characters, nor be/),
];
