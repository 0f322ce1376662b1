import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateRawSync } from 'node:zlib';
import {
  CodecError,
  COAP_CONTENT_FORMAT,
  decode,
  encodeBatch,
  encodeReading,
  looksLikeCodec,
  type CodecErrorCode,
} from '../../../src/codec/index.js';
import type { Reading } from '../../../src/pipeline/reading.js';
import { loadCloudDecoder, prng, withoutSource } from './helpers.js';
import { VECTORS } from './vectors.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const fails = (input: Uint8Array, code: CodecErrorCode, msg?: RegExp): void => {
  assert.throws(
    () => decode(input),
    (e: unknown) => e instanceof CodecError && e.code === code && (msg === undefined || msg.test(e.message)),
    `expected ${code} for ${Buffer.from(input).toString('hex')}`,
  );
};
const single = hex(VECTORS[0]!.hex);
const reading = (over: Partial<Reading> = {}): Reading => ({
  deviceId: 'd',
  ts: 1,
  values: { temperature: 20 },
  quality: 'good',
  source: 'mqtt',
  ...over,
});

test('recognition: codec messages yes; JSON, whitespace-led JSON, CBOR and msgpack maps no', () => {
  for (const v of VECTORS) assert.ok(looksLikeCodec(hex(v.hex)), v.name);
  for (const s of ['{"temperature":1}', ' \n{"a":1}', '[1]', '\uFEFF{"a":1}', '']) {
    assert.equal(looksLikeCodec(Buffer.from(s)), false, JSON.stringify(s));
  }
  assert.equal(looksLikeCodec(hex('a1 61 61 01')), false, 'CBOR map');
  assert.equal(looksLikeCodec(hex('81 a1 61 01')), false, 'msgpack fixmap');
  // A newer version is still recognised, so decode() can say "upgrade" instead of a JSON parse error.
  assert.equal(looksLikeCodec(hex('c1 20 00 00')), true);
  assert.ok(COAP_CONTENT_FORMAT >= 65000 && COAP_CONTENT_FORMAT <= 65535, 'experimental-use range (RFC 7252 §12.3)');
});

test('every proper prefix of every vector is refused with a CodecError', () => {
  for (const v of VECTORS) {
    const b = hex(v.hex);
    for (let n = 0; n < b.length; n++) {
      assert.throws(() => decode(b.subarray(0, n)), CodecError, `${v.name} cut at ${n}`);
    }
  }
});

test('magic, version and reserved bits fail clearly', () => {
  fails(Buffer.from('{"temperature":21.5}'), 'EGW_CODEC_MAGIC');
  fails(new Uint8Array(0), 'EGW_CODEC_MAGIC');
  const v3 = Buffer.from(single);
  v3[1] = 0x30;
  fails(v3, 'EGW_CODEC_VERSION', /version 3; this decoder reads versions 1–2 only — upgrade/);
  const v0 = Buffer.from(single);
  v0[1] = 0x00;
  fails(v0, 'EGW_CODEC_VERSION', /version 0/);
  const res = Buffer.from(single);
  res[1] = 0x14;
  fails(res, 'EGW_CODEC_RESERVED');
  const rres = Buffer.from(single);
  rres[19] = 0x20; // reading flags byte (after magic, header, id length + 15, schema id)
  fails(rres, 'EGW_CODEC_RESERVED');
  const q3 = Buffer.from(single);
  q3[19] = 0x03;
  fails(q3, 'EGW_CODEC_RANGE', /quality 3/);
  assert.throws(() => decode('c110' as unknown as Uint8Array), CodecError);
});

test('trailing bytes, overlong and oversized varints, unknown schema, bad UTF-8, duplicates', () => {
  fails(Buffer.concat([single, hex('00')]), 'EGW_CODEC_TRAILING');
  // schema id 1 written as 0x81 0x00 (two bytes for a one-byte value)
  fails(hex('c1 10 01 64 81 00 00 01 00'), 'EGW_CODEC_VARINT', /minimally/);
  fails(hex('c1 10 01 64 01 00 ff ff ff ff ff ff ff ff 01'), 'EGW_CODEC_VARINT', /longer than 8/);
  fails(hex('c1 10 01 64 01 00 ff ff ff ff ff ff ff 7f'), 'EGW_CODEC_VARINT', /2\^53/);
  fails(hex('c1 10 01 64 7f 00 01'), 'EGW_CODEC_SCHEMA', /unknown schema id 127/);
  fails(hex('c1 10 02 c3 28 00 00 01'), 'EGW_CODEC_UTF8');
  // schema 0, one by-name value "a" twice
  fails(hex('c1 10 00 00 08 01 02 01 61 02 01 61 01'), 'EGW_CODEC_DUPLICATE');
  // schema 1, temperature in its field and again by name
  const dup = encodeReading(reading());
  const withExtra = Buffer.concat([dup.subarray(0, 5), hex('0c 01'), hex('55 55'), hex('01 00')]);
  assert.throws(() => decode(withExtra), CodecError);
  fails(hex('c1 10 00 00 08 01 00'), 'EGW_CODEC_RANGE', /by-name count is 0/);
  fails(hex('c1 10 00 00 08 01 01 01 61 07'), 'EGW_CODEC_RANGE', /unknown value tag/);
});

test('timestamps outside [0, 2^50) and field values beyond 2^51 − 1 are refused', () => {
  // 2^50 as uvarint: 8 bytes
  fails(hex('c1 10 00 00 00 80 80 80 80 80 80 80 02'), 'EGW_CODEC_RANGE', /timestamp/);
  // schema 3 field lat: zigzag 2^52 + 2 → 2^51 + 1, one past the field bound
  fails(hex('c1 10 00 03 04 a8 02 00 82 80 80 80 80 80 80 08'), 'EGW_CODEC_RANGE', /lat out of range/);
  // batch: second timestamp goes below 0
  fails(hex('c1 11 00 00 02 00 01 00 05'), 'EGW_CODEC_RANGE', /timestamp/);
});

test('batch counts the body cannot hold are refused before anything is allocated', () => {
  fails(hex('c1 11 00 00 ff ff ff ff ff ff ff 0f 00 00'), 'EGW_CODEC_LIMIT');
  fails(hex('c1 11 00 00 80 01 00 00'), 'EGW_CODEC_TRUNCATED', /cannot fit/);
  fails(hex('c1 11 00 00 00'), 'EGW_CODEC_RANGE', /0 readings/);
  const five = encodeBatch(
    [1, 2, 3, 4, 5].map((ts) => reading({ ts })),
    { compress: 'never' },
  );
  assert.equal(decode(five).length, 5);
  assert.throws(
    () => decode(five, { maxReadings: 4 }),
    (e: unknown) => e instanceof CodecError && e.code === 'EGW_CODEC_LIMIT',
  );
});

test('zip bomb: a deflate stream of 64 MiB of zeros is stopped at the declared size and the limit', () => {
  const bomb = deflateRawSync(Buffer.alloc(64 << 20));
  // declares 1,000 bytes, inflates to far more: the output buffer holds 1,000 bytes, and the
  // inflater stops at the first byte past it (inflate.ts)
  fails(Buffer.concat([hex('c1 12 e8 07'), bomb]), 'EGW_CODEC_INFLATE', /past its declared 1000 B/);
  // the same for a short stream (≤ 512 bytes): refused, not truncated silently
  const small = deflateRawSync(Buffer.alloc(400 << 10));
  assert.ok(small.length <= 512, `${small.length} B`);
  fails(Buffer.concat([hex('c1 12 e8 07'), small]), 'EGW_CODEC_INFLATE', /past its declared 1000 B/);
  // declares 64 MiB: refused by the 1 MiB default limit before inflating
  fails(Buffer.concat([hex('c1 12 80 80 80 20'), bomb]), 'EGW_CODEC_LIMIT');
  assert.throws(
    () => decode(Buffer.concat([hex('c1 12 e8 07'), bomb]), { maxBodyBytes: 100 }),
    (e: unknown) => e instanceof CodecError && e.code === 'EGW_CODEC_LIMIT',
  );
});

test('deflate: corrupt, truncated, empty and wrong-length streams are refused', () => {
  const body = Buffer.from(single.subarray(2));
  const z = deflateRawSync(body);
  const ok = Buffer.concat([hex('c1 12'), Buffer.from([body.length]), z]);
  assert.deepEqual(decode(ok), decode(single));
  // declares one byte more than the stream gives, and one byte less
  fails(Buffer.concat([hex('c1 12'), Buffer.from([body.length + 1]), z]), 'EGW_CODEC_INFLATE', /header declares/);
  fails(Buffer.concat([hex('c1 12'), Buffer.from([body.length - 1]), z]), 'EGW_CODEC_INFLATE', /past its declared/);
  fails(
    Buffer.concat([hex('c1 12'), Buffer.from([body.length]), hex('ff ff ff')]),
    'EGW_CODEC_INFLATE',
    /invalid block type/,
  );
  fails(Buffer.concat([hex('c1 12'), Buffer.from([body.length]), z.subarray(0, z.length - 1)]), 'EGW_CODEC_INFLATE');
  fails(Buffer.concat([hex('c1 12'), Buffer.from([body.length])]), 'EGW_CODEC_INFLATE', /no deflate stream/);
  fails(hex('c1 12 00'), 'EGW_CODEC_RANGE');
  // The inflated body must still be consumed exactly.
  const longer = Buffer.concat([body, hex('00')]);
  fails(Buffer.concat([hex('c1 12'), Buffer.from([longer.length]), deflateRawSync(longer)]), 'EGW_CODEC_TRAILING');
});

test('deflate: the stream takes the rest of the message; bytes after its final block are not read', async () => {
  // docs/codec.md §Envelope: the stream's length is implied; what follows its final block is not
  // part of the message (encoders write nothing there), for short and long streams alike.
  const body = Buffer.from(single.subarray(2));
  const ok = Buffer.concat([hex('c1 12'), Buffer.from([body.length]), deflateRawSync(body)]);
  assert.deepEqual(decode(Buffer.concat([ok, hex('00 ff')])), decode(single));
  const cloud = await loadCloudDecoder();
  assert.deepEqual(cloud.decodeReadings(Buffer.concat([ok, hex('00 ff')])), decode(single).map(withoutSource));
  const over = Buffer.concat([hex('c1 12'), Buffer.from([body.length - 1]), deflateRawSync(body)]);
  assert.throws(() => cloud.decodeReadings(over), /inflated length mismatch/);
  const rnd = prng(7);
  const big = encodeBatch(
    Array.from({ length: 3000 }, (_, i) =>
      reading({ ts: i * 1000 + Math.floor(rnd() * 1e6), values: { temperature: Math.round(rnd() * 4000) / 10 } }),
    ),
  );
  assert.equal(big[1]! & 0x02, 0x02, 'deflated');
  assert.ok(big.length > 1024, `a long stream (${big.length} B)`);
  const want = decode(big);
  assert.equal(want.length, 3000);
  assert.deepEqual(decode(Buffer.concat([big, Buffer.alloc(700, 0xab)])), want);
  // Long streams: truncated, corrupted and over-long ones are refused too.
  fails(big.subarray(0, big.length - 1), 'EGW_CODEC_INFLATE');
  const flipped = Buffer.from(big);
  flipped[Math.floor(big.length / 2)]! ^= 0xff;
  assert.throws(() => decode(flipped), CodecError);
  const short = Buffer.from(big);
  short[3]! -= 1; // inflated length is a 3-byte varint at offset 2; lower it by 128
  fails(short, 'EGW_CODEC_INFLATE', /past its declared/);
});

test('padding bits of the state map and the bool byte must be zero', () => {
  // schema 3 (5 fields, 2 state bytes): state of a 6th, non-existent field set
  fails(hex('c1 10 00 03 04 aa 06 01'), 'EGW_CODEC_RANGE', /padding/);
  const b = Buffer.from(single);
  b[b.length - 1] = 0x09; // bit 3 beyond the 3 bools of schema 1
  fails(b, 'EGW_CODEC_RANGE', /padding/);
});

test('the encoder refuses what it cannot carry with EGW_CODEC_ENCODE', () => {
  const enc = (f: () => unknown): void => {
    assert.throws(f, (e: unknown) => e instanceof CodecError && e.code === 'EGW_CODEC_ENCODE');
  };
  enc(() => encodeBatch([]));
  enc(() => encodeBatch([reading(), reading({ deviceId: 'other' })]));
  enc(() => encodeReading(reading({ ts: 1.5 })));
  enc(() => encodeReading(reading({ ts: -1 })));
  enc(() => encodeReading(reading({ ts: 2 ** 50 })));
  enc(() => encodeReading(reading({ quality: 'meh' as Reading['quality'] })));
  enc(() => encodeReading(reading({ values: { ['x'.repeat(256)]: 1 } })));
  enc(() => encodeReading(reading({ values: { '': 1 } })));
  enc(() => encodeReading(reading({ values: { s: 'x'.repeat(256) } })));
  enc(() => encodeReading(reading({ values: { o: {} as unknown as number } })));
  enc(() => encodeReading(reading({ values: { b: 1n as unknown as number } })));
  assert.throws(() => encodeReading(reading(), { schemaId: 99 }), CodecError);
});
