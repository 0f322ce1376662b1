import { Type, type Static } from '@sinclair/typebox';
import { section } from '../config/sections.js';

const PriorityName = Type.Union(
  [Type.Literal('CRITICAL'), Type.Literal('HIGH'), Type.Literal('MEDIUM'), Type.Literal('LOW')],
  { description: 'CRITICAL | HIGH | MEDIUM | LOW' },
);

const ClassSettings = (share: number, ttl: number, window: number, what: string) =>
  section(
    {
      share: Type.Integer({
        minimum: 1,
        maximum: 100,
        default: share,
        description: 'Share of uplink bytes under contention (shares are relative; they need not sum to 100).',
      }),
      ttl_s: Type.Integer({
        minimum: 0,
        default: ttl,
        description:
          'Time to live in seconds on the monotonic gateway clock; expired messages are dropped and counted. 0 = never.',
      }),
      batch_window_ms: Type.Integer({
        minimum: 0,
        maximum: 60000,
        default: window,
        description:
          'Readings of one device wait up to this long so more join the same codec batch (fewer, larger messages).',
      }),
    },
    what,
  );

const Rule = Type.Object(
  {
    topic: Type.Optional(
      Type.String({ minLength: 1, description: 'MQTT topic filter on the local topic (+ and # wildcards).' }),
    ),
    source: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        minItems: 1,
        description: 'Producer kinds: mqtt, coap, serial, coap-poll, vision, plugin, simulated, system, alert...',
      }),
    ),
    label: Type.Optional(Type.String({ minLength: 1, description: 'A label the producer attached (e.g. defective).' })),
    class: PriorityName,
    ttl_s: Type.Optional(Type.Integer({ minimum: 0, description: 'Overrides the class TTL for matching messages.' })),
  },
  { additionalProperties: false },
);

export const QueueConfigSchema = section(
  {
    enabled: Type.Boolean({
      default: true,
      description: 'Store-and-forward outbox on: accepted readings are committed before the source is acknowledged.',
    }),
    classes: section(
      {
        CRITICAL: ClassSettings(
          30,
          0,
          0,
          'Alerts, defective inspections: sent ahead of everything while within its share.',
        ),
        HIGH: ClassSettings(40, 86400, 50, 'Device status, inspection results.'),
        MEDIUM: ClassSettings(20, 86400, 200, 'Ordinary readings.'),
        LOW: ClassSettings(10, 86400, 1000, 'Bulk history.'),
      },
      'Per-class share, TTL and batching window.',
    ),
    default_class: Type.Union(
      [Type.Literal('CRITICAL'), Type.Literal('HIGH'), Type.Literal('MEDIUM'), Type.Literal('LOW')],
      { default: 'MEDIUM', description: 'Class of messages no rule matches.' },
    ),
    rules: Type.Array(Rule, {
      default: [
        { topic: 'alerts/#', class: 'CRITICAL' },
        { topic: 'inspection/+/result', label: 'defective', class: 'CRITICAL' },
        { topic: 'inspection/#', class: 'HIGH' },
        { topic: 'devices/+/status', class: 'HIGH' },
        { topic: 'history/#', class: 'LOW' },
      ],
      description:
        'First match wins; every given field of a rule must match. An explicit priority from the producer wins over rules.',
    }),
    bandwidth: section(
      {
        limit_kbps: Type.Number({
          minimum: 0,
          default: 0,
          description: 'Uplink cap in kbit/s counting protocol overhead (token bucket); 0 = off.',
        }),
        burst_bytes: Type.Integer({ minimum: 256, default: 4096, description: 'Token bucket depth.' }),
        link_overhead_bytes: Type.Integer({
          minimum: 0,
          default: 60,
          description: 'Per-message bytes below MQTT (TCP/IP headers, TLS record, the PUBACK) added to the estimate.',
        }),
        max_airtime_ms: Type.Integer({
          minimum: 10,
          default: 100,
          description:
            'Under a cap, a batch is cut so it occupies the link at most this long (bounds how long CRITICAL waits behind it).',
        }),
        critical_burst_bytes: Type.Integer({
          minimum: 0,
          default: 16384,
          description: 'Bytes CRITICAL may send ahead of its share at once before it is policed back to its share.',
        }),
        adaptive: section(
          {
            enabled: Type.Boolean({
              default: false,
              description: 'Lower the rate when acknowledgements slow down, raise it back after.',
            }),
            min_kbps: Type.Number({ minimum: 1, default: 8, description: 'The adaptive rate never goes below this.' }),
            ack_latency_ms: Type.Integer({
              minimum: 10,
              default: 2000,
              description: 'Acknowledgements slower than this (smoothed) mean congestion: rate × 0.7.',
            }),
          },
          'AIMD rate adaptation within [min_kbps, limit_kbps]; needs limit_kbps > 0.',
        ),
      },
      'Token-bucket cap of uplink bytes per second.',
    ),
    outbox: section(
      {
        commit_wait_ms: Type.Integer({
          minimum: 0,
          maximum: 1000,
          default: 40,
          description:
            'Group commit: the longest an accepted message waits for its journal record. Larger = fewer, larger records (fewer bytes written per reading), later acks (40: ~20 B written per reading at 1,000 readings/s, 10: ~37 B; docs/queues.md).',
        }),
        commit_max_rows: Type.Integer({
          minimum: 1,
          default: 64,
          description:
            'A transaction is committed at once when this many accepted messages (source calls) wait: many waiting callers, such as publishers with full QoS 1 windows, are not held for commit_wait_ms.',
        }),
        max_bytes: Type.Integer({
          minimum: 65536,
          default: 268435456,
          description: 'Quota of stored bytes; above it LOW is evicted first, then MEDIUM, HIGH, CRITICAL last.',
        }),
        max_age_s: Type.Integer({
          minimum: 1,
          default: 86400,
          description: 'Rows older than this are dropped (counted as age).',
        }),
        max_batch_readings: Type.Integer({
          minimum: 1,
          maximum: 10000,
          default: 1000,
          description: 'Readings per uplinked codec batch.',
        }),
        max_batch_bytes: Type.Integer({
          minimum: 256,
          default: 65536,
          description: 'Payload bytes per uplinked message.',
        }),
      },
      'SQLite outbox (table outbox in gateway.db).',
    ),
  },
  'Priority classes, bandwidth and the store-and-forward outbox.',
);
export type QueueConfig = Static<typeof QueueConfigSchema>;
export type QueueRule = Static<typeof Rule>;
