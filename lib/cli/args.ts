/**
 * Argument handling shared by the commands: `node:util` parseArgs, with every mistake turned into
 * a {@link UsageError} (exit code 2) that says how to get help.
 * @module
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { boundedMessage } from '../util/errors.js';

import { checkClusterName as checkName } from '../util/names.js';
import { log, type LogLevel } from '../util/log.js';

/** Exit codes: 0 ok, 1 a runtime failure, 2 a usage or config error, 3 (`status`) not running, as systemctl. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_NOT_RUNNING = 3;

/** A mistake in the command line; the process exits with {@link EXIT_USAGE}. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    // An argument can be 128 KiB: a message echoes at most 60 characters of it.
    super(boundedMessage(message));
    this.name = 'UsageError';
  }
}

export interface Command {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** The full `--help` text. */
  help: string;
  /** Resolves the exit code, or undefined when the command decides itself when the process ends. */
  run(argv: string[]): Promise<number | undefined>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** `-j, --json`: the same on every command that has it. */
export const JSON_OPTION = { type: 'boolean', short: 'j' } as const;

/** Parses `argv` for `command`; `positionals` are the names of the required positional arguments. */
export function parse<O extends Options>(command: string, argv: string[], options: O, positionals: string[] = []) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/\. To specify a positional argument.*$/s, ''), command);
  }
  const help = (parsed.values as { help?: boolean }).help === true;
  if (!help) {
    if (parsed.positionals.length < positionals.length) throw new UsageError(`missing <${positionals[parsed.positionals.length]}>`, command);
    if (parsed.positionals.length > positionals.length) throw new UsageError(`unexpected argument '${parsed.positionals[positionals.length]}'`, command);
  }
  return { values: parsed.values as { [K in keyof O]?: O[K]['type'] extends 'boolean' ? boolean : string } & { help?: boolean }, positionals: parsed.positionals, help };
}

/** A name as `down`/`status` take it: the same rule as the spec's `name`. */
export function checkClusterName(command: string, name: string): string {
  try {
    return checkName('name', name);
  } catch (e) {
    throw new UsageError((e as Error).message, command);
  }
}

/** Writes a message for the operator (stderr, through the process's logger: levels, journald priorities, JSON). */
export function say(line: string, level: LogLevel = 'info', event = 'message'): void {
  log.log({ level, event, message: line });
}

/** Prints a command's help on stdout; `--help` exits 0. */
export function showHelp(text: string): number {
  process.stdout.write(text);
  return EXIT_OK;
}
