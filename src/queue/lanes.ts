import type { Reading } from '../pipeline/reading.js';
import type { ReadingCodec } from './codec.js';
import { Fifo } from './fifo.js';
import { ROW_OVERHEAD_BYTES, type ClaimRow, type StoredRow } from './outbox-store.js';

/** A stored row held in memory at the head of its class. */
export interface Row {
  seq: number;
  cls: number;
  /** Batching key: topic + device for readings, `#seq` for a message (never merged). */
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
  /** Its own TTL in ms (that of its oldest row; 0 = never expires). */
  readonly ttl: number;
  readonly seqs: readonly number[];
  readonly claim: ClaimRow | undefined;
  claimed: boolean;
}

/** A row read back from SQLite, as the lanes hold it. */
export function rowFromStored(s: StoredRow): Row {
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

/**
 * One uplink message from rows of one batching key: a message row as it is, reading rows merged
 * into one codec batch. Its id is the claim's, else `{uid}-{seq of the first row}`; it carries
 * the first row's time and TTL (its own, whatever the class). Throws when the codec cannot read
 * a stored row.
 */
export function formMessage(
  rows: readonly Row[],
  claim: ClaimRow | undefined,
  uid: string,
  codec: ReadingCodec,
): UplinkMessage {
  const first = rows[0]!;
  let payload: Uint8Array;
  if (first.kind === 0) {
    payload = first.payload;
  } else {
    const all: Reading[] = [];
    for (const r of rows) for (const x of codec.decodeRow(r.payload)) all.push(x);
    payload = codec.encodeUplink(all);
  }
  let readings = 0;
  let bytes = 0;
  for (const r of rows) {
    readings += r.n;
    bytes += r.bytes;
  }
  return {
    id: claim?.id ?? `${uid}-${first.seq}`,
    cls: first.cls,
    topic: first.topic,
    payload,
    contentType: first.kind === 0 ? (first.ctype ?? 'application/json') : codec.contentType,
    readings,
    bytes,
    t: first.t,
    ttl: first.ttl,
    seqs: rows.map((r) => r.seq),
    claim,
    claimed: false,
  };
}

/**
 * How many rows from the head of one device's queue go into the next message: at least one, then
 * while the readings stay within `maxReadings` and the payload bytes within `maxBytes`. Pure.
 */
export function groupSize(
  rows: { readonly length: number; at(i: number): { n: number; payload: { length: number } } | undefined },
  maxReadings: number,
  maxBytes: number,
): number {
  let readings = 0;
  let bytes = 0;
  let k = 0;
  for (; k < rows.length; k++) {
    const r = rows.at(k)!;
    if (k > 0 && (readings + r.n > maxReadings || bytes + r.payload.length > maxBytes)) break;
    readings += r.n;
    bytes += r.payload.length;
  }
  return k;
}

/**
 * The in-memory lane of one class: the head of its rows in FIFO order (a window onto SQLite),
 * the same rows indexed by batching key, messages ready to go first (restored claims, re-queued
 * in-flight messages) and the message formed by the last `peek`. No I/O.
 */
export class ClassLane {
  readonly rows = new Fifo<Row>();
  readonly byKey = new Map<string, Fifo<Row>>();
  readonly ready = new Fifo<UplinkMessage>();
  /** Rows in `rows` not yet taken or dropped. */
  live = 0;
  /** Highest seq loaded or admitted: the next load starts after it. */
  lastSeq = 0;
  /** True when every stored row of the class is in `rows` (new rows are admitted directly). */
  complete = false;
  formed: { msg: UplinkMessage; rows: Row[] } | undefined;

  push(row: Row): void {
    row.key = row.kind === 0 ? `#${row.seq}` : `${row.topic}\u0000${row.dev}`;
    this.rows.push(row);
    this.live++;
    this.lastSeq = row.seq;
    if (row.kind === 0) return;
    let kq = this.byKey.get(row.key);
    if (!kq) this.byKey.set(row.key, (kq = new Fifo<Row>()));
    kq.push(row);
  }

  /** The oldest row not yet taken or dropped. */
  head(): Row | undefined {
    while (this.rows.peek()?.taken) this.rows.shift();
    return this.rows.peek();
  }

  /** Marks rows of a formed message (the head rows of their key) as taken. */
  take(rows: readonly Row[]): void {
    for (const r of rows) {
      r.taken = true;
      this.live--;
      if (r.kind === 1) {
        const kq = this.byKey.get(r.key)!;
        kq.shift();
        if (kq.length === 0) this.byKey.delete(r.key);
      }
    }
  }

  /** Removes the head row `r` (expired or evicted); the formed message no longer holds. */
  drop(r: Row): void {
    r.taken = true;
    this.live--;
    if (r.kind === 1) {
      const kq = this.byKey.get(r.key);
      if (kq && kq.peek() === r) kq.shift();
      if (kq && kq.length === 0) this.byKey.delete(r.key);
    }
    this.formed = undefined;
  }

  /** Gateway-clock time of the oldest waiting row or ready message. */
  oldest(): number | undefined {
    const m = this.ready.peek()?.t;
    const r = this.head()?.t;
    return m === undefined ? r : r === undefined ? m : Math.min(m, r);
  }
}
