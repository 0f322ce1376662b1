import { Counter, Gauge, type Registry } from 'prom-client';
import type { OutboxPort } from './port.js';
import { DROP_REASONS, PRIORITIES, type ClassStats, type QueuesSnapshot } from './types.js';

/** What the uplink tells the queue views (absent when the uplink is disabled). */
export interface UplinkView {
  readonly isOnline: boolean;
  readonly inflightCount: number;
  readonly rateBytesPerS: number | null;
  readonly lastAckLatencyMs: number | null;
}

/** The /mgmt/queues document (docs/queues.md §Visibility). */
export function queuesSnapshot(
  outbox: Pick<OutboxPort, 'classStats'>,
  uplink: UplinkView | undefined,
  quota: { maxBytes: number; maxAgeS: number },
): QueuesSnapshot {
  const classes = outbox.classStats();
  return {
    classes,
    uplink: uplink
      ? {
          state: uplink.isOnline ? 'online' : 'offline',
          inflight: uplink.inflightCount,
          rateBytesPerS: uplink.rateBytesPerS,
          lastAckLatencyMs: uplink.lastAckLatencyMs === null ? null : Math.round(uplink.lastAckLatencyMs * 10) / 10,
        }
      : { state: 'disabled', inflight: 0, rateBytesPerS: null, lastAckLatencyMs: null },
    quota: { ...quota, usedBytes: PRIORITIES.reduce((a, p) => a + classes[p].bytes, 0) },
  };
}

/**
 * edge_gateway_queue_*{class=...}: gauges read at scrape time from one snapshot, counters mirror
 * the outbox's running totals (they only grow, as Prometheus counters must).
 */
export function registerQueueMetrics(registry: Registry, snapshot: () => QueuesSnapshot): void {
  let cached: { at: number; snap: QueuesSnapshot } | undefined;
  const snap = () => {
    const now = performance.now();
    if (!cached || now - cached.at > 100) cached = { at: now, snap: snapshot() };
    return cached.snap;
  };
  const gauge = (name: string, help: string, pick: (c: ClassStats) => number) =>
    new Gauge({
      name: `edge_gateway_queue_${name}`,
      help,
      labelNames: ['class'],
      registers: [registry],
      collect() {
        const s = snap();
        for (const p of PRIORITIES) this.set({ class: p }, pick(s.classes[p]));
      },
    });
  const counter = (name: string, help: string, pick: (c: ClassStats) => number) =>
    new Counter({
      name: `edge_gateway_queue_${name}`,
      help,
      labelNames: ['class'],
      registers: [registry],
      collect() {
        const s = snap();
        this.reset();
        for (const p of PRIORITIES) this.inc({ class: p }, pick(s.classes[p]));
      },
    });
  gauge('depth', 'Outbox rows waiting per class.', (c) => c.depth);
  gauge('readings', 'Readings waiting per class.', (c) => c.readings);
  gauge('bytes', 'Stored outbox bytes per class (what the quota counts).', (c) => c.bytes);
  gauge('oldest_age_seconds', 'Age of the oldest waiting row per class.', (c) => c.oldestAgeS);
  gauge('send_rate_bytes', 'Delivered bytes per second per class (10 s average).', (c) => c.sendRateBps);
  counter('sent_messages_total', 'Messages acknowledged by the cloud broker per class.', (c) => c.sentMessages);
  counter('sent_readings_total', 'Readings acknowledged by the cloud broker per class.', (c) => c.sentReadings);
  counter(
    'sent_bytes_total',
    'Uplink bytes (with protocol overhead estimate) acknowledged per class.',
    (c) => c.sentBytes,
  );
  new Counter({
    name: 'edge_gateway_queue_dropped_total',
    help: 'Readings dropped per class and reason (ttl, age, quota, disk_full = refused unacknowledged, invalid).',
    labelNames: ['class', 'reason'],
    registers: [registry],
    collect() {
      const s = snap();
      this.reset();
      for (const p of PRIORITIES)
        for (const r of DROP_REASONS) this.inc({ class: p, reason: r }, s.classes[p].dropped[r]);
    },
  });
  new Gauge({
    name: 'edge_gateway_uplink_online',
    help: '1 when the uplink is connected to the cloud broker.',
    registers: [registry],
    collect() {
      this.set(snap().uplink.state === 'online' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'edge_gateway_uplink_inflight',
    help: 'QoS 1 messages sent and not yet acknowledged.',
    registers: [registry],
    collect() {
      this.set(snap().uplink.inflight);
    },
  });
  new Gauge({
    name: 'edge_gateway_uplink_rate_limit_bytes',
    help: 'Current uplink cap in bytes/s (adaptive); absent cap = 0.',
    registers: [registry],
    collect() {
      this.set(snap().uplink.rateBytesPerS ?? 0);
    },
  });
}
