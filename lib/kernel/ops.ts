/**
 * The pure step: typed, validated requests → the plain objects the addon executes. Used by
 * {@link Netns} (one request at a time) and {@link Batch} (many, pipelined, in one call).
 * @module
 */
import type { NativeHandle, NativeOp } from './binding.js';
import { InvalidArgumentError } from '../util/errors.js';
import { checkAlias, checkBool, checkCidr, checkFamily, checkHandleHolder, checkIfname, checkIp, checkLinkRef, checkMac, checkUint, got, sysctlPath } from '../util/validate.js';

/** Anything that holds a namespace handle (a {@link Netns}). */
export interface HasHandle {
  /** @internal */
  readonly handle: NativeHandle;
}

export interface LinkCommon {
  /**
   * Interface alias (IFLA_IFALIAS, ≤ 255 bytes), e.g. a mark saying who made the link. On create it
   * is set right after the create succeeds, on exactly that link (a failed create marks nothing).
   */
  alias?: string;
  /** Fixed MAC address, e.g. `02:00:00:00:00:01`. */
  mac?: string;
  mtu?: number;
  txqueuelen?: number;
}

export interface VethOptions extends LinkCommon {
  /** Name of this end (in this namespace). */
  name: string;
  /** Ask for this interface index (fails with EEXIST… if taken). */
  index?: number;
  /** Bring this end up. */
  up?: boolean;
  /** Enslave this end to a bridge at creation. */
  master?: string | number;
  peer: LinkCommon & {
    name: string;
    /** Create the peer directly in this namespace (default: the same one). */
    netns?: HasHandle;
    index?: number;
    /** Bring the peer up (done right after creation, in the peer's namespace). */
    up?: boolean;
  };
}

export interface BridgeOptions extends LinkCommon {
  name: string;
  index?: number;
  up?: boolean;
  /** IGMP/MLD snooping; default false (flood mode needs it off). */
  mcastSnooping?: boolean;
  /** Default false. */
  vlanFiltering?: boolean;
  /** Spanning tree; default false. */
  stp?: boolean;
  /** Forward delay in centiseconds; default 0 (ports forward at once). */
  forwardDelay?: number;
}

export interface DummyOptions extends LinkCommon {
  name: string;
  up?: boolean;
  master?: string | number;
}

export interface LinkChanges extends LinkCommon {
  up?: boolean;
  /** Rename. */
  name?: string;
  /** Enslave to this bridge, or `null` to release (nomaster). */
  master?: string | number | null;
  /** Move the link into another namespace. */
  netns?: HasHandle;
  /**
   * Options of a bridge port (the link must be a port already: not with `master` in the same
   * change). `unicastFlood: false`: frames to a MAC the bridge has not learned are not sent out of
   * this port (`bridge link set dev … flood off`).
   */
  bridgePort?: BridgePortOptions;
}

export interface BridgePortOptions {
  unicastFlood?: boolean;
}

export interface AddressOptions {
  /** IPv6: skip duplicate address detection (the address is usable at once). */
  nodad?: boolean;
  /** Do not add the prefix route. */
  noprefixroute?: boolean;
}

export interface RouteSpec {
  /** `default` or a CIDR such as `198.51.100.0/24`. */
  destination: string;
  /** Gateway. */
  via?: string;
  /** Output interface. */
  dev?: string | number;
  metric?: number;
  table?: number;
  /** Preferred source address. */
  source?: string;
  /** Only for `destination: 'default'` without `via`: which family. */
  family?: 4 | 6;
  /**
   * The route's origin (rtm_protocol, 1–255, as `ip route … proto N`): on add, what the route is
   * marked with (default 4, static); on delete, only a route of that origin is removed.
   */
  protocol?: number;
  /** Add only: replace the route to this destination (same table and metric) in one step instead of failing with EEXIST. */
  replace?: boolean;
}

type Op = NativeOp;

function common(field: string, o: LinkCommon, clearAlias = false): Partial<LinkCommon> {
  const out: Partial<LinkCommon> = {};
  if (o.alias !== undefined) out.alias = checkAlias(`${field}.alias`, o.alias, clearAlias);
  if (o.mac !== undefined) out.mac = checkMac(`${field}.mac`, o.mac);
  if (o.mtu !== undefined) out.mtu = checkUint(`${field}.mtu`, o.mtu, 68, 65535);
  if (o.txqueuelen !== undefined) out.txqueuelen = checkUint(`${field}.txqueuelen`, o.txqueuelen, 0, 0xffffffff);
  return out;
}

function object(field: string, v: unknown): void {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvalidArgumentError(field, `expected an options object, ${got(v)}`);
}

/** The namespace an op targets: must really be one (a missing handle would mean the caller's own). */
function target(ns: HasHandle): HasHandle {
  checkHandleHolder('netns', ns);
  return ns;
}

export function addVeth(ns: HasHandle, o: VethOptions): Op[] {
  target(ns);
  object('veth', o);
  object('peer', o.peer);
  if (o.peer.netns !== undefined) checkHandleHolder('peer.netns', o.peer.netns);
  const name = checkIfname('name', o.name);
  const peerName = checkIfname('peer.name', o.peer.name);
  const { alias: peerAlias, ...peerCommon } = common('peer', o.peer);
  // A peer in another namespace gets its alias there, with the request that brings it up.
  const peerElsewhere = o.peer.netns !== undefined && o.peer.netns.handle !== ns.handle;
  const op: Op = {
    type: 'link.add',
    netns: ns.handle,
    kind: 'veth',
    name,
    ...common('veth', o),
    up: checkBool('up', o.up),
    peer: {
      name: peerName,
      ...(peerElsewhere ? { netns: o.peer.netns!.handle } : {}),
      ...peerCommon,
      ...(peerAlias !== undefined && !peerElsewhere ? { alias: peerAlias } : {}),
    },
  };
  if (o.index !== undefined) op.index = checkUint('index', o.index, 1, 0x7fffffff);
  if (o.peer.index !== undefined) op.peer!.index = checkUint('peer.index', o.peer.index, 1, 0x7fffffff);
  if (o.master !== undefined) op.master = checkLinkRef('master', o.master);
  const ops: Op[] = [op];
  // The kernel cannot bring the peer up while creating the pair (ENOTCONN), hence a second request.
  const later = peerAlias !== undefined && peerElsewhere ? { alias: peerAlias } : {};
  if (checkBool('peer.up', o.peer.up) || 'alias' in later)
    ops.push({ type: 'link.set', netns: (o.peer.netns ?? ns).handle, link: peerName, ...(o.peer.up ? { up: true } : {}), ...later, deferrable: true });
  return ops;
}

export function addBridge(ns: HasHandle, o: BridgeOptions): Op[] {
  target(ns);
  object('bridge', o);
  const op: Op = {
    type: 'link.add',
    netns: ns.handle,
    kind: 'bridge',
    name: checkIfname('name', o.name),
    ...common('bridge', o),
    up: checkBool('up', o.up),
    bridge: {
      mcastSnooping: o.mcastSnooping ?? false,
      vlanFiltering: o.vlanFiltering ?? false,
      stp: o.stp ?? false,
      forwardDelay: o.forwardDelay ?? 0,
    },
  };
  if (o.index !== undefined) op.index = checkUint('index', o.index, 1, 0x7fffffff);
  return [op];
}

export function addDummy(ns: HasHandle, o: DummyOptions): Op[] {
  target(ns);
  object('dummy', o);
  const op: Op = { type: 'link.add', netns: ns.handle, kind: 'dummy', name: checkIfname('name', o.name), ...common('dummy', o), up: checkBool('up', o.up) };
  if (o.master !== undefined) op.master = checkLinkRef('master', o.master);
  return [op];
}

export function setLink(ns: HasHandle, link: string | number, c: LinkChanges): Op[] {
  target(ns);
  object('changes', c);
  const op: Op = { type: 'link.set', netns: ns.handle, link: checkLinkRef('link', link), ...common('changes', c, true) };
  if (c.up !== undefined) op.up = checkBool('changes.up', c.up);
  if (c.name !== undefined) op.name = checkIfname('name', c.name);
  if (c.master !== undefined) op.master = c.master === null ? null : checkLinkRef('master', c.master);
  if (c.netns !== undefined) {
    checkHandleHolder('changes.netns', c.netns);
    op.moveTo = c.netns.handle;
  }
  if (c.bridgePort !== undefined) {
    object('changes.bridgePort', c.bridgePort);
    if (c.master !== undefined)
      throw new InvalidArgumentError('changes.bridgePort', 'cannot be set in the change that enslaves or releases the link (the kernel reads it before it sets master): set it in a second setLink');
    op.bridgePort = {};
    if (c.bridgePort.unicastFlood !== undefined) op.bridgePort.unicastFlood = checkBool('changes.bridgePort.unicastFlood', c.bridgePort.unicastFlood);
  }
  return [op];
}

export function deleteLink(ns: HasHandle, link: string | number): Op[] {
  target(ns);
  return [{ type: 'link.del', netns: ns.handle, link: checkLinkRef('link', link) }];
}

export function addAddress(ns: HasHandle, link: string | number, cidr: string, o: AddressOptions = {}): Op[] {
  target(ns);
  object('options', o);
  const c = checkCidr('address', cidr);
  return [
    {
      type: 'addr.add',
      netns: ns.handle,
      link: checkLinkRef('link', link),
      address: `${c.address}/${c.prefix}`,
      nodad: flag('options.nodad', o.nodad),
      noprefixroute: flag('options.noprefixroute', o.noprefixroute),
    },
  ];
}

export function deleteAddress(ns: HasHandle, link: string | number, cidr: string): Op[] {
  target(ns);
  const c = checkCidr('address', cidr);
  return [{ type: 'addr.del', netns: ns.handle, link: checkLinkRef('link', link), address: `${c.address}/${c.prefix}` }];
}

function route(type: 'route.add' | 'route.del', ns: HasHandle, r: RouteSpec): Op[] {
  target(ns);
  object('route', r);
  let family: 4 | 6 | undefined = r.family === undefined ? undefined : checkFamily('family', r.family);
  if (r.destination !== 'default') {
    const d = checkCidr('destination', r.destination, true).family;
    if (family !== undefined && d !== family)
      throw new InvalidArgumentError('family', `family ${family} does not match the destination ${r.destination} (IPv${d}); leave family out`);
    family = d;
  }
  if (r.via !== undefined) {
    const v = checkIp('via', r.via);
    if (family !== undefined && v.family !== family)
      throw new InvalidArgumentError('via', `gateway ${r.via} is IPv${v.family} but the destination is IPv${family}`);
    family = v.family;
  }
  if (r.via === undefined && r.dev === undefined && type === 'route.add')
    throw new InvalidArgumentError('route', 'give a gateway (via) or an output interface (dev)');
  const op: Op = { type, netns: ns.handle, destination: r.destination, family };
  if (r.via !== undefined) op.via = r.via;
  if (r.dev !== undefined) op.dev = checkLinkRef('dev', r.dev);
  if (r.metric !== undefined) op.metric = checkUint('metric', r.metric, 0, 0xffffffff);
  if (r.table !== undefined) op.table = checkUint('table', r.table, 1, 0xffffffff);
  if (r.source !== undefined) op.source = checkIp('source', r.source).address;
  if (r.protocol !== undefined) op.protocol = checkUint('protocol', r.protocol, 1, 255);
  if (r.replace !== undefined) {
    if (type !== 'route.add') throw new InvalidArgumentError('replace', 'only an added route can replace another; leave replace out of a delete');
    if (checkBool('replace', r.replace)) op.replace = true;
  }
  return [op];
}

export const addRoute = (ns: HasHandle, r: RouteSpec): Op[] => route('route.add', ns, r);
export const deleteRoute = (ns: HasHandle, r: RouteSpec): Op[] => route('route.del', ns, r);

export function addNeighbour(ns: HasHandle, link: string | number, address: string, mac: string): Op[] {
  target(ns);
  return [
    {
      type: 'neigh.add',
      netns: ns.handle,
      link: checkLinkRef('link', link),
      address: checkIp('address', address).address,
      mac: checkMac('mac', mac),
    },
  ];
}

export function deleteNeighbour(ns: HasHandle, link: string | number, address: string): Op[] {
  target(ns);
  return [{ type: 'neigh.del', netns: ns.handle, link: checkLinkRef('link', link), address: checkIp('address', address).address }];
}

function flag(field: string, v: unknown): boolean | undefined {
  if (v !== undefined && typeof v !== 'boolean') throw new InvalidArgumentError(field, `must be true or false, ${got(v)}`);
  return v as boolean | undefined;
}

/** A sysctl value as written to /proc/sys (booleans as 1/0), checked. */
export function sysctlValue(value: unknown, field = 'value'): string {
  if (typeof value === 'number' && !Number.isFinite(value))
    throw new InvalidArgumentError(field, `a sysctl value must be a finite number, ${got(value)}`);
  if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean')
    throw new InvalidArgumentError(field, `a sysctl value must be a string, a number or a boolean, ${got(value)}`);
  const v = typeof value === 'boolean' ? (value ? '1' : '0') : String(value);
  if (/[\n\0]/.test(v)) throw new InvalidArgumentError(field, 'a sysctl value must be one line without NUL characters');
  return v;
}

export function writeSysctl(ns: HasHandle, key: string, value: string | number | boolean): Op[] {
  target(ns);
  const v = sysctlValue(value);
  return [{ type: 'sysctl.write', netns: ns.handle, path: sysctlPath(key), value: v }];
}
