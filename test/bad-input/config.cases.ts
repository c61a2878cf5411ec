// Config files: what is read (regular files only, a size limit, UTF-8), how it parses (YAML alias
// bombs, BOMs, deep nesting, several documents) and what it says; every error names the file.
import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../lib/config/config.js';
import type { BadInputCase, CaseContext } from './types.js';

const CODE = 'ERR_INVALID_CONFIG';
const FP = '00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF';
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Writes `content` to `file` in the case's directory and loads it; the message must start with the file's path. */
function bad(name: string, file: string, content: string | Buffer | ((ctx: CaseContext) => string | Buffer), field: string | undefined, message: RegExp): BadInputCase {
  return {
    name,
    run: async (ctx) => {
      const path = join(ctx.dir, file);
      writeFileSync(path, typeof content === 'function' ? content(ctx) : content);
      try {
        return await loadConfig(path);
      } catch (e) {
        if (!(e as Error).message.startsWith(`${path}`)) throw new Error(`the message does not start with the file: ${(e as Error).message}`);
        throw e;
      }
    },
    expect: { code: CODE, ...(field !== undefined ? { field } : {}), message },
  };
}

/** A special path (a FIFO, a device, a directory…) that must be refused at once, naming it. */
function special(name: string, make: (ctx: CaseContext) => string, message: RegExp): BadInputCase {
  return {
    name,
    run: async (ctx) => {
      const path = make(ctx);
      try {
        return await loadConfig(path);
      } catch (e) {
        if (!(e as Error).message.startsWith(path)) throw new Error(`the message does not start with the file: ${(e as Error).message}`);
        throw e;
      }
    },
    expect: { code: CODE, message },
    timeoutMs: 5000,
  };
}

const yaml = (ctx: CaseContext, rest = '') => `name: ${ctx.prefix}\nvip: 192.0.2.1/24\nuplink: { bridge: eth1 }\n${rest}`;
const json = (ctx: CaseContext, patch: Record<string, unknown>) => JSON.stringify({ name: ctx.prefix, vip: '192.0.2.1/24', uplink: { bridge: 'eth1' }, ...patch });
const ovpn = (ctx: CaseContext, o: Record<string, unknown>, top: Record<string, unknown> = {}) =>
  json(ctx, { ports: [{ protocol: 'udp', port: 1194 }], service: { openvpn: { clientFingerprints: [FP], ...o } }, ...top });

const laughs = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
for (let i = 1; i < 12; i++) {
  const p = String.fromCharCode(97 + i - 1);
  const c = String.fromCharCode(97 + i);
  laughs.push(`${c}: &${c} [${Array(9).fill(`*${p}`).join(',')}]`);
}

export const cases: BadInputCase[] = [
  // What is read.
  special('a FIFO', (ctx) => {
    const p = join(ctx.dir, 'cluster.yaml');
    execFileSync('mkfifo', [p]);
    return p;
  }, /cluster\.yaml: is a FIFO \(named pipe\), not a regular file; give the path of a \.json, \.yaml or \.yml file/),
  special('/dev/zero', () => '/dev/zero', /^\/dev\/zero: is a character device, not a regular file/),
  special('/dev/null', () => '/dev/null', /^\/dev\/null: is a character device/),
  special('a symlink to /dev/zero', (ctx) => {
    const p = join(ctx.dir, 'zero.yaml');
    symlinkSync('/dev/zero', p);
    return p;
  }, /zero\.yaml: is a character device/),
  special('a directory', (ctx) => ctx.dir, /: is a directory, not a regular file/),
  special('a directory named .yaml', (ctx) => {
    const p = join(ctx.dir, 'd.yaml');
    mkdirSync(p);
    return p;
  }, /d\.yaml: is a directory/),
  special('a symlink loop', (ctx) => {
    const p = join(ctx.dir, 'loop.yaml');
    symlinkSync(p, p);
    return p;
  }, /loop\.yaml: cannot read it: .*ELOOP/),
  special('a missing file', (ctx) => join(ctx.dir, 'nope.yaml'), /nope\.yaml: no such file/),
  special('a unix socket', (ctx) => {
    const p = join(ctx.dir, 's.yaml');
    execFileSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(p)}, () => process.exit(0))`]);
    return p;
  }, /s\.yaml: is a socket/),
  { name: 'an empty path', run: () => loadConfig(''), expect: { code: CODE, message: /give the path of a \.json, \.yaml or \.yml file/ } },
  { name: 'a path with NUL', run: () => loadConfig('a\0.yaml'), expect: { code: CODE, message: /give the path/ } },
  bad('a file over 1 MiB', 'big.yaml', (ctx) => yaml(ctx, `# ${'x'.repeat(1 << 20)}\n`), undefined, /big\.yaml: is larger than 1024 KiB/),
  bad('UTF-16 with a BOM', 'u16.yaml', (ctx) => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(yaml(ctx), 'utf16le')]), undefined, /u16\.yaml: is UTF-16 text.*save it as UTF-8/),
  bad('not UTF-8', 'latin1.yaml', (ctx) => Buffer.concat([Buffer.from(yaml(ctx)), Buffer.from([0x23, 0x20, 0xe9, 0xff, 0x0a])]), undefined, /latin1\.yaml: is not UTF-8 text/),
  // A UTF-8 BOM is dropped: the file parses, and the error is the real one inside it.
  bad('a UTF-8 BOM then a bad value (JSON)', 'bom.json', (ctx) => `\uFEFF${json(ctx, { nodes: 0 })}`, 'nodes', /bom\.json: nodes: must be an integer from 1 to 256, got 0/),
  bad('a UTF-8 BOM then a bad value (YAML)', 'bom.yaml', (ctx) => `\uFEFF${yaml(ctx, 'mode: round\n')}`, 'mode', /bom\.yaml: mode: must be one of steer, flood|mode: must be 'steer' or 'flood'/),

  // How it parses.
  bad('a YAML alias bomb', 'lol.yaml', (ctx) => `${yaml(ctx)}${laughs.join('\n')}\n`, undefined, /lol\.yaml: its YAML aliases expand too far.*alias bomb/),
  bad('a YAML alias bomb inside a field', 'lol2.yaml', (ctx) => `${laughs.join('\n').replace(/^(\w):/gm, 'x$1:')}\n`.replace(/^x/gm, '  x').replace(/^/, `name: ${ctx.prefix}\nvip: 192.0.2.1/24\nuplink: { bridge: eth1 }\nservice:\n  command: [x]\n  env:\n`), undefined, /alias bomb/),
  bad('YAML nested too deep', 'deep.yaml', (ctx) => `name: ${ctx.prefix}\nvip: ${'['.repeat(100000)}${']'.repeat(100000)}\n`, undefined, /deep\.yaml: is nested more than 64 levels deep/),
  bad('JSON nested deep', 'deep.json', (ctx) => `{"name": "${ctx.prefix}", "vip": ${'['.repeat(100000)}${']'.repeat(100000)}}`, undefined, /deep\.json: is nested more than 64 levels deep/),
  bad('two YAML documents', 'two.yaml', (ctx) => `${yaml(ctx)}---\n${yaml(ctx)}`, undefined, /two\.yaml:\d+:\d+: not valid YAML: Source contains multiple documents/),
  bad('a key twice', 'dup.yaml', (ctx) => `${yaml(ctx)}name: other\n`, undefined, /dup\.yaml:4:1: not valid YAML: Map keys must be unique/),
  bad('a key twice in JSON', 'dup.json', (ctx) => `{"name": "${ctx.prefix}",\n "vip": "192.0.2.1/24", "uplink": {"bridge": "eth1"},\n "name": "other"}`, undefined, /dup\.json:3:2: not valid JSON here: a key is given twice in one object/),
  bad('a key twice in a nested JSON object', 'dup2.json', (ctx) => `{"name": "${ctx.prefix}", "vip": "192.0.2.1/24", "uplink": {"bridge": "eth1", "bridge": "eth2"}}`, undefined, /dup2\.json:1:\d+: not valid JSON here: a key is given twice/),
  bad('__proto__ in JSON', 'proto.json', (ctx) => json(ctx, {}).replace('{', '{"__proto__": {"nodes": 3}, '), '__proto__', /proto\.json: __proto__: unknown field/),
  bad('__proto__ in YAML', 'proto.yaml', (ctx) => yaml(ctx, '__proto__: { nodes: 3 }\n'), '__proto__', /unknown field/),
  bad('a YAML merge key', 'merge.yaml', (ctx) => `base: &b { bridge: eth1 }\nname: ${ctx.prefix}\nvip: 192.0.2.1/24\nuplink: { <<: *b }\n`, 'base', /merge\.yaml: base: unknown field/),
  bad('a JavaScript tag', 'tag.yaml', (ctx) => `name: !!js/function "function () {}"\nvip: 192.0.2.1/24\nuplink: { bridge: eth1 }\n# ${ctx.prefix}\n`, 'name', /is not a cluster name/),
  bad('a scalar document', 'scalar.yaml', 'hello\n', undefined, /scalar\.yaml: expected a mapping of fields \(name, vip, uplink, …\), got 'hello'/),
  bad('a null document', 'tilde.yaml', '~\n', undefined, /got an empty file/),
  bad('an empty file', 'empty.yaml', '', undefined, /got an empty file/),
  bad('a top-level number (JSON)', 'num.json', '5', undefined, /got 5/),
  bad('JSON with trailing garbage', 'trail.json', (ctx) => `${json(ctx, {})} x`, undefined, /trail\.json:1:\d+: not valid JSON/),
  bad('an unknown file type', 'cluster.txt', (ctx) => yaml(ctx), undefined, /cluster\.txt: unknown file type '\.txt'; name it \.json, \.yaml or \.yml/),
  bad('no file extension', 'cluster', (ctx) => yaml(ctx), undefined, /unknown file type '\(none\)'/),

  // What it says: the field, what to fix, a short echo.
  bad('a number as a string (YAML)', 'nodes.yaml', (ctx) => yaml(ctx, "nodes: '4'\n"), 'nodes', /nodes: must be an integer from 1 to 256, got the string '4'; write 4 without quotes/),
  bad('a boolean as a string', 'bool.json', (ctx) => ovpn(ctx, { routePools: 'true' }), 'service.openvpn.routePools', /must be true or false, got the string 'true'; write true without quotes/),
  bad('nat as a word', 'nat.json', (ctx) => ovpn(ctx, { nat: 'yes' }), 'service.openvpn.nat', /must be true or false, got the string 'yes'/),
  bad('a long value is clipped', 'long.json', (ctx) => json(ctx, { vip: `192.0.2.1/24${'0'.repeat(900000)}` }), 'vip', /vip: prefix length in '192\.0\.2\.1\/240{47}…' \(900012 characters\) must be 0 to 32/),
  bad('a long key is clipped', 'longkey.json', (ctx) => json(ctx, { ['k'.repeat(500000)]: 1 }), `${'k'.repeat(59)}…`, /unknown field/),
  bad('a misspelt port key', 'prt.yaml', (ctx) => yaml(ctx, 'ports:\n  - { protocol: udp, prto: 1194 }\n'), 'ports[0].prto', /did you mean 'port'\?/),
  bad('a misspelt routed key', 'vai.yaml', (ctx) => `name: ${ctx.prefix}\nvip: 192.0.2.1/24\nuplink: { routed: { vai: eth0 } }\n`, 'uplink.routed.vai', /did you mean 'via'\?/),
  bad('a misspelt OpenVPN option', 'kp.json', (ctx) => ovpn(ctx, { keepAlive: [2, 10] }), 'service.openvpn.keepAlive', /did you mean 'keepalive'\?/),
  bad('a multicast VIP', 'mc.yaml', (ctx) => yaml(ctx).replace('192.0.2.1/24', '224.0.0.1/24'), 'vip', /mc\.yaml: vip: 224\.0\.0\.1 is multicast/),
  bad('a VIP in the node network', 'in.yaml', (ctx) => yaml(ctx, 'nodeNetwork: 192.0.2.0/24\n'), 'vip', /lies inside 192\.0\.2\.0\/24/),
  bad('a gateway off the subnet', 'gw.yaml', (ctx) => yaml(ctx, 'gateway: 198.51.100.1\n'), 'gateway', /outside the VIP's subnet/),
  bad('a routed uplink via lo', 'lo.yaml', (ctx) => `name: ${ctx.prefix}\nvip: 192.0.2.1/24\nuplink: { routed: { via: lo } }\n`, 'uplink.routed.via', /loopback/),
  bad('300 ports', 'ports.json', (ctx) => json(ctx, { ports: Array.from({ length: 300 }, (_, i) => ({ protocol: 'tcp', port: i + 1 })) }), 'ports', /lists 300 ports; at most 256/),
  bad('OpenVPN extra with daemon in a block scalar', 'daemon.yaml', (ctx) => `${yaml(ctx, 'ports: [{ protocol: udp, port: 1194 }]\n')}service:\n  openvpn:\n    clientFingerprints: ["${FP}"]\n    extra: |\n      verb 4\n      --Daemon\n`, 'service.openvpn.extra', /line 2 \('--Daemon'\): 'daemon' is not allowed/),
  bad('OpenVPN port not among the ports', 'ovport.json', (ctx) => ovpn(ctx, { port: 443, protocol: 'tcp' }), 'service.openvpn.port', /tcp\/443, which is not among the cluster's ports \(udp\/1194\)/),
  bad('OpenVPN pools over the node network', 'pool.json', (ctx) => ovpn(ctx, { pool: { base: '198.18.0.0' } }), 'service.openvpn.pool', /overlap the node network 198\.18\.0\.0\/24/),
  bad('OpenVPN keepalive reversed', 'ka.yaml', (ctx) => `${yaml(ctx, 'ports: [{ protocol: udp, port: 1194 }]\n')}service: { openvpn: { clientFingerprints: ["${FP}"], keepalive: [10, 5] } }\n`, 'service.openvpn.keepalive', /timeout 5 must be longer than the interval 10/),
  bad('OpenVPN binary missing', 'bin.json', (ctx) => ovpn(ctx, { binary: '/nonexistent/openvpn' }), 'service.openvpn.binary', /apt install openvpn/),
  bad('OpenVPN user unknown', 'user.json', (ctx) => ovpn(ctx, { user: 'nosuchuser-nc' }), 'service.openvpn.user', /not in \/etc\/passwd/),
  bad('command and openvpn together', 'both.json', (ctx) => json(ctx, { service: { command: ['x'], openvpn: { clientFingerprints: [FP] } } }), 'service', new RegExp(esc('give exactly one of'))),
];
