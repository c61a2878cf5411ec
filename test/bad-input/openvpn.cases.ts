// OpenVPN options: everything start() would refuse is refused when the spec is resolved (port,
// protocol, keepalive, pools, binary, PEM, fingerprints, user/group), and `extra` may not hold a
// directive that escapes supervision or fights the generated ones, in any spelling.
import { generateKeyPairSync } from 'node:crypto';
import { createCluster } from '../../lib/index.js';
import type { Identity } from '../../lib/services/openvpn/keys.js';
import { CODE, FP, identities, openvpnSpec, type Patch } from './openvpn-spec.js';
import { renderClientConfig, renderServerConfig, type ServerConfigOptions } from '../../lib/services/openvpn/config.js';
import { openvpn } from '../../lib/services/openvpn/service.js';
import type { BadInputCase, CaseContext } from './types.js';

/** Clients are authenticated by fingerprint unless a case says otherwise. */
const spec = (ctx: CaseContext, ovpn: Patch, top: Patch = {}) => openvpnSpec(ctx, ovpn, top, { clientFingerprints: [FP] });

/** A case through createCluster: the OpenVPN options `ovpn` (a function may build them from identities), the spec's other fields `top`. */
function bad(name: string, ovpn: Patch | ((id: [Identity, Identity]) => Patch), field: string, message: RegExp, top: Patch = {}): BadInputCase {
  return {
    name,
    run: async (ctx) => createCluster(spec(ctx, typeof ovpn === 'function' ? ovpn(await identities()) : ovpn, top) as never),
    expect: { code: CODE, field: field.startsWith('service') ? field : `service.openvpn.${field}`, message },
  };
}
const extra = (name: string, text: string, word: string, line = 1) =>
  bad(`extra: ${name}`, { extra: text }, 'extra', new RegExp(`line ${line} \\(.*\\): '${word}' is not allowed: `));

const corrupt = (pem: string) => pem.replace(/\n(.{20})(.{20})/, (_m, a: string) => `\n${a}${'A'.repeat(20)}`);

export const cases: BadInputCase[] = [
  // Port and protocol, and the port among the cluster's ports.
  bad('port 0', { port: 0 }, 'port', /must be an integer from 1 to 65535, got 0/),
  bad('port as a string', { port: '1194' }, 'port', /got the string '1194'; write 1194 without quotes/),
  bad('port 70000', { port: 70000 }, 'port', /got 70000/),
  bad('protocol sctp', { protocol: 'sctp' }, 'protocol', /must be 'udp' or 'tcp', got 'sctp'/),
  bad('protocol in capitals', { protocol: 'UDP' }, 'protocol', /got 'UDP'/),
  bad('protocol tcp-server', { protocol: 'tcp-server' }, 'protocol', /got 'tcp-server'/),
  bad('port not among the cluster ports', {}, 'port', /listens on udp\/1194, which is not among the cluster's ports \(udp\/5000\).*add \{ protocol: 'udp', port: 1194 \} to ports/, { ports: [{ protocol: 'udp', port: 5000 }] }),
  bad('protocol not among the cluster ports', { protocol: 'tcp' }, 'port', /tcp\/1194, which is not among the cluster's ports \(udp\/1194\)/),
  {
    name: 'port not among the ports, with a definition from openvpn()',
    run: (ctx) => createCluster({ ...spec(ctx, {}), ports: [{ protocol: 'tcp', port: 443 }], service: openvpn({ clientFingerprints: [FP] }) } as never),
    expect: { code: CODE, field: 'service.openvpn.port', message: /udp\/1194, which is not among the cluster's ports \(tcp\/443\)/ },
  },

  // Stable client addresses: one pool for the cluster, no directive that hands out addresses itself.
  bad('addresses sticky', { addresses: 'sticky' }, 'addresses', /'per-node' or 'stable', got 'sticky'/),
  bad('addresses true', { addresses: true }, 'addresses', /'per-node' or 'stable'/),
  bad('addresses stable, a /12 pool', { addresses: 'stable', pool: { base: '10.0.0.0', prefix: 12 } }, 'pool.prefix', /one block for the whole cluster, at most \/16 \(65533 clients\); got \/12/),
  bad('addresses stable, the pool on the node network', { addresses: 'stable', pool: { base: '198.18.0.0', prefix: 24 } }, 'pool', /the cluster's client pool 198\.18\.0\.0\/24 overlaps the node network 198\.18\.0\.0\/24; choose another pool\.base/),
  bad('extra: duplicate-cn with stable addresses', { addresses: 'stable', extra: 'duplicate-cn' }, 'extra', /line 1 \(.*\): 'duplicate-cn' is not allowed: .*one name cannot be connected twice/),
  bad('extra: ifconfig-push with stable addresses', { addresses: 'stable', extra: 'push "x"\nifconfig-push 10.8.0.9 255.255.255.0' }, 'extra', /line 2 \(.*\): 'ifconfig-push' is not allowed: .*pushes every client's address itself/),
  bad('extra: ifconfig-pool in quotes with stable addresses', { addresses: 'stable', extra: "  'ifconfig-pool' 10.8.0.2 10.8.0.9" }, 'extra', /line 1 \(.*\): 'ifconfig-pool' is not allowed: .*no per-node pool/),
  bad('stable, pool6 smaller than the IPv4 pool', { addresses: 'stable', pool6: { base: 'fd00:8::', prefix: 124 } }, 'pool6.prefix', /the IPv6 range fd00:8::\/124 is smaller than the IPv4 pool \(\/24\).*\/120 or larger/, { vip: ['192.0.2.1/24', '2001:db8::1/64'] }),
  bad('stable, pool6 without an IPv6 node network', { addresses: 'stable', pool6: { base: 'fd00:8::', prefix: 112 } }, 'pool6', /needs an IPv6 node network.*give the cluster an IPv6 VIP too/),
  bad('extra: server-ipv6 (the pool6 option says it)', { extra: 'server-ipv6 fd00:8::/112' }, 'extra', /line 1 \(.*\): 'server-ipv6' is not allowed: set the 'pool6' option instead/),

  // Keepalive: [interval, timeout], positive, the interval shorter.
  bad('keepalive timeout before interval', { keepalive: [10, 5] }, 'keepalive', /timeout 5 must be longer than the interval 10/),
  bad('keepalive equal', { keepalive: [5, 5] }, 'keepalive', /timeout 5 must be longer than the interval 5/),
  bad('keepalive interval 0', { keepalive: [0, 10] }, 'keepalive[0]', /from 1 to 3600, got 0/),
  bad('keepalive negative', { keepalive: [-1, 10] }, 'keepalive[0]', /got -1/),
  bad('keepalive with one value', { keepalive: [2] }, 'keepalive', /must be \[interval, timeout\] in seconds, e\.g\. \[2, 10\], got a list of 1/),
  bad('keepalive as a string', { keepalive: '2 10' }, 'keepalive', /got '2 10'/),
  bad('keepalive timeout as a string', { keepalive: [2, '10'] }, 'keepalive[1]', /write 10 without quotes/),
  bad('keepalive fractional', { keepalive: [1.5, 10] }, 'keepalive[0]', /got 1\.5/),
  bad('keepalive with three values', { keepalive: [2, 10, 3] }, 'keepalive', /got a list of 3/),

  // Pools: every node's block in IPv4, clear of the VIP's subnet, the node networks and special ranges.
  bad('pools run past IPv4', { pool: { base: '255.255.254.0' } }, 'pool', /4 nodes need 4 \/24 pools after 255\.255\.254\.0, which run past 255\.255\.255\.255/),
  bad('256 /8 pools', { pool: { base: '10.0.0.0', prefix: 8 } }, 'pool', /256 nodes need 256 \/8 pools/, { nodes: 256, nodeNetwork: '198.18.0.0/23' }),
  bad('a pool overlaps the VIP subnet', { pool: { base: '10.8.0.0' } }, 'pool', /overlap the VIP's subnet 10\.8\.2\.0\/24 \(node 2's pool 10\.8\.2\.0\/24\); choose another pool\.base, e\.g\. 172\.16\.0\.0/, { vip: '10.8.2.1/24' }),
  bad('a pool overlaps the node network', {}, 'pool', /overlap the node network 10\.8\.1\.0\/24/, { nodeNetwork: '10.8.1.0/24' }),
  bad('pools start on the default node network', { pool: { base: '198.18.0.0' } }, 'pool', /overlap the node network 198\.18\.0\.0\/24/),
  bad('pools in loopback', { pool: { base: '127.0.0.0' } }, 'pool', /overlaps loopback/),
  bad('pools in multicast', { pool: { base: '224.0.0.0' } }, 'pool', /overlaps multicast/),
  bad('pool base not aligned', { pool: { base: '10.8.0.1' } }, 'pool.base', /not aligned to a \/24 block; use 10\.8\.0\.0/),
  bad('pool base not an address', { pool: { base: 'x' } }, 'pool.base', /'x' is not an IPv4 network address/),
  bad('pool base IPv6', { pool: { base: 'fd00::' } }, 'pool.base', /not an IPv4 network address/),
  bad('pool prefix 31', { pool: { base: '10.8.0.0', prefix: 31 } }, 'pool.prefix', /from 8 to 29, got 31/),
  bad('pool prefix as a string', { pool: { base: '10.8.0.0', prefix: '24' } }, 'pool.prefix', /write 24 without quotes/),
  bad('pool has an unknown key', { pool: { base: '10.8.0.0', size: 24 } }, 'pool.size', /unknown field; known fields are base, prefix/),
  bad('pool is null', { pool: null }, 'pool', /got null/),

  // The binary must exist now, not at start().
  bad('binary missing (a path)', { binary: '/nonexistent/openvpn' }, 'binary', /OpenVPN is not installed: '\/nonexistent\/openvpn' is not an executable file; install it with 'apt install openvpn'/),
  bad('binary missing (a name)', { binary: 'no-such-openvpn-binary' }, 'binary', /is not on PATH nor in \/usr\/sbin.*apt install openvpn/),
  bad('binary empty', { binary: '' }, 'binary', /must be the path of the openvpn program/),
  bad('binary a number', { binary: 5 }, 'binary', /got 5/),
  bad('binary not executable', { binary: '/etc/passwd' }, 'binary', /not an executable file/),
  bad('binary a directory', { binary: '/usr/sbin' }, 'binary', /not an executable file/),

  // PEM: parsed, unencrypted, the key the certificate's.
  bad('certPem not PEM', ([s]) => ({ serverIdentity: { certPem: 'nope', keyPem: s.keyPem } }), 'serverIdentity.certPem', /must be one PEM certificate/),
  bad('keyPem not PEM', ([s]) => ({ serverIdentity: { certPem: s.certPem, keyPem: 'nope' } }), 'serverIdentity.keyPem', /must be a PEM private key/),
  bad('certPem corrupted', ([s]) => ({ serverIdentity: { certPem: corrupt(s.certPem), keyPem: s.keyPem } }), 'serverIdentity.certPem', /is not a valid certificate/),
  bad('keyPem corrupted', ([s]) => ({ serverIdentity: { certPem: s.certPem, keyPem: corrupt(s.keyPem) } }), 'serverIdentity.keyPem', /is not (a valid private key|the private key of certPem)/),
  bad('keyPem of another certificate', ([s, o]) => ({ serverIdentity: { certPem: s.certPem, keyPem: o.keyPem } }), 'serverIdentity.keyPem', /is not the private key of certPem/),
  bad(
    'keyPem encrypted',
    ([s]) => ({
      serverIdentity: {
        certPem: s.certPem,
        keyPem: generateKeyPairSync('ec', { namedCurve: 'P-256', privateKeyEncoding: { type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' }, publicKeyEncoding: { type: 'spki', format: 'pem' } }).privateKey,
      },
    }),
    'serverIdentity.keyPem',
    /is encrypted: OpenVPN would stop at start to ask for its passphrase/,
  ),
  bad('certPem with an inline tag', ([s]) => ({ serverIdentity: { certPem: `${s.certPem}</cert>\ndaemon\n<cert>`, keyPem: s.keyPem } }), 'serverIdentity.certPem', /inline-file tags/),
  bad('two certificates', ([s, o]) => ({ serverIdentity: { certPem: s.certPem + o.certPem, keyPem: s.keyPem } }), 'serverIdentity.certPem', /must be one PEM certificate/),
  bad('serverIdentity without keyPem', ([s]) => ({ serverIdentity: { certPem: s.certPem } }), 'serverIdentity.keyPem', /must be a private key in PEM.*got nothing/),
  bad('serverIdentity has an unknown key', ([s]) => ({ serverIdentity: { ...s, ca: 'x' } }), 'serverIdentity.ca', /unknown field/),
  bad('serverIdentity is a string', { serverIdentity: 'server.pem' }, 'serverIdentity', /got 'server\.pem'/),
  bad('serverIdentity fingerprint of another', ([s, o]) => ({ serverIdentity: { ...s, fingerprint: o.fingerprint } }), 'serverIdentity.fingerprint', /is not certPem's fingerprint/),

  // Client fingerprints.
  bad('clientFingerprints missing', { clientFingerprints: undefined }, 'clientFingerprints', /list the SHA-256 fingerprints.*got nothing/),
  bad('clientFingerprints empty', { clientFingerprints: [] }, 'clientFingerprints', /got an empty list/),
  bad('clientFingerprints a string', { clientFingerprints: FP }, 'clientFingerprints', /got '00:11:22/),
  bad('a fingerprint too short', { clientFingerprints: ['AB'] }, 'clientFingerprints[0]', /'AB' is not a SHA-256 fingerprint; write it as 32 hex bytes/),
  bad('a SHA-1 fingerprint', { clientFingerprints: [FP.slice(0, 59)] }, 'clientFingerprints[0]', /is not a SHA-256 fingerprint/),
  bad('a fingerprint with spaces', { clientFingerprints: [FP.replaceAll(':', ' ')] }, 'clientFingerprints[0]', /is not a SHA-256 fingerprint/),
  bad('a fingerprint 10 MB long', { clientFingerprints: ['A'.repeat(10 << 20)] }, 'clientFingerprints[0]', /'A{59}…' \(10485760 characters\) is not a SHA-256/),
  bad('a fingerprint that is a number', { clientFingerprints: [5] }, 'clientFingerprints[0]', /^service\.openvpn\.clientFingerprints\[0\]: 5 is not a SHA-256/),
  bad('a fingerprint with a directive after it', { clientFingerprints: [`${FP}\ndaemon`] }, 'clientFingerprints[0]', /\(102 characters\) is not a SHA-256 fingerprint/),
  bad('a second fingerprint bad', { clientFingerprints: [FP, 'zz'] }, 'clientFingerprints[1]', /'zz' is not/),

  // extra: no directive that escapes supervision, in any spelling.
  extra('daemon', 'daemon', 'daemon'),
  extra('Daemon in capitals', 'Daemon', 'daemon'),
  extra('--daemon', '--daemon', 'daemon'),
  extra('quoted "daemon"', '"daemon"', 'daemon'),
  extra("single-quoted 'daemon'", "'daemon' mydaemon", 'daemon'),
  extra('daemon after a tab', '\tdaemon', 'daemon'),
  extra('daemon with a trailing comment', 'daemon # background', 'daemon'),
  extra('daemon;comment', 'daemon;x', 'daemon'),
  extra('daemon in a template', '{generated}\nverb 4\ndaemon', 'daemon', 3),
  extra('DAEMON on line 3', 'verb 4\n# a comment\nDAEMON', 'daemon', 3),
  extra('daemon after CRLF', 'verb 3\r\ndaemon\r\n', 'daemon', 2),
  extra('da\\emon with a backslash', 'da\\emon', 'daemon'),
  extra('inetd', 'inetd nowait', 'inetd'),
  extra('writepid', 'writepid /run/openvpn.pid', 'writepid'),
  extra('log', 'log /tmp/openvpn.log', 'log'),
  extra('log-append', '  --LOG-APPEND /tmp/openvpn.log', 'log-append'),
  extra('syslog', 'syslog openvpn', 'syslog'),
  extra('management', 'management 127.0.0.1 7505', 'management'),
  extra('management-hold', 'management-hold', 'management-hold'),
  extra('management-client', 'management-client', 'management-client'),
  extra('local', 'local 0.0.0.0', 'local'),
  extra('config', 'config /etc/openvpn/server.conf', 'config'),
  extra('port', 'port 1195', 'port'),
  extra('lport', 'lport 1195', 'lport'),
  extra('proto', 'proto tcp-server', 'proto'),
  extra('server', 'server 10.9.0.0 255.255.255.0', 'server'),
  extra('status', 'status /etc/passwd 1', 'status'),
  bad('extra: {generated} twice', { extra: '{generated}\n{generated}' }, 'extra', /uses \{generated\} more than once/),
  extra('user', 'user nobody', 'user'),
  extra('group', 'group nogroup', 'group'),
  bad('extra: an unknown placeholder', { extra: 'setenv X {bogus}' }, 'extra', /unknown placeholder '\{bogus\}'; known: \{node\}/),
  bad('extra: a NUL', { extra: 'verb 3\0daemon' }, 'extra', /must not contain NUL/),
  bad('extra: a number', { extra: 5 }, 'extra', /must be a string of OpenVPN directives.*got 5/),

  // user and group: names OpenVPN can switch to.
  bad('user with a space', { user: 'no body' }, 'user', /must be a user name such as nobody.*got 'no body'/),
  bad('user not in /etc/passwd', { user: 'nosuchuser-nc' }, 'user', /user 'nosuchuser-nc' is not in \/etc\/passwd/),
  bad('group not in /etc/group', { group: 'nosuchgroup-nc' }, 'group', /group 'nosuchgroup-nc' is not in \/etc\/group/),
  bad('user a number', { user: 65534 }, 'user', /got 65534/),
  bad('user empty', { user: '' }, 'user', /got ''/),
  bad('user with a directive', { user: 'root\ndaemon' }, 'user', /'root\\ndaemon'/),
  bad('group with a semicolon', { group: 'nogroup;daemon' }, 'group', /must be a group name/),

  // Booleans and the options object itself.
  bad('routePools as a string', { routePools: 'true' }, 'routePools', /must be true or false, got the string 'true'; write true without quotes/),
  bad('nat as a number', { nat: 1 }, 'nat', /must be true or false, got 1/),
  bad('an unknown option', { prot: 'udp' }, 'prot', /unknown field; did you mean 'protocol'\?/),
  bad('an option in capitals', { Port: 1194 }, 'Port', /did you mean 'port'\?/),
  bad('a daemon option', { daemon: true }, 'daemon', /unknown field/),
  bad('restart limit negative', { restart: { maxRestarts: -1 } }, 'restart.maxRestarts', /whole number/),
  bad('stopTimeoutMs negative', { stopTimeoutMs: -5 }, 'stopTimeoutMs', /whole number/),
  {
    name: 'openvpn options null',
    run: (ctx) => createCluster({ ...spec(ctx, {}), service: { openvpn: null } } as never),
    expect: { code: CODE, field: 'service.openvpn', message: /got null/ },
  },
  {
    name: 'openvpn options a string',
    run: (ctx) => createCluster({ ...spec(ctx, {}), service: { openvpn: 'server.conf' } } as never),
    expect: { code: CODE, field: 'service.openvpn', message: /got 'server\.conf'/ },
  },

  // The functions themselves.
  { name: 'openvpn(): port 0', run: () => openvpn({ clientFingerprints: [FP], port: 0 }), expect: { code: CODE, field: 'service.openvpn.port', message: /got 0/ } },
  { name: 'openvpn(): extra daemon', run: () => openvpn({ clientFingerprints: [FP], extra: 'daemon' }), expect: { code: CODE, field: 'service.openvpn.extra', message: /'daemon' is not allowed/ } },
  ...(
    [
      ['renderServerConfig: keepalive reversed', { keepalive: [10, 5] }, 'keepalive', /timeout 5 must be longer/],
      ['renderServerConfig: extra daemon', { extra: 'daemon' }, 'extra', /'daemon' is not allowed/],
      ['renderServerConfig: extra --log', { extra: '--log /x' }, 'extra', /'log' is not allowed/],
      ['renderServerConfig: user with a newline', { user: 'a\nb' }, 'user', /must be a user name/],
      ['renderServerConfig: serverIdentity a string', { serverIdentity: 'x' }, 'serverIdentity', /got 'x'/],
    ] as [string, Partial<ServerConfigOptions> & Patch, string, RegExp][]
  ).map(([name, patch, field, message]) => ({
    name,
    run: async () => {
      const [s] = await identities();
      return renderServerConfig({ index: 0, vip: '192.0.2.1', serverIdentity: s, clientFingerprints: [FP], managementSocket: '/run/x.sock', statusFile: '/run/x.status', ...patch } as ServerConfigOptions);
    },
    expect: { code: CODE, field, message },
  })),
  {
    name: 'renderClientConfig: extra daemon',
    run: async () => {
      const [s] = await identities();
      return renderClientConfig({ remote: '192.0.2.1', identity: s, serverFingerprint: FP, extra: ' daemon' });
    },
    expect: { code: CODE, field: 'extra', message: /'daemon' is not allowed/ },
  },
];
