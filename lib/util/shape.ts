/**
 * The shape of user input, checked one way everywhere: how a bad value is shown in a message
 * ({@link show}: never more than {@link MAX_SHOWN} characters of it), objects and their keys
 * ({@link checkObject}: unknown keys get "did you mean"), and whole numbers ({@link checkInteger}:
 * a number written as a string says so). Every check throws an {@link InvalidArgumentError}
 * naming the field; none lets a raw TypeError through.
 * @module
 */
import { InvalidArgumentError } from './errors.js';

/** The most characters of a bad value a message echoes. */
export const MAX_SHOWN = 60;

/** The kind of a value as messages name it: `null`, `array`, `integer`, `number`, `string`, `object`, … */
export function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function clip(s: string): string {
  // Control characters (a newline, a NUL) are written as escapes, so a message stays one line.
  // eslint-disable-next-line no-control-regex
  const printable = /[\u0000-\u001f\u007f]/.test(s) ? JSON.stringify(s).slice(1, -1) : s;
  if (printable.length <= MAX_SHOWN) return `'${printable}'`;
  return `'${printable.slice(0, MAX_SHOWN - 1)}…' (${s.length} characters)`;
}

/**
 * A bad value, short: `'abc'` (clipped to {@link MAX_SHOWN} characters, with its length), `2`,
 * `null`, `a list of 3`, `an object`. Every message that echoes a value goes through this.
 */
export function show(v: unknown): string {
  switch (typeof v) {
    case 'string':
      return clip(v);
    case 'number':
    case 'boolean':
      return String(v).slice(0, MAX_SHOWN);
    case 'bigint':
      return `${String(v).slice(0, MAX_SHOWN)}n (a bigint)`;
    case 'undefined':
      return 'nothing';
    case 'symbol':
      return 'a symbol';
    case 'function':
      return 'a function';
  }
  if (v === null) return 'null';
  if (Array.isArray(v)) return v.length === 0 ? 'an empty list' : `a list of ${v.length}`;
  return 'an object';
}

/**
 * "got …" for a value of the wrong kind. A number or boolean written as a string says how to
 * write it: `got the string '2'; write 2 without quotes`.
 */
export function got(v: unknown, wanted?: 'integer' | 'number' | 'boolean'): string {
  if (typeof v === 'string' && wanted) {
    const t = v.trim();
    if ((wanted === 'boolean' && (t === 'true' || t === 'false')) || (wanted !== 'boolean' && t !== '' && Number.isFinite(Number(t)) && /^[-+]?[0-9.e+-]+$/i.test(t)))
      return `got the string ${show(v)}; write ${t} without quotes`;
    return `got the string ${show(v)}`;
  }
  return `got ${show(v)}`;
}

/** `a.b`, `a[3]`; a top-level key is itself. Keys are clipped like values. */
export function join(field: string, key: string | number): string {
  if (typeof key === 'number') return `${field}[${key}]`;
  const k = key.length > MAX_SHOWN ? `${key.slice(0, MAX_SHOWN - 1)}…` : key;
  return field ? `${field}.${k}` : k;
}

/** The known name `k` is probably a misspelling of: same but for case, a prefix, or one or two edits away. */
export function nearest(k: string, known: readonly string[]): string | undefined {
  if (k.length > 64) return undefined;
  const dist = (a: string, b: string) => {
    let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
      const cur = [i];
      for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
    return prev[b.length];
  };
  const lower = k.toLowerCase();
  return (
    known.find((p) => p.toLowerCase() === lower) ??
    (lower.length >= 3 ? known.find((p) => p.toLowerCase().startsWith(lower)) : undefined) ??
    known.find((p) => dist(p.toLowerCase(), lower) <= (p.length >= 5 ? 2 : 1)) ??
    // Two letters swapped: the same letters in another order.
    known.find((p) => p.length === lower.length && [...p.toLowerCase()].sort().join('') === [...lower].sort().join(''))
  );
}

/**
 * `v` as an object with only `known` keys. Not an object (null, a list, a string…): says what to
 * write instead (`example`). An unknown key: names it (`uplink.brige`) and the key it resembles.
 * `field` is the object's own path ('' for the top level, whose keys are named bare).
 */
export function checkObject(field: string, v: unknown, known: readonly string[], example: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvalidArgumentError(field || 'spec', `expected ${example}, ${got(v)}`);
  for (const k of Object.keys(v)) {
    if (known.includes(k)) continue;
    const near = nearest(k, known);
    throw new InvalidArgumentError(join(field, k), `unknown field${near ? `; did you mean '${near}'?` : ''}; known fields are ${known.join(', ')}`);
  }
  return v as Record<string, unknown>;
}

/** A whole number from `min` to `max`. */
export function checkInteger(field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw new InvalidArgumentError(field, `must be an integer from ${min} to ${max}, ${got(v, 'integer')}`);
  return v;
}

export function checkBoolean(field: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw new InvalidArgumentError(field, `must be true or false, ${got(v, 'boolean')}`);
  return v;
}

/** One of `choices` (strings), e.g. `'udp'` or `'tcp'`. */
export function checkChoice<T extends string>(field: string, v: unknown, choices: readonly T[]): T {
  if (typeof v !== 'string' || !(choices as readonly string[]).includes(v))
    throw new InvalidArgumentError(field, `must be ${choices.length === 2 ? `'${choices[0]}' or '${choices[1]}'` : `one of ${choices.join(', ')}`}, ${got(v)}`);
  return v as T;
}

/** A list, or one value standing for a list of one. */
export function checkList(field: string, v: unknown, max: number, example: string): unknown[] {
  const l = v === undefined ? [] : Array.isArray(v) ? v : [v];
  if (l.length > max) throw new InvalidArgumentError(field, `give at most ${max} values (${example}), got a list of ${l.length}`);
  return l;
}

/** Runs `fn`; an {@link InvalidArgumentError} it throws gets `prefix.` before its field. */
export function under<T>(prefix: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (!(e instanceof InvalidArgumentError)) throw e;
    const detail = e.message.startsWith(`${e.field}: `) ? e.message.slice(e.field.length + 2) : e.message;
    throw new InvalidArgumentError(e.field.startsWith(`${prefix}.`) ? e.field : `${prefix}.${e.field}`, detail);
  }
}
