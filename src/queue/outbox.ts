import { GatewayError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { StateLog } from '../log/logger.js';
import type { Reading } from '../pipeline/reading.js';
import { isDiskFull, type Db } from '../store/db.js';
import { Classifier } from './classify.js';
import type { ReadingCodec } from './codec.js';
import type { QueueConfig } from './config.js';
import { Fifo } from './fifo.js';
import { OutboxStore, ROW_OVERHEAD_BYTES, type ClaimRow, type NewRow, type StoredRow } from './outbox-store.js';
import { DROP_REASONS, PRIORITIES, type ClassStats, type DropReason, type OutboundMessage } from './types.js';

export interface OutboxOptions {
  db: Db;
  log: Logger;
  config: QueueConfig;
  codec: ReadingCodec;
  /** Monotonic ms; tests inject a fake clock. */
  now?: () => number;
}

/** A row held in memory at the head of its class. */
interface Row {
  seq: number;
  cls: number;
  key: string;
  topic: string;
  dev: string;
  kind: number;
  n: number;
  payload: Buffer;
  ctype: string | null;
  t: number;
  ttl: number;
  bytes: number;
  taken: boolean;
}

/** One message for the uplink: a single row (kind 0) or a group of reading rows of one device. */
export interface UplinkMessage {
  /** Unique, stable across re-sends and restarts: the cloud drops duplicates by it. */
  readonly id: string;
  readonly cls: number;
  readonly topic: string;
  readonly payload: Uint8Array;
  readonly contentType: string;
  readonly readings: number;
  /** Stored bytes (what the quota counts). */
  readonly bytes: number;
  /** Gateway-clock time of the oldest row in it. */
  readonly t: number;
  readonly seqs: readonly number[];
  readonly claim: ClaimRow | undefined;
  claimed: boolean;
}

class ClassQueue {
  readonly rows = new Fifo<Row>();
  readonly byKey = new Map<string, Fifo<Row>>();
  /** Messages already formed and claimed that go first: restored after a restart, or re-queued after a lost connection. */
  readonly ready = new Fifo<UplinkMessage>();
  live = 0;
  lastSeq = 0;
  complete = false;
  formed: { msg: UplinkMessage; rows: Row[] } | undefined;
  depth = 0;
  readings = 0;
  bytes = 0;
  sentMessages = 0;
  sentReadings = 0;
  sentBytes = 0;
  rateBps = 0;
  secondBytes = 0;
  readonly dropped: Record<DropReason, number> = { ttl: 0, age: 0, quota: 0, disk_full: 0, invalid: 0 };
}

const HEAD_MAX = 30000;
const LOW_WATER = 5000;
const CHUNK = 10000;

/**
 * The store-and-forward outbox. Accepts readings and messages, commits them to SQLite in groups
 * (bounded wait), resolves each caller only after its commit (acknowledge after commit), hands the
 * uplink whole messages class by class in FIFO order, deletes rows only when the cloud acknowledged
 * them, and keeps within its quota by age and bytes, evicting LOW first and CRITICAL last.
 */
export class Outbox {
  readonly classifier: Classifier;
  private readonly store: OutboxStore;
  private readonly q: ClassQueue[] = PRIORITIES.map(() => new ClassQueue());
  private readonly now: () => number;
  private readonly clockBase: number;
  private readonly t0: number;
  private readonly writeState: StateLog<'ok' | 'failing'>;
  private pending: { rows: NewRow[]; resolve: () => void; reject: (e: Error) => void }[] = [];
  private pendingRows = 0;
  private delSeqs: number[] = [];
  private delClaims: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private restored = new Set<number>();
  private maxBatchBytes: number;
  private readonly listeners: (() => void)[] = [];
  readonly counters = { commits: 0, commitFailures: 0, rowsCommitted: 0 };

  constructor(private readonly opts: OutboxOptions) {
    this.now = opts.now ?? (() => performance.now());
    this.classifier = new Classifier(opts.config);
    this.store = new OutboxStore(opts.db);
    this.clockBase = this.store.clockBase();
    this.t0 = this.now();
    this.maxBatchBytes = opts.config.outbox.max_batch_bytes;
    this.writeState = new StateLog(opts.log, 'outbox write');
    for (const t of this.store.totals()) {
      const q = this.q[t.cls]!;
      q.depth = t.rows;
      q.readings = t.readings;
      q.bytes = t.bytes;
    }
    this.restoreClaims();
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

  /** Called after rows are committed (the uplink wakes its pump). */
  onCommit(fn: () => void): void {
    this.listeners.push(fn);
  }

  /** Readings of one source call: grouped by device, classified, committed; resolves after the commit. */
  enqueueReadings(readings: readonly Reading[], topic: string): Promise<void> {
    if (readings.length === 0) return Promise.resolve();
    const t = this.clock();
    const rows: NewRow[] = [];
    const byDev = new Map<string, Reading[]>();
    for (const r of readings) {
      const list = byDev.get(r.deviceId);
      if (list) list.push(r);
      else byDev.set(r.deviceId, [r]);
    }
    const c = this.classifier.classify(topic, readings[0]!.source);
    for (const [dev, list] of byDev) {
      const payload = this.opts.codec.encodeRow(list);
      rows.push({ cls: c.cls, topic, dev, kind: 1, n: list.length, payload, ctype: null, t, ttl: c.ttlMs });
    }
    return this.add(rows);
  }

  /** A non-reading message (alert, status, inspection result); resolves after its commit. */
  enqueue(msg: OutboundMessage): Promise<void> {
    const c = this.classifier.classify(msg.topic, msg.source, msg.labels, msg.priority, msg.ttlS);
    const row: NewRow = {
      cls: c.cls,
      topic: msg.topic,
      dev: '',
      kind: 0,
      n: 1,
      payload: msg.payload,
      ctype: msg.contentType ?? 'application/json',
      t: this.clock(),
      ttl: c.ttlMs,
    };
    return this.add([row]);
  }

  private add(rows: NewRow[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ rows, resolve, reject });
      this.pendingRows += rows.length;
      this.commitSoon();
    });
  }

  /** Group commit: the first waiting row starts a timer of commit_wait_ms; a full group commits at once. */
  private commitSoon(): void {
    const { commit_wait_ms, commit_max_rows } = this.opts.config.outbox;
    if (this.pendingRows >= commit_max_rows || commit_wait_ms === 0) {
      this.immediate ??= setImmediate(() => this.flush());
    } else {
      this.timer ??= setTimeout(() => this.flush(), commit_wait_ms);
    }
  }

  /** Commits what waits now (deletes first: they free space). Synchronous; safe to call any time. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.immediate) clearImmediate(this.immediate);
    this.immediate = undefined;
    if (this.delSeqs.length > 0 || this.delClaims.length > 0) {
      try {
        this.store.remove(this.delSeqs, this.delClaims);
        this.delSeqs = [];
        this.delClaims = [];
      } catch (err) {
        // Kept for the next commit; a delivered row that stays only means a duplicate with the same id.
        this.opts.log.warn(
          { err, code: 'EGW_OUTBOX_COMMIT' },
          'deleting delivered rows failed; retrying with the next commit',
        );
      }
    }
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.pendingRows = 0;
    const rows = batch.flatMap((b) => b.rows);
    let seqs: number[];
    try {
      seqs = this.store.insert(rows);
    } catch (err) {
      this.counters.commitFailures++;
      const full = isDiskFull(err);
      for (const r of rows) this.q[r.cls]!.dropped.disk_full += r.n;
      const e = new GatewayError(
        full ? 'EGW_STORE_FULL' : 'EGW_OUTBOX_COMMIT',
        `outbox commit failed (${rows.length} rows not accepted): ${(err as Error).message}`,
        { cause: err },
      );
      this.writeState.set('failing', { err, code: e.code }, 'error');
      for (const b of batch) b.reject(e);
      return;
    }
    this.writeState.set('ok', undefined, 'info');
    this.counters.commits++;
    this.counters.rowsCommitted += rows.length;
    for (let i = 0; i < rows.length; i++) this.admit(rows[i]!, seqs[i]!);
    for (const b of batch) b.resolve();
    this.enforceQuota();
    for (const fn of this.listeners) fn();
  }

  private admit(r: NewRow, seq: number): void {
    const q = this.q[r.cls]!;
    const bytes = r.payload.byteLength + Buffer.byteLength(r.topic) + ROW_OVERHEAD_BYTES;
    q.depth++;
    q.readings += r.n;
    q.bytes += bytes;
    if (q.complete && q.live < HEAD_MAX) {
      const payload = Buffer.isBuffer(r.payload)
        ? r.payload
        : Buffer.from(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength);
      this.push(q, {
        seq,
        cls: r.cls,
        key: '',
        topic: r.topic,
        dev: r.dev,
        kind: r.kind,
        n: r.n,
        payload,
        ctype: r.ctype,
        t: r.t,
        ttl: r.ttl,
        bytes,
        taken: false,
      });
    } else {
      q.complete = false;
    }
  }

  private push(q: ClassQueue, row: Row): void {
    row.key = row.kind === 0 ? `#${row.seq}` : `${row.topic}\u0000${row.dev}`;
    q.rows.push(row);
    q.live++;
    q.lastSeq = row.seq;
    if (row.kind === 0) return;
    let kq = q.byKey.get(row.key);
    if (!kq) q.byKey.set(row.key, (kq = new Fifo<Row>()));
    kq.push(row);
  }

  private fromStored(s: StoredRow): Row {
    return {
      seq: s.seq,
      cls: s.cls,
      key: '',
      topic: s.topic,
      dev: s.dev,
      kind: s.kind,
      n: s.n,
      payload: s.payload,
      ctype: s.ctype,
      t: s.t_ms,
      ttl: s.ttl_ms,
      bytes: s.payload.length + Buffer.byteLength(s.topic) + ROW_OVERHEAD_BYTES,
      taken: false,
    };
  }

  private ensureHead(q: ClassQueue, cls: number): void {
    while (!q.complete && q.live < LOW_WATER) {
      const got = this.store.load(cls, q.lastSeq, CHUNK);
      for (const s of got) {
        if (this.restored.has(s.seq)) q.lastSeq = s.seq;
        else this.push(q, this.fromStored(s));
      }
      if (got.length < CHUNK) q.complete = true;
    }
  }

  /** After a restart, messages claimed before the crash are re-formed from the same rows, with the same ids. */
  private restoreClaims(): void {
    const stale: string[] = [];
    for (const c of this.store.claims()) {
      const rows = this.store.rowsOfClaim(c).map((s) => this.fromStored(s));
      if (rows.length === 0) {
        stale.push(c.id);
        continue;
      }
      for (const r of rows) this.restored.add(r.seq);
      const msg = this.build(rows, c);
      if (msg) {
        msg.claimed = true;
        this.q[c.cls]!.ready.push(msg);
      }
    }
    if (stale.length) this.store.remove([], stale);
  }

  /** Adjusts the largest payload per message (the uplink cuts batches under a low rate cap). */
  setMaxBatchBytes(bytes: number): void {
    const b = Math.max(256, Math.min(this.opts.config.outbox.max_batch_bytes, Math.floor(bytes)));
    if (b !== this.maxBatchBytes) {
      this.maxBatchBytes = b;
      for (const q of this.q) q.formed = undefined;
    }
  }

  /**
   * The next message of class `cls` without taking it: the message, `{ waitMs }` when its batch
   * window is still open, or undefined when the class is empty.
   */
  peek(cls: number): UplinkMessage | { waitMs: number } | undefined {
    const q = this.q[cls]!;
    if (q.ready.length > 0) return q.ready.peek();
    const clock = this.clock();
    if (q.formed) {
      const h = q.formed.rows[0]!;
      if (!this.expiry(h.t, h.ttl, clock)) return q.formed.msg;
      q.formed = undefined; // expired while waiting: the loop below drops it
    }
    for (;;) {
      this.ensureHead(q, cls);
      while (q.rows.peek()?.taken) q.rows.shift();
      const h = q.rows.peek();
      if (!h) return undefined;
      const reason = this.expiry(h.t, h.ttl, clock);
      if (reason) {
        this.dropRow(q, h, reason);
        continue;
      }
      if (h.kind === 0) {
        q.formed = { msg: this.build([h], undefined)!, rows: [h] };
        return q.formed.msg;
      }
      const kq = q.byKey.get(h.key)!;
      const window = this.opts.config.classes[PRIORITIES[cls]!].batch_window_ms;
      const age = clock - h.t;
      if (age < window && kq.length < this.opts.config.outbox.max_batch_readings)
        return { waitMs: Math.ceil(window - age) };
      const group: Row[] = [];
      let readings = 0;
      let bytes = 0;
      for (let i = 0; i < kq.length; i++) {
        const r = kq.at(i)!;
        if (
          group.length > 0 &&
          (readings + r.n > this.opts.config.outbox.max_batch_readings || bytes + r.payload.length > this.maxBatchBytes)
        )
          break;
        group.push(r);
        readings += r.n;
        bytes += r.payload.length;
      }
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
        for (const r of group) this.dropRow(q, r, 'invalid');
        continue;
      }
      q.formed = { msg, rows: group };
      return msg;
    }
  }

  private build(rows: Row[], claim: ClaimRow | undefined): UplinkMessage | undefined {
    const first = rows[0]!;
    let payload: Uint8Array;
    if (first.kind === 0) {
      payload = first.payload;
    } else {
      try {
        const all: Reading[] = [];
        for (const r of rows) for (const x of this.opts.codec.decodeRow(r.payload)) all.push(x);
        payload = this.opts.codec.encodeUplink(all);
      } catch (err) {
        this.opts.log.error(
          { err, seq: first.seq, code: 'EGW_OUTBOX_COMMIT' },
          'stored readings cannot be decoded; dropped (counted as invalid)',
        );
        return undefined;
      }
    }
    let readings = 0;
    let bytes = 0;
    for (const r of rows) {
      readings += r.n;
      bytes += r.bytes;
    }
    return {
      id: claim?.id ?? `${this.store.uid}-${first.seq}`,
      cls: first.cls,
      topic: first.topic,
      payload,
      contentType: first.kind === 0 ? (first.ctype ?? 'application/json') : this.opts.codec.contentType,
      readings,
      bytes,
      t: first.t,
      seqs: rows.map((r) => r.seq),
      claim,
      claimed: false,
    };
  }

  /** Takes the message `peek` returned; it is now the uplink's until `ack` or `requeue`. */
  take(cls: number): UplinkMessage | undefined {
    const q = this.q[cls]!;
    if (q.ready.length > 0) return q.ready.shift();
    if (!q.formed && !(this.peek(cls) && q.formed)) return undefined;
    const { msg, rows } = q.formed!;
    q.formed = undefined;
    for (const r of rows) {
      r.taken = true;
      q.live--;
      if (r.kind === 1) {
        const kq = q.byKey.get(r.key)!;
        kq.shift();
        if (kq.length === 0) q.byKey.delete(r.key);
      }
    }
    return msg;
  }

  /** Records the grouping of reading messages before they are published (one transaction). */
  claim(msgs: readonly UplinkMessage[]): void {
    const claims = msgs.filter((m) => m.claim && !m.claimed).map((m) => m.claim!);
    this.store.claim(claims);
    for (const m of msgs) m.claimed = true;
  }

  /** The cloud acknowledged: delete the rows (with the next group commit) and count the delivery. */
  ack(msg: UplinkMessage, wireBytes: number): void {
    const q = this.q[msg.cls]!;
    for (const s of msg.seqs) this.delSeqs.push(s);
    if (msg.claim) this.delClaims.push(msg.claim.id);
    q.depth -= msg.seqs.length;
    q.readings -= msg.readings;
    q.bytes -= msg.bytes;
    q.sentMessages++;
    q.sentReadings += msg.readings;
    q.sentBytes += wireBytes;
    q.secondBytes += wireBytes;
    this.commitSoon();
  }

  /** Not acknowledged (connection lost): back to the front of its class, same id. Call newest first. */
  requeue(msg: UplinkMessage): void {
    this.q[msg.cls]!.ready.unshift(msg);
  }

  private expiry(t: number, ttl: number, clock: number): DropReason | undefined {
    if (ttl > 0 && clock - t > ttl) return 'ttl';
    if (clock - t > this.opts.config.outbox.max_age_s * 1000) return 'age';
    return undefined;
  }

  private dropRow(q: ClassQueue, r: Row, reason: DropReason): void {
    r.taken = true;
    q.live--;
    if (r.kind === 1) {
      const kq = q.byKey.get(r.key);
      if (kq && kq.peek() === r) kq.shift();
      if (kq && kq.length === 0) q.byKey.delete(r.key);
    }
    q.formed = undefined;
    this.dropCounted(q, [r.seq], r.n, r.bytes, reason, undefined);
  }

  private dropCounted(
    q: ClassQueue,
    seqs: readonly number[],
    readings: number,
    bytes: number,
    reason: DropReason,
    claimId: string | undefined,
  ): void {
    for (const s of seqs) this.delSeqs.push(s);
    if (claimId) this.delClaims.push(claimId);
    q.depth -= seqs.length;
    q.readings -= readings;
    q.bytes -= bytes;
    q.dropped[reason] += readings;
    this.commitSoon();
  }

  /** Drops expired messages at the head of each class (TTL, max age); run once a second. */
  sweep(): void {
    const clock = this.clock();
    this.q.forEach((q, cls) => {
      for (let m = q.ready.peek(); m; m = q.ready.peek()) {
        const reason = this.expiry(m.t, 0, clock) ?? this.ttlOf(m, clock);
        if (!reason) break;
        q.ready.shift();
        this.dropCounted(q, m.seqs, m.readings, m.bytes, reason, m.claim?.id);
      }
      this.peek(cls); // drops expired head rows on the way
      q.rateBps = q.rateBps * 0.9 + q.secondBytes * 0.1;
      q.secondBytes = 0;
    });
  }

  private ttlOf(m: UplinkMessage, clock: number): DropReason | undefined {
    const ttl = this.opts.config.classes[PRIORITIES[m.cls]!].ttl_s * 1000;
    return ttl > 0 && clock - m.t > ttl ? 'ttl' : undefined;
  }

  private usedBytes(): number {
    return this.q.reduce((a, q) => a + q.bytes, 0);
  }

  /** Over quota: evict the oldest LOW rows, then MEDIUM, then HIGH; CRITICAL only when nothing else is left. */
  private enforceQuota(): void {
    const max = this.opts.config.outbox.max_bytes;
    if (this.usedBytes() <= max) return;
    for (let cls = this.q.length - 1; cls >= 0 && this.usedBytes() > max; cls--) {
      const q = this.q[cls]!;
      while (this.usedBytes() > max) {
        const m = q.ready.shift();
        if (m) {
          this.dropCounted(q, m.seqs, m.readings, m.bytes, 'quota', m.claim?.id);
          continue;
        }
        this.ensureHead(q, cls);
        while (q.rows.peek()?.taken) q.rows.shift();
        const r = q.rows.peek();
        if (!r) break; // only in-flight messages left in this class
        this.dropRow(q, r, 'quota');
      }
    }
  }

  /** Per-class numbers for /mgmt/queues and metrics. */
  classStats(): ClassStats[] {
    const clock = this.clock();
    return this.q.map((q, cls) => {
      if (q.depth > 0) this.ensureHead(q, cls);
      let oldest = q.ready.peek()?.t;
      for (const r of q.rows) {
        if (r.taken) continue;
        oldest = oldest === undefined ? r.t : Math.min(oldest, r.t);
        break;
      }
      return {
        depth: q.depth,
        readings: q.readings,
        bytes: q.bytes,
        oldestAgeS: oldest === undefined || q.depth === 0 ? 0 : Math.max(0, (clock - oldest) / 1000),
        sentMessages: q.sentMessages,
        sentReadings: q.sentReadings,
        sentBytes: q.sentBytes,
        sendRateBps: Math.round(q.rateBps),
        dropped: { ...q.dropped },
      };
    });
  }

  get dropReasons(): readonly DropReason[] {
    return DROP_REASONS;
  }

  /** Commits what waits and stops the timers (nothing accepted is lost: it is on disk). */
  close(): void {
    this.flush();
    clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
  }
}
