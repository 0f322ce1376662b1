import { lazyRequire } from '../lifecycle/lazy.js';
import {
  isValidDeviceId,
  VALUE_NAME_PATTERN,
  type Quality,
  type Reading,
  type ReadingValue,
} from '../pipeline/reading.js';

/** CoAP Content-Format numbers (IANA registry, RFC 7252 §12.3). */
export const CT_TEXT = 0;
export const CT_LINK_FORMAT = 40;
export const CT_JSON = 50;
export const CT_CBOR = 60;

/** A decoder for the binary codec, plugged in by the composition root when `src/codec/` provides one. */
export interface BinaryDecoder {
  contentFormat: number;
  decode(buf: Buffer, deviceId: string): Reading[];
}

export class PayloadError extends Error {
  constructor(
    /** CoAP response code to answer with: 4.00 bad payload, 4.15 unknown format. */
    readonly coapCode: '4.00' | '4.15',
    message: string,
  ) {
    super(message);
  }
}

/** Most readings one request may carry (a batch); more is a 4.00, not a silent cut. */
export const MAX_BATCH = 1000;
const RESERVED = new Set(['ts', 'time', 'values', 'quality', 'units', 'deviceId']);
const QUALITIES = new Set<Quality>(['good', 'uncertain', 'bad']);

// Loaded on the first CBOR payload (lifecycle/lazy.ts).
const cborX = lazyRequire<typeof import('cbor-x')>('cbor-x');
let cbor: import('cbor-x').Decoder | undefined;

/**
 * Payload → Readings by Content-Format. JSON and CBOR carry the same shapes:
 *  - `{ "ts": 1700000000000, "values": { "temperature": 21.5 }, "quality": "good", "units": {...} }`
 *  - a flat object `{ "temperature": 21.5, "ts": ... }` (every other key is a value)
 *  - an array of either (batch, at most MAX_BATCH).
 * A missing `ts` means "now" (gateway wall clock). An absent Content-Format is treated as JSON.
 */
export function decodeReadings(
  payload: Buffer,
  contentFormat: number | undefined,
  deviceId: string,
  nowMs: number,
  binary?: BinaryDecoder,
): Reading[] {
  if (!isValidDeviceId(deviceId)) throw new PayloadError('4.00', 'device id not allowed');
  if (payload.length === 0) throw new PayloadError('4.00', 'empty payload');
  let doc: unknown;
  if (contentFormat === undefined || contentFormat === CT_JSON) {
    try {
      doc = JSON.parse(payload.toString('utf8'));
    } catch (err) {
      throw new PayloadError('4.00', `invalid JSON: ${(err as Error).message}`);
    }
  } else if (contentFormat === CT_CBOR) {
    try {
      cbor ??= new (cborX().Decoder)({ mapsAsObjects: true, useRecords: false });
      doc = cbor.decode(payload);
    } catch (err) {
      throw new PayloadError('4.00', `invalid CBOR: ${(err as Error).message}`);
    }
  } else if (binary && contentFormat === binary.contentFormat) {
    try {
      const readings = binary.decode(payload, deviceId);
      const other = readings.find((r) => r.deviceId && r.deviceId !== deviceId);
      // The URI names the device; a batch for another device is refused rather than relabelled.
      if (other) throw new PayloadError('4.00', `reading for device ${other.deviceId} posted to /sensors/${deviceId}`);
      return readings.map((r) => ({ ...r, deviceId, source: 'coap' }));
    } catch (err) {
      if (err instanceof PayloadError) throw err;
      throw new PayloadError('4.00', `invalid binary reading: ${(err as Error).message}`);
    }
  } else {
    const accepted = [CT_JSON, CT_CBOR, ...(binary ? [binary.contentFormat] : [])].join(', ');
    throw new PayloadError('4.15', `Content-Format ${contentFormat} not accepted; use ${accepted}`);
  }
  const items = Array.isArray(doc) ? doc : [doc];
  if (items.length === 0) throw new PayloadError('4.00', 'empty batch');
  if (items.length > MAX_BATCH)
    throw new PayloadError('4.00', `batch of ${items.length} readings exceeds ${MAX_BATCH}`);
  return items.map((item, i) => toReading(item, deviceId, nowMs, items.length > 1 ? `[${i}] ` : ''));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function toReading(item: unknown, deviceId: string, nowMs: number, at: string): Reading {
  if (!isObject(item)) throw new PayloadError('4.00', `${at}a reading must be an object`);
  const ts = toTimestamp(item['ts'] ?? item['time'], nowMs, at);
  const rawValues = item['values'] !== undefined ? item['values'] : item;
  if (!isObject(rawValues)) throw new PayloadError('4.00', `${at}"values" must be an object`);
  const values: Record<string, ReadingValue> = {};
  let n = 0;
  for (const [name, v] of Object.entries(rawValues)) {
    if (rawValues === item && RESERVED.has(name)) continue;
    if (!VALUE_NAME_PATTERN.test(name))
      throw new PayloadError('4.00', `${at}value name ${JSON.stringify(name.slice(0, 70))} not allowed`);
    if (v === null || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) values[name] = v;
    else throw new PayloadError('4.00', `${at}value "${name}" must be a finite number, a boolean or null`);
    if (++n > 256) throw new PayloadError('4.00', `${at}more than 256 values`);
  }
  if (n === 0) throw new PayloadError('4.00', `${at}a reading needs at least one value`);
  const reading: Reading = { deviceId, ts, values, quality: 'good', source: 'coap' };
  const q = item['quality'];
  if (q !== undefined) {
    if (typeof q !== 'string' || !QUALITIES.has(q as Quality))
      throw new PayloadError('4.00', `${at}quality must be good, uncertain or bad`);
    reading.quality = q as Quality;
  }
  const units = item['units'];
  if (units !== undefined) {
    if (!isObject(units) || !Object.values(units).every((u) => typeof u === 'string' && u.length <= 32)) {
      throw new PayloadError('4.00', `${at}units must map value names to short strings`);
    }
    reading.units = units as Record<string, string>;
  }
  return reading;
}

function toTimestamp(v: unknown, nowMs: number, at: string): number {
  if (v === undefined || v === null) return nowMs;
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return Math.round(v);
  if (typeof v === 'string') {
    const t = Date.parse(v);
    if (Number.isFinite(t)) return t;
  }
  if (v instanceof Date && Number.isFinite(v.getTime())) return v.getTime();
  throw new PayloadError('4.00', `${at}ts must be epoch milliseconds or an ISO 8601 string`);
}
