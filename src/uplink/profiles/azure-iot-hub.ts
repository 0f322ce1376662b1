import type { IClientOptions } from 'mqtt';
import { GatewayError } from '../../errors.js';
import { isValidDeviceId } from '../../pipeline/reading.js';
import { jsonParts, readingsOf } from './json.js';
import { sasExpiry, sasRenewInS, sasToken } from './sas.js';
import type { CloudProfile, Downlink, ProfileLink, ProfileMessage, WirePublish } from './types.js';

// Azure IoT Hub quotas ("IoT Hub quotas and throttling"): device-to-cloud messages up to 256 KB;
// twin desired/reported properties 32 KB each. MQTT support ("Communicate with an IoT hub using
// the MQTT protocol"): MQTT 3.1.1 only, QoS 0 and 1 (QoS 2 closes the connection), no retain.
export const AZURE_MAX_PAYLOAD = 256 * 1024;
export const AZURE_MAX_TWIN_BYTES = 32 * 1024;

/** `a=1&b=x%2Fy` → entries (a property bag as IoT Hub appends it to topics). */
function parseBag(bag: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const kv of bag.split('&')) {
    if (kv === '') continue;
    const i = kv.indexOf('=');
    try {
      const k = decodeURIComponent(i < 0 ? kv : kv.slice(0, i));
      out.set(k, i < 0 ? '' : decodeURIComponent(kv.slice(i + 1)));
    } catch {
      // A malformed escape: skip that property, keep the others.
    }
  }
  return out;
}

function bag(props: Record<string, string>): string {
  return Object.entries(props)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Twin PATCH semantics: objects merge, null removes a property ("Understand and use device twins"). */
function mergePatch(target: JsonObject, patch: JsonObject): JsonObject {
  const out: JsonObject = { ...target };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else if (isObject(v) && isObject(out[k])) out[k] = mergePatch(out[k], v);
    else out[k] = v;
  }
  return out;
}

function parseJsonObject(payload: Buffer): JsonObject | undefined {
  if (payload.length > AZURE_MAX_TWIN_BYTES * 2) return undefined; // the whole twin: desired + reported
  try {
    const v: unknown = JSON.parse(payload.toString('utf8'));
    return isObject(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

export interface AzureOptions {
  /** Host name, e.g. myhub.azure-devices.net. */
  hub: string;
  deviceId: string;
  deviceKey: string;
  ttlS: number;
  apiVersion: string;
  url: string;
  /** Wall clock in ms (SAS expiry is wall-clock time by definition); tests pass their own. */
  nowMs?: () => number;
}

/**
 * Azure IoT Hub over MQTT 3.1.1 (docs/cloud-profiles.md): client id = device id, user name
 * `{hub}/{deviceId}/?api-version=…`, password a SAS token made from the device key and renewed by
 * reconnecting before it expires; telemetry on `devices/{deviceId}/messages/events/{property bag}`,
 * cloud-to-device on `devices/{deviceId}/messages/devicebound/#`, desired config from the twin's
 * desired properties, reported state as a twin reported-properties PATCH.
 */
export function azureIotHubProfile(o: AzureOptions): CloudProfile {
  if (!o.hub) throw new GatewayError('EGW_UPLINK_PROFILE', 'uplink.profile azure-iot-hub needs uplink.azure.hub');
  if (!o.deviceKey) {
    throw new GatewayError(
      'EGW_UPLINK_PROFILE',
      'uplink.profile azure-iot-hub needs uplink.azure.device_key (the device identity’s base64 key; use !env or !file)',
    );
  }
  if (Buffer.from(o.deviceKey, 'base64').length < 16) {
    throw new GatewayError('EGW_UPLINK_PROFILE', 'uplink.azure.device_key is not a base64 key of at least 16 bytes');
  }
  if (!o.url.startsWith('mqtts://')) {
    throw new GatewayError('EGW_UPLINK_PROFILE', `uplink.profile azure-iot-hub needs uplink.url mqtts://${o.hub}:8883`);
  }
  const now = o.nowMs ?? (() => Date.now());
  const dev = o.deviceId;
  const events = `devices/${dev}/messages/events/`;
  const c2d = `devices/${dev}/messages/devicebound/`;
  let rid = 0;
  let getRid: string | undefined;
  let desired: JsonObject | undefined;
  let desiredVersion: number | undefined;

  // System properties $.mid (message id), $.ct/$.ce (content type and encoding: routing queries
  // read the body only when they say application/json and utf-8), then the local topic.
  const eventTopic = (id: string, ct: string, local: string): string =>
    `${events}$.mid=${encodeURIComponent(id)}&$.ct=${encodeURIComponent(ct)}` +
    `${ct.startsWith('application/json') ? '&$.ce=utf-8' : ''}&${bag({ topic: local })}`;

  const emitDesired = (): Downlink => ({
    kind: 'config-desired',
    payload: Buffer.from(JSON.stringify(desired ?? {})),
    version: desiredVersion,
  });

  return {
    name: 'azure-iot-hub',
    protocolVersion: 4,
    maxPayloadBytes: AZURE_MAX_PAYLOAD,
    maxInflight: undefined,
    topicPrefix: events,
    connectOptions(base: IClientOptions): IClientOptions {
      const { properties: _mqtt5Only, ...rest } = base;
      void _mqtt5Only;
      const se = sasExpiry(Math.floor(now() / 1000), o.ttlS);
      return {
        ...rest,
        protocolVersion: 4,
        clientId: dev,
        username: `${o.hub}/${dev}/?api-version=${o.apiVersion}`,
        password: sasToken(`${o.hub}/devices/${dev}`, o.deviceKey, se),
        // CleanSession 0: the hub keeps the subscriptions and the QoS 1 cloud-to-device messages.
        clean: false,
      };
    },
    renewAfterMs() {
      const nowS = Math.floor(now() / 1000);
      // Spread a fleet's reconnects over a quarter period instead of all at the boundary.
      return (sasRenewInS(nowS, o.ttlS) + Math.random() * (o.ttlS / 4)) * 1000;
    },
    subscriptions: () => [`${c2d}#`, '$iothub/twin/res/#', '$iothub/twin/PATCH/properties/desired/#'],
    onConnected(link: ProfileLink) {
      // The whole twin once per connection: desired changes made while offline are in it.
      getRid = String(++rid);
      link.publish({ topic: `$iothub/twin/GET/?$rid=${getRid}`, payload: Buffer.alloc(0), qos: 0 });
    },
    onStopping: () => undefined,
    encode(msg: ProfileMessage): WirePublish[] {
      const readings = readingsOf(msg);
      if (readings === undefined) {
        if (msg.payload.byteLength > AZURE_MAX_PAYLOAD) {
          throw new GatewayError(
            'EGW_UPLINK_PROFILE',
            `${msg.topic}: ${msg.payload.byteLength} bytes, over IoT Hub's 256 KB`,
          );
        }
        return [
          {
            topic: eventTopic(msg.id, msg.contentType, msg.topic),
            payload: Buffer.from(msg.payload.buffer, msg.payload.byteOffset, msg.payload.byteLength),
            qos: 1,
          },
        ];
      }
      return jsonParts(msg.id, msg.topic, readings, AZURE_MAX_PAYLOAD).map((p) => ({
        topic: eventTopic(p.id, 'application/json', msg.topic),
        payload: p.body,
        qos: 1 as const,
      }));
    },
    inbound(topic, payload): Downlink | undefined {
      if (topic.startsWith(c2d)) {
        const props = parseBag(topic.slice(c2d.length));
        const target = props.get('device');
        // MQTT 3.1.1 has no properties: the C2D message's system properties $.mid (message id) and
        // $.cid (correlation id) stand in for the command id and the MQTT 5 correlation data.
        const mid = props.get('$.mid');
        const cid = props.get('$.cid');
        const dp = {
          props: {
            ...(cid ? { correlationData: Buffer.from(cid, 'utf8') } : {}),
            ...(mid ? { userProperties: { 'msg-id': mid } } : {}),
          },
        };
        if (target === undefined) return { kind: 'gateway-command', payload, ...dp };
        return isValidDeviceId(target)
          ? { kind: 'device-command', deviceId: target, payload, ...dp }
          : { kind: 'bad-device-id', raw: target, payload, ...dp };
      }
      if (topic.startsWith('$iothub/twin/res/')) {
        // $iothub/twin/res/{status}/?$rid={rid}[&$version={v}]
        const rest = topic.slice('$iothub/twin/res/'.length);
        const slash = rest.indexOf('/');
        const status = Number(rest.slice(0, slash));
        const q = parseBag(rest.slice(rest.indexOf('?') + 1));
        if (q.get('$rid') !== getRid || getRid === undefined) return undefined; // a reported PATCH's answer
        getRid = undefined;
        if (status !== 200) return undefined;
        const twin = parseJsonObject(payload);
        const d = twin?.['desired'];
        if (!isObject(d)) return undefined;
        const { $version, ...doc } = d;
        desired = doc;
        desiredVersion = typeof $version === 'number' ? $version : undefined;
        return emitDesired();
      }
      if (topic.startsWith('$iothub/twin/PATCH/properties/desired/')) {
        const patch = parseJsonObject(payload);
        if (!patch) return undefined;
        const { $version, ...doc } = patch;
        const v =
          typeof $version === 'number'
            ? $version
            : Number(parseBag(topic.slice(topic.indexOf('?') + 1)).get('$version'));
        // A patch older than the twin we hold (the GET answer crossed it) changes nothing.
        if (desiredVersion !== undefined && Number.isFinite(v) && v <= desiredVersion) return undefined;
        desired = mergePatch(desired ?? {}, doc);
        desiredVersion = Number.isFinite(v) ? v : desiredVersion;
        return emitDesired();
      }
      return undefined;
    },
    reportState(doc) {
      return {
        topic: `$iothub/twin/PATCH/properties/reported/?$rid=${++rid}`,
        payload: Buffer.from(JSON.stringify(doc)),
        qos: 1,
      };
    },
    // IoT Hub accepts device publishes only on its own topics: results and config/reported are
    // device-to-cloud events carrying the local name as the `topic` property (routing queries
    // select on it), the msg-id as $.mid and the command's correlation id as $.cid.
    replies: {
      deviceCommandResult: (id) => `devices/${id}/command_result`,
      gatewayCommandResult: () => 'gateway/command_result',
      configReported: () => 'config/reported',
    },
    commandResult(to, json, opts) {
      const cid = opts.correlationData ? `&$.cid=${encodeURIComponent(opts.correlationData.toString('utf8'))}` : '';
      const id = opts.msgId ?? `r-${rid + 1}`;
      const t = eventTopic(id, 'application/json', to);
      const at = t.indexOf('&');
      return { topic: `${t.slice(0, at)}${cid}${t.slice(at)}`, payload: Buffer.from(json, 'utf8'), qos: 1 };
    },
  };
}
