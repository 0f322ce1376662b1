import { GatewayError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { StateLog } from '../log/logger.js';
import type { Reading } from '../pipeline/reading.js';
import { isDiskFull, type Db } from '../store/db.js';
import { Classifier } from './classify.js';
import type { ReadingCodec } from './codec.js';
import type { QueueConfig } from './config.js';
import { expiryReason, nextEviction } from './expiry.js';
import { ClassLane, formMessage, groupSize, rowFromStored, type Row, type UplinkMessage } from './lanes.js';
import { OutboxJournal } from './journal.js';
import { OutboxStore, ROW_OVERHEAD_BYTES, type ClaimRow, type NewRow } from './outbox-store.js';
import { ClassCounters } from './stats.js';
import { DROP_REASONS, PRIORITIES, type ClassStats, type DropReason, type OutboundMessage } from './types.js';
import { GroupCommitWriter } from './writer.js';

export type { UplinkMessage } from './lanes.js';

export interface OutboxOptions {
  db: Db;
  log: Logger;
  config: QueueConfig;
  codec: ReadingCodec;
  /** Monotonic ms; tests inject a fake clock. */
  now?: () => number;
  /**
   * Group commits go to this append-only journal and are spilled into SQLite now and then
   * (src/queue/journal.ts; the gateway's is `{data_dir}/outbox.journal`). Without it every group
   * commit is a SQLite transaction.
   */
  journal?: { path: string; fsync: boolean; spillBytes?: number };
}

/**
 * Rows per class held in memory at most; below LOW_WATER chunks of CHUNK rows are read from SQLite,
 * for at most LOAD_BUDGET_MS per call (the rest on the next call): a deep head keeps many rows
 * per device in view, so batches stay large (a backlog of 100 devices: ~200 rows each).
 */
const HEAD_MAX = 30000;
const LOW_WATER = 20000;
const CHUNK = 1000;
const LOAD_BUDGET_MS = 4;

/**
 * The store-and-forward outbox: the facade the pipeline and the uplink use. Accepts readings and
 * messages and resolves each caller after its commit (GroupCommitWriter, writer.ts), hands the
 * uplink whole messages class by class in FIFO order (ClassLane, lanes.ts), deletes rows only when
 * the cloud acknowledged them, and keeps within its quota and TTLs (expiry.ts), counting
 * everything per class (stats.ts).
 */
export class Outbox {
  readonly classifier: Classifier;
  private readonly store: OutboxStore;
  private readonly journal: OutboxJournal | undefined;
  private readonly writer: GroupCommitWriter;
  private readonly lanes: ClassLane[] = PRIORITIES.map(() => new ClassLane());
  private readonly stats: ClassCounters[] = PRIORITIES.map(() => new ClassCounters());
  private readonly now: () => number;
  private readonly clockBase: number;
  private readonly t0: number;
  private readonly writeState: StateLog<'ok' | 'failing'>;
  private readonly maxAgeMs: number;
  private restored = new Set<number>();
  private maxBatchBytes: number;
  private readonly listeners: (() => void)[] = [];

  constructor(private readonly opts: OutboxOptions) {
    this.now = opts.now ?? (() => performance.now());
    this.classifier = new Classifier(opts.config);
    this.store = new OutboxStore(opts.db);
    // Replays what a crash left in the journal into SQLite before anything below reads SQLite.
    this.journal = opts.journal && new OutboxJournal({ ...opts.journal, store: this.store });
    this.clockBase = this.store.clockBase();
    this.t0 = this.now();
    const o = opts.config.outbox;
    this.maxBatchBytes = o.max_batch_bytes;
    this.maxAgeMs = o.max_age_s * 1000;
    this.writeState = new StateLog(opts.log, 'outbox write', 'ok');
    this.writer = new GroupCommitWriter({
      store: this.journal ?? this.store,
      codec: opts.codec,
      waitMs: o.commit_wait_ms,
      maxRows: o.commit_max_rows,
      maxRowReadings: o.max_batch_readings,
      committed: (rows, seqs) => this.committed(rows, seqs),
      failed: (rows, err) => this.commitFailed(rows, err),
    });
    for (const t of this.store.totals()) this.stats[t.cls]!.stored(t.rows, t.readings, t.bytes);
    this.restoreClaims();
    // Read the head of each class now: an empty class is then complete, and new rows stay in
    // memory instead of being spilled from the journal for the first read.
    this.lanes.forEach((lane, cls) => this.ensureHead(lane, cls));
  }

  /** Gateway clock: monotonic ms that continues across restarts (see OutboxStore.clockBase). */
  clock(): number {
    return this.clockBase + (this.now() - this.t0);
  }

  /** True while commits fail (disk full): sources are not acknowledged, /mgmt/health says so. */
  get failing(): boolean {
    return this.writeState.state === 'failing';
  }

  /** Length of a message id, for the uplink's cost estimate (uid + '-' + seq). */
  get idLength(): number {
    return this.store.uid.length + 9;
  }

  get counters(): { commits: number; commitFailures: number; rowsCommitted: number } {
    return this.writer.counters;
  }

  /** The journal's counters (appends, bytes, spills), when the outbox has one. */
  get journalCounters(): OutboxJournal['counters'] | undefined {
    return this.journal?.counters;
  }

  /** Called after rows are committed (the uplink wakes its pump). */
  onCommit(fn: () => void): void {
    this.listeners.push(fn);
  }

  /** Readings of one source call: grouped by device, classified, committed; resolves after the commit. */
  enqueueReadings(readings: readonly Reading[], topic: string): Promise<void> {
    if (readings.length === 0) return Promise.resolve();
    const t = this.clock();
    const c = this.classifier.classify(topic, readings[0]!.source);
    const dev0 = readings[0]!.deviceId;
    if (readings.every((r) => r.deviceId === dev0)) {
      return this.writer.addReadings(c.cls, topic, dev0, c.ttlMs, t, readings);
    }
    const byDev = new Map<string, Reading[]>();
    for (const r of readings) {
      const list = byDev.get(r.deviceId);
      if (list) list.push(r);
      else byDev.set(r.deviceId, [r]);
    }
    const waits = [...byDev].map(([dev, list]) => this.writer.addReadings(c.cls, topic, dev, c.ttlMs, t, list));
    return Promise.all(waits).then(() => undefined);
  }

  /** A non-reading message (alert, status, inspection result); resolves after its commit. */
  enqueue(msg: OutboundMessage): Promise<void> {
    const c = this.classifier.classify(msg.topic, msg.source, msg.labels, msg.priority, msg.ttlS);
    return this.writer.addMessage({
      cls: c.cls,
      topic: msg.topic,
      dev: '',
      kind: 0,
      n: 1,
      payload: msg.payload,
      ctype: msg.contentType ?? 'application/json',
      t: this.clock(),
      ttl: c.ttlMs,
    });
  }

  /** Commits everything that waits now, deletes included. Synchronous; safe to call any time. */
  flush(): void {
    this.writer.flush();
  }

  private committed(rows: readonly NewRow[], seqs: readonly number[]): void {
    this.writeState.set('ok', undefined, 'info');
    for (let i = 0; i < rows.length; i++) this.admit(rows[i]!, seqs[i]!);
    this.enforceQuota();
    for (const fn of this.listeners) fn();
  }

  private commitFailed(rows: readonly NewRow[], err: unknown): Error {
    for (const r of rows) this.stats[r.cls]!.dropped.disk_full += r.n;
    const e = new GatewayError(
      isDiskFull(err) ? 'EGW_STORE_FULL' : 'EGW_OUTBOX_COMMIT',
      `outbox commit failed (${rows.length} rows not accepted): ${(err as Error).message}`,
      { cause: err },
    );
    this.writeState.set('failing', { err, code: e.code }, 'error');
    return e;
  }

  private admit(r: NewRow, seq: number): void {
    const lane = this.lanes[r.cls]!;
    const bytes = r.payload.byteLength + Buffer.byteLength(r.topic) + ROW_OVERHEAD_BYTES;
    this.stats[r.cls]!.stored(1, r.n, bytes);
    if (lane.complete && lane.live < HEAD_MAX) {
      const payload = Buffer.isBuffer(r.payload)
        ? r.payload
        : Buffer.from(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength);
      lane.push({ ...r, seq, key: '', payload, bytes, taken: false });
    } else {
      lane.complete = false;
    }
  }

  /** Reads the next chunk of a class from SQLite when its head runs low (one chunk per call: bounded work). */
  private ensureHead(lane: ClassLane, cls: number): void {
    const t0 = performance.now();
    while (!lane.complete && lane.live < LOW_WATER) {
      const got = this.store.load(cls, lane.lastSeq, CHUNK);
      let added = 0;
      for (const s of got) {
        if (this.restored.has(s.seq)) {
          lane.lastSeq = s.seq;
        } else {
          lane.push(rowFromStored(s));
          added++;
        }
      }
      if (got.length < CHUNK) {
        // The end of SQLite: rows committed since the lane stopped holding every row are newer
        // (higher seqs) and may still be only in the journal — spill them, then read on. Only
        // here, not per call: a backlog draining from SQLite must not cost a spill per commit.
        // Should SQLite refuse (disk full), the lane stays incomplete and the next call retries.
        if (this.journal && this.journal.pendingRows > 0) {
          if (!this.journal.trySpill()) break;
          continue;
        }
        lane.complete = true;
      }
      if (added > 0 && performance.now() - t0 > LOAD_BUDGET_MS) break;
    }
  }

  /** After a restart, messages claimed before the crash are re-formed from the same rows, with the same ids. */
  private restoreClaims(): void {
    const stale: string[] = [];
    for (const c of this.store.claims()) {
      const rows = this.store.rowsOfClaim(c).map((s) => rowFromStored(s));
      if (rows.length === 0) {
        stale.push(c.id);
        continue;
      }
      for (const r of rows) this.restored.add(r.seq);
      const msg = this.build(rows, c);
      if (msg) {
        msg.claimed = true;
        this.lanes[c.cls]!.ready.push(msg);
      }
    }
    if (stale.length) this.store.remove([], stale);
  }

  /** Adjusts the largest payload per message (the uplink cuts batches under a low rate cap). */
  setMaxBatchBytes(bytes: number): void {
    const b = Math.max(256, Math.min(this.opts.config.outbox.max_batch_bytes, Math.floor(bytes)));
    if (b !== this.maxBatchBytes) {
      this.maxBatchBytes = b;
      for (const lane of this.lanes) lane.formed = undefined;
    }
  }

  /**
   * The next message of class `cls` without taking it: the message, `{ waitMs }` when its batch
   * window is still open, or undefined when the class is empty.
   */
  peek(cls: number): UplinkMessage | { waitMs: number } | undefined {
    const lane = this.lanes[cls]!;
    if (lane.ready.length > 0) return lane.ready.peek();
    const clock = this.clock();
    if (lane.formed) {
      const m = lane.formed.msg;
      if (!expiryReason(m.t, m.ttl, this.maxAgeMs, clock)) return m;
      lane.formed = undefined; // expired while waiting: the loop below drops it
    }
    const { max_batch_readings } = this.opts.config.outbox;
    for (;;) {
      this.ensureHead(lane, cls);
      const h = lane.head();
      if (!h) return undefined;
      const reason = expiryReason(h.t, h.ttl, this.maxAgeMs, clock);
      if (reason) {
        this.dropRow(lane, h, reason);
        continue;
      }
      if (h.kind === 0) {
        lane.formed = { msg: this.build([h], undefined)!, rows: [h] };
        return lane.formed.msg;
      }
      const kq = lane.byKey.get(h.key)!;
      const window = this.opts.config.classes[PRIORITIES[cls]!].batch_window_ms;
      const age = clock - h.t;
      if (age < window && kq.length < max_batch_readings) return { waitMs: Math.ceil(window - age) };
      const group: Row[] = [];
      const k = groupSize(kq, max_batch_readings, this.maxBatchBytes);
      for (let i = 0; i < k; i++) group.push(kq.at(i)!);
      const claim: ClaimRow = {
        id: `${this.store.uid}-${h.seq}`,
        cls,
        topic: h.topic,
        dev: h.dev,
        first_seq: h.seq,
        last_seq: group[group.length - 1]!.seq,
      };
      const msg = this.build(group, claim);
      if (!msg) {
        for (const r of group) this.dropRow(lane, r, 'invalid');
        continue;
      }
      lane.formed = { msg, rows: group };
      return msg;
    }
  }

  /** One message from rows (a codec batch of their readings, or the message itself); undefined when unreadable. */
  private build(rows: Row[], claim: ClaimRow | undefined): UplinkMessage | undefined {
    try {
      return formMessage(rows, claim, this.store.uid, this.opts.codec);
    } catch (err) {
      this.opts.log.error(
        { err, seq: rows[0]!.seq, code: 'EGW_OUTBOX_COMMIT' },
        'stored readings cannot be decoded; dropped (counted as invalid)',
      );
      return undefined;
    }
  }

  /** Takes the message `peek` returned; it is now the uplink's until `ack` or `requeue`. */
  take(cls: number): UplinkMessage | undefined {
    const lane = this.lanes[cls]!;
    if (lane.ready.length > 0) return lane.ready.shift();
    if (!lane.formed && !(this.peek(cls) && lane.formed)) return undefined;
    const { msg, rows } = lane.formed!;
    lane.formed = undefined;
    lane.take(rows);
    return msg;
  }

  /**
   * Records the grouping of reading messages before they are published; `done` runs once it is
   * committed (with the next group commit), with an error when that failed.
   */
  claim(msgs: readonly UplinkMessage[], done: (err: Error | undefined) => void): void {
    const claims = msgs.filter((m) => m.claim && !m.claimed).map((m) => m.claim!);
    this.writer.claim(claims, (err) => {
      if (!err) for (const m of msgs) m.claimed = true;
      done(err);
    });
  }

  /** The cloud acknowledged: delete the rows (with the next group commit) and count the delivery. */
  ack(msg: UplinkMessage, wireBytes: number): void {
    this.writer.remove(msg.seqs, msg.claim?.id);
    const s = this.stats[msg.cls]!;
    s.removed(msg.seqs.length, msg.readings, msg.bytes);
    s.sent(msg.readings, wireBytes);
  }

  /** Not acknowledged (connection lost): back to the front of its class, same id. Call newest first. */
  requeue(msg: UplinkMessage): void {
    this.lanes[msg.cls]!.ready.unshift(msg);
  }

  private dropRow(lane: ClassLane, r: Row, reason: DropReason): void {
    lane.drop(r);
    this.dropCounted(r.cls, [r.seq], r.n, r.bytes, reason, undefined);
  }

  private dropCounted(
    cls: number,
    seqs: readonly number[],
    readings: number,
    bytes: number,
    reason: DropReason,
    claimId: string | undefined,
  ): void {
    this.writer.remove(seqs, claimId);
    const s = this.stats[cls]!;
    s.removed(seqs.length, readings, bytes);
    s.dropped[reason] += readings;
  }

  /** Drops expired messages at the head of each class (each by its own TTL, and max age); run once a second. */
  sweep(): void {
    const clock = this.clock();
    this.lanes.forEach((lane, cls) => {
      for (let m = lane.ready.peek(); m; m = lane.ready.peek()) {
        const reason = expiryReason(m.t, m.ttl, this.maxAgeMs, clock);
        if (!reason) break;
        lane.ready.shift();
        this.dropCounted(cls, m.seqs, m.readings, m.bytes, reason, m.claim?.id);
      }
      this.peek(cls); // drops expired head rows on the way
      this.stats[cls]!.tick();
    });
  }

  /** Over quota: evict the oldest LOW rows, then MEDIUM, then HIGH; CRITICAL only when nothing else is left. */
  private enforceQuota(): void {
    const max = this.opts.config.outbox.max_bytes;
    const exhausted = this.lanes.map(() => false);
    for (;;) {
      const cls = nextEviction(
        this.stats.map((s) => s.bytes),
        max,
        exhausted,
      );
      if (cls === undefined) return;
      const lane = this.lanes[cls]!;
      const m = lane.ready.shift();
      if (m) {
        this.dropCounted(cls, m.seqs, m.readings, m.bytes, 'quota', m.claim?.id);
        continue;
      }
      this.ensureHead(lane, cls);
      const r = lane.head();
      if (r) this.dropRow(lane, r, 'quota');
      else exhausted[cls] = true; // only in-flight messages left in this class
    }
  }

  /** Per-class numbers for /mgmt/queues and metrics. */
  classStats(): ClassStats[] {
    const clock = this.clock();
    return this.lanes.map((lane, cls) => {
      if (this.stats[cls]!.depth > 0) this.ensureHead(lane, cls);
      return this.stats[cls]!.view(lane.oldest(), clock);
    });
  }

  get dropReasons(): readonly DropReason[] {
    return DROP_REASONS;
  }

  /** Commits what waits and stops the timers (nothing accepted is lost: it is on disk). */
  close(): void {
    // Bounded: a large delete goes MAX_DELETES_PER_COMMIT at a time; a failing disk stops it.
    for (let i = 0; i < 1000 && this.writer.busy; i++) {
      const before = this.writer.counters.commitFailures;
      this.writer.flush();
      if (this.writer.counters.commitFailures !== before) break;
    }
    this.writer.close();
    this.journal?.close();
  }
}
