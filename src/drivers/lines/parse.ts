import type { Quality, ReadingValue } from '../../pipeline/reading.js';
import { VALUE_NAME_PATTERN } from '../../pipeline/reading.js';
import type { CsvColumn, JsonField } from './config.js';

/** The outcome of parsing one line: values, or the reason it was refused. Pure. */
export type LineResult =
  | { ok: true; values: Record<string, ReadingValue>; units?: Record<string, string>; quality: Quality; ts?: number }
  | { ok: false; reason: string };

const MAX_VALUES = 256;

const scaled = (raw: number, scale: number, offset: number): number => raw * scale + offset;

/**
 * JSON lines: one object per line. Numbers and booleans are values (null is an explicit dropout);
 * optional `ts` (epoch ms or ISO 8601) and `quality` keys are honoured. With `fields`, only the
 * listed keys are taken, renamed, scaled and given units.
 */
export function parseJsonLine(line: string, fields?: readonly JsonField[]): LineResult {
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return { ok: false, reason: 'not a JSON object' };
  const rec = obj as Record<string, unknown>;
  const values: Record<string, ReadingValue> = {};
  let units: Record<string, string> | undefined;
  let n = 0;
  let missing = false;
  if (fields) {
    for (const f of fields) {
      const v = rec[f.key];
      if (typeof v === 'number' && Number.isFinite(v)) values[f.name] = scaled(v, f.scale, f.offset);
      else if (typeof v === 'boolean') values[f.name] = v;
      else {
        values[f.name] = null;
        missing = true;
      }
      if (f.unit) (units ??= {})[f.name] = f.unit;
      n++;
    }
  } else {
    for (const [k, v] of Object.entries(rec)) {
      if (k === 'ts' || k === 'quality') continue;
      if (!VALUE_NAME_PATTERN.test(k)) continue;
      if ((typeof v === 'number' && Number.isFinite(v)) || typeof v === 'boolean' || v === null) {
        values[k] = v;
        if (v === null) missing = true;
        if (++n > MAX_VALUES) return { ok: false, reason: `more than ${MAX_VALUES} values` };
      }
    }
  }
  if (n === 0) return { ok: false, reason: 'no numeric or boolean values' };
  const ts = parseTs(rec['ts']);
  if (ts === false) return { ok: false, reason: 'ts is not epoch ms or ISO 8601' };
  const q = rec['quality'];
  const quality: Quality = q === 'good' || q === 'uncertain' || q === 'bad' ? q : missing ? 'uncertain' : 'good';
  return { ok: true, values, quality, ...(units ? { units } : {}), ...(ts !== undefined ? { ts } : {}) };
}

function parseTs(v: unknown): number | undefined | false {
  if (v === undefined) return undefined;
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v;
  if (typeof v === 'string') {
    const t = Date.parse(v);
    return Number.isNaN(t) ? false : t;
  }
  return false;
}

/**
 * CSV lines mapped by position. An empty cell is a missing value (null, quality uncertain); a
 * non-numeric cell or a wrong column count refuses the line. `true`/`false` cells are booleans.
 */
export function parseCsvLine(line: string, columns: readonly CsvColumn[], separator = ','): LineResult {
  const cells = line.split(separator);
  if (cells.length !== columns.length)
    return { ok: false, reason: `expected ${columns.length} columns, got ${cells.length}` };
  const values: Record<string, ReadingValue> = {};
  let units: Record<string, string> | undefined;
  let missing = false;
  for (let i = 0; i < columns.length; i++) {
    const col = columns[i]!;
    if (col.name === null) continue;
    const cell = cells[i]!.trim();
    if (col.unit) (units ??= {})[col.name] = col.unit;
    if (cell === '') {
      values[col.name] = null;
      missing = true;
    } else if (cell === 'true' || cell === 'false') {
      values[col.name] = cell === 'true';
    } else {
      const v = Number(cell);
      if (!Number.isFinite(v)) return { ok: false, reason: `column ${i + 1} is not a number` };
      values[col.name] = scaled(v, col.scale, col.offset);
    }
  }
  return { ok: true, values, quality: missing ? 'uncertain' : 'good', ...(units ? { units } : {}) };
}
