import type { Logger } from '../log/logger.js';
import { migrate, type Db } from '../store/db.js';
import type { DeadLettersConfig } from './config.js';

/** One refused payload as stored. */
export interface DeadLetter {
  id: number;
  /** Wall-clock ms when it was received (data only). */
  at: number;
  source: string;
  deviceId: string | null;
  /** Client id, CoAP peer or driver id. */
  origin: string | null;
  topic: string | null;
  code: string;
  reason: string;
  /** Readings of the same payload that were accepted (0: refused whole). */
  accepted: number;
  /** Length of the original payload; `payload` holds at most max_payload_bytes of it. */
  size: number;
  truncated: boolean;
  payload: Buffer;
}

export type NewDeadLetter = Omit<DeadLetter, 'id' | 'at' | 'size' | 'truncated' | 'payload'> & {
  payload: Uint8Array;
};

/** A dead letter in a listing: the payload as a short preview instead of the bytes. */
export type DeadLetterSummary = Omit<DeadLetter, 'payload'> & { preview: string };

export interface DeadLetterStats {
  rows: number;
  bytes: number;
  /** Kept since the process started. */
  kept: number;
  /** Not kept since start: the write queue was full (a flood) or the write failed. */
  lost: number;
  /** Deleted by the row, byte or age bound since start. */
  evicted: number;
}

const MIGRATIONS = [
  `CREATE TABLE dead_letters (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     at INTEGER NOT NULL,
     source TEXT NOT NULL,
     device TEXT,
     origin TEXT,
     topic TEXT,
     code TEXT NOT NULL,
     reason TEXT NOT NULL,
     accepted INTEGER NOT NULL,
     size INTEGER NOT NULL,
     truncated INTEGER NOT NULL,
     payload BLOB NOT NULL
   );
   CREATE INDEX dead_letters_device ON dead_letters (device, id)`,
];

/** Entries waiting for their transaction; beyond this a flood of refusals is counted, not queued. */
const MAX_PENDING = 2000;
const PREVIEW_BYTES = 120;
const MAX_TEXT = 500;
/** Wall-clock times before this are from a board that booted without a clock: never aged out by time. */
const PLAUSIBLE_WALL_MS = Date.UTC(2020, 0, 1);

interface Row {
  id: number;
  at: number;
  source: string;
  device: string | null;
  origin: string | null;
  topic: string | null;
  code: string;
  reason: string;
  accepted: number;
  size: number;
  truncated: number;
  payload?: Buffer;
}

export interface DeadLetterStoreOptions {
  db: Db;
  config: DeadLettersConfig;
  log: Logger;
  /** Wall clock (stamps and the age bound). */
  now?: () => number;
}

/** Printable UTF-8 as text, anything else as hex: enough to recognise a payload in a listing. */
export function previewOf(payload: Buffer): string {
  const head = payload.subarray(0, PREVIEW_BYTES);
  const text = head.toString('utf8');
  const printable = !/[\u0000-\u0008\u000e-\u001f\ufffd]/.test(text);
  const shown = printable ? text : head.toString('hex');
  return payload.length > PREVIEW_BYTES ? `${shown}…` : shown;
}

const clip = (s: string | null | undefined): string | null =>
  s === null || s === undefined ? null : s.length > MAX_TEXT ? s.slice(0, MAX_TEXT) : s;

/**
 * The bounded dead-letter store (DESIGN: "refused payloads → dead letters (bounded)"): payloads
 * that were acknowledged (MQTT 3.1.1 has no negative PUBACK) but could not be accepted whole.
 * Writes are grouped: every `add` of one event-loop turn goes into one transaction (a flood of
 * bad payloads costs one SQLite write per turn, not one per payload), and `add` resolves after
 * that commit so a source can acknowledge only what is kept. Bounded by rows, bytes and age.
 */
export class DeadLetterStore {
  private readonly insert;
  private readonly selectOldest;
  private readonly deleteUpTo;
  private readonly deleteOlder;
  private readonly totals;
  private pending: { row: NewDeadLetter; at: number; resolve: () => void }[] = [];
  private immediate: NodeJS.Immediate | undefined;
  private timer: NodeJS.Timeout | undefined;
  private rows = 0;
  private bytes = 0;
  private readonly counters = { kept: 0, lost: 0, evicted: 0 };
  private readonly now: () => number;
  private closed = false;

  constructor(private readonly opts: DeadLetterStoreOptions) {
    const { db } = opts;
    this.now = opts.now ?? Date.now;
    migrate(db, 'deadletters', MIGRATIONS);
    this.insert = db.prepare(
      `INSERT INTO dead_letters (at, source, device, origin, topic, code, reason, accepted, size, truncated, payload)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.selectOldest = db.prepare('SELECT id, length(payload) AS len FROM dead_letters ORDER BY id LIMIT ?');
    this.deleteUpTo = db.prepare('DELETE FROM dead_letters WHERE id <= ?');
    this.deleteOlder = db.prepare('DELETE FROM dead_letters WHERE at < ? AND at >= ?');
    this.totals = db.prepare('SELECT count(*) AS n, coalesce(sum(length(payload)), 0) AS b FROM dead_letters');
    this.recount();
  }

  private recount(): void {
    const t = this.totals.get() as { n: number; b: number };
    this.rows = t.n;
    this.bytes = t.b;
  }

  /** Starts the age sweep (once a minute). */
  start(sweepEveryMs = 60_000): void {
    this.sweep();
    this.timer = setInterval(() => this.sweep(), sweepEveryMs);
    this.timer.unref();
  }

  /** Keeps one refused payload; resolves once it is committed (or counted as lost). Never rejects. */
  add(entry: NewDeadLetter): Promise<void> {
    if (this.closed || this.pending.length >= MAX_PENDING) {
      this.counters.lost++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.pending.push({ row: entry, at: this.now(), resolve });
      this.immediate ??= setImmediate(() => this.flush());
    });
  }

  /** Commits what waits (one transaction), then applies the row and byte bounds. */
  flush(): void {
    if (this.immediate) clearImmediate(this.immediate);
    this.immediate = undefined;
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    const max = this.opts.config.max_payload_bytes;
    try {
      this.opts.db.transaction(() => {
        for (const { row: e, at } of batch) {
          const full = Buffer.from(e.payload.buffer, e.payload.byteOffset, e.payload.byteLength);
          const kept = full.length > max ? full.subarray(0, max) : full;
          this.insert.run(
            at,
            e.source,
            clip(e.deviceId),
            clip(e.origin),
            clip(e.topic),
            e.code,
            clip(e.reason) ?? '',
            e.accepted,
            full.length,
            full.length > max ? 1 : 0,
            kept,
          );
          this.rows++;
          this.bytes += kept.length;
        }
        this.enforceBounds();
      })();
      this.counters.kept += batch.length;
    } catch (err) {
      // A full disk must not stop ingest of good readings: the refusal is counted and logged.
      this.counters.lost += batch.length;
      this.recount();
      this.opts.log.error({ err, n: batch.length }, 'dead letters could not be written; they are counted as lost');
    }
    for (const p of batch) p.resolve();
  }

  private enforceBounds(): void {
    const { max_rows, max_bytes } = this.opts.config;
    while (this.rows > max_rows || this.bytes > max_bytes) {
      const victims = this.selectOldest.all(Math.max(this.rows - max_rows, 64)) as { id: number; len: number }[];
      if (victims.length === 0) break;
      let last = 0;
      for (const v of victims) {
        last = v.id;
        this.rows--;
        this.bytes -= v.len;
        this.counters.evicted++;
        if (this.rows <= max_rows && this.bytes <= max_bytes) break;
      }
      this.deleteUpTo.run(last);
    }
  }

  /** Deletes dead letters older than max_age_s (rows stamped before the clock was set stay: bounded by count). */
  sweep(): void {
    const cutoff = this.now() - this.opts.config.max_age_s * 1000;
    if (cutoff < PLAUSIBLE_WALL_MS) return;
    try {
      const { changes } = this.deleteOlder.run(cutoff, PLAUSIBLE_WALL_MS);
      if (changes > 0) {
        this.counters.evicted += changes;
        this.recount();
      }
    } catch (err) {
      this.opts.log.warn({ err }, 'dead-letter age sweep failed');
    }
  }

  /** Newest first; `beforeId` pages back. */
  list(q: { limit?: number; deviceId?: string; beforeId?: number } = {}): DeadLetterSummary[] {
    this.flush();
    const limit = Math.min(Math.max(Math.trunc(q.limit ?? 50), 1), 500);
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (q.deviceId !== undefined) {
      where.push('device = ?');
      args.push(q.deviceId);
    }
    if (q.beforeId !== undefined) {
      where.push('id < ?');
      args.push(q.beforeId);
    }
    const sql = `SELECT id, at, source, device, origin, topic, code, reason, accepted, size, truncated,
      substr(payload, 1, ${PREVIEW_BYTES + 1}) AS payload FROM dead_letters
      ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
    const rows = this.opts.db.prepare(sql).all(...args, limit) as Row[];
    return rows.map((r) => {
      const { payload, ...rest } = fromRow(r);
      return { ...rest, preview: previewOf(payload) };
    });
  }

  get(id: number): DeadLetter | undefined {
    this.flush();
    const r = this.opts.db.prepare('SELECT * FROM dead_letters WHERE id = ?').get(id) as Row | undefined;
    return r ? fromRow(r) : undefined;
  }

  stats(): DeadLetterStats {
    return { rows: this.rows + this.pending.length, bytes: this.bytes, ...this.counters };
  }

  /** Commits what waits and stops the sweep; later adds are counted as lost. */
  close(): void {
    clearInterval(this.timer);
    this.flush();
    this.closed = true;
  }
}

function fromRow(r: Row): DeadLetter {
  return {
    id: r.id,
    at: r.at,
    source: r.source,
    deviceId: r.device,
    origin: r.origin,
    topic: r.topic,
    code: r.code,
    reason: r.reason,
    accepted: r.accepted,
    size: r.size,
    truncated: r.truncated === 1,
    payload: r.payload ?? Buffer.alloc(0),
  };
}
