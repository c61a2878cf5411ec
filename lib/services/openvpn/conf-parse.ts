/**
 * OpenVPN's config file grammar, read as OpenVPN 2.6 reads it (options.c `parse_line`,
 * `read_config_file`, `read_inline_file`), with the file and line of every directive:
 *
 * - one directive per line: its name, then up to 15 parameters, separated by whitespace;
 * - a parameter is bare, `"double quoted"` (a backslash escapes the next character: `\"`, `\\`,
 *   `\ `) or `'single quoted'` (no escapes); outside single quotes a backslash escapes the next
 *   character of a bare parameter too (`a\ b` is one parameter);
 * - a `#` or `;` where a parameter would start ends the line (a comment, even after a backslash);
 *   inside a parameter it is an ordinary character;
 * - a leading `--` on the name is dropped (`--verb 3` in a file is `verb 3`); a UTF-8 byte-order
 *   mark on the first line is skipped; a line has at most 255 characters;
 * - a line that is one `<tag>` opens an inline file: every following line up to the one that
 *   starts (after blanks) with `</tag>` is its content;
 * - `config <file>` reads another file in place, relative to the working directory (the config
 *   file's directory here, as under Debian's `openvpn-server@` unit; a `cd` changes it, as OpenVPN
 *   does), at most {@link MAX_INCLUDE_DEPTH} levels deep.
 *
 * Pure except for reading the files it is given (synchronously: it runs while a spec is checked).
 * @module
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';

/** OpenVPN's own include limit (options.c: "Maximum recursive include levels exceeded"). */
export const MAX_INCLUDE_DEPTH = 10;
/** OPTION_LINE_SIZE: a longer line is refused by OpenVPN ("Maximum option line length (256) exceeded"). */
export const MAX_LINE = 255;
/** MAX_PARMS: a directive and at most 15 parameters. */
export const MAX_PARAMS = 16;
/** A config (with its includes and inline keys) is a few KiB; this is far beyond any real one. */
export const MAX_CONF_BYTES = 1 << 20;

/** One directive as OpenVPN would see it, with where it was written. */
export interface ConfDirective {
  /** The option's name, without a leading `--` (OpenVPN's names are case-sensitive). */
  name: string;
  /** Its parameters, unquoted. */
  args: string[];
  /** The content of an inline file (`<ca>` … `</ca>`), its lines joined with `\n`, ending in one. */
  inline?: string;
  /** The file it was read from (absolute). */
  file: string;
  /** Its line in that file (1-based; an inline file's opening tag). */
  line: number;
  /** The working directory OpenVPN would resolve its relative paths against (changed by `cd`). */
  cwd: string;
}

/** A config OpenVPN could not read, at `file:line`. */
export class ConfSyntaxError extends Error {
  readonly code = 'ERR_OPENVPN_CONFIG';
  constructor(
    readonly file: string,
    readonly line: number,
    readonly detail: string,
  ) {
    super(`${file}:${line}: ${detail}`);
    this.name = 'ConfSyntaxError';
  }
}

const space = (c: string) => c === ' ' || c === '\t' || c === '\r' || c === '\n' || c === '\v' || c === '\f';

/**
 * The parameters of one line, as OpenVPN's parse_line splits them; undefined for a blank or
 * comment line. Throws a message (without position) for an unclosed quote or too many parameters.
 */
export function splitLine(line: string): string[] | undefined {
  const out: string[] = [];
  type State = 'initial' | 'bare' | 'dquote' | 'squote';
  let state: State = 'initial';
  let word = '';
  let backslash = false;
  const done = () => {
    out.push(word);
    word = '';
    state = 'initial';
  };
  for (const c of line) {
    if (!backslash && c === '\\' && state !== 'squote') {
      backslash = true;
      continue;
    }
    if (state === 'initial') {
      if (!space(c)) {
        if (c === '#' || c === ';') break;
        if (!backslash && c === '"') state = 'dquote';
        else if (!backslash && c === "'") state = 'squote';
        else {
          word = c;
          state = 'bare';
        }
      }
    } else if (state === 'bare') {
      if (!backslash && space(c)) done();
      else word += c;
    } else if (state === 'dquote') {
      if (!backslash && c === '"') done();
      else word += c;
    } else if (c === "'") done();
    else word += c;
    backslash = false;
  }
  if (state === 'dquote') throw new Error('no closing quotation (") on this line');
  if (state === 'squote') throw new Error("no closing quotation (') on this line");
  if (state === 'bare') done();
  if (out.length > MAX_PARAMS) throw new Error(`more than ${MAX_PARAMS - 1} parameters (OpenVPN reads at most ${MAX_PARAMS - 1})`);
  return out.length ? out : undefined;
}

export interface ParseOptions {
  /** The working directory relative paths start from. Default: the file's directory. */
  cwd?: string;
  /** Reads an included file (default: the file system, regular files of at most 1 MiB). */
  read?: (path: string) => string;
  /** How deep this file is included (0: the main config). */
  depth?: number;
}

/** Reads a config file for the parser: a regular file, at most {@link MAX_CONF_BYTES}, UTF-8. */
export function readConfFile(path: string): string {
  const st = statSync(path);
  if (!st.isFile()) throw Object.assign(new Error(`${path} is not a regular file`), { code: 'ENOTFILE' });
  if (st.size > MAX_CONF_BYTES) throw Object.assign(new Error(`${path} is larger than ${MAX_CONF_BYTES >> 10} KiB`), { code: 'EFBIG' });
  return readFileSync(path, 'utf8');
}

/**
 * The directives of config text `text` read from `file`, `config` includes read in their place
 * (the `config` directive itself does not appear). Throws {@link ConfSyntaxError} at the first
 * line OpenVPN would refuse to read.
 */
export function parseConf(text: string, file: string, o: ParseOptions = {}): ConfDirective[] {
  const depth = o.depth ?? 0;
  const read = o.read ?? readConfFile;
  let cwd = o.cwd ?? dirname(file);
  const out: ConfDirective[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    let raw = lines[i];
    if (i === lines.length - 1 && raw === '') break;
    if (i === 0 && raw.startsWith('\uFEFF')) raw = raw.slice(1);
    if (raw.includes('\0')) throw new ConfSyntaxError(file, n, 'contains a NUL character');
    if (raw.replace(/\r$/, '').length > MAX_LINE)
      throw new ConfSyntaxError(file, n, `is ${raw.length} characters long; OpenVPN reads at most ${MAX_LINE} per line (put long values, such as keys, in an inline <tag> block)`);
    let p: string[] | undefined;
    try {
      p = splitLine(raw);
    } catch (e) {
      throw new ConfSyntaxError(file, n, (e as Error).message);
    }
    if (!p) continue;
    if (p[0].startsWith('--')) p[0] = p[0].slice(2);
    if (p.length === 1 && p[0].length > 2 && p[0].startsWith('<') && p[0].endsWith('>')) {
      // An inline file: every line up to the closing tag, verbatim.
      const tag = p[0].slice(1, -1);
      const close = `</${tag}>`;
      const body: string[] = [];
      let j = i + 1;
      for (; j < lines.length; j++) {
        if (lines[j].replace(/^\s+/, '').startsWith(close)) break;
        body.push(lines[j].replace(/\r$/, ''));
      }
      if (j >= lines.length) throw new ConfSyntaxError(file, n, `<${tag}> is never closed: add a line ${close} after its content`);
      out.push({ name: tag, args: [], inline: body.length ? `${body.join('\n')}\n` : '', file, line: n, cwd });
      i = j;
      continue;
    }
    const [name, ...args] = p;
    if (name === '') throw new ConfSyntaxError(file, n, 'starts with an empty option name');
    if (name === 'config') {
      if (args.length !== 1) throw new ConfSyntaxError(file, n, `'config' takes one file, got ${args.length} parameters`);
      if (depth + 1 > MAX_INCLUDE_DEPTH)
        throw new ConfSyntaxError(file, n, `includes nest more than ${MAX_INCLUDE_DEPTH} levels deep (does a file include itself?); OpenVPN stops there too`);
      const target = isAbsolute(args[0]) ? args[0] : resolve(cwd, args[0]);
      let included: string;
      try {
        included = read(target);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EACCES' ? 'permission denied' : err.message;
        throw new ConfSyntaxError(file, n, `'config ${args[0]}': cannot read ${target}: ${why}`);
      }
      out.push(...parseConf(included, target, { cwd, read, depth: depth + 1 }));
      // A `cd` inside the included file changes the directory for what follows, as in OpenVPN.
      const last = out.at(-1);
      if (last) cwd = last.name === 'cd' && last.args[0] ? resolve(last.cwd, last.args[0]) : last.cwd;
      continue;
    }
    out.push({ name, args, file, line: n, cwd });
    if (name === 'cd' && args[0] !== undefined) cwd = resolve(cwd, args[0]);
  }
  return out;
}

/** Reads and parses the config file `path` (absolute, or relative to the process's directory). */
export function loadConf(path: string, o: Omit<ParseOptions, 'depth'> = {}): ConfDirective[] {
  const file = resolve(path);
  const read = o.read ?? readConfFile;
  return parseConf(read(file), file, { ...o, read });
}

/** One parameter written so that OpenVPN reads it back unchanged. */
export function quoteParam(p: string): string {
  if (p !== '' && /^[^\s"'\\#;<]+$/.test(p)) return p;
  return `"${p.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** A directive as config text (an inline file as its `<tag>` block). */
export function renderDirective(d: Pick<ConfDirective, 'name' | 'args' | 'inline'>): string {
  if (d.inline !== undefined) return `<${d.name}>\n${d.inline}${d.inline.endsWith('\n') || d.inline === '' ? '' : '\n'}</${d.name}>`;
  return [d.name, ...d.args].map(quoteParam).join(' ');
}

/** Where a directive was written: `file:line`. */
export const at = (d: Pick<ConfDirective, 'file' | 'line'>) => `${d.file}:${d.line}`;
