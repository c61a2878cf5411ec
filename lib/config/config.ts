/**
 * Config files: a {@link ClusterSpec} written as JSON or YAML, read safely (regular files only, a
 * size limit, UTF-8, no duplicate keys, no alias bombs, bounded nesting) and checked against the
 * spec's one definition (lib/cluster/spec.ts: the schema that `schema/cluster.schema.json` serialises, and
 * the rules between fields). Every error names the file, the path inside it (`ports[1].port`) and
 * what to fix, and lists every problem found; nothing is created by loading.
 * @module
 */
import { constants } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { extname } from 'node:path';
import { parseDocument } from 'yaml';
import { capText, clipQuoted, InvalidArgumentError } from '../util/errors.js';
import { OpenvpnOptionsSchema } from '../services/openvpn/options.js';
// The OpenVPN service registers itself for `{ openvpn: { … } }`: a config may use it.
import '../services/openvpn/service.js';
import { show as showValue } from '../util/shape.js';
import { clusterJsonSchema, ClusterSpecSchema, validateSpec, type ClusterSpec, type ResolvedSpec } from '../cluster/spec.js';

/** The largest config file read (1 MiB): a config is a few hundred bytes, certificates included a few KiB. */
export const MAX_CONFIG_BYTES = 1 << 20;
/** YAML aliases a config may use (each expands a node): more is refused as an alias bomb. */
export const MAX_YAML_ALIASES = 100;

/**
 * The config file's JSON Schema (draft-07, with `$id`): {@link ClusterSpecSchema} serialised.
 * `schema/cluster.schema.json` is this (`npm run schema` writes it).
 */
export const clusterSchema = clusterJsonSchema() as JsonSchema;

/** A JSON Schema node, as {@link clusterSchema} holds them (for reading it in code and tests). */
export interface JsonSchema {
  $id?: string;
  $schema?: string;
  type?: string;
  description?: string;
  properties?: Record<string, JsonSchema>;
  patternProperties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema | JsonSchema[];
  minItems?: number;
  maxItems?: number;
  anyOf?: JsonSchema[];
  enum?: readonly (string | number)[];
  minimum?: number;
  maximum?: number;
  pattern?: string;
  default?: unknown;
  examples?: unknown[];
}

/** A config file that cannot be used. `message` is `file: path: what to fix`. */
export class ConfigError extends Error {
  readonly code = 'ERR_INVALID_CONFIG';
  /** Every problem found in the file (the first is the one the message and `field` name); empty for a file-level problem. */
  readonly problems: readonly { field: string; message: string }[];
  constructor(
    /** The file, as given. */
    readonly file: string,
    /** The path inside it (`ports[1].port`), or undefined for a file-level problem. */
    readonly field: string | undefined,
    detail: string,
    problems?: readonly { field: string; message: string }[],
  ) {
    super(capText(field ? `${shownFile(file)}: ${field}: ${clipQuoted(detail)}` : `${shownFile(file)}: ${clipQuoted(detail)}`));
    this.name = 'ConfigError';
    this.problems = problems?.length ? problems.map((p) => ({ field: p.field, message: capText(clipQuoted(p.message)) })) : field ? [{ field, message: capText(clipQuoted(detail)) }] : [];
  }

  /** One line per problem, `file: field: message` (the message alone for a file-level problem). */
  lines(): string[] {
    if (this.problems.length === 0) return [this.message];
    return this.problems.map((p) => capText(`${shownFile(this.file)}: ${p.field}: ${p.message}`));
  }
}

/** A path is shown whole unless it is absurdly long (the start and the end say which file). */
const shownFile = (file: string) => (file.length > 200 ? `${file.slice(0, 120)}…${file.slice(-60)}` : file);

/** The error for `problems` (at least one) found in `file`. */
function configError(file: string, problems: readonly { field: string; message: string }[]): ConfigError {
  return new ConfigError(file, problems[0].field, problems[0].message, problems);
}

/**
 * Parses a config file's text: JSON when `name` ends in `.json`, YAML for `.yaml`/`.yml`. `name`
 * (the file's name or path) is also what errors name. Refuses duplicate keys, YAML alias bombs and
 * nesting deeper than a config has; a UTF-8 byte-order mark is dropped. Throws {@link ConfigError}.
 */
export function parseConfigText(text: string, name: string): unknown {
  const file = name;
  if (text.startsWith('\uFEFF')) text = text.slice(1); // a UTF-8 byte-order mark, as some editors write
  try {
    return parseText(file, text);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    // A parser giving up (nesting too deep for the stack, say) is still about this file.
    throw new ConfigError(file, undefined, `cannot be parsed: ${String((e as Error).message ?? e).slice(0, 120)}`);
  }
}

/** JSON.parse keeps the last of two equal keys without a word; a config says so, as for YAML. */
function checkJsonKeysUnique(file: string, text: string): void {
  let dup;
  try {
    dup = parseDocument(text, { uniqueKeys: true }).errors.find((e) => e.code === 'DUPLICATE_KEY');
  } catch {
    return; // JSON that YAML cannot read: JSON.parse had the last word
  }
  if (!dup) return;
  const at = dup.linePos?.[0];
  throw new ConfigError(at ? `${file}:${at.line}:${at.col}` : file, undefined, 'not valid JSON here: a key is given twice in one object (JSON.parse would silently keep the last)');
}

/** Deeper than this, a config is not one (a cluster's has a few levels); parsers are not asked to recurse into it. */
const MAX_NESTING = 64;

/**
 * The deepest nesting of `[`/`{` in JSON or YAML flow syntax, outside quoted strings and comments,
 * found in one linear pass: recursive parsers must never see a file nested deep enough to exhaust
 * the stack (a stack overflow inside a parser can take the whole process down, not just throw).
 */
function nesting(text: string, yaml: boolean): number {
  let depth = 0;
  let max = 0;
  let quote = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = '';
      continue;
    }
    if (c === '"' || (yaml && c === "'")) quote = c;
    else if (yaml && c === '#' && (i === 0 || /\s/.test(text[i - 1]))) {
      const nl = text.indexOf('\n', i);
      i = nl < 0 ? text.length : nl;
    } else if (c === '[' || c === '{') max = Math.max(max, ++depth);
    else if ((c === ']' || c === '}') && depth > 0) depth--;
  }
  return max;
}

function parseText(file: string, text: string): unknown {
  const ext = extname(file).toLowerCase();
  if (nesting(text, ext !== '.json') > MAX_NESTING)
    throw new ConfigError(file, undefined, `is nested more than ${MAX_NESTING} levels deep; a cluster config has a few levels (see schema/cluster.schema.json)`);
  if (ext === '.json') {
    try {
      const value = JSON.parse(text) as unknown;
      checkJsonKeysUnique(file, text);
      return value;
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      const msg = (e as Error).message;
      const pos = /position (\d+)/.exec(msg);
      if (!pos) throw new ConfigError(file, undefined, `not valid JSON: ${msg}`);
      const before = text.slice(0, Number(pos[1])).split('\n');
      throw new ConfigError(`${file}:${before.length}:${before.at(-1)!.length + 1}`, undefined, `not valid JSON: ${msg.replace(/ in JSON at position \d+.*$/, '')}`);
    }
  }
  if (ext === '.yaml' || ext === '.yml') {
    const doc = parseDocument(text, { uniqueKeys: true });
    const err = doc.errors[0];
    if (err) {
      const at = err.linePos?.[0];
      const what = err.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
      throw new ConfigError(at ? `${file}:${at.line}:${at.col}` : file, undefined, `not valid YAML: ${what}`);
    }
    try {
      return doc.toJS({ maxAliasCount: MAX_YAML_ALIASES }) as unknown;
    } catch (e) {
      if (/alias/i.test((e as Error).message))
        throw new ConfigError(file, undefined, `its YAML aliases expand too far (a resource-exhaustion 'alias bomb'; at most ${MAX_YAML_ALIASES} alias uses); write the values out`);
      throw e;
    }
  }
  throw new ConfigError(file, undefined, `unknown file type '${ext || '(none)'}'; name it .json, .yaml or .yml`);
}

/**
 * Checks a parsed config against the spec's one definition ({@link validateSpec}: the schema, then
 * the rules between fields) in its data form: no functions, health checks or sysctls. Throws a
 * {@link ConfigError} naming `file`, whose `problems` lists every problem found.
 */
export function checkConfig(file: string, value: unknown): { spec: ClusterSpec; resolved: ResolvedSpec } {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new ConfigError(file, undefined, `expected a mapping of fields (name, vip, uplink, …), got ${value == null ? 'an empty file' : Array.isArray(value) ? 'a list' : showValue(value)}`);
  let result;
  try {
    result = validateSpec(value, { data: true });
  } catch (e) {
    throw new ConfigError(file, undefined, `cannot be checked: ${String((e as Error)?.message ?? e).slice(0, 200)}`);
  }
  if (!result.resolved) throw configError(file, result.problems);
  return { spec: value as ClusterSpec, resolved: result.resolved };
}

/**
 * An {@link InvalidArgumentError} from the library as a config error of `file`, with all its
 * problems. Fields named relative to the OpenVPN options (`pool.base`) get their full path.
 */
export function fromInvalidArgument(file: string, spec: Partial<ClusterSpec>, e: InvalidArgumentError): ConfigError {
  const ovpn = (spec.service as { openvpn?: object } | undefined)?.openvpn;
  const full = (field: string) => {
    const head = field.split(/[.[]/)[0];
    return !Object.hasOwn(ClusterSpecSchema.properties, head) && ovpn && Object.hasOwn(OpenvpnOptionsSchema.properties, head) ? `service.openvpn.${field}` : field;
  };
  return configError(file, e.problems.map((p) => ({ field: full(p.field), message: p.message })));
}

function fileKind(st: { isDirectory(): boolean; isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSocket(): boolean }): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * A config file's text: a regular file only (a FIFO, a device or a directory is refused at once,
 * never read), at most {@link MAX_CONFIG_BYTES}, UTF-8 (a byte-order mark is dropped).
 */
export async function readConfigFile(file: string): Promise<string> {
  if (typeof file !== 'string' || file.length === 0 || file.includes('\0'))
    throw new ConfigError(showValue(file), undefined, 'give the path of a .json, .yaml or .yml file');
  let fh;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
    fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new ConfigError(file, undefined, 'no such file');
    // A socket (or a device without a driver) cannot even be opened: say what it is.
    const st = await stat(file).catch(() => undefined);
    if (st && !st.isFile()) throw new ConfigError(file, undefined, `is ${fileKind(st)}, not a regular file; give the path of a .json, .yaml or .yml file`);
    throw new ConfigError(file, undefined, `cannot read it: ${err.code === 'EACCES' ? 'permission denied' : err.message}`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new ConfigError(file, undefined, `is ${fileKind(st)}, not a regular file; give the path of a .json, .yaml or .yml file`);
    const tooBig = () => new ConfigError(file, undefined, `is larger than ${MAX_CONFIG_BYTES / 1024} KiB; a cluster config is a few KiB at most`);
    if (st.size > MAX_CONFIG_BYTES) throw tooBig();
    // Read one byte past the limit: files whose size stat does not know (in /proc) are capped too.
    const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, length, buf.length - length, null).catch((e: NodeJS.ErrnoException) => {
        throw new ConfigError(file, undefined, `cannot read it: ${e.code ?? e.message}`);
      });
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > MAX_CONFIG_BYTES) throw tooBig();
    }
    const bytes = buf.subarray(0, length);
    if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff))
      throw new ConfigError(file, undefined, 'is UTF-16 text (it starts with a UTF-16 byte-order mark); save it as UTF-8');
    try {
      return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
    } catch {
      throw new ConfigError(file, undefined, 'is not UTF-8 text; save it as UTF-8');
    }
  } finally {
    await fh.close();
  }
}

/** Reads, parses and checks a config file. Throws {@link ConfigError} naming the file; creates nothing. */
export async function loadConfig(file: string): Promise<ClusterSpec> {
  const text = await readConfigFile(file);
  return checkConfig(file, parseConfigText(text, file)).spec;
}
