import type { IClientOptions } from 'mqtt';
import { codecFormat, type PayloadFormat } from '../formats.js';
import { defaultTopicLayout, type TopicLayout } from '../topics.js';
import type { CloudProfile, Downlink, ProfileMessage, ReplyOptions, ReplyTopics, WirePublish } from './types.js';

/** MQTT 5 user property carrying the message id (the cloud drops duplicates by it). */
export const MSG_ID_PROPERTY = 'msg-id';

/**
 * The contract's downlink under a prefix (DESIGN "Uplink topics", src/uplink/topics.ts):
 * `{prefix}/commands/{deviceId}`, `{prefix}/gateway/commands`, `{prefix}/config/desired`; the
 * results on `{prefix}/devices/{deviceId}/command_result`, `{prefix}/gateway/command_result`,
 * `{prefix}/config/reported`. Shared by the mqtt and aws-iot profiles.
 */
export function prefixDownlink(
  prefix: string,
  layout: TopicLayout = defaultTopicLayout(prefix),
): {
  subscriptions: () => readonly string[];
  inbound: (topic: string, payload: Buffer) => Downlink | undefined;
  replies: ReplyTopics;
} {
  return {
    subscriptions: () => layout.subscriptions(),
    inbound(topic, payload) {
      const t = layout.parseDownlink(topic);
      switch (t?.kind) {
        case undefined:
          return undefined;
        case 'gateway-command':
          return { kind: 'gateway-command', payload };
        case 'config-desired':
          return { kind: 'config-desired', payload, version: undefined };
        case 'device-command':
          return { kind: 'device-command', deviceId: t.deviceId, payload };
        case 'bad-device-id':
          // DESIGN "Identifiers are checked at the boundary": the pipeline refuses it with a reason.
          return { kind: 'bad-device-id', raw: t.raw, payload };
      }
    },
    replies: {
      deviceCommandResult: (id) => layout.deviceCommandResult(id),
      gatewayCommandResult: () => layout.gatewayCommandResult(),
      configReported: () => layout.configReported(),
    },
  };
}

/** A JSON reply as an MQTT 5 PUBLISH: content type, correlation data echoed [MQTT-4.10.1], msg-id. */
export function mqtt5Reply(to: string, json: string, o: ReplyOptions): WirePublish {
  return {
    topic: to,
    payload: Buffer.from(json, 'utf8'),
    qos: 1,
    retain: o.retain ?? false,
    properties: {
      contentType: 'application/json',
      ...(o.correlationData ? { correlationData: o.correlationData } : {}),
      // Like outbox messages: a stable id, so the cloud drops a result sent twice (at-least-once).
      ...(o.msgId ? { userProperties: { [MSG_ID_PROPERTY]: o.msgId } } : {}),
    },
  };
}

/** Reported state on `{prefix}/state`, retained, with its content-derived msg-id. */
export function retainedState(topic: string, doc: Record<string, unknown>, msgId?: string): WirePublish {
  return {
    topic,
    payload: Buffer.from(JSON.stringify(doc)),
    qos: 1,
    retain: true,
    properties: {
      contentType: 'application/json',
      ...(msgId ? { userProperties: { [MSG_ID_PROPERTY]: msgId } } : {}),
    },
  };
}

export interface MqttProfileOptions {
  prefix: string;
  clientId: string;
  /** Cloud topics (default: the contract layout under `prefix`). */
  layout?: TopicLayout;
  /** Payload format per local topic (uplink.payload_format, payload_format_rules); default: the codec. */
  format?: (localTopic: string) => PayloadFormat;
  /**
   * uplink.downlink.enabled: subscribe to the downlink topics and keep a persistent session of
   * this many seconds (MQTT 5 Session Expiry Interval [MQTT-3.1.2.11.2]), so commands sent while
   * the gateway was offline wait at the broker [MQTT-3.1.2-4]. Undefined: send-only, clean start.
   */
  sessionExpiryS?: number | undefined;
}

/**
 * Plain MQTT 5 to any broker or cluster (EMQX, HiveMQ, Mosquitto): the contract's topic layout
 * (src/uplink/topics.ts) and the payload format per topic (src/uplink/formats.ts: codec or JSON).
 */
export function mqttProfile(opts: MqttProfileOptions): CloudProfile {
  const { prefix } = opts;
  const layout = opts.layout ?? defaultTopicLayout(prefix);
  const down = prefixDownlink(prefix, layout);
  const format = opts.format ?? (() => codecFormat);
  const session = opts.sessionExpiryS;
  return {
    name: 'mqtt',
    protocolVersion: 5,
    // MQTT's own bound (268,435,455 bytes [MQTT-2.2.3]); the broker's Maximum Packet Size applies.
    maxPayloadBytes: 268_435_455,
    maxInflight: undefined,
    topicPrefix: prefix,
    connectOptions: (base: IClientOptions) => ({
      ...base,
      clientId: opts.clientId,
      ...(session !== undefined
        ? { clean: false, properties: { ...base.properties, sessionExpiryInterval: session } }
        : {}),
    }),
    renewAfterMs: () => undefined,
    subscriptions: () => (session !== undefined ? down.subscriptions() : []),
    onConnected: () => undefined,
    onStopping: () => undefined,
    encode: (msg: ProfileMessage): WirePublish[] => {
      const enc = format(msg.topic).encode(msg);
      return [
        {
          topic: layout.telemetry(msg.topic),
          payload: enc.payload,
          qos: 1,
          properties: { userProperties: { [MSG_ID_PROPERTY]: msg.id }, contentType: enc.contentType },
        },
      ];
    },
    inbound: (topic, payload) => down.inbound(topic, payload),
    reportState: (doc, msgId) => retainedState(layout.state(), doc, msgId),
    replies: down.replies,
    commandResult: mqtt5Reply,
  };
}
