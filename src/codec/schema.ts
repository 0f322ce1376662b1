import { CodecError } from './errors.js';
import { makeReader, makeWriter, type FastReader, type FastWriter } from './fast.js';

/**
 * Field dictionaries ("schemas"): the names, kinds and scales the wire does not repeat.
 * A message names its schema by id (docs/codec.md §Schemas). Ids 0–127 are defined by the spec
 * and fixed forever (a field is never changed once published — add a new schema instead);
 * 128–16383 are for a site's own schemas, which encoder and cloud decoder must both be given.
 */

export interface NumberFieldSpec {
  name: string;
  type: 'number';
  /** Decimal digits carried: the wire integer is round(value × 10^scale) − base. 0–9. */
  scale: number;
  /** Offset in scaled units, chosen near the usual value so the varint stays short. Default 0. */
  base?: number;
  /** Documentation only (never on the wire). */
  unit?: string;
}

export interface BoolFieldSpec {
  name: string;
  type: 'bool';
}

export type FieldSpec = NumberFieldSpec | BoolFieldSpec;

export interface SchemaSpec {
  id: number;
  name: string;
  fields: readonly FieldSpec[];
}

/** Largest |round(v×10^scale) − base| carried in a field, so every batch delta's zigzag stays a safe integer. */
export const MAX_FIELD_INT = 2 ** 51 - 1;
export const MAX_FIELDS = 64;
export const MAX_SCHEMA_ID = 16383;
export const SITE_SCHEMA_MIN = 128;

/** Precomputed per-schema tables: the hot paths index typed arrays, never look specs up by name. */
export interface CompiledSchema {
  readonly id: number;
  readonly name: string;
  readonly n: number;
  readonly names: readonly string[];
  /** 1 for bool fields. */
  readonly isBool: Uint8Array;
  /** 10^scale per field (1 for bools). */
  readonly pow: Float64Array;
  readonly base: Float64Array;
  readonly index: ReadonlyMap<string, number>;
  /** Bytes of the 2-bit state map: ceil(n / 4). */
  readonly stateBytes: number;
  readonly numCount: number;
  readonly boolCount: number;
  /** Indices of the number fields, in order. */
  readonly numIdx: Int32Array;
  /** Generated fast paths for ≤ 8 bools (see fast.ts); undefined means "always use the tables". */
  readonly writeFast: FastWriter | undefined;
  readonly readFast: FastReader | undefined;
}

export interface SchemaRegistry {
  get(id: number): CompiledSchema | undefined;
  readonly all: readonly CompiledSchema[];
}

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;

export function compileSchema(spec: SchemaSpec): CompiledSchema {
  const bad = (why: string): never => {
    throw new CodecError('EGW_CODEC_SCHEMA', `schema ${spec.id} (${spec.name}): ${why}`);
  };
  if (!Number.isInteger(spec.id) || spec.id < 0 || spec.id > MAX_SCHEMA_ID) bad('id must be 0–16383');
  if (spec.fields.length > MAX_FIELDS) bad(`more than ${MAX_FIELDS} fields`);
  const n = spec.fields.length;
  const isBool = new Uint8Array(n);
  const pow = new Float64Array(n);
  const base = new Float64Array(n);
  const index = new Map<string, number>();
  let numCount = 0;
  spec.fields.forEach((f, i) => {
    // '__proto__' matches the value-name pattern but would be a prototype write on a plain object.
    if (!NAME_RE.test(f.name) || f.name === '__proto__') bad(`field name ${JSON.stringify(f.name)} is not allowed`);
    if (index.has(f.name)) bad(`field ${f.name} declared twice`);
    index.set(f.name, i);
    if (f.type === 'bool') {
      isBool[i] = 1;
      pow[i] = 1;
      return;
    }
    if (!Number.isInteger(f.scale) || f.scale < 0 || f.scale > 9) bad(`field ${f.name}: scale must be 0–9`);
    const b = f.base ?? 0;
    if (!Number.isInteger(b) || Math.abs(b) > MAX_FIELD_INT) bad(`field ${f.name}: base must be an integer`);
    pow[i] = 10 ** f.scale;
    base[i] = b;
    numCount++;
  });
  return {
    id: spec.id,
    name: spec.name,
    n,
    names: spec.fields.map((f) => f.name),
    isBool,
    pow,
    base,
    index,
    stateBytes: (n + 3) >> 2,
    numCount,
    boolCount: n - numCount,
    numIdx: Int32Array.from(spec.fields.flatMap((f, i) => (f.type === 'number' ? [i] : []))),
    writeFast: n - numCount <= 8 ? makeWriter(spec, MAX_FIELD_INT) : undefined,
    readFast: n - numCount <= 8 ? makeReader(spec, MAX_FIELD_INT) : undefined,
  };
}

/**
 * The schemas defined by this version of the spec (docs/codec.md §Schemas). Frozen: changing a
 * published schema would make old messages decode to wrong values, so new layouts get new ids.
 */
export const BUILTIN_SCHEMAS: readonly SchemaSpec[] = Object.freeze([
  { id: 0, name: 'by-name', fields: [] },
  {
    id: 1,
    name: 'environment',
    fields: [
      { name: 'temperature', type: 'number', scale: 2, base: 2000, unit: '°C' },
      { name: 'humidity', type: 'number', scale: 2, base: 5000, unit: '%RH' },
      { name: 'pressure', type: 'number', scale: 2, base: 101325, unit: 'hPa' },
      { name: 'voltage', type: 'number', scale: 3, base: 3300, unit: 'V' },
      { name: 'online', type: 'bool' },
      { name: 'alarm', type: 'bool' },
      { name: 'low_battery', type: 'bool' },
    ],
  },
  {
    id: 2,
    name: 'power-meter',
    fields: [
      { name: 'voltage', type: 'number', scale: 1, base: 2300, unit: 'V' },
      { name: 'current', type: 'number', scale: 3, unit: 'A' },
      { name: 'power', type: 'number', scale: 1, unit: 'W' },
      { name: 'energy', type: 'number', scale: 3, unit: 'kWh' },
      { name: 'frequency', type: 'number', scale: 2, base: 5000, unit: 'Hz' },
      { name: 'power_factor', type: 'number', scale: 3, base: 1000 },
    ],
  },
  {
    id: 3,
    name: 'position',
    fields: [
      { name: 'lat', type: 'number', scale: 7, unit: '°' },
      { name: 'lon', type: 'number', scale: 7, unit: '°' },
      { name: 'alt', type: 'number', scale: 1, unit: 'm' },
      { name: 'speed', type: 'number', scale: 2, unit: 'm/s' },
      { name: 'fix', type: 'bool' },
    ],
  },
]);

/**
 * Builds a registry from the built-in schemas plus a site's own (ids 128–16383). Build it once at
 * start-up and pass it to encode/decode: the compiled tables are the codec's precomputed state.
 */
export function createRegistry(siteSchemas: readonly SchemaSpec[] = []): SchemaRegistry {
  const byId = new Map<number, CompiledSchema>();
  for (const s of BUILTIN_SCHEMAS) byId.set(s.id, compileSchema(s));
  for (const s of siteSchemas) {
    if (s.id < SITE_SCHEMA_MIN) {
      throw new CodecError('EGW_CODEC_SCHEMA', `site schema ${s.name}: id ${s.id} is reserved (use 128–16383)`);
    }
    if (byId.has(s.id)) throw new CodecError('EGW_CODEC_SCHEMA', `site schema ${s.name}: id ${s.id} used twice`);
    byId.set(s.id, compileSchema(s));
  }
  const all = [...byId.values()].sort((a, b) => a.id - b.id);
  // Two schemas with the same field set would make the encoder's choice depend on history.
  const sets = new Map<string, number>();
  for (const s of all) {
    const key = [...s.names].sort().join('\n');
    const other = sets.get(key);
    if (other !== undefined) {
      throw new CodecError('EGW_CODEC_SCHEMA', `schemas ${other} and ${s.id} have the same fields`);
    }
    sets.set(key, s.id);
  }
  // Built-in ids (0–127) by index: decode looks a schema up once per message.
  const low: (CompiledSchema | undefined)[] = Array.from({ length: SITE_SCHEMA_MIN }, (_, id) => byId.get(id));
  return { get: (id) => (id < SITE_SCHEMA_MIN ? low[id] : byId.get(id)), all };
}

export const DEFAULT_REGISTRY: SchemaRegistry = createRegistry();
