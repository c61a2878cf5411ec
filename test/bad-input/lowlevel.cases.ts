// The low-level API: Netns, Batch, links, addresses, routes, neighbours, sysctls, nftables and the
// addon's own entry points (native handles, submit, locks). Every bad call runs against a scratch
// namespace of the case's own (never the caller's), so even an accepted one could not touch the host.
import { binding, type NativeOp } from '../../lib/kernel/binding.js';
import { Batch, Netns } from '../../lib/index.js';
import { NftTransaction, enc, fields, listRules, listTables, loadConcat, match, matchPrefix, priorityOf, requireProto, verdict } from '../../lib/rules/nft.js';
import { type BadInputCase, type CaseContext, inNs } from './types.js';

const VALUE = 'ERR_INVALID_ARG_VALUE';
const TYPE = 'ERR_INVALID_ARG_TYPE';


/** The addon's submit, with the op aimed at the case's namespace. */
const submit = (ctx: CaseContext, op: Record<string, unknown>) =>
  inNs(ctx, (ns) => binding().submit([{ netns: ns.handle, ...op } as NativeOp], true));

const tx = (ctx: CaseContext, build: (t: NftTransaction) => NftTransaction) => inNs(ctx, (ns) => build(new NftTransaction(ns)).commit());

const WHAT_IFNAME = /must not contain '\/', ':', '%', spaces or control characters/;
const c = (name: string, run: BadInputCase['run'], code: string, field: string | undefined, message: RegExp): BadInputCase => ({
  name,
  run,
  expect: { code, ...(field !== undefined ? { field } : {}), message },
});

export const cases: BadInputCase[] = [
  // ---- namespaces
  c('Netns.create: empty name', () => Netns.create(''), VALUE, 'name', /a namespace name must be a non-empty string/),
  c('Netns.create: a slash', (x) => Netns.create(`${x.prefix}/x`), VALUE, 'name', /must not contain '\/' or control characters/),
  c('Netns.create: ..', () => Netns.create('..'), VALUE, 'name', /nor be '\.' or '\.\.'/),
  c('Netns.create: a newline', (x) => Netns.create(`${x.prefix}\nx`), VALUE, 'name', /must not contain '\/' or control characters/),
  c('Netns.create: a number', () => Netns.create(42 as never), VALUE, 'name', /must be a non-empty string, got 42/),
  c('Netns.create: 300 bytes', (x) => Netns.create(x.prefix + 'n'.repeat(300)), VALUE, 'name', /longer than 255 bytes/),
  c('Netns.create: mark with NUL', (x) => Netns.create(`${x.prefix}a`, { mark: 'a\0b' }), VALUE, 'mark', /must not contain NUL/),
  c('Netns.create: mark of 256 bytes', (x) => Netns.create(`${x.prefix}a`, { mark: 'm'.repeat(256) }), VALUE, 'mark', /at most 255 bytes, got 256/),
  c('Netns.create: empty mark', (x) => Netns.create(`${x.prefix}a`, { mark: '' }), VALUE, 'mark', /must not be empty \(leave it out instead\)/),
  c('Netns.create: mark is a number', (x) => Netns.create(`${x.prefix}a`, { mark: 7 as never }), VALUE, 'mark', /must be a string, got 7/),
  c('Netns.create: options null', (x) => Netns.create(`${x.prefix}a`, null as never), VALUE, 'options', /expected an options object such as \{ mark \}/),
  c('Netns.createMany: a string', (x) => Netns.createMany(x.prefix as never), VALUE, 'names', /expected an array of namespace names, got (the string )?/),
  c('Netns.createMany: one bad name among good ones', (x) => Netns.createMany([`${x.prefix}a`, `${x.prefix}/b`]), VALUE, 'names[1]', /must not contain '\/'/),
  c('Netns.open: a number', () => Netns.open(3 as never), VALUE, 'nameOrPath', /expected a namespace name or a path such as \/proc\/PID\/ns\/net/),
  c('Netns.open: a path with NUL', () => Netns.open('/proc/self/ns/net\0x'), VALUE, 'nameOrPath', /no NUL characters/),
  c('Netns.readMark: a slash', () => Netns.readMark('a/b'), VALUE, 'name', /must not contain '\/'/),
  c('Netns.deleteMany: not an array', (x) => Netns.deleteMany(x.prefix as never), VALUE, 'targets', /expected an array of names or Netns handles/),
  c('Netns.deleteMany: a plain object', () => Netns.deleteMany([{} as never]), VALUE, 'targets', /expected namespace names or Netns handles, got an object/),
  c('a closed Netns', (x) => inNs(x, async (ns) => { await ns.close(); return ns.listLinks(); }), VALUE, 'netns', /is closed; open it again with Netns\.open/),

  // ---- links
  c('addBridge: %d in the name', (x) => inNs(x, (ns) => ns.addBridge({ name: 'br%d' })), VALUE, 'name', WHAT_IFNAME),
  c('addBridge: NUL in the name', (x) => inNs(x, (ns) => ns.addBridge({ name: 'br\0x' })), VALUE, 'name', WHAT_IFNAME),
  c('addBridge: a tab in the name', (x) => inNs(x, (ns) => ns.addBridge({ name: 'br\tx' })), VALUE, 'name', WHAT_IFNAME),
  c('addBridge: DEL in the name', (x) => inNs(x, (ns) => ns.addBridge({ name: 'br\x7f' })), VALUE, 'name', WHAT_IFNAME),
  c('addBridge: 16-byte name', (x) => inNs(x, (ns) => ns.addBridge({ name: 'b'.repeat(16) })), VALUE, 'name', /is 16 bytes; the kernel allows at most 15/),
  c('addBridge: empty name', (x) => inNs(x, (ns) => ns.addBridge({ name: '' })), VALUE, 'name', /must be a non-empty string/),
  c('addBridge: 10 MB name is not echoed', (x) => inNs(x, (ns) => ns.addBridge({ name: 'b'.repeat(10_000_000) })), VALUE, 'name', /^name: interface name 'b{59,60}…' (\(10000000 characters\) )?is 10000000 bytes/),
  c('addBridge: options null', (x) => inNs(x, (ns) => ns.addBridge(null as never)), VALUE, 'bridge', /expected an options object, got null/),
  c('addBridge: index 0', (x) => inNs(x, (ns) => ns.addBridge({ name: 'br0', index: 0 })), VALUE, 'index', /must be an integer from 1 to 2147483647/),
  c('addBridge: alias with NUL', (x) => inNs(x, (ns) => ns.addBridge({ name: 'br0', alias: 'a\0' })), VALUE, 'bridge.alias', /must not contain NUL/),
  c('addBridge: alias of 256 bytes', (x) => inNs(x, (ns) => ns.addBridge({ name: 'br0', alias: 'é'.repeat(128) })), VALUE, 'bridge.alias', /at most 255 bytes, got 256/),
  c('addBridge: alias is a number', (x) => inNs(x, (ns) => ns.addBridge({ name: 'br0', alias: 1 as never })), VALUE, 'bridge.alias', /must be a string, got 1/),
  c('addVeth: empty alias on create', (x) => inNs(x, (ns) => ns.addVeth({ name: 'v0', alias: '', peer: { name: 'v1' } })), VALUE, 'veth.alias', /must not be empty/),
  c('addVeth: peer alias too long', (x) => inNs(x, (ns) => ns.addVeth({ name: 'v0', peer: { name: 'v1', alias: 'p'.repeat(300) } })), VALUE, 'peer.alias', /at most 255 bytes/),
  c('addVeth: %d in the peer name', (x) => inNs(x, (ns) => ns.addVeth({ name: 'v0', peer: { name: 'p%d' } })), VALUE, 'peer.name', WHAT_IFNAME),
  c('addVeth: no peer', (x) => inNs(x, (ns) => ns.addVeth({ name: 'v0' } as never)), VALUE, 'peer', /expected an options object, got nothing/),
  c('addVeth: peer.netns is a plain object', (x) => inNs(x, (ns) => ns.addVeth({ name: 'v0', peer: { name: 'v1', netns: {} as never } })), VALUE, 'peer.netns', /expected a Netns \(from Netns\.create or Netns\.open\)/),
  c('addVeth: bad peer MAC', (x) => inNs(x, (ns) => ns.addVeth({ name: 'v0', peer: { name: 'v1', mac: '02:00' } })), VALUE, 'peer.mac', /write it as 02:00:00:00:00:01/),
  c('setLink: rename to %d', (x) => inNs(x, (ns) => ns.setLink('lo', { name: 'x%d' })), VALUE, 'name', WHAT_IFNAME),
  c('setLink: alias of 256 bytes', (x) => inNs(x, (ns) => ns.setLink('lo', { alias: 'a'.repeat(256) })), VALUE, 'changes.alias', /at most 255 bytes, got 256/),
  c('setLink: MTU 10', (x) => inNs(x, (ns) => ns.setLink('lo', { mtu: 10 })), VALUE, 'changes.mtu', /must be an integer from 68 to 65535, got 10/),
  c("setLink: MTU as the string '1500'", (x) => inNs(x, (ns) => ns.setLink('lo', { mtu: '1500' as never })), VALUE, 'changes.mtu', /got (the string )?'1500'/),
  c('setLink: netns is a plain object', (x) => inNs(x, (ns) => ns.setLink('lo', { netns: {} as never })), VALUE, 'changes.netns', /expected a Netns/),
  c('setLink: link index 0', (x) => inNs(x, (ns) => ns.setLink(0, { up: true })), VALUE, 'link', /must be a positive integer, got 0/),
  c('setLink: changes null', (x) => inNs(x, (ns) => ns.setLink('lo', null as never)), VALUE, 'changes', /expected an options object/),
  c('deleteLink: negative index', (x) => inNs(x, (ns) => ns.deleteLink(-1)), VALUE, 'link', /must be a positive integer/),
  c('getLink: NUL in the name', (x) => inNs(x, (ns) => ns.getLink('lo\0')), VALUE, 'link', WHAT_IFNAME),

  // ---- addresses
  c('addAddress: octet 300', (x) => inNs(x, (ns) => ns.addAddress('lo', '192.0.2.300/24')), VALUE, 'address', /is not an address with prefix such as 192\.0\.2\.1\/24/),
  c('addAddress: prefix 33', (x) => inNs(x, (ns) => ns.addAddress('lo', '192.0.2.1/33')), VALUE, 'address', /must be 0 to 32/),
  c('addAddress: a number', (x) => inNs(x, (ns) => ns.addAddress('lo', 12 as never)), VALUE, 'address', /such as 192\.0\.2\.1\/24, got 12/),
  c("addAddress: nodad 'yes'", (x) => inNs(x, (ns) => ns.addAddress('lo', '192.0.2.1/24', { nodad: 'yes' as never })), VALUE, 'options.nodad', /must be true or false/),
  c('listAddresses: family 5', (x) => inNs(x, (ns) => ns.listAddresses({ family: 5 as never })), VALUE, 'family', /an IP family must be 4 or 6, got 5/),
  c('listAddresses: link with %', (x) => inNs(x, (ns) => ns.listAddresses({ link: 'a%b' })), VALUE, 'link', WHAT_IFNAME),

  // ---- routes
  c('addRoute: family 5', (x) => inNs(x, (ns) => ns.addRoute({ destination: 'default', dev: 'lo', family: 5 as never })), VALUE, 'family', /must be 4 or 6/),
  c('addRoute: family 6 for an IPv4 destination', (x) => inNs(x, (ns) => ns.addRoute({ destination: '10.0.0.0/8', dev: 'lo', family: 6 })), VALUE, 'family', /does not match the destination .* leave family out/),
  c('addRoute: destination without prefix', (x) => inNs(x, (ns) => ns.addRoute({ destination: '10.0.0.0', dev: 'lo' })), VALUE, 'destination', /needs a prefix length, e\.g\. 10\.0\.0\.0\/24/),
  c('addRoute: IPv6 gateway, IPv4 destination', (x) => inNs(x, (ns) => ns.addRoute({ destination: '10.0.0.0/8', via: '2001:db8::1' })), VALUE, 'via', /gateway 2001:db8::1 is IPv6 but the destination is IPv4/),
  c('addRoute: neither via nor dev', (x) => inNs(x, (ns) => ns.addRoute({ destination: '10.0.0.0/8' })), VALUE, 'route', /give a gateway \(via\) or an output interface \(dev\)/),
  c('addRoute: metric -1', (x) => inNs(x, (ns) => ns.addRoute({ destination: '10.0.0.0/8', dev: 'lo', metric: -1 })), VALUE, 'metric', /from 0 to 4294967295/),
  c('addRoute: table 0', (x) => inNs(x, (ns) => ns.addRoute({ destination: '10.0.0.0/8', dev: 'lo', table: 0 })), VALUE, 'table', /from 1 to 4294967295/),
  c('addRoute: bad source', (x) => inNs(x, (ns) => ns.addRoute({ destination: '10.0.0.0/8', dev: 'lo', source: 'nope' })), VALUE, 'source', /'nope' is not an IPv4 or IPv6 address/),
  c("listRoutes: family '6'", (x) => inNs(x, (ns) => ns.listRoutes({ family: '6' as never })), VALUE, 'family', /got (the string )?'6'/),
  c('listRoutes: table -1', (x) => inNs(x, (ns) => ns.listRoutes({ table: -1 })), VALUE, 'table', /from 0 to 4294967295/),

  // ---- neighbours
  c('addNeighbour: bad MAC', (x) => inNs(x, (ns) => ns.addNeighbour('lo', '192.0.2.1', 'zz:00:00:00:00:01')), VALUE, 'mac', /write it as 02:00:00:00:00:01/),
  c('addNeighbour: bad address', (x) => inNs(x, (ns) => ns.addNeighbour('lo', '192.0.2', '02:00:00:00:00:01')), VALUE, 'address', /is not an IPv4 or IPv6 address/),
  c('listNeighbours: options null', (x) => inNs(x, (ns) => ns.listNeighbours(null as never)), VALUE, 'options', /expected an options object, got null/),

  // ---- sysctls
  c('readSysctl: not net.*', (x) => inNs(x, (ns) => ns.readSysctl('kernel.hostname')), VALUE, 'key', /use a net\.\* key such as net\.ipv4\.ip_forward/),
  c('readSysctl: NUL in the key', (x) => inNs(x, (ns) => ns.readSysctl('net.ipv4.ip_forward\0')), VALUE, 'key', /must not contain NUL or other control characters/),
  c('readSysctl: a newline in the key', (x) => inNs(x, (ns) => ns.readSysctl('net/ipv4/conf/a\nb/forwarding')), VALUE, 'key', /must not contain NUL or other control characters/),
  c('readSysctl: ..', (x) => inNs(x, (ns) => ns.readSysctl('net/../../etc/passwd')), VALUE, 'key', /is not a per-namespace sysctl/),
  c('writeSysctl: two lines', (x) => inNs(x, (ns) => ns.writeSysctl('net.ipv4.ip_forward', '1\n0')), VALUE, 'value', /must be one line/),
  c('writeSysctl: NaN', (x) => inNs(x, (ns) => ns.writeSysctl('net.ipv4.ip_forward', NaN)), VALUE, 'value', /must be a finite number/),
  c('writeSysctl: an object', (x) => inNs(x, (ns) => ns.writeSysctl('net.ipv4.ip_forward', {} as never)), VALUE, 'value', /a string, a number or a boolean, got an object/),

  // ---- Batch
  c('Batch.in: a plain object', () => new Batch().in({} as never), VALUE, 'netns', /Batch\.in expects a Netns \(from Netns\.create or Netns\.open\), got an object/),
  c('Batch.in: undefined', () => new Batch().in(undefined as never), VALUE, 'netns', /Batch\.in expects a Netns/),
  c('Batch.in: an object with a forged handle', () => new Batch().in({ handle: {}, closed: false } as never), VALUE, 'netns', /Batch\.in expects a Netns/),
  c('Batch.in: a closed Netns', (x) => inNs(x, async (ns) => { await ns.close(); return new Batch().in(ns); }), VALUE, 'netns', /is closed; open it again/),
  c('Batch: a bad op while queueing', (x) => inNs(x, (ns) => new Batch().in(ns).addBridge({ name: 'ok' }).addBridge({ name: 'x%d' })), VALUE, 'name', WHAT_IFNAME),

  // ---- nftables
  c('NftTransaction: a plain object', () => new NftTransaction({} as never), VALUE, 'netns', /expected a Netns .* or undefined for the caller's own namespace/),
  c('listRules: a plain object', () => listRules({} as never, 'ip', 't'), VALUE, 'netns', /expected a Netns/),
  c('listTables: family ipx', (x) => inNs(x, (ns) => listTables(ns, 'ipx' as never)), VALUE, 'family', /'ipx' is not an nftables family; use one of ip, ip6, inet/),
  c('addTable: comment with NUL', (x) => tx(x, (t) => t.addTable('ip', 't', { comment: 'a\0b' })), VALUE, 'commands[0]', /comment must not contain NUL/),
  c('addTable: comment of 128 bytes', (x) => tx(x, (t) => t.addTable('ip', 't', { comment: 'c'.repeat(128) })), VALUE, 'commands[0]', /comment is 128 bytes; nft allows at most 127/),
  c("addTable: exclusive 'yes'", (x) => tx(x, (t) => t.addTable('ip', 't', { exclusive: 'yes' as never })), VALUE, 'commands[0]', /exclusive must be true or false/),
  c('addTable: family ipx', (x) => tx(x, (t) => t.addTable('ipx' as never, 't')), VALUE, 'commands[0].family', /unknown value 'ipx' \(expected one of: .*inet/),
  c('addTable: 300-byte name', (x) => tx(x, (t) => t.addTable('ip', 't'.repeat(300))), VALUE, 'commands[0]', /name must be 1\.\.255 bytes/),
  c('deleteTable: handle 0', (x) => tx(x, (t) => t.deleteTable('ip', 't', { handle: 0 })), VALUE, 'commands[0]', /handle must be a positive integer \(from listRules\/listTables\)/),
  c('deleteTable: handle 1.5', (x) => tx(x, (t) => t.deleteTable('ip', 't', { handle: 1.5 })), VALUE, 'commands[0]', /handle must be a positive integer/),
  c("deleteRule: handle '3'", (x) => tx(x, (t) => t.deleteRule('ip', 't', 'c', '3' as never)), VALUE, 'commands[0]', /handle must be a number/),
  c('addChain: hook sideways', (x) => tx(x, (t) => t.addTable('ip', 't').addChain('ip', 't', 'c', { hook: 'sideways' as never })), VALUE, 'commands[1].hook', /unknown value 'sideways' \(expected one of: /),
  c('addRule: unknown expression', (x) => tx(x, (t) => t.addRule('ip', 't', 'c', [{ type: 'teleport' } as never])), VALUE, 'commands[0].exprs[0]', /unknown expression type 'teleport'/),
  c('addRule: cmp data that is no data', (x) => tx(x, (t) => t.addRule('ip', 't', 'c', [{ type: 'cmp', sreg: 1, data: 'zz' }])), VALUE, 'commands[0].exprs[0]', /cannot read 'zz' as data \(expected 0x<hex>, a MAC or an IP address\)/),
  c('addRule: odd hex', (x) => tx(x, (t) => t.addRule('ip', 't', 'c', [{ type: 'cmp', sreg: 1, data: '0xabc' }])), VALUE, 'commands[0].exprs[0]', /is not a hex string: write 0x and pairs of hex digits/),
  c('addSet: keyLen 0', (x) => tx(x, (t) => t.addSet('ip', 't', 's', { key: { type: 7, len: 0 } })), VALUE, 'commands[0]', /keyLen must be 1\.\.64/),
  c('addSet: keyTypeof not an object', (x) => tx(x, (t) => t.addSet('ip', 't', 's', { key: { type: 7, len: 4 }, keyTypeof: 'meta' as never })), TYPE, 'commands[0].keyTypeof', /must be an object/),
  c('addElements: element is a number', (x) => tx(x, (t) => t.addElements('ip', 't', 's', [5 as never])), VALUE, 'commands[0].elements[0]', /must be an object \{key, data\?, verdict\?\}/),

  c('nft helpers: an IPv4 address with octet 256', () => enc.ipv4('192.0.2.256'), VALUE, 'ipv4', /is not an IPv4 address such as 192\.0\.2\.1/),
  c('nft helpers: a MAC of five bytes', () => enc.mac('02:00:00:00:01'), VALUE, 'mac', /write it as 02:00:00:00:00:01/),
  c('nft helpers: odd hex', () => enc.hex('0xabc'), VALUE, 'hex', /write 0x and pairs of hex digits/),
  c('nft helpers: u16 of 70000', () => enc.u16be(70000), VALUE, 'u16', /use an integer from 0 to 65535/),
  c('nft helpers: ifname of 16 bytes', () => enc.ifname('i'.repeat(16)), VALUE, 'ifname', /must be 1 to 15 bytes/),
  c('nft helpers: port 70000', () => match(fields.thDport, 70000), VALUE, 'th dport', /use an integer from 0 to 65535/),
  c('nft helpers: an IPv6 address for ip daddr', () => match(fields.ipDaddr, '2001:db8::1'), VALUE, 'ip daddr', /the value is 16 bytes, the field is 4/),
  c('nft helpers: a prefix of 33', () => matchPrefix(fields.ipSaddr, '10.0.0.0/33'), VALUE, 'ip saddr', /the prefix length in '10\.0\.0\.0\/33' must be 0 to 32/),
  c('nft helpers: jump without a chain', () => verdict('jump', ''), VALUE, 'chain', /verdict jump needs the name of the chain/),
  c('nft helpers: ARP in an inet table', () => requireProto('inet', 'arp'), VALUE, 'proto', /use an arp or bridge table/),
  c('nft helpers: priority dstnat in arp', () => priorityOf('arp', 'dstnat'), VALUE, 'priority', /does not exist in the arp family; use a number or one of filter/),
  c('nft helpers: no fields to load', () => loadConcat([]), VALUE, 'keys', /give at least one field/),

  // ---- the addon itself
  c('submit: netns is a plain object', () => binding().submit([{ type: 'link.list', netns: {} as never }], true), TYPE, 'netns', /must be a namespace handle made by this addon \(use a Netns from Netns\.create or Netns\.open\)/),
  c('submit: netns is a string', () => binding().submit([{ type: 'link.list', netns: 'ns' as never }], true), TYPE, 'netns', /namespace handle made by this addon/),
  c('submit: a closed handle', (x) => inNs(x, async (ns) => { const h = ns.handle; await ns.close(); return binding().submit([{ type: 'link.list', netns: h }], true); }), VALUE, 'netns', /was closed; open the namespace again/),
  c('submit: not an array', () => binding().submit('ops' as never, true), TYPE, 'ops', /expects an array of op objects/),
  c('submit: an op that is a number', () => binding().submit([1 as never], true), TYPE, 'ops[0]', /each op must be an object such as \{ type: 'link\.list' \}/),
  c('submit: unknown op type', (x) => submit(x, { type: 'link.teleport' }), VALUE, 'type', /unknown op type 'link\.teleport'/),
  c('submit: interface name with %d', (x) => submit(x, { type: 'link.add', kind: 'bridge', name: 'br%d' }), VALUE, 'name', WHAT_IFNAME),
  c('submit: interface index 2^32', (x) => submit(x, { type: 'link.get', link: 2 ** 32 }), VALUE, 'link', /an interface index must be an integer from 1 to 2147483647/),
  c('submit: MTU -1', (x) => submit(x, { type: 'link.set', link: 'lo', mtu: -1 }), VALUE, 'mtu', /must be an integer from 0 to 4294967295/),
  c('submit: route family 5', (x) => submit(x, { type: 'route.add', destination: 'default', dev: 'lo', family: 5 }), VALUE, 'family', /an IP family must be 4 or 6/),
  c('submit: route list family 0', (x) => submit(x, { type: 'route.list', family: 0 }), VALUE, 'family', /an IP family must be 4 or 6/),
  c('submit: sysctl path with ..', (x) => submit(x, { type: 'sysctl.read', path: 'net/../../etc/shadow' }), VALUE, 'path', /is not a per-namespace sysctl path: use net\/\.\.\. without '\.\.'/),
  c('submit: sysctl path with NUL', (x) => submit(x, { type: 'sysctl.write', path: 'net/ipv4/ip_forward\0', value: '1' }), VALUE, 'path', /without '\.\.', '\/\/' or control characters/),
  c('submit: sysctl value with NUL', (x) => submit(x, { type: 'sysctl.write', path: 'net/ipv4/ip_forward', value: '1\0' }), VALUE, 'value', /one line without NUL characters/),
  c('submit: nsid.get with a forged target', (x) => submit(x, { type: 'nsid.get', target: {} }), TYPE, 'target', /namespace handle made by this addon/),
  c('submit: moveTo a forged handle', (x) => submit(x, { type: 'link.set', link: 'lo', moveTo: { fd: 3 } }), TYPE, 'moveTo', /namespace handle made by this addon/),
  c('submit: veth peer alias with a peer namespace', (x) => inNs(x, (ns) => binding().submit([{ type: 'link.add', netns: ns.handle, kind: 'veth', name: 'v0', peer: { name: 'v1', netns: ns.handle, alias: 'm' } }], true)), VALUE, 'peer.alias', /set it there with link\.set/),
  c('submit: a 10 MB address is not echoed', (x) => submit(x, { type: 'addr.add', link: 'lo', address: '1'.repeat(10_000_000) }), VALUE, 'address', /^address: '1{60}…' is not an IPv4 or IPv6 address$/),
  c('submit: netns.create path with NUL', () => binding().submit([{ type: 'netns.create', path: '/run/netns/x\0y' }], true), VALUE, 'path', /without NUL characters/),
  c('lockFile: path is a number', () => binding().lockFile(5 as never), TYPE, 'path', /lockFile expects the lock file's path as a string/),
  c('lockHeld: empty path', () => binding().lockHeld(''), VALUE, 'path', /must be non-empty and contain no NUL characters/),
  c('lockFile: content is an object', (x) => binding().lockFile(`${x.dir}/l.lock`, {} as never), TYPE, 'content', /must be a string/),
  c('unlockFile: fd 1', () => binding().unlockFile(1), VALUE, 'fd', /expects the number lockFile returned \(an fd above 2\)/),
];
