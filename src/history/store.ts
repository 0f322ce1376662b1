import type { Reading } from '../pipeline/reading.js';
import { migrate, type Db } from '../store/db.js';
import type { HistoryConfig } from './config.js';

const MIGRATIONS = [
  `CREATE TABLE history (
     id INTEGER PRIMARY KEY,
     device TEXT NOT NULL,
     ts INTEGER NOT NULL,
     reading TEXT NOT NULL
   );
   CREATE INDEX history_device ON history (device, id);`,
  // The age sweep (every minute) deletes by ts: without this index it scanned the whole table.
  `CREATE INDEX history_ts ON history (ts);`,
];

export interface HistoryRow {
  ts: number;
  values: Reading['values'];
  quality: Reading['quality'];
  source: Reading['source'];
  units?: Reading['units'];
}

export interface HistoryQuery {
  /** Wall-clock ms: rows with ts ≥ since. */
  since?: number;
  /** Newest N rows (≤ 1000), oldest first in the answer. */
  limit?: number;
}

export interface HistoryStats {
  devices: number;
  kept: number;
  /** Readings not kept because the device's last kept reading is younger than min_interval_s. */
  thinned: number;
  /** Readings of devices beyond max_devices. */
  overflow: number;
  evicted: number;
  /** Bytes of rows handed to SQLite (row payloads, not pages). */
  bytesWritten: number;
  flushes: number;
}

export const MAX_HISTORY_LIMIT = 1000;

/**
 * A bounded ring of recent readings per device. Writes are thinned and batched: a reading is kept
 * when `min_interval_s` has passed since the device's last kept one, and kept rows are written every
 * `flush_interval_ms` in one transaction, so a 1,000 readings/s site costs a handful of rows per
 * flush rather than a row per reading (SD-card wear). `now` is monotonic ms; `ts` is data.
 */
export class HistoryStore {
  private pending: Reading[] = [];
  /** Devices with a reading in `pending` but no row yet (for the max_devices bound). */
  private readonly pendingNew = new Set<string>();
  /** Per device, the monotonic time of the last kept reading. */
  private readonly intervalStart = new Map<string, number>();
  private readonly rowCount = new Map<string, number>();
  private readonly insert;
  private readonly trim;
  private readonly expire;
  private readonly select;
  readonly stats: HistoryStats = {
    devices: 0,
    kept: 0,
    thinned: 0,
    overflow: 0,
    evicted: 0,
    bytesWritten: 0,
    flushes: 0,
  };

  constructor(
    private readonly db: Db,
    private readonly config: HistoryConfig,
  ) {
    migrate(db, 'history', MIGRATIONS);
    this.insert = db.prepare('INSERT INTO history (device, ts, reading) VALUES (?, ?, ?)');
    this.trim = db.prepare(
      'DELETE FROM history WHERE device = ? AND id <= (SELECT id FROM history WHERE device = ? ORDER BY id DESC LIMIT 1 OFFSET ?)',
    );
    this.expire = db.prepare('DELETE FROM history WHERE ts < ?');
    this.select = db.prepare('SELECT ts, reading FROM history WHERE device = ? AND ts >= ? ORDER BY id DESC LIMIT ?');
    for (const r of db.prepare('SELECT device, COUNT(*) AS n FROM history GROUP BY device').all() as {
      device: string;
      n: number;
    }[])
      this.rowCount.set(r.device, r.n);
    this.stats.devices = this.rowCount.size;
  }

  /** Offers accepted readings; keeps those due by min_interval_s until the next flush. */
  offer(readings: readonly Reading[], now: number): void {
    const intervalMs = this.config.min_interval_s * 1000;
    for (const r of readings) {
      const known = this.rowCount.has(r.deviceId) || this.pendingNew.has(r.deviceId);
      if (!known && this.rowCount.size + this.pendingNew.size >= this.config.max_devices) {
        this.stats.overflow++;
        continue;
      }
      const last = this.intervalStart.get(r.deviceId);
      if (last !== undefined && now - last < intervalMs) {
        this.stats.thinned++;
        continue;
      }
      this.intervalStart.set(r.deviceId, now);
      if (!known) this.pendingNew.add(r.deviceId);
      this.pending.push(r);
    }
  }

  /** Writes what waits, trims each written device to its bound; one transaction. */
  flush(): number {
    if (this.pending.length === 0) return 0;
    const batch = this.pending;
    this.pending = [];
    this.pendingNew.clear();
    this.db.transaction(() => {
      for (const r of batch) {
        const row: HistoryRow = { ts: r.ts, values: r.values, quality: r.quality, source: r.source };
        if (r.units) row.units = r.units;
        const json = JSON.stringify(row);
        this.insert.run(r.deviceId, r.ts, json);
        this.stats.bytesWritten += json.length + r.deviceId.length + 16;
        const n = (this.rowCount.get(r.deviceId) ?? 0) + 1;
        if (n > this.config.max_rows_per_device) {
          const removed = this.trim.run(r.deviceId, r.deviceId, this.config.max_rows_per_device).changes;
          this.stats.evicted += removed;
          this.rowCount.set(r.deviceId, n - removed);
        } else {
          this.rowCount.set(r.deviceId, n);
        }
      }
    })();
    this.stats.kept += batch.length;
    this.stats.flushes++;
    this.stats.devices = this.rowCount.size;
    return batch.length;
  }

  /** Drops rows older than max_age_s by their timestamp (wall clock `wallNow`). */
  sweep(wallNow: number): number {
    const removed = this.expire.run(wallNow - this.config.max_age_s * 1000).changes;
    if (removed > 0) {
      this.stats.evicted += removed;
      this.rowCount.clear();
      for (const r of this.db.prepare('SELECT device, COUNT(*) AS n FROM history GROUP BY device').all() as {
        device: string;
        n: number;
      }[])
        this.rowCount.set(r.device, r.n);
      this.stats.devices = this.rowCount.size;
    }
    return removed;
  }

  /** Rows of a device, oldest first; includes the reading still waiting for the flush. */
  query(deviceId: string, q: HistoryQuery = {}): HistoryRow[] {
    const limit = Math.min(Math.max(1, Math.floor(q.limit ?? 100)), MAX_HISTORY_LIMIT);
    const since = q.since ?? -Infinity;
    const rows = (
      this.select.all(deviceId, Number.isFinite(since) ? since : -9e15, limit) as {
        ts: number;
        reading: string;
      }[]
    )
      .map((r) => JSON.parse(r.reading) as HistoryRow)
      .reverse();
    for (const w of this.pending)
      if (w.deviceId === deviceId && w.ts >= since)
        rows.push({ ts: w.ts, values: w.values, quality: w.quality, source: w.source });
    return rows.length > limit ? rows.slice(rows.length - limit) : rows;
  }
}
