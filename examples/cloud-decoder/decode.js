// Cloud-side decoder for the edge-gateway binary reading format, version 1 (docs/codec.md).
// Dependency-free: plain JavaScript (ES2020) plus node:zlib for deflated messages; in a browser or
// a worker, replace `inflateRawSync` with DecompressionStream('deflate-raw'). Written from the spec,
// independently of src/codec, and checked against the spec's test vectors by
// test/unit/codec/vectors.test.ts and roundtrip.test.ts.
//
// node:zlib is fine here because the cloud side is not the constrained device. The gateway itself
// does not use it to inflate: Node's zlib keeps ~5–9 KB of native memory per corrupt stream it
// rejects (docs/codec.md §Deflate on the decode path); a long-running service fed untrusted
// messages should watch that, or inflate with a pure-JS library as the gateway does
// (src/codec/inflate.ts, fflate).
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

export class DecodeError extends Error {}

/**
 * @param {Uint8Array} bytes one message
 * @param {{ schemas?: Record<number, Array<[string, number?, number?]>>, maxBodyBytes?: number }} [opts]
 *        site schemas (ids 128+) in the same shape as SCHEMAS
 */
export function decodeReadings(bytes, opts = {}) {
  const schemas = { ...SCHEMAS, ...(opts.schemas || {}) };
  const maxBody = opts.maxBodyBytes || 1 << 20;
  if (bytes.length < 2 || bytes[0] !== 0xc1) throw new DecodeError('not an edge-gateway message');
  const version = bytes[1] >> 4;
  if (version !== 1) throw new DecodeError(`format version ${version} not supported`);
  if (bytes[1] & 0x0c) throw new DecodeError('reserved flags set');
  const batch = (bytes[1] & 1) !== 0;
  let p = 2;
  let b = bytes;

  const need = (n) => {
    if (p + n > b.length) throw new DecodeError('truncated');
  };
  const u8 = () => {
    need(1);
    return b[p++];
  };
  const uvar = () => {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      const x = u8();
      v += (x & 0x7f) * mul;
      if (x < 0x80) {
        if (x === 0 && i > 0) throw new DecodeError('overlong varint');
        if (v > Number.MAX_SAFE_INTEGER) throw new DecodeError('varint too large');
        return v;
      }
      mul *= 128;
    }
    throw new DecodeError('varint longer than 8 bytes');
  };
  const svar = () => {
    const z = uvar();
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  };
  const text = new TextDecoder('utf-8', { fatal: true });
  const str = (min) => {
    const len = u8();
    if (len < min) throw new DecodeError('empty name');
    need(len);
    const s = text.decode(b.subarray(p, p + len));
    p += len;
    return s;
  };
  const set = (obj, k, v) => {
    if (Object.prototype.hasOwnProperty.call(obj, k)) throw new DecodeError(`duplicate ${k}`);
    Object.defineProperty(obj, k, { value: v, enumerable: true, writable: true, configurable: true });
  };

  if (bytes[1] & 2) {
    const rawLen = uvar();
    if (rawLen === 0 || rawLen > maxBody) throw new DecodeError('bad inflated length');
    // The stream takes the rest of the message; zlib stops at its final block and ignores what
    // follows, as the spec says. One byte of headroom tells "too long" from "exactly rawLen".
    try {
      b = inflateRawSync(bytes.subarray(p), { maxOutputLength: rawLen + 1 });
    } catch (err) {
      throw new DecodeError(`corrupt deflate stream or longer than ${rawLen} B: ${err.message}`);
    }
    if (b.length !== rawLen) throw new DecodeError('inflated length mismatch');
    p = 0;
  }

  const deviceId = str(0);
  const schemaId = uvar();
  const fields = schemas[schemaId];
  if (!fields) throw new DecodeError(`unknown schema ${schemaId}`);
  const count = batch ? uvar() : 1;
  if (count === 0 || count * 2 > b.length - p) throw new DecodeError('bad reading count');

  const prev = new Array(fields.length).fill(undefined);
  let ts = 0;
  const out = [];
  for (let r = 0; r < count; r++) {
    const flags = u8();
    if (flags & 0xe0 || (flags & 3) === 3) throw new DecodeError('bad reading flags');
    const states = new Array(fields.length).fill(0);
    if (flags & 4) {
      for (let i = 0; i < fields.length; i += 4) {
        const byte = u8();
        for (let j = 0; j < 4; j++) {
          const st = (byte >> (2 * j)) & 3;
          if (i + j >= fields.length ? st !== 0 : st === 3) throw new DecodeError('bad state map');
          if (i + j < fields.length) states[i + j] = st;
        }
      }
    }
    ts = r === 0 ? uvar() : ts + svar();
    if (ts < 0 || ts > MAX_TS) throw new DecodeError('timestamp out of range');
    const values = {};
    const bools = [];
    fields.forEach(([name, scale, base], i) => {
      if (states[i] === 1) set(values, name, null);
      if (states[i] !== 0) return;
      if (scale === undefined) {
        bools.push(name);
        return;
      }
      let m = svar();
      if (prev[i] !== undefined) m += prev[i];
      if (Math.abs(m) > MAX_FIELD_INT) throw new DecodeError(`${name} out of range`);
      prev[i] = m;
      set(values, name, (m + base) / 10 ** scale);
    });
    if (bools.length > 0) {
      const nbytes = Math.ceil(bools.length / 8);
      need(nbytes);
      for (let j = 0; j < nbytes * 8; j++) {
        const bit = (b[p + (j >> 3)] >> (j & 7)) & 1;
        if (j < bools.length) set(values, bools[j], bit === 1);
        else if (bit) throw new DecodeError('bool padding not zero');
      }
      p += nbytes;
    }
    if (flags & 8) {
      const n = uvar();
      if (n === 0) throw new DecodeError('empty by-name list');
      for (let k = 0; k < n; k++) {
        const name = str(1);
        const tag = u8();
        let v;
        if (tag === 0) v = null;
        else if (tag === 1) v = false;
        else if (tag === 2) v = true;
        else if (tag === 3) {
          need(8);
          v = new DataView(b.buffer, b.byteOffset + p, 8).getFloat64(0, true);
          p += 8;
        } else if (tag >= 0x10 && tag <= 0x19) {
          const k2 = svar();
          if (Math.abs(k2) > MAX_FIELD_INT) throw new DecodeError(`${name} out of range`);
          v = k2 / 10 ** (tag - 0x10);
        } else throw new DecodeError(`unknown tag ${tag}`);
        set(values, name, v);
      }
    }
    const reading = { deviceId, ts, values, quality: QUALITY[flags & 3] };
    if (flags & 0x10) {
      const n = uvar();
      if (n === 0) throw new DecodeError('empty unit list');
      reading.units = {};
      for (let k = 0; k < n; k++) {
        const name = str(1);
        set(reading.units, name, str(0));
      }
    }
    out.push(reading);
  }
  if (p !== b.length) throw new DecodeError('trailing bytes');
  return out;
}
