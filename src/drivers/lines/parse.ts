import { describeProblems, normaliseDocument, parseTimestamp } from '../../pipeline/normalise.js';
import type { Quality, ReadingValue } from '../../pipeline/reading.js';
import type { CsvColumn, JsonField } from './config.js';

/** The outcome of parsing one line: values, or the reason it was refused. Pure. */
export type LineResult =
  | {
      ok: true;
      values: Record<string, ReadingValue>;
      units?: Record<string, string>;
      quality: Quality;
      ts?: number;
      /** Fields the shared normaliser left out (the driver counts them as bad_line). */
      left?: string;
    }
  | { ok: false; reason: string };

/** Placeholder device id for the normaliser: a line carries no id (the driver's id is used). */
const LINE_DEVICE = 'line';

const scaled = (raw: number, scale: number, offset: number): number => raw * scale + offset;

/**
 * JSON lines: one object per line. Without `fields` the line goes through the shared normaliser
 * (docs/readings.md) like an MQTT payload: numbers, booleans, strings and null are values, nested
 * objects become dotted names, `ts` / `quality` / `units` are honoured, and what cannot be
 * represented is left out and reported. With `fields`, only the listed keys are taken, renamed,
 * scaled and given units (a missing or non-numeric key is a null dropout).
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
  if (!fields) return normaliseLine(rec);
  const values: Record<string, ReadingValue> = {};
  let units: Record<string, string> | undefined;
  let missing = false;
  for (const f of fields) {
    const v = rec[f.key];
    if (typeof v === 'number' && Number.isFinite(v)) values[f.name] = scaled(v, f.scale, f.offset);
    else if (typeof v === 'boolean') values[f.name] = v;
    else {
      values[f.name] = null;
      missing = true;
    }
    if (f.unit) (units ??= {})[f.name] = f.unit;
  }
  if (fields.length === 0) return { ok: false, reason: 'no numeric or boolean values' };
  // Same timestamp rules as every source (epoch ms or ISO 8601 with a zone, within the codec's range).
  const ts = parseTimestamp(rec['ts'], NaN);
  if (ts < 0) return { ok: false, reason: 'ts is not epoch ms or ISO 8601 within range' };
  const q = rec['quality'];
  const quality: Quality = q === 'good' || q === 'uncertain' || q === 'bad' ? q : missing ? 'uncertain' : 'good';
  return { ok: true, values, quality, ...(units ? { units } : {}), ...(Number.isNaN(ts) ? {} : { ts }) };
}

function normaliseLine(rec: Record<string, unknown>): LineResult {
  // The line names no device: a `deviceId` key is not a value (the driver's id is the device).
  const doc = 'deviceId' in rec ? { ...rec, deviceId: LINE_DEVICE } : rec;
  // NaN as the receive time: "no ts in the line" (the runtime stamps it when it receives the sample).
  const n = normaliseDocument(doc, LINE_DEVICE, 'serial', NaN);
  const r = n.readings[0];
  if (!r) return { ok: false, reason: describeProblems(n) };
  let quality = r.quality;
  if (rec['quality'] === undefined && Object.values(r.values).includes(null)) quality = 'uncertain';
  return {
    ok: true,
    values: r.values,
    quality,
    ...(r.units ? { units: r.units } : {}),
    ...(Number.isNaN(r.ts) ? {} : { ts: r.ts }),
    ...(n.problemCount > 0 ? { left: describeProblems(n) } : {}),
  };
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
