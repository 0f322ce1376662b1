import type { IClientOptions } from 'mqtt';
import { isValidDeviceId } from '../../pipeline/reading.js';
import type { CloudProfile, Downlink, ProfileMessage, WirePublish } from './types.js';

/** MQTT 5 user property carrying the message id (the cloud drops duplicates by it). */
export const MSG_ID_PROPERTY = 'msg-id';

/**
 * The contract's downlink under a prefix (DESIGN "Uplink topics"): `{prefix}/commands/{deviceId}`,
 * `{prefix}/gateway/commands`, `{prefix}/config/desired`. Shared by the mqtt and aws-iot profiles.
 */
export function prefixDownlink(prefix: string): {
  subscriptions: () => readonly string[];
  inbound: (topic: string, payload: Buffer) => Downlink | undefined;
} {
  const cmd = `${prefix}/commands/`;
  return {
    subscriptions: () => [`${prefix}/commands/+`, `${prefix}/gateway/commands`, `${prefix}/config/desired`],
    inbound(topic, payload) {
      if (topic === `${prefix}/gateway/commands`) return { kind: 'gateway-command', payload };
      if (topic === `${prefix}/config/desired`) return { kind: 'config-desired', payload, version: undefined };
      if (topic.startsWith(cmd)) {
        const deviceId = topic.slice(cmd.length);
        // DESIGN "Identifiers are checked at the boundary".
        if (isValidDeviceId(deviceId)) return { kind: 'device-command', deviceId, payload };
      }
      return undefined;
    },
  };
}

/** Plain MQTT 5 to any broker or cluster (EMQX, HiveMQ, Mosquitto): today's layout and payloads, unchanged. */
export function mqttProfile(opts: { prefix: string; clientId: string }): CloudProfile {
  const { prefix } = opts;
  const down = prefixDownlink(prefix);
  return {
    name: 'mqtt',
    protocolVersion: 5,
    // MQTT's own bound (268,435,455 bytes [MQTT-2.2.3]); the broker's Maximum Packet Size applies.
    maxPayloadBytes: 268_435_455,
    maxInflight: undefined,
    topicPrefix: prefix,
    connectOptions: (base: IClientOptions) => ({ ...base, clientId: opts.clientId }),
    renewAfterMs: () => undefined,
    subscriptions: down.subscriptions,
    onConnected: () => undefined,
    onStopping: () => undefined,
    encode: (msg: ProfileMessage): WirePublish[] => [
      {
        topic: `${prefix}/${msg.topic}`,
        payload: Buffer.from(msg.payload.buffer, msg.payload.byteOffset, msg.payload.byteLength),
        qos: 1,
        properties: { userProperties: { [MSG_ID_PROPERTY]: msg.id }, contentType: msg.contentType },
      },
    ],
    inbound: (topic, payload) => down.inbound(topic, payload),
    reportState: (doc) => ({
      topic: `${prefix}/state`,
      payload: Buffer.from(JSON.stringify(doc)),
      qos: 1,
      retain: true,
    }),
  };
}
