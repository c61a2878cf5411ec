/** `netns-cluster drain <name>`: withdraw the VIP's BGP announcement, wait for flows to move, then stop. @module */
import { ControllerLock, lockOwner } from '../cluster/state.js';
import { EXIT_FAILURE, EXIT_OK, JSON_OPTION, UsageError, checkClusterName, parse, say, showHelp, type Command } from './args.js';
import { down } from './commands.js';
import { readStatus } from './status-file.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const drain: Command = {
  name: 'drain',
  summary: "withdraw a cluster's BGP announcement, wait for flows to move, then stop it",
  help: `Usage: netns-cluster drain <name> [--wait <seconds>] [--timeout <seconds>] [--json]

For a cluster whose config announces its VIP with BGP ('announce: { bgp: … }'): asks its
controller ('netns-cluster up', SIGUSR1) to withdraw the VIP from the routers for good, waits until
BIRD exports nothing any more (read from the status the controller publishes, which it reads from
BIRD's control socket), then waits --wait seconds while the routers move new flows to the other
hosts and the nodes keep serving what still reaches them, and then stops the cluster as
'netns-cluster down' does.

  --wait <s>       how long to keep serving after the withdrawal (default 5; 0 to stop at once)
  --timeout <s>    how long to wait for the withdrawal and for the controller to stop (default 60)
  -j, --json       print what was done as JSON (as 'down' does)

Exit status: 0 drained and stopped, 1 no running controller, no BGP announcement in its config,
or the withdrawal or the stop did not happen in time, 2 usage error.
`,
  async run(argv) {
    const { values, positionals, help } = parse('drain', argv, { wait: { type: 'string' }, timeout: { type: 'string' }, json: JSON_OPTION }, ['name']);
    if (help) return showHelp(this.help);
    const name = checkClusterName('drain', positionals[0]);
    const wait = Number(values.wait ?? 5);
    if (!(Number.isFinite(wait) && wait >= 0 && wait <= 86_400)) throw new UsageError(`--wait: give a number of seconds from 0 to 86400, got '${String(values.wait).slice(0, 40)}'`, 'drain');
    const timeout = Number(values.timeout ?? 60);
    if (!(timeout > 0 && timeout <= 86_400)) throw new UsageError(`--timeout: give a number of seconds from 1 to 86400, got '${String(values.timeout).slice(0, 40)}'`, 'drain');
    const owner = ControllerLock.held(name) ? lockOwner(name) : undefined;
    if (!owner || owner.role !== 'controller') {
      say(`cluster '${name}' has no running controller: nothing announces its VIP, nothing to drain ('netns-cluster down ${name}' removes what is left)`, 'error');
      return EXIT_FAILURE;
    }
    const st = await readStatus(name).catch(() => undefined);
    if (!st?.bgp) {
      say(`cluster '${name}' does not announce its VIP with BGP (no 'announce' in its config, or it is still starting): use 'netns-cluster down ${name}'`, 'error');
      return EXIT_FAILURE;
    }
    process.kill(owner.pid, 'SIGUSR1');
    say(`draining cluster '${name}' (controller pid ${owner.pid}): withdrawing its VIP …`);
    const deadline = Date.now() + timeout * 1000;
    for (;;) {
      const b = (await readStatus(name).catch(() => undefined))?.bgp;
      if (b?.drained && !b.announcing && b.peers.every((p) => p.announced.length === 0)) {
        say(`VIP withdrawn${b.lastChange ? ` at ${b.lastChange}` : ''}; serving the flows that still arrive for ${wait} s`);
        break;
      }
      if (Date.now() > deadline || !ControllerLock.held(name)) {
        say(`cluster '${name}' did not report its VIP withdrawn within ${timeout} s; see its log`, 'error');
        return EXIT_FAILURE;
      }
      await sleep(100);
    }
    await sleep(wait * 1000);
    return down.run([name, '--timeout', String(timeout), ...(values.json ? ['--json'] : [])]).then((code) => code ?? EXIT_OK);
  },
};
