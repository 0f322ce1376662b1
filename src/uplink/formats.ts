import { decode, MEDIA_TYPE } from '../codec/index.js';
import type { Reading } from '../pipeline/reading.js';
import type { ProfileMessage } from './profiles/types.js';

/** What goes on the wire for one outbox message. */
export interface EncodedPayload {
  payload: Buffer;
  contentType: string;
}

/**
 * How an outbox message becomes a cloud payload. The outbox always stores readings in the binary
 * codec (compact on disk); the format is chosen at send time, so switching `uplink.payload_format`
 * needs no migration and a backlog drains in the new format. A cloud profile supplies its own
 * (Sparkplug B protobuf, Azure with properties) through the same shape.
 */
export interface PayloadFormat {
  readonly name: string;
  encode(msg: ProfileMessage): EncodedPayload;
}

const asBuffer = (p: Uint8Array) => Buffer.from(p.buffer, p.byteOffset, p.byteLength);

/** The binary codec as stored (docs/codec.md): the default, smallest on the wire. */
export const codecFormat: PayloadFormat = {
  name: 'codec',
  encode: (msg) => ({ payload: asBuffer(msg.payload), contentType: msg.contentType }),
};

export const JSON_CONTENT_TYPE = 'application/json';

/** One reading in the JSON uplink shape (docs/uplink.md §JSON payloads). */
export interface JsonReading {
  deviceId?: string;
  ts: number;
  quality: Reading['quality'];
  values: Reading['values'];
  units?: Record<string, string>;
}

function jsonReading(r: Reading, withDevice: boolean): JsonReading {
  const out: JsonReading = withDevice
    ? { deviceId: r.deviceId, ts: r.ts, quality: r.quality, values: r.values }
    : { ts: r.ts, quality: r.quality, values: r.values };
  if (r.units && Object.keys(r.units).length > 0) out.units = r.units;
  return out;
}

/**
 * Readings as JSON a plain `JSON.parse` reads (AWS IoT rules, Azure routing queries):
 * one reading → `{"id","deviceId","ts","quality","values"[,"units"]}`;
 * a batch → `{"id","deviceId","readings":[{"ts","quality","values"[,"units"]}, ...]}`.
 * `id` is the message id (also the `msg-id` user property): the cloud drops duplicates by it.
 */
export function readingsToJson(id: string, readings: readonly Reading[]): string {
  const first = readings[0];
  if (!first) return JSON.stringify({ id, readings: [] });
  const oneDevice = readings.every((r) => r.deviceId === first.deviceId);
  if (readings.length === 1) return JSON.stringify({ id, ...jsonReading(first, true) });
  return JSON.stringify({
    id,
    ...(oneDevice ? { deviceId: first.deviceId } : {}),
    readings: readings.map((r) => jsonReading(r, !oneDevice)),
  });
}

/** Reading messages as JSON; every other message (alerts, status: already JSON) unchanged. */
export const jsonFormat: PayloadFormat = {
  name: 'json',
  encode(msg) {
    if (msg.contentType !== MEDIA_TYPE) return codecFormat.encode(msg);
    // Rows were checked when stored; the limits only have to admit what the outbox batches.
    const readings = decode(msg.payload, { source: 'system', maxReadings: 1_000_000 });
    return { payload: Buffer.from(readingsToJson(msg.id, readings), 'utf8'), contentType: JSON_CONTENT_TYPE };
  },
};

/** Picks the format per local topic; memoises the last encodings (cost() and publish() both need them). */
export class FormatSelector {
  private readonly cache = new WeakMap<ProfileMessage, EncodedPayload>();
  constructor(private readonly pick: (localTopic: string) => PayloadFormat) {}

  encode(msg: ProfileMessage): EncodedPayload {
    let e = this.cache.get(msg);
    if (!e) {
      e = this.pick(msg.topic).encode(msg);
      this.cache.set(msg, e);
    }
    return e;
  }
}
