import { MAX_TS as CODEC_MAX_TS } from '../codec/format.js';
import {
  isValidDeviceId,
  VALUE_NAME_PATTERN,
  type Quality,
  type Reading,
  type ReadingSource,
  type ReadingValue,
} from './reading.js';

/**
 * The one normaliser at the boundary (DESIGN "normalise → Reading"): MQTT ingest, CoAP ingest,
 * downstream CoAP and the serial drivers all turn what they received into Readings here, with
 * one set of limits (docs/readings.md). Pure: values in, readings and problems out.
 *
 * Rule: keep what can be represented, leave out (and report) what cannot. A field that cannot be
 * represented (an array, an over-long string, a bad name) is left out of its reading; a reading
 * that cannot be placed in time (a `ts` the codec cannot carry), names another device, or keeps
 * no value is refused whole. The caller keeps the original payload as a dead letter when any
 * problem is reported, so nothing acknowledged is silently lost.
 */

/**
 * Longest string value, in UTF-8 bytes (a firmware version, a status word; not a blob). Equal to
 * the binary codec's MAX_STRING_BYTES (src/codec/format.ts: one length byte), so whatever the
 * boundary accepts the outbox can encode; test/unit/pipeline/normalise.test.ts checks they agree.
 */
export const MAX_STRING_BYTES = 255;
/** Most values per reading (after flattening). More are left out, each one reported. */
export const MAX_VALUES_PER_READING = 256;
/** Most readings per message (a JSON array / CBOR array / codec batch). */
export const MAX_READINGS_PER_MESSAGE = 1000;
/** Nested objects are flattened to dotted names of at most this many segments (`a.b.c.d`). */
export const MAX_NESTING_DEPTH = 4;
/** Longest unit string (`°C`, `m3/h`). */
export const MAX_UNIT_LENGTH = 32;
/** Timestamps are integer ms in [0, MAX_TS]: exactly what the binary codec carries (docs/codec.md). */
export const MAX_TS = CODEC_MAX_TS;
/** Problems listed in detail per message; the count covers all of them. */
export const MAX_PROBLEMS_LISTED = 20;

/**
 * In a `u`-flag regex a surrogate pair is one code point, so this matches only lone surrogates
 * (JSON "\ud800" parses to one): UTF-8 cannot encode them (RFC 3629 §3), so neither can the codec.
 */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** ISO 8601 date-time with seconds optional, fraction optional, and a zone (Z or ±hh:mm) required. */
const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})$/;

export type RefusalCode = 'EGW_INGEST_INVALID' | 'EGW_INGEST_DEVICE_ID';

/** Something left out: `at` is `[i]` (a batch element), `[i].name` / `name` (a field), `` (the payload). */
export interface Problem {
  at: string;
  reason: string;
}

export interface Normalised {
  /** Readings accepted (possibly with fields left out). Empty: the message is refused whole. */
  readings: Reading[];
  /** Readings refused and fields left out (at most MAX_PROBLEMS_LISTED); undefined when none. */
  problems: Problem[] | undefined;
  /** Number of problems, listed or not. */
  problemCount: number;
  /** Code of the refusal: EGW_INGEST_DEVICE_ID when a reading named another device. */
  code: RefusalCode;
}

/** Per message; allocated once per call (no per-reading closures on the hot path). */
interface State {
  deviceId: string;
  source: ReadingSource;
  receivedAt: number;
  problems: Problem[] | undefined;
  count: number;
  code: RefusalCode;
  /** A nested object was flattened: dotted names may now collide. */
  nested: boolean;
}

function newState(deviceId: string, source: ReadingSource, receivedAt: number): State {
  return { deviceId, source, receivedAt, problems: undefined, count: 0, code: 'EGW_INGEST_INVALID', nested: false };
}

function result(readings: Reading[], st: State): Normalised {
  return { readings, problems: st.problems, problemCount: st.count, code: st.code };
}

/** A plain object (JSON object, CBOR map decoded as object); not an array, a byte string or a Date. */
function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && !(v instanceof Date);
}

function path(index: number, name: string): string {
  if (index < 0) return name;
  return name ? `[${index}].${name}` : `[${index}]`;
}

function report(st: State, index: number, name: string, reason: string): void {
  st.count++;
  if (st.count > MAX_PROBLEMS_LISTED) return;
  (st.problems ??= []).push({ at: path(index, name), reason });
}

function refuse(st: State, index: number, reason: string): null {
  report(st, index, '', reason);
  return null;
}

/** One line for logs, refusal messages and dead letters: the first problems and how many more. */
export function describeProblems(n: Pick<Normalised, 'problems' | 'problemCount'>, max = 3): string {
  const listed = (n.problems ?? []).slice(0, max).map((p) => (p.at ? `${p.at}: ${p.reason}` : p.reason));
  const more = n.problemCount - listed.length;
  return more > 0 ? `${listed.join('; ')}; and ${more} more` : listed.join('; ');
}

/**
 * Timestamp → integer ms in [0, MAX_TS], or -1. Absent or null: the receive time (boards without
 * a clock cannot give one). Numbers are epoch ms; strings must be ISO 8601 date-times with a zone
 * (`"1"` or a bare date is not a time); a CBOR date (tag 1, decoded as Date) is accepted too.
 */
export function parseTimestamp(v: unknown, receivedAt: number): number {
  if (v === undefined || v === null) return receivedAt;
  let t: number;
  if (typeof v === 'number') t = v;
  else if (typeof v === 'string') t = v.length <= 40 && ISO_DATE_TIME.test(v) ? Date.parse(v) : NaN;
  else if (v instanceof Date) t = v.getTime();
  else return -1;
  return t >= 0 && t <= MAX_TS ? Math.round(t) : -1; // NaN fails both comparisons
}

/** Why `v` cannot be a reading value, or undefined when it can (objects are handled by the caller). */
function valueProblem(v: unknown): string | undefined {
  switch (typeof v) {
    case 'number':
      return Number.isFinite(v) ? undefined : 'not a finite number';
    case 'boolean':
      return undefined;
    case 'string':
      // Byte length only when the UTF-16 length could exceed the bound (≤ 3 bytes per code unit).
      if (v.length * 3 > MAX_STRING_BYTES && Buffer.byteLength(v, 'utf8') > MAX_STRING_BYTES)
        return `string longer than ${MAX_STRING_BYTES} UTF-8 bytes`;
      return LONE_SURROGATE.test(v) ? 'string holds a lone UTF-16 surrogate (not UTF-8)' : undefined;
    case 'object':
      if (v === null) return undefined;
      return Array.isArray(v) ? 'arrays are not values' : 'not a number, boolean, string or null';
    default:
      return 'not a number, boolean, string or null';
  }
}

const NAME_RULE = 'name not allowed (letters, digits, _ . -; 1-64, starting with a letter or _)';

/** `__proto__` fits the name pattern, but assigning it would set the prototype instead of a value. */
function nameProblem(name: string): string | undefined {
  return VALUE_NAME_PATTERN.test(name) && name !== '__proto__' ? undefined : NAME_RULE;
}

/** Adds one (possibly nested) field; returns the new value count. Recursion is bounded by MAX_NESTING_DEPTH. */
function addField(
  values: Record<string, ReadingValue>,
  n: number,
  name: string,
  v: unknown,
  depth: number,
  st: State,
  index: number,
): number {
  if (!VALUE_NAME_PATTERN.test(name) || name === '__proto__') {
    report(st, index, name.slice(0, 80), NAME_RULE);
    return n;
  }
  // Numbers first: by far the most common value (hot path, no helper calls).
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) {
      report(st, index, name, 'not a finite number');
      return n;
    }
  } else if (typeof v === 'object' && v !== null && isRecord(v)) {
    if (depth >= MAX_NESTING_DEPTH) {
      report(st, index, name, `nested deeper than ${MAX_NESTING_DEPTH} levels`);
      return n;
    }
    st.nested = true;
    for (const k in v) n = addField(values, n, `${name}.${k}`, v[k], depth + 1, st, index);
    return n;
  } else if (typeof v !== 'boolean') {
    const why = valueProblem(v);
    if (why !== undefined) {
      report(st, index, name, why);
      return n;
    }
  }
  if (n >= MAX_VALUES_PER_READING) {
    report(st, index, name, `more than ${MAX_VALUES_PER_READING} values`);
    return n;
  }
  // A dotted key and a nested object can name the same value: the first one stays. Only possible
  // once this message had a nested object, so flat readings skip the lookup.
  if (st.nested && Object.hasOwn(values, name)) {
    report(st, index, name, 'named twice (a dotted key and a nested object)');
    return n;
  }
  values[name] = v as ReadingValue;
  return n + 1;
}

function parseUnits(
  u: unknown,
  values: Record<string, ReadingValue>,
  st: State,
  index: number,
): Record<string, string> | undefined {
  if (!isRecord(u)) {
    report(st, index, 'units', 'must be an object of value name → unit');
    return undefined;
  }
  let out: Record<string, string> | undefined;
  for (const k of Object.keys(u)) {
    const unit = u[k];
    if (!Object.hasOwn(values, k)) report(st, index, `units.${k.slice(0, 80)}`, 'names no value');
    else if (typeof unit !== 'string' || unit.length > MAX_UNIT_LENGTH || LONE_SURROGATE.test(unit))
      report(st, index, `units.${k}`, `must be a string of at most ${MAX_UNIT_LENGTH} characters`);
    else (out ??= {})[k] = unit;
  }
  return out;
}

/**
 * One reading from a decoded document. Two forms (docs/readings.md): flat
 * `{ "temperature": 21.5, "ts": ..., "quality": ..., "units": {...}, "deviceId": ... }` where every
 * other key is a value, and structured `{ "ts", "values": {...}, "quality", "units", "deviceId" }`
 * where no other key is allowed (an unknown key beside `values` is ambiguous, so it is refused).
 */
function toReading(item: unknown, st: State, index: number): Reading | null {
  if (!isRecord(item)) return refuse(st, index, 'a reading must be an object');
  const raw = item['values'];
  const structured = raw !== undefined;
  if (structured && !isRecord(raw)) return refuse(st, index, '"values" must be an object');
  let ts = st.receivedAt;
  let quality: Quality = 'good';
  let units: unknown;
  const values: Record<string, ReadingValue> = {};
  const before = st.count;
  let n = 0;
  // for-in, not Object.keys: V8 serves `item[k]` from the enum cache (the hot path). Decoded JSON
  // and CBOR objects have no inherited enumerable keys.
  for (const k in item) {
    const v = item[k];
    switch (k) {
      case 'ts':
        ts = parseTimestamp(v, st.receivedAt);
        if (ts < 0) {
          return refuse(
            st,
            index,
            `ts must be epoch milliseconds in [0, ${MAX_TS}] or an ISO 8601 date-time with a zone`,
          );
        }
        break;
      case 'quality':
        if (v !== 'good' && v !== 'uncertain' && v !== 'bad')
          return refuse(st, index, 'quality must be "good", "uncertain" or "bad"');
        quality = v;
        break;
      case 'units':
        units = v;
        break;
      case 'deviceId':
        // The topic / URI names the device (the ACL authorised that); the body may repeat it.
        if (v !== st.deviceId) {
          st.code = 'EGW_INGEST_DEVICE_ID';
          return refuse(st, index, `deviceId ${JSON.stringify(String(v).slice(0, 70))} is not ${st.deviceId}`);
        }
        break;
      case 'values':
        break;
      default:
        if (structured) return refuse(st, index, `unknown key ${JSON.stringify(k.slice(0, 80))} beside "values"`);
        n = addField(values, n, k, v, 1, st, index);
    }
  }
  if (structured) {
    const r = raw as Record<string, unknown>;
    for (const k in r) n = addField(values, n, k, r[k], 1, st, index);
  }
  if (n === 0) return refuse(st, index, st.count > before ? 'no value could be represented' : 'reading has no values');
  const reading: Reading = { deviceId: st.deviceId, ts, values, quality, source: st.source };
  if (units !== undefined) {
    const u = parseUnits(units, values, st, index);
    if (u) reading.units = u;
  }
  return reading;
}

/**
 * A decoded JSON or CBOR document — one reading (object) or a batch (array) — for `deviceId`
 * (already checked by the caller: it comes from the topic or the URI).
 */
export function normaliseDocument(
  doc: unknown,
  deviceId: string,
  source: ReadingSource,
  receivedAt: number,
): Normalised {
  const st = newState(deviceId, source, receivedAt);
  const readings: Reading[] = [];
  if (Array.isArray(doc)) {
    if (doc.length === 0 || doc.length > MAX_READINGS_PER_MESSAGE) {
      refuse(st, -1, `a batch must hold 1..${MAX_READINGS_PER_MESSAGE} readings, got ${doc.length}`);
    } else {
      for (let i = 0; i < doc.length; i++) {
        const r = toReading(doc[i], st, i);
        if (r) readings.push(r);
      }
    }
  } else {
    const r = toReading(doc, st, -1);
    if (r) readings.push(r);
  }
  return result(readings, st);
}

/** UTF-8 JSON bytes → readings. Not JSON is a refusal (reported, never thrown). */
export function normaliseJson(
  payload: Buffer,
  deviceId: string,
  source: ReadingSource,
  receivedAt: number,
): Normalised {
  let doc: unknown;
  try {
    doc = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    const st = newState(deviceId, source, receivedAt);
    refuse(st, -1, `not JSON: ${(err as Error).message.slice(0, 120)}`);
    return result([], st);
  }
  return normaliseDocument(doc, deviceId, source, receivedAt);
}

/**
 * Readings already typed (binary codec, drivers) → the same limits as documents. The device id
 * must be valid; a reading whose ts or quality is out of bounds is refused; fields that break a
 * limit are left out. Readings without problems are passed through as they are (no copy).
 */
export function normaliseReadings(readings: readonly Reading[], receivedAt: number): Normalised {
  const st = newState('', 'system', receivedAt);
  const out: Reading[] = [];
  if (readings.length > MAX_READINGS_PER_MESSAGE) {
    refuse(st, -1, `a batch must hold at most ${MAX_READINGS_PER_MESSAGE} readings, got ${readings.length}`);
    return result(out, st);
  }
  for (let i = 0; i < readings.length; i++) {
    const r = checkTyped(readings[i]!, st, readings.length > 1 ? i : -1);
    if (r) out.push(r);
  }
  return result(out, st);
}

function checkTyped(r: Reading, st: State, index: number): Reading | null {
  if (!isValidDeviceId(r.deviceId)) {
    st.code = 'EGW_INGEST_DEVICE_ID';
    return refuse(st, index, `device id ${JSON.stringify(String(r.deviceId).slice(0, 70))} not allowed`);
  }
  const ts = parseTimestamp(r.ts, st.receivedAt);
  if (typeof r.ts !== 'number' || ts < 0) return refuse(st, index, `ts must be epoch milliseconds in [0, ${MAX_TS}]`);
  if (r.quality !== 'good' && r.quality !== 'uncertain' && r.quality !== 'bad')
    return refuse(st, index, 'quality must be "good", "uncertain" or "bad"');
  const before = st.count;
  let n = 0;
  let bad = false;
  for (const k in r.values) {
    const why = nameProblem(k) ?? valueProblem(r.values[k]);
    if (why !== undefined || n >= MAX_VALUES_PER_READING) {
      report(st, index, k.slice(0, 80), why ?? `more than ${MAX_VALUES_PER_READING} values`);
      bad = true;
    } else n++;
  }
  if (n === 0) return refuse(st, index, st.count > before ? 'no value could be represented' : 'reading has no values');
  let unitsBad = false;
  if (r.units !== undefined) {
    for (const k in r.units) {
      const u = r.units[k];
      if (!Object.hasOwn(r.values, k) || typeof u !== 'string' || u.length > MAX_UNIT_LENGTH || LONE_SURROGATE.test(u))
        unitsBad = true;
    }
  }
  if (!bad && !unitsBad && ts === r.ts) return r;
  // Something to leave out: rebuild the reading from what is representable.
  const values: Record<string, ReadingValue> = {};
  let kept = 0;
  for (const k in r.values) {
    const v = r.values[k];
    if (kept < MAX_VALUES_PER_READING && nameProblem(k) === undefined && valueProblem(v) === undefined) {
      values[k] = v!;
      kept++;
    }
  }
  const fixed: Reading = { deviceId: r.deviceId, ts, values, quality: r.quality, source: r.source };
  if (r.units !== undefined) {
    // Units of values left out go silently (their value was reported); bad units are reported.
    const u = parseUnits(r.units, values, unitsBad ? st : newState('', 'system', 0), index);
    if (u) fixed.units = u;
  }
  return fixed;
}
