/**
 * A small throwaway PKI made with the openssl command line, as an operator would make one: a CA,
 * a server certificate, client certificates, a CRL revoking some of them, and a tls-crypt key
 * (`openvpn --genkey`). For the demo's `--pki` and the tests; the library itself never runs
 * openssl. Everything goes into `dir` (keys 0600).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface MadePki {
  dir: string;
  ca: string;
  caKey: string;
  cert: string;
  key: string;
  crl: string;
  tlsCrypt: string;
  /** Per client name: its certificate and key. */
  clients: Record<string, { cert: string; key: string }>;
}

const run = (cmd: string, args: string[], cwd: string) => execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });

/** Makes the PKI in `dir`: `clients` get certificates, those in `revoke` are revoked in the CRL. */
export function makePki(dir: string, o: { clients: string[]; revoke?: string[]; openvpn?: string }): MadePki {
  const p = (f: string) => join(dir, f);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run('openssl', ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '3650', '-subj', '/CN=netns-cluster test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  writeFileSync(p('server.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth\n');
  writeFileSync(p('client.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=clientAuth\n');
  const issue = (name: string, ext: string) => {
    run('openssl', ['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
    run('openssl', ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '825', '-extfile', ext], dir);
    chmodSync(p(`${name}.key`), 0o600);
    return { cert: p(`${name}.crt`), key: p(`${name}.key`) };
  };
  const server = issue('server', 'server.ext');
  const clients: MadePki['clients'] = {};
  for (const c of o.clients) clients[c] = issue(c, 'client.ext');
  // The CRL: `openssl ca` keeps its database in index.txt.
  writeFileSync(p('index.txt'), '');
  writeFileSync(p('crlnumber'), '01\n');
  writeFileSync(
    p('ca.cnf'),
    `[ca]\ndefault_ca = CA_default\n[CA_default]\ndatabase = ${p('index.txt')}\ncrlnumber = ${p('crlnumber')}\ndefault_md = sha256\ndefault_crl_days = 3650\ncertificate = ${p('ca.crt')}\nprivate_key = ${p('ca.key')}\n`,
  );
  for (const c of o.revoke ?? []) run('openssl', ['ca', '-config', 'ca.cnf', '-revoke', `${c}.crt`], dir);
  run('openssl', ['ca', '-config', 'ca.cnf', '-gencrl', '-out', 'crl.pem'], dir);
  run(o.openvpn ?? 'openvpn', ['--genkey', 'tls-crypt', 'tc.key'], dir);
  chmodSync(p('tc.key'), 0o600);
  chmodSync(p('ca.key'), 0o600);
  return { dir, ca: p('ca.crt'), caKey: p('ca.key'), ...server, crl: p('crl.pem'), tlsCrypt: p('tc.key'), clients };
}

/** A client config for a PKI client: its certificate and key, the CA, the tls-crypt key (inline). */
export function pkiClientConfig(pki: MadePki, name: string, o: { remote: string; port?: number; source?: string; dev: string; authFile?: string; ipv6?: boolean }): string {
  const pem = (f: string) => readFileSync(f, 'utf8').trim();
  const c = pki.clients[name];
  return [
    'client',
    `dev ${o.dev}`,
    'dev-type tun',
    'proto udp',
    `remote ${o.remote} ${o.port ?? 1194}`,
    ...(o.source ? [`local ${o.source}`, 'lport 0'] : ['nobind']),
    'connect-retry 1 1',
    'resolv-retry infinite',
    'disable-dco',
    'remote-cert-tls server',
    ...(o.authFile ? [`auth-user-pass ${o.authFile}`] : []),
    '<ca>', pem(pki.ca), '</ca>',
    '<cert>', pem(c.cert), '</cert>',
    '<key>', pem(c.key), '</key>',
    '<tls-crypt>', pem(pki.tlsCrypt), '</tls-crypt>',
    'verb 3',
    '',
  ].join('\n');
}
