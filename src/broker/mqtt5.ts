import { generate, type IPublishPacket } from 'mqtt-packet';

/**
 * MQTT 5 helpers of the broker that aedes does not provide (docs/broker.md, "MQTT 5").
 */

/** Media type of the binary codec (docs/codec.md) in an MQTT 5 Content Type (§3.3.2.3.9). */
export const CODEC_CONTENT_TYPE = 'application/vnd.edge-gateway.codec';

/**
 * How an MQTT 5 Content Type selects the ingest decoder: `json` for application/json (parameters
 * such as `; charset=utf-8` allowed), `codec` for the codec's media type, `sniff` otherwise (absent,
 * or a type the gateway does not know: the payload decides, as for 3.1.1 clients).
 */
export function contentTypeKind(contentType: string | undefined): 'json' | 'codec' | 'sniff' {
  if (contentType === undefined) return 'sniff';
  const base = contentType.split(';', 1)[0]!.trim().toLowerCase();
  if (base === 'application/json') return 'json';
  if (base === CODEC_CONTENT_TYPE) return 'codec';
  return 'sniff';
}

/**
 * Bytes of `packet` as the broker would send it to an MQTT 5 client (fixed header included), for
 * [MQTT-3.1.2-25] (never send more than the client's Maximum Packet Size). Only computed for
 * clients that announced a maximum; a packet id is assumed for QoS > 0.
 */
export function encodedSize(packet: Pick<IPublishPacket, 'topic' | 'payload' | 'qos' | 'properties'>): number {
  return generate(
    {
      cmd: 'publish',
      topic: packet.topic,
      payload: packet.payload,
      qos: packet.qos,
      dup: false,
      retain: false,
      ...(packet.qos > 0 ? { messageId: 1 } : {}),
      ...(packet.properties ? { properties: packet.properties } : {}),
    },
    { protocolVersion: 5 },
  ).length;
}

/**
 * `props` without the will-only Will Delay Interval (§3.1.3.2; not a PUBLISH property, §3.3.2.3),
 * copied only when it is there. aedes publishes a will with its will properties unchanged.
 */
export function withoutWillOnlyProperties<T extends object>(props: T): T {
  if (!('willDelayInterval' in props)) return props;
  const copy: Record<string, unknown> = { ...props };
  delete copy['willDelayInterval'];
  return copy as T;
}
