import { decode, MEDIA_TYPE } from '../codec/index.js';
import type { Reading } from '../pipeline/reading.js';
import { readingsJson } from './profiles/json.js';
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
    if (msg.contentType !== MEDIA_TYPE) return codecFormat.encode(msg);
    // Rows were checked when stored; the limits only have to admit what the outbox batches.
    const readings = decode(msg.payload, { source: 'system', maxReadings: 1_000_000 });
    return { payload: readingsJson(msg.id, msg.topic, readings), contentType: JSON_CONTENT_TYPE };
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
