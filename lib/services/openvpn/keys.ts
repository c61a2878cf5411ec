/**
 * Throwaway key material for OpenVPN 2.6 peer-fingerprint mode: each side has a self-signed EC
 * certificate and trusts the other's SHA-256 fingerprint; there is no CA. Generated in-process
 * (WebCrypto + @peculiar/x509), never with the openssl CLI.
 * @module
 */
import { createHash, KeyObject, webcrypto, X509Certificate } from 'node:crypto';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError } from '../../util/errors.js';
import { show } from '../../util/shape.js';

export interface Identity {
  /** The self-signed certificate, PEM. */
  certPem: string;
  /** The PKCS#8 private key, PEM (`-----BEGIN PRIVATE KEY-----`). */
  keyPem: string;
  /** SHA-256 of the certificate's DER, as OpenVPN's `peer-fingerprint` and `openssl x509 -fingerprint -sha256` write it: `AB:CD:...`. */
  fingerprint: string;
}

export interface GenerateIdentityOptions {
  /** Validity in days from now (the certificate is also valid from one hour ago, for clock skew). Default 3650. */
  days?: number;
}

type X509Module = typeof import('@peculiar/x509');
let x509Module: Promise<X509Module> | undefined;

/**
 * Loaded on first use: @peculiar/x509 2.x needs a Reflect metadata polyfill installed first, and
 * only callers that generate keys should pay for that global.
 */
function loadX509(): Promise<X509Module> {
  x509Module ??= (async () => {
    await import('reflect-metadata');
    const x509 = await import('@peculiar/x509');
    x509.cryptoProvider.set(webcrypto as unknown as Crypto);
    return x509;
  })();
  return x509Module;
}

/** `AB:CD:...`: upper-case hex bytes joined by colons, as OpenVPN prints and expects fingerprints. */
export function formatFingerprint(digest: Uint8Array): string {
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0').toUpperCase()).join(':');
}

/** The SHA-256 fingerprint of a PEM certificate, in OpenVPN's `AB:CD:...` format. */
export function fingerprintOf(certPem: string): string {
  const der = new X509Certificate(certPem).raw;
  return formatFingerprint(createHash('sha256').update(der).digest());
}

/** What a SHA-256 fingerprint looks like (the options' schema uses the same pattern). */
export const FINGERPRINT_PATTERN = '^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){31}$';
const FINGERPRINT = new RegExp(FINGERPRINT_PATTERN);

/** A SHA-256 fingerprint: 32 colon-separated hex bytes. Returns it upper-cased. */
export function checkFingerprint(field: string, fp: unknown): string {
  if (typeof fp !== 'string' || !FINGERPRINT.test(fp))
    throw new InvalidArgumentError(field, `${show(fp)} is not a SHA-256 fingerprint; write it as 32 hex bytes joined by ':' (AB:CD:...)`);
  return fp.toUpperCase();
}

/**
 * A fresh P-256 key and a self-signed certificate for `commonName` (usable as server and client:
 * digitalSignature, serverAuth + clientAuth), with its fingerprint.
 */
export async function generateIdentity(commonName: string, options: GenerateIdentityOptions = {}): Promise<Identity> {
  if (typeof commonName !== 'string' || commonName.length === 0 || commonName.length > 64 || /[\0\n\r,/=+"\\<>;]/.test(commonName))
    throw new InvalidArgumentError('commonName', `${show(commonName)} must be 1 to 64 characters without , / = + " \\ < > ; or newlines`);
  const days = options.days ?? 3650;
  if (!Number.isInteger(days) || days < 1 || days > 36500) throw new InvalidArgumentError('days', `must be an integer from 1 to 36500, got ${String(days)}`);

  const x509 = await loadX509();
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const serial = Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)));
  serial[0] &= 0x7f; // a positive INTEGER
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toString('hex'),
    name: [{ CN: [commonName] }],
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + days * 86400_000),
    signingAlgorithm: alg,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
    ],
  });
  const certPem = cert.toString('pem') + '\n';
  const keyPem = KeyObject.from(keys.privateKey as unknown as webcrypto.CryptoKey).export({ type: 'pkcs8', format: 'pem' }) as string;
  const fingerprint = formatFingerprint(new Uint8Array(await cert.getThumbprint('SHA-256')));
  return { certPem, keyPem, fingerprint };
}

/**
 * Writes a secret file with mode 0600 from the start (never briefly world-readable), replacing
 * the content of an existing file and resetting its mode.
 */
export async function writeSecretFile(path: string, content: string): Promise<void> {
  const fh = await open(path, 'w', 0o600);
  try {
    await fh.chmod(0o600); // the file may have existed with a wider mode
    await fh.writeFile(content);
  } finally {
    await fh.close();
  }
}

/** Writes `<name>.crt` and `<name>.key` into `dir`, both 0600. Returns their paths. */
export async function writeIdentity(dir: string, name: string, identity: Identity): Promise<{ certPath: string; keyPath: string }> {
  if (typeof name !== 'string' || !/^[A-Za-z0-9._-]+$/.test(name) || name.startsWith('.'))
    throw new InvalidArgumentError('name', `${show(name)} must be a plain file name (letters, digits, . _ -)`);
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  await writeSecretFile(certPath, identity.certPem);
  await writeSecretFile(keyPath, identity.keyPem);
  return { certPath, keyPath };
}
