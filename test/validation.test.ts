// Argument checks happen in TypeScript, before anything reaches the kernel: these need no root.
import { describe, expect, it } from 'vitest';
import { Batch, InvalidArgumentError, Netns } from '../lib/index.js';
import { sysctlPath } from '../lib/util/validate.js';
import { binding } from '../lib/kernel/binding.js';

// A stand-in handle: validation throws before the addon would ever see it.
const fake = new (Netns as unknown as new (h: unknown, p: string) => Netns)({}, '/nonexistent');

describe('bad arguments are rejected with a message that says what to fix', () => {
  it('interface names longer than 15 bytes', async () => {
    const err = await fake.addBridge({ name: 'a-very-long-bridge' }).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', field: 'name' });
    expect(err.message).toMatch(/18 bytes; the kernel allows at most 15/);
  });

  it('names with a slash, whitespace or a colon', async () => {
    await expect(fake.addVeth({ name: 'a/b', peer: { name: 'c' } })).rejects.toThrow(/must not contain/);
    await expect(fake.addVeth({ name: 'ok', peer: { name: 'bad name' } })).rejects.toMatchObject({ field: 'peer.name' });
    await expect(Netns.create('x/y')).rejects.toThrow(/namespace name 'x\/y' must not contain '\/'/);
    await expect(Netns.create('')).rejects.toThrow(/non-empty/);
  });

  it('bad MAC addresses', async () => {
    await expect(fake.setLink('eth0', { mac: '02:00:00:00:00' })).rejects.toThrow(/not a MAC address; write it as 02:00:00:00:00:01/);
    await expect(fake.addNeighbour('eth0', '192.0.2.1', 'zz:00:00:00:00:01')).rejects.toMatchObject({ field: 'mac' });
  });

  it('bad CIDRs and addresses', async () => {
    await expect(fake.addAddress('eth0', '192.0.2.300/24')).rejects.toThrow(/not an address with prefix/);
    await expect(fake.addAddress('eth0', '192.0.2.1/33')).rejects.toThrow(/prefix length .* must be 0 to 32/);
    await expect(fake.addAddress('eth0', '2001:db8::1/129')).rejects.toThrow(/0 to 128/);
    await expect(fake.addRoute({ destination: '198.51.100.0', via: '192.0.2.1' })).rejects.toThrow(/needs a prefix length/);
    await expect(fake.addRoute({ destination: '198.51.100.0/24', via: '2001:db8::1' })).rejects.toThrow(/gateway 2001:db8::1 is IPv6/);
    await expect(fake.addRoute({ destination: '198.51.100.0/24' })).rejects.toThrow(/give a gateway/);
  });

  it('numbers out of range', async () => {
    await expect(fake.setLink('eth0', { mtu: 10 })).rejects.toMatchObject({ field: 'changes.mtu' });
    await expect(fake.getLink(0)).rejects.toThrow(/positive integer/);
  });

  it('sysctl keys outside net.*', async () => {
    expect(sysctlPath('net.ipv4.ip_forward')).toBe('net/ipv4/ip_forward');
    expect(sysctlPath('net/ipv6/conf/eth0.10/disable_ipv6')).toBe('net/ipv6/conf/eth0.10/disable_ipv6');
    expect(() => sysctlPath('kernel.hostname')).toThrow(/not a per-namespace sysctl/);
    expect(() => sysctlPath('net/../../etc/passwd')).toThrow(InvalidArgumentError);
  });

  it('a batch with a bad op throws while queuing, before anything is sent', () => {
    const b = new Batch();
    expect(() => b.in(fake).addBridge({ name: 'ok' }).addVeth({ name: 'x'.repeat(16), peer: { name: 'y' } })).toThrow(
      InvalidArgumentError,
    );
  });
});

describe('low-level argument classes (issue 9)', () => {
  it('interface names with NUL, %, control characters', async () => {
    for (const name of ['a\0b', 'eth%d', 'tab\there', 'nl\n', 'del\x7f']) {
      const err = await fake.addBridge({ name }).catch((e) => e);
      expect(err).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', field: 'name' });
      expect(err.message).toMatch(/must not contain '\/', ':', '%', spaces or control characters/);
    }
  });

  it('sysctl keys with NUL or control characters', () => {
    expect(() => sysctlPath('net.ipv4.ip_forward\0')).toThrow(/must not contain NUL or other control characters/);
    expect(() => sysctlPath('net/ipv4/conf/a\nb/forwarding')).toThrow(InvalidArgumentError);
  });

  it('Batch.in with anything but a Netns', () => {
    for (const v of [{}, null, undefined, { handle: {} }, 'ns']) {
      expect(() => new Batch().in(v as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', field: 'netns' }));
    }
  });

  it('route family other than 4 or 6', async () => {
    await expect(fake.addRoute({ destination: 'default', dev: 'eth0', family: 5 as never })).rejects.toMatchObject({ field: 'family' });
    await expect(fake.addRoute({ destination: '10.0.0.0/8', dev: 'eth0', family: 6 })).rejects.toThrow(/does not match the destination/);
  });

  it('messages never echo more than ~60 characters of a bad value', async () => {
    const huge = 'x'.repeat(10_000_000);
    for (const p of [fake.addBridge({ name: huge }), fake.addAddress('eth0', huge), fake.setLink('eth0', { mac: huge })]) {
      const err = await p.catch((e) => e);
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect(err.message.length).toBeLessThan(200);
    }
  });

  it('the addon refuses forged or foreign namespace handles with a code', () => {
    const submit = (netns: unknown) => () => binding().submit([{ type: 'link.list', netns: netns as never }], true);
    for (const forged of [{}, [], 'x', 1, Symbol('h')]) {
      expect(submit(forged)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', field: 'netns' }));
    }
    expect(submit({})).toThrow(/made by this addon \(use a Netns from Netns.create or Netns.open\)/);
  });
});
