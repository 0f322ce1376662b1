import type { ReadingValue } from '../pipeline/reading.js';
import type { SchemaSpec } from './schema.js';

/**
 * Per-schema functions generated once when a schema is compiled (the "precomputed field tables"
 * of STYLE.md, as fast-json-stringify does for fastify): named property loads and object literals
 * with a fixed shape are what V8 optimises best, a loop of `values[names[i]]` is not. Only the
 * common case is generated — every field present and holding an in-field value; anything else
 * falls back to the general table-driven path. Field names are checked against the value-name
 * pattern before they get here, and are embedded with JSON.stringify, so no input reaches code.
 */

/**
 * Returns the packed bool bits (≥ 0) and fills `ival` with the wire integers when every schema
 * field is present with an in-field value and `values` has no other key; −1 otherwise.
 */
export type Classifier = (values: Record<string, ReadingValue>, ival: Float64Array) => number;
/** Builds the values object of a reading whose fields are all present: numbers from `t`, bools from `bits`. */
export type Builder = (t: Float64Array, bits: number) => Record<string, ReadingValue>;

export function makeClassifier(spec: SchemaSpec, maxInt: number): Classifier {
  const lines: string[] = ['let bits = 0;'];
  let bit = 0;
  spec.fields.forEach((f, i) => {
    const key = JSON.stringify(f.name);
    if (f.type === 'bool') {
      lines.push(
        `const b${i} = v[${key}]; if (b${i} === true) bits |= ${1 << bit}; else if (b${i} !== false) return -1;`,
      );
      bit++;
      return;
    }
    const p = 10 ** f.scale;
    const base = f.base ?? 0;
    lines.push(
      `const v${i} = v[${key}]; if (typeof v${i} !== 'number') return -1;`,
      `const k${i} = Math.round(v${i} * ${p}); if (k${i} / ${p} !== v${i} || (v${i} === 0 && 1 / v${i} < 0)) return -1;`,
      `const m${i} = k${i} - ${base}; if (!(m${i} <= ${maxInt} && m${i} >= ${-maxInt})) return -1; ival[${i}] = m${i};`,
    );
  });
  lines.push(`let n = 0; for (const _ in v) n++; if (n !== ${spec.fields.length}) return -1;`, 'return bits;');
  return new Function('v', 'ival', lines.join('\n')) as Classifier;
}

export function makeBuilder(spec: SchemaSpec): Builder {
  let bit = 0;
  const props = spec.fields.map((f, i) => {
    const key = JSON.stringify(f.name);
    return f.type === 'bool' ? `${key}: (bits & ${1 << bit++}) !== 0` : `${key}: t[${i}]`;
  });
  return new Function('t', 'bits', `return { ${props.join(', ')} };`) as Builder;
}
