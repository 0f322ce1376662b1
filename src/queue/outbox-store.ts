import { randomBytes } from 'node:crypto';
import type { Statement } from 'better-sqlite3';
import { migrate, type Db } from '../store/db.js';
import type { CommitWork } from './journal.js';

/**
 * The outbox's SQL, and nothing else: table layout, migrations and the prepared statements.
 *
 * One row = what one source handed over in one call for one device (kind 1: a codec batch of its
 * readings, merged with its neighbours at send time) or one non-reading message (kind 0).
 * Rows the uplink groups into one message are recorded as a claim (one row in outbox_claim:
 * class, topic, device, seq range) *before* the message is published, so a message re-sent after
 * a crash carries the same rows under the same id and the cloud can drop the duplicate.
 */
const MIGRATIONS = [
  `CREATE TABLE outbox (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     cls INTEGER NOT NULL,
     topic TEXT NOT NULL,
     dev TEXT NOT NULL,
     kind INTEGER NOT NULL,
     n INTEGER NOT NULL,
     payload BLOB NOT NULL,
     ctype TEXT,
     t_ms INTEGER NOT NULL,
     ttl_ms INTEGER NOT NULL
   );
   CREATE INDEX outbox_cls_seq ON outbox (cls, seq);
   CREATE TABLE outbox_claim (
     id TEXT PRIMARY KEY,
     cls INTEGER NOT NULL,
     topic TEXT NOT NULL,
     dev TEXT NOT NULL,
     first_seq INTEGER NOT NULL,
     last_seq INTEGER NOT NULL
   );
   CREATE TABLE outbox_meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);`,
];

/** Per-row bytes counted on top of payload and topic (SQLite record + index entry, approx.). */
export const ROW_OVERHEAD_BYTES = 48;

export interface StoredRow {
  seq: number;
  cls: number;
  topic: string;
  dev: string;
  kind: number;
  n: number;
  payload: Buffer;
  ctype: string | null;
  t_ms: number;
  ttl_ms: number;
}

export interface ClaimRow {
  id: string;
  cls: number;
  topic: string;
  dev: string;
  first_seq: number;
  last_seq: number;
}

export interface NewRow {
  cls: number;
  topic: string;
  dev: string;
  kind: number;
  n: number;
  payload: Uint8Array;
  ctype: string | null;
  t: number;
  ttl: number;
}

export class OutboxStore {
  readonly uid: string;
  private readonly insertRow: Statement;
  private readonly insertRowAt: Statement;
  private readonly deleteRow: Statement;
  private readonly insertClaim: Statement;
  private readonly deleteClaim: Statement;
  private readonly loadAfter: Statement;
  private readonly setMeta: Statement;

  constructor(private readonly db: Db) {
    migrate(db, 'outbox', MIGRATIONS);
    const meta = db.prepare('SELECT v FROM outbox_meta WHERE k = ?');
    this.setMeta = db.prepare(
      'INSERT INTO outbox_meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v',
    );
    let uid = (meta.get('uid') as { v: string } | undefined)?.v;
    if (!uid) {
      // Prefix of every message id: unique per database, so ids never repeat across a reinstall.
      uid = randomBytes(6).toString('hex');
      this.setMeta.run('uid', uid);
    }
    this.uid = uid;
    this.insertRow = db.prepare(
      'INSERT INTO outbox (cls, topic, dev, kind, n, payload, ctype, t_ms, ttl_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    // Rows the journal spills carry the seq they were acknowledged under; a replay after a crash
    // between the spill and the journal's truncation inserts them again: ignored by key.
    this.insertRowAt = db.prepare(
      'INSERT OR IGNORE INTO outbox (seq, cls, topic, dev, kind, n, payload, ctype, t_ms, ttl_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    this.deleteRow = db.prepare('DELETE FROM outbox WHERE seq = ?');
    this.insertClaim = db.prepare(
      'INSERT OR IGNORE INTO outbox_claim (id, cls, topic, dev, first_seq, last_seq) VALUES (?, ?, ?, ?, ?, ?)',
    );
    this.deleteClaim = db.prepare('DELETE FROM outbox_claim WHERE id = ?');
    this.loadAfter = db.prepare(
      'SELECT seq, cls, topic, dev, kind, n, payload, ctype, t_ms, ttl_ms FROM outbox WHERE cls = ? AND seq > ? ORDER BY seq LIMIT ?',
    );
  }

  /**
   * The gateway clock (monotonic, ms) continues from the newest stored row: time the gateway was
   * off does not count toward TTLs, and a wall clock that boots in 1970 cannot expire anything.
   */
  clockBase(): number {
    return ((this.db.prepare('SELECT max(t_ms) AS t FROM outbox').get() as { t: number | null }).t ?? 0) + 1;
  }

  /**
   * The next unused seq: above every stored row, every seq AUTOINCREMENT ever handed out, and the
   * high-water mark the journal persisted at its last spill (rows acknowledged and deleted before
   * reaching SQLite leave no other trace; a reused seq would reuse a message id).
   */
  nextSeq(): number {
    const row = this.db.prepare('SELECT max(seq) AS m FROM outbox').get() as { m: number | null };
    const auto = this.db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").get() as
      { seq: number } | undefined;
    const hw = this.db.prepare("SELECT v FROM outbox_meta WHERE k = 'next_seq'").get() as { v: string } | undefined;
    return Math.max((row.m ?? 0) + 1, (auto?.seq ?? 0) + 1, Number(hw?.v ?? 0));
  }

  /**
   * The journal's spill (src/queue/journal.ts): rows with their seqs, deletes, claims and claim
   * deletes, and the next seq, in one transaction made durable before it returns
   * (synchronous=FULL for it: the journal is truncated after this). Idempotent.
   */
  apply(w: CommitWork, seqs: readonly number[], nextSeq: number): void {
    const sync = this.db.pragma('synchronous', { simple: true }) as number;
    if (sync < 2) this.db.pragma('synchronous = FULL');
    try {
      this.db.transaction(() => {
        for (let i = 0; i < w.inserts.length; i++) {
          const r = w.inserts[i]!;
          // t in whole ms, as the journal records it (a replay writes the same row).
          this.insertRowAt.run(seqs[i], r.cls, r.topic, r.dev, r.kind, r.n, r.payload, r.ctype, Math.round(r.t), r.ttl);
        }
        for (const s of w.deletes) this.deleteRow.run(s);
        for (const c of w.claims) this.insertClaim.run(c.id, c.cls, c.topic, c.dev, c.first_seq, c.last_seq);
        for (const cid of w.claimDeletes) this.deleteClaim.run(cid);
        this.setMeta.run('next_seq', String(nextSeq));
      })();
    } finally {
      if (sync < 2) this.db.pragma(`synchronous = ${sync}`);
    }
  }

  totals(): { cls: number; rows: number; readings: number; bytes: number; oldest: number }[] {
    return this.db
      .prepare(
        `SELECT cls, count(*) AS rows, sum(n) AS readings,
                sum(length(payload) + length(topic)) + count(*) * ${ROW_OVERHEAD_BYTES} AS bytes, min(t_ms) AS oldest
           FROM outbox GROUP BY cls`,
      )
      .all() as { cls: number; rows: number; readings: number; bytes: number; oldest: number }[];
  }

  claims(): ClaimRow[] {
    return this.db
      .prepare('SELECT id, cls, topic, dev, first_seq, last_seq FROM outbox_claim ORDER BY first_seq')
      .all() as ClaimRow[];
  }

  rowsOfClaim(c: ClaimRow): StoredRow[] {
    return this.db
      .prepare(
        `SELECT seq, cls, topic, dev, kind, n, payload, ctype, t_ms, ttl_ms FROM outbox
          WHERE seq BETWEEN ? AND ? AND cls = ? AND kind = 1 AND topic = ? AND dev = ? ORDER BY seq`,
      )
      .all(c.first_seq, c.last_seq, c.cls, c.topic, c.dev) as StoredRow[];
  }

  load(cls: number, afterSeq: number, limit: number): StoredRow[] {
    return this.loadAfter.all(cls, afterSeq, limit) as StoredRow[];
  }

  /** Inserts in one transaction; returns the seq of each row (throws, nothing written, on failure). */
  insert(rows: readonly NewRow[]): number[] {
    const seqs: number[] = new Array<number>(rows.length);
    this.db.transaction(() => {
      for (let i = 0; i < rows.length; i++) {
        const r = rows[i]!;
        const info = this.insertRow.run(r.cls, r.topic, r.dev, r.kind, r.n, r.payload, r.ctype, r.t, r.ttl);
        seqs[i] = Number(info.lastInsertRowid);
      }
    })();
    return seqs;
  }

  /**
   * The group commit: deletes, claims and inserts in **one** transaction (one WAL append, one set
   * of touched pages). Returns the seq of each inserted row; throws, nothing written, on failure.
   */
  commit(w: CommitWork): number[] {
    const seqs: number[] = new Array<number>(w.inserts.length);
    this.db.transaction(() => {
      for (const s of w.deletes) this.deleteRow.run(s);
      for (const id of w.claimDeletes) this.deleteClaim.run(id);
      for (const c of w.claims) this.insertClaim.run(c.id, c.cls, c.topic, c.dev, c.first_seq, c.last_seq);
      for (let i = 0; i < w.inserts.length; i++) {
        const r = w.inserts[i]!;
        const info = this.insertRow.run(r.cls, r.topic, r.dev, r.kind, r.n, r.payload, r.ctype, r.t, r.ttl);
        seqs[i] = Number(info.lastInsertRowid);
      }
    })();
    return seqs;
  }

  /** Deletes delivered or dropped rows and finished claims in one transaction. */
  remove(seqs: readonly number[], claimIds: readonly string[]): void {
    this.db.transaction(() => {
      for (const s of seqs) this.deleteRow.run(s);
      for (const id of claimIds) this.deleteClaim.run(id);
    })();
  }

  claim(claims: readonly ClaimRow[]): void {
    if (claims.length === 0) return;
    this.db.transaction(() => {
      for (const c of claims) this.insertClaim.run(c.id, c.cls, c.topic, c.dev, c.first_seq, c.last_seq);
    })();
  }
}
