import { migrate, type Db } from '../store/db.js';

/** A command result waiting in (or sent from) the dedupe table. */
export interface StoredResult {
  key: string;
  state: 'pending' | 'done';
  result: string | null;
  topic: string | null;
  corr: Buffer | null;
  sent: number;
}

/** Conflict-rule bookkeeping of the config (docs/uplink.md §Conflict rule). */
export interface ConfigSync {
  /** Increases on every applied config change, local or cloud. */
  revision: number;
  /** Who made the last applied change: the file at start, an operator (local) or the cloud. */
  origin: 'file' | 'local' | 'cloud';
  /** Highest desired-config version received (applied, refused or overridden); 0 = none yet. */
  desiredVersion: number;
}

const MIGRATIONS = [
  `CREATE TABLE downlink_commands (
     key TEXT PRIMARY KEY,
     ts INTEGER NOT NULL,
     state TEXT NOT NULL,
     result TEXT,
     topic TEXT,
     corr BLOB,
     sent INTEGER NOT NULL DEFAULT 0
   )`,
  `CREATE TABLE downlink_sync (k TEXT PRIMARY KEY, v TEXT NOT NULL)`,
];

/**
 * What the downlink keeps on disk: the ids of commands it has seen (bounded; a QoS 1 redelivery
 * [MQTT-4.3.2] or a cloud retry finds its id and gets the stored result again instead of a
 * second execution) and the config sync record. Written before the PUBACK goes out (better-sqlite3
 * is synchronous), so a `kill -9` after the PUBACK still knows the command.
 */
export class DownlinkStore {
  private readonly q;
  private inserts = 0;
  /** Commands that were pending when this process started: the previous one died executing them. */
  readonly interrupted: StoredResult[];

  constructor(
    db: Db,
    private readonly maxRows: number,
    private readonly wallClock: () => number = Date.now,
  ) {
    migrate(db, 'downlink', MIGRATIONS);
    this.q = {
      get: db.prepare('SELECT key, state, result, topic, corr, sent FROM downlink_commands WHERE key = ?'),
      insert: db.prepare("INSERT INTO downlink_commands (key, ts, state, topic, corr) VALUES (?, ?, 'pending', ?, ?)"),
      finish: db.prepare("UPDATE downlink_commands SET state = 'done', result = ? WHERE key = ?"),
      sent: db.prepare('UPDATE downlink_commands SET sent = 1 WHERE key = ?'),
      unsent: db.prepare(
        "SELECT key, state, result, topic, corr, sent FROM downlink_commands WHERE state = 'done' AND sent = 0 ORDER BY rowid LIMIT 1000",
      ),
      pending: db.prepare(
        "SELECT key, state, result, topic, corr, sent FROM downlink_commands WHERE state = 'pending'",
      ),
      trim: db.prepare('DELETE FROM downlink_commands WHERE rowid <= (SELECT MAX(rowid) FROM downlink_commands) - ?'),
      getSync: db.prepare('SELECT v FROM downlink_sync WHERE k = ?'),
      putSync: db.prepare('INSERT OR REPLACE INTO downlink_sync (k, v) VALUES (?, ?)'),
    };
    this.interrupted = this.q.pending.all() as StoredResult[];
  }

  /** Records a new command id; returns what is known when the id was seen before. */
  begin(key: string, resultTopic: string, corr: Buffer | undefined): StoredResult | undefined {
    const row = this.q.get.get(key) as StoredResult | undefined;
    if (row) return row;
    this.q.insert.run(key, this.wallClock(), resultTopic, corr ?? null);
    // Trimming on every insert would double the writes; every 100th keeps the bound loose but cheap.
    if (++this.inserts % 100 === 0) this.q.trim.run(this.maxRows);
    return undefined;
  }

  finish(key: string, result: string): void {
    this.q.finish.run(result, key);
  }

  markSent(key: string): void {
    this.q.sent.run(key);
  }

  /** Results whose publish was not acknowledged (offline, connection lost): sent again on connect. */
  unsent(): StoredResult[] {
    return this.q.unsent.all() as StoredResult[];
  }

  getSync<T>(k: string): T | undefined {
    const row = this.q.getSync.get(k) as { v: string } | undefined;
    return row ? (JSON.parse(row.v) as T) : undefined;
  }

  putSync(k: string, v: unknown): void {
    this.q.putSync.run(k, JSON.stringify(v));
  }
}
