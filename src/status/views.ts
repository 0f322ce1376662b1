import { PRIORITIES, type Priority } from '../queue/types.js';
import type { SampleRing } from './series.js';
import type { StatusSources } from './sources.js';

/** Devices listed per update (the table pages beyond this; a site with more uses /mgmt/devices). */
export const MAX_DEVICES_LISTED = 200;
/** Devices that get sparklines per update: each costs one indexed history query. */
export const MAX_SPARKLINES = 50;
const SPARK_POINTS = 60;

export type DeviceState = 'online' | 'quiet' | 'offline';

/** Offline when the source says so; quiet when online but silent for `quietAfterS`. */
export function deviceState(
  online: boolean,
  lastSeenWallMs: number,
  nowWallMs: number,
  quietAfterS: number,
): DeviceState {
  if (!online) return 'offline';
  return nowWallMs - lastSeenWallMs > quietAfterS * 1000 ? 'quiet' : 'online';
}

export interface OverviewDoc {
  now: number;
  /** How often the stream sends an update (the page calls itself disconnected after a few missed). */
  updateIntervalMs: number;
  version: string;
  uptimeS: number;
  rssBytes: number;
  heapUsedBytes: number;
  health: {
    ok: boolean;
    loopLagMs: number;
    loopP99Ms: number;
    services: { name: string; ok: boolean; state: string }[];
  };
  uplink: ReturnType<StatusSources['uplink']>;
  queues: {
    classes: {
      name: Priority;
      depth: number;
      readings: number;
      bytes: number;
      oldestAgeS: number;
      sendRateBps: number;
      dropped: number;
    }[];
    quota: { maxBytes: number; usedBytes: number };
    drainRateBps: number;
    droppedTotal: number;
  } | null;
  depth: { t: number[]; lanes: Record<Priority, number[]> } | null;
  devices: { total: number; online: number; quiet: number; offline: number };
  enabled: Record<'queues' | 'history' | 'deadletters' | 'alerts' | 'ota' | 'inspection' | 'plugins', boolean>;
}

export function overviewDoc(
  s: StatusSources,
  ring: SampleRing<Priority> | undefined,
  nowWall: number,
  quietAfterS: number,
  updateIntervalMs: number,
): OverviewDoc {
  const h = s.health();
  const mem = process.memoryUsage();
  const q = s.queues?.();
  const devs = s.devices();
  const counts = { total: devs.length, online: 0, quiet: 0, offline: 0 };
  for (const d of devs) counts[deviceState(d.online, d.lastSeen, nowWall, quietAfterS)]++;
  return {
    now: nowWall,
    updateIntervalMs,
    version: s.version,
    uptimeS: Math.round(s.uptimeMs() / 1000),
    rssBytes: mem.rss,
    heapUsedBytes: mem.heapUsed,
    health: {
      ok: h.ok,
      loopLagMs: h.loopLagMs,
      loopP99Ms: h.loopP99Ms,
      services: Object.entries(h.services).map(([name, v]) => ({ name, ok: v.ok, state: v.state })),
    },
    uplink: s.uplink(),
    queues: q
      ? {
          classes: PRIORITIES.map((p) => {
            const c = q.classes[p];
            const dropped = Object.values(c.dropped).reduce((a, b) => a + b, 0);
            return {
              name: p,
              depth: c.depth,
              readings: c.readings,
              bytes: c.bytes,
              oldestAgeS: Math.round(c.oldestAgeS),
              sendRateBps: Math.round(c.sendRateBps),
              dropped,
            };
          }),
          quota: { maxBytes: q.quota.maxBytes, usedBytes: q.quota.usedBytes },
          drainRateBps: Math.round(PRIORITIES.reduce((a, p) => a + q.classes[p].sendRateBps, 0)),
          droppedTotal: PRIORITIES.reduce(
            (a, p) => a + Object.values(q.classes[p].dropped).reduce((x, y) => x + y, 0),
            0,
          ),
        }
      : null,
    depth: ring && ring.length > 0 ? ring.downsample(120, nowWall - 3600_000) : null,
    devices: counts,
    enabled: {
      queues: !!s.queues,
      history: !!s.history,
      deadletters: !!s.deadletters,
      alerts: !!s.alerts,
      ota: !!s.ota,
      inspection: !!s.inspection,
      plugins: !!s.plugins,
    },
  };
}

export interface DeviceRow {
  id: string;
  transport: string;
  state: DeviceState;
  reason: string | null;
  lastSeen: number;
  messagesIn: number;
  refused: number;
  lastError: string | null;
  values: { name: string; value: number | boolean | string | null; unit: string | null; spark: number[] | null }[];
}

/** Numeric series per value name from history rows (non-numbers are gaps and left out). */
export function seriesOf(rows: readonly { ts: number; values: Record<string, unknown> }[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const r of rows)
    for (const [k, v] of Object.entries(r.values)) {
      if (typeof v !== 'number' || !Number.isFinite(v)) continue;
      let a = out.get(k);
      if (!a) out.set(k, (a = []));
      a.push(v);
    }
  return out;
}

export function devicesDoc(
  s: StatusSources,
  nowWall: number,
  quietAfterS: number,
): { devices: DeviceRow[]; more: number } {
  const all = s.devices().sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const list = all.slice(0, MAX_DEVICES_LISTED);
  const devices = list.map((d, i): DeviceRow => {
    const r = s.latest(d.id);
    const spark = s.history && i < MAX_SPARKLINES ? seriesOf(s.history(d.id, { limit: SPARK_POINTS })) : undefined;
    return {
      id: d.id,
      transport: d.transport,
      state: deviceState(d.online, d.lastSeen, nowWall, quietAfterS),
      reason: d.reason,
      lastSeen: d.lastSeen,
      messagesIn: d.messagesIn,
      refused: d.refused,
      lastError: d.lastError,
      values: r
        ? Object.entries(r.values).map(([name, value]) => ({
            name,
            value,
            unit: r.units?.[name] ?? null,
            spark: spark?.get(name) ?? null,
          }))
        : [],
    };
  });
  return { devices, more: all.length - list.length };
}

/** One device: its record, readings over time (for the plot) and recent dead letters. */
export function deviceDoc(s: StatusSources, id: string, nowWall: number, quietAfterS: number) {
  const d = s.devices().find((x) => x.id === id);
  if (!d) return undefined;
  const rows = s.history ? s.history(id, { limit: 500 }) : null;
  const series: Record<string, { t: number[]; v: number[] }> = {};
  for (const r of rows ?? [])
    for (const [k, v] of Object.entries(r.values)) {
      if (typeof v !== 'number' || !Number.isFinite(v)) continue;
      const e = (series[k] ??= { t: [], v: [] });
      e.t.push(r.ts);
      e.v.push(v);
    }
  const latest = s.latest(id);
  return {
    device: { ...d, state: deviceState(d.online, d.lastSeen, nowWall, quietAfterS) },
    latest: latest ? { ts: latest.ts, values: latest.values, units: latest.units ?? {} } : null,
    history: rows ? series : null,
    deadletters: s.deadletters ? s.deadletters(id, 20) : null,
  };
}
