import { decode, looksLikeCodec } from '../codec/index.js';
import { GatewayError } from '../errors.js';
import type { Reading } from '../pipeline/reading.js';
import type { PayloadDecoder } from './ingest.js';

/**
 * The binary codec (docs/codec.md) as an MQTT ingest decoder. The topic names the device: a
 * codec message with an empty device id takes it from the topic; one naming another device is
 * refused, because the ACL authorised the topic, not the id inside the bytes.
 */
export const codecDecoder: PayloadDecoder = {
  name: 'codec',
  looksLike: (payload) => looksLikeCodec(payload),
  decode(payload: Buffer, deviceId: string): Reading[] {
    const readings = decode(payload, { source: 'mqtt' });
    for (const r of readings) {
      if (r.deviceId === '') r.deviceId = deviceId;
      else if (r.deviceId !== deviceId) {
        throw new GatewayError(
          'EGW_INGEST_DEVICE_ID',
          `payload names device ${JSON.stringify(r.deviceId)}, topic names ${deviceId}`,
        );
      }
    }
    return readings;
  },
};
