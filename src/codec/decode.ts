import type { Quality, Reading, ReadingSource, ReadingValue } from '../pipeline/reading.js';
import { CodecError, type CodecErrorCode } from './errors.js';
import * as F from './format.js';
import { inflateBody } from './inflate.js';
import {
  DEFAULT_REGISTRY,
  MAX_FIELD_INT,
  MAX_FIELDS,
  MAX_SCHEMA_ID,
  type CompiledSchema,
  type SchemaRegistry,
} from './schema.js';

export interface DecodeOptions {
  /** Set on every decoded reading (the wire does not carry it). Default 'mqtt'. */
  source?: ReadingSource;
  registry?: SchemaRegistry;
  /** Most readings one message may hold. Default 10 000. */
  maxReadings?: number;
  /**
   * Most body bytes: of a plain message (bytes 2…), or declared inflated length of a compressed
   * one, checked before the body is read or inflated (zip-bomb bound). Default 1 MiB.
   */
  maxBodyBytes?: number;
}

export const DEFAULT_MAX_READINGS = 10_000;
export const DEFAULT_MAX_BODY_BYTES = 1 << 20;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const QUALITY: readonly Quality[] = F.QUALITIES;

/**
 * Cursor over a body. Every read checks the end first; the only way out of here is a value or a
 * CodecError (never a RangeError from an out-of-bounds view, never an unbounded loop).
 */
class Cursor {
  b: Uint8Array = new Uint8Array(0);
  pos = 0;
  end = 0;

  reset(b: Uint8Array, start: number, end: number): this {
    this.b = b;
    this.pos = start;
    this.end = end;
    return this;
  }

  /** Throws for the field that begins at `at` (docs/codec.md §Errors: the offset is where it begins). */
  fail(code: CodecErrorCode, msg: string, at = this.pos): never {
    throw new CodecError(code, msg, at);
  }

  u8(what: string): number {
    if (this.pos >= this.end) this.fail('EGW_CODEC_TRUNCATED', `message ends inside ${what}`);
    return this.b[this.pos++]!;
  }

  /** Unsigned LEB128, at most 8 bytes, minimal form, ≤ 2^53 − 1. Errors point at its first byte. */
  u(what: string): number {
    const b = this.b;
    const at = this.pos;
    let p = at;
    if (p >= this.end) this.fail('EGW_CODEC_TRUNCATED', `message ends inside ${what}`, at);
    let byte = b[p++]!;
    if (byte < 0x80) {
      this.pos = p;
      return byte;
    }
    let v = byte & 0x7f;
    let mul = 0x80;
    for (let i = 1; i < 8; i++) {
      if (p >= this.end) this.fail('EGW_CODEC_TRUNCATED', `message ends inside ${what}`, at);
      byte = b[p++]!;
      v += (byte & 0x7f) * mul;
      if (byte < 0x80) {
        // A final 0x00 byte means a longer-than-needed encoding: one value, one encoding.
        if (byte === 0) this.fail('EGW_CODEC_VARINT', `${what} is not minimally encoded`, at);
        if (v > Number.MAX_SAFE_INTEGER) this.fail('EGW_CODEC_VARINT', `${what} exceeds 2^53 − 1`, at);
        this.pos = p;
        return v;
      }
      mul *= 0x80;
    }
    return this.fail('EGW_CODEC_VARINT', `${what} is longer than 8 bytes`, at);
  }

  /** Zigzag-decoded signed varint. */
  s(what: string): number {
    const z = this.u(what);
    if (z < 0x40000000) return (z >>> 1) ^ -(z & 1);
    const h = Math.floor(z / 2); // no float modulo: z may exceed 32 bits
    return z === 2 * h ? h : -h - 1;
  }

  /**
   * u8 length-prefixed UTF-8 string of at least `min` bytes (starting at `from` when given). One
   * field: every error points at its length byte; checked in the order length byte present,
   * length ≥ min, bytes present, UTF-8 valid (docs/codec.md §Decoding order).
   */
  str(what: string, min: number, from = -1): string {
    if (from >= 0) this.pos = from;
    const at = this.pos;
    const len = this.u8(`${what} length`);
    if (len < min) this.fail('EGW_CODEC_RANGE', `${what} is empty`, at);
    const start = this.pos;
    const end = start + len;
    if (end > this.end) this.fail('EGW_CODEC_TRUNCATED', `${what} runs past the end of the message`, at);
    const b = this.b;
    let ascii = '';
    let i = start;
    for (; i < end; i++) {
      const c = b[i]!;
      if (c >= 0x80) break;
      ascii += String.fromCharCode(c);
    }
    this.pos = end;
    if (i === end) return ascii;
    try {
      return utf8.decode(b.subarray(start, end));
    } catch (err) {
      throw new CodecError('EGW_CODEC_UTF8', `${what} is not valid UTF-8`, at, { cause: err });
    }
  }
}

/**
 * Device ids repeat message after message, so decoded ids are interned in a small direct-mapped
 * table (hash of the bytes → string, verified byte for byte): the hot path then allocates no
 * string. Bounded: 256 entries of ids ≤ 64 ASCII bytes.
 */
const ID_CACHE = new Array<string>(256).fill('');
let lastDeviceId = '';

function readDeviceId(c: Cursor): string {
  const len = c.u8('device id length');
  const start = c.pos;
  const end = start + len;
  if (end > c.end) c.fail('EGW_CODEC_TRUNCATED', 'device id runs past the end of the message', start - 1);
  if (len > 64) return c.str('device id', 0, start - 1);
  const b = c.b;
  // Most messages come from the device of the previous one: check that id before hashing.
  const last = lastDeviceId;
  if (last.length === len) {
    let i = 0;
    while (i < len && last.charCodeAt(i) === b[start + i]) i++;
    if (i === len) {
      c.pos = end;
      return last;
    }
  }
  let h = len;
  for (let i = start; i < end; i++) {
    const x = b[i]!;
    if (x >= 0x80) return c.str('device id', 0, start - 1);
    h = (h * 31 + x) & 0xff;
  }
  const hit = ID_CACHE[h]!;
  if (hit.length === len) {
    let i = 0;
    while (i < len && hit.charCodeAt(i) === b[start + i]) i++;
    if (i === len) {
      c.pos = end;
      lastDeviceId = hit;
      return hit;
    }
  }
  const id = c.str('device id', 0, start - 1);
  ID_CACHE[h] = id;
  lastDeviceId = id;
  return id;
}

/**
 * Cheap recognition rule (docs/codec.md §Recognition): the first byte is 0xC1, which never starts
 * UTF-8 text (so never JSON, even after whitespace or a BOM). Any version is recognised, so that
 * decode() reports EGW_CODEC_VERSION rather than the payload failing as JSON.
 */
export function looksLikeCodec(buf: Uint8Array): boolean {
  return buf.length >= 2 && buf[0] === F.MAGIC;
}

function limitOf(v: number | undefined, dflt: number, what: string): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < 1) throw new CodecError('EGW_CODEC_LIMIT', `${what} must be a positive integer`);
  return v;
}

/**
 * Decodes one message into readings (one for a single, n for a batch). Strict: throws CodecError
 * for anything malformed, and allocates at most the inflated body (≤ maxBodyBytes) plus output
 * bounded by it — at most one reading per 2 body bytes and 8 values per body byte.
 */
export function decode(input: Uint8Array, opts?: DecodeOptions): Reading[] {
  if (!(input instanceof Uint8Array)) throw new CodecError('EGW_CODEC_MAGIC', 'input is not bytes');
  let maxBody = DEFAULT_MAX_BODY_BYTES;
  let maxReadings = DEFAULT_MAX_READINGS;
  let registry = DEFAULT_REGISTRY;
  let source: ReadingSource = 'mqtt';
  if (opts !== undefined) {
    maxBody = limitOf(opts.maxBodyBytes, DEFAULT_MAX_BODY_BYTES, 'maxBodyBytes');
    maxReadings = limitOf(opts.maxReadings, DEFAULT_MAX_READINGS, 'maxReadings');
    registry = opts.registry ?? DEFAULT_REGISTRY;
    source = opts.source ?? 'mqtt';
  }
  if (input.length < 2 || input[0] !== F.MAGIC) {
    throw new CodecError('EGW_CODEC_MAGIC', 'not an edge-gateway binary message (first byte is not 0xC1)', 0);
  }
  const hdr = input[1]!;
  const version = hdr >> 4;
  if (version < F.VERSION_1 || version > F.VERSION) {
    throw new CodecError(
      'EGW_CODEC_VERSION',
      `message is format version ${version}; this decoder reads versions 1–${F.VERSION} only — upgrade the decoder`,
      1,
    );
  }
  stringsAllowed = version >= F.VERSION_2;
  if ((hdr & F.F_RESERVED) !== 0) {
    throw new CodecError('EGW_CODEC_RESERVED', 'reserved header flags set (written by a newer encoder?)', 1);
  }
  let c: Cursor;
  if ((hdr & F.F_DEFLATE) !== 0) {
    const h = cursor.reset(input, 2, input.length);
    const rawLen = h.u('inflated length');
    if (rawLen === 0) h.fail('EGW_CODEC_RANGE', 'inflated length is 0', 2);
    if (rawLen > maxBody) h.fail('EGW_CODEC_LIMIT', `inflated body of ${rawLen} B exceeds the ${maxBody} B limit`, 2);
    // The deflate stream takes the rest of the message (docs/codec.md §Envelope); pure-JS and
    // bounded in memory and CPU (inflate.ts — node:zlib leaks native memory on corrupt streams).
    const body = inflateBody(input.subarray(h.pos), rawLen, h.pos);
    c = cursor.reset(body, 0, body.length);
  } else {
    if (input.length - 2 > maxBody) {
      throw new CodecError('EGW_CODEC_LIMIT', `body of ${input.length - 2} B exceeds the ${maxBody} B limit`, 2);
    }
    c = cursor.reset(input, 2, input.length);
  }
  const deviceId = readDeviceId(c);
  const schemaAt = c.pos;
  const schemaId = c.u('schema id');
  const s = schemaId <= MAX_SCHEMA_ID ? registry.get(schemaId) : undefined;
  if (s === undefined) {
    c.fail('EGW_CODEC_SCHEMA', `unknown schema id ${schemaId} — the decoder needs that schema`, schemaAt);
  }
  let count = 1;
  if ((hdr & F.F_BATCH) !== 0) {
    const at = c.pos;
    count = c.u('reading count');
    if (count === 0) c.fail('EGW_CODEC_RANGE', 'batch of 0 readings', at);
    if (count > maxReadings) {
      c.fail('EGW_CODEC_LIMIT', `batch of ${count} readings exceeds the limit ${maxReadings}`, at);
    }
    // Each reading takes at least 2 bytes (flags, timestamp): refuse counts the body cannot hold.
    if (count * 2 > c.end - c.pos) c.fail('EGW_CODEC_TRUNCATED', `batch of ${count} readings cannot fit`, at);
  }
  const st = state;
  for (let i = 0; i < s.n; i++) st.seen[i] = 0;
  let out: Reading[];
  if (count === 1) out = [readReading(c, s, st, true, deviceId, source)];
  else {
    out = [];
    for (let i = 0; i < count; i++) out.push(readReading(c, s, st, i === 0, deviceId, source));
  }
  if (c.pos !== c.end) c.fail('EGW_CODEC_TRAILING', `${c.end - c.pos} bytes after the last reading`);
  return out;
}

/** Per-message decoder state, sized for the largest schema (MAX_FIELDS) and reused across calls. */
class State {
  ts = 0;
  readonly prev = new Float64Array(MAX_FIELDS);
  readonly seen = new Uint8Array(MAX_FIELDS);
  readonly states = new Uint8Array(MAX_FIELDS);
}

// The decoder is synchronous and calls no user code while it holds these (registry.get excepted,
// which must not call decode), so one cursor and one state serve every call without allocation.
const cursor = new Cursor();
const state = new State();
/** Whether the message being decoded is version 2 or later (string values allowed). */
let stringsAllowed = false;

function readReading(
  c: Cursor,
  s: CompiledSchema,
  st: State,
  first: boolean,
  deviceId: string,
  source: ReadingSource,
): Reading {
  const flagsAt = c.pos;
  const flags = c.u8('reading flags');
  const q = flags & F.R_QUALITY;
  if ((flags & F.R_RESERVED) !== 0 || q === 3) {
    // Reserved bits first: a newer encoder may define them (docs/codec.md §Decoding order).
    if ((flags & F.R_RESERVED) !== 0) c.fail('EGW_CODEC_RESERVED', 'reserved reading flags set', flagsAt);
    c.fail('EGW_CODEC_RANGE', 'quality 3 is undefined', flagsAt);
  }
  const n = s.n;
  const states = st.states;
  if ((flags & F.R_STATES) !== 0) {
    if (c.pos + s.stateBytes > c.end) c.fail('EGW_CODEC_TRUNCATED', 'message ends inside the state map');
    for (let b = 0; b < s.stateBytes; b++) {
      const at = c.pos;
      const byte = c.b[c.pos++]!;
      for (let j = 0; j < 4; j++) {
        const i = b * 4 + j;
        const v = (byte >> (j * 2)) & 3;
        if (i >= n) {
          if (v !== 0) c.fail('EGW_CODEC_RANGE', 'state map padding is not zero', at);
        } else if (v === 3) c.fail('EGW_CODEC_RANGE', `state 3 for field ${s.names[i]}`, at);
        else states[i] = v;
      }
    }
  }
  const tsAt = c.pos;
  let ts: number;
  if (first) ts = c.u('timestamp');
  else {
    // Batch deltas at ≥ 1 Hz are 1–2 bytes: inline those (zigzag of < 2^14 fits int ops).
    const p = c.pos;
    const b = c.b;
    const b0 = p < c.end ? b[p]! : 0x100;
    const b1 = p + 1 < c.end ? b[p + 1]! : 0x100;
    if (b0 < 0x80) {
      c.pos = p + 1;
      ts = st.ts + ((b0 >>> 1) ^ -(b0 & 1));
    } else if (b0 < 0x100 && b1 < 0x80 && b1 !== 0) {
      const z = (b0 & 0x7f) | (b1 << 7);
      c.pos = p + 2;
      ts = st.ts + ((z >>> 1) ^ -(z & 1));
    } else ts = st.ts + c.s('timestamp delta');
  }
  if (ts > F.MAX_TS || ts < 0) c.fail('EGW_CODEC_RANGE', `timestamp ${ts} outside [0, 2^50)`, tsAt);
  st.ts = ts;

  let values: Record<string, ReadingValue>;
  if ((flags & F.R_STATES) !== 0) values = readGeneral(c, s, st);
  else if (s.readFast !== undefined) values = s.readFast(c, st);
  else {
    // No state map: every field holds a value in its field.
    states.fill(0, 0, n);
    values = readGeneral(c, s, st);
  }
  if ((flags & F.R_EXTRAS) !== 0) readExtras(c, values);
  const r: Reading = { deviceId, ts, values, quality: QUALITY[q]!, source };
  if ((flags & F.R_UNITS) !== 0) r.units = readUnits(c);
  return r;
}

function readGeneral(c: Cursor, s: CompiledSchema, st: State): Record<string, ReadingValue> {
  const n = s.n;
  const states = st.states;
  const values: Record<string, ReadingValue> = {};
  const names = s.names;
  const isBool = s.isBool;
  let nbool = 0;
  for (let i = 0; i < n; i++) {
    const state = states[i]!;
    if (state === F.S_NULL) values[names[i]!] = null;
    else if (state === F.S_VALUE) {
      if (isBool[i] === 1) {
        // Its bit comes after the numbers; the key goes in now, so `values` keeps schema order.
        values[names[i]!] = false;
        nbool++;
        continue;
      }
      const at = c.pos;
      let m = c.s(names[i]!);
      if (st.seen[i] === 1) m += st.prev[i]!;
      else st.seen[i] = 1;
      if (m > MAX_FIELD_INT || m < -MAX_FIELD_INT) c.fail('EGW_CODEC_RANGE', `${names[i]} out of range`, at);
      st.prev[i] = m;
      values[names[i]!] = (m + s.base[i]!) / s.pow[i]!;
    }
  }
  if (nbool > 0) readBools(c, s, states, values, nbool);
  return values;
}

function readBools(
  c: Cursor,
  s: CompiledSchema,
  states: Uint8Array,
  values: Record<string, ReadingValue>,
  nbool: number,
): void {
  // Present bools, one bit each in field order, LSB first; padding bits must be zero.
  const bytes = (nbool + 7) >> 3;
  if (c.pos + bytes > c.end) c.fail('EGW_CODEC_TRUNCATED', 'message ends inside the bool bits');
  const b = c.b;
  const at = c.pos;
  let j = 0;
  for (let i = 0; i < s.n; i++) {
    if (s.isBool[i] !== 1 || states[i] !== F.S_VALUE) continue;
    values[s.names[i]!] = ((b[at + (j >> 3)]! >> (j & 7)) & 1) === 1;
    j++;
  }
  const padBits = bytes * 8 - nbool;
  if (padBits > 0 && b[at + bytes - 1]! >> (8 - padBits) !== 0) {
    c.fail('EGW_CODEC_RANGE', 'bool padding bits not zero', at + bytes - 1);
  }
  c.pos = at + bytes;
}

function readExtras(c: Cursor, values: Record<string, ReadingValue>): void {
  const countAt = c.pos;
  const count = c.u('by-name count');
  if (count === 0) c.fail('EGW_CODEC_RANGE', 'by-name count is 0', countAt);
  // Each entry takes ≥ 3 bytes (length, ≥ 1 name byte, tag).
  if (count * 3 > c.end - c.pos) c.fail('EGW_CODEC_TRUNCATED', `${count} by-name values cannot fit`, countAt);
  for (let k = 0; k < count; k++) {
    const nameAt = c.pos;
    const name = c.str('value name', 1);
    if (Object.hasOwn(values, name)) c.fail('EGW_CODEC_DUPLICATE', `value ${name} occurs twice`, nameAt);
    const tagAt = c.pos;
    const tag = c.u8('value tag');
    let v: ReadingValue;
    if (tag === F.T_STRING) {
      if (!stringsAllowed) c.fail('EGW_CODEC_RANGE', 'string value (tag 0x04) in a version 1 message', tagAt);
      v = c.str(`string value ${name}`, 0);
    } else if (tag === F.T_NULL) v = null;
    else if (tag === F.T_FALSE) v = false;
    else if (tag === F.T_TRUE) v = true;
    else if (tag === F.T_FLOAT64) {
      if (c.pos + 8 > c.end) c.fail('EGW_CODEC_TRUNCATED', 'message ends inside a float64');
      v = new DataView(c.b.buffer, c.b.byteOffset + c.pos, 8).getFloat64(0, true);
      c.pos += 8;
    } else if (tag >= F.T_SCALED && tag <= F.T_SCALED + 9) {
      const at = c.pos;
      const k2 = c.s(name);
      if (k2 > MAX_FIELD_INT || k2 < -MAX_FIELD_INT) c.fail('EGW_CODEC_RANGE', `${name} out of range`, at);
      v = k2 / 10 ** (tag - F.T_SCALED);
    } else return c.fail('EGW_CODEC_RANGE', `unknown value tag 0x${tag.toString(16)}`, tagAt);
    // defineProperty: a name such as "__proto__" must become an own key, not a prototype write.
    Object.defineProperty(values, name, { value: v, enumerable: true, writable: true, configurable: true });
  }
}

function readUnits(c: Cursor): Record<string, string> {
  const countAt = c.pos;
  const count = c.u('unit count');
  if (count === 0) c.fail('EGW_CODEC_RANGE', 'unit count is 0', countAt);
  if (count * 3 > c.end - c.pos) c.fail('EGW_CODEC_TRUNCATED', `${count} units cannot fit`, countAt);
  const units: Record<string, string> = {};
  for (let k = 0; k < count; k++) {
    const nameAt = c.pos;
    const name = c.str('unit name', 1);
    if (Object.hasOwn(units, name)) c.fail('EGW_CODEC_DUPLICATE', `unit of ${name} occurs twice`, nameAt);
    const unit = c.str(`unit of ${name}`, 0);
    Object.defineProperty(units, name, { value: unit, enumerable: true, writable: true, configurable: true });
  }
  return units;
}
