import type { Reading } from '../pipeline/reading.js';
import type { ReadingCodec } from './codec.js';
import type { CommitSink } from './journal.js';
import type { ClaimRow, NewRow } from './outbox-store.js';

/** Deletes and claims alone (no insert waiting) are committed at most this late: they are not urgent. */
export const REMOVE_WAIT_MS = 1000;
/** Row deletes per transaction, so deleting a drained backlog never stalls the event loop for long. */
export const MAX_DELETES_PER_COMMIT = 1000;

export interface WriterOptions {
  /** Where a group commit goes: the journal (src/queue/journal.ts) or SQLite directly. */
  store: CommitSink;
  codec: ReadingCodec;
  /** Longest wait of an accepted message for its transaction (outbox.commit_wait_ms). */
  waitMs: number;
  /** Source calls waiting that commit at once (outbox.commit_max_rows). */
  maxRows: number;
  /** Readings per stored row (outbox.max_batch_readings: a row never splits across uplink messages). */
  maxRowReadings: number;
  /** After a successful commit: the rows written with their seqs (in the order given). */
  committed(rows: readonly NewRow[], seqs: readonly number[]): void;
  /** A commit failed: nothing of it was written; the callers are rejected with what this returns. */
  failed(rows: readonly NewRow[], err: unknown): Error;
}

/** Readings of one device, topic, class and TTL waiting for the next commit: they become one row. */
interface Group {
  cls: number;
  topic: string;
  dev: string;
  ttl: number;
  t: number;
  readings: Reading[];
  /** One part per source call, so a call whose readings the codec refuses is rejected alone. */
  parts: { readings: readonly Reading[]; waiter: Waiter }[];
}

interface Waiter {
  resolve(): void;
  reject(e: Error): void;
  settled?: boolean;
}

/**
 * The group-commit writer: the outbox's only path to SQLite writes. Everything that waits —
 * inserts, deletes of delivered rows, claims of uplink batches — goes into **one** transaction,
 * at most `waitMs` after the first insert waits (at once when `maxRows` wait). Readings of one
 * device that wait together become one row (one codec batch), so a busy site writes one row per
 * device per commit, not one per reading: fewer B-tree cells and pages per transaction, which is
 * what an SD card pays for (docs/queues.md §Disk writes). Callers resolve only after the commit
 * (acknowledge after commit); a failed commit rejects every caller of that group.
 */
export class GroupCommitWriter {
  private groups = new Map<string, Group>();
  private full: Group[] = [];
  private messages: NewRow[] = [];
  private waiters: Waiter[] = [];
  private pendingRows = 0;
  /** Source calls waiting (a group of merged readings counts each call). */
  private pendingCalls = 0;
  private deletes: number[] = [];
  private claimDeletes: string[] = [];
  private claims: ClaimRow[] = [];
  private claimWaiters: ((err: Error | undefined) => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private immediate: NodeJS.Immediate | undefined;
  private readonly now = () => performance.now();
  readonly counters = { commits: 0, commitFailures: 0, rowsCommitted: 0 };

  constructor(private readonly opts: WriterOptions) {}

  /** Readings of one device (one source call); resolves after the commit that stores them. */
  addReadings(
    cls: number,
    topic: string,
    dev: string,
    ttl: number,
    t: number,
    readings: readonly Reading[],
  ): Promise<void> {
    const key = `${cls}\u0000${ttl}\u0000${topic}\u0000${dev}`;
    let g = this.groups.get(key);
    if (g && g.readings.length + readings.length > this.opts.maxRowReadings) {
      this.full.push(g);
      this.groups.delete(key);
      g = undefined;
    }
    if (!g) {
      g = { cls, topic, dev, ttl, t, readings: [], parts: [] };
      this.groups.set(key, g);
      this.pendingRows++;
    }
    for (const r of readings) g.readings.push(r);
    const group = g;
    return this.wait((w) => group.parts.push({ readings, waiter: w }));
  }

  /** One non-reading message as its own row; resolves after its commit. */
  addMessage(row: NewRow): Promise<void> {
    this.messages.push(row);
    this.pendingRows++;
    return this.wait();
  }

  private wait(bind?: (w: Waiter) => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { resolve, reject };
      this.waiters.push(w);
      bind?.(w);
      // Many callers waiting (e.g. publishers with full QoS 1 windows): waiting longer only slows them.
      if (++this.pendingCalls >= this.opts.maxRows || this.opts.waitMs === 0) this.soon();
      else this.within(this.opts.waitMs);
    });
  }

  /** Rows delivered or dropped, and finished claims: deleted with the next commit (within REMOVE_WAIT_MS). */
  remove(seqs: readonly number[], claimId: string | undefined): void {
    for (const s of seqs) this.deletes.push(s);
    if (claimId !== undefined) this.claimDeletes.push(claimId);
    if (this.deletes.length >= MAX_DELETES_PER_COMMIT) this.soon();
    else this.within(REMOVE_WAIT_MS);
  }

  /**
   * Records uplink batches; `done` runs after the commit that holds them (an error when it
   * failed). Claims ride with the next group commit instead of a transaction of their own:
   * at most `waitMs` later, one transaction fewer per uplink send.
   */
  claim(claims: readonly ClaimRow[], done: (err: Error | undefined) => void): void {
    if (claims.length === 0) return done(undefined);
    for (const c of claims) this.claims.push(c);
    this.claimWaiters.push(done);
    if (this.opts.waitMs === 0) this.soon();
    else this.within(this.opts.waitMs);
  }

  /** True while anything waits for a commit (the owner's close flushes until nothing does). */
  get busy(): boolean {
    return this.pendingRows > 0 || this.claims.length > 0 || this.deletes.length > 0 || this.claimDeletes.length > 0;
  }

  get waiting(): number {
    return this.pendingRows;
  }

  private soon(): void {
    this.immediate ??= setImmediate(() => this.flush());
  }

  private within(ms: number): void {
    const at = this.now() + ms;
    if (this.immediate || at >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.flush(), ms);
    // Deletes alone never keep the process alive (a delivered row left behind is only re-sent, same id).
    if (ms === REMOVE_WAIT_MS && this.pendingRows === 0 && this.claims.length === 0) this.timer.unref();
  }

  /** Commits what waits now in one transaction. Synchronous; safe to call any time. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
    if (this.immediate) clearImmediate(this.immediate);
    this.immediate = undefined;
    const rows: NewRow[] = [];
    for (const g of this.full) this.pushRow(rows, g);
    for (const g of this.groups.values()) this.pushRow(rows, g);
    for (const m of this.messages) rows.push(m);
    const waiters = this.waiters;
    const claims = this.claims;
    const claimWaiters = this.claimWaiters;
    // Deletes ride with the next commit, at most MAX_DELETES_PER_COMMIT at a time (the rest in the
    // next turn). Deletes alone wait up to REMOVE_WAIT_MS for an insert to ride with.
    const deletes =
      this.deletes.length > MAX_DELETES_PER_COMMIT ? this.deletes.splice(0, MAX_DELETES_PER_COMMIT) : this.deletes;
    if (deletes === this.deletes) this.deletes = [];
    const claimDeletes = this.claimDeletes;
    this.claimDeletes = [];
    this.full = [];
    this.groups = new Map();
    this.messages = [];
    this.waiters = [];
    this.pendingRows = 0;
    this.pendingCalls = 0;
    this.claims = [];
    this.claimWaiters = [];
    if (rows.length === 0 && claims.length === 0 && deletes.length === 0 && claimDeletes.length === 0) {
      if (this.deletes.length > 0 || this.claimDeletes.length > 0) this.within(REMOVE_WAIT_MS);
      return;
    }
    let seqs: number[];
    try {
      seqs = this.opts.store.commit({ deletes, claimDeletes, claims, inserts: rows });
    } catch (err) {
      this.counters.commitFailures++;
      // Deletes are kept for the next commit: a delivered row that stays only means a re-send under the same id.
      this.deletes = deletes.concat(this.deletes);
      this.claimDeletes = claimDeletes.concat(this.claimDeletes);
      const e = this.opts.failed(rows, err);
      for (const w of waiters) if (!w.settled) w.reject(e);
      for (const d of claimWaiters) d(e);
      if (this.deletes.length > 0) this.within(REMOVE_WAIT_MS);
      return;
    }
    this.counters.commits++;
    this.counters.rowsCommitted += rows.length;
    if (this.deletes.length > 0) this.soon(); // the rest of a large delete, in the next turn
    this.opts.committed(rows, seqs);
    for (const w of waiters) if (!w.settled) w.resolve();
    for (const d of claimWaiters) d(undefined);
  }

  /**
   * Encodes a group as one row. Should the codec refuse it, each source call is tried alone: the
   * calls it refuses are rejected with the codec's error (as an immediate encode would have), the
   * rest are stored.
   */
  private pushRow(rows: NewRow[], g: Group): void {
    try {
      rows.push(this.rowOf(g, g.readings));
    } catch {
      const ok: Reading[] = [];
      for (const p of g.parts) {
        try {
          this.opts.codec.encodeRow(p.readings);
          for (const r of p.readings) ok.push(r);
        } catch (err) {
          p.waiter.settled = true;
          p.waiter.reject(err as Error);
        }
      }
      if (ok.length > 0) rows.push(this.rowOf(g, ok));
    }
  }

  private rowOf(g: Group, readings: readonly Reading[]): NewRow {
    return {
      cls: g.cls,
      topic: g.topic,
      dev: g.dev,
      kind: 1,
      n: readings.length,
      payload: this.opts.codec.encodeRow(readings),
      ctype: null,
      t: g.t,
      ttl: g.ttl,
    };
  }

  /** Stops the timers (after a final flush by the owner). */
  close(): void {
    clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
  }
}
