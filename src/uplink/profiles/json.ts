import { decode, looksLikeCodec } from '../../codec/index.js';
import { GatewayError } from '../../errors.js';
import type { Reading, ReadingValue } from '../../pipeline/reading.js';
import type { ProfileMessage } from './types.js';

/** One reading in the profiles' JSON (docs/cloud-profiles.md "JSON payload"). */
export interface JsonReading {
  deviceId: string;
  ts: number;
  values: Record<string, ReadingValue>;
  quality: Reading['quality'];
  units?: Record<string, string>;
}

/** A reading batch as JSON: `{"id", "topic", "readings": [...]}`; `id` is the message id (duplicates share it). */
export interface JsonBatch {
  id: string;
  topic: string;
  readings: JsonReading[];
}

/**
 * The one JSON shape of readings on every profile and `uplink.payload_format: json`
 * (docs/uplink.md §JSON payloads, docs/cloud-profiles.md): `{"id", "topic", "readings": [...]}`.
 */
export function readingsJson(id: string, topic: string, readings: readonly Reading[]): Buffer {
  return Buffer.from(JSON.stringify({ id, topic, readings: readings.map(jsonReading) } satisfies JsonBatch));
}

/** The readings of an outbox message, or undefined when it is not a codec reading batch (alert, status...). */
export function readingsOf(msg: ProfileMessage): Reading[] | undefined {
  if (msg.readings === 0 || !looksLikeCodec(msg.payload)) return undefined;
  // The outbox wrote this batch itself; a decode failure is a bug or a damaged row, not cloud input.
  return decode(msg.payload, { maxReadings: Math.max(msg.readings, 1), source: 'system' });
}

function jsonReading(r: Reading): JsonReading {
  const j: JsonReading = { deviceId: r.deviceId, ts: r.ts, values: r.values, quality: r.quality };
  if (r.units && Object.keys(r.units).length > 0) j.units = r.units;
  return j;
}

/**
 * JSON documents for a reading batch, each at most `maxBytes`: one document when it fits, else the
 * batch cut in halves until every part fits. Parts get ids `{id}.{k}` (stable: the cut depends
 * only on the readings), so re-sends of a part are still recognised as duplicates.
 * Throws EGW_UPLINK_PROFILE when one reading alone exceeds the limit.
 */
export function jsonParts(
  id: string,
  topic: string,
  readings: readonly Reading[],
  maxBytes: number,
): { id: string; body: Buffer }[] {
  const whole = readingsJson(id, topic, readings);
  if (whole.length <= maxBytes) return [{ id, body: whole }];
  if (readings.length <= 1) {
    throw new GatewayError(
      'EGW_UPLINK_PROFILE',
      `one reading of ${topic} is ${whole.length} bytes as JSON, over the profile's ${maxBytes}-byte payload limit`,
    );
  }
  const out: { id: string; body: Buffer }[] = [];
  const cut = (rs: readonly Reading[]): void => {
    const body = readingsJson(`${id}.${out.length}`, topic, rs);
    if (body.length <= maxBytes) {
      out.push({ id: `${id}.${out.length}`, body });
      return;
    }
    if (rs.length <= 1) {
      throw new GatewayError(
        'EGW_UPLINK_PROFILE',
        `one reading of ${topic} is ${body.length} bytes as JSON, over the profile's ${maxBytes}-byte payload limit`,
      );
    }
    const h = Math.ceil(rs.length / 2);
    cut(rs.slice(0, h));
    cut(rs.slice(h));
  };
  cut(readings);
  return out;
}
