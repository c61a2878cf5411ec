/**
 * Where a command's config comes from: a file, or standard input when the argument is `-`.
 * Standard input is read whole (at most 1 MiB of UTF-8), then parsed and checked as a file would
 * be; JSON when it parses as JSON, YAML otherwise. Messages name it `<stdin>`.
 * @module
 */
import { checkConfig, ConfigError, loadConfig, MAX_CONFIG_BYTES, parseConfigText } from '../config/config.js';
import type { ClusterSpec } from '../cluster/spec.js';

/** How messages name standard input. */
export const STDIN_NAME = '<stdin>';

/** The name a config argument has in messages: the path, or `<stdin>` for `-`. */
export const configName = (arg: string): string => (arg === '-' ? STDIN_NAME : arg);

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > MAX_CONFIG_BYTES) throw new ConfigError(STDIN_NAME, undefined, `is larger than ${MAX_CONFIG_BYTES / 1024} KiB; a cluster config is a few KiB at most`);
    chunks.push(chunk);
  }
  const bytes = Buffer.concat(chunks);
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff))
    throw new ConfigError(STDIN_NAME, undefined, 'is UTF-16 text (it starts with a UTF-16 byte-order mark); give UTF-8');
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new ConfigError(STDIN_NAME, undefined, 'is not UTF-8 text; give UTF-8');
  }
}

/** A ConfigError about the stand-in name, renamed `<stdin>`. */
function renamed(e: unknown, stand: string): unknown {
  if (!(e instanceof ConfigError) || !e.file.startsWith(stand)) return e;
  const detail = e.message.slice(e.file.length + 2 + (e.field ? e.field.length + 2 : 0));
  return new ConfigError(STDIN_NAME + e.file.slice(stand.length), e.field, detail);
}

/** Parses and checks config text read from standard input. */
export function checkStdinText(text: string): ClusterSpec {
  let json = true;
  try {
    JSON.parse(text);
  } catch {
    json = false;
  }
  // config.ts picks the parser by extension: a stand-in name, renamed in messages.
  const stand = json ? 'stdin.json' : 'stdin.yaml';
  try {
    return checkConfig(stand, parseConfigText(text, stand)).spec;
  } catch (e) {
    throw renamed(e, stand);
  }
}

/** Reads, parses and checks the config `arg` names (`-`: standard input). */
export async function readConfig(arg: string): Promise<ClusterSpec> {
  if (arg !== '-') return loadConfig(arg);
  return checkStdinText(await readStdin());
}
