import type { ReadingValue } from '../pipeline/reading.js';
import type { SchemaSpec } from './schema.js';

/**
 * Per-schema functions generated once when a schema is compiled (the "precomputed field tables"
 * of STYLE.md, as fast-json-stringify does for fastify): named property loads, constants inlined,
 * unrolled fields and object literals with a fixed shape are what V8 optimises best; a loop of
 * `values[names[i]]` over typed-array tables is not. Only the common case is generated — every
 * field present and holding an in-field value, nothing else in the reading — anything else takes
 * the general table-driven path. Field names are checked against the value-name pattern before
 * they get here and are embedded with JSON.stringify, so no input ever reaches generated code.
 */

/** Scratch shared with the generated code: previous wire integer and "seen in this message" per field. */
export interface FieldState {
  readonly prev: Float64Array;
  readonly seen: Uint8Array;
}

/**
 * Writes the number and bool fields of a reading (docs/codec.md §Reading: numbers, bools) at `p`
 * and returns the new position — or −1, having written nothing that counts and changed no
 * state, when the reading is not the common case. The caller has ensured room for
 * 10 bytes per number field + 1.
 */
export type FastWriter = (values: Record<string, ReadingValue>, b: Uint8Array, p: number, st: FieldState) => number;

/** Minimal cursor the generated reader needs (src/codec/decode.ts Cursor). */
export interface ReaderCursor {
  b: Uint8Array;
  pos: number;
  end: number;
  u(what: string): number;
  fail(code: 'EGW_CODEC_TRUNCATED' | 'EGW_CODEC_RANGE', msg: string): never;
}
/** Reads the numbers and bools of a reading without a state map and returns its values object. */
export type FastReader = (c: ReaderCursor, st: FieldState) => Record<string, ReadingValue>;

/** Unsigned LEB128 of a safe integer ≥ 0 at `p`; returns the new position. */
export function writeUvarintAt(b: Uint8Array, p: number, v: number): number {
  if (v >= 0x10000000) {
    // Above 28 bits: the low 28 with integer ops, then the rest (< 2^25) — one division, not
    // seven, and no float modulo (a call into C in V8).
    const hi = Math.floor(v / 0x10000000);
    const lo = v - hi * 0x10000000;
    b[p++] = (lo & 0x7f) | 0x80;
    b[p++] = ((lo >>> 7) & 0x7f) | 0x80;
    b[p++] = ((lo >>> 14) & 0x7f) | 0x80;
    b[p++] = ((lo >>> 21) & 0x7f) | 0x80;
    v = hi;
  }
  while (v >= 0x80) {
    b[p++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  b[p++] = v;
  return p;
}

export function makeWriter(spec: SchemaSpec, maxInt: number): FastWriter {
  const check: string[] = [];
  const write: string[] = ['let d = 0, z = 0;'];
  let bit = 0;
  spec.fields.forEach((f, i) => {
    const key = JSON.stringify(f.name);
    if (f.type === 'bool') {
      check.push(
        `const b${i} = v[${key}]; if (b${i} === true) bits |= ${1 << bit}; else if (b${i} !== false) return -1;`,
      );
      bit++;
      return;
    }
    const p = 10 ** f.scale;
    const base = f.base ?? 0;
    // Exact round trip (docs/codec.md §Why exact): the decoder's (m + base) / 10^scale is correctly rounded.
    check.push(
      `const v${i} = v[${key}]; if (typeof v${i} !== 'number') return -1;`,
      `const k${i} = Math.round(v${i} * ${p}); if (k${i} / ${p} !== v${i} || (v${i} === 0 && 1 / v${i} < 0)) return -1;`,
      `const m${i} = k${i} - ${base}; if (!(m${i} <= ${maxInt} && m${i} >= ${-maxInt})) return -1;`,
    );
    write.push(
      `d = seen[${i}] === 1 ? m${i} - prev[${i}] : m${i}; seen[${i}] = 1; prev[${i}] = m${i};`,
      'z = d >= 0 ? d * 2 : -d * 2 - 1;',
      'if (z < 0x80) b[p++] = z; else if (z < 0x4000) { b[p++] = (z & 0x7f) | 0x80; b[p++] = z >>> 7; } else p = wu(b, p, z);',
    );
  });
  if (bit > 0) write.push('b[p++] = bits;');
  const body = [
    'const prev = st.prev, seen = st.seen;',
    'let bits = 0;',
    ...check,
    // Values the schema does not name must travel by name: only an exact key set is the common case.
    `let n = 0; for (const _ in v) n++; if (n !== ${spec.fields.length}) return -1;`,
    ...write,
    'return p;',
  ];
  const factory = new Function('wu', `return function writeFast(v, b, p, st) {\n${body.join('\n')}\n};`) as (
    wu: typeof writeUvarintAt,
  ) => FastWriter;
  return factory(writeUvarintAt);
}

export function makeReader(spec: SchemaSpec, maxInt: number): FastReader {
  const lines: string[] = [
    'const b = c.b, e = c.end, prev = st.prev, seen = st.seen;',
    'let p = c.pos, f = 0, b0 = 0, b1 = 0, z = 0, m = 0;',
  ];
  const props: string[] = [];
  let bit = 0;
  spec.fields.forEach((f, i) => {
    const key = JSON.stringify(f.name);
    if (f.type === 'bool') {
      props.push(`${key}: (bits & ${1 << bit++}) !== 0`);
      return;
    }
    const p = 10 ** f.scale;
    const base = f.base ?? 0;
    // 1–2 byte varints inline (minimal form: a second byte of 0 is refused by c.u); longer ones
    // go through the checked reader (docs/codec.md §Varints).
    lines.push(
      // f: where the field begins, the offset of its errors (docs/codec.md §Errors).
      'f = p; b0 = p < e ? b[p] : 0x100;',
      // Zigzag with int ops where z < 2^14; arithmetic for longer ones (beyond 32 bits).
      'if (b0 < 0x80) { m = (b0 >>> 1) ^ -(b0 & 1); p += 1; }',
      'else { b1 = p + 1 < e ? b[p + 1] : 0x100;',
      '  if (b0 < 0x100 && b1 < 0x80 && b1 !== 0) { z = (b0 & 0x7f) | (b1 << 7); m = (z >>> 1) ^ -(z & 1); p += 2; }',
      `  else { c.pos = p; z = c.u(${key}); p = c.pos; m = z < 0x40000000 ? (z >>> 1) ^ -(z & 1) : z === 2 * Math.floor(z / 2) ? z / 2 : -(z + 1) / 2; } }`,
      `if (seen[${i}] === 1) m += prev[${i}]; else seen[${i}] = 1;`,
      `if (m > ${maxInt} || m < ${-maxInt}) { c.pos = f; c.fail('EGW_CODEC_RANGE', ${JSON.stringify(`${f.name} out of range`)}); }`,
      `prev[${i}] = m;`,
      `const v${i} = (m + ${base}) / ${p};`,
    );
    props.push(`${key}: v${i}`);
  });
  if (bit > 0) {
    lines.push(
      "if (p >= e) { c.pos = p; c.fail('EGW_CODEC_TRUNCATED', 'message ends inside the bool bits'); }",
      'const bits = b[p++];',
      `if (bits >> ${bit} !== 0) { c.pos = p - 1; c.fail('EGW_CODEC_RANGE', 'bool padding bits not zero'); }`,
    );
  }
  lines.push('c.pos = p;', `return { ${props.join(', ')} };`);
  return new Function('c', 'st', lines.join('\n')) as FastReader;
}
