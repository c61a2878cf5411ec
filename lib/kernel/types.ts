/** Shapes of what the kernel reports, as the library returns them. @module */

/** A network interface. */
export interface LinkInfo {
  index: number;
  name: string;
  /** `veth`, `bridge`, `dummy`, `loopback`, `device`, … */
  kind: string;
  mac?: string;
  mtu?: number;
  /** Administratively up (IFF_UP). */
  up: boolean;
  /** Operational state: `up`, `down`, `lowerlayerdown`, `unknown`, … */
  state?: string;
  /** The interface alias (IFLA_IFALIAS, `ip link set … alias`), when it has one. */
  alias?: string;
  /** Raw IFF_* flags. */
  flags: number;
  /** Index of the bridge (or other master) this link is enslaved to. */
  master?: number;
  /** For a veth: the index of its peer, in the peer's namespace. */
  peerIndex?: number;
  /** For a veth whose peer lives in another namespace: this namespace's id for it. */
  peerNetnsId?: number;
  /** The peer's namespace name, when asked for with `resolvePeers` and it is a named namespace. */
  peerNetns?: string;
  /** A bridge port's options (when the link is a port of a bridge). */
  bridgePort?: { unicastFlood?: boolean };
}

export interface AddressInfo {
  family: 4 | 6;
  /** Interface index. */
  index: number;
  address: string;
  prefixLength: number;
  /** `address/prefixLength` */
  cidr: string;
  label?: string;
  nodad: boolean;
  tentative: boolean;
  scope: 'host' | 'link' | 'global';
}

export interface RouteInfo {
  family: 4 | 6;
  /** `default` or a CIDR. */
  destination: string;
  via?: string;
  /** Output interface index. */
  index?: number;
  source?: string;
  metric?: number;
  /** Routing table id (254 = main, 255 = local). */
  table: number;
  type: 'unicast' | 'local' | 'broadcast' | 'multicast' | 'blackhole' | 'unreachable';
  protocol: number;
  scope: 'host' | 'link' | 'global';
}

export interface NeighbourInfo {
  family: 4 | 6;
  index: number;
  address?: string;
  mac?: string;
  state: string;
}
