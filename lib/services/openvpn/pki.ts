/**
 * `openvpn({ pki: { ca, cert, key, crl?, dh?, tlsCrypt?, tlsAuth?, tlsCryptV2? } })`: a CA-based
 * PKI for configs built in code. Each value is an absolute path (OpenVPN reads the file; it must be
 * there, readable, and say what it should) or the PEM text itself (written inline into the node's
 * 0600 config). Checked when the spec is checked, before anything is built.
 * @module
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { InvalidArgumentError } from '../../util/errors.js';
import { show } from '../../util/shape.js';
import { quoteParam } from './conf-parse.js';
import { nodeView } from './node-view.js';

/** The PKI's parts: option key, OpenVPN directive, whether required, what it is, and the PEM header it must have. */
export const PKI_KEYS = [
  { key: 'ca', directive: 'ca', required: true, what: 'the CA certificate clients are checked against', pem: /-----BEGIN CERTIFICATE-----/ },
  { key: 'cert', directive: 'cert', required: true, what: "the server's certificate", pem: /-----BEGIN CERTIFICATE-----/ },
  { key: 'key', directive: 'key', required: true, what: "the server's private key (unencrypted)", pem: /-----BEGIN (RSA |EC )?PRIVATE KEY-----/ },
  { key: 'crl', directive: 'crl-verify', required: false, what: 'the CA’s certificate revocation list', pem: /-----BEGIN X509 CRL-----/ },
  { key: 'dh', directive: 'dh', required: false, what: "Diffie-Hellman parameters ('none' for ECDH only, the default)", pem: /-----BEGIN DH PARAMETERS-----/ },
  { key: 'tlsCrypt', directive: 'tls-crypt', required: false, what: 'the tls-crypt key (openvpn --genkey tls-crypt)', pem: /-----BEGIN OpenVPN Static key V1-----/ },
  { key: 'tlsAuth', directive: 'tls-auth', required: false, what: 'the tls-auth key (openvpn --genkey tls-auth; used with direction 0)', pem: /-----BEGIN OpenVPN Static key V1-----/ },
  { key: 'tlsCryptV2', directive: 'tls-crypt-v2', required: false, what: 'the tls-crypt-v2 server key (openvpn --genkey tls-crypt-v2-server)', pem: /-----BEGIN OpenVPN tls-crypt-v2 server key-----/ },
] as const;

/** A part of the PKI (an option key of `pki`). */
export type PkiKey = 'ca' | 'cert' | 'key' | 'crl' | 'dh' | 'tlsCrypt' | 'tlsAuth' | 'tlsCryptV2';
/** The PKI as given: each part a path or PEM text. */
export type Pki = { ca: string; cert: string; key: string } & Partial<Record<Exclude<PkiKey, 'ca' | 'cert' | 'key'>, string>>;

const isPem = (v: string) => v.trimStart().startsWith('-----BEGIN');

/**
 * Checks every part: PEM text must be of its kind (certificates and the key must parse, the key be
 * the certificate's and unencrypted), a path must be absolute and name a readable file of its
 * kind. With `netns`, only paths the node sees elsewhere than the host (`/etc/netns/<node>/…`)
 * are checked again, in the node's view. Throws an InvalidArgumentError with every problem.
 */
export function checkPki(field: string, pki: Pki, user?: string, netns?: string): Pki {
  const problems: { field: string; message: string }[] = [];
  const text: Partial<Record<PkiKey, string>> = {};
  for (const p of PKI_KEYS) {
    const v = pki[p.key];
    const f = `${field}.${p.key}`;
    if (v === undefined) continue;
    if (p.key === 'dh' && v === 'none') continue;
    if (v.includes('\0')) {
      problems.push({ field: f, message: 'must not contain NUL characters' });
      continue;
    }
    if (isPem(v)) {
      if (netns) continue;
      if (/<\/?[a-z-]+>/i.test(v)) problems.push({ field: f, message: 'must be PEM text only, without inline-file tags such as </ca>' });
      else if (!p.pem.test(v)) problems.push({ field: f, message: `is PEM, but not ${p.what} (${p.pem.source.replace(/\\/g, '').replace(/\(RSA \|EC \)\?/, '')} expected)` });
      else text[p.key] = v;
      continue;
    }
    if (!isAbsolute(v) || v.includes('\n')) {
      problems.push({ field: f, message: `${show(v)} must be ${p.what} as an absolute path (e.g. /etc/openvpn/server/${p.key === 'crl' ? 'crl.pem' : `${p.key}.crt`}) or the PEM text itself` });
      continue;
    }
    const seen = nodeView(v, netns);
    if (netns && seen === v) continue;
    const where = seen === v ? v : `${v} (seen as ${seen} in node namespace ${netns})`;
    try {
      if (!statSync(seen).isFile()) {
        problems.push({ field: f, message: `${where} is not a regular file; give the file of ${p.what}` });
        continue;
      }
      const content = readFileSync(seen, 'utf8');
      if (!p.pem.test(content)) problems.push({ field: f, message: `${where} does not hold ${p.what} (no ${p.pem.source.replace(/\\/g, '').replace(/\(RSA \|EC \)\?/, '')} in it)` });
      else text[p.key] = content;
      if (p.key === 'crl' && user !== undefined && (statSync(seen).mode & 0o004) === 0)
        problems.push({ field: f, message: `${where} is not readable by others, and OpenVPN reads the CRL again at every connection after switching to user '${user}'; chmod o+r it` });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      problems.push({ field: f, message: `${where}: ${code === 'ENOENT' ? 'no such file; create it or fix the path' : `cannot read it (${code})`}` });
    }
  }
  // The server's certificate and key must parse and belong together; a CA must be a certificate.
  let cert: X509Certificate | undefined;
  for (const k of ['ca', 'cert'] as const) {
    const t = text[k];
    if (!t) continue;
    try {
      const c = new X509Certificate(t);
      if (k === 'cert') cert = c;
    } catch (e) {
      problems.push({ field: `${field}.${k}`, message: `is not a valid certificate (${(e as Error).message.slice(0, 80)})` });
    }
  }
  if (text.key) {
    if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(text.key))
      problems.push({ field: `${field}.key`, message: 'is encrypted: OpenVPN would stop at start to ask for its passphrase; give the key unencrypted (readable by root only)' });
    else
      try {
        const key = createPrivateKey(text.key);
        if (cert && !cert.checkPrivateKey(key)) problems.push({ field: `${field}.key`, message: "is not the private key of cert: give the certificate's own key" });
      } catch (e) {
        problems.push({ field: `${field}.key`, message: `is not a valid private key (${(e as Error).message.slice(0, 80)})` });
      }
  }
  if (problems.length) throw new InvalidArgumentError(problems[0].field, problems[0].message, problems);
  return pki;
}

/** The server directives for a checked PKI: a path as the directive's file, PEM text inline. */
export function pkiLines(pki: Pki): string[] {
  const out: string[] = [];
  for (const p of PKI_KEYS) {
    const v = pki[p.key];
    if (v === undefined) continue;
    if (isPem(v)) {
      out.push(`<${p.directive}>`, v.trim(), `</${p.directive}>`);
      if (p.key === 'tlsAuth') out.push('key-direction 0');
    } else out.push(`${p.directive} ${quoteParam(v)}${p.key === 'tlsAuth' ? ' 0' : ''}`);
  }
  if (pki.dh === undefined) out.push('dh none');
  return out;
}
