// checkServiceDefinition accepts every valid form (the cases it refuses are in
// test/bad-input/service.cases.ts), and placeholders are filled by the same rule it checks.
import { describe, expect, it } from 'vitest';
import { openvpn } from '../lib/services/openvpn/service.js';
import { checkServiceDefinition, fillPlaceholders, MAX_TIMER_MS, serviceEnv, type ServiceContext } from '../lib/services/service.js';

const FP = 'AB:'.repeat(31) + 'AB';
const ctx: ServiceContext = { cluster: 'lab', index: 2, netns: 'lab-n2', address: '198.18.0.3', addresses: ['198.18.0.3'], vips: ['192.0.2.1'], dir: '/run/netns-cluster/lab/node2' };

describe('checkServiceDefinition', () => {
  it('accepts a full command definition, with the limits of every range', () => {
    const def = {
      name: 'web',
      command: ['server', '--listen={vip}', '', '--node={node}'],
      env: { DIR: '{dir}', EMPTY: '' },
      envAllow: ['PATH', 'LANG'],
      cwd: '{dir}',
      user: 'nobody',
      group: 'nogroup',
      restart: { maxRestarts: 0, initialDelayMs: 0, maxDelayMs: MAX_TIMER_MS, resetAfterMs: MAX_TIMER_MS },
      stopTimeoutMs: 0,
      healthCheck: { check: async () => true, intervalMs: 1, failures: 1 },
      nodeSysctls: { 'net.ipv4.ip_forward': 1, 'net/ipv6/conf/all/forwarding': '1', 'net.ipv4.conf.all.rp_filter': false },
      prepare: async () => {},
      ready: async () => {},
      exited: () => {},
    };
    expect(checkServiceDefinition('service', def)).toBe(def);
    expect(checkServiceDefinition('service', { command: ['true'], user: 65534, group: '65534' })).toBeTruthy();
  });

  it('accepts what openvpn() makes, and turns { openvpn } into it', () => {
    const made = openvpn({ clientFingerprints: [FP], restart: { initialDelayMs: 50 } });
    expect(checkServiceDefinition('service', made)).toBe(made);
    const fromSpec = checkServiceDefinition('service', { openvpn: { clientFingerprints: [FP], stopTimeoutMs: 100 } });
    expect(fromSpec.name).toBe('openvpn');
    expect(fromSpec.stopTimeoutMs).toBe(100);
    expect(fromSpec.command).toEqual(['openvpn', '--config', '{dir}/server.conf']);
  });

  it('fills the placeholders it accepts, and refuses the same ones it refuses', () => {
    expect(fillPlaceholders('x', '{node} {netns} {address} {dir} {vip} {cluster}', ctx)).toBe('2 lab-n2 198.18.0.3 /run/netns-cluster/lab/node2 192.0.2.1 lab');
    expect(() => fillPlaceholders('x', '{constructor}', ctx)).toThrow(/x: unknown placeholder \{constructor\}/);
    expect(() => fillPlaceholders('x', '{toString}', ctx)).not.toThrow(); // not a placeholder: only a-z
  });

  it('serviceEnv: everything by default, only envAllow when given, env on top', () => {
    process.env.NETNS_DEF_TEST = 'yes';
    try {
      expect(serviceEnv({ env: { N: '{node}' } }, ctx)).toMatchObject({ NETNS_DEF_TEST: 'yes', N: '2', PATH: process.env.PATH });
      expect(serviceEnv({ envAllow: ['PATH'], env: { N: '{node}' } }, ctx)).toEqual({ PATH: process.env.PATH, N: '2' });
      expect(serviceEnv({ envAllow: [] }, ctx)).toEqual({});
    } finally {
      delete process.env.NETNS_DEF_TEST;
    }
  });
});
