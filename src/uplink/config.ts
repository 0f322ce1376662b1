import { Type, type Static } from '@sinclair/typebox';
import { section, Secret } from '../config/sections.js';
import { profileConfigProps } from './profiles/config.js';

/** Entries of uplink.downlink.allow: device patterns and the gateway command names. */
export const GATEWAY_COMMANDS = [
  'ota.check',
  'ota.apply',
  'config.apply',
  'config.desired',
  'uplink.reconnect',
  'restart',
  'plugins.reload',
] as const;
export type GatewayCommand = (typeof GATEWAY_COMMANDS)[number];
const DOWNLINK_ALLOW_PATTERN = `^(device:(\\*|[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}\\*?)|${GATEWAY_COMMANDS.map((c) => c.replace('.', '\\.')).join('|')})$`;

export const UplinkConfigSchema = section(
  {
    enabled: Type.Boolean({
      default: true,
      description:
        'Connect to the cloud broker. With no cloud reachable the uplink stays offline (logged once) and the outbox accumulates.',
    }),
    url: Type.String({
      pattern: '^mqtts?://',
      default: 'mqtt://127.0.0.1:1884',
      description: 'Cloud broker: mqtt://host:port or mqtts://host:port (MQTT 5).',
    }),
    client_id: Type.String({ default: '', maxLength: 128, description: 'MQTT client id; empty = edge-{gateway.id}.' }),
    topic_prefix: Type.String({
      default: '',
      description: 'Uplink topic = {topic_prefix}/{local topic}; empty = edge/{gateway.id}.',
    }),
    username: Type.Optional(Type.String({ description: 'Cloud broker user name.' })),
    password: Type.Optional(Secret('Cloud broker password (use !env or !file).')),
    ca_file: Type.Optional(
      Type.String({ description: 'PEM CA bundle that signs the cloud broker certificate (mqtts).' }),
    ),
    cert_file: Type.Optional(Type.String({ description: 'PEM client certificate for mutual TLS.' })),
    key_file: Type.Optional(Type.String({ description: 'PEM private key of the client certificate.' })),
    reject_unauthorized: Type.Boolean({
      default: true,
      description: 'Verify the broker certificate (mqtts). Only turn off for tests.',
    }),
    keepalive_s: Type.Integer({
      minimum: 5,
      maximum: 65535,
      default: 30,
      description: 'MQTT keepalive; a silent link is detected after 1.5× this.',
    }),
    connect_timeout_ms: Type.Integer({ minimum: 1000, default: 10000, description: 'Bound on TCP + TLS + CONNACK.' }),
    ack_timeout_ms: Type.Integer({
      minimum: 1000,
      default: 30000,
      description: 'A PUBACK slower than this means the link is dead: go offline, reconnect, re-send (same ids).',
    }),
    inflight_window: Type.Integer({
      minimum: 1,
      maximum: 65535,
      default: 64,
      description: 'QoS 1 messages sent but not yet acknowledged (also bounded by the broker Receive Maximum).',
    }),
    ...profileConfigProps,
    payload_format: Type.Union([Type.Literal('codec'), Type.Literal('json')], {
      default: 'codec',
      description:
        'Format of uplinked readings: codec = the binary codec (docs/codec.md, smallest); json = one JSON document per message with its msg-id, one reading or a batch (docs/uplink.md), for cloud rule engines.',
    }),
    payload_format_rules: Type.Array(
      Type.Object(
        {
          topic: Type.String({
            minLength: 1,
            maxLength: 256,
            description: 'MQTT topic filter of the local topic (+, #).',
          }),
          format: Type.Union([Type.Literal('codec'), Type.Literal('json')]),
        },
        { additionalProperties: false },
      ),
      {
        default: [],
        maxItems: 64,
        description: 'Per-topic payload format (first matching filter wins; otherwise payload_format).',
      },
    ),
    downlink: section(
      {
        enabled: Type.Boolean({
          default: false,
          description:
            'Two-way link: persistent session, subscribe to device commands, gateway commands and desired config; publish reported state (docs/uplink.md).',
        }),
        allow: Type.Array(Type.String({ pattern: DOWNLINK_ALLOW_PATTERN }), {
          default: [],
          maxItems: 256,
          description:
            'What the cloud may send at all: "device:*", "device:<id>", "device:<prefix>*", and gateway commands "ota.check", "ota.apply", "config.apply", "config.desired", "uplink.reconnect", "restart", "plugins.reload". Empty = nothing (every command refused and audited).',
        }),
        session_expiry_s: Type.Integer({
          minimum: 0,
          maximum: 4294967295,
          default: 86400,
          description:
            'MQTT 5 Session Expiry Interval: the cloud broker keeps the session (and queues commands) this long while the gateway is offline.',
        }),
        max_command_bytes: Type.Integer({
          minimum: 64,
          maximum: 262144,
          default: 16384,
          description: 'Larger command payloads are refused (desired config: up to 256 KiB).',
        }),
        command_max_age_s: Type.Integer({
          minimum: 0,
          default: 3600,
          description:
            'A command whose "ts" (or MQTT 5 message expiry) says it is older than this is refused as expired, never executed. 0 = no limit.',
        }),
        dedupe_max: Type.Integer({
          minimum: 100,
          maximum: 1000000,
          default: 10000,
          description: 'Command ids remembered (on disk) so a redelivered command is answered, not executed again.',
        }),
        state_interval_ms: Type.Integer({
          minimum: 100,
          default: 5000,
          description: 'How often the reported state is compared; it is published (retained) only when it changed.',
        }),
      },
      'Commands and desired config from the cloud, reported state to it (docs/uplink.md).',
    ),
    reconnect: section(
      {
        min_ms: Type.Integer({ minimum: 10, default: 1000, description: 'First retry delay.' }),
        probe_ms: Type.Integer({
          minimum: 0,
          default: 2000,
          description:
            'While offline, a TCP reachability probe (connect + close, no TLS, no MQTT) of the broker every this many ms (±25 %); when the port accepts, reconnect at once instead of waiting for the backoff. 0 = off.',
        }),
        max_ms: Type.Integer({ minimum: 100, default: 60000, description: 'Longest retry delay.' }),
        jitter: Type.Number({
          minimum: 0,
          maximum: 1,
          default: 0.5,
          description: 'Random fraction taken off each delay, so gateways do not reconnect in step.',
        }),
      },
      'Reconnect with exponential backoff and jitter.',
    ),
  },
  'Uplink to the cloud MQTT broker (mqtt.js, MQTT 5, QoS 1).',
);
export type UplinkConfig = Static<typeof UplinkConfigSchema>;
