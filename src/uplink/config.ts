import { Type, type Static } from '@sinclair/typebox';
import { section, Secret } from '../config/sections.js';
import { profileConfigProps } from './profiles/config.js';

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
