// Every bad spec gets an error naming the field and what to fix, and nothing is created; a failure
// in the middle of building rolls back everything already made.
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { createCluster } from '../lib/cluster/cluster.js';
import { InvalidArgumentError, Netns } from '../lib/index.js';
import { MAX_PORTS, resolveSpec, type ClusterSpec } from '../lib/cluster/spec.js';
import { markOf } from '../lib/util/names.js';
import { describeAsRoot, ipj, scratch } from './helpers.js';

const base: ClusterSpec = { name: 'vpn', nodes: 4, vip: '192.0.2.1/24', uplink: { bridge: 'eth1' } };

describe('cluster spec validation (no kernel needed)', () => {
  const cases: [string, Partial<ClusterSpec> | Record<string, unknown>, string, RegExp][] = [
    ['unknown mode', { mode: 'roundrobin' }, 'mode', /must be 'steer' or 'flood'/],
    ['nodes < 1', { nodes: 0 }, 'nodes', /1 to 256/],
    ['nodes > 256', { nodes: 300 }, 'nodes', /1 to 256/],
    ['buckets < nodes', { nodes: 8, buckets: 4 }, 'buckets', /from nodes \(8\)/],
    ['VIP without prefix', { vip: '192.0.2.1' }, 'vip', /needs a prefix length/],
    ['VIP not an address', { vip: '192.0.2.300/24' }, 'vip', /not an address with prefix/],
    ['two IPv4 VIPs', { vip: ['192.0.2.1/24', '192.0.2.2/24'] }, 'vip', /at most one IPv4 and one IPv6/],
    ['port out of range', { ports: [{ protocol: 'udp', port: 1194 }, { protocol: 'udp', port: 70000 }] }, 'ports[1].port', /1 to 65535/],
    ['port duplicated', { ports: [{ protocol: 'udp', port: 1194 }, { protocol: 'udp', port: 1194 }] }, 'ports[1]', /listed twice/],
    ['bad protocol', { ports: [{ protocol: 'sctp', port: 1 }] }, 'ports[0].protocol', /'udp' or 'tcp'/],
    ['name too long for interfaces', { name: 'averylongname' }, 'name', /is 13 bytes; at most 10/],
    ['name with bad characters', { name: 'Vpn_1' }, 'name', /a-z, 0-9 and '-'/],
    ['port hash without ports', { hash: 'sourceip-sourceport' }, 'hash', /list the services in 'ports'/],
    ['unknown hash', { hash: 'roundrobin' }, 'hash', /must be one of/],
    ['uplink missing', { uplink: undefined }, 'uplink', /bridge: '<ifname>'/],
    ['uplink with both kinds', { uplink: { bridge: 'eth1', routed: { via: 'eth0' } } }, 'uplink', /exactly one/],
    ['uplink name too long', { uplink: { bridge: 'eth1-with-a-long-name' } }, 'uplink.bridge', /at most 15/],
    ['IPv6 VIP with only an IPv4 node network', { vip: '2001:db8::1/64', nodeNetwork: '198.18.0.0/24' }, 'nodeNetwork', /add an IPv6 network/],
    ['node network too small', { nodes: 8, nodeNetwork: '198.18.0.0/29' }, 'nodeNetwork', /room for 6 hosts/],
    ['unknown field', { nodez: 3 }, 'nodez', /unknown field/],
    ['bad gateway', { gateway: 'router' }, 'gateway', /not an IPv4 or IPv6 address/],
    ['hostNetns with a slash', { hostNetns: 'a/b' }, 'hostNetns', /must not contain/],
  ];
  for (const [what, patch, field, message] of cases) {
    it(`${what} → ${field}`, () => {
      let err: unknown;
      try {
        resolveSpec({ ...base, ...patch } as ClusterSpec);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect(err).toMatchObject({ field, code: 'ERR_INVALID_ARG_VALUE' });
      expect((err as Error).message).toMatch(message);
    });
  }

  it('accepts the edges of the address rules: /31 and /32 VIPs, a gateway on the subnet, a dual-stack spec', () => {
    expect(resolveSpec({ ...base, vip: '192.0.2.0/31' }).vips[0]).toMatchObject({ address: '192.0.2.0', prefix: 31 });
    expect(resolveSpec({ ...base, vip: '192.0.2.255/32' }).vips[0].prefix).toBe(32);
    expect(resolveSpec({ ...base, gateway: '192.0.2.254' }).gateways).toEqual(['192.0.2.254']);
    const r = resolveSpec({ ...base, vip: ['192.0.2.1/24', '2001:db8::1/64'], gateway: ['192.0.2.254', '2001:db8::fffe'] });
    expect(r.nodeNetworks.map((n) => `${n.address}/${n.prefix}`)).toEqual(['198.18.0.0/24', 'fd00:198:18::/64']);
    expect(resolveSpec({ ...base, ports: Array.from({ length: MAX_PORTS }, (_, i) => ({ protocol: 'udp' as const, port: i + 1 })) }).ports).toHaveLength(MAX_PORTS);
  });

  it('never lets a raw TypeError through, whatever the types', () => {
    const values = [null, 5, 'x', true, [], [null], {}, { a: 1 }, Symbol('s'), 5n, () => 1, NaN];
    for (const field of ['name', 'nodes', 'vip', 'ports', 'mode', 'hash', 'buckets', 'seed', 'hostNetns', 'gateway', 'uplink', 'nodeNetwork', 'service', 'failback']) {
      for (const v of values) {
        let err: unknown;
        try {
          resolveSpec({ ...base, [field]: v } as unknown as ClusterSpec);
        } catch (e) {
          err = e;
        }
        if (err !== undefined) expect(err, `${field} = ${String(v)}`).toBeInstanceOf(InvalidArgumentError);
      }
    }
  });

  it('never lets a raw TypeError through at any depth (ports, uplink, OpenVPN options)', () => {
    const FP = 'AB:'.repeat(31) + 'AB';
    const valid = {
      ...base,
      ports: [{ protocol: 'udp', port: 1194 }],
      uplink: { routed: { via: 'eth0' } },
      service: { openvpn: { clientFingerprints: [FP], pool: { base: '10.8.0.0', prefix: 24 }, keepalive: [2, 10], port: 1194, protocol: 'udp', extra: 'verb 3', routePools: true, nat: false } },
    };
    expect(() => resolveSpec(valid as unknown as ClusterSpec)).not.toThrow();
    const values = [null, undefined, 5, -1, 1.5, 'x', '', true, [], [null], {}, { a: 1 }, Symbol('s'), 5n, () => 1, NaN, Object.create(null)];
    const paths: string[][] = [];
    const walk = (v: unknown, path: string[]) => {
      if (path.length) paths.push(path);
      if (typeof v === 'object' && v !== null) for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
    };
    walk(valid, []);
    const at = (path: string[], value: unknown) => {
      const copy = structuredClone(valid) as Record<string, unknown>;
      let o = copy;
      for (const k of path.slice(0, -1)) o = o[k] as Record<string, unknown>;
      o[path.at(-1)!] = value;
      return copy;
    };
    let refused = 0;
    for (const path of paths) {
      for (const v of values) {
        try {
          resolveSpec(at(path, v) as unknown as ClusterSpec);
        } catch (e) {
          refused++;
          const label = typeof v === 'object' && v !== null ? JSON.stringify(Object.keys(v)) : typeof v === 'symbol' ? 'symbol' : String(v);
          expect(e, `${path.join('.')} = ${label}: ${(e as Error).message}`).toBeInstanceOf(InvalidArgumentError);
        }
      }
    }
    expect(refused).toBeGreaterThan(paths.length * 5);
  });

  it('fills in defaults: steer, sourceip, 64 buckets, a seed derived from the name', () => {
    const r = resolveSpec(base);
    expect(r).toMatchObject({ mode: 'steer', hash: 'sourceip', buckets: 64, ports: [] });
    expect(r.seed).toBe(resolveSpec({ ...base }).seed);
    expect(r.seed).not.toBe(resolveSpec({ ...base, name: 'vpn2' }).seed);
  });
});

describeAsRoot('createCluster refuses and rolls back', () => {
  const s = scratch('cs');
  afterAll(() => s.cleanup());

  const nothingOf = async (name: string, host: Netns) => {
    expect((await Netns.list()).filter((n) => n.startsWith(`${name}-`))).toEqual([]);
    expect(ipj<{ ifname: string }[]>('-n', host.name!, 'link').map((l) => l.ifname).filter((n) => n.startsWith(name))).toEqual([]);
    expect(execFileSync('ip', ['netns', 'exec', host.name!, 'nft', 'list', 'tables'], { encoding: 'utf8' })).not.toContain(name);
  };

  it('a hostNetns that does not exist', async () => {
    const err = await createCluster({ ...base, name: `${s.prefix}a`, hostNetns: `${s.prefix}none` }).catch((e) => e);
    expect(err).toMatchObject({ field: 'hostNetns' });
    expect(err.message).toMatch(/does not exist/);
    expect((await Netns.list()).filter((n) => n.startsWith(`${s.prefix}a-`))).toEqual([]);
  });

  it('an uplink that does not exist, or is already enslaved', async () => {
    const [host] = await s.make('h1');
    const err = await createCluster({ ...base, name: `${s.prefix}b`, hostNetns: host.name, uplink: { bridge: 'nope0' } }).catch((e) => e);
    expect(err).toMatchObject({ field: 'uplink.bridge' });
    await host.addBridge({ name: 'other' });
    await host.addVeth({ name: 'u0', master: 'other', peer: { name: 'u0p' } });
    const err2 = await createCluster({ ...base, name: `${s.prefix}b`, hostNetns: host.name, uplink: { bridge: 'u0' } }).catch((e) => e);
    expect(err2).toMatchObject({ field: 'uplink.bridge' });
    expect(err2.message).toMatch(/already enslaved/);
    await nothingOf(`${s.prefix}b`, host);
  });

  it('a name already in use', async () => {
    const [host] = await s.make('h2');
    await host.addVeth({ name: 'up0', peer: { name: 'up0p' } });
    await host.addVeth({ name: 'up1', peer: { name: 'up1p' } });
    const name = `${s.prefix}c`;
    const first = await createCluster({ ...base, name, hostNetns: host.name, uplink: { bridge: 'up0' } });
    // While its controller runs, the name is locked.
    const busy = await createCluster({ ...base, name, hostNetns: host.name, uplink: { bridge: 'up1' } }).catch((e) => e);
    expect(busy).toMatchObject({ code: 'EBUSY' });
    expect(busy.message).toMatch(/already managed by process/);
    await first.close();
    await nothingOf(name, host);
    // Leftovers of a crashed controller (marked as this cluster's): refused, with the way out.
    const left = await Netns.create(`${name}-n0`, { mark: markOf(name) });
    let err = await createCluster({ ...base, name, hostNetns: host.name, uplink: { bridge: 'up1' } }).catch((e) => e);
    expect(err).toMatchObject({ field: 'name' });
    expect(err.message).toMatch(/left behind by a controller that is gone .*netns-cluster down/);
    await left.delete();
    // A namespace of that name that is not netns-cluster's: refused, asking for another name.
    await s.make('c-n0');
    err = await createCluster({ ...base, name, hostNetns: host.name, uplink: { bridge: 'up1' } }).catch((e) => e);
    expect(err).toMatchObject({ field: 'name' });
    expect(err.message).toMatch(/namespace '.*-n0', which already exists .* not netns-cluster's; pick another cluster name/);
    expect(ipj<{ master?: string }[]>('-n', host.name!, 'link', 'show', 'up1')[0].master).toBeUndefined();
  });

  it('a failure in the middle of building rolls back everything already made', async () => {
    const [host] = await s.make('h3');
    await host.addVeth({ name: 'up0', peer: { name: 'up0p' } });
    const name = `${s.prefix}d`;
    // The uplink is itself a bridge: the kernel refuses to enslave it (ELOOP) after the namespaces
    // and the cluster's bridge exist; everything made so far goes, and the user's bridge stays.
    await host.addBridge({ name: 'upbr' });
    const err = await createCluster({ ...base, name, hostNetns: host.name, uplink: { bridge: 'upbr' } }).catch((e) => e);
    expect(err).toMatchObject({ code: 'ELOOP' });
    await nothingOf(name, host);
    expect(ipj<{ master?: string }[]>('-n', host.name!, 'link', 'show', 'upbr')[0].master).toBeUndefined();
    await host.deleteLink('upbr');
  });

  it(`the documented maximum of ports (${MAX_PORTS}) builds in the largest case: flood, dual stack, hashing on both ports`, async () => {
    // Measured: this configuration fails with EMSGSIZE from about 700 ports.
    const [host] = await s.make('h5');
    await host.addVeth({ name: 'up0', peer: { name: 'up0p' } });
    const ports = Array.from({ length: MAX_PORTS }, (_, i) => ({ protocol: i % 2 ? ('tcp' as const) : ('udp' as const), port: 1000 + i }));
    const c = await createCluster({
      ...base,
      name: `${s.prefix}g`,
      nodes: 2,
      vip: ['192.0.2.1/24', '2001:db8::1/64'],
      ports,
      mode: 'flood',
      hash: 'sourceip-sourceport-destport',
      hostNetns: host.name,
      uplink: { bridge: 'up0' },
    });
    await c.close();
    await nothingOf(`${s.prefix}g`, host);
  });

  it('a second routed cluster in the same host must not reuse the node network or the VIP', async () => {
    const [host] = await s.make('h4');
    await host.addVeth({ name: 'c0', peer: { name: 'c0p' } });
    await host.addVeth({ name: 'c1', peer: { name: 'c1p' } });
    const first = await createCluster({ ...base, name: `${s.prefix}e`, nodes: 2, hostNetns: host.name, uplink: { routed: { via: 'c0' } } });
    const spec = { ...base, name: `${s.prefix}f`, nodes: 2, hostNetns: host.name, uplink: { routed: { via: 'c1' } } };
    const net = await createCluster(spec).catch((e) => e);
    expect(net).toMatchObject({ field: 'nodeNetwork' });
    expect(net.message).toMatch(/198\.18\.0\.0\/24 overlaps the route to 198\.18\.0\.0\/24/);
    const vip = await createCluster({ ...spec, nodeNetwork: '198.18.1.0/24' }).catch((e) => e);
    expect(vip).toMatchObject({ field: 'vip' });
    await nothingOf(`${s.prefix}f`, host);
    const second = await createCluster({ ...spec, nodeNetwork: '198.18.1.0/24', vip: '192.0.2.2/24' });
    await second.close();
    await first.close();
  });
});
