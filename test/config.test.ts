// Config files: every example validates (against loadConfig and, independently, ajv with the
// published JSON Schema); broken files are rejected with `file: path: what to fix` and create
// nothing; the schema is generated from the one TS description and agrees with resolveSpec.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { afterAll, describe, expect, it } from 'vitest';
import { clusterSchema, ConfigError, loadConfig, type JsonSchema } from '../lib/config/config.js';
import { OPENVPN_FIELDS } from '../lib/services/openvpn/service.js';
import { MAX_PORTS } from '../lib/cluster/spec.js';
import { HASH_MODES, Netns, resolveSpec, RUNTIME_DIR, type ClusterSpec } from '../lib/index.js';
import { uniquePrefix } from './helpers.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const examples = readdirSync(join(root, 'examples')).filter((f) => /\.(json|ya?ml)$/.test(f));
const schemaFile = JSON.parse(readFileSync(join(root, 'schema/cluster.schema.json'), 'utf8')) as Record<string, unknown>;
const ajv = new Ajv({ strict: true, allErrors: true });
const validate = ajv.compile(schemaFile);

const dir = mkdtempSync(join(tmpdir(), 'netns-cluster-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A name no other test uses: nothing may ever exist under it. */
const name = uniquePrefix('cf');
const FP = '00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF';
const valid = { name, nodes: 4, vip: '192.0.2.1/24', ports: [{ protocol: 'udp', port: 1194 }], uplink: { bridge: 'eth1' } };

function write(file: string, content: string | object): string {
  const path = join(dir, file);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return path;
}

describe('the examples', () => {
  it('there are the four documented ones', () => {
    expect(examples).toEqual(expect.arrayContaining(['openvpn-bridged.yaml', 'openvpn-routed.yaml', 'udp-service.json', 'ipv6.yaml']));
  });

  it.each(examples)('%s loads, resolves, and validates against schema/cluster.schema.json', async (file) => {
    const path = join(root, 'examples', file);
    const spec = await loadConfig(path);
    expect(() => resolveSpec(spec)).not.toThrow();
    const ok = validate(spec);
    expect(validate.errors ?? [], `${file} against the JSON Schema`).toEqual([]);
    expect(ok).toBe(true);
  });

  it('the OpenVPN examples use the openvpn service with syntactically valid fingerprints; the routed one a routed uplink', async () => {
    const bridged = await loadConfig(join(root, 'examples/openvpn-bridged.yaml'));
    const routed = await loadConfig(join(root, 'examples/openvpn-routed.yaml'));
    expect(bridged.uplink).toHaveProperty('bridge');
    expect(routed.uplink).toHaveProperty('routed.via');
    for (const s of [bridged, routed]) {
      expect(resolveSpec(s).service?.name).toBe('openvpn');
      expect((s.service as { openvpn: { clientFingerprints: string[] } }).openvpn.clientFingerprints.length).toBeGreaterThan(0);
    }
    const v6 = resolveSpec(await loadConfig(join(root, 'examples/ipv6.yaml')));
    expect(v6.vips.map((v) => v.family)).toEqual([4, 6]);
  });
});

describe('the JSON Schema', () => {
  it('is exactly what the spec definition generates (run `npm run schema` after changing lib/cluster/spec.ts, lib/services/service.ts or lib/services/openvpn/options.ts)', () => {
    expect(schemaFile).toEqual(JSON.parse(JSON.stringify(clusterSchema)));
  });

  it('has every field resolveSpec knows, and no other', () => {
    let known: string[] = [];
    try {
      resolveSpec({ ...valid, notAField: 1 } as unknown as ClusterSpec);
    } catch (e) {
      known = /known fields are (.*)$/.exec((e as Error).message)![1].split(', ');
    }
    expect(known.length).toBeGreaterThan(10);
    expect(Object.keys(clusterSchema.properties!).filter((k) => k !== '$schema').sort()).toEqual([...known].sort());
    expect(clusterSchema.additionalProperties).toBe(false);
  });

  it('its enums are the values resolveSpec accepts, and its defaults are resolveSpec’s defaults', () => {
    const props = clusterSchema.properties!;
    expect(props.hash.enum).toEqual(HASH_MODES);
    for (const field of ['mode', 'hash', 'failback'] as const) {
      for (const value of props[field].enum!) expect(() => resolveSpec({ ...valid, [field]: value } as ClusterSpec)).not.toThrow();
      expect(() => resolveSpec({ ...valid, [field]: 'bogus' } as unknown as ClusterSpec)).toThrow(new RegExp(`^${field}: `));
    }
    const r = resolveSpec(valid as ClusterSpec);
    expect({ mode: r.mode, hash: r.hash, buckets: r.buckets, failback: r.failback }).toEqual({
      mode: props.mode.default,
      hash: props.hash.default,
      buckets: props.buckets.default,
      failback: props.failback.default,
    });
    const portSchema = (props.ports.items as JsonSchema).properties!;
    expect(portSchema.protocol.enum).toEqual(['udp', 'tcp']);
    expect([portSchema.port.minimum, portSchema.port.maximum]).toEqual([1, 65535]);
  });

  it('lists every OpenVPN option openvpn() takes, and no other; what it types, check accepts', async () => {
    const ovpn = (clusterSchema.properties!.service.anyOf![1].properties!.openvpn.properties ?? {}) as Record<string, unknown>;
    expect(Object.keys(ovpn).sort()).toEqual([...OPENVPN_FIELDS].sort());
    // Once typed but refused by check: nat (and the new user/group).
    const withNat = { ...valid, service: { openvpn: { clientFingerprints: [FP], nat: true, routePools: false, user: 'nobody', group: 'nogroup' } } };
    expect(validate(withNat), JSON.stringify(validate.errors)).toBe(true);
    const spec = await loadConfig(write('nat.json', withNat));
    expect(resolveSpec(spec).service?.name).toBe('openvpn');
    expect(clusterSchema.properties!.ports.maxItems).toBe(MAX_PORTS);
  });

  it('a command service with user, group and envAllow: typed by the schema, accepted by check; timers above 2^31-1 ms refused by both', async () => {
    const svc = { command: ['sleep', '1'], user: 'nobody', group: 'nogroup', envAllow: ['PATH'], stopTimeoutMs: 2147483647 };
    const ok = { ...valid, service: svc };
    expect(validate(ok), JSON.stringify(validate.errors)).toBe(true);
    expect(resolveSpec(await loadConfig(write('user.json', ok))).service?.command).toEqual(['sleep', '1']);
    const tooLong = { ...valid, service: { ...svc, stopTimeoutMs: 2147483648 } };
    expect(validate(tooLong)).toBe(false);
    await expect(loadConfig(write('timer.json', tooLong))).rejects.toThrow(/service\.stopTimeoutMs: .*2147483647/);
  });

  it('every default and example the schema gives for an OpenVPN option is accepted by resolveSpec (and ajv)', () => {
    const ovpn = clusterSchema.properties!.service.anyOf![1].properties!.openvpn.properties!;
    let tried = 0;
    for (const [key, node] of Object.entries(ovpn)) {
      for (const value of [...(node.default !== undefined ? [node.default] : []), ...(node.examples ?? [])]) {
        const config = { ...valid, service: { openvpn: { clientFingerprints: [FP], [key]: value } } };
        expect(validate(config), `${key}: ${JSON.stringify(value)} ${JSON.stringify(validate.errors)}`).toBe(true);
        expect(() => resolveSpec(config as ClusterSpec), `${key}: ${JSON.stringify(value)}`).not.toThrow();
        tried++;
      }
    }
    expect(tried).toBeGreaterThanOrEqual(8);
  });

  it('ajv rejects what the loader calls a shape error (unknown keys, wrong types)', () => {
    expect(validate({ ...valid, nodse: 3 })).toBe(false);
    expect(validate({ ...valid, nodes: 'four' })).toBe(false);
    expect(validate({ ...valid, uplink: { brige: 'eth1' } })).toBe(false);
    expect(validate({ ...valid, service: { openvpn: { clientFingerprints: [FP], prot: 'udp' } } })).toBe(false);
    expect(validate({ ...valid, service: { command: ['x'], openvpn: { clientFingerprints: [FP] } } })).toBe(false);
  });
});

// [what, file name, content, expected `path: message` start]
const broken: [string, string, string | object, string][] = [
  ['a port out of range (YAML)', 'vpn.yaml', `name: ${name}\nvip: 192.0.2.1/24\nuplink: { bridge: eth1 }\nports:\n  - { protocol: udp, port: 1194 }\n  - { protocol: udp, port: 70000 }\n`, 'ports[1].port: must be 1 to 65535, got 70000'],
  ['an unknown top-level key, with a suggestion', 'typo.yaml', `name: ${name}\nvip: 192.0.2.1/24\nuplink: { bridge: eth1 }\nnodse: 3\n`, "nodse: unknown field; did you mean 'nodes'?"],
  ['a string where a number goes', 'nodes.json', { ...valid, nodes: 'four' }, "nodes: must be an integer from 1 to 256, got the string 'four'"],
  ['zero nodes', 'zero.json', { ...valid, nodes: 0 }, 'nodes: must be an integer from 1 to 256, got 0'],
  ['a name too long for interface names', 'long.json', { ...valid, name: 'abcdefghijk' }, "name: 'abcdefghijk' is 11 bytes; at most 10"],
  ['a name with capitals', 'caps.json', { ...valid, name: 'Vpn' }, "name: 'Vpn' is not a cluster name: it must start with a letter"],
  ['no VIP', 'novip.json', { name, uplink: { bridge: 'eth1' } }, "vip: give the shared address with its prefix, e.g. '192.0.2.1/24'"],
  ['a VIP without prefix', 'prefix.json', { ...valid, vip: '192.0.2.1' }, "vip: '192.0.2.1' needs a prefix length"],
  ['two IPv4 VIPs', 'twovips.json', { ...valid, vip: ['192.0.2.1/24', '192.0.2.2/24'] }, 'vip: give at most one IPv4 and one IPv6 value'],
  ['a VIP that is a number', 'vipnum.json', { ...valid, vip: 1 }, 'vip: expected an address with prefix such as 192.0.2.1/24, got 1'],
  ['an unknown protocol', 'sctp.json', { ...valid, ports: [{ protocol: 'sctp', port: 1 }] }, "ports[0].protocol: must be 'udp' or 'tcp', got 'sctp'"],
  ['a misspelt port field', 'prot.json', { ...valid, ports: [{ prot: 'udp', port: 1 }] }, "ports[0].prot: unknown field; did you mean 'protocol'?"],
  ['ports as an object', 'portsobj.json', { ...valid, ports: { protocol: 'udp', port: 1 } }, "ports: expected a list such as [{ protocol: 'udp', port: 1194 }], got an object"],
  ['a port listed twice', 'twice.json', { ...valid, ports: [{ protocol: 'udp', port: 1 }, { protocol: 'udp', port: 1 }] }, 'ports[1]: udp/1 is listed twice'],
  ['an unknown mode', 'mode.json', { ...valid, mode: 'round-robin' }, "mode: must be 'steer' or 'flood', got 'round-robin'"],
  ['a port hash without ports', 'hash.json', { ...valid, ports: undefined, hash: 'sourceip-sourceport' }, "hash: 'sourceip-sourceport' hashes on ports"],
  ['fewer buckets than nodes', 'buckets.json', { ...valid, buckets: 2 }, 'buckets: must be an integer from nodes (4) to 4096, got 2'],
  ['a negative seed', 'seed.json', { ...valid, seed: -1 }, 'seed: must be an integer from 0 to 4294967295'],
  ['a host namespace that is a path', 'netns.json', { ...valid, hostNetns: '../x' }, "hostNetns: namespace name '../x' must not contain '/'"],
  ['a gateway that is not an address', 'gw.json', { ...valid, gateway: 'router' }, "gateway: 'router' is not an IPv4 or IPv6 address"],
  ['a misspelt uplink kind', 'brige.yaml', `name: ${name}\nvip: 192.0.2.1/24\nuplink: { brige: eth1 }\n`, "uplink.brige: unknown field; did you mean 'bridge'?"],
  ['both uplink kinds', 'both.json', { ...valid, uplink: { bridge: 'eth1', routed: { via: 'eth0' } } }, "uplink: give exactly one of { bridge: '<ifname>' } or { routed: { via: '<ifname>' } }"],
  ['a routed uplink without via', 'via.json', { ...valid, uplink: { routed: {} } }, 'uplink.routed.via: is missing: give the host interface clients come in on'],
  ['an interface name too long', 'ifname.json', { ...valid, uplink: { bridge: 'averyveryverylongname0' } }, "uplink.bridge: interface name 'averyveryverylongname0' is 22 bytes"],
  ['a node network too small', 'small.json', { ...valid, nodeNetwork: '198.18.0.0/30' }, 'nodeNetwork: /30 has room for 2 hosts'],
  ['an IPv6 VIP without an IPv6 node network', 'v6.json', { ...valid, vip: '2001:db8::1/64', nodeNetwork: '198.18.0.0/24' }, 'nodeNetwork: the VIP 2001:db8::1 is IPv6'],
  ['an empty command', 'cmd.json', { ...valid, service: { command: [] } }, 'service.command: must be a non-empty array of strings'],
  ['an unknown placeholder', 'ph.json', { ...valid, service: { command: ['echo', '{nod}'] } }, 'service.command[1]: unknown placeholder {nod}'],
  ['a misspelt service key', 'comand.json', { ...valid, service: { comand: ['x'] } }, "service.comand: unknown field; did you mean 'command'?"],
  ['an env value that is a number', 'env.json', { ...valid, service: { command: ['x'], env: { A: 5 } } }, "service.env.A: must be a string, got 5; write '5' in quotes"],
  ['a negative restart limit', 'restart.json', { ...valid, service: { command: ['x'], restart: { maxRestarts: -1 } } }, 'service.restart.maxRestarts: must be a whole number ≥ 0'],
  ['OpenVPN without fingerprints', 'ovpn.json', { ...valid, service: { openvpn: {} } }, 'service.openvpn.clientFingerprints: list the SHA-256 fingerprints (AB:CD:…) of the client certificates to accept, got nothing (or give config: your server.conf, or pki: your CA, certificate and key)'],
  ['a malformed fingerprint', 'fp.json', { ...valid, service: { openvpn: { clientFingerprints: ['AB'] } } }, "service.openvpn.clientFingerprints[0]: 'AB' is not a SHA-256 fingerprint"],
  ['a malformed OpenVPN pool', 'pool.json', { ...valid, service: { openvpn: { clientFingerprints: [FP], pool: { base: 'x' } } } }, "service.openvpn.pool.base: 'x' is not an IPv4 network address"],
  ['an OpenVPN port of 0', 'ovport.json', { ...valid, service: { openvpn: { clientFingerprints: [FP], port: 0 } } }, 'service.openvpn.port: must be an integer from 1 to 65535, got 0'],
  ['an unknown failback', 'failback.json', { ...valid, failback: 'never' }, "failback: must be 'auto' or 'manual', got 'never'"],
];

// [what, file name, content, expected message start after the file name]
const unreadable: [string, string, string, string][] = [
  ['YAML that does not parse', 'bad.yaml', `name: ${name}\nvip: [192.0.2.1/24\n`, ':3:1: not valid YAML: '],
  ['JSON that does not parse', 'bad.json', `{"name": "${name}",\n "vip": 1,}`, ':2:11: not valid JSON: '],
  ['a key given twice', 'dup.yaml', `name: ${name}\nname: other\n`, ':2:1: not valid YAML: Map keys must be unique'],
  ['an unknown file type', 'cluster.toml', `name = "${name}"`, ": unknown file type '.toml'; name it .json, .yaml or .yml"],
  ['a list instead of a mapping', 'list.yaml', `- name: ${name}\n`, ': expected a mapping of fields (name, vip, uplink, …), got a list'],
  ['an empty file', 'empty.yaml', '', ': expected a mapping of fields (name, vip, uplink, …), got an empty file'],
];

describe('a broken config file', () => {
  it.each(broken)('%s: says file, path and what to fix', async (_what, file, content, expected) => {
    const path = write(file, content);
    const err = await loadConfig(path).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message.startsWith(`${path}: ${expected}`), (err as Error).message).toBe(true);
    expect((err as ConfigError).field).toBe(expected.split(': ')[0]);
    expect((err as ConfigError).code).toBe('ERR_INVALID_CONFIG');
  });

  it.each(unreadable)('%s: says file (and line) and what is wrong', async (_what, file, content, expected) => {
    const path = write(file, content);
    await expect(loadConfig(path)).rejects.toThrow(`${path}${expected}`);
  });

  it('a UTF-8 byte-order mark is dropped; CRLF line ends are fine', async () => {
    const spec = await loadConfig(write('bom.yaml', `\uFEFFname: ${name}\r\nvip: 192.0.2.1/24\r\nuplink: { bridge: eth1 }\r\n`));
    expect(spec).toMatchObject({ name, vip: '192.0.2.1/24' });
    expect(await loadConfig(write('bom.json', `\uFEFF${JSON.stringify(valid)}`))).toMatchObject({ name });
  });

  it('a missing file: says so', async () => {
    await expect(loadConfig(join(dir, 'nope.yaml'))).rejects.toThrow(`${join(dir, 'nope.yaml')}: no such file`);
  });

  it('creates nothing: no namespace, no state file for the name the broken files use', async () => {
    expect(broken.length + unreadable.length).toBeGreaterThanOrEqual(20);
    expect((await Netns.list()).filter((n) => n.startsWith(name))).toEqual([]);
    expect(existsSync(join(RUNTIME_DIR, `${name}.json`))).toBe(false);
    expect(existsSync(join(RUNTIME_DIR, name))).toBe(false);
  });
});
