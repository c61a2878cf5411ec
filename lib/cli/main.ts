#!/usr/bin/env node
/**
 * The `netns-cluster` command: `up` a cluster from a config file and supervise it, `down`,
 * `status`, `list`, `sweep`, `check`, `plan`, `schema`, `demo`, `bench`. Exit codes: 0 ok, 1 a runtime
 * failure, 2 a usage or config error. Messages go to stderr; tables and JSON to stdout.
 * @module
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../config.js';
import { InvalidArgumentError, isKernelError } from '../errors.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, type Command } from './args.js';
import { bench, check, demo, down, list, schema, status, sweep } from './commands.js';
import { up } from './up.js';
import { plan } from './plan.js';
import { reload } from './reload.js';

const commands: Command[] = [up, down, reload, status, list, sweep, check, plan, schema, demo, bench];

function version(): string {
  try {
    // dist/lib/cli/main.js → the package root.
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

const usage = () => `Usage: netns-cluster <command> [options]

One Linux host, many network namespaces sharing one virtual IP, a service supervised in every node.

Commands:
${commands.map((c) => `  ${c.name.padEnd(8)} ${c.summary}`).join('\n')}

Options:
  -h, --help       show help (also: netns-cluster <command> --help)
  -V, --version    print the version

Exit status: 0 ok, 1 runtime failure, 2 usage or config error. Most commands need root.
`;

async function main(argv: string[]): Promise<number | undefined> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    process.stderr.write(usage());
    return EXIT_USAGE;
  }
  if (first === '-h' || first === '--help') {
    process.stdout.write(usage());
    return EXIT_OK;
  }
  if (first === 'help') {
    const cmd = commands.find((c) => c.name === rest[0]);
    process.stdout.write(cmd ? cmd.help : usage());
    return EXIT_OK;
  }
  if (first === '-V' || first === '--version') {
    process.stdout.write(`netns-cluster ${version()}\n`);
    return EXIT_OK;
  }
  const cmd = commands.find((c) => c.name === first);
  if (!cmd) throw new UsageError(`unknown command '${first}'; commands: ${commands.map((c) => c.name).join(', ')}`);
  return cmd.run(rest);
}

/** One message for the operator, and the exit code that goes with the error. */
function report(e: unknown): number {
  if (e instanceof UsageError) {
    const where = e.command ? `netns-cluster ${e.command}` : 'netns-cluster';
    process.stderr.write(`${where}: ${e.message}\nRun '${where} --help' for usage.\n`);
    return EXIT_USAGE;
  }
  if (e instanceof ConfigError || e instanceof InvalidArgumentError) {
    process.stderr.write(`netns-cluster: ${e.message}\n`);
    return EXIT_USAGE;
  }
  const err = e as NodeJS.ErrnoException;
  let msg = err instanceof Error ? err.message : String(e);
  if (isKernelError(err) && (err.code === 'EPERM' || err.code === 'EACCES')) msg += ' (netns-cluster needs root: CAP_NET_ADMIN and CAP_SYS_ADMIN)';
  process.stderr.write(`netns-cluster: error: ${msg}\n`);
  if (process.env.NETNS_CLUSTER_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  return EXIT_FAILURE;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined) process.exit(code);
  },
  (e: unknown) => process.exit(report(e)),
);
