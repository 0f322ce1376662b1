import type { IClientOptions } from 'mqtt';
import { GatewayError } from '../../errors.js';
import { jsonParts, readingsOf } from './json.js';
import { MSG_ID_PROPERTY, mqtt5Reply, prefixDownlink, retainedState } from './mqtt.js';
import type { CloudProfile, ProfileMessage, WirePublish } from './types.js';

// AWS IoT Core message broker quotas ("AWS IoT Core endpoints and quotas", message broker):
/** PUBLISH payload: 128 KB, hard. */
export const AWS_MAX_PAYLOAD = 128 * 1024;
/** Topic in PUBLISH/SUBSCRIBE: 256 bytes UTF-8. */
export const AWS_MAX_TOPIC_BYTES = 256;
/** At most 7 forward slashes in a topic or filter. */
export const AWS_MAX_TOPIC_SLASHES = 7;
/** Client id (= thing name here): 128 bytes. */
export const AWS_MAX_CLIENT_ID = 128;
/** Unacknowledged inbound QoS 1 PUBLISHes per client: 100. */
export const AWS_MAX_INFLIGHT = 100;
/** The deepest local topic the gateway uplinks (`devices/{id}/command_result`, `sensors/{id}/data`): 2 slashes, 64-byte id. */
const LOCAL_TOPIC_SLASHES = 2;
const LOCAL_TOPIC_MAX_BYTES = 'devices//command_result'.length + 64;

function slashes(t: string): number {
  let n = 0;
  for (let i = 0; i < t.length; i++) if (t.charCodeAt(i) === 0x2f) n++;
  return n;
}

/** Throws EGW_UPLINK_PROFILE when a topic breaks AWS IoT's limits (AWS would close the connection). */
export function checkAwsTopic(topic: string): void {
  if (Buffer.byteLength(topic) > AWS_MAX_TOPIC_BYTES || slashes(topic) > AWS_MAX_TOPIC_SLASHES) {
    throw new GatewayError(
      'EGW_UPLINK_PROFILE',
      `topic ${topic} is over AWS IoT's limits (${AWS_MAX_TOPIC_BYTES} bytes, ${AWS_MAX_TOPIC_SLASHES} slashes)`,
    );
  }
}

/**
 * AWS IoT Core: mutual TLS on 8883 with the thing's certificate, client id = thing name, JSON
 * reading batches (the rules engine reads JSON only), topics under `{prefix}` = `edge/{thing}` by
 * default so an IoT policy can pin them with `${iot:Connection.Thing.ThingName}`
 * (docs/cloud-profiles.md). Commands come on the thing's own topics: `{prefix}/commands/{deviceId}`,
 * `{prefix}/gateway/commands`, `{prefix}/config/desired`.
 */
export function awsIotProfile(opts: {
  prefix: string;
  thingName: string;
  url: string;
  hasClientCert: boolean;
  /** uplink.downlink.enabled: subscribe, and keep an MQTT 5 session this long (AWS IoT caps it, default 1 h). */
  sessionExpiryS?: number | undefined;
}): CloudProfile {
  const { prefix, thingName } = opts;
  if (!opts.url.startsWith('mqtts://')) {
    throw new GatewayError('EGW_UPLINK_PROFILE', 'uplink.profile aws-iot needs uplink.url mqtts://{endpoint}:8883');
  }
  if (!opts.hasClientCert) {
    throw new GatewayError(
      'EGW_UPLINK_PROFILE',
      'uplink.profile aws-iot authenticates with the thing certificate: set uplink.cert_file and uplink.key_file',
    );
  }
  if (Buffer.byteLength(thingName) > AWS_MAX_CLIENT_ID) {
    throw new GatewayError('EGW_UPLINK_PROFILE', `thing name ${thingName} is over ${AWS_MAX_CLIENT_ID} bytes`);
  }
  // Refuse a prefix that would put the deepest uplink topic over the limits at start, not at the first alert.
  if (
    slashes(prefix) + 1 + LOCAL_TOPIC_SLASHES > AWS_MAX_TOPIC_SLASHES ||
    Buffer.byteLength(prefix) + 1 + LOCAL_TOPIC_MAX_BYTES > AWS_MAX_TOPIC_BYTES
  ) {
    throw new GatewayError(
      'EGW_UPLINK_PROFILE',
      `uplink.topic_prefix ${prefix} leaves no room under AWS IoT's topic limits (${AWS_MAX_TOPIC_SLASHES} slashes, ${AWS_MAX_TOPIC_BYTES} bytes)`,
    );
  }
  const down = prefixDownlink(prefix);
  return {
    name: 'aws-iot',
    protocolVersion: 5,
    maxPayloadBytes: AWS_MAX_PAYLOAD,
    maxInflight: AWS_MAX_INFLIGHT,
    topicPrefix: prefix,
    connectOptions: (base: IClientOptions) => ({
      ...base,
      clientId: thingName,
      ...(opts.sessionExpiryS !== undefined
        ? { clean: false, properties: { ...base.properties, sessionExpiryInterval: opts.sessionExpiryS } }
        : {}),
    }),
    renewAfterMs: () => undefined,
    subscriptions: () => (opts.sessionExpiryS !== undefined ? down.subscriptions() : []),
    onConnected: () => undefined,
    onStopping: () => undefined,
    encode(msg: ProfileMessage): WirePublish[] {
      const topic = `${prefix}/${msg.topic}`;
      checkAwsTopic(topic);
      const readings = readingsOf(msg);
      if (readings === undefined) {
        if (msg.payload.byteLength > AWS_MAX_PAYLOAD) {
          throw new GatewayError(
            'EGW_UPLINK_PROFILE',
            `${msg.topic}: ${msg.payload.byteLength} bytes, over AWS IoT's 128 KB`,
          );
        }
        return [
          {
            topic,
            payload: Buffer.from(msg.payload.buffer, msg.payload.byteOffset, msg.payload.byteLength),
            qos: 1,
            properties: { userProperties: { [MSG_ID_PROPERTY]: msg.id }, contentType: msg.contentType },
          },
        ];
      }
      return jsonParts(msg.id, msg.topic, readings, AWS_MAX_PAYLOAD).map((p) => ({
        topic,
        payload: p.body,
        qos: 1 as const,
        properties: { userProperties: { [MSG_ID_PROPERTY]: p.id }, contentType: 'application/json' },
      }));
    },
    inbound: (topic, payload) => down.inbound(topic, payload),
    reportState: (doc, msgId) => retainedState(`${prefix}/state`, doc, msgId),
    replies: down.replies,
    commandResult(to, json, o) {
      checkAwsTopic(to);
      return mqtt5Reply(to, json, o);
    },
  };
}
