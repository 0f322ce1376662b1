import { Buffer } from 'node:buffer';
import { deflateRawSync } from 'node:zlib';
import type { Reading, ReadingValue } from '../pipeline/reading.js';
import { CodecError } from './errors.js';
import * as F from './format.js';
import { writeUvarintAt, type FastWriter, type FieldState } from './fast.js';
import { DEFAULT_REGISTRY, MAX_FIELD_INT, type CompiledSchema, type SchemaRegistry } from './schema.js';

export interface EncodeOptions {
  /** Schemas known to both ends; default: the built-in ones. Build once (createRegistry) and reuse. */
  registry?: SchemaRegistry;
  /** Force a schema id; default: the registered schema that holds most of the first reading's values. */
  schemaId?: number;
  /** 'auto' (default): raw deflate when it makes the message smaller; 'never': don't try. */
  compress?: 'auto' | 'never';
}

/** Bodies shorter than this are not worth a deflate attempt (deflate's own overhead is ~5–10 B). */
const DEFLATE_MIN_BODY = 64;

// Encoder state (synchronous, non-reentrant). Messages are written straight into a pooled
// buffer and returned as views of it, as Buffer.allocUnsafe does with its 8 KiB pool: no copy, one
// small view object per message. `start` is where the current message begins in `buf`.
const POOL_SIZE = 8192;
let buf: Buffer = Buffer.allocUnsafeSlow(POOL_SIZE);
let start = 0;
let pos = 0;
const kind = new Uint8Array(64); // 0 in field, 1 null, 2 absent, 3 carried by name
const ival = new Float64Array(64); // round(v × 10^scale) − base
const prev = new Float64Array(64);
const seen = new Uint8Array(64);
const fieldState: FieldState = { prev, seen };
/** The schema chosen last time, and the registry it was chosen from (tried first next time). */
let lastSchema: CompiledSchema | undefined;
let lastRegistry: SchemaRegistry | undefined;
/** Device ids repeat message after message: the last one's UTF-8 bytes are kept to copy. */
let lastId = '';
const lastIdBytes = new Uint8Array(256);
let lastIdLen = 0;
/** Set when the message being written holds a string value: it is then format version 2. */
let hasString = false;

/**
 * In a `u`-flag regex a surrogate pair is one code point, so this matches only lone surrogates:
 * UTF-8 cannot encode them (RFC 3629 §3), and Buffer.from would silently write U+FFFD instead.
 */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

function ensure(n: number): void {
  if (pos + n <= buf.length) return;
  // Move the message begun so far to a fresh pool (earlier messages keep the old one alive).
  const len = pos - start;
  let size = POOL_SIZE;
  while (size < 2 * (len + n)) size *= 2;
  const next = Buffer.allocUnsafeSlow(size);
  buf.copy(next, 0, start, pos);
  buf = next;
  start = 0;
  pos = len;
}

function writeU(v: number): void {
  // Unsigned LEB128; v is a safe integer ≥ 0 (checked by the callers).
  if (v < 0x80) buf[pos++] = v;
  else if (v < 0x4000) {
    buf[pos++] = (v & 0x7f) | 0x80;
    buf[pos++] = v >>> 7;
  } else pos = writeUvarintAt(buf, pos, v);
}

function writeS(v: number): void {
  // Zigzag: 0, -1, 1, -2 … → 0, 1, 2, 3 … (arithmetic, not bit ops: values exceed 32 bits).
  writeU(v >= 0 ? v * 2 : -v * 2 - 1);
}

/** Writes a length-prefixed (u8) UTF-8 string; `min` is the shortest length allowed. */
function writeStr(s: string, what: string, min: number): void {
  const len = s.length;
  ensure(len * 3 + 1);
  const at = pos++;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) {
      pos = at + 1;
      if (LONE_SURROGATE.test(s)) {
        throw new CodecError('EGW_CODEC_ENCODE', `${what} holds a lone UTF-16 surrogate (not encodable as UTF-8)`);
      }
      const bytes = Buffer.from(s, 'utf8');
      if (bytes.length > 255) throw new CodecError('EGW_CODEC_ENCODE', `${what} is longer than 255 UTF-8 bytes`);
      buf.set(bytes, pos);
      pos += bytes.length;
      buf[at] = bytes.length;
      return;
    }
    buf[pos++] = c;
  }
  if (len > 255) throw new CodecError('EGW_CODEC_ENCODE', `${what} is longer than 255 UTF-8 bytes`);
  if (len < min) throw new CodecError('EGW_CODEC_ENCODE', `${what} is empty`);
  buf[at] = len;
}

function writeTagged(v: ReadingValue, name: string): void {
  ensure(10);
  if (typeof v === 'string') {
    buf[pos++] = F.T_STRING;
    writeStr(v, `string value ${name}`, 0); // ≤ MAX_STRING_BYTES (255): one length byte
    hasString = true;
  } else if (v === null) buf[pos++] = F.T_NULL;
  else if (v === true) buf[pos++] = F.T_TRUE;
  else if (v === false) buf[pos++] = F.T_FALSE;
  else if (typeof v === 'number') {
    // The smallest decimal scale that reproduces v exactly; otherwise the IEEE 754 bits.
    if (!(v === 0 && 1 / v < 0)) {
      for (let s = 0, p = 1; s <= 9; s++, p *= 10) {
        const k = Math.round(v * p);
        if (k / p === v && Math.abs(k) <= MAX_FIELD_INT) {
          buf[pos++] = F.T_SCALED + s;
          writeS(k);
          return;
        }
      }
    }
    buf[pos++] = F.T_FLOAT64;
    new DataView(buf.buffer, buf.byteOffset + pos, 8).setFloat64(0, v, true);
    pos += 8;
  } else throw new CodecError('EGW_CODEC_ENCODE', `value ${name} is not a number, a boolean, a string or null`);
}

/** Keys whose value is not undefined (an undefined value is an absent one, as in JSON). */
function keyCount(o: Record<string, unknown>): number {
  let n = 0;
  for (const k in o) if (o[k] !== undefined) n++;
  return n;
}

/**
 * Chooses the schema for a message (docs/codec.md §Choosing a schema): most of the reading's values,
 * then fewest fields, then lowest id.
 */
function pickSchema(reg: SchemaRegistry, r: Reading): CompiledSchema {
  const vals = r.values;
  let best: CompiledSchema | undefined;
  let bestHits = -1;
  for (const s of reg.all) {
    let hits = 0;
    for (let i = 0; i < s.n; i++) if (vals[s.names[i]!] !== undefined) hits++;
    if (hits > bestHits || (hits === bestHits && best !== undefined && s.n < best.n)) {
      best = s;
      bestHits = hits;
    }
  }
  if (best === undefined) throw new CodecError('EGW_CODEC_SCHEMA', 'registry has no schemas');
  lastSchema = best;
  lastRegistry = reg;
  return best;
}

function header(r: Reading): number {
  const q = r.quality === 'good' ? 0 : r.quality === 'uncertain' ? 1 : r.quality === 'bad' ? 2 : -1;
  if (q < 0) throw new CodecError('EGW_CODEC_ENCODE', `quality ${String(r.quality)} is not good|uncertain|bad`);
  const ts = r.ts;
  if (!Number.isInteger(ts) || ts < 0 || ts > F.MAX_TS) {
    throw new CodecError('EGW_CODEC_ENCODE', `timestamp ${ts} is not an integer ms in [0, 2^50)`);
  }
  return q;
}

/**
 * Common case through the schema's generated writer: every field present in-field, nothing else.
 * Returns false, having written nothing, when the reading is not that case.
 */
function tryFast(s: CompiledSchema, r: Reading, first: boolean, prevTs: number): boolean {
  if (s.writeFast === undefined || r.units !== undefined) return false;
  const q = header(r);
  ensure(1 + 8 + s.numCount * 10 + 1);
  const at = pos;
  buf[pos++] = q;
  if (first) writeU(r.ts);
  else writeS(r.ts - prevTs);
  const end = s.writeFast(r.values, buf, pos, fieldState);
  if (end < 0) {
    pos = at;
    return false;
  }
  pos = end;
  return true;
}

function writeReading(s: CompiledSchema, r: Reading, first: boolean, prevTs: number): void {
  if (tryFast(s, r, first, prevTs)) return;
  const vals = r.values;
  const n = s.n;
  const names = s.names;
  const isBool = s.isBool;
  let matched = 0;
  let states = false;
  let byName = false;
  for (let i = 0; i < n; i++) {
    const v = vals[names[i]!];
    if (v === undefined) {
      kind[i] = 2;
      states = true;
      continue;
    }
    matched++;
    if (v === null) {
      kind[i] = 1;
      states = true;
    } else if (isBool[i] === 1 ? typeof v === 'boolean' : typeof v === 'number' && fits(s, i, v)) {
      kind[i] = 0;
    } else {
      kind[i] = 3;
      states = true;
      byName = true;
    }
  }
  // Values the schema does not name travel by name, so nothing is silently lost.
  const unknown = keyCount(vals) > matched;
  const units = r.units;
  // An empty units map says nothing: it is not written, and decoders never return one.
  const hasUnits = units !== undefined && Object.keys(units).length > 0;
  const q = header(r);
  const ts = r.ts;
  ensure(1 + s.stateBytes + 8 + n * 8 + 8);
  buf[pos++] = q | (states ? F.R_STATES : 0) | (byName || unknown ? F.R_EXTRAS : 0) | (hasUnits ? F.R_UNITS : 0);
  if (states) {
    for (let b = 0; b < s.stateBytes; b++) {
      let byte = 0;
      for (let j = 0; j < 4; j++) {
        const i = b * 4 + j;
        if (i >= n) break;
        const k = kind[i]!;
        byte |= (k === 3 ? F.S_ABSENT : k) << (j * 2);
      }
      buf[pos++] = byte;
    }
  }
  if (first) writeU(ts);
  else writeS(ts - prevTs);
  let bits = 0;
  let nbits = 0;
  for (let i = 0; i < n; i++) {
    if (kind[i] !== 0) continue;
    if (isBool[i] === 1) {
      // Collected here for the common ≤ 8 bools case; writeBools repacks when there are more.
      if (vals[names[i]!] === true) bits |= 1 << nbits;
      nbits++;
      continue;
    }
    const x = ival[i]!;
    if (seen[i] === 1) writeS(x - prev[i]!);
    else {
      writeS(x);
      seen[i] = 1;
    }
    prev[i] = x;
  }
  if (s.boolCount > 0) writeBools(s, vals, bits, nbits);
  if (byName || unknown) writeExtras(s, vals, byName);
  if (hasUnits) {
    const keys = Object.keys(units);
    ensure(10);
    writeU(keys.length);
    for (const k of keys) {
      const u: unknown = units[k];
      // Not String(u): a unit that is not a string would arrive as another text than was sent.
      if (typeof u !== 'string') throw new CodecError('EGW_CODEC_ENCODE', `unit of ${k} is not a string`);
      writeStr(k, 'unit name', 1);
      writeStr(u, `unit of ${k}`, 0);
    }
  }
}

function writeBools(s: CompiledSchema, vals: Reading['values'], bits: number, nbits: number): void {
  if (s.boolCount <= 8) {
    if (nbits > 0) buf[pos++] = bits;
    return;
  }
  // More than 8 bools: pack again, LSB first, ceil(present/8) bytes.
  let byte = 0;
  let j = 0;
  for (let i = 0; i < s.n; i++) {
    if (kind[i] !== 0 || s.isBool[i] !== 1) continue;
    if (vals[s.names[i]!] === true) byte |= 1 << j;
    if (++j === 8) {
      buf[pos++] = byte;
      byte = 0;
      j = 0;
    }
  }
  if (j > 0) buf[pos++] = byte;
}

function writeExtras(s: CompiledSchema, vals: Reading['values'], byName: boolean): void {
  const names: string[] = [];
  if (byName) for (let i = 0; i < s.n; i++) if (kind[i] === 3) names.push(s.names[i]!);
  for (const k in vals) {
    if (vals[k] !== undefined && !s.index.has(k)) names.push(k);
  }
  ensure(10);
  writeU(names.length);
  for (const k of names) {
    writeStr(k, 'value name', 1);
    writeTagged(vals[k]!, k);
  }
}

function fits(s: CompiledSchema, i: number, v: number): boolean {
  // Exact round trip: the decoder computes (m + base) / 10^scale, a correctly rounded division,
  // so k / 10^scale === v guarantees the same double comes back (3.31 V, 1013.25 hPa).
  const p = s.pow[i]!;
  const k = Math.round(v * p);
  if (k / p !== v || (v === 0 && 1 / v < 0)) return false;
  const m = k - s.base[i]!;
  if (!(m <= MAX_FIELD_INT && m >= -MAX_FIELD_INT)) return false;
  ival[i] = m;
  return true;
}

function finish(flags: number, opts: EncodeOptions | undefined): Buffer {
  const bodyLen = pos - start - 2;
  // The lowest version that carries the message (docs/codec.md §Versioning).
  const version = hasString ? F.VERSION_2 : F.VERSION_1;
  buf[start] = F.MAGIC;
  if (opts?.compress !== 'never' && bodyLen >= DEFLATE_MIN_BODY) {
    const z = deflateRawSync(buf.subarray(start + 2, pos));
    let lenBytes = 1;
    for (let v = bodyLen; v >= 0x80; v = Math.floor(v / 128)) lenBytes++;
    if (2 + lenBytes + z.length < pos - start) {
      const out = Buffer.allocUnsafe(2 + lenBytes + z.length);
      out[0] = F.MAGIC;
      out[1] = (version << 4) | flags | F.F_DEFLATE;
      pos = start + 2;
      writeU(bodyLen);
      buf.copy(out, 2, start + 2, pos);
      out.set(z, 2 + lenBytes);
      return out; // the pool space of the uncompressed body is reused by the next message
    }
  }
  buf[start + 1] = (version << 4) | flags;
  const out = Buffer.from(buf.buffer, buf.byteOffset + start, pos - start); // cheaper than subarray
  start = (pos + 7) & ~7; // keep views 8-byte aligned, like Node's pool
  return out;
}

/** Starts a message: pool space, then the device id (docs/codec.md §Body). Returns the registry. */
function begin(r: Reading, opts: EncodeOptions | undefined): SchemaRegistry {
  const id = r.deviceId;
  if (typeof id !== 'string') throw new CodecError('EGW_CODEC_ENCODE', 'deviceId is not a string');
  hasString = false;
  if (buf.length - start < 1024) {
    buf = Buffer.allocUnsafeSlow(POOL_SIZE);
    start = 0;
  }
  pos = start + 2;
  if (id === lastId) {
    const n = lastIdLen;
    const b = buf;
    let p = pos;
    b[p++] = n;
    for (let i = 0; i < n; i++) b[p++] = lastIdBytes[i]!;
    pos = p;
  } else {
    writeStr(id, 'deviceId', 0);
    lastIdLen = pos - start - 3; // magic, header, length byte
    lastIdBytes.set(buf.subarray(start + 3, pos));
    lastId = id;
  }
  return opts?.registry ?? DEFAULT_REGISTRY;
}

/** Writes the schema id and clears the per-message field state; `pos` must be right after the id. */
function useSchema(s: CompiledSchema): void {
  ensure(3);
  writeU(s.id);
  for (let i = 0; i < s.n; i++) seen[i] = 0;
}

/**
 * Writes the schema id and the first reading. The schema chosen last time is tried first through
 * its generated writer: if that accepts the reading, the reading's names are exactly that schema's
 * fields, which no other schema can beat (registries refuse two schemas with the same field set),
 * so the result never depends on what was encoded before. Otherwise: the full choice.
 */
function firstReading(reg: SchemaRegistry, r: Reading, opts: EncodeOptions | undefined, batch: number): CompiledSchema {
  const at = pos - start; // relative: ensure() may move the message to a new pool

  let s: CompiledSchema | undefined;
  const forced = opts?.schemaId;
  if (forced !== undefined) {
    s = reg.get(forced);
    if (s === undefined) throw new CodecError('EGW_CODEC_SCHEMA', `schema ${forced} is not registered`);
  } else if (lastRegistry === reg && lastSchema !== undefined) {
    const guess = lastSchema;
    useSchema(guess);
    if (batch > 0) writeU(batch);
    if (tryFast(guess, r, true, 0)) return guess;
    pos = start + at;
  }
  s ??= pickSchema(reg, r);
  useSchema(s);
  if (batch > 0) writeU(batch);
  writeReading(s, r, true, 0);
  return s;
}

/** Encodes one reading (docs/codec.md §Single). Throws CodecError EGW_CODEC_ENCODE if it cannot. */
export function encodeReading(r: Reading, opts?: EncodeOptions): Buffer {
  const reg = begin(r, opts);
  firstReading(reg, r, opts, 0);
  return finish(0, opts);
}

/**
 * Encodes readings of one device as a batch (docs/codec.md §Batch): one header, timestamps and
 * values as deltas from the previous reading. Timestamps need not be monotonic.
 */
export function encodeBatch(rs: readonly Reading[], opts?: EncodeOptions): Buffer {
  const r0 = rs[0];
  if (r0 === undefined) throw new CodecError('EGW_CODEC_ENCODE', 'a batch needs at least one reading');
  const reg = begin(r0, opts);
  ensure(20);
  const s = firstReading(reg, r0, opts, rs.length);
  if (s.writeFast !== undefined) writeRun(s, s.writeFast, rs);
  else for (let i = 1; i < rs.length; i++) writeNext(s, rs, i);
  return finish(F.F_BATCH, opts);
}

function writeNext(s: CompiledSchema, rs: readonly Reading[], i: number): void {
  const r = rs[i]!;
  const r0 = rs[0]!;
  if (r.deviceId !== r0.deviceId) {
    throw new CodecError('EGW_CODEC_ENCODE', `batch mixes devices ${r0.deviceId} and ${r.deviceId}`);
  }
  writeReading(s, r, false, rs[i - 1]!.ts);
}

/**
 * Readings 1… of a batch, the hot loop: buffer and position in locals, quality and timestamp
 * checks inline, 1–2 byte timestamp deltas inline, the generated writer for the values. Anything else goes through
 * writeNext (the general path) and the loop picks up after it.
 */
function writeRun(s: CompiledSchema, write: FastWriter, rs: readonly Reading[]): void {
  const id = rs[0]!.deviceId;
  const need = 1 + 8 + s.numCount * 10 + 1;
  const st = fieldState;
  let b = buf;
  let p = pos;
  let prevTs = rs[0]!.ts;
  for (let i = 1; i < rs.length; i++) {
    const r = rs[i]!;
    const ts = r.ts;
    const ql = r.quality;
    const q = ql === 'good' ? 0 : ql === 'uncertain' ? 1 : ql === 'bad' ? 2 : -1;
    let end = -1;
    if (p + need <= b.length && r.deviceId === id && r.units === undefined && q >= 0 && Number.isInteger(ts)) {
      const d = ts - prevTs;
      if (ts >= 0 && ts <= F.MAX_TS) {
        b[p] = q;
        const z = d >= 0 ? d * 2 : -d * 2 - 1;
        let at = p + 1;
        if (z < 0x80) b[at++] = z;
        else if (z < 0x4000) {
          b[at++] = (z & 0x7f) | 0x80;
          b[at++] = z >>> 7;
        } else at = writeUvarintAt(b, at, z);
        end = write(r.values, b, at, st);
      }
    }
    if (end >= 0) p = end;
    else {
      // Not the common case (or the pool is full): the general path, with its own checks.
      pos = p;
      writeNext(s, rs, i);
      b = buf;
      p = pos;
    }
    prevTs = ts;
  }
  pos = p;
}
