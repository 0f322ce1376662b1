import type { Reading } from '../pipeline/reading.js';
import { readingsJson, readingsOf } from './profiles/json.js';
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

/**
 * Readings as JSON a plain `JSON.parse` reads (AWS IoT rules, Azure routing queries), the one shape
 * of every profile (src/uplink/profiles/json.ts, docs/uplink.md §JSON payloads):
 * `{"id", "topic", "readings": [{"deviceId", "ts", "values", "quality"[, "units"]}, ...]}`, one
 * reading or a batch alike. `id` is the message id (also the `msg-id` user property): the cloud
 * drops duplicates by it.
 */
export function readingsToJson(id: string, topic: string, readings: readonly Reading[]): string {
  return readingsJson(id, topic, readings).toString('utf8');
}

/** Reading messages as JSON; every other message (alerts, status: already JSON) unchanged. */
export const jsonFormat: PayloadFormat = {
  name: 'json',
  encode(msg) {
    // The same test as the aws-iot/azure-iot-hub encoders: a codec batch of readings, else as produced.
    const readings = readingsOf(msg);
    if (readings === undefined) return codecFormat.encode(msg);
    return { payload: readingsJson(msg.id, msg.topic, readings), contentType: JSON_CONTENT_TYPE };
  },
};
