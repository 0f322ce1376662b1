import type { Db } from '../store/db.js';
import { migrate } from '../store/db.js';
import type { AlertRecord, EngineState, RuleEngine } from './engine.js';

/**
 * Rule state in SQLite so a power cut does not restart a 10-minute duration from zero. Only the
 * tracks that changed since the last save are written, in one transaction per save (a save every
 * `persist_interval_s`, not per reading: SD cards wear by the write). Times are stored relative
 * to the save's engine clock; `last_save` in the meta table is that clock, so a restore rebases
 * every row onto the new process's clock (the downtime itself is not counted).
 */
const MIGRATIONS = [
  `CREATE TABLE analytics_tracks (
     rule TEXT NOT NULL,
     device TEXT NOT NULL,
     saved_at REAL NOT NULL,
     state TEXT NOT NULL,
     PRIMARY KEY (rule, device)
   ) WITHOUT ROWID;
   CREATE TABLE analytics_meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;`,
];

type TrackState = EngineState['tracks'][number];

export interface SaveStats {
  tracks: number;
  bytes: number;
}

export class AnalyticsStore {
  private readonly upsert;
  private readonly setMeta;
  private readonly deleteRule;
  /** Bytes of state handed to SQLite since start (the figure the wear benchmark reports). */
  bytesWritten = 0;
  saves = 0;

  constructor(private readonly db: Db) {
    migrate(db, 'analytics', MIGRATIONS);
    this.upsert = db.prepare(
      'INSERT INTO analytics_tracks (rule, device, saved_at, state) VALUES (?, ?, ?, ?) ' +
        'ON CONFLICT (rule, device) DO UPDATE SET saved_at = excluded.saved_at, state = excluded.state',
    );
    this.setMeta = db.prepare(
      'INSERT INTO analytics_meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v',
    );
    this.deleteRule = db.prepare('DELETE FROM analytics_tracks WHERE rule = ?');
  }

  /** Writes the engine's changed tracks; returns what it wrote. */
  save(engine: RuleEngine, now: number): SaveStats {
    return this.write(engine, engine.takeDirty(now), now);
  }

  /** Writes the tracks of these alerts only (an alert transition is saved at once). */
  saveTracksOf(engine: RuleEngine, alerts: readonly AlertRecord[], now: number): SaveStats {
    return this.write(engine, engine.takeTracksOf(alerts, now), now);
  }

  private write(engine: RuleEngine, state: EngineState, now: number): SaveStats {
    const history = JSON.stringify(engine.recent().slice(-100));
    let bytes = 0;
    try {
      this.db.transaction(() => {
        for (const t of state.tracks) {
          const { key, deviceId, ...rest } = t;
          const json = JSON.stringify(rest);
          bytes += json.length + key.length + deviceId.length;
          this.upsert.run(key, deviceId, now, json);
        }
        this.setMeta.run('last_save', String(now));
        this.setMeta.run('seq', String(state.seq));
        if (state.tracks.length > 0) {
          this.setMeta.run('history', history);
          bytes += history.length;
        }
      })();
    } catch (err) {
      // Nothing was written (one transaction): those tracks are still to be saved next time.
      engine.markUnsaved(state);
      throw err;
    }
    this.bytesWritten += bytes;
    this.saves++;
    return { tracks: state.tracks.length, bytes };
  }

  /** The persisted state relative to the last save, or undefined when there is none. */
  load(): EngineState | undefined {
    const meta = new Map(
      (this.db.prepare('SELECT k, v FROM analytics_meta').all() as { k: string; v: string }[]).map((r) => [r.k, r.v]),
    );
    const lastSave = Number(meta.get('last_save'));
    if (!Number.isFinite(lastSave)) return undefined;
    const rows = this.db.prepare('SELECT rule, device, saved_at, state FROM analytics_tracks').all() as {
      rule: string;
      device: string;
      saved_at: number;
      state: string;
    }[];
    const tracks: TrackState[] = [];
    for (const row of rows) {
      let rest: Omit<TrackState, 'key' | 'deviceId'>;
      try {
        rest = JSON.parse(row.state) as Omit<TrackState, 'key' | 'deviceId'>;
      } catch {
        continue; // an unreadable row only loses that track's progress
      }
      tracks.push(rebase({ key: row.rule, deviceId: row.device, ...rest }, row.saved_at - lastSave));
    }
    let history: AlertRecord[] = [];
    try {
      history = JSON.parse(meta.get('history') ?? '[]') as AlertRecord[];
    } catch {
      history = [];
    }
    return { version: 1, seq: Number(meta.get('seq') ?? 0) || 0, tracks, history };
  }

  /** Drops rows of rules that no longer exist or changed. */
  prune(currentKeys: readonly string[]): number {
    const keep = new Set(currentKeys);
    const stale = (this.db.prepare('SELECT DISTINCT rule FROM analytics_tracks').all() as { rule: string }[])
      .map((r) => r.rule)
      .filter((k) => !keep.has(k));
    for (const k of stale) this.deleteRule.run(k);
    return stale.length;
  }
}

/** Shifts every relative time of a track by `delta` ms (row saved `delta` before the last save). */
function rebase(t: TrackState, delta: number): TrackState {
  if (delta === 0) return t;
  const sh = (x: number | null) => (x === null ? null : x + delta);
  return {
    ...t,
    window: t.window && {
      samples: t.window.samples.map(([ts, v]) => [ts + delta, v] as [number, number]),
      openStart: sh(t.window.openStart),
    },
    trueSince: sh(t.trueSince),
    clearSince: sh(t.clearSince),
    lastSeen: sh(t.lastSeen),
    cooldownUntil: sh(t.cooldownUntil),
    raises: t.raises.map((r) => r + delta),
  };
}
