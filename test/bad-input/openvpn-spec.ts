// What the OpenVPN bad-input cases share: the expected code, a client fingerprint, two generated
// identities (made once), and the spec of a 4-node cluster serving OpenVPN on udp/1194.
import { generateIdentity, type Identity } from '../../lib/services/openvpn/keys.js';
import type { CaseContext } from './types.js';

export const CODE = 'ERR_INVALID_ARG_VALUE';
export const FP = '00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF';

let ids: Promise<[Identity, Identity]> | undefined;
/** A server and another identity, generated once for all cases. */
export const identities = (): Promise<[Identity, Identity]> => (ids ??= Promise.all([generateIdentity('server'), generateIdentity('other')]));

export type Patch = Record<string, unknown>;

/** The case's cluster with OpenVPN options `ovpn` (over `defaults`) and the spec's other fields `top`. */
export const openvpnSpec = (ctx: CaseContext, ovpn: Patch, top: Patch = {}, defaults: Patch = {}) => ({
  name: ctx.prefix,
  nodes: 4,
  vip: '192.0.2.1/24',
  ports: [{ protocol: 'udp', port: 1194 }],
  uplink: { bridge: 'eth1' },
  service: { openvpn: { ...defaults, ...ovpn } },
  ...top,
});
