import type { ErrorCode } from '../errors.js';
import {
  isValidDeviceId,
  VALUE_NAME_PATTERN,
  type Quality,
  type Reading,
  type ReadingValue,
} from '../pipeline/reading.js';

/**
 * The pure ingest decoder: topic + payload bytes → Readings, or a refusal with a code. No I/O,
 * so it is tested with bytes alone and the binary codec plugs in as one more decoder.
 * The accepted JSON shape is documented in docs/broker.md ("Ingest").
 */

/** Binary payload formats (the codec) tried before JSON when they recognise the bytes. */
export interface PayloadDecoder {
  readonly name: string;
  looksLike(payload: Buffer): boolean;
  /** Returns the readings or throws (a coded GatewayError for a precise reason). */
  decode(payload: Buffer, deviceId: string, receivedAt: number): Reading[];
}

export type IngestResult =
  | { ok: true; deviceId: string; readings: Reading[] }
  | { ok: false; deviceId: string | undefined; code: Extract<ErrorCode, `EGW_INGEST_${string}`>; message: string };

export const MAX_VALUES_PER_READING = 256;
export const MAX_READINGS_PER_MESSAGE = 1000;
const QUALITIES: ReadonlySet<string> = new Set(['good', 'uncertain', 'bad']);
/** Keys of the flat form that are not values. */
const RESERVED = new Set(['ts', 'quality', 'units', 'values']);

/**
 * `sensors/{deviceId}/data` → the raw id segment; undefined for any other topic (those are
 * routed but not ingested). Checked by string ops only: this runs on every publish.
 */
export function sensorTopicId(topic: string): string | undefined {
  if (!topic.startsWith('sensors/') || !topic.endsWith('/data')) return undefined;
  const id = topic.slice(8, -5);
  return id.length > 0 && !id.includes('/') ? id : undefined;
}

class Refused extends Error {}

export function decodeSensorMessage(
  topic: string,
  payload: Buffer,
  receivedAt: number,
  decoders: readonly PayloadDecoder[] = [],
): IngestResult | undefined {
  const id = sensorTopicId(topic);
  if (id === undefined) return undefined;
  // DESIGN "identifiers are checked at the boundary".
  if (!isValidDeviceId(id)) {
    return {
      ok: false,
      deviceId: undefined,
      code: 'EGW_INGEST_DEVICE_ID',
      message: `device id in topic ${JSON.stringify(topic.slice(0, 100))} is not allowed`,
    };
  }
  for (const d of decoders) {
    if (!d.looksLike(payload)) continue;
    try {
      const readings = d.decode(payload, id, receivedAt);
      if (readings.length === 0) throw new Refused(`${d.name} payload holds no reading`);
      return { ok: true, deviceId: id, readings };
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      return {
        ok: false,
        deviceId: id,
        code: code === 'EGW_INGEST_DEVICE_ID' ? code : 'EGW_INGEST_INVALID',
        message: `${d.name}: ${(err as Error).message}${typeof code === 'string' ? ` (${code})` : ''}`,
      };
    }
  }
  try {
    return { ok: true, deviceId: id, readings: decodeJsonReadings(payload, id, receivedAt) };
  } catch (err) {
    if (!(err instanceof Refused) && !(err instanceof SyntaxError)) throw err;
    return { ok: false, deviceId: id, code: 'EGW_INGEST_INVALID', message: err.message };
  }
}

/** A JSON object (one reading) or an array of them (a batch). Throws Refused/SyntaxError. */
export function decodeJsonReadings(payload: Buffer, deviceId: string, receivedAt: number): Reading[] {
  const doc: unknown = JSON.parse(payload.toString('utf8'));
  if (Array.isArray(doc)) {
    if (doc.length === 0 || doc.length > MAX_READINGS_PER_MESSAGE) {
      throw new Refused(`a batch must hold 1..${MAX_READINGS_PER_MESSAGE} readings, got ${doc.length}`);
    }
    return doc.map((d, i) => toReading(d, deviceId, receivedAt, `[${i}]`));
  }
  return [toReading(doc, deviceId, receivedAt, '')];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function toReading(doc: unknown, deviceId: string, receivedAt: number, at: string): Reading {
  if (!isObject(doc)) throw new Refused(`${at || 'payload'} must be a JSON object`);
  const ts = parseTs(doc['ts'], receivedAt, at);
  let quality: Quality = 'good';
  if (doc['quality'] !== undefined) {
    if (typeof doc['quality'] !== 'string' || !QUALITIES.has(doc['quality'])) {
      throw new Refused(`${at}quality must be "good", "uncertain" or "bad"`);
    }
    quality = doc['quality'] as Quality;
  }
  const values: Record<string, ReadingValue> = {};
  let n = 0;
  const add = (name: string, v: unknown) => {
    // __proto__ fits the pattern but would set the prototype instead of a value.
    if (!VALUE_NAME_PATTERN.test(name) || name === '__proto__')
      throw new Refused(`${at}value name ${JSON.stringify(name.slice(0, 80))} is not allowed`);
    if (!(v === null || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v)))) {
      throw new Refused(`${at}${name} must be a finite number, a boolean or null`);
    }
    if (++n > MAX_VALUES_PER_READING) throw new Refused(`${at}more than ${MAX_VALUES_PER_READING} values`);
    values[name] = v;
  };
  if (doc['values'] !== undefined) {
    // Structured form: { ts, values: {...}, quality, units }; no other keys.
    if (!isObject(doc['values'])) throw new Refused(`${at}values must be an object`);
    for (const k of Object.keys(doc))
      if (!RESERVED.has(k)) throw new Refused(`${at}unknown key ${JSON.stringify(k.slice(0, 80))} beside "values"`);
    for (const [k, v] of Object.entries(doc['values'])) add(k, v);
  } else {
    // Flat form: every key but ts/quality/units is a value.
    for (const [k, v] of Object.entries(doc)) if (!RESERVED.has(k)) add(k, v);
  }
  if (n === 0) throw new Refused(`${at}reading has no values`);
  const reading: Reading = { deviceId, ts, values, quality, source: 'mqtt' };
  if (doc['units'] !== undefined) reading.units = parseUnits(doc['units'], values, at);
  return reading;
}

function parseTs(v: unknown, receivedAt: number, at: string): number {
  // No timestamp: the gateway's receive time (boards without an RTC often cannot give one).
  if (v === undefined) return receivedAt;
  if (typeof v === 'number') {
    if (Number.isFinite(v) && v >= 0 && v <= 8.64e15) return Math.round(v);
  } else if (typeof v === 'string' && v.length <= 40 && /^\d{4}-\d{2}-\d{2}T/.test(v)) {
    const t = Date.parse(v);
    if (Number.isFinite(t) && t >= 0) return t;
  }
  throw new Refused(`${at}ts must be milliseconds since the epoch or an ISO 8601 date-time`);
}

function parseUnits(v: unknown, values: Record<string, ReadingValue>, at: string): Record<string, string> {
  if (!isObject(v)) throw new Refused(`${at}units must be an object`);
  const out: Record<string, string> = {};
  for (const [k, u] of Object.entries(v)) {
    if (!(k in values)) throw new Refused(`${at}units.${k.slice(0, 80)} names no value`);
    if (typeof u !== 'string' || u.length > 32)
      throw new Refused(`${at}units.${k} must be a string of at most 32 characters`);
    out[k] = u;
  }
  return out;
}
