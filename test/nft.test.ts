import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Netns } from '../lib/index.js';
import {
  NftTransaction,
  NftTypes,
  counter,
  enc,
  fields,
  fwdTo,
  hashInSet,
  hashOf,
  hashMapSet,
  immediate,
  metaSet,
  iifname,
  listElements,
  listRules,
  listTables,
  lookup,
  match,
  payload,
  oifname,
  requireProto,
  setField,
  typeofMeta,
  verdict,
  type NftElement,
} from '../lib/rules/nft.js';
import { describeAsRoot, scratch, sh } from './helpers.js';
import { binding, type NativeOp } from '../lib/kernel/binding.js';
import { Batch } from '../lib/kernel/netns.js';

const VIP = '192.0.2.1';
const UPLINK = 'up0';
const CMAC = '01:00:5e:00:00:20';
const VMAC = '02:aa:00:00:00:01';
const M = 64;
const SEED = 0x5eed;
const NODES = 4;
const nodeMac = (k: number) => `02:00:00:00:00:${(k + 1).toString(16).padStart(2, '0')}`;

interface NftJson {
  nftables: Array<Record<string, Record<string, unknown>>>;
}

describe('nftables value encoders', () => {
  const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
  it('encodes addresses, names and integers as nft lays them out', () => {
    expect(hex(enc.ipv6('2001:db8::1'))).toBe('20010db8000000000000000000000001');
    expect(hex(enc.ipv6('::'))).toBe('0'.repeat(32));
    expect(hex(enc.ipv6('fe80::'))).toBe('fe80' + '0'.repeat(28));
    expect(hex(enc.ipv6('::ffff:192.0.2.1'))).toBe('00000000000000000000ffffc0000201');
    expect(hex(enc.ipv6('1:2:3:4:5:6:1.2.3.4'))).toBe('00010002000300040005000601020304');
    expect(hex(enc.ifname('up0'))).toBe('757030' + '0'.repeat(26));
    expect(hex(enc.ifname('eth*'))).toBe('657468');
    expect(hex(enc.u32(1))).toBe('01000000');
    expect(hex(enc.u16be(1194))).toBe('04aa');
    expect(match(fields.thDport, 1194)[1]).toEqual({ type: 'cmp', op: 'eq', sreg: 1, data: enc.u16be(1194) });
    expect(() => enc.ifname('a-very-long-interface-name')).toThrow(/bad interface name/);
  });
});

describeAsRoot('nftables', () => {
  const s = scratch('nf');
  let host: Netns;
  let ref: Netns;
  let other: Netns;
  const name = (x: string) => s.prefix + x;
  const nft = (ns: string, ...args: string[]) => sh('ip', ['netns', 'exec', name(ns), 'nft', ...args]);
  const nftj = (ns: string, ...args: string[]) => JSON.parse(nft(ns, '-j', ...args)) as NftJson;
  const objects = (j: NftJson, kind: string) => j.nftables.filter((o) => kind in o).map((o) => o[kind]);

  const table = 'p';
  const steerTx = (ns: Netns) => {
    const f = 'bridge' as const;
    const elements: NftElement[] = Array.from({ length: M }, (_, b) => ({ key: b, data: nodeMac(b % NODES) }));
    return new NftTransaction(ns)
      .addTable(f, table)
      .addMap(f, table, 'buckets', {
        key: NftTypes.integer,
        keyByteorder: 'host',
        keyTypeof: typeofMeta('cpu'),
        data: NftTypes.etherAddr,
        dataByteorder: 'big',
        dataTypeof: fields.etherDaddr.typeof,
      })
      .addElements(f, table, 'buckets', elements)
      .addChain(f, table, 'pre', { hook: 'prerouting', priority: 'dstnat', policy: 'accept' })
      .addRule(f, table, 'pre', [
        iifname(UPLINK),
        requireProto(f, 'ip'),
        match(fields.ipDaddr, VIP),
        hashMapSet({ keys: [fields.ipSaddr], modulus: M, seed: SEED, map: 'buckets', target: fields.etherDaddr }),
        verdict('accept'),
      ])
      .addRule(f, table, 'pre', [iifname(UPLINK), requireProto(f, 'ip'), match(fields.ipDaddr, VIP), verdict('drop')])
      .addRule(f, table, 'pre', [
        iifname(UPLINK),
        requireProto(f, 'arp'),
        match(fields.arpDaddrIp, VIP),
        setField(fields.etherDaddr, CMAC),
      ])
      .addChain(f, table, 'fwd_out', { hook: 'forward', priority: 'filter', policy: 'accept' })
      .addRule(f, table, 'fwd_out', [
        oifname(UPLINK),
        requireProto(f, 'arp'),
        match(fields.arpSaddrIp, VIP),
        setField(fields.arpSaddrEther, VMAC),
      ]);
  };
  // The same ruleset written in nft's language (DESIGN.md, STEER mode), loaded with the nft binary.
  const steerText = () => `table bridge ${table} {
  map buckets { typeof meta cpu : ether daddr; elements = { ${Array.from({ length: M }, (_, b) => `${b} : ${nodeMac(b % NODES)}`).join(', ')} } }
  chain pre { type filter hook prerouting priority dstnat; policy accept;
    iifname "${UPLINK}" ip daddr ${VIP} ether daddr set jhash ip saddr mod ${M} seed 0x${SEED.toString(16)} map @buckets accept
    iifname "${UPLINK}" ip daddr ${VIP} drop
    iifname "${UPLINK}" arp daddr ip ${VIP} ether daddr set ${CMAC}
  }
  chain fwd_out { type filter hook forward priority filter; policy accept;
    oifname "${UPLINK}" arp saddr ip ${VIP} arp saddr ether set ${VMAC}
  }
}
`;
  const mapElems = (ns: string) => {
    const map = objects(nftj(ns, 'list', 'map', 'bridge', table, 'buckets'), 'map')[0];
    return new Map((map.elem as Array<[number, string]>).map(([k, v]) => [k, v]));
  };

  beforeAll(async () => {
    [host, ref, other] = await s.make('h', 'r', 'o');
  });
  afterAll(() => s.cleanup());

  it('builds the STEER ruleset exactly as nft writes it', async () => {
    await steerTx(host).commit();
    sh('bash', ['-c', `ip netns exec ${name('r')} nft -f - <<'EOF'\n${steerText()}EOF`]);

    // Chains: hook, priority, policy.
    const j = nftj('h', 'list', 'ruleset');
    const chains = objects(j, 'chain');
    expect(chains).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ family: 'bridge', table, name: 'pre', type: 'filter', hook: 'prerouting', prio: -300, policy: 'accept' }),
        expect.objectContaining({ family: 'bridge', table, name: 'fwd_out', type: 'filter', hook: 'forward', prio: -200, policy: 'accept' }),
      ]),
    );
    // The jhash: seed and modulus as given, over ip saddr, into the map.
    const rules = objects(j, 'rule');
    expect(rules).toHaveLength(4);
    const mangle = (rules[0].expr as Array<Record<string, any>>).find((e) => 'mangle' in e)!.mangle;
    expect(mangle.key).toEqual({ payload: { protocol: 'ether', field: 'daddr' } });
    expect(mangle.value.map.key.jhash).toEqual({ mod: M, seed: SEED, expr: { payload: { protocol: 'ip', field: 'saddr' } } });
    expect(mangle.value.map.data).toBe('@buckets');
    // Map elements.
    const elems = mapElems('h');
    expect(elems.size).toBe(M);
    for (let b = 0; b < M; b++) expect(elems.get(b)).toBe(nodeMac(b % NODES));

    // And the whole listing is the one nft gives for the same text (element order aside).
    const text = (ns: string) =>
      nft(ns, 'list', 'ruleset')
        .replace(/elements = \{[^}]*\}/s, 'elements = {...}')
        .trim();
    expect(text('h')).toBe(text('r'));
    expect(text('h')).toContain(`typeof meta cpu : ether daddr`);
    expect(text('h')).toContain(
      `iifname "${UPLINK}" ip daddr ${VIP} ether daddr set jhash ip saddr mod ${M} seed 0x${SEED.toString(16)} map @buckets accept`,
    );
    expect(mapElems('h')).toEqual(mapElems('r'));
    // The low-level form too (registers, lengths, offsets), rule by rule.
    const netlink = (ns: string) =>
      nft(ns, '--debug=netlink', 'list', 'chain', 'bridge', table, 'pre')
        .split('\n')
        .filter((l) => l.trim().startsWith('['))
        .join('\n');
    expect(netlink('h')).toBe(netlink('r'));
  });

  it('lists rules with handles, comments and counters, and set elements', async () => {
    await new NftTransaction(host)
      .addRule('bridge', table, 'fwd_out', [requireProto('bridge', 'ip'), match(fields.ipSaddr, '198.18.0.1'), counter()], 'count me')
      .commit();
    const rules = await listRules(host, 'bridge', table);
    expect(rules.map((r) => r.chain)).toEqual(['pre', 'pre', 'pre', 'fwd_out', 'fwd_out']);
    const counted = rules[4];
    expect(counted).toMatchObject({ chain: 'fwd_out', comment: 'count me', packets: 0, bytes: 0 });
    expect(rules[0].packets).toBeUndefined();
    const handles = objects(nftj('h', 'list', 'chain', 'bridge', table, 'fwd_out'), 'rule').map((r) => r.handle);
    expect(rules.filter((r) => r.chain === 'fwd_out').map((r) => r.handle)).toEqual(handles);
    expect(nft('h', 'list', 'chain', 'bridge', table, 'fwd_out')).toContain('comment "count me"');

    expect(await listRules(host, 'bridge', table, 'fwd_out')).toHaveLength(2);
    const el = await listElements(host, 'bridge', table, 'buckets');
    expect(el).toHaveLength(M);
    const one = el.find((e) => e.key === '0x' + Buffer.from(enc.u32(5)).toString('hex'));
    expect(one?.data).toBe('0x' + nodeMac(5 % NODES).replaceAll(':', ''));

    // Deleting by handle.
    await new NftTransaction(host).deleteRule('bridge', table, 'fwd_out', counted.handle).commit();
    expect(await listRules(host, 'bridge', table, 'fwd_out')).toHaveLength(1);
  });

  it('two transactions for one namespace in one job: each is its own sendmsg, both are applied and acknowledged', async () => {
    // nfnetlink handles one batch per sendmsg and ignores what follows its end: the addon must not
    // pipeline a second batch (or anything) behind one.
    const t = (n: string): NativeOp => ({ type: 'nft.batch', netns: other.handle, commands: [{ cmd: 'addTable', family: 'inet', name: n }] });
    const results = await binding().submit([t('two1'), t('two2'), { type: 'nft.tables', netns: other.handle, family: 'inet' }], true);
    expect(results.slice(0, 2).map((r) => (r instanceof Error ? r.message : r ?? 'ok'))).toEqual(['ok', 'ok']);
    expect((results[2] as { name: string }[]).map((x) => x.name)).toEqual(expect.arrayContaining(['two1', 'two2']));
    nft('o', 'delete', 'table', 'inet', 'two1');
    nft('o', 'delete', 'table', 'inet', 'two2');
  });

  it('moves buckets atomically: delete and add in one transaction', async () => {
    const moved = [0, 4, 8, 63];
    await new NftTransaction(host)
      .deleteElements('bridge', table, 'buckets', moved.map((b) => ({ key: b })))
      .addElements('bridge', table, 'buckets', moved.map((b) => ({ key: b, data: nodeMac(3) })))
      .commit();
    const elems = mapElems('h');
    expect(elems.size).toBe(M);
    for (let b = 0; b < M; b++) expect(elems.get(b)).toBe(moved.includes(b) ? nodeMac(3) : nodeMac(b % NODES));
  });

  it('rolls back a failing transaction and names the command that failed', async () => {
    const before = nft('h', 'list', 'ruleset');
    // Deleting an element that is not there fails the whole batch: the add that came first is undone.
    const err1 = await new NftTransaction(host)
      .addElements('bridge', table, 'buckets', [{ key: 1000, data: nodeMac(0) }])
      .deleteElements('bridge', table, 'buckets', [{ key: 2000 }])
      .commit()
      .catch((e: unknown) => e);
    expect(err1).toMatchObject({ code: 'ENOENT', syscall: 'nftables', object: `delete element bridge ${table} buckets #1` });
    expect(nft('h', 'list', 'ruleset')).toBe(before);

    // A chain in a missing table: ENOENT, naming that command; nothing of the batch exists.
    const err2 = await new NftTransaction(other)
      .addTable('ip', 'keep')
      .addChain('ip', 'keep', 'c1', { hook: 'input', priority: 0, policy: 'accept' })
      .addChain('ip', 'missing', 'c2')
      .addRule('ip', 'keep', 'c1', [verdict('accept')])
      .commit()
      .catch((e: unknown) => e);
    expect(err2).toBeInstanceOf(Error);
    expect(err2).toMatchObject({ code: 'ENOENT', errno: -2, object: 'add chain ip missing c2 #2' });
    expect((err2 as Error).message).toContain('add chain ip missing c2 #2');
    expect(objects(nftj('o', 'list', 'ruleset'), 'table')).toEqual([]);

    // A rule looking up a set that does not exist: the rule is named, the new table is undone.
    const err3 = await new NftTransaction(other)
      .addTable('ip', 't3')
      .addChain('ip', 't3', 'c')
      .addRule('ip', 't3', 'c', [match(fields.ipSaddr, '10.0.0.1'), verdict('accept')])
      .addRule('ip', 't3', 'c', [payload(fields.ipSaddr), lookup('nosuchset')])
      .commit()
      .catch((e: unknown) => e);
    expect(err3).toMatchObject({ code: 'ENOENT', object: 'add rule ip t3 c #3' });
    expect(objects(nftj('o', 'list', 'ruleset'), 'table')).toEqual([]);
  });

  it('rejects bad input before anything reaches the kernel', async () => {
    await expect(
      new NftTransaction(other)
        .addTable('ip', 't')
        .addRule('ip', 't', 'c', [{ type: 'payload', base: 'network', offset: 0, len: 4 } as never])
        .commit(),
    ).rejects.toThrow(/commands\[1\]\.exprs\[0\].*exactly one of dreg/);
    await expect(
      new NftTransaction(other).push({ cmd: 'addTable', family: 'ipx' as never, name: 't' }).commit(),
    ).rejects.toThrow(/unknown value 'ipx'/);
    expect(() => match(fields.ipSaddr, '02:00:00:00:00:01')).toThrow(/6 bytes, the field is 4/);
    // Names longer than the kernel allows never reach a message buffer.
    await expect(
      new NftTransaction(other).addRule('ip', 't', 'c', [lookup('s'.repeat(100000))]).commit(),
    ).rejects.toThrow(/set must be 1\.\.255 bytes/);
    await expect(new NftTransaction(other).addTable('ip', 'x'.repeat(256)).commit()).rejects.toThrow(/name must be 1\.\.255 bytes/);
    expect(objects(nftj('o', 'list', 'ruleset'), 'table')).toEqual([]);
  });

  it('adds 1000 elements in one transaction, also as 1000 separate commands, without ENOBUFS', async () => {
    const keys = Array.from({ length: 1000 }, (_, i) => i);
    const tx = new NftTransaction(other)
      .addTable('ip', 'big')
      .addSet('ip', 'big', 'one', { key: NftTypes.ipv4Addr })
      .addSet('ip', 'big', 'many', { key: NftTypes.integer, keyByteorder: 'host' })
      .addElements('ip', 'big', 'one', keys.map((i) => ({ key: `10.0.${i >> 8}.${i & 255}` })));
    for (const k of keys) tx.addElements('ip', 'big', 'many', [{ key: k }]);
    expect(tx.commands.length).toBe(1004);
    await tx.commit();
    expect(await listElements(other, 'ip', 'big', 'one')).toHaveLength(1000);
    expect(await listElements(other, 'ip', 'big', 'many')).toHaveLength(1000);
    const set = objects(nftj('o', 'list', 'set', 'ip', 'big', 'one'), 'set')[0];
    expect(set.type).toBe('ipv4_addr');
    expect((set.elem as string[]).length).toBe(1000);
    expect(set.elem as string[]).toContain('10.0.3.231');

    // 5000 in one command: split into several messages of one transaction.
    const more = Array.from({ length: 5000 }, (_, i) => ({ key: 100000 + i }));
    await new NftTransaction(other).addElements('ip', 'big', 'many', more).commit();
    expect(await listElements(other, 'ip', 'big', 'many')).toHaveLength(6000);
    // Flush and delete.
    await new NftTransaction(other).flushSet('ip', 'big', 'many').commit();
    expect(await listElements(other, 'ip', 'big', 'many')).toHaveLength(0);
    await new NftTransaction(other).deleteTable('ip', 'big').commit();
    expect(objects(nftj('o', 'list', 'ruleset'), 'table')).toEqual([]);
  });

  it('builds the FLOOD-mode node ruleset exactly as nft writes it', async () => {
    const owned = [1, 5, 9, 63];
    await new NftTransaction(other)
      .addTable('ip', 'fl')
      .addSet('ip', 'fl', 'owned', { key: NftTypes.integer, keyByteorder: 'host', keyTypeof: typeofMeta('cpu') })
      .addElements('ip', 'fl', 'owned', owned.map((key) => ({ key })))
      .addChain('ip', 'fl', 'pre', { hook: 'prerouting', priority: 'raw', policy: 'accept' })
      .addRule('ip', 'fl', 'pre', [
        match(fields.ipDaddr, VIP),
        hashInSet({ keys: [fields.ipSaddr], modulus: M, seed: SEED, set: 'owned', invert: true }),
        verdict('drop'),
      ])
      .addRule('ip', 'fl', 'pre', [match(fields.ipDaddr, VIP), immediate(enc.u8(0)), metaSet('pkttype')])
      .commit();
    sh('bash', [
      '-c',
      `ip netns exec ${name('r')} nft -f - <<'EOF'
table ip fl {
  set owned { typeof meta cpu; elements = { ${owned.join(', ')} } }
  chain pre { type filter hook prerouting priority raw; policy accept;
    ip daddr ${VIP} jhash ip saddr mod ${M} seed 0x${SEED.toString(16)} != @owned drop
    ip daddr ${VIP} meta pkttype set host
  }
}
EOF`,
    ]);
    const text = (ns: string) => nft(ns, 'list', 'table', 'ip', 'fl');
    expect(text('o')).toBe(text('r'));
    expect(text('o')).toContain(`jhash ip saddr mod ${M} seed 0x${SEED.toString(16)} != @owned drop`);
    expect(text('o')).toContain('meta pkttype set host');
    const netlink = (ns: string) =>
      nft(ns, '--debug=netlink', 'list', 'chain', 'ip', 'fl', 'pre')
        .split('\n')
        .filter((l) => l.trim().startsWith('['))
        .join('\n');
    expect(netlink('o')).toBe(netlink('r'));
    await new NftTransaction(other).deleteTable('ip', 'fl').commit();
  });

  it('builds netdev ingress and egress chains on a device, a sized verdict map, counters that start where asked; egress only in netdev', async () => {
    await other.addVeth({ name: 'nd0', peer: { name: 'nd1' } });
    try {
      await new NftTransaction(other)
        .addTable('netdev', 'nd')
        .addChain('netdev', 'nd', 'in', { hook: 'ingress', device: 'nd0', priority: 'filter', policy: 'accept' })
        .addChain('netdev', 'nd', 'out', { hook: 'egress', device: 'nd0', priority: 'filter', policy: 'accept' })
        .addChain('netdev', 'nd', 'node0')
        .addRule('netdev', 'nd', 'node0', [{ type: 'counter', packets: 7, bytes: 2 ** 40 }, verdict('accept')], 'accept')
        .addMap('netdev', 'nd', 'buckets', { key: NftTypes.integer, keyByteorder: 'host', keyTypeof: typeofMeta('cpu'), data: 'verdict', size: 16 })
        .addElements('netdev', 'nd', 'buckets', [{ key: 3, verdict: 'goto', chain: 'node0' }])
        .addRule('netdev', 'nd', 'in', [requireProto('netdev', 'ip'), match(fields.ipDaddr, VIP), hashOf({ keys: [fields.ipSaddr], modulus: 16, seed: SEED }), lookup('buckets', { dreg: 0 })])
        .addRule('netdev', 'nd', 'out', [requireProto('netdev', 'arp'), match(fields.arpSaddrIp, VIP), setField(fields.arpSaddrEther, VMAC)])
        .commit();
      const text = nft('o', 'list', 'table', 'netdev', 'nd');
      expect(text).toContain('type filter hook ingress device "nd0" priority filter; policy accept;');
      expect(text).toContain('type filter hook egress device "nd0" priority filter; policy accept;');
      // nft 1.0.6 lists the key type of an integer-keyed verdict map as `type 0` (with or without typeof).
      expect(text).toMatch(/ : verdict\s+size 16/);
      expect(text).toContain('3 : goto node0');
      expect(text).toContain(`ip daddr ${VIP} jhash ip saddr mod 16 seed 0x5eed vmap @buckets`);
      expect(text).toContain(`arp saddr ip ${VIP} arp saddr ether set ${VMAC}`);
      expect(await listRules(other, 'netdev', 'nd', 'node0')).toMatchObject([{ comment: 'accept', packets: 7, bytes: 2 ** 40 }]);
      await expect(new NftTransaction(other).addTable('inet', 'e').addChain('inet', 'e', 'c', { hook: 'egress' }).commit()).rejects.toThrow(/only netdev chains have the egress hook/);
      await expect(new NftTransaction(other).addChain('netdev', 'nd', 'c', { hook: 'egress' }).commit()).rejects.toThrow(/a netdev egress chain needs a device/);
      await expect(new NftTransaction(other).addRule('netdev', 'nd', 'node0', [{ type: 'counter', packets: -1 }]).commit()).rejects.toThrow(/packets must be an integer/);
    } finally {
      await new NftTransaction(other).deleteTable('netdev', 'nd').commit().catch(() => undefined);
      sh('ip', ['netns', 'exec', name('o'), 'ip', 'link', 'del', 'nd0']);
    }
  });

  it('fwd to a link made earlier in the same job: its index is looked up when the transaction is sent, and listRules reports it', async () => {
    const b = new Batch();
    b.in(other).addVeth({ name: 'fw0', peer: { name: 'fw1' } });
    b.push([{
      type: 'nft.batch',
      netns: other.handle,
      commands: new NftTransaction(other)
        .addTable('netdev', 'fw')
        .addChain('netdev', 'fw', 'n0')
        .addRule('netdev', 'fw', 'n0', [counter(), ...setField(fields.etherDaddr, nodeMac(0)), ...fwdTo('fw1')], 'accept').commands.slice(),
    }]);
    try {
      await b.commit();
      const index = JSON.parse(sh('ip', ['-n', name('o'), '-j', 'link', 'show', 'fw1']))[0].ifindex as number;
      expect(nft('o', 'list', 'chain', 'netdev', 'fw', 'n0')).toContain('fwd to "fw1"');
      expect(await listRules(other, 'netdev', 'fw', 'n0')).toMatchObject([{ comment: 'accept', fwdIndex: index }]);
      // A link that is not there: the transaction fails before it is sent, naming the link, and nothing of it is applied.
      const err = await new NftTransaction(other).addTable('netdev', 'fx').addChain('netdev', 'fx', 'n0').addRule('netdev', 'fx', 'n0', fwdTo('nolink0')).commit().catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'ENODEV', syscall: 'RTM_GETLINK' });
      expect(String((err as Error).message)).toContain("'nolink0'");
      expect(nft('o', 'list', 'tables')).not.toContain('fx');
      expect(() => fwdTo('x'.repeat(16))).toThrow(/is 16 bytes; the kernel allows at most 15/);
      await expect(new NftTransaction(other).addRule('netdev', 'fw', 'n0', [{ type: 'immediate', dreg: 1, ifindexOf: 'fw1', data: 1 } as never]).commit()).rejects.toThrow(/data or ifindexOf, not both/);
    } finally {
      await new NftTransaction(other).deleteTable('netdev', 'fw').commit().catch(() => undefined);
      sh('ip', ['-n', name('o'), 'link', 'del', 'fw0']);
    }
  });

  it('builds verdict maps with jump elements', async () => {
    await new NftTransaction(other)
      .addTable('inet', 'vm')
      .addChain('inet', 'vm', 'target')
      .addRule('inet', 'vm', 'target', [counter(), verdict('return')])
      .addMap('inet', 'vm', 'by_src', { key: NftTypes.ipv4Addr, data: 'verdict' })
      .addElements('inet', 'vm', 'by_src', [
        { key: '10.0.0.1', verdict: 'jump', chain: 'target' },
        { key: '10.0.0.2', verdict: 'drop' },
      ])
      .addChain('inet', 'vm', 'in', { hook: 'input', priority: 'filter', policy: 'accept' })
      .addRule('inet', 'vm', 'in', [requireProto('inet', 'ip'), payload(fields.ipSaddr), lookup('by_src', { dreg: 0 })])
      .commit();
    const text = nft('o', 'list', 'table', 'inet', 'vm');
    expect(text).toContain('type ipv4_addr : verdict');
    expect(text).toMatch(/10\.0\.0\.1 : jump target/);
    expect(text).toMatch(/10\.0\.0\.2 : drop/);
    expect(text).toContain('ip saddr vmap @by_src');
    expect(text).toContain('type filter hook input priority filter; policy accept;');
    const el = await listElements(other, 'inet', 'vm', 'by_src');
    expect(el).toEqual(
      expect.arrayContaining([
        { key: '0x0a000001', verdict: 'jump', chain: 'target' },
        { key: '0x0a000002', verdict: 'drop' },
      ]),
    );
    await new NftTransaction(other).deleteTable('inet', 'vm').commit();
  });

  it('marks tables with a comment nft reads, lists them with handles, adds exclusively, deletes by handle', async () => {
    const mark = 'netns-cluster:lab';
    await new NftTransaction(other).addTable('bridge', 'nc-lab', { comment: mark, exclusive: true }).addTable('ip', 'plain').commit();
    // nft itself prints the comment, so the user data has nft's own layout
    expect(nft('o', 'list', 'table', 'bridge', 'nc-lab')).toMatch(/table bridge nc-lab \{\s*comment "netns-cluster:lab"/);
    const listed = objects(nftj('o', 'list', 'tables'), 'table');
    const tables = await listTables(other);
    expect(tables).toEqual(
      expect.arrayContaining([
        { family: 'bridge', name: 'nc-lab', handle: listed.find((t) => t.name === 'nc-lab')!.handle, comment: mark },
        { family: 'ip', name: 'plain', handle: listed.find((t) => t.name === 'plain')!.handle },
      ]),
    );
    expect(tables).toHaveLength(2);
    expect(await listTables(other, 'ip')).toEqual([expect.objectContaining({ name: 'plain' })]);
    // a comment written by nft reads back the same way
    nft('o', 'add', 'table', 'inet', 'bynft', '{', 'comment', '"made by nft";', '}');
    expect((await listTables(other, 'inet'))[0]).toMatchObject({ name: 'bynft', comment: 'made by nft' });
    // exclusive: an existing table (the user's) is not adopted
    const err = await new NftTransaction(other).addTable('ip', 'plain', { exclusive: true, comment: mark }).commit().catch((e) => e);
    expect(err).toMatchObject({ code: 'EEXIST', object: expect.stringContaining('add table ip plain') });
    await new NftTransaction(other).addTable('ip', 'plain').commit(); // without: adopted, as before
    expect((await listTables(other, 'ip'))[0].comment).toBeUndefined();
    // by handle: a table recreated under the same name is not the one inspected
    const old = (await listTables(other, 'bridge'))[0];
    await new NftTransaction(other).deleteTable('bridge', 'nc-lab').addTable('bridge', 'nc-lab', { comment: mark }).commit();
    await expect(new NftTransaction(other).deleteTable('bridge', 'nc-lab', { handle: old.handle }).commit()).rejects.toMatchObject({ code: 'ENOENT' });
    const now = (await listTables(other, 'bridge'))[0];
    expect(now.handle).not.toBe(old.handle);
    await new NftTransaction(other).deleteTable('bridge', 'nc-lab', { handle: now.handle }).commit();
    expect(objects(nftj('o', 'list', 'tables'), 'table').map((t) => t.name).sort()).toEqual(['bynft', 'plain']);
    await expect(new NftTransaction(other).addTable('ip', 't2', { comment: 'c'.repeat(128) }).commit()).rejects.toThrow(/at most 127/);
    await new NftTransaction(other).deleteTable('ip', 'plain').deleteTable('inet', 'bynft').commit();
    expect(await listTables(other)).toEqual([]);
  });

  it('flushes and deletes tables', async () => {
    await new NftTransaction(host).flushTable('bridge', table).commit();
    expect(await listRules(host, 'bridge', table)).toEqual([]);
    expect(mapElems('h').size).toBe(M); // sets survive a flush
    await new NftTransaction(host).deleteTable('bridge', table).commit();
    expect(objects(nftj('h', 'list', 'ruleset'), 'table')).toEqual([]);
    expect(ref.closed).toBe(false);
  });
});
