/** `netns-cluster reload <name>`: ask the controller to read its config again and apply it live. @module */
import { ControllerLock, lockOwner } from '../cluster/state.js';
import { EXIT_FAILURE, EXIT_OK, checkClusterName, parse, say, showHelp, type Command } from './args.js';

export const reload: Command = {
  name: 'reload',
  summary: "apply a running cluster's changed config file live (SIGHUP to its controller)",
  help: `Usage: netns-cluster reload <name>

Sends SIGHUP to the controller ('netns-cluster up') of cluster <name>. It reads its config file
again and applies the difference without stopping: nodes added or removed (only the buckets the
change needs move, and with them only those flows), ports, the service's options. A change that
cannot be made live (VIP, uplink, mode, hash, buckets, seed, node networks) is refused and nothing
changes; the controller's log says which.

Exit status: 0 sent, 1 no running controller, 2 usage error.
`,
  async run(argv) {
    const { positionals, help } = parse('reload', argv, {}, ['name']);
    if (help) return showHelp(this.help);
    const name = checkClusterName('reload', positionals[0]);
    const owner = ControllerLock.held(name) ? lockOwner(name) : undefined;
    if (!owner || owner.role !== 'controller') {
      say(`cluster '${name}' has no running controller; start it with 'netns-cluster up <config>'`);
      return EXIT_FAILURE;
    }
    process.kill(owner.pid, 'SIGHUP');
    say(`asked cluster '${name}' (controller pid ${owner.pid}) to reload its config`);
    return EXIT_OK;
  },
};
