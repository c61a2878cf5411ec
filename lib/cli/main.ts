#!/usr/bin/env node
/**
 * The `netns-cluster` command: `up` a cluster from a config file and supervise it, `down`, `drain`,
 * `status`, `list`, `sweep`, `check`, `plan`, `schema`, `import-openvpn`, `demo`, `bench`. Exit codes: 0 ok, 1 a runtime
 * failure, 2 a usage or config error. Messages go to stderr; tables and JSON to stdout.
 * @module
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../config/config.js';
import { InvalidArgumentError, isKernelError } from '../util/errors.js';
import { debugEnabled, log, LOG_FORMATS, type LogFormat } from '../util/log.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, type Command } from './args.js';
import { available, bench, check, demo, down, list, schema, status, sweep } from './commands.js';
import { up } from './up.js';
import { plan } from './plan.js';
import { reload } from './reload.js';
import { drain } from './drain.js';
import { importOpenvpn } from './import-openvpn.js';

const commands: Command[] = [up, down, drain, reload, status, list, sweep, check, plan, schema, importOpenvpn, demo, bench];

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
${commands
  .filter(available)
  .map((c) => `  ${c.name.padEnd(8)} ${c.summary}`)
  .join('\n')}

Options:
  -h, --help              show help (also: netns-cluster help <command>, <command> --help)
  -V, --version           print the version
  --log-format text|json  messages on stderr as text (default) or one JSON object per line
                          (time, level, cluster, node, event, message); any command

Messages carry levels (error, warning, notice, info, debug). With JOURNAL_STREAM set (under
systemd) each line starts with its syslog priority (<3> … <7>), so 'journalctl -p warning' shows
only warnings and errors. NETNS_CLUSTER_DEBUG=1 adds debug messages and error stack traces.

Exit status: 0 ok, 1 runtime failure, 2 usage or config error, 3 ('status') not running.
Most commands need root.
`;

/** Takes `--log-format <f>` / `--log-format=<f>` out of argv, wherever it is (before a `--`). */
function takeLogFormat(argv: string[]): string[] {
  const out: string[] = [];
  let format: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    if (a === '--log-format') {
      if (i + 1 >= argv.length) throw new UsageError('--log-format: give text or json');
      format = argv[++i];
    } else if (a.startsWith('--log-format=')) format = a.slice('--log-format='.length);
    else out.push(a);
  }
  if (format !== undefined) {
    if (!LOG_FORMATS.includes(format as LogFormat)) throw new UsageError(`--log-format: give text or json, got '${format.slice(0, 40)}'`);
    log.format = format as LogFormat;
  }
  return out;
}

async function main(args: string[]): Promise<number | undefined> {
  const argv = takeLogFormat(args);
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
    if (rest.length > 1) throw new UsageError(`help takes one command, got ${rest.length} arguments`);
    if (rest.length === 0) {
      process.stdout.write(usage());
      return EXIT_OK;
    }
    const cmd = commands.find((c) => c.name === rest[0]);
    if (!cmd) throw new UsageError(`help: unknown command '${rest[0]}'; commands: ${commands.filter(available).map((c) => c.name).join(', ')}`);
    process.stdout.write(cmd.help);
    return EXIT_OK;
  }
  if (first === '-V' || first === '--version') {
    process.stdout.write(`netns-cluster ${version()}\n`);
    return EXIT_OK;
  }
  const cmd = commands.find((c) => c.name === first);
  if (!cmd) throw new UsageError(`unknown command '${first}'; commands: ${commands.filter(available).map((c) => c.name).join(', ')}`);
  return cmd.run(rest);
}

/** One message for the operator, and the exit code that goes with the error. */
function report(e: unknown): number {
  if (e instanceof UsageError) {
    const where = e.command ? `netns-cluster ${e.command}` : 'netns-cluster';
    if (log.format === 'json') log.error('usage', `${where}: ${e.message}; run '${where} --help' for usage`);
    else process.stderr.write(`${log.journal ? '<3>' : ''}${where}: ${e.message}\n${log.journal ? '<3>' : ''}Run '${where} --help' for usage.\n`);
    return EXIT_USAGE;
  }
  if (e instanceof ConfigError || e instanceof InvalidArgumentError) {
    log.error('config', e.message);
    return EXIT_USAGE;
  }
  const err = e as NodeJS.ErrnoException;
  let msg = err instanceof Error ? err.message : String(e);
  if (isKernelError(err) && (err.code === 'EPERM' || err.code === 'EACCES')) msg += ' (netns-cluster needs root: CAP_NET_ADMIN and CAP_SYS_ADMIN)';
  log.error('error', msg);
  if (debugEnabled() && err instanceof Error) log.debug('stack', err.stack ?? '');
  return EXIT_FAILURE;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined) process.exit(code);
  },
  (e: unknown) => process.exit(report(e)),
);
