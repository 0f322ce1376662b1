import { topicMatches } from '../queue/classify.js';
import { isValidDeviceId } from '../pipeline/reading.js';

/**
 * Where each kind of uplink and downlink message lives on the cloud broker in the contract's layout
 * (DESIGN.md "Uplink topics"). The `mqtt` and `aws-iot` profiles (src/uplink/profiles/mqtt.ts) are
 * built on it; azure-iot-hub and sparkplug-b map the same kinds onto their own topics. The uplink
 * and the command pipeline see only the profile (`CloudProfile`), never a layout.
 */
export interface TopicLayout {
  /** Cloud topic of an outbox message whose local topic is `local` (e.g. `sensors/d1/data`). */
  telemetry(local: string): string;
  /** Filters the downlink subscribes to (QoS 1). */
  subscriptions(): readonly string[];
  /** Classifies an incoming topic; undefined = not ours (ignored). */
  parseDownlink(topic: string): DownlinkTopic | undefined;
  /** Where the outcome of a device command goes. */
  deviceCommandResult(deviceId: string): string;
  /** Where a gateway command's result goes when the request names no MQTT 5 response topic. */
  gatewayCommandResult(): string;
  /** Reported state (retained). */
  state(): string;
  /** Outcome of the last desired config (retained). */
  configReported(): string;
}

export type DownlinkTopic =
  | { kind: 'device-command'; deviceId: string }
  /** The device id segment is there but not allowed: refused at the boundary with a reason. */
  | { kind: 'bad-device-id'; raw: string }
  | { kind: 'gateway-command' }
  | { kind: 'config-desired' };

/**
 * The contract layout under `{prefix}`:
 * - `{prefix}/commands/{deviceId}` device commands (down), `{prefix}/devices/{deviceId}/command_result` (up);
 * - `{prefix}/gateway/commands` gateway commands (down, MQTT 5 request/response),
 *   `{prefix}/gateway/command_result` results when no response topic was given (up);
 * - `{prefix}/state` reported state (up, retained); `{prefix}/config/desired` (down),
 *   `{prefix}/config/reported` (up, retained).
 */
export function defaultTopicLayout(prefix: string): TopicLayout {
  const cmd = `${prefix}/commands/`;
  const gw = `${prefix}/gateway/commands`;
  const desired = `${prefix}/config/desired`;
  return {
    telemetry: (local) => `${prefix}/${local}`,
    subscriptions: () => [`${prefix}/commands/+`, gw, desired],
    parseDownlink(topic) {
      if (topic === gw) return { kind: 'gateway-command' };
      if (topic === desired) return { kind: 'config-desired' };
      if (topic.startsWith(cmd)) {
        const id = topic.slice(cmd.length);
        return isValidDeviceId(id) ? { kind: 'device-command', deviceId: id } : { kind: 'bad-device-id', raw: id };
      }
      return undefined;
    },
    deviceCommandResult: (id) => `${prefix}/devices/${id}/command_result`,
    gatewayCommandResult: () => `${prefix}/gateway/command_result`,
    state: () => `${prefix}/state`,
    configReported: () => `${prefix}/config/reported`,
  };
}

/** Payload format of reading messages for one local topic (uplink.payload_format_rules, then the default). */
export function formatFor(
  rules: readonly { topic: string; format: 'codec' | 'json' }[],
  fallback: 'codec' | 'json',
): (localTopic: string) => 'codec' | 'json' {
  if (rules.length === 0) return () => fallback;
  const cache = new Map<string, 'codec' | 'json'>();
  return (t) => {
    let f = cache.get(t);
    if (f === undefined) {
      f = rules.find((r) => topicMatches(r.topic, t))?.format ?? fallback;
      if (cache.size < 10000) cache.set(t, f);
    }
    return f;
  };
}
