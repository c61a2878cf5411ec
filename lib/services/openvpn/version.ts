/**
 * Finding the OpenVPN binary and reading its version. The only process this runs is the binary
 * itself (`openvpn --version`), without a shell.
 * @module
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { InvalidArgumentError } from '../../util/errors.js';

/** Where `findOpenvpn` looks after `PATH`: Debian installs it in /usr/sbin, which a non-root PATH often lacks. */
const FALLBACK_DIRS = ['/usr/sbin', '/sbin', '/usr/local/sbin'];

const INSTALL_HINT = 'install it with `apt-get install openvpn` (Debian/Ubuntu) or pass `binary: "/path/to/openvpn"`';

export type OpenvpnErrorCode = 'ERR_OPENVPN_MISSING' | 'ERR_OPENVPN_TOO_OLD' | 'ERR_OPENVPN_VERSION_UNREADABLE';

/** OpenVPN is missing, too old, or its version could not be read. Match on `code`. */
export class OpenvpnError extends Error {
  readonly code: OpenvpnErrorCode;
  /** The binary that was tried, when there was one. */
  readonly binary?: string;
  constructor(code: OpenvpnErrorCode, message: string, binary?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'OpenvpnError';
    this.code = code;
    if (binary !== undefined) this.binary = binary;
  }
}

export interface OpenvpnVersion {
  /** e.g. `2.6.14`. */
  version: string;
  major: number;
  minor: number;
  patch: number;
  /** What follows the numbers, e.g. `_git` or `-rc1`; empty for a release. */
  suffix: string;
  /** The build triplet, e.g. `x86_64-pc-linux-gnu`. */
  platform: string;
  /** The bracketed build features, e.g. `['SSL (OpenSSL)', 'LZO', 'LZ4', 'EPOLL', 'DCO', ...]`. */
  features: string[];
  /** The SSL library line, e.g. `OpenSSL 3.0.19 27 Jan 2026`, when printed. */
  ssl?: string;
  /** `DCO version:` as printed (`N/A` when the kernel has no ovpn module), when printed. */
  dcoVersion?: string;
  /** The first line, verbatim. */
  banner: string;
}

/** Parses the output of `openvpn --version`. Returns null when it is not OpenVPN's. */
export function parseOpenvpnVersion(text: string): OpenvpnVersion | null {
  const lines = text.split('\n').map((l) => l.trim());
  const banner = lines.find((l) => l.startsWith('OpenVPN '));
  if (!banner) return null;
  const m = /^OpenVPN (\d+)\.(\d+)\.(\d+)(\S*)\s+(\S+)\s*(.*)$/.exec(banner);
  if (!m) return null;
  const features: string[] = [];
  // Brackets may nest one level: "[SSL (OpenSSL)]".
  for (const f of m[6].matchAll(/\[([^\]]+)\]/g)) features.push(f[1]);
  const out: OpenvpnVersion = {
    version: `${m[1]}.${m[2]}.${m[3]}`,
    major: Number(m[1]),
    minor: Number(m[2]),
    patch: Number(m[3]),
    suffix: m[4],
    platform: m[5],
    features,
    banner,
  };
  const lib = lines.find((l) => l.startsWith('library versions:'));
  if (lib) out.ssl = lib.slice('library versions:'.length).split(',')[0].trim();
  const dco = lines.find((l) => l.startsWith('DCO version:'));
  if (dco) out.dcoVersion = dco.slice('DCO version:'.length).trim();
  return out;
}

/** -1, 0 or 1 as `a` is older than, equal to or newer than `b` (both `X.Y.Z`). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The OpenVPN binary: `binary` itself when it contains a `/`, else the first executable `binary`
 * (default `openvpn`) on `PATH`, then in /usr/sbin, /sbin and /usr/local/sbin. Null when none.
 */
export function findOpenvpn(binary = 'openvpn', path = process.env.PATH ?? ''): string | null {
  if (binary.includes('/')) return isExecutableFile(binary) ? binary : null;
  const dirs = [...path.split(delimiter).filter((d) => d && isAbsolute(d)), ...FALLBACK_DIRS];
  for (const dir of dirs) {
    const candidate = join(dir, binary);
    if (isExecutableFile(candidate)) return candidate;
  }
  return null;
}

/** Runs `<binary> --version` (no shell) and parses it. */
export function readOpenvpnVersion(binary: string, options: { timeoutMs?: number } = {}): Promise<OpenvpnVersion> {
  return new Promise((resolve, reject) => {
    execFile(
      binary,
      ['--version'],
      { timeout: options.timeoutMs ?? 10_000, encoding: 'utf8', maxBuffer: 1 << 20, env: { ...process.env, LC_ALL: 'C' } },
      (err, stdout, stderr) => {
        // Older releases exit with status 1 after printing the version: judge by the output.
        const parsed = parseOpenvpnVersion(`${stdout}\n${stderr}`);
        if (parsed) return resolve(parsed);
        const code = (err as NodeJS.ErrnoException | null)?.code;
        if (code === 'ENOENT' || code === 'EACCES')
          return reject(new OpenvpnError('ERR_OPENVPN_MISSING', `cannot run '${binary}' (${code}); ${INSTALL_HINT}`, binary, { cause: err }));
        reject(
          new OpenvpnError(
            'ERR_OPENVPN_VERSION_UNREADABLE',
            `'${binary} --version' did not print an OpenVPN version${err ? ` (${err.message.split('\n')[0]})` : ''}; is it OpenVPN? ${INSTALL_HINT}`,
            binary,
            err ? { cause: err } : undefined,
          ),
        );
      },
    );
  });
}

export interface CheckOpenvpnOptions {
  /** A path, or a name looked up on PATH (then /usr/sbin, /sbin). Default `openvpn`. */
  binary?: string;
  /** The oldest acceptable version, `X.Y.Z`. Default `2.6.0` (peer-fingerprint needs 2.6). */
  minimum?: string;
  timeoutMs?: number;
}

/**
 * Finds OpenVPN and checks it is recent enough. Rejects with an {@link OpenvpnError} whose `code` is
 * `ERR_OPENVPN_MISSING` or `ERR_OPENVPN_TOO_OLD` and whose message says how to fix it.
 */
export async function checkOpenvpn(options: CheckOpenvpnOptions = {}): Promise<{ binary: string; version: OpenvpnVersion }> {
  const minimum = options.minimum ?? '2.6.0';
  if (typeof minimum !== 'string' || !/^\d+\.\d+\.\d+$/.test(minimum))
    throw new InvalidArgumentError('minimum', `'${String(minimum)}' is not a version; write it as 2.6.0`);
  const wanted = options.binary ?? 'openvpn';
  if (typeof wanted !== 'string' || wanted.length === 0)
    throw new InvalidArgumentError('binary', 'must be a non-empty path or command name');
  const binary = findOpenvpn(wanted);
  if (!binary) {
    const where = wanted.includes('/') ? `'${wanted}' is not an executable file` : `'${wanted}' was not found on PATH nor in ${FALLBACK_DIRS.join(', ')}`;
    throw new OpenvpnError('ERR_OPENVPN_MISSING', `OpenVPN is missing: ${where}; ${INSTALL_HINT}`, wanted.includes('/') ? wanted : undefined);
  }
  const version = await readOpenvpnVersion(binary, { timeoutMs: options.timeoutMs });
  if (compareVersions(version.version, minimum) < 0)
    throw new OpenvpnError(
      'ERR_OPENVPN_TOO_OLD',
      `OpenVPN ${version.version} at ${binary} is older than ${minimum}, the oldest this needs (peer-fingerprint mode came with 2.6); ` +
        'upgrade it: `apt-get install openvpn` on Debian 12 / Ubuntu 24.04 or later gives 2.6, or use the packages from the OpenVPN project',
      binary,
    );
  return { binary, version };
}
