import {
  closeSync,
  fdatasyncSync,
  fstatSync,
  ftruncateSync,
  openSync,
  readFileSync,
  readSync,
  writeSync,
} from 'node:fs';
import { crc32 } from 'node:zlib';
import type { ClaimRow, NewRow, OutboxStore } from './outbox-store.js';

/**
 * The outbox's hot path on disk: an append-only redo log of group commits (`outbox.journal`,
 * next to gateway.db), spilled into the SQLite outbox now and then.
 *
 * Why: a SQLite commit appends every B-tree page it touched to the WAL whole (1 KiB + 24 B each),
 * and a group commit of 40 readings touched ~9 pages (docs/queues.md §Disk writes): ~240 B per
 * reading for ~10 B of data. Here a group commit appends one record holding exactly what it
 * changes — new rows (topics and device ids written once per journal generation), claims, deletes
 * — and readings the cloud acknowledges before the next spill never reach SQLite at all.
 *
 * Spill: when the journal holds `spillBytes` or SPILL_OPS statements' worth of changes, when the
 * outbox must read rows back from SQLite (a class holds more than it keeps in memory), and at
 * close, the net effect of the records
 * (rows still undelivered, open claims, deletes of rows already in SQLite) is applied to SQLite
 * in **one** transaction, made durable (synchronous=FULL for that transaction: one fsync), and
 * only then is the journal truncated. A crash between the two only replays the records again:
 * every step is idempotent (rows and claims are inserted by key, OR IGNORE).
 *
 * Record: u32 LE body length, u32 LE CRC-32 of the body, body. A torn or corrupt record ends the
 * log (a record is appended with one write; its callers are acknowledged only after it returned,
 * so a torn record was never acknowledged). Body: u8 type; 1 = header (u8 version, f64 next seq),
 * 2 = commit (see `encodeCommit`). Integers are unsigned LEB128 varints (values < 2^53); claim
 * ids `{db uid}-{seq}` are written as the seq.
 */

const TYPE_HEADER = 1;
const TYPE_COMMIT = 2;
const VERSION = 1;

export interface CommitWork {
  deletes: readonly number[];
  claimDeletes: readonly string[];
  claims: readonly ClaimRow[];
  inserts: readonly NewRow[];
}

/** What the group-commit writer commits into: SQLite directly (OutboxStore) or this journal. */
export interface CommitSink {
  commit(w: CommitWork): number[];
}

export interface JournalOptions {
  path: string;
  store: OutboxStore;
  /** fdatasync every append (durability `full`: a commit survives power loss). */
  fsync: boolean;
  /** Journal size that triggers a spill into SQLite (bytes). */
  spillBytes?: number;
}

export const DEFAULT_SPILL_BYTES = 4 * 1024 * 1024;
/**
 * A spill runs one SQLite statement per pending row, delete and claim, on the event loop: at most
 * this many (~30 ms here) so it never holds PUBACKs long — it matters while the cloud is down
 * (every row waits) and while a backlog drains (every ack deletes a row already in SQLite).
 */
export const SPILL_OPS = 5000;

class Writer {
  private buf = Buffer.allocUnsafe(4096);
  len = 0;
  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const b = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(b, 0, 0, this.len);
    this.buf = b;
  }
  u8(v: number): void {
    this.room(1);
    this.buf[this.len++] = v;
  }
  f64(v: number): void {
    this.room(8);
    this.buf.writeDoubleLE(v, this.len);
    this.len += 8;
  }
  uv(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`journal: not a varint: ${v}`);
    this.room(8);
    while (v >= 0x80) {
      this.buf[this.len++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.len++] = v;
  }
  bytes(b: Uint8Array): void {
    this.uv(b.byteLength);
    this.room(b.byteLength);
    this.buf.set(b, this.len);
    this.len += b.byteLength;
  }
  str(s: string): void {
    this.bytes(Buffer.from(s, 'utf8'));
  }
  raw(b: Uint8Array): void {
    this.room(b.byteLength);
    this.buf.set(b, this.len);
    this.len += b.byteLength;
  }
  body(): Buffer {
    return this.buf.subarray(0, this.len);
  }
  /** The record: length, CRC, body. */
  record(): Buffer {
    const out = Buffer.allocUnsafe(8 + this.len);
    out.writeUInt32LE(this.len, 0);
    out.writeUInt32LE(crc32(this.buf.subarray(0, this.len)), 4);
    this.buf.copy(out, 8, 0, this.len);
    return out;
  }
}

class Reader {
  pos = 0;
  constructor(private readonly b: Buffer) {}
  private need(n: number): void {
    if (this.pos + n > this.b.length) throw new RangeError('journal: record truncated');
  }
  u8(): number {
    this.need(1);
    return this.b[this.pos++]!;
  }
  f64(): number {
    this.need(8);
    const v = this.b.readDoubleLE(this.pos);
    this.pos += 8;
    return v;
  }
  uv(): number {
    let v = 0;
    let mul = 1;
    for (;;) {
      const x = this.u8();
      v += (x & 0x7f) * mul;
      if (x < 0x80) break;
      mul *= 0x80;
      if (mul > 2 ** 53) throw new RangeError('journal: varint too long');
    }
    return v;
  }
  bytes(): Buffer {
    const n = this.uv();
    this.need(n);
    const v = Buffer.from(this.b.subarray(this.pos, this.pos + n));
    this.pos += n;
    return v;
  }
  str(): string {
    return this.bytes().toString('utf8');
  }
  get done(): boolean {
    return this.pos === this.b.length;
  }
}

/**
 * The net effect of the records since the last spill: rows not yet deleted, deletes of rows that
 * live in SQLite, open claims, deletes of claims that live in SQLite.
 */
class Pending {
  rows = new Map<number, NewRow>();
  deletes = new Set<number>();
  claims = new Map<string, ClaimRow>();
  claimDeletes = new Set<string>();
  maxSeq = 0;

  add(w: CommitWork, seqs: readonly number[]): void {
    // The order of OutboxStore.commit: deletes, claim deletes, claims, inserts.
    for (const s of w.deletes) if (!this.rows.delete(s)) this.deletes.add(s);
    for (const id of w.claimDeletes) if (!this.claims.delete(id)) this.claimDeletes.add(id);
    for (const c of w.claims) if (!this.claims.has(c.id)) this.claims.set(c.id, c);
    w.inserts.forEach((r, i) => {
      this.rows.set(seqs[i]!, r);
      if (seqs[i]! > this.maxSeq) this.maxSeq = seqs[i]!;
    });
  }

  /** SQLite statements a spill would run now. */
  get ops(): number {
    return this.rows.size + this.deletes.size + this.claims.size + this.claimDeletes.size;
  }

  get empty(): boolean {
    return this.rows.size === 0 && this.deletes.size === 0 && this.claims.size === 0 && this.claimDeletes.size === 0;
  }
}

export class OutboxJournal implements CommitSink {
  private fd: number;
  private size = 0;
  private nextSeq: number;
  private pending = new Pending();
  /** Strings of this generation (topics, device ids, content types) → their index. */
  private strings = new Map<string, number>();
  private readonly spillBytes: number;
  private spillRetryAt = 0;
  readonly counters = { appends: 0, appendedBytes: 0, spills: 0, spillFailures: 0, replayedRecords: 0 };

  /** Opens (creating) the journal, replays what it holds into SQLite and starts a new generation. */
  constructor(private readonly opts: JournalOptions) {
    this.spillBytes = opts.spillBytes ?? DEFAULT_SPILL_BYTES;
    this.fd = openSync(opts.path, 'a+');
    closeSync(this.fd);
    this.fd = openSync(opts.path, 'r+');
    const replayedNext = this.replay();
    this.nextSeq = Math.max(opts.store.nextSeq(), replayedNext);
    // Everything replayed is in SQLite now (durably): start a new, empty generation.
    this.reset();
  }

  /** Rows inserted since the last spill (they are not in SQLite yet). */
  get pendingRows(): number {
    return this.pending.rows.size;
  }

  get bytes(): number {
    return this.size;
  }

  /**
   * The group commit: one appended record (plus a SQLite transaction for deletes of rows already
   * there). Returns the seq of each inserted row; throws, no insert or claim committed, on failure.
   */
  commit(all: CommitWork): number[] {
    // Deletes of rows and claims that live in SQLite (spilled, or from before a restart: a backlog
    // draining) are done there at once, as before the journal: a delete is an acknowledgement
    // that may be lost (a crash only re-sends under the same id), so it needs no ordering with the
    // record, and leaving them to a spill would mean a spill (and its fsync) every few thousand acks.
    const sqlDeletes = all.deletes.filter((s) => !this.pending.rows.has(s));
    const sqlClaimDeletes = all.claimDeletes.filter((c) => !this.pending.claims.has(c));
    if (sqlDeletes.length > 0 || sqlClaimDeletes.length > 0) this.opts.store.remove(sqlDeletes, sqlClaimDeletes);
    const w: CommitWork =
      sqlDeletes.length === 0 && sqlClaimDeletes.length === 0
        ? all
        : {
            inserts: all.inserts,
            claims: all.claims,
            deletes: all.deletes.filter((s) => this.pending.rows.has(s)),
            claimDeletes: all.claimDeletes.filter((c) => this.pending.claims.has(c)),
          };
    if (this.size === 0) this.header(); // its write failed at the last spill
    const seqs = w.inserts.map((_, i) => this.nextSeq + i);
    // Strings first used by this record get the next ids (the reader numbers them in the same order).
    const fresh = new Map<string, number>();
    const strId = (s: string): number => {
      let n = this.strings.get(s) ?? fresh.get(s);
      if (n === undefined) {
        n = this.strings.size + fresh.size;
        fresh.set(s, n);
      }
      return n;
    };
    // String ids are assigned while encoding, and the new strings precede their use: encode aside first.
    const rest = new Writer();
    encodeCommit(rest, w, this.nextSeq, this.opts.store.uid, strId);
    const body = new Writer();
    body.u8(TYPE_COMMIT);
    body.uv(fresh.size);
    for (const s of fresh.keys()) body.str(s);
    body.raw(rest.body());
    this.append(body.record());
    for (const [s, n] of fresh) this.strings.set(s, n);
    this.nextSeq += w.inserts.length;
    this.pending.add(w, seqs);
    if ((this.size >= this.spillBytes || this.pending.ops >= SPILL_OPS) && this.size >= this.spillRetryAt)
      this.trySpill();
    return seqs;
  }

  /** Applies what the journal holds to SQLite (durably) and truncates it. Throws when SQLite refuses. */
  spill(): void {
    if (!this.pending.empty) {
      this.opts.store.apply(
        {
          inserts: [...this.pending.rows.values()],
          deletes: [...this.pending.deletes],
          claims: [...this.pending.claims.values()],
          claimDeletes: [...this.pending.claimDeletes],
        },
        [...this.pending.rows.keys()],
        this.nextSeq,
      );
    }
    this.counters.spills++;
    this.reset();
  }

  /** Spills; a failure (disk full) is counted and retried after the journal grew by another quarter. */
  trySpill(): boolean {
    try {
      this.spill();
      this.spillRetryAt = 0;
      return true;
    } catch {
      this.counters.spillFailures++;
      this.spillRetryAt = this.size + this.spillBytes / 4;
      return false;
    }
  }

  /** Spills what is left and closes the file (after a clean stop, SQLite holds everything). */
  close(): void {
    if (this.fd < 0) return;
    this.trySpill();
    closeSync(this.fd);
    this.fd = -1;
  }

  private append(rec: Buffer): void {
    try {
      // Written at our own offset: after a failed (partial) write the next record overwrites it.
      let off = 0;
      while (off < rec.length) off += writeSync(this.fd, rec, off, rec.length - off, this.size + off);
      if (this.opts.fsync) fdatasyncSync(this.fd);
    } catch (err) {
      try {
        ftruncateSync(this.fd, this.size);
      } catch {
        // the torn bytes stay; the CRC ends the log there, and the next record overwrites them
      }
      throw err;
    }
    this.size += rec.length;
    this.counters.appends++;
    this.counters.appendedBytes += rec.length;
  }

  /** A new generation: empty file, header with the next seq, empty string table. */
  private reset(): void {
    ftruncateSync(this.fd, 0);
    this.size = 0;
    this.strings = new Map();
    this.pending = new Pending();
    try {
      this.header();
    } catch {
      // disk full: the next commit writes the header first (and is refused while that fails)
    }
  }

  /**
   * The header of a generation. Should writing it fail (disk full), the file stays empty and the
   * next commit writes it first: a commit record is never the first record of the file (a replay
   * ignores a file that does not start with a header).
   */
  private header(): void {
    const h = new Writer();
    h.u8(TYPE_HEADER);
    h.u8(VERSION);
    h.f64(this.nextSeq ?? 0);
    this.append(h.record());
    fdatasyncSync(this.fd);
  }

  /** Reads every intact record, applies their net effect to SQLite; returns the next seq they imply. */
  private replay(): number {
    const total = fstatSync(this.fd).size;
    const buf = Buffer.allocUnsafe(total);
    let got = 0;
    while (got < total) {
      const n = readSync(this.fd, buf, got, total - got, got);
      if (n === 0) break;
      got += n;
    }
    const { next, records } = parseJournal(buf.subarray(0, got), this.opts.store.uid, this.pending);
    this.counters.replayedRecords += records;
    this.nextSeq = Math.max(next, this.opts.store.nextSeq());
    if (!this.pending.empty) this.spill(); // throws: the gateway does not start on a store it cannot write
    return next;
  }
}

/** Applies every intact record of a journal to `into`; returns the next seq they imply and how many there were. */
function parseJournal(buf: Buffer, uid: string, into: Pending): { next: number; records: number } {
  let pos = 0;
  let next = 0;
  let records = 0;
  const strings: string[] = [];
  while (pos + 8 <= buf.length) {
    const len = buf.readUInt32LE(pos);
    // A corrupt length cannot allocate anything: the body is a view of what was read.
    if (len === 0 || pos + 8 + len > buf.length) break;
    const body = buf.subarray(pos + 8, pos + 8 + len);
    if (crc32(body) !== buf.readUInt32LE(pos + 4)) break;
    const r = new Reader(body);
    try {
      const type = r.u8();
      if (records === 0) {
        if (type !== TYPE_HEADER || r.u8() !== VERSION) break;
        next = Math.max(next, r.f64());
      } else if (type === TYPE_COMMIT) {
        const n = r.uv();
        for (let i = 0; i < n; i++) strings.push(r.str());
        const { w, seqs } = decodeCommit(r, strings, uid);
        into.add(w, seqs);
        if (seqs.length > 0) next = Math.max(next, seqs[seqs.length - 1]! + 1);
      } else {
        break;
      }
    } catch {
      break;
    }
    records++;
    pos += 8 + len;
  }
  return { next, records };
}

/**
 * What a journal file holds that is not in SQLite yet (read-only; for tests and inspection): rows
 * with their seqs, open claims, deletes of SQLite rows. `uid` is the database's (outbox_meta).
 */
export function readJournal(
  path: string,
  uid: string,
): { rows: (NewRow & { seq: number })[]; claims: ClaimRow[]; deletes: number[]; nextSeq: number } {
  const p = new Pending();
  const { next } = parseJournal(readFileSync(path), uid, p);
  return {
    rows: [...p.rows].map(([seq, r]) => ({ ...r, seq })),
    claims: [...p.claims.values()],
    deletes: [...p.deletes],
    nextSeq: next,
  };
}

/**
 * A number as a varint when it is a non-negative safe integer (tag 0), else as f64 (tag 1): the
 * gateway clock is fractional ms, TTLs are whole ms unless a producer gave fractions of seconds.
 */
function num(w: Writer, v: number): void {
  if (Number.isSafeInteger(v) && v >= 0) {
    w.uv(v * 2);
  } else {
    w.uv(1);
    w.f64(v);
  }
}

function readNum(r: Reader): number {
  const tag = r.uv();
  return tag === 1 ? r.f64() : tag / 2;
}

/** A claim id as the seq it is derived from (`{uid}-{first seq}`, +1; 0 = the id as a string follows). */
function claimId(w: Writer, cid: string, uid: string): void {
  const seq = cid.startsWith(`${uid}-`) ? Number(cid.slice(uid.length + 1)) : NaN;
  if (Number.isSafeInteger(seq) && seq >= 0 && cid === `${uid}-${seq}`) {
    w.uv(seq + 1);
  } else {
    w.uv(0);
    w.str(cid);
  }
}

function readClaimId(r: Reader, uid: string): string {
  const v = r.uv();
  return v === 0 ? r.str() : `${uid}-${v - 1}`;
}

function encodeCommit(w: Writer, c: CommitWork, seqBase: number, uid: string, strId: (s: string) => number): void {
  w.uv(c.inserts.length);
  if (c.inserts.length > 0) w.uv(seqBase);
  for (const r of c.inserts) {
    w.u8(r.cls);
    w.u8(r.kind);
    w.uv(r.n);
    w.uv(strId(r.topic));
    w.uv(strId(r.dev));
    w.uv(r.ctype === null ? 0 : strId(r.ctype) + 1);
    num(w, Math.round(r.t)); // whole ms, as the column t_ms (the spill rounds too)
    num(w, r.ttl);
    w.bytes(r.payload);
  }
  const dels = [...c.deletes].sort((x, y) => x - y);
  w.uv(dels.length);
  let prev = 0;
  for (const s of dels) {
    w.uv(s - prev);
    prev = s;
  }
  w.uv(c.claimDeletes.length);
  for (const idv of c.claimDeletes) claimId(w, idv, uid);
  w.uv(c.claims.length);
  for (const cl of c.claims) {
    claimId(w, cl.id, uid);
    w.u8(cl.cls);
    w.uv(strId(cl.topic));
    w.uv(strId(cl.dev));
    w.uv(cl.first_seq);
    w.uv(cl.last_seq - cl.first_seq);
  }
}

function decodeCommit(r: Reader, strings: readonly string[], uid: string): { w: CommitWork; seqs: number[] } {
  const str = (i: number): string => {
    const s = strings[i];
    if (s === undefined) throw new RangeError('journal: unknown string');
    return s;
  };
  const n = r.uv();
  const seqBase = n > 0 ? r.uv() : 0;
  const inserts: NewRow[] = [];
  const seqs: number[] = [];
  for (let i = 0; i < n; i++) {
    const cls = r.u8();
    const kind = r.u8();
    const cnt = r.uv();
    const topic = str(r.uv());
    const dev = str(r.uv());
    const ct = r.uv();
    const t = readNum(r);
    const ttl = readNum(r);
    const payload = r.bytes();
    inserts.push({ cls, kind, n: cnt, topic, dev, ctype: ct === 0 ? null : str(ct - 1), t, ttl, payload });
    seqs.push(seqBase + i);
  }
  const deletes: number[] = [];
  let prev = 0;
  for (let i = 0, m = r.uv(); i < m; i++) deletes.push((prev += r.uv()));
  const claimDeletes: string[] = [];
  for (let i = 0, m = r.uv(); i < m; i++) claimDeletes.push(readClaimId(r, uid));
  const claims: ClaimRow[] = [];
  for (let i = 0, m = r.uv(); i < m; i++) {
    const cid = readClaimId(r, uid);
    const cls = r.u8();
    const topic = str(r.uv());
    const dev = str(r.uv());
    const first = r.uv();
    claims.push({ id: cid, cls, topic, dev, first_seq: first, last_seq: first + r.uv() });
  }
  if (!r.done) throw new RangeError('journal: trailing bytes in a commit record');
  return { w: { inserts, deletes, claimDeletes, claims }, seqs };
}
