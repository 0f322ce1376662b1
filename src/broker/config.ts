import { Type, type Static } from '@sinclair/typebox';
import { section, Port, Host } from '../config/sections.js';

const AclRule = Type.Object(
  {
    topic: Type.String({ minLength: 1, description: 'MQTT topic filter; {username} and {clientid} are substituted.' }),
    access: Type.Union([Type.Literal('read'), Type.Literal('write'), Type.Literal('readwrite'), Type.Literal('deny')], {
      description: 'read = subscribe, write = publish.',
    }),
  },
  { additionalProperties: false },
);

const User = Type.Object(
  {
    username: Type.String({ minLength: 1, maxLength: 128 }),
    password_hash: Type.String({
      pattern: '^scrypt\\$',
      description: 'scrypt$N$r$p$salt$hash as printed by `edge-gateway hash-password`.',
    }),
    acl: Type.Optional(Type.Array(AclRule, { description: 'Replaces the default device ACL for this user.' })),
  },
  { additionalProperties: false },
);

export const BrokerConfigSchema = section(
  {
    enabled: Type.Boolean({ default: true }),
    host: Host('127.0.0.1', 'Address the plain MQTT listener binds to. 0.0.0.0 / :: expose it to the site network.'),
    port: Port(1883, 'Plain MQTT port.'),
    tls: section(
      {
        enabled: Type.Boolean({ default: false }),
        host: Host('0.0.0.0', 'Address the TLS listener binds to.'),
        port: Port(8883, 'MQTT over TLS port.'),
        cert_file: Type.Optional(Type.String()),
        key_file: Type.Optional(Type.String()),
        ca_file: Type.Optional(Type.String({ description: 'CA that signs client certificates.' })),
        require_client_cert: Type.Boolean({ default: false }),
      },
      'Optional TLS listener.',
    ),
    allow_anonymous_loopback: Type.Boolean({
      default: true,
      description: 'Anonymous clients connecting from 127.0.0.1/::1 are trusted local clients with full access.',
    }),
    users: Type.Array(User, { default: [] }),
    default_acl: Type.Array(AclRule, {
      default: [
        { topic: 'sensors/{clientid}/#', access: 'write' },
        { topic: 'devices/{clientid}/#', access: 'write' },
        { topic: 'commands/{clientid}', access: 'read' },
      ],
    }),
    max_connections: Type.Integer({ minimum: 1, default: 1000 }),
    max_packet_bytes: Type.Integer({ minimum: 64, maximum: 268435455, default: 262144 }),
    keepalive_max_s: Type.Integer({ minimum: 0, default: 600 }),
    connect_rate_per_ip: Type.Integer({ minimum: 0, default: 20, description: 'Connects per second per address; 0 = off.' }),
    persistence: Type.Boolean({ default: true, description: 'Keep retained, subscriptions and sessions in SQLite.' }),
  },
  'Local MQTT broker (aedes).',
);

export type BrokerConfig = Static<typeof BrokerConfigSchema>;
