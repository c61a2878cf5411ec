/**
 * Argument checks shared by the whole library. Each throws an {@link InvalidArgumentError} that
 * names the field and says how to fix it.
 * @module
 */
import { isIP } from 'node:net';
import { InvalidArgumentError } from './errors.js';
import { got, show } from './shape.js';

/** IFNAMSIZ - 1: the kernel's limit for interface names, in bytes. */
export const MAX_IFNAME_BYTES = 15;

export { got, show };

// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;

export function checkIfname(field: string, name: unknown): string {
  if (typeof name !== 'string' || name.length === 0)
    throw new InvalidArgumentError(field, `an interface name must be a non-empty string, ${got(name)}`);
  const bytes = Buffer.byteLength(name);
  if (bytes > MAX_IFNAME_BYTES)
    throw new InvalidArgumentError(
      field,
      `interface name ${show(name)} is ${bytes} bytes; the kernel allows at most ${MAX_IFNAME_BYTES}`,
    );
  // '%' is refused because the kernel turns '%d' in a new link's name into a free number.
  if (/[\/\s:%]/.test(name) || CONTROL.test(name) || name === '.' || name === '..')
    throw new InvalidArgumentError(
      field,
      `interface name ${show(name)} must not contain '/', ':', '%', spaces or control characters, nor be '.' or '..'`,
    );
  return name;
}

/** A link given by name or by index. */
export function checkLinkRef(field: string, link: unknown): string | number {
  if (typeof link === 'number') {
    if (!Number.isInteger(link) || link < 1 || link > 0x7fffffff)
      throw new InvalidArgumentError(field, `an interface index must be a positive integer, got ${show(link)}`);
    return link;
  }
  return checkIfname(field, link);
}

/** IFALIASZ - 1: the kernel's limit for interface aliases, in bytes. */
export const MAX_ALIAS_BYTES = 255;

/** An interface alias (IFLA_IFALIAS): a string without NUL, at most 255 bytes; '' only when `allowEmpty` (it clears). */
export function checkAlias(field: string, alias: unknown, allowEmpty = false): string {
  if (typeof alias !== 'string') throw new InvalidArgumentError(field, `an interface alias must be a string, ${got(alias)}`);
  if (alias.includes('\0')) throw new InvalidArgumentError(field, 'an interface alias must not contain NUL characters');
  const bytes = Buffer.byteLength(alias);
  if (bytes > MAX_ALIAS_BYTES)
    throw new InvalidArgumentError(field, `an interface alias is at most ${MAX_ALIAS_BYTES} bytes, got ${bytes}`);
  if (!allowEmpty && bytes === 0) throw new InvalidArgumentError(field, 'an interface alias must not be empty (leave it out instead)');
  return alias;
}

export function checkNetnsName(field: string, name: unknown): string {
  if (typeof name !== 'string' || name.length === 0)
    throw new InvalidArgumentError(field, `a namespace name must be a non-empty string, ${got(name)}`);
  if (name.includes('/') || name === '.' || name === '..' || CONTROL.test(name))
    throw new InvalidArgumentError(field, `namespace name ${show(name)} must not contain '/' or control characters, nor be '.' or '..'`);
  if (Buffer.byteLength(name) > 255) throw new InvalidArgumentError(field, 'namespace name is longer than 255 bytes');
  return name;
}

export function checkMac(field: string, mac: unknown): string {
  if (typeof mac !== 'string' || !/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(mac))
    throw new InvalidArgumentError(field, `${show(mac)} is not a MAC address; write it as 02:00:00:00:00:01`);
  return mac.toLowerCase();
}

export function checkIp(field: string, ip: unknown): { address: string; family: 4 | 6 } {
  const family = typeof ip === 'string' ? isIP(ip) : 0;
  if (family === 0) throw new InvalidArgumentError(field, `${show(ip)} is not an IPv4 or IPv6 address`);
  return { address: ip as string, family: family as 4 | 6 };
}

/** An IP family selector: 4 or 6. */
export function checkFamily(field: string, v: unknown): 4 | 6 {
  if (v !== 4 && v !== 6) throw new InvalidArgumentError(field, `an IP family must be 4 or 6, ${got(v, 'integer')}`);
  return v;
}

export interface Cidr {
  address: string;
  prefix: number;
  family: 4 | 6;
}

/** "192.0.2.1/24" or "2001:db8::1/64"; a bare address gets /32 or /128 unless `requirePrefix`. */
export function checkCidr(field: string, cidr: unknown, requirePrefix = false): Cidr {
  if (typeof cidr !== 'string')
    throw new InvalidArgumentError(field, `expected an address with prefix such as 192.0.2.1/24, ${got(cidr)}`);
  const [address, prefixText, extra] = cidr.split('/');
  const family = isIP(address);
  if (family === 0 || extra !== undefined)
    throw new InvalidArgumentError(field, `${show(cidr)} is not an address with prefix such as 192.0.2.1/24 or 2001:db8::1/64`);
  const max = family === 4 ? 32 : 128;
  if (prefixText === undefined) {
    if (requirePrefix) throw new InvalidArgumentError(field, `${show(cidr)} needs a prefix length, e.g. ${cidr}/${family === 4 ? 24 : 64}`);
    return { address, prefix: max, family: family as 4 | 6 };
  }
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max)
    throw new InvalidArgumentError(field, `prefix length in ${show(cidr)} must be 0 to ${max}`);
  return { address, prefix: Number(prefixText), family: family as 4 | 6 };
}

/** An on/off option: true or false (or left out), never a string such as 'false' that would read as true. */
export function checkBool(field: string, v: unknown): boolean | undefined {
  if (v === undefined) return undefined;
  if (v === true || v === false) return v;
  throw new InvalidArgumentError(field, `must be true or false, ${got(v, 'boolean')}`);
}

export function checkUint(field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw new InvalidArgumentError(field, `must be an integer from ${min} to ${max}, ${got(v, 'integer')}`);
  return v;
}

/** `net.ipv4.ip_forward` or `net/ipv6/conf/eth0.100/disable_ipv6` → a path under /proc/sys. */
export function sysctlPath(key: unknown): string {
  if (typeof key !== 'string' || key.length === 0) throw new InvalidArgumentError('key', `a sysctl key must be a non-empty string, ${got(key)}`);
  if (CONTROL.test(key))
    throw new InvalidArgumentError('key', `sysctl key ${show(key)} must not contain NUL or other control characters`);
  const path = key.includes('/') ? key.replace(/^\/?(proc\/sys\/)?/, '') : key.replaceAll('.', '/');
  if (!path.startsWith('net/') || path.split('/').some((p) => p === '' || p === '.' || p === '..'))
    throw new InvalidArgumentError(
      'key',
      `${show(key)} is not a per-namespace sysctl; use a net.* key such as net.ipv4.ip_forward (write keys containing dots in interface names with '/')`,
    );
  return path;
}

/** Something that holds a namespace handle (a Netns). Anything else would silently mean "the caller's own namespace". */
export function checkHandleHolder(field: string, v: unknown): void {
  const h = typeof v === 'object' && v !== null ? (v as { handle?: unknown }).handle : undefined;
  if (typeof h !== 'object' || h === null)
    throw new InvalidArgumentError(field, `expected a Netns (from Netns.create or Netns.open), ${got(v)}`);
}
