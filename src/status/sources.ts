import type { AlertsView } from '../analytics/service.js';
import type { GatewayHealth } from '../context.js';
import type { DeadLetterSummary } from '../deadletters/store.js';
import type { DeviceRecord } from '../devices/registry.js';
import type { HistoryRow } from '../history/store.js';
import type { OtaView } from '../ota/client.js';
import type { Reading } from '../pipeline/reading.js';
import type { QueuesSnapshot } from '../queue/types.js';

/** Uplink as the page shows it: state, where to, and why it is down. */
export interface UplinkStatus {
  state: 'online' | 'offline' | 'disabled' | string;
  url: string | null;
  inflight: number;
  lastError: string | null;
}

/** Capabilities that land later describe themselves as plain JSON-able documents. */
export type JsonDoc = { [key: string]: unknown };

/**
 * Everything the status page reads, and nothing else: one typed facade the composition root fills
 * from the capabilities it built. Each function is called at most once per update interval (and
 * only while a page is open). Optional parts that are absent render as "not enabled".
 */
export interface StatusSources {
  health(): GatewayHealth;
  version: string;
  /** Monotonic ms since the process started serving. */
  uptimeMs(): number;
  /** The /mgmt/queues document; absent when the queue is disabled. */
  queues?: () => QueuesSnapshot;
  uplink(): UplinkStatus;
  devices(): DeviceRecord[];
  latest(deviceId: string): Reading | undefined;
  /** Recent readings of one device, oldest first (HistoryStore.query); absent without history. */
  history?: (deviceId: string, q: { since?: number; limit?: number }) => HistoryRow[];
  /** Recent dead letters of one device, newest first; absent when dead letters are disabled. */
  deadletters?: (deviceId: string, limit: number) => DeadLetterSummary[];
  alerts?: () => AlertsView;
  ota?: () => OtaView;
  /** The /mgmt/inspection document (last results, per-stage latency, kept defect images). */
  inspection?: () => JsonDoc;
  /** Kept defect image bytes by the id the inspection document names (JPEG/PNG/WebP). */
  inspectionImage?: (id: string) => { type: string; body: Buffer } | undefined;
  /** The /mgmt/plugins document. */
  plugins?: () => JsonDoc;
}

/** The pieces a composition root holds; each optional one is simply left out when not built. */
export interface StatusPieces {
  health: () => GatewayHealth;
  version: string;
  uptimeMs: () => number;
  devices: { list(): DeviceRecord[] };
  latest: { get(deviceId: string): Reading | undefined };
  queue?:
    | {
        snapshot: () => QueuesSnapshot;
        uplinkState: () => { state: string; url: string | null; inflight: number };
        uplink?: { health(): { detail?: Record<string, unknown> } } | undefined;
      }
    | undefined;
  history?: { query(deviceId: string, q: { since?: number; limit?: number }): HistoryRow[] } | undefined;
  deadletters?: { list(q: { limit?: number; deviceId?: string; beforeId?: number }): DeadLetterSummary[] } | undefined;
  alerts?: { view(): AlertsView } | undefined;
  ota?: { view(): OtaView } | undefined;
  inspection?: StatusSources['inspection'];
  inspectionImage?: StatusSources['inspectionImage'];
  plugins?: StatusSources['plugins'];
}

/** Builds the page's sources from the gateway's pieces (the composition root calls this once). */
export function statusSourcesFrom(p: StatusPieces): StatusSources {
  const s: StatusSources = {
    health: p.health,
    version: p.version,
    uptimeMs: p.uptimeMs,
    uplink: () => {
      if (!p.queue) return { state: 'disabled', url: null, inflight: 0, lastError: null };
      const u = p.queue.uplinkState();
      const err = p.queue.uplink?.health().detail?.['lastError'];
      return { ...u, lastError: typeof err === 'string' ? err : null };
    },
    devices: () => p.devices.list(),
    latest: (id) => p.latest.get(id),
  };
  const { queue, history, deadletters, alerts, ota } = p;
  if (queue) s.queues = queue.snapshot;
  if (history) s.history = (id, q) => history.query(id, q);
  if (deadletters) s.deadletters = (id, limit) => deadletters.list({ deviceId: id, limit });
  if (alerts) s.alerts = () => alerts.view();
  if (ota) s.ota = () => ota.view();
  if (p.inspection) s.inspection = p.inspection;
  if (p.inspectionImage) s.inspectionImage = p.inspectionImage;
  if (p.plugins) s.plugins = p.plugins;
  return s;
}
