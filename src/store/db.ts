import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { GatewayError } from '../errors.js';

export type Db = Database.Database;

/**
 * `normal`: survives a process crash (kill -9) — WAL with synchronous=NORMAL, a commit is in the
 * OS page cache before it returns. `full`: survives power loss — synchronous=FULL fsyncs the WAL
 * on every commit (more SD-card writes, higher commit latency).
 */
export type Durability = 'normal' | 'full';

/** Page size of a new database file (bytes). */
export const PAGE_SIZE = 1024;
const WAL_AUTOCHECKPOINT_PAGES = 4096;

export interface OpenOptions {
  path: string;
  durability: Durability;
}

/**
 * Opens the single state database. One connection, one writer (better-sqlite3 is synchronous),
 * handed to every module that needs it.
 */
export function openDatabase(opts: OpenOptions): Db {
  try {
    if (opts.path !== ':memory:') mkdirSync(dirname(opts.path), { recursive: true });
    const db = new Database(opts.path);
    // Before anything is written: a new file gets 1 KiB pages. Every commit appends each page it
    // touched to the WAL whole, so the page size is the floor of bytes written per commit; at
    // 1 KiB a group commit of readings costs ~4x less than at 4 KiB (docs/queues.md §Disk writes).
    // An existing file keeps its page size (WAL mode cannot change it without a VACUUM).
    db.pragma(`page_size = ${PAGE_SIZE}`);
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${opts.durability === 'full' ? 'FULL' : 'NORMAL'}`);
    db.pragma('foreign_keys = ON');
    // Let a checkpoint wait briefly for a reader instead of failing at once.
    db.pragma('busy_timeout = 2000');
    // Auto-checkpoint every 4,096 WAL pages (4 MiB at 1 KiB): a checkpoint writes each page that
    // changed back once, so hot pages (the outbox tail) rewritten by many commits cost one write
    // per checkpoint; fewer checkpoints, fewer rewrites. journal_size_limit truncates a WAL that a
    // burst grew beyond 8 MiB back after the checkpoint (disk space; it writes nothing).
    db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
    db.pragma('journal_size_limit = 8388608');
    db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      module TEXT NOT NULL,
      version INTEGER NOT NULL,
      applied_at INTEGER NOT NULL,
      PRIMARY KEY (module, version)
    )`);
    // `breaks`: the step leaves data an older release cannot use (docs/ota.md §Data across releases).
    // Added with a default, so releases that predate the column keep reading and writing the table.
    const cols = db.prepare('PRAGMA table_info(schema_migrations)').all() as { name: string }[];
    if (!cols.some((c) => c.name === 'breaks'))
      db.exec('ALTER TABLE schema_migrations ADD COLUMN breaks INTEGER NOT NULL DEFAULT 0');
    return db;
  } catch (err) {
    throw new GatewayError('EGW_STORE_OPEN', `cannot open state database ${opts.path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * A migration step: SQL that keeps the data readable by the releases before it (additive: new
 * tables, indexes, columns with defaults), or `{ sql, breaks: true }` for one that does not.
 */
export type MigrationStep = string | { sql: string; breaks: true };

/**
 * Versioned migrations owned by each module (module name + ordered SQL steps). Step N is applied
 * once, inside a transaction with its bookkeeping row, so a crash mid-migration leaves no half state.
 * Steps are append-only: never edit a released step, add a new one.
 *
 * Across releases (OTA rollback, docs/ota.md §Data across releases): steps applied by a newer
 * release that this one does not know are ignored when additive — a rolled-back release opens the
 * data dir its successor migrated — and refused with EGW_STORE_NEWER when marked `breaks`, before
 * anything is written, rather than running on data it would misread.
 */
export function migrate(db: Db, module: string, steps: readonly MigrationStep[]): void {
  const rows = db.prepare('SELECT version, breaks FROM schema_migrations WHERE module = ?').all(module) as {
    version: number;
    breaks: number;
  }[];
  const newer = rows.filter((r) => r.version > steps.length && r.breaks !== 0).map((r) => r.version);
  if (newer.length > 0)
    throw new GatewayError(
      'EGW_STORE_NEWER',
      `the state database was migrated by a newer release (${module}#${Math.min(...newer)} changes data this release, which knows ${module}#1..${steps.length}, cannot read); run that release again or restore a backup of the data dir`,
    );
  const done = new Set(rows.map((r) => r.version));
  const record = db.prepare('INSERT INTO schema_migrations (module, version, applied_at, breaks) VALUES (?, ?, ?, ?)');
  steps.forEach((step, i) => {
    const version = i + 1;
    if (done.has(version)) return;
    const sql = typeof step === 'string' ? step : step.sql;
    try {
      db.transaction(() => {
        db.exec(sql);
        record.run(module, version, Date.now(), typeof step === 'string' ? 0 : 1);
      })();
    } catch (err) {
      throw new GatewayError('EGW_STORE_OPEN', `migration ${module}#${version} failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
  });
}

/**
 * True for the errors that mean the disk (or the quota of the file system, or the file size limit)
 * is full: SQLite's, and the outbox journal's write(2) errors (ENOSPC, EDQUOT, EFBIG).
 */
export function isDiskFull(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return (
    code === 'SQLITE_FULL' ||
    code === 'SQLITE_IOERR_WRITE' ||
    code === 'ENOSPC' ||
    code === 'EDQUOT' ||
    code === 'EFBIG' ||
    /disk is full|ENOSPC/i.test(String(err))
  );
}
