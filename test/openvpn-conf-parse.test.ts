// OpenVPN's config grammar, read as OpenVPN reads it: quoting and escapes, comments, inline
// blocks, includes (with OpenVPN's depth limit), line numbers; and the operator's config checked
// directive by directive (what is refused says file:line). No root needed.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConf, parseConf, quoteParam, renderDirective, splitLine, ConfSyntaxError, MAX_INCLUDE_DEPTH } from '../lib/services/openvpn/conf-parse.js';
import { readOperatorConfig, renderNodeConfig } from '../lib/services/openvpn/server-conf.js';
import { nodePool6 } from '../lib/services/openvpn/pool6.js';

const dir = mkdtempSync(join(tmpdir(), 'nc-confparse-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const write = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

describe('splitLine: parameters as OpenVPN splits them', () => {
  it.each([
    ['verb 3', ['verb', '3']],
    ['  \tverb   3  ', ['verb', '3']],
    ['push "route 10.0.0.0 255.0.0.0"', ['push', 'route 10.0.0.0 255.0.0.0']],
    ["push 'dhcp-option DNS 10.8.0.1'", ['push', 'dhcp-option DNS 10.8.0.1']],
    ['a "x\\"y" b', ['a', 'x"y', 'b']],
    ['a "x\\\\y"', ['a', 'x\\y']],
    ["a 'x\\y'", ['a', 'x\\y']], // no escapes in single quotes
    ['a b\\ c', ['a', 'b c']], // an escaped blank stays in a bare parameter
    ['verb 3 # a comment', ['verb', '3']],
    ['verb 3 ; a comment', ['verb', '3']],
    ['a b#c', ['a', 'b#c']], // '#' inside a parameter is ordinary
    ['a "#b"', ['a', '#b']],
    ['a "b"c', ['a', 'b', 'c']], // a closing quote ends the parameter
    ['a ""', ['a', '']],
  ])('%s', (line, want) => expect(splitLine(line)).toEqual(want));

  it('blank and comment lines have no directive', () => {
    for (const l of ['', '   ', '# daemon', '; daemon', '  # x', '\\# x']) expect(splitLine(l)).toBeUndefined();
  });

  it('refuses an unclosed quote and too many parameters', () => {
    expect(() => splitLine('push "route 10.0.0.0')).toThrow(/no closing quotation \(\"\)/);
    expect(() => splitLine("push 'x")).toThrow(/no closing quotation \(\'\)/);
    expect(() => splitLine(Array.from({ length: 17 }, (_, i) => `p${i}`).join(' '))).toThrow(/more than 15 parameters/);
  });

  it('quoteParam round-trips through splitLine', () => {
    for (const v of ['plain', 'with space', 'q"uote', 'back\\slash', '#hash', ';semi', '', "it's"]) expect(splitLine(`x ${quoteParam(v)}`)).toEqual(['x', v]);
    expect(renderDirective({ name: 'push', args: ['route 10.0.0.0 255.0.0.0'] })).toBe('push "route 10.0.0.0 255.0.0.0"');
  });
});

describe('parseConf: files, inline blocks, includes', () => {
  it('gives every directive its file and line, drops a leading --, skips a BOM', () => {
    const f = join(dir, 'a.conf');
    const ds = parseConf('\uFEFF# hello\n--verb 3\n\nport 1194\r\n', f);
    expect(ds.map((d) => [d.name, d.args, d.line, d.file])).toEqual([
      ['verb', ['3'], 2, f],
      ['port', ['1194'], 4, f],
    ]);
  });

  it('reads inline files verbatim up to their closing tag', () => {
    const ds = parseConf('ca ca.crt\n<tls-crypt>\n# not a comment here\n-----BEGIN x-----\n  </tls-crypt>\nverb 1\n', join(dir, 'b.conf'));
    expect(ds[1]).toMatchObject({ name: 'tls-crypt', args: [], inline: '# not a comment here\n-----BEGIN x-----\n', line: 2 });
    expect(ds[2]).toMatchObject({ name: 'verb', line: 6 });
    expect(renderDirective(ds[1])).toBe('<tls-crypt>\n# not a comment here\n-----BEGIN x-----\n</tls-crypt>');
    expect(() => parseConf('<ca>\nxx\n', join(dir, 'c.conf'))).toThrow(/c\.conf:1: <ca> is never closed: add a line <\/ca>/);
  });

  it('refuses what OpenVPN refuses, at file:line', () => {
    const f = join(dir, 'bad.conf');
    expect(() => parseConf('verb 3\npush "x\n', f)).toThrow(new ConfSyntaxError(f, 2, 'no closing quotation (") on this line'));
    expect(() => parseConf(`verb 3\n# ok\nx ${'a'.repeat(300)}\n`, f)).toThrow(/bad\.conf:3: is 302 characters long; OpenVPN reads at most 255/);
    expect(() => parseConf('a\0b\n', f)).toThrow(/bad\.conf:1: contains a NUL/);
  });

  it('reads `config` includes in place, relative to the working directory, `cd` included', () => {
    write('inc-ciphers.conf', 'data-ciphers AES-256-GCM\n');
    const sub = join(dir, 'sub');
    rmSync(sub, { recursive: true, force: true });
    mkdirSync(sub);
    writeFileSync(join(sub, 'push.conf'), 'push "route 10.1.0.0 255.255.0.0"\n');
    const main = write('main.conf', 'verb 3\nconfig inc-ciphers.conf\ncd sub\nconfig push.conf\nport 1195\n');
    const ds = loadConf(main);
    expect(ds.map((d) => `${d.name}@${d.file.slice(dir.length + 1)}:${d.line}`)).toEqual([
      'verb@main.conf:1',
      'data-ciphers@inc-ciphers.conf:1',
      'cd@main.conf:3',
      'push@sub/push.conf:1',
      'port@main.conf:5',
    ]);
    expect(ds[4].cwd).toBe(sub);
  });

  it('stops includes at OpenVPN’s depth limit and names a missing include', () => {
    const self = write('self.conf', 'verb 1\nconfig self.conf\n');
    expect(() => loadConf(self)).toThrow(new RegExp(`self\\.conf:2: includes nest more than ${MAX_INCLUDE_DEPTH} levels deep`));
    const missing = write('missing.conf', 'verb 1\n\nconfig nope.conf\n');
    expect(() => loadConf(missing)).toThrow(/missing\.conf:3: 'config nope\.conf': cannot read .*nope\.conf: no such file/);
  });
});

describe('readOperatorConfig: what is kept, set per node and refused', () => {
  const base = (more: string) => write(`op${Math.random().toString(36).slice(2, 8)}.conf`, `port 1194\nproto udp\ndev tun\ntopology subnet\nserver 10.8.0.0 255.255.255.0\ndh none\n${more}`);

  it('refuses what escapes supervision or cannot run N times, each at file:line', () => {
    const f = base('daemon\nwritepid /run/openvpn.pid\nmanagement 127.0.0.1 7505\nlocal 192.0.2.1\nlocal 192.0.2.2\nsetenv opt inetd\nmanagement-hold\n');
    const { problems } = readOperatorConfig(f);
    expect(problems.map((p) => p.replace(`${f}:`, ''))).toEqual([
      expect.stringMatching(/^7: 'daemon': it would leave the foreground, out of the supervisor’s reach; remove it/),
      expect.stringMatching(/^8: 'writepid': the supervisor tracks the process itself; a pid file would outlive it, and every node would write this one file/),
      expect.stringMatching(/^9: 'management': a management interface on TCP 127\.0\.0\.1:7505 would be opened by every node at once.*remove it/),
      expect.stringMatching(/^11: 'local': a second 'local' \(the first is at line 10\)/),
      expect.stringMatching(/^12: 'inetd': /),
      expect.stringMatching(/^13: 'management-hold': OpenVPN would wait for a management client/),
    ]);
  });

  it('refuses scripts without script-security 2, tap devices and client configs', () => {
    const script = write('auth.sh', '#!/bin/sh\nexit 0\n');
    chmodSync(script, 0o755);
    expect(readOperatorConfig(base(`auth-user-pass-verify ${script} via-file\n`)).problems).toEqual([expect.stringMatching(/:7: 'auth-user-pass-verify': runs a program, which OpenVPN refuses below 'script-security 2'.*add 'script-security 2'/)]);
    expect(readOperatorConfig(base(`script-security 2\nauth-user-pass-verify ${script} via-file\n`)).problems).toEqual([]);
    expect(readOperatorConfig(base('dev tap0\n')).problems[0]).toMatch(/:7: 'dev': netns-cluster runs routed servers/);
    expect(readOperatorConfig(base('client\n')).problems[0]).toMatch(/:7: 'client': this is a client config/);
  });

  it('checks the files it names: missing, wrong kind, not executable', () => {
    const notExec = write('noexec.sh', '#!/bin/sh\n');
    const f = base(`ca ${join(dir, 'no-ca.crt')}\nclient-config-dir ${notExec}\nscript-security 2\nclient-connect "${notExec} arg"\ncrl-verify crl.pem\n`);
    const problems = readOperatorConfig(f).problems.map((p) => p.replace(`${f}:`, ''));
    expect(problems).toEqual([
      expect.stringMatching(/^7: 'ca': .*no-ca\.crt: no such file or directory; create it or fix the path/),
      expect.stringMatching(/^8: 'client-config-dir': .*noexec\.sh is a file; give a directory$/),
      expect.stringMatching(/^10: 'client-connect': .*noexec\.sh is not executable by root.*chmod \+x it/),
      expect.stringMatching(/^11: 'crl-verify': .*\/crl\.pem: no such file or directory/), // relative to the config's directory
    ]);
  });

  it('keeps the operator’s directives and sets local, port, proto, pool, management, status per node', () => {
    const ccd = join(dir, 'ccd');
    mkdirSync(ccd, { recursive: true });
    const f = base(`push "route 10.20.0.0 255.255.0.0"\nlog /var/log/openvpn.log\nstatus /var/log/openvpn-status.log\nifconfig-pool-persist ipp.txt 60\nclient-config-dir ccd\nlocal 203.0.113.5\nuser nobody\ngroup nogroup\nserver-ipv6 fd00:8::/112\n<tls-crypt>\nKEY\n</tls-crypt>\n`);
    // OpenVPN reads client-config-dir as nobody: every directory on the way must let nobody through.
    chmodSync(dir, 0o700);
    expect(readOperatorConfig(f).problems).toEqual([expect.stringMatching(/:11: 'client-config-dir': .*ccd: user nobody cannot reach it .*the directory .* is mode 0700; chmod o\+x it/)]);
    chmodSync(dir, 0o755);
    const { config, problems } = readOperatorConfig(f);
    expect(problems).toEqual([]);
    expect(config).toMatchObject({ port: 1194, protocol: 'udp', pool: { base: '10.8.0.0', prefix: 24 }, pool6: { base: 'fd00:8::', prefix: 112 }, user: 'nobody', group: 'nogroup' });
    const text = renderNodeConfig(config!, {
      index: 2,
      vip: '192.0.2.1',
      port: 1194,
      protocol: 'udp',
      pool: { network: '10.8.2.0', netmask: '255.255.255.0' },
      pool6: 'fd00:8::2:0/112',
      managementSocket: '/run/x/n2/management.sock',
      statusFile: '/run/x/n2/status.txt',
      dir: '/run/x/n2',
    });
    const lines = text.split('\n');
    expect(lines[1]).toBe(`cd ${dir}`);
    for (const l of ['push "route 10.20.0.0 255.255.0.0"', 'client-config-dir ccd', 'user nobody', 'group nogroup', '<tls-crypt>', 'KEY', '</tls-crypt>', 'ifconfig-pool-persist /run/x/n2/ipp.txt 60', 'local 192.0.2.1', 'server 10.8.2.0 255.255.255.0', 'server-ipv6 fd00:8::2:0/112', 'management /run/x/n2/management.sock unix', 'status /run/x/n2/status.txt 1'])
      expect(lines, l).toContain(l);
    for (const gone of ['log /var/log/openvpn.log', 'status /var/log/openvpn-status.log', 'local 203.0.113.5', 'server 10.8.0.0 255.255.255.0', 'ifconfig-pool-persist ipp.txt 60']) expect(lines, gone).not.toContain(gone);
  });

  it('splits the IPv6 pool per node like the IPv4 one', () => {
    expect(nodePool6(0, { base: 'fd00:8::', prefix: 112 })).toEqual({ network: 'fd00:8::', prefix: 112, serverAddress: 'fd00:8::1' });
    expect(nodePool6(3, { base: 'fd00:8::', prefix: 112 })).toMatchObject({ network: 'fd00:8::3:0', serverAddress: 'fd00:8::3:1' });
    expect(nodePool6(1, { base: 'fd00:8::', prefix: 64 })).toMatchObject({ network: 'fd00:8:0:1::' });
    expect(() => nodePool6(0, { base: 'fd00:8::1', prefix: 112 })).toThrow(/not aligned to a \/112 block; use fd00:8::/);
    expect(() => nodePool6(0, { base: 'fd00::', prefix: 125 })).toThrow(/pool6\.prefix/);
  });
});
