import { migrate, type Db } from '../store/db.js';

export interface AuditEntry {
  id: number;
  /** Wall-clock ms (data only). */
  ts: number;
  source: string;
  method: string;
  resource: string;
  /** "ok", "denied", "invalid", "failed"... */
  outcome: string;
  code: string;
  detail: string | null;
}

const MIGRATIONS = [
  `CREATE TABLE mgmt_audit (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     ts INTEGER NOT NULL,
     source TEXT NOT NULL,
     method TEXT NOT NULL,
     resource TEXT NOT NULL,
     outcome TEXT NOT NULL,
     code TEXT NOT NULL,
     detail TEXT
   )`,
];

/** Every management write (and every refused one): who, what, when, and how it ended. Bounded. */
export class AuditLog {
  private readonly insert;
  private readonly trim;
  private readonly select;
  private inserts = 0;

  constructor(
    db: Db,
    private readonly maxRows: number,
    private readonly wallClock: () => number = Date.now,
  ) {
    migrate(db, 'mgmt', MIGRATIONS);
    this.insert = db.prepare(
      'INSERT INTO mgmt_audit (ts, source, method, resource, outcome, code, detail) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    this.trim = db.prepare('DELETE FROM mgmt_audit WHERE id <= (SELECT MAX(id) FROM mgmt_audit) - ?');
    this.select = db.prepare('SELECT * FROM mgmt_audit ORDER BY id DESC LIMIT ?');
  }

  record(e: Omit<AuditEntry, 'id' | 'ts'>): void {
    this.insert.run(
      this.wallClock(),
      e.source,
      e.method,
      e.resource,
      e.outcome,
      e.code,
      e.detail?.slice(0, 500) ?? null,
    );
    // Trimming every insert would double the writes; every 100th keeps the bound loose but cheap.
    if (++this.inserts % 100 === 0) this.trim.run(this.maxRows);
  }

  recent(limit: number): AuditEntry[] {
    return this.select.all(Math.max(1, Math.min(limit, 1000))) as AuditEntry[];
  }
}
