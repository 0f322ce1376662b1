import { decode, encodeBatch, MEDIA_TYPE } from '../codec/index.js';
import type { Reading } from '../pipeline/reading.js';

/**
 * How the outbox stores readings and the uplink sends them. Received as a value (not imported by
 * the outbox), so the outbox and its tests do not depend on one encoder; the gateway passes
 * `binaryReadingCodec`, the format of docs/codec.md. A batch holding a string value is format
 * version 2 (docs/codec.md §Versioning): the cloud decoder must read version 2 before devices send
 * strings; numeric batches stay version 1, byte for byte.
 */
export interface ReadingCodec {
  /** MQTT 5 content type of an uplinked batch. */
  readonly contentType: string;
  /** One outbox row: readings of one device, stored compactly (no compression: it is re-encoded). */
  encodeRow(readings: readonly Reading[]): Uint8Array;
  decodeRow(buf: Uint8Array): Reading[];
  /** One uplinked message: the readings of one device over a batch window. */
  encodeUplink(readings: readonly Reading[]): Uint8Array;
}

export const binaryReadingCodec: ReadingCodec = {
  contentType: MEDIA_TYPE,
  encodeRow: (rs) => encodeBatch(rs, { compress: 'never' }),
  decodeRow: (buf) => decode(buf, { source: 'system' }),
  encodeUplink: (rs) => encodeBatch(rs),
};
