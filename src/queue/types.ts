/**
 * Types of the path to the cloud, declared once and imported everywhere (STYLE: stable types at
 * the boundaries). Producers of non-reading messages (rules, vision, plugins, device status) build
 * an `OutboundMessage` and hand it to `Outbox.enqueue`.
 */

/** Uplink priority classes, highest first. */
export type Priority = 'CRITICAL' | 'HIGH' | 'MEDIUM' | 'LOW';

/** In priority order; the index is the class number stored in the outbox (0 = CRITICAL). */
export const PRIORITIES: readonly Priority[] = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW'];

export function priorityIndex(p: Priority): number {
  return PRIORITIES.indexOf(p);
}

/** A message bound for the cloud that is not a batch of readings (alert, status, inspection result...). */
export interface OutboundMessage {
  /** Local topic, e.g. `alerts/press-07`; uplinked as `{uplink.topic_prefix}/{topic}`. */
  topic: string;
  payload: Uint8Array;
  /** Explicit class; when absent the classification rules decide (topic, source, labels). */
  priority?: Priority;
  /** Time to live in seconds; when absent the class TTL (or the matching rule's) applies. 0 = never expires. */
  ttlS?: number;
  /** Producer kind, matched by rules' `source` (e.g. `alert`, `vision`, `plugin`, `system`). */
  source?: string;
  /** Free labels matched by rules' `label` (e.g. `defective` on an inspection result). */
  labels?: readonly string[];
  /** MQTT 5 content type sent with the message (default `application/json`). */
  contentType?: string;
}

/** Why a message left the outbox without being delivered. */
export type DropReason = 'ttl' | 'age' | 'quota' | 'disk_full' | 'invalid';
/** ttl/age: expired; quota: evicted; disk_full: refused at commit (the source was not acknowledged); invalid: unreadable row. */
export const DROP_REASONS: readonly DropReason[] = ['ttl', 'age', 'quota', 'disk_full', 'invalid'];

/** Per-class view served at /mgmt/queues and exported as edge_gateway_queue_* metrics. */
export interface ClassStats {
  /** Rows waiting in the outbox (one row = one accepted message or one group of readings). */
  depth: number;
  /** Readings waiting (a non-reading message counts as one). */
  readings: number;
  /** Stored bytes (payload + topic + per-row overhead estimate), what the quota counts. */
  bytes: number;
  /** Age of the oldest waiting row in seconds (monotonic gateway clock), 0 when empty. */
  oldestAgeS: number;
  /** Messages / readings / bytes delivered (acknowledged by the cloud) since start. */
  sentMessages: number;
  sentReadings: number;
  sentBytes: number;
  /** Delivered bytes per second, exponentially averaged over ~10 s. */
  sendRateBps: number;
  /** Rows dropped since start, by reason (disk_full counts refused, never-acknowledged rows). */
  dropped: Record<DropReason, number>;
}

export interface QueuesSnapshot {
  classes: Record<Priority, ClassStats>;
  /** Uplink state: online/offline/disabled, in-flight count and the current rate cap. */
  uplink: { state: string; inflight: number; rateBytesPerS: number | null; lastAckLatencyMs: number | null };
  quota: { maxBytes: number; maxAgeS: number; usedBytes: number };
}
