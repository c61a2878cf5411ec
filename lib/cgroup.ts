// Placeholder until the cgroup containment lands (replaced by the real module).
export async function killClusterCgroups(_cluster: string): Promise<{ killed: number; removed: string[] }> {
  return { killed: 0, removed: [] };
}
