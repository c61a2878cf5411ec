/**
 * netns-cluster: one Linux host, many network namespaces sharing one virtual IP.
 *
 * - {@link createCluster}: the data plane (steer and flood modes over nftables, hash buckets,
 *   failover, counters).
 * - {@link Netns} and {@link Batch}: the low-level API for namespaces, links, addresses, routes,
 *   neighbours and sysctls over rtnetlink.
 * - {@link NftTransaction} and the expression helpers: nftables through libnftnl.
 * @module
 */
export { createCluster, Cluster, clusterNames, rebalanceHome, type CreateOptions, type UpdateReport, type ClusterNode, type ClusterEvents, type NodeState, type NodeCounters, type NodeStatus } from './cluster/cluster.js';
export {
  NodeService,
  fillPlaceholders,
  checkServiceDefinition,
  checkRestartPolicy,
  checkDuration,
  registerServiceKind,
  CommandServiceSchema,
  RestartPolicySchema,
  MAX_TIMER_MS,
  serviceEnv,
  PLACEHOLDERS,
  type NodeServiceOptions,
  type Containment,
  type ServiceDefinition,
  type ServiceKind,
  type CommandServiceData,
  type ServiceContext,
  type ServiceState,
  type RestartPolicy,
  type HealthCheck,
  type LogLine,
} from './services/service.js';
export { openvpn, type OpenvpnServiceOptions, type OpenvpnNodeStatus } from './services/openvpn/service.js';
export { OpenvpnOptionsSchema } from './services/openvpn/options.js';
export { generateIdentity, fingerprintOf, writeSecretFile, type Identity } from './services/openvpn/keys.js';
export { renderServerConfig, renderClientConfig, nodePool, type ClientConfigOptions, type ServerConfigOptions } from './services/openvpn/config.js';
export { ManagementClient, ManagementError, type ConnectedClient, type ServerStatus } from './services/openvpn/management.js';
export { checkOpenvpn, OpenvpnError, type OpenvpnVersion } from './services/openvpn/version.js';
export { nodePool6, type Pool6Spec, type NodePool6 } from './services/openvpn/pool6.js';
export type { Pki, PkiKey } from './services/openvpn/pki.js';
export { parseConf, loadConf, splitLine, renderDirective, ConfSyntaxError, type ConfDirective, type ParseOptions } from './services/openvpn/conf-parse.js';
export { loadConfig, checkConfig, parseConfigText, readConfigFile, clusterSchema, ConfigError, MAX_CONFIG_BYTES, type JsonSchema } from './config/config.js';
export {
  resolveSpec,
  validateSpec,
  clusterJsonSchema,
  ClusterSpecSchema,
  PortSchema,
  UplinkSchema,
  SCHEMA_ID,
  SPEC_FIELDS,
  type ClusterSpec,
  type ClusterMode,
  type PortSpec,
  type UplinkSpec,
  type ResolvedSpec,
  type ValidateOptions,
  type ClusterFacts,
  type ClusterSpecData,
  type BackendName,
  type IptablesVariant,
} from './cluster/spec.js';
export type { Problem, WalkOptions } from './util/schema.js';
export * as defaults from './util/defaults.js';
export { bucketOf, jhash, reciprocalScale, seedFromName, HASH_MODES, type HashMode, type FlowKey } from './rules/jhash.js';
export type { DataPlaneBackend, BackendContext, BackendTable, BackendRuleset, DataPlaneSpec } from './rules/backend.js';
export { clusteripNodeOf, xtClusterNodeOf, iptablesSupport, type IptablesKind, type IptablesRuleset } from './rules/iptables.js';
export type { IptRule, IptHook, IptNeed, IptTable, IptClusterip, IptListedRule } from './kernel/engine.js';
export { listClusters, readState, runtimeDir, RUNTIME_DIR, type ClusterState, type HostRestore, type StateProblem } from './cluster/state.js';
export { destroyCluster, sweepClusters, type DestroyReport, type RemovalReport } from './cluster/destroy.js';
export { markOf, checkClusterName } from './util/names.js';
export { planCluster, planKeys, keyOf, type ClusterPlan, type HostFacts, type PlannedNode, type PlannedLink, type PlannedAddress, type PlannedRoute, type PlannedSysctl, type PlannedTable, type PlannedRuleset } from './cluster/plan.js';
export { diffPlan, readActual, type ActualState, type Found, type PlanDiff } from './cluster/apply.js';
export { planText } from './cluster/plan-text.js';
export { Netns, Batch, BatchScope, NETNS_RUN_DIR, type NetnsCreateOptions } from './kernel/netns.js';
export * from './kernel/spawn.js';
export {
  cgroupRoot,
  cgroupTop,
  cgroupWarning,
  serviceCgroup,
  killCgroup,
  emptyCgroup,
  killClusterCgroups,
  cgroupPids,
  cgroupPopulated,
  signalCgroup,
  CGROUP_TOP,
  CGROUP_FALLBACK_WARNING,
  type CgroupKillMethod,
  type CgroupKillOptions,
} from './services/cgroup.js';
export { InvalidArgumentError, BatchError, isKernelError, type KernelError } from './util/errors.js';
export type { LinkInfo, AddressInfo, RouteInfo, NeighbourInfo } from './kernel/types.js';
export type {
  VethOptions,
  BridgeOptions,
  DummyOptions,
  LinkChanges,
  AddressOptions,
  RouteSpec,
  LinkCommon,
} from './kernel/ops.js';
export { MAX_IFNAME_BYTES } from './util/validate.js';
export * as nft from './rules/nft.js';
export { NftTransaction, listRules, listElements, listTables, type NftTableInfo, type TableOptions } from './rules/nft.js';
export { MAX_MESSAGE } from './util/errors.js';
export { renderMetrics, serveMetrics, checkMetrics, METRICS_CONTENT_TYPE, SERVICE_STATES, type MetricsSnapshot, type NodeFailovers, type MetricsListen } from './cluster/metrics.js';
export { Notifier, type NotifierOptions } from './kernel/notify.js';
// Types that public signatures use.
export type { Cidr } from './util/validate.js';
export type { ServiceEvents } from './services/service.js';
export type { OpenvpnProtocol, PoolSpec, NodePool } from './services/openvpn/config.js';
export type { ManagementErrorCode, RoutingEntry, ManagementEvents, OpenvpnState, ConnectOptions, Notification } from './services/openvpn/management.js';
export type { OpenvpnErrorCode, CheckOpenvpnOptions } from './services/openvpn/version.js';
export type { GenerateIdentityOptions } from './services/openvpn/keys.js';
// BGP announcement of the VIP through BIRD 2 (spec `announce`).
export { BgpAnnouncer, preflightBgp, announcedPrefixes, BIRD_SOCKET, BIRD_CONFIG, BIRD_GROUP, type BgpStatus, type BgpPeerStatus, type BgpAnnouncerOptions, type BgpAnnouncerEvents } from './services/bgp/bird.js';
export { renderBirdConfig, BIRD_PROTOCOLS, type BirdConfigInput } from './services/bgp/config.js';
export { BirdControl, BirdError, parseProtocols, parseRoutePrefixes, splitReplies, type BirdProtocol, type ReplyLine } from './services/bgp/control.js';
export { AnnounceSchema, BgpAnnounceSchema, BgpPeerSchema, checkBgp, type ResolvedBgp } from './services/bgp/options.js';
