// OpenVPN with the operator's own config (`config`), a PKI given in code (`pki`) and IPv6 pools
// (`pool6`): everything that could not work per node, would escape supervision, or names a file
// the node cannot read is refused when the spec is checked, with file:line and what to fix.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCluster } from '../../lib/index.js';
import type { Identity } from '../../lib/services/openvpn/keys.js';
import { CODE, FP, identities, openvpnSpec, type Patch } from './openvpn-spec.js';
import type { BadInputCase, CaseContext } from './types.js';

const spec = (ctx: CaseContext, ovpn: Patch, top: Patch = {}) => openvpnSpec(ctx, ovpn, top);

/** A server.conf that works as far as the checks go (its files exist in the case's directory), plus `more`. */
function conf(ctx: CaseContext, more: string, base = 'port 1194\nproto udp\ndev tun\nserver 10.8.0.0 255.255.255.0\nca ca.crt\ncert server.crt\nkey server.key\ndh none\n'): string {
  for (const f of ['ca.crt', 'server.crt', 'server.key']) writeFileSync(join(ctx.dir, f), 'x');
  const p = join(ctx.dir, 'server.conf');
  writeFileSync(p, base + more);
  return p;
}

/** A case with a config file: `more` is appended at line 9; `message` is matched after `server.conf:`. */
function bad(name: string, more: string, message: RegExp, o: { top?: Patch; base?: string; ovpn?: Patch; field?: string } = {}): BadInputCase {
  return {
    name,
    run: (ctx) => createCluster(spec(ctx, { config: conf(ctx, more, o.base), ...o.ovpn }, o.top) as never),
    expect: { code: CODE, field: o.field ?? 'service.openvpn.config', message },
  };
}

function badPki(name: string, pki: (id: [Identity, Identity], ctx: CaseContext) => Patch, field: string, message: RegExp, top: Patch = {}): BadInputCase {
  return { name, run: async (ctx) => createCluster(spec(ctx, { pki: pki(await identities(), ctx) }, top) as never), expect: { code: CODE, field: `service.openvpn.pki.${field}`, message } };
}

export const cases: BadInputCase[] = [
  // One way to authenticate clients, and what a config says itself stays in the file.
  bad('config and clientFingerprints', '', /not with config: the config file says it \(peer-fingerprint\)/, { ovpn: { clientFingerprints: [FP] }, field: 'service.openvpn.clientFingerprints' }),
  bad('config and port', '', /not with config: the config file says it \(port\); write it there/, { ovpn: { port: 1195 }, field: 'service.openvpn.port' }),
  bad('config and extra', '', /not with config: the config file says it \(the directives\)/, { ovpn: { extra: 'verb 4' }, field: 'service.openvpn.extra' }),
  {
    name: 'pki and clientFingerprints',
    run: async (ctx) => createCluster(spec(ctx, { clientFingerprints: [FP], pki: { ca: '/nonexistent/ca.crt', cert: '/nonexistent/s.crt', key: '/nonexistent/s.key' } }) as never),
    expect: { code: CODE, field: 'service.openvpn.clientFingerprints', message: /not with pki: clients are checked against pki\.ca/ },
  },
  { name: 'config empty', run: (ctx) => createCluster(spec(ctx, { config: '' }) as never), expect: { code: CODE, field: 'service.openvpn.config', message: /must be the path of an OpenVPN server config/ } },
  { name: 'config a number', run: (ctx) => createCluster(spec(ctx, { config: 5 }) as never), expect: { code: CODE, field: 'service.openvpn.config', message: /got 5/ } },
  { name: 'config missing', run: (ctx) => createCluster(spec(ctx, { config: join(ctx.dir, 'nope.conf') }) as never), expect: { code: CODE, field: 'service.openvpn.config', message: /nope\.conf: cannot read it: no such file; give the path of the server's config/ } },
  { name: 'config a directory', run: (ctx) => createCluster(spec(ctx, { config: ctx.dir }) as never), expect: { code: CODE, field: 'service.openvpn.config', message: /is not a regular file/ } },

  // What escapes supervision or cannot run in N nodes at once.
  bad('daemon', 'daemon\n', /server\.conf:9: 'daemon': it would leave the foreground, out of the supervisor’s reach/),
  bad('daemon after --', '--daemon openvpn-server\n', /server\.conf:9: 'daemon'/),
  bad('daemon through setenv opt', 'setenv opt daemon\n', /server\.conf:9: 'daemon'/),
  bad('inetd', 'inetd\n', /server\.conf:9: 'inetd'/),
  bad('writepid', 'writepid /run/openvpn/server.pid\n', /server\.conf:9: 'writepid': the supervisor tracks the process itself; a pid file would outlive it, and every node would write this one file/),
  bad('management on TCP', 'management 127.0.0.1 7505\n', /server\.conf:9: 'management': a management interface on TCP 127\.0\.0\.1:7505 would be opened by every node/),
  bad('management-hold', 'management-hold\n', /server\.conf:9: 'management-hold': OpenVPN would wait for a management client/),
  bad('management-client-auth', 'management-client-auth\n', /server\.conf:9: 'management-client-auth': .*use auth-user-pass-verify or a plugin/),
  bad('a second local', 'local 192.0.2.1\nlocal 192.0.2.2\n', /server\.conf:10: 'local': a second 'local' \(the first is at line 9\)/),
  bad('a tap device', '', /server\.conf:3: 'dev': netns-cluster runs routed servers: use `dev tun`/, { base: 'port 1194\nproto udp\ndev tap\nserver 10.8.0.0 255.255.255.0\nca ca.crt\ncert server.crt\nkey server.key\ndh none\n' }),
  bad('server-bridge', 'server-bridge\n', /server\.conf:9: 'server-bridge': netns-cluster runs routed \(tun\) servers/),
  bad('a client config', 'client\nremote 192.0.2.1\n', /server\.conf:9: 'client': this is a client config/),
  bad('askpass', 'askpass\n', /server\.conf:9: 'askpass': OpenVPN would stop at start to ask for the key’s passphrase/),
  bad('a script without script-security 2', 'auth-user-pass-verify /bin/true via-env\n', /server\.conf:9: 'auth-user-pass-verify': runs a program, which OpenVPN refuses below 'script-security 2' \(this config has the default, 1\)/),
  bad('ifconfig-pool', 'ifconfig-pool 10.8.0.10 10.8.0.100\n', /server\.conf:9: 'ifconfig-pool': netns-cluster gives each node its block of the pool through `server`/),

  // The grammar, as OpenVPN reads it.
  bad('an unclosed quote', 'push "route 10.0.0.0 255.0.0.0\n', /server\.conf:9: no closing quotation \(\"\) on this line/),
  bad('an inline block never closed', '<tls-crypt>\nxx\n', /server\.conf:9: <tls-crypt> is never closed: add a line <\/tls-crypt>/),
  bad('a line longer than OpenVPN reads', `push "${'x'.repeat(300)}"\n`, /server\.conf:9: is 307 characters long; OpenVPN reads at most 255/),
  bad('a config that includes itself', 'config server.conf\n', /server\.conf:9: includes nest more than 10 levels deep/),
  bad('an include that is missing', 'config nope.conf\n', /server\.conf:9: 'config nope\.conf': cannot read .*nope\.conf: no such file/),

  // The pool per node: from `server` (node k the k-th block) and `server-ipv6`.
  bad('no server line', '', /has no 'server NETWORK NETMASK' line/, { base: 'port 1194\nproto udp\ndev tun\nmode server\ntls-server\nca ca.crt\ncert server.crt\nkey server.key\n' }),
  bad('server /30', '', /server\.conf:4: 'server': a \/30 block per node: give a netmask from 255\.0\.0\.0 to 255\.255\.255\.248/, { base: 'port 1194\nproto udp\ndev tun\nserver 10.8.0.0 255.255.255.252\nca ca.crt\ncert server.crt\nkey server.key\n' }),
  bad('server not aligned', '', /server\.conf:4: 'server': 10\.8\.0\.1 is not aligned to a \/24 block; use 10\.8\.0\.0/, { base: 'port 1194\nproto udp\ndev tun\nserver 10.8.0.1 255.255.255.0\nca ca.crt\ncert server.crt\nkey server.key\n' }),
  bad('server pools overlap the VIP subnet', '', /server\.conf:4: 'server': the client pools \(192\.0\.0\.0 on, one \/24 per node\) overlap the VIP's subnet 192\.0\.2\.0\/24.*change it, e\.g\. to server 10\.8\.0\.0 255\.255\.255\.0, or set the pool option/, { base: 'port 1194\nproto udp\ndev tun\nserver 192.0.0.0 255.255.255.0\nca ca.crt\ncert server.crt\nkey server.key\n' }),
  bad('server-ipv6 /63', 'server-ipv6 fd00:8::/63\n', /server\.conf:9: 'server-ipv6': .*from 64 to 124, got 63/),
  bad('server-ipv6 pools overlap the VIP subnet', 'server-ipv6 2001:db8::/112\n', /server\.conf:9: 'server-ipv6': the IPv6 client pools .* overlap the VIP's subnet 2001:db8::\/64/, { top: { vip: ['192.0.2.1/24', '2001:db8::1/64'] } }),
  // Stable addresses with the operator's config: the controller pushes every address itself, and the
  // file's server-ipv6 is the cluster's one IPv6 range.
  bad('stable: duplicate-cn in the file', 'duplicate-cn\n', /server\.conf:9: 'duplicate-cn': with addresses: 'stable' each client .* has one address/, { ovpn: { addresses: 'stable' } }),
  bad('stable: ifconfig-push in the file', 'ifconfig-push 10.8.0.9 255.255.255.0\n', /server\.conf:9: 'ifconfig-push': with addresses: 'stable' the cluster pushes every client's address itself/, { ovpn: { addresses: 'stable' } }),
  bad('stable: server-ipv6 smaller than the pool', 'server-ipv6 fd00:8::/124\n', /server\.conf:9: 'server-ipv6': the IPv6 range fd00:8::\/124 is smaller than the IPv4 pool \(\/24\)/, { ovpn: { addresses: 'stable' }, top: { vip: ['192.0.2.1/24', '2001:db8::1/64'] } }),
  bad('stable: server-ipv6 without an IPv6 node network', 'server-ipv6 fd00:8::/112\n', /server\.conf:9: 'server-ipv6': with addresses: 'stable' the IPv6 range fd00:8::\/112 needs an IPv6 node network/, { ovpn: { addresses: 'stable' } }),
  bad('port not among the cluster ports', '', /server\.conf: the server listens on udp\/1195 \(its port and proto lines\), which is not among the cluster's ports \(udp\/1194\)/, { base: 'port 1195\nproto udp\ndev tun\nserver 10.8.0.0 255.255.255.0\nca ca.crt\ncert server.crt\nkey server.key\n' }),

  // Files the config names, checked before anything is built.
  bad('a missing CRL', 'crl-verify crl.pem\n', /server\.conf:9: 'crl-verify': .*\/crl\.pem: no such file or directory; create it or fix the path/),
  bad('a missing key', '', /server\.conf:7: 'key': .*\/nokey\.pem: no such file or directory/, { base: 'port 1194\nproto udp\ndev tun\nserver 10.8.0.0 255.255.255.0\nca ca.crt\ncert server.crt\nkey nokey.pem\n' }),
  bad('client-config-dir a file', 'client-config-dir ca.crt\n', /server\.conf:9: 'client-config-dir': .*ca\.crt is a file; give a directory/),
  bad('a script that is not executable', 'script-security 2\nclient-connect ca.crt\n', /server\.conf:10: 'client-connect': .*ca\.crt is not executable by root.*chmod \+x it/),
  bad('a plugin that is not installed', 'plugin openvpn-plugin-nonexistent.so\n', /server\.conf:9: 'plugin': no plugin openvpn-plugin-nonexistent\.so in .*; install it or give its absolute path/),

  // A PKI given in code.
  badPki('pki without ca', ([s]) => ({ cert: s.certPem, key: s.keyPem }), 'ca', /is missing: give the CA certificate/),
  badPki('pki ca a relative path', ([s]) => ({ ca: 'ca.crt', cert: s.certPem, key: s.keyPem }), 'ca', /'ca\.crt' must be the CA certificate clients are checked against as an absolute path/),
  badPki('pki ca missing file', ([s], ctx) => ({ ca: join(ctx.dir, 'ca.crt'), cert: s.certPem, key: s.keyPem }), 'ca', /ca\.crt: no such file; create it or fix the path/),
  badPki('pki ca a key', ([s]) => ({ ca: s.keyPem, cert: s.certPem, key: s.keyPem }), 'ca', /is PEM, but not the CA certificate/),
  badPki('pki key of another certificate', ([s, o]) => ({ ca: s.certPem, cert: s.certPem, key: o.keyPem }), 'key', /is not the private key of cert/),
  badPki('pki crl file without a CRL', ([s], ctx) => {
    writeFileSync(join(ctx.dir, 'crl.pem'), s.certPem);
    return { ca: s.certPem, cert: s.certPem, key: s.keyPem, crl: join(ctx.dir, 'crl.pem') };
  }, 'crl', /crl\.pem does not hold the CA’s certificate revocation list \(no -----BEGIN X509 CRL----- in it\)/),
  badPki('pki tlsCrypt with an inline tag', ([s]) => ({ ca: s.certPem, cert: s.certPem, key: s.keyPem, tlsCrypt: '-----BEGIN OpenVPN Static key V1-----\n</tls-crypt>\ndaemon\n' }), 'tlsCrypt', /inline-file tags/),
  badPki('pki unknown key', ([s]) => ({ ca: s.certPem, cert: s.certPem, key: s.keyPem, crlVerify: '/x' }), 'crlVerify', /unknown field; known fields are ca, cert, key, crl, dh, tlsCrypt, tlsAuth, tlsCryptV2/),

  // IPv6 pools given as options.
  { name: 'pool6 not aligned', run: (ctx) => createCluster(spec(ctx, { clientFingerprints: [FP], pool6: { base: 'fd00:8::1' } }) as never), expect: { code: CODE, field: 'service.openvpn.pool6.base', message: /not aligned to a \/112 block; use fd00:8::/ } },
  { name: 'pool6 prefix 63', run: (ctx) => createCluster(spec(ctx, { clientFingerprints: [FP], pool6: { base: 'fd00:8::', prefix: 63 } }) as never), expect: { code: CODE, field: 'service.openvpn.pool6.prefix', message: /from 64 to 124, got 63/ } },
  { name: 'pool6 IPv4', run: (ctx) => createCluster(spec(ctx, { clientFingerprints: [FP], pool6: { base: '10.8.0.0' } }) as never), expect: { code: CODE, field: 'service.openvpn.pool6.base', message: /not an IPv6 network address such as fd00:8::/ } },
  {
    name: 'pool6 overlaps the node network',
    run: (ctx) => createCluster(spec(ctx, { clientFingerprints: [FP], pool6: { base: 'fd00:198:18::', prefix: 112 } }, { vip: ['192.0.2.1/24', '2001:db8::1/64'] }) as never),
    expect: { code: CODE, field: 'service.openvpn.pool6', message: /overlap the node network fd00:198:18::\/64.*choose another pool6\.base/ },
  },
];
