/** Names of the kernel objects a cluster called `name` creates: one place, so every part agrees. @module */
export function clusterNames(name: string) {
  return {
    /** nft table, in the host (bridge family) and in every node (inet family). */
    table: `nc-${name}`,
    bridge: `${name}br`,
    outerVeth: (k: number) => `${name}v${k}`,
    nodeNetns: (k: number) => `${name}-n${k}`,
    routedUplinkPort: `${name}up`,
    routedGateway: `${name}gw`,
  };
}
