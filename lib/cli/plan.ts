/** `netns-cluster plan <config>`: what `up` would build, without building anything. @module */
import { loadConfig } from '../config/config.js';
import { planCluster } from '../cluster/plan.js';
import { planText } from '../cluster/plan-text.js';
import { resolveSpec } from '../cluster/spec.js';
import { iptablesSupport } from '../rules/iptables.js';
import { EXIT_OK, parse, showHelp, type Command } from './args.js';

export const plan: Command = {
  name: 'plan',
  summary: "show everything 'up' would create, without creating anything",
  help: `Usage: netns-cluster plan <config.yaml|config.json> [--json] [--no-rules]

Prints every object the cluster described by the config consists of: node namespaces, links,
addresses, routes, sysctls, the bucket table, and each nft table as a ruleset (register-level
expressions, as 'nft --debug=netlink' shows them, with each rule's comment), and with backend
'iptables' each node's rules as iptables-save would print them. Everything is marked as the
cluster's own. Needs no root and changes nothing; what depends on the host (its br_netfilter
switches) is decided by 'up'. With iptables.variant 'auto' it reads which of CLUSTERIP and
xt_cluster this kernel offers (/proc/net/ip_tables_*, the kernel's module list), as 'up' does.

  --json       the plan as JSON (objects keyed as in the text)
  --no-rules   tables as one line each

Exit status: 0, or 2 for a bad config (as 'check').
`,
  async run(argv) {
    const { values, positionals, help } = parse('plan', argv, { json: { type: 'boolean' }, 'no-rules': { type: 'boolean' } }, ['config']);
    if (help) return showHelp(this.help);
    const spec = resolveSpec(await loadConfig(positionals[0]));
    const p = planCluster(spec, spec.backend === 'iptables' ? { iptables: iptablesSupport() } : {});
    process.stdout.write(values.json ? `${JSON.stringify(p, null, 2)}\n` : planText(p, { rules: !values['no-rules'] }));
    return EXIT_OK;
  },
};
