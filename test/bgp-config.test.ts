// Rootless: the BIRD 2 configuration a spec's `announce.bgp` renders (against golden files), the
// control-socket reply parser (against replies recorded from BIRD 2.0.12), and the spec's checks.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseProtocols, parseRoutePrefixes, renderBirdConfig, resolveSpec, splitReplies, validateSpec } from '../lib/index.js';

const base = { name: 'vpn', vip: ['192.0.2.1/24', '2001:db8::1/64'], uplink: { routed: { via: 'eth0' } } };
const bgp = {
  localAs: 65001,
  routerId: '10.0.0.2',
  peers: [
    { address: '10.0.0.1', as: 65000, password: 's3cret!' },
    { address: '2001:db8:ffff::1', as: 65000 },
  ],
  holdTime: 6,
  keepalive: 2,
  bfd: { intervalMs: 200, multiplier: 5 },
  communities: ['65000:100', '4200000000:1:2'],
  med: 50,
  prepend: 2,
};

describe('BIRD configuration', () => {
  it('dual stack, two peers, BFD, communities, MED and prepends: matches its golden file', async () => {
    const r = resolveSpec({ ...base, announce: { bgp } } as never);
    await expect(renderBirdConfig({ name: r.name, vips: r.vips, bgp: r.announce!.bgp })).toMatchFileSnapshot('./golden/bgp-dual-bfd.bird.conf');
  });

  it('IPv4 only with the defaults: matches its golden file', async () => {
    const r = resolveSpec({ ...base, vip: '192.0.2.1/24', announce: { bgp: { localAs: 65001, routerId: '10.0.0.2', peers: [{ address: '10.0.0.1', as: 65000 }] } } } as never);
    expect(r.announce!.bgp).toMatchObject({ holdTime: 9, keepalive: 3, prepend: 0, communities: [], binary: 'bird' });
    await expect(renderBirdConfig({ name: r.name, vips: r.vips, bgp: r.announce!.bgp })).toMatchFileSnapshot('./golden/bgp-v4-defaults.bird.conf');
  });

  it('announces nothing until told: every VIP protocol starts disabled, only VIP routes are exported, nothing imported', () => {
    const r = resolveSpec({ ...base, announce: { bgp } } as never);
    const text = renderBirdConfig({ name: r.name, vips: r.vips, bgp: r.announce!.bgp });
    expect(text.match(/protocol static vip[46] \{\n\s+ipv[46];\n\s+disabled yes;/g)).toHaveLength(2);
    expect(text).toContain('route 192.0.2.1/32 blackhole;');
    expect(text).toContain('route 2001:db8::1/128 blackhole;');
    expect(text).not.toMatch(/protocol kernel/);
    expect(text.match(/import none;/g)).toHaveLength(2);
    expect(text).toContain('graceful restart off;');
  });
});

const bird = ['/usr/sbin/bird', '/usr/bin/bird'].find((p) => existsSync(p));
it.skipIf(!bird)('BIRD 2 itself accepts the golden configurations (bird -p)', () => {
  for (const f of ['bgp-dual-bfd', 'bgp-v4-defaults']) execFileSync(bird!, ['-p', '-c', fileURLToPath(new URL(`./golden/${f}.bird.conf`, import.meta.url))], { stdio: 'pipe' });
});

describe("BIRD's control-socket replies", () => {
  // Recorded from BIRD 2.0.12 with `timeformat protocol iso long`.
  const protocols = [
    '2002-Name       Proto      Table      State  Since         Info',
    '1002-device1    Device     ---        up     2026-11-30 07:30:53  ',
    ' vip4       Static     master4    up     2026-11-30 07:31:02  ',
    ' peer0      BGP        ---        up     2026-11-30 07:31:04  Established   ',
    ' peer1      BGP        ---        start  2026-11-30 07:31:04  Active        Socket: Connection refused',
    ' peer2      BGP        ---        start  2026-11-30 07:31:05  Idle          Received: Bad peer AS',
    '0000 ',
    '',
  ].join('\n');

  it('splits replies at their last line, keeping continuation lines under their code', () => {
    const { replies, rest } = splitReplies(`0001 BIRD 2.0.12 ready.\n${protocols}0011-vip4: enab`);
    expect(replies).toHaveLength(2);
    expect(replies[0]).toEqual([{ code: 1, text: 'BIRD 2.0.12 ready.' }]);
    expect(replies[1].filter((l) => l.code === 1002)).toHaveLength(5);
    expect(rest).toBe('0011-vip4: enab');
  });

  it('parses show protocols: state, since, BGP session state and last error', () => {
    const rows = parseProtocols(splitReplies(protocols).replies[0]);
    expect(rows.map((r) => r.name)).toEqual(['device1', 'vip4', 'peer0', 'peer1', 'peer2']);
    expect(rows[2]).toMatchObject({ proto: 'BGP', state: 'up', since: '2026-11-30 07:31:04', bgpState: 'Established' });
    expect(rows[2].lastError).toBeUndefined();
    expect(rows[3]).toMatchObject({ state: 'start', bgpState: 'Active', lastError: 'Socket: Connection refused' });
    expect(rows[4]).toMatchObject({ bgpState: 'Idle', lastError: 'Received: Bad peer AS' });
  });

  it('parses the prefixes of show route export', () => {
    const reply = splitReplies(
      ['1007-Table master4:', '192.0.2.1/32         blackhole [vip4 2026-11-30 07:31:02] * (200)', '1007-2001:db8::1/128   blackhole [vip6 2026-11-30 07:31:02] * (200)', '0000 ', ''].join('\n'),
    ).replies[0];
    expect(parseRoutePrefixes(reply)).toEqual(['192.0.2.1/32', '2001:db8::1/128']);
  });
});

describe('announce.bgp checks', () => {
  const problems = (b: unknown, extra: Record<string, unknown> = {}) => validateSpec({ ...base, ...extra, announce: { bgp: b } }).problems;
  it('refuses a VIP family without a peer, AS_TRANS, an IPv6 router id and a keepalive as long as the hold time', () => {
    expect(problems({ ...bgp, peers: [{ address: '10.0.0.1', as: 65000 }] })).toEqual([
      expect.objectContaining({ field: 'announce.bgp.peers', message: expect.stringMatching(/the VIP 2001:db8::1 is IPv6 but no peer is: add an IPv6 peer/) }),
    ]);
    expect(problems({ ...bgp, localAs: 23456 })[0]).toMatchObject({ field: 'announce.bgp.localAs', message: expect.stringMatching(/AS_TRANS/) });
    expect(problems({ ...bgp, routerId: '2001:db8::2' })[0]).toMatchObject({ field: 'announce.bgp.routerId', message: expect.stringMatching(/is IPv6; a BGP router id is a 32-bit number/) });
    expect(problems({ ...bgp, holdTime: 6, keepalive: 6 })[0]).toMatchObject({ field: 'announce.bgp.keepalive', message: expect.stringMatching(/not shorter than holdTime \(6 s\).*e\.g\. 2/) });
  });
});
