import { Type, type Static } from '@sinclair/typebox';
import { section, Port, Host } from '../config/sections.js';

const AclRule = Type.Object(
  {
    topic: Type.String({
      minLength: 1,
      maxLength: 1024,
      description: 'MQTT topic filter (+ and # allowed); {username} and {clientid} are substituted per client.',
    }),
    access: Type.Union([Type.Literal('read'), Type.Literal('write'), Type.Literal('readwrite'), Type.Literal('deny')], {
      description: 'read = subscribe/receive, write = publish, deny = neither (deny wins over any allow).',
    }),
  },
  { additionalProperties: false },
);

/** scrypt$N$r$p$salt$hash, both base64 (see src/broker/password.ts). */
export const PASSWORD_HASH_PATTERN = '^scrypt\\$[0-9]+\\$[0-9]+\\$[0-9]+\\$[A-Za-z0-9+/=]+\\$[A-Za-z0-9+/=]+$';

const User = Type.Object(
  {
    username: Type.String({ minLength: 1, maxLength: 128, description: 'MQTT username (or client-certificate CN).' }),
    password_hash: Type.Optional(
      Type.String({
        // A leaked hash can be brute-forced offline: redacted from GET /mgmt/config like any secret.
        'x-secret': true,
        pattern: PASSWORD_HASH_PATTERN,
        description:
          'scrypt$N$r$p$salt$hash as printed by `edge-gateway hash-password`. Leave out for certificate-only users.',
      }),
    ),
    acl: Type.Optional(
      Type.Array(AclRule, { maxItems: 256, description: 'Replaces broker.default_acl for this user.' }),
    ),
  },
  { additionalProperties: false },
);

export const BrokerConfigSchema = section(
  {
    enabled: Type.Boolean({ default: true, description: 'Run the local MQTT broker.' }),
    host: Host('127.0.0.1', 'Address the plain MQTT listener binds to. 0.0.0.0 / :: expose it to the site network.'),
    port: Port(1883, 'Plain MQTT port.'),
    tls: section(
      {
        enabled: Type.Boolean({ default: false, description: 'Also listen for MQTT over TLS.' }),
        host: Host('0.0.0.0', 'Address the TLS listener binds to.'),
        port: Port(8883, 'MQTT over TLS port.'),
        cert_file: Type.Optional(Type.String({ minLength: 1, description: 'PEM server certificate (chain).' })),
        key_file: Type.Optional(
          Type.String({ minLength: 1, description: 'PEM private key of the server certificate.' }),
        ),
        ca_file: Type.Optional(
          Type.String({
            minLength: 1,
            description: 'PEM CA that signs client certificates; enables client-certificate auth.',
          }),
        ),
        require_client_cert: Type.Boolean({
          default: false,
          description: 'Refuse TLS clients without a certificate signed by ca_file.',
        }),
      },
      'Optional TLS listener; a verified client certificate authenticates its CN as the username.',
    ),
    allow_anonymous_loopback: Type.Boolean({
      default: true,
      description:
        'Anonymous clients connecting from 127.0.0.1/::1 are trusted local clients with full access; everyone else needs credentials.',
    }),
    loopback_acl: Type.Optional(
      Type.Array(AclRule, {
        maxItems: 256,
        description: 'ACL of the trusted anonymous loopback clients (same rules as default_acl). Absent = full access.',
      }),
    ),
    users: Type.Array(User, {
      default: [],
      maxItems: 10000,
      description: 'Users allowed to connect with credentials.',
    }),
    default_acl: Type.Array(AclRule, {
      maxItems: 256,
      default: [
        { topic: 'sensors/{clientid}/#', access: 'write' },
        { topic: 'devices/{clientid}/#', access: 'write' },
        { topic: 'commands/{clientid}', access: 'read' },
      ],
      description: 'ACL of authenticated clients whose user has no acl of its own.',
    }),
    max_connections: Type.Integer({ minimum: 1, default: 1000, description: 'Open MQTT connections (all listeners).' }),
    max_packet_bytes: Type.Integer({
      minimum: 64,
      maximum: 268435455,
      default: 262144,
      description: 'Largest MQTT packet accepted; a larger one closes the connection before it is buffered.',
    }),
    keepalive_max_s: Type.Integer({
      minimum: 0,
      maximum: 65535,
      default: 600,
      description: 'Refuse clients asking for a keepalive longer than this (CONNACK 2); 0 = no limit.',
    }),
    allow_keepalive_zero: Type.Boolean({
      default: true,
      description:
        'Accept keepalive 0 (no MQTT keepalive, legal in MQTT 3.1.1 §3.1.2.10); such connections get TCP keepalive instead. false = refuse with CONNACK 2.',
    }),
    receive_maximum: Type.Integer({
      minimum: 1,
      maximum: 65535,
      default: 1000,
      description:
        'Inbound QoS 2 messages awaiting PUBREL per client; announced to MQTT 5 clients as Receive Maximum (over it: DISCONNECT 0x93; MQTT 3.1.1 clients are closed).',
    }),
    topic_alias_maximum: Type.Integer({
      minimum: 0,
      maximum: 65535,
      default: 10,
      description: 'Topic aliases an MQTT 5 client may set up towards the broker (announced in CONNACK); 0 = none.',
    }),
    session_expiry_max_s: Type.Integer({
      minimum: 0,
      maximum: 4294967295,
      default: 604800,
      description:
        'Longest MQTT 5 Session Expiry Interval granted (a longer or "never" request is cut to it and CONNACK says so); 0 = no bound.',
    }),
    message_expiry_max_s: Type.Integer({
      minimum: 0,
      maximum: 4294967295,
      default: 604800,
      description: 'Longest MQTT 5 Message Expiry Interval kept (a longer one is cut to it); 0 = no bound.',
    }),
    pending_sessions_max: Type.Integer({
      minimum: 0,
      default: 10000,
      description:
        'Disconnected MQTT 5 sessions (and delayed wills) waiting to expire; a session ending beyond it is expired at once; 0 = no bound.',
    }),
    connect_rate_per_ip: Type.Integer({
      minimum: 0,
      default: 20,
      description: 'New connections per second per address (loopback exempt); 0 = off.',
    }),
    persistence: Type.Boolean({
      default: true,
      description: 'Keep retained messages, subscriptions and queued session messages in SQLite (survive restarts).',
    }),
  },
  'Local MQTT broker (aedes).',
);

export type BrokerConfig = Static<typeof BrokerConfigSchema>;
export type AclRuleConfig = Static<typeof AclRule>;
export type UserConfig = Static<typeof User>;
