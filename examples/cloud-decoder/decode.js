// Cloud-side decoder for the edge-gateway binary reading format, versions 1 and 2 (docs/codec.md).
// Dependency-free: plain JavaScript (ES2020) plus node:zlib for deflated messages; in a browser or
// a worker, replace `inflateRawSync` with DecompressionStream('deflate-raw'). Written from the spec,
// independently of src/codec, and checked against the spec's test vectors, random messages and
// fuzzed inputs (same error code and offset as the gateway) by test/unit/codec/*.test.ts.
//
// node:zlib is fine here because the cloud side is not the constrained device. The gateway itself
// does not use it to inflate: Node's zlib keeps ~5–9 KB of native memory per corrupt stream it
// rejects (docs/codec.md §Deflate on the decode path); a long-running service fed untrusted
// messages should watch that, or inflate with a pure-JS strict inflater as the gateway does
// (src/codec/inflate.ts).
//
//   import { decodeReadings } from './decode.js';
//   const readings = decodeReadings(payloadBytes); // [{ deviceId, ts, values, quality, units? }]
import { inflateRawSync } from 'node:zlib';

/** Built-in schemas (docs/codec.md §Schemas): [name, scale, base] for numbers, [name] for bools. */
export const SCHEMAS = {
  0: [],
  1: [
    ['temperature', 2, 2000],
    ['humidity', 2, 5000],
    ['pressure', 2, 101325],
    ['voltage', 3, 3300],
    ['online'],
    ['alarm'],
    ['low_battery'],
  ],
  2: [
    ['voltage', 1, 2300],
    ['current', 3, 0],
    ['power', 1, 0],
    ['energy', 3, 0],
    ['frequency', 2, 5000],
    ['power_factor', 3, 1000],
  ],
  3: [['lat', 7, 0], ['lon', 7, 0], ['alt', 1, 0], ['speed', 2, 0], ['fix']],
};

const QUALITY = ['good', 'uncertain', 'bad'];
const MAX_FIELD_INT = 2 ** 51 - 1;
const MAX_TS = 2 ** 50 - 1;
const MAX_VERSION = 2;

/** `code` is the spec's error code (docs/codec.md §Errors), `offset` where the failing field begins. */
export class DecodeError extends Error {
  constructor(code, message, offset) {
    super(offset >= 0 ? `${message} (at byte ${offset})` : message);
    this.code = code;
    this.offset = offset;
  }
}
const fail = (code, message, offset) => {
  throw new DecodeError(code, message, offset);
};

// fatal: invalid UTF-8 is an error; ignoreBOM: a leading U+FEFF is text, not a byte order mark.
const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const own = (obj, k) => Object.prototype.hasOwnProperty.call(obj, k);
const set = (obj, k, v) =>
  Object.defineProperty(obj, k, { value: v, enumerable: true, writable: true, configurable: true });

/**
 * Decodes one message. Checks run in the order of docs/codec.md §Decoding order, so the first
 * problem of a message decides the error, as in the gateway.
 * @param {Uint8Array} bytes one message
 * @param {{ schemas?: Record<number, Array<[string, number?, number?]>>, maxBodyBytes?: number, maxReadings?: number }} [opts]
 *        site schemas (ids 128+) in the same shape as SCHEMAS
 */
export function decodeReadings(bytes, opts = {}) {
  const schemas = { ...SCHEMAS, ...(opts.schemas || {}) };
  const maxBody = opts.maxBodyBytes || 1 << 20;
  const maxReadings = opts.maxReadings || 10000;
  if (!(bytes instanceof Uint8Array)) fail('EGW_CODEC_MAGIC', 'input is not bytes', -1);
  if (bytes.length < 2 || bytes[0] !== 0xc1) fail('EGW_CODEC_MAGIC', 'not an edge-gateway message', 0);
  const version = bytes[1] >> 4;
  if (version < 1 || version > MAX_VERSION) fail('EGW_CODEC_VERSION', `format version ${version} not supported`, 1);
  if (bytes[1] & 0x0c) fail('EGW_CODEC_RESERVED', 'reserved header flags set', 1);
  const batch = (bytes[1] & 1) !== 0;
  let p = 2;
  let b = bytes;

  // Every reader takes the offset of the field it reads for its errors.
  const u8 = () => {
    if (p >= b.length) fail('EGW_CODEC_TRUNCATED', 'truncated', p);
    return b[p++];
  };
  const uvar = () => {
    const at = p;
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      if (p >= b.length) fail('EGW_CODEC_TRUNCATED', 'truncated varint', at);
      const x = b[p++];
      v += (x & 0x7f) * mul;
      if (x < 0x80) {
        if (x === 0 && i > 0) fail('EGW_CODEC_VARINT', 'overlong varint', at);
        if (v > Number.MAX_SAFE_INTEGER) fail('EGW_CODEC_VARINT', 'varint too large', at);
        return v;
      }
      mul *= 128;
    }
    return fail('EGW_CODEC_VARINT', 'varint longer than 8 bytes', at);
  };
  const svar = () => {
    const z = uvar();
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  };
  const str = (min) => {
    const at = p;
    const len = u8();
    if (len < min) fail('EGW_CODEC_RANGE', 'empty name', at);
    if (p + len > b.length) fail('EGW_CODEC_TRUNCATED', 'string runs past the end', at);
    let s;
    try {
      s = text.decode(b.subarray(p, p + len));
    } catch {
      fail('EGW_CODEC_UTF8', 'invalid UTF-8', at);
    }
    p += len;
    return s;
  };

  if (bytes[1] & 2) {
    const rawLen = uvar();
    if (rawLen === 0) fail('EGW_CODEC_RANGE', 'inflated length 0', 2);
    if (rawLen > maxBody) fail('EGW_CODEC_LIMIT', 'inflated length over the limit', 2);
    // The stream takes the rest of the message; zlib stops at its final block and ignores what
    // follows, as the spec says. One byte of headroom tells "too long" from "exactly rawLen".
    const at = p;
    if (p >= bytes.length) fail('EGW_CODEC_INFLATE', 'no deflate stream', at);
    try {
      b = inflateRawSync(bytes.subarray(p), { maxOutputLength: rawLen + 1 });
    } catch (err) {
      fail('EGW_CODEC_INFLATE', `corrupt deflate stream or longer than ${rawLen} B: ${err.message}`, at);
    }
    if (b.length !== rawLen) fail('EGW_CODEC_INFLATE', 'inflated length mismatch', at);
    p = 0; // offsets count from the first byte of the inflated body from here on
  } else if (bytes.length - 2 > maxBody) fail('EGW_CODEC_LIMIT', 'body over the limit', 2);

  const deviceId = str(0);
  const schemaAt = p;
  const schemaId = uvar();
  if (!own(schemas, schemaId)) fail('EGW_CODEC_SCHEMA', `unknown schema ${schemaId}`, schemaAt);
  const fields = schemas[schemaId];
  let count = 1;
  if (batch) {
    const at = p;
    count = uvar();
    if (count === 0) fail('EGW_CODEC_RANGE', 'batch of 0 readings', at);
    if (count > maxReadings) fail('EGW_CODEC_LIMIT', 'too many readings', at);
    if (count * 2 > b.length - p) fail('EGW_CODEC_TRUNCATED', 'reading count cannot fit', at);
  }

  const prev = new Array(fields.length).fill(undefined);
  let ts = 0;
  const out = [];
  for (let r = 0; r < count; r++) {
    const flagsAt = p;
    const flags = u8();
    if (flags & 0xe0) fail('EGW_CODEC_RESERVED', 'reserved reading flags set', flagsAt);
    if ((flags & 3) === 3) fail('EGW_CODEC_RANGE', 'quality 3', flagsAt);
    const states = new Array(fields.length).fill(0);
    if (flags & 4) {
      if (p + Math.ceil(fields.length / 4) > b.length) fail('EGW_CODEC_TRUNCATED', 'truncated state map', p);
      for (let i = 0; i < fields.length; i += 4) {
        const at = p;
        const byte = b[p++];
        for (let j = 0; j < 4; j++) {
          const st = (byte >> (2 * j)) & 3;
          if (i + j >= fields.length ? st !== 0 : st === 3) fail('EGW_CODEC_RANGE', 'bad state map', at);
          if (i + j < fields.length) states[i + j] = st;
        }
      }
    }
    const tsAt = p;
    ts = r === 0 ? uvar() : ts + svar();
    if (ts < 0 || ts > MAX_TS) fail('EGW_CODEC_RANGE', 'timestamp out of range', tsAt);
    // Key order (docs/codec.md §Decoded readings): fields in their field in schema order, then by name.
    const values = {};
    const bools = [];
    fields.forEach(([name, scale, base], i) => {
      if (states[i] === 1) set(values, name, null);
      if (states[i] !== 0) return;
      if (scale === undefined) {
        set(values, name, false); // its bit comes after the numbers
        bools.push(name);
        return;
      }
      const at = p;
      let m = svar();
      if (prev[i] !== undefined) m += prev[i];
      if (Math.abs(m) > MAX_FIELD_INT) fail('EGW_CODEC_RANGE', `${name} out of range`, at);
      prev[i] = m;
      set(values, name, (m + base) / 10 ** scale);
    });
    if (bools.length > 0) {
      const nbytes = Math.ceil(bools.length / 8);
      if (p + nbytes > b.length) fail('EGW_CODEC_TRUNCATED', 'truncated bools', p);
      for (let j = 0; j < nbytes * 8; j++) {
        const bit = (b[p + (j >> 3)] >> (j & 7)) & 1;
        if (j < bools.length) values[bools[j]] = bit === 1;
        else if (bit) fail('EGW_CODEC_RANGE', 'bool padding not zero', p + nbytes - 1);
      }
      p += nbytes;
    }
    if (flags & 8) {
      const at = p;
      const n = uvar();
      if (n === 0) fail('EGW_CODEC_RANGE', 'empty by-name list', at);
      if (n * 3 > b.length - p) fail('EGW_CODEC_TRUNCATED', 'by-name count cannot fit', at);
      for (let k = 0; k < n; k++) {
        const nameAt = p;
        const name = str(1);
        if (own(values, name)) fail('EGW_CODEC_DUPLICATE', `duplicate ${name}`, nameAt);
        const tagAt = p;
        const tag = u8();
        let v;
        if (tag === 0) v = null;
        else if (tag === 1) v = false;
        else if (tag === 2) v = true;
        else if (tag === 3) {
          if (p + 8 > b.length) fail('EGW_CODEC_TRUNCATED', 'truncated float64', p);
          v = new DataView(b.buffer, b.byteOffset + p, 8).getFloat64(0, true);
          p += 8;
        } else if (tag === 4) {
          if (version < 2) fail('EGW_CODEC_RANGE', 'string in a version 1 message', tagAt);
          v = str(0);
        } else if (tag >= 0x10 && tag <= 0x19) {
          const at2 = p;
          const k2 = svar();
          if (Math.abs(k2) > MAX_FIELD_INT) fail('EGW_CODEC_RANGE', `${name} out of range`, at2);
          v = k2 / 10 ** (tag - 0x10);
        } else fail('EGW_CODEC_RANGE', `unknown tag ${tag}`, tagAt);
        set(values, name, v);
      }
    }
    const reading = { deviceId, ts, values, quality: QUALITY[flags & 3] };
    if (flags & 0x10) {
      const at = p;
      const n = uvar();
      if (n === 0) fail('EGW_CODEC_RANGE', 'empty unit list', at);
      if (n * 3 > b.length - p) fail('EGW_CODEC_TRUNCATED', 'unit count cannot fit', at);
      reading.units = {};
      for (let k = 0; k < n; k++) {
        const nameAt = p;
        const name = str(1);
        if (own(reading.units, name)) fail('EGW_CODEC_DUPLICATE', `duplicate unit ${name}`, nameAt);
        set(reading.units, name, str(0));
      }
    }
    out.push(reading);
  }
  if (p !== b.length) fail('EGW_CODEC_TRAILING', 'trailing bytes', p);
  return out;
}
