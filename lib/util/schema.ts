/**
 * The structural pass shared by every definition of user input (the cluster spec, service
 * definitions, OpenVPN options). Definitions are TypeBox schemas: one object that is at once the
 * TypeScript type (`Static<typeof S>`), the JSON Schema published in schema/cluster.schema.json and
 * the description {@link structuralProblems} validates against.
 *
 * Why TypeBox: its schemas ARE JSON Schema (draft-07 keywords, serialisable as they are), so the
 * published schema cannot drift from what is checked, and its `Static` gives the TypeScript types
 * from the same object. zod 4 can emit JSON Schema too, but as a conversion of its own model, and
 * its messages would still need rewriting; here the walker reads the JSON Schema keywords directly.
 *
 * What the schema cannot say well is how to phrase a refusal: each node may carry (under symbols,
 * so they never reach the JSON output) the message for a value that fails it, the message for a
 * missing key, and for unions of objects how to tell the branches apart. Every problem is
 * reported, not only the first; a definition's semantic checks (address classes, overlaps, PEM…)
 * run afterwards, on the fields whose structure is sound.
 * @module
 */
import { Type, type SchemaOptions, type TSchema, type TUnsafe } from '@sinclair/typebox';
import { InvalidArgumentError } from './errors.js';
import { got, join, nearest } from './shape.js';

/** One thing wrong with the input: where (`ports[1].port`) and what to fix. */
export interface Problem {
  field: string;
  message: string;
}

const ANNOTATIONS = Symbol('netns-cluster.schema');

/** How a schema node's refusals are worded, and how its unions are told apart. */
export interface Annotations {
  /** The message for a value that fails this node (wrong type, out of range, bad pattern, wrong count). */
  message?: (v: unknown, field: string) => string;
  /** The message when this node is a required property and it is missing. */
  missing?: string;
  /** For an object: the message for an unknown key, instead of "unknown field; did you mean…". */
  unknown?: (key: string) => string | undefined;
  /** For an object: keys it accepts but does not list in messages (`$schema`). */
  quiet?: readonly string[];
  /**
   * For an object: keys a definition written in code may also have (functions such as prepare,
   * healthCheck); the walker lets them pass when asked to (`runtime`), and TypeScript checks them.
   */
  runtimeKeys?: readonly string[];
  /** For a union of objects, each with its own required key: how to tell which one is meant. */
  choice?: { keys: readonly string[]; none: string; many: string; fallback?: number };
  /** For a union of one value and a list of them: a list of one is named like the value (`vip`, not `vip[0]`). */
  oneOrList?: true;
}

type Node = TSchema & { [ANNOTATIONS]?: Annotations };

/** `schema` with `a` attached (under a symbol: the JSON Schema output does not carry it). */
export function annotate<T extends TSchema>(schema: T, a: Annotations): T {
  (schema as Node)[ANNOTATIONS] = { ...(schema as Node)[ANNOTATIONS], ...a };
  return schema;
}

const ann = (s: Node): Annotations => s[ANNOTATIONS] ?? {};

/** The text of the refusal `check` throws for `v` (without its field), or undefined if it accepts `v`. */
export function refusal(check: () => unknown): string | undefined {
  try {
    check();
    return undefined;
  } catch (e) {
    if (!(e instanceof InvalidArgumentError)) throw e;
    return e.message.startsWith(`${e.field}: `) ? e.message.slice(e.field.length + 2) : e.message;
  }
}

/** An integer from `min` to `max`. */
export function Int(min: number, max: number, options: SchemaOptions = {}) {
  return annotate(Type.Integer({ minimum: min, maximum: max, ...options }), { message: (v) => `must be an integer from ${min} to ${max}, ${got(v, 'integer')}` });
}

/** One of `values` (strings). */
export function Enum<const T extends readonly string[]>(values: T, options: SchemaOptions = {}): TUnsafe<T[number]> {
  const list = values.length === 2 ? `'${values[0]}' or '${values[1]}'` : `one of ${values.join(', ')}`;
  return annotate(Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options }), { message: (v) => `must be ${list}, ${got(v)}` });
}

export function Bool(options: SchemaOptions = {}) {
  return annotate(Type.Boolean(options), { message: (v) => `must be true or false, ${got(v, 'boolean')}` });
}

/** A value or a list of 1 to `max` of them. `list(v)` words a bad list (too long, empty). */
export function OneOrList<T extends TSchema>(item: T, o: { min: number; max: number; list: (v: unknown[]) => string } & SchemaOptions) {
  const { min, max, list, ...options } = o;
  const many = annotate(Type.Array(item, { minItems: min, maxItems: max }), { message: (v) => list(v as unknown[]) });
  return annotate(Type.Union([item, many], options), { oneOrList: true });
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function leafFits(s: Node, v: unknown): boolean {
  switch (s.type) {
    case 'string':
      if (typeof v !== 'string') return false;
      if (s.minLength !== undefined && v.length < s.minLength) return false;
      if (s.maxLength !== undefined && v.length > s.maxLength) return false;
      if (s.pattern !== undefined && !new RegExp(s.pattern, 'u').test(v)) return false;
      break;
    case 'integer':
    case 'number':
      if (typeof v !== 'number' || !Number.isFinite(v) || (s.type === 'integer' && !Number.isInteger(v))) return false;
      if (s.minimum !== undefined && v < s.minimum) return false;
      if (s.maximum !== undefined && v > s.maximum) return false;
      break;
    case 'boolean':
      if (typeof v !== 'boolean') return false;
      break;
  }
  if (s.enum && !(s.enum as unknown[]).includes(v)) return false;
  return true;
}

function generic(s: Node, v: unknown): string {
  const what = s.type === 'object' ? 'an object' : s.type === 'array' ? 'a list' : s.type === 'integer' ? 'an integer' : s.type ? `a ${s.type}` : 'a valid value';
  return `expected ${what}, ${got(v, s.type === 'integer' || s.type === 'number' || s.type === 'boolean' ? s.type : undefined)}`;
}

/** The keys an object node lists in its messages. */
function listedKeys(s: Node, runtime: boolean): string[] {
  const a = ann(s);
  return [...Object.keys(s.properties ?? {}).filter((k) => !a.quiet?.includes(k)), ...(runtime ? (a.runtimeKeys ?? []) : [])];
}

export interface WalkOptions {
  /** The input was written in code: an object's runtimeKeys (functions, health checks) are let through. */
  runtime?: boolean;
}

/**
 * Every structural problem of `value` against `schema`, in the order of the schema's properties.
 * `field` is where `value` sits (`''` for the top of a spec: its keys are named bare).
 */
export function structuralProblems(schema: TSchema, value: unknown, field = '', o: WalkOptions = {}): Problem[] {
  const out: Problem[] = [];
  walk(schema as Node, value, field, out, o);
  return out;
}

function walk(s: Node, v: unknown, field: string, out: Problem[], o: WalkOptions, known?: string[]): void {
  const a = ann(s);
  const fail = () => void out.push({ field: field || 'spec', message: a.message?.(v, field || 'spec') ?? generic(s, v) });
  if (a.oneOrList) {
    const [item, many] = s.anyOf as Node[];
    if (!Array.isArray(v)) return walk(item, v, field, out, o);
    if ((many.minItems !== undefined && v.length < many.minItems) || (many.maxItems !== undefined && v.length > many.maxItems))
      return void out.push({ field, message: ann(many).message!(v, field) });
    v.forEach((x, i) => walk(item, x, v.length > 1 ? join(field, i) : field, out, o));
    return;
  }
  if (a.choice) {
    if (!isObject(v)) return fail();
    const branches = s.anyOf as Node[];
    const { keys, none, many, fallback } = a.choice;
    const present = keys.map((k, i) => (v[k] !== undefined ? i : -1)).filter((i) => i >= 0);
    if (present.length > 1) return void out.push({ field, message: many });
    const all = [...new Set(branches.flatMap((b, i) => listedKeys(b, o.runtime === true && (i === (present[0] ?? fallback)))))];
    const pick = present[0] ?? fallback;
    if (pick !== undefined) return walkObject(branches[pick], v, field, out, o, all);
    const before = out.length;
    for (const k of Object.keys(v)) if (!all.includes(k)) out.push(unknownKey(s, k, field, all));
    if (out.length === before) out.push({ field, message: none });
    return;
  }
  if (s.anyOf) {
    for (const b of s.anyOf as Node[]) if (structuralProblems(b, v, field, o).length === 0) return;
    return fail();
  }
  switch (s.type) {
    case 'object':
      if (!isObject(v)) return fail();
      return walkObject(s, v, field, out, o, known);
    case 'array': {
      if (!Array.isArray(v)) return fail();
      if ((s.minItems !== undefined && v.length < s.minItems) || (s.maxItems !== undefined && v.length > s.maxItems)) return fail();
      // A tuple: one schema per position.
      const items = s.items as Node | Node[] | undefined;
      if (items) v.forEach((x, i) => walk(Array.isArray(items) ? items[i] : items, x, join(field, i), out, o));
      return;
    }
    default:
      if (!leafFits(s, v)) fail();
  }
}

function unknownKey(s: Node, k: string, field: string, known: string[]): Problem {
  const special = ann(s).unknown?.(k);
  const near = nearest(k, known);
  return { field: join(field, k), message: special ?? `unknown field${near ? `; did you mean '${near}'?` : ''}; known fields are ${known.join(', ')}` };
}

function walkObject(s: Node, v: Record<string, unknown>, field: string, out: Problem[], o: WalkOptions, known?: string[]): void {
  const a = ann(s);
  const props = (s.properties ?? {}) as Record<string, Node>;
  const runtime = o.runtime ? (a.runtimeKeys ?? []) : [];
  const values = s.patternProperties ? (Object.values(s.patternProperties)[0] as Node) : typeof s.additionalProperties === 'object' ? (s.additionalProperties as Node) : undefined;
  const listed = known ?? listedKeys(s, o.runtime === true);
  // A required key that an unknown one was probably meant to be: "did you mean" says it already.
  const meant = new Set<string>();
  for (const k of Object.keys(v)) {
    if (Object.hasOwn(props, k) || runtime.includes(k)) continue;
    if (values) walk(values, v[k], join(field, k), out, o);
    else {
      out.push(unknownKey(s, k, field, listed));
      const near = nearest(k, listed);
      if (near) meant.add(near);
    }
  }
  for (const [k, p] of Object.entries(props)) {
    const x = v[k];
    if (x !== undefined) walk(p, x, join(field, k), out, o);
    else if (s.required?.includes(k) && !meant.has(k)) out.push({ field: join(field, k), message: ann(p).missing ?? 'is missing' });
  }
}

/** The error for `problems` (at least one): the first one's field and message, and all of them in `problems`. */
export function invalid(problems: Problem[]): InvalidArgumentError {
  return new InvalidArgumentError(problems[0].field, problems[0].message, problems);
}

/** Runs `fn`; what it refuses (one problem or several) goes to `out` instead of being thrown. Returns its value, or undefined. */
export function collect<T>(out: Problem[], fn: () => T): T | undefined {
  try {
    return fn();
  } catch (e) {
    if (!(e instanceof InvalidArgumentError)) throw e;
    out.push(...e.problems);
    return undefined;
  }
}

/** Throws the problems found by `fn` (which pushes them to the list it is given), if any. */
export function throwProblems(problems: Problem[]): void {
  if (problems.length) throw invalid(problems);
}
