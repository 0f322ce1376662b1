import type { IClientOptions, IClientPublishOptions } from 'mqtt';
import type { ProfileName } from './config.js';

/**
 * The seam between the uplink (connection, outbox, scheduler, token bucket, PUBACK bookkeeping:
 * src/uplink/uplink.ts) and a cloud profile (what goes on the wire: connect options, topics,
 * payloads, what comes down). A profile holds no socket and no timer; the uplink calls it.
 */

/** One outbox message as the profile sees it (a subset of the queue's UplinkMessage). */
export interface ProfileMessage {
  /** Unique, stable across re-sends: the cloud drops duplicates by it. */
  readonly id: string;
  /** Local topic, e.g. `sensors/d1/data`, `alerts/d1`, `devices/d1/status`. */
  readonly topic: string;
  readonly payload: Uint8Array;
  /** The codec's media type for reading batches; the producer's for other messages. */
  readonly contentType: string;
  /** Readings in it (0 for a message that is not a reading batch). */
  readonly readings: number;
}

/** One PUBLISH a profile asks for. */
export interface WirePublish {
  topic: string;
  payload: Buffer;
  /** Every profile limit allows QoS 1 (Azure IoT Hub: 0/1 only; AWS IoT: 0/1 only). */
  qos: 0 | 1;
  retain?: boolean;
  /** MQTT 5 properties; dropped by the uplink when the profile speaks MQTT 3.1.1. */
  properties?: IClientPublishOptions['properties'];
}

/** The MQTT 5 properties of an incoming command the command pipeline needs [MQTT-3.3.2.3]. */
export interface DownlinkProps {
  /** Correlation Data: echoed on the result; the dedupe key of a request/response command. */
  correlationData?: Buffer | undefined;
  /** Response Topic: where the result goes (else the profile's result topic). */
  responseTopic?: string | undefined;
  /** User properties; `msg-id` is a command id when the payload has none. */
  userProperties?: Record<string, string | string[]> | undefined;
}

/** What the cloud sent, in the terms of the contract (DESIGN "Uplink topics"), whatever the profile's layout. */
export type Downlink = (
  | { kind: 'device-command'; deviceId: string; payload: Buffer }
  /** A device command whose device id segment is not allowed: refused at the boundary with a reason. */
  | { kind: 'bad-device-id'; raw: string; payload: Buffer }
  | { kind: 'gateway-command'; payload: Buffer }
  /** The whole desired document (twin patches already merged), with the cloud's version when it has one. */
  | { kind: 'config-desired'; payload: Buffer; version: number | undefined }
) & {
  /** The PUBLISH's MQTT 5 properties (set by the uplink unless the profile set its own). */
  props?: DownlinkProps;
};

/**
 * Where the answers to the cloud go when a command names no MQTT 5 response topic. Topics as
 * `commandResult()` takes them: the wire topic (mqtt, aws-iot) or a local name the profile maps
 * (azure-iot-hub: a device-to-cloud event with the name as a property; sparkplug-b: an NDATA message).
 */
export interface ReplyTopics {
  deviceCommandResult(deviceId: string): string;
  gatewayCommandResult(): string;
  /** Outcome of the last desired config (retained where the cloud keeps retained messages). */
  configReported(): string;
}

/** Options of one reply (command result, config reported). */
export interface ReplyOptions {
  retain?: boolean | undefined;
  correlationData?: Buffer | undefined;
  /** Stable id of the reply (every copy the same): the cloud drops a copy sent twice. */
  msgId?: string | undefined;
}

/** What a profile may do on the live connection (births, twin requests, answers). */
export interface ProfileLink {
  publish(w: WirePublish): void;
}

export interface CloudProfile {
  readonly name: ProfileName;
  /** 5 = MQTT 5; 4 = MQTT 3.1.1 (Azure IoT Hub). */
  readonly protocolVersion: 4 | 5;
  /** Largest PUBLISH payload the cloud accepts; encode() splits reading batches to stay under it. */
  readonly maxPayloadBytes: number;
  /** Cap on unacknowledged QoS 1 PUBLISHes the cloud allows (AWS IoT: 100); undefined = the config's. */
  readonly maxInflight: number | undefined;
  /** Uplink topic of a local topic before any payload mapping (what the bucket costs by). */
  readonly topicPrefix: string;
  /** Options of one connection attempt; called at every attempt (fresh credentials, a new will). */
  connectOptions(base: IClientOptions): IClientOptions;
  /** Milliseconds after a successful connect when the credentials must be renewed by reconnecting; undefined = never. */
  renewAfterMs(): number | undefined;
  /** Topic filters to subscribe to (QoS 1) after each connect. */
  subscriptions(): readonly string[];
  /** After CONNACK and the subscriptions: births, twin GET. */
  onConnected(link: ProfileLink): void;
  /** Before a deliberate disconnect (stop): e.g. Sparkplug's NDEATH. */
  onStopping(link: ProfileLink): void;
  /**
   * The PUBLISHes of one outbox message, in order; the message is acknowledged in the outbox when
   * the last of them is. Throws GatewayError EGW_UPLINK_PROFILE when it cannot be sent within the
   * profile's limits (the uplink counts it and keeps it queued).
   */
  encode(msg: ProfileMessage): WirePublish[];
  /** An incoming PUBLISH: a downlink for the gateway, or undefined (answered inside the profile, or not ours). */
  inbound(topic: string, payload: Buffer, link: ProfileLink): Downlink | undefined;
  /** Reported state (`{prefix}/state` in the default layout; Azure: a twin reported-properties PATCH). */
  reportState(doc: Record<string, unknown>, msgId?: string): WirePublish;
  /** Reply topics of the command pipeline and the twin (src/uplink/downlink.ts, twin.ts). */
  readonly replies: ReplyTopics;
  /** One reply (JSON text) to `to` (a `replies` topic or a command's response topic) as a QoS 1 PUBLISH. */
  commandResult(to: string, json: string, opts: ReplyOptions): WirePublish;
}
