import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import {
  CodecError,
  decode,
  encodeBatch,
  encodeReading,
  type CodecErrorCode,
  type DecodeOptions,
} from '../../../src/codec/index.js';
import { inflateBody } from '../../../src/codec/inflate.js';
import type { Reading } from '../../../src/pipeline/reading.js';
import { isCloudError, loadCloudDecoder, prng, ROOT, withoutSource, type CloudDecoder } from './helpers.js';
import { VECTORS } from './vectors.js';

// What docs/codec.md settles so that a decoder written from it alone interoperates (issue
// "Field readiness" item 19): valid deflate only, error codes for zero lengths, the order of
// checks, what CodecError.offset points at, maxBodyBytes on plain bodies, the key order of
// `values`, empty and unmatched units, schema units off the wire, no silent U+FFFD.

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const single = hex(VECTORS[0]!.hex);
let cloud: CloudDecoder;
const cloudReady = loadCloudDecoder().then((c) => (cloud = c));

/** Both decoders refuse `input` with `code` at `offset` (docs/codec.md §Errors, §Decoding order). */
async function refusedAt(input: Uint8Array, code: CodecErrorCode, offset: number, opts?: DecodeOptions): Promise<void> {
  await cloudReady;
  const what = `${code} at ${offset} for ${Buffer.from(input).toString('hex')}`;
  assert.throws(
    () => decode(input, opts),
    (e: unknown) => {
      assert.ok(e instanceof CodecError, String(e));
      assert.deepEqual([e.code, e.offset], [code, offset], `gateway: ${what}`);
      return true;
    },
  );
  assert.throws(
    () => cloud.decodeReadings(input, opts),
    (e: unknown) => {
      assert.ok(isCloudError(e), String(e));
      assert.deepEqual([e.code, e.offset], [code, offset], `cloud: ${what}`);
      return true;
    },
  );
}

/** Least-significant-bit-first bit writer for hand-made deflate streams (RFC 1951 §3.1.1). */
class Bits {
  private readonly bytes: number[] = [];
  private acc = 0;
  private n = 0;
  put(v: number, count: number): this {
    for (let i = 0; i < count; i++) {
      this.acc |= ((v >> i) & 1) << this.n;
      if (++this.n === 8) {
        this.bytes.push(this.acc);
        this.acc = 0;
        this.n = 0;
      }
    }
    return this;
  }
  /** A Huffman code: most significant bit first. */
  code(c: number, len: number): this {
    for (let i = len - 1; i >= 0; i--) this.put((c >> i) & 1, 1);
    return this;
  }
  done(): Buffer {
    return Buffer.from(this.n > 0 ? [...this.bytes, this.acc] : this.bytes);
  }
}
const fixed = (): Bits => new Bits().put(1, 1).put(1, 2); // BFINAL, BTYPE 01 (§3.2.6)
const dynamic = (): Bits => new Bits().put(1, 1).put(2, 2); // BFINAL, BTYPE 10 (§3.2.7)

test('invalid deflate streams are refused as RFC 1951 and zlib refuse them (EGW_CODEC_INFLATE)', async () => {
  const streams: [string, Buffer][] = [
    ['the issue vector: distance code 31', hex('63 00 7e 00')],
    [
      'fixed block: literal/length code 286',
      fixed()
        .code(0xc0 + 6, 8)
        .done(),
    ],
    [
      'fixed block: distance code 30',
      fixed()
        .code(0x30 + 0x61, 8)
        .code(1, 7)
        .code(30, 5)
        .done(),
    ],
    ['distance beyond the start of the output', fixed().code(1, 7).code(0, 5).code(0, 7).done()],
    ['stored block: NLEN is not the complement of LEN', hex('01 01 00 00 00 61')],
    ['block type 3', hex('07 00')],
    [
      'over-subscribed code-length code',
      dynamic().put(0, 5).put(0, 5).put(15, 4).put(0x49249249, 30).put(0x1ff, 27).done(),
    ],
    ['incomplete code-length code', dynamic().put(0, 5).put(0, 5).put(0, 4).put(1, 3).put(0, 9).done()],
    [
      'code-length repeat with no length before it',
      dynamic().put(0, 5).put(0, 5).put(0, 4).put(1, 3).put(0, 3).put(0, 3).put(1, 3).code(1, 1).put(0, 2).done(),
    ],
  ];
  for (const [what, z] of streams) {
    assert.throws(() => inflateRawSync(z), Error, `zlib refuses: ${what}`);
    const msg = Buffer.concat([hex('c1 12 04'), z]);
    await refusedAt(msg, 'EGW_CODEC_INFLATE', 3);
    assert.throws(() => inflateBody(z, 4, 3), /invalid deflate stream/, what);
  }
  assert.deepEqual(Buffer.concat([hex('c1 12 04'), hex('63 00 7e 00')]), hex('c1120463007e00'));
});

test('inflate accepts exactly what zlib accepts, with the same bytes: random and mutated streams', () => {
  const rnd = prng(19);
  const zlib = (z: Uint8Array): Buffer | undefined => {
    try {
      return inflateRawSync(z);
    } catch {
      return undefined;
    }
  };
  const ours = (z: Uint8Array, len: number): Buffer | undefined => {
    try {
      return Buffer.from(inflateBody(z, len, 0));
    } catch (err) {
      assert.ok(err instanceof CodecError && err.code === 'EGW_CODEC_INFLATE', String(err));
      return undefined;
    }
  };
  let accepted = 0;
  for (let i = 0; i < 40_000; i++) {
    let z: Buffer;
    if (i % 2 === 0) {
      z = Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 12) }, () => Math.floor(rnd() * 256)));
    } else {
      const body = Buffer.from(
        Array.from({ length: Math.floor(rnd() * 400) }, () => (rnd() < 0.5 ? 0x41 : Math.floor(rnd() * 256))),
      );
      z = Buffer.from(deflateRawSync(body, { level: i % 10, strategy: i % 4 }));
      for (let k = Math.floor(rnd() * 3); k > 0; k--) z[Math.floor(rnd() * z.length)]! ^= 1 << Math.floor(rnd() * 8);
    }
    const want = zlib(z);
    const got = ours(z, want?.length ?? 3);
    assert.deepEqual(got, want, `stream ${z.toString('hex')}`);
    if (want !== undefined) accepted++;
  }
  assert.ok(accepted > 5_000, `${accepted} accepted`);
});

test('offsets point at the first byte of the field that failed; inside a compressed body they count from its first byte', async () => {
  const cases: [string, CodecErrorCode, number][] = [
    ['c0 10', 'EGW_CODEC_MAGIC', 0],
    ['c1 30 00', 'EGW_CODEC_VERSION', 1],
    ['c1 14 00', 'EGW_CODEC_RESERVED', 1],
    ['c1 10 05 61', 'EGW_CODEC_TRUNCATED', 2], // device id runs past the end
    ['c1 10 02 c3 28 00 00 01', 'EGW_CODEC_UTF8', 2],
    ['c1 10 01 64 81 00 00 01 00', 'EGW_CODEC_VARINT', 4],
    ['c1 10 01 64 7f 00 01', 'EGW_CODEC_SCHEMA', 4],
    ['c1 10 00 00 00 80 80 80 80 80 80 80 02', 'EGW_CODEC_RANGE', 5], // timestamp 2^50
    ['c1 10 00 00 00 80 80', 'EGW_CODEC_TRUNCATED', 5], // timestamp varint cut
    ['c1 10 00 03 04 a8 02 00 82 80 80 80 80 80 80 08', 'EGW_CODEC_RANGE', 8], // lat beyond 2^51 − 1
    ['c1 10 00 03 04 aa 06 01', 'EGW_CODEC_RANGE', 6], // state map padding, second map byte
    ['c1 10 00 03 04 ff', 'EGW_CODEC_TRUNCATED', 5], // the whole state map must be there first
    ['c1 11 00 00 02 00 01 00 05', 'EGW_CODEC_RANGE', 8], // second timestamp below 0
    ['c1 10 00 00 08 01 02 01 61 02 01 61 01', 'EGW_CODEC_DUPLICATE', 10],
    ['c1 10 00 00 08 01 01 01 61 07', 'EGW_CODEC_RANGE', 9], // unknown tag: the tag byte
    ['c1 10 00 00 08 01 01 01 61 03 00 00', 'EGW_CODEC_TRUNCATED', 10], // float64 payload
    ['c1 10 00 00 08 01 01 00 00', 'EGW_CODEC_TRUNCATED', 6], // by-name count cannot fit
    ['c1 10 00 00 10 01 01 01 61 01 62 01 61 00', 'EGW_CODEC_TRAILING', 11],
    ['c1 10 00 00 10 01 02 01 61 00 01 61 00', 'EGW_CODEC_DUPLICATE', 10],
    ['c1 12 05', 'EGW_CODEC_INFLATE', 3], // no stream: where it would begin
  ];
  for (const [h, code, at] of cases) await refusedAt(hex(h), code, at);
  const b = single.subarray(2);
  const bad = Buffer.from(b);
  bad[bad.length - 1] = 0x09; // bool padding bit, in the last body byte
  await refusedAt(
    Buffer.concat([hex('c1 12'), Buffer.from([b.length]), deflateRawSync(bad)]),
    'EGW_CODEC_RANGE',
    b.length - 1,
  );
  await refusedAt(Buffer.concat([single, hex('00')]), 'EGW_CODEC_TRAILING', single.length);
  const longer = Buffer.concat([b, hex('00')]);
  await refusedAt(
    Buffer.concat([hex('c1 12'), Buffer.from([longer.length]), deflateRawSync(longer)]),
    'EGW_CODEC_TRAILING',
    b.length,
  );
  assert.throws(
    () => decode('c110' as unknown as Uint8Array),
    (e: unknown) => e instanceof CodecError && e.code === 'EGW_CODEC_MAGIC' && e.offset === -1,
  );
});

test('zero lengths and counts: EGW_CODEC_RANGE where the spec forbids them, accepted where it allows them', async () => {
  await refusedAt(hex('c1 12 00'), 'EGW_CODEC_RANGE', 2); // inflated length
  await refusedAt(hex('c1 11 00 00 00'), 'EGW_CODEC_RANGE', 4); // batch count
  await refusedAt(hex('c1 10 00 00 08 01 00'), 'EGW_CODEC_RANGE', 6); // by-name count
  await refusedAt(hex('c1 10 00 00 10 01 00'), 'EGW_CODEC_RANGE', 6); // unit count
  await refusedAt(hex('c1 10 00 00 08 01 01 00 00 00'), 'EGW_CODEC_RANGE', 7); // value name
  await refusedAt(hex('c1 10 00 00 10 01 01 00 00 00'), 'EGW_CODEC_RANGE', 7); // unit name
  // A 0-length device id, unit and string value are values, not errors.
  assert.deepEqual(decode(hex('c1 10 00 00 10 01 01 01 61 00'))[0]!.units, { a: '' });
  assert.deepEqual(decode(hex('c1 20 00 00 08 01 01 01 73 04 00'))[0]!.values, { s: '' });
});

test('order of checks: the first failing check in spec order decides the error', async () => {
  // Reading flags: reserved bits before quality 3.
  await refusedAt(hex('c1 10 00 00 23 00'), 'EGW_CODEC_RESERVED', 4);
  // Header: version before reserved bits; magic before everything.
  await refusedAt(hex('c1 3c 00'), 'EGW_CODEC_VERSION', 1);
  // Counts: 0 (RANGE), then over the limit (LIMIT), then cannot fit (TRUNCATED).
  await refusedAt(hex('c1 11 00 00 ff ff ff ff ff ff ff 0f 00 00'), 'EGW_CODEC_LIMIT', 4);
  await refusedAt(hex('c1 11 00 00 80 01 00 00'), 'EGW_CODEC_TRUNCATED', 4);
  await refusedAt(hex('c1 11 00 00 05 00 00'), 'EGW_CODEC_LIMIT', 4, { maxReadings: 4 });
  // A string field: its length byte, then min length, then bytes present, then UTF-8.
  await refusedAt(hex('c1 10 00 00 08 01 01 00 c3 00'), 'EGW_CODEC_RANGE', 7);
  await refusedAt(hex('c1 10 00 00 08 01 01 05 c3 00'), 'EGW_CODEC_TRUNCATED', 7);
  await refusedAt(hex('c1 10 00 00 08 01 01 02 c3'), 'EGW_CODEC_TRUNCATED', 6); // count cannot fit: before the name
  // Varint: longer than 8 bytes even where the message ends right after.
  await refusedAt(hex('c1 10 00 00 00 ff ff ff ff ff ff ff ff'), 'EGW_CODEC_VARINT', 5);
  // A by-name value: name, then duplicate, then tag.
  await refusedAt(hex('c1 10 00 00 08 01 02 01 61 00 01 61 ff'), 'EGW_CODEC_DUPLICATE', 10);
});

test('maxBodyBytes bounds plain bodies too (bytes 2… of the message), before the body is parsed', async () => {
  const body = single.length - 2;
  assert.equal(decode(single, { maxBodyBytes: body }).length, 1);
  await refusedAt(single, 'EGW_CODEC_LIMIT', 2, { maxBodyBytes: body - 1 });
  const bad = Buffer.from(single);
  bad[2] = 0xff; // device id past the end: the limit is checked first
  await refusedAt(bad, 'EGW_CODEC_LIMIT', 2, { maxBodyBytes: body - 1 });
});

test('key order of decoded values: in-field values in schema order, then by-name values in wire order', async () => {
  await cloudReady;
  const r: Reading = {
    deviceId: 'd',
    ts: 1,
    values: {
      co2: 412,
      alarm: null,
      temperature: 0.1 + 0.2,
      humidity: 45.1,
      online: true,
      low_battery: false,
      state: 'ok',
    },
    quality: 'good',
    source: 'mqtt',
  };
  const want = ['humidity', 'online', 'alarm', 'low_battery', 'temperature', 'co2', 'state'];
  const b = encodeReading(r);
  assert.deepEqual(Object.keys(decode(b)[0]!.values), want);
  assert.deepEqual(Object.keys(cloud.decodeReadings(b)[0]!.values), want);
  // The generated fast path (every field in its field) gives schema order as well.
  const full = VECTORS[0]!.readings[0]!;
  assert.deepEqual(Object.keys(decode(hex(VECTORS[0]!.hex))[0]!.values), Object.keys(full.values));
});

test('units: an empty map is no map; units without a value of that name travel; non-string units are refused', async () => {
  await cloudReady;
  const r = (units: Record<string, string> | undefined, values: Reading['values'] = { temperature: 20 }): Reading => {
    const x: Reading = { deviceId: 'd', ts: 1, values, quality: 'good', source: 'mqtt' };
    if (units !== undefined) x.units = units;
    return x;
  };
  assert.deepEqual(encodeReading(r({})), encodeReading(r(undefined)));
  assert.equal('units' in decode(encodeReading(r({})))[0]!, false);
  const unmatched = r({ co2: 'ppm', temperature: '°C' }, { temperature: 20 });
  assert.deepEqual(decode(encodeReading(unmatched)), [unmatched]);
  assert.deepEqual(cloud.decodeReadings(encodeReading(unmatched)), [withoutSource(unmatched)]);
  assert.throws(
    () => encodeReading(r({ temperature: 5 as unknown as string })),
    (e: unknown) => e instanceof CodecError && e.code === 'EGW_CODEC_ENCODE',
  );
  // Schema units (°C of schema 1's temperature) are documentation: never on the wire, never added.
  assert.equal('units' in decode(hex(VECTORS[0]!.hex))[0]!, false);
});

test('a value that is undefined is absent: the message stays decodable (no empty by-name list)', () => {
  const r = { deviceId: 'd', ts: 1, values: { temperature: 20, x: undefined }, quality: 'good', source: 'mqtt' };
  const b = encodeReading(r as unknown as Reading);
  assert.deepEqual(decode(b)[0]!.values, { temperature: 20 });
  const batch = encodeBatch([r as unknown as Reading, { ...r, ts: 2 } as unknown as Reading], { compress: 'never' });
  assert.equal(decode(batch).length, 2);
});

test('lone UTF-16 surrogates in ids, names, units and strings are refused, not replaced by U+FFFD', () => {
  const base: Reading = { deviceId: 'd', ts: 1, values: { temperature: 20 }, quality: 'good', source: 'mqtt' };
  const bad: Reading[] = [
    { ...base, deviceId: 'dev\uD800' },
    { ...base, values: { ['t\uDC00']: 1 } },
    { ...base, units: { temperature: '\uD83D' } },
    { ...base, units: { ['t\uD800']: '°C' } },
    { ...base, values: { s: 'a\uDFFFb' } },
  ];
  for (const r of bad) {
    assert.throws(
      () => encodeReading(r),
      (e: unknown) => e instanceof CodecError && e.code === 'EGW_CODEC_ENCODE' && /surrogate/.test(e.message),
      JSON.stringify(r),
    );
  }
  const pair: Reading = { ...base, deviceId: 'dev😀', values: { 'x😀': 1 }, units: { 'x😀': '😀' } };
  assert.deepEqual(decode(encodeReading(pair)), [pair]);
});

test("docs/codec.md: every table row has its header's cell count; the deflated vector states its device id and decimals", () => {
  const doc = readFileSync(resolve(ROOT, 'docs/codec.md'), 'utf8');
  const cells = (line: string): number =>
    line
      .replace(/\\\|/g, '')
      .replace(/`[^`]*`/g, '')
      .split('|').length;
  let header = -1;
  for (const [i, line] of doc.split('\n').entries()) {
    if (!line.startsWith('|')) {
      header = -1;
      continue;
    }
    if (header < 0) header = cells(line);
    else assert.equal(cells(line), header, `docs/codec.md line ${i + 1}: ${line.slice(0, 80)}`);
  }
  const section = doc.slice(doc.indexOf('**batch-deflated**'), doc.indexOf('## Measurements'));
  assert.match(section, /press-07-line-b/);
  assert.match(section, /\(234 \+ i\) \/ 10/);
  assert.doesNotMatch(section, /23\.4 \+ 0\.1·i/);
});
