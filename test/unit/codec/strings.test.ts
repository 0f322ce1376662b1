import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CodecError,
  decode,
  encodeBatch,
  encodeReading,
  MAX_STRING_BYTES,
  VERSION,
  type CodecErrorCode,
} from '../../../src/codec/index.js';
import type { Reading } from '../../../src/pipeline/reading.js';
import { isCloudError, loadCloudDecoder, withoutSource } from './helpers.js';
import { VECTORS } from './vectors.js';

// String values (docs/codec.md §Strings, §Versioning): tag 0x04 by name, u8 length ≤ 255 UTF-8
// bytes, only in format version 2 messages — which the encoder writes only when a string is there.

const r = (values: Reading['values'], over: Partial<Reading> = {}): Reading => ({
  deviceId: 'pump-2',
  ts: 1_732_262_400_000,
  values,
  quality: 'good',
  source: 'mqtt',
  ...over,
});
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const refused = (f: () => unknown, code: CodecErrorCode, offset?: number): void => {
  assert.throws(f, (e: unknown) => e instanceof CodecError && e.code === code && (offset ?? e.offset) === e.offset);
};

test('the string bound is an exported constant of 255 UTF-8 bytes, and the codec reads versions 1–2', () => {
  assert.equal(MAX_STRING_BYTES, 255);
  assert.equal(VERSION, 2);
});

test('a message is version 2 iff it holds a string; numeric-only messages are unchanged version 1 bytes', () => {
  const numeric = r({ temperature: 21.5, rpm: 1500 });
  assert.equal(encodeReading(numeric)[1]! >> 4, 1);
  assert.equal(encodeReading(r({ ...numeric.values, state: 'on' }))[1]! >> 4, 2);
  const batch = [r({ temperature: 1 }), r({ temperature: 2, state: 'on' }, { ts: 1_732_262_401_000 })];
  assert.equal(encodeBatch(batch, { compress: 'never' })[1]! >> 4, 2, 'one string anywhere in a batch');
  assert.equal(encodeBatch(batch.slice(0, 1))[1]! >> 4, 1, 'the next message starts from version 1 again');
  // The version-1 vectors still come out byte for byte (vectors.test.ts checks every one).
  assert.equal(encodeReading(VECTORS[0]!.readings[0]!).toString('hex'), VECTORS[0]!.hex);
});

test('strings round-trip alone, next to schema fields, in a schema field name, in batches, deflated', async () => {
  const cloud = await loadCloudDecoder();
  const cases: Reading[][] = [
    [r({ state: '' })],
    [r({ state: 'x'.repeat(MAX_STRING_BYTES) })],
    [r({ state: 'é'.repeat(127) })], // 254 bytes
    [r({ state: '😀'.repeat(63) })], // 252 bytes, surrogate pairs
    [r({ state: '\uFEFFlead', nul: '\u0000' })], // a leading U+FEFF is text, not a BOM
    [r({ temperature: 'n/a', humidity: 45.1, online: true })], // a string where schema 1 has a number
    Array.from({ length: 300 }, (_, i) =>
      r(
        {
          temperature: 20 + i / 10,
          humidity: 45.1,
          pressure: 1013.2,
          voltage: 3.3,
          online: true,
          alarm: false,
          low_battery: false,
          state: i % 7 === 0 ? 'alarm' : 'ok',
        },
        { ts: 1_732_262_400_000 + i * 1000 },
      ),
    ),
  ];
  for (const rs of cases) {
    for (const compress of ['never', 'auto'] as const) {
      const b = rs.length > 1 ? encodeBatch(rs, { compress }) : encodeReading(rs[0]!, { compress });
      assert.equal(b[1]! >> 4, 2);
      assert.deepEqual(decode(b), rs);
      assert.deepEqual(cloud.decodeReadings(b), rs.map(withoutSource));
    }
  }
});

test('the encoder refuses strings over 255 UTF-8 bytes and lone surrogates with EGW_CODEC_ENCODE', () => {
  refused(() => encodeReading(r({ state: 'x'.repeat(MAX_STRING_BYTES + 1) })), 'EGW_CODEC_ENCODE');
  refused(() => encodeReading(r({ state: 'é'.repeat(128) })), 'EGW_CODEC_ENCODE'); // 256 bytes
  refused(() => encodeReading(r({ state: 'ok\uD800' })), 'EGW_CODEC_ENCODE');
  refused(() => encodeReading(r({ state: '\uDE00' })), 'EGW_CODEC_ENCODE');
});

test('a version 1 message with a string tag is refused: strings belong to version 2 only', async () => {
  const v2 = hex(VECTORS.find((v) => v.name === 'single-string-v2')!.hex);
  const v1 = Buffer.from(v2);
  v1[1] = 0x10;
  const tagAt = v2.indexOf(Buffer.from('state')) + 5;
  refused(() => decode(v1), 'EGW_CODEC_RANGE', tagAt);
  const cloud = await loadCloudDecoder();
  assert.throws(
    () => cloud.decodeReadings(v1),
    (e: unknown) => isCloudError(e) && e.code === 'EGW_CODEC_RANGE' && e.offset === tagAt,
  );
  // A decoder of version 1 (as every decoder was before strings) stops at the header instead:
  // EGW_CODEC_VERSION, "upgrade the decoder". This decoder does the same for version 3.
  const v3 = Buffer.from(v2);
  v3[1] = 0x30;
  assert.throws(
    () => decode(v3),
    (e: unknown) =>
      e instanceof CodecError && e.code === 'EGW_CODEC_VERSION' && /version 3; .*upgrade the decoder/.test(e.message),
  );
});

test('hostile string payloads: truncated, past the end, invalid UTF-8, encoded surrogates', () => {
  // schema 0, one by-name value "s" (tag 0x04)
  const msg = (payload: string): Buffer => hex(`c1 20 00 00 08 00 01 01 73 04 ${payload}`);
  assert.deepEqual(decode(msg('02 6f 6b'))[0]!.values, { s: 'ok' });
  refused(() => decode(msg('')), 'EGW_CODEC_TRUNCATED', 10);
  refused(() => decode(msg('05 6f 6b')), 'EGW_CODEC_TRUNCATED', 10);
  refused(() => decode(msg('02 c3 28')), 'EGW_CODEC_UTF8', 10);
  refused(() => decode(msg('03 ed a0 80')), 'EGW_CODEC_UTF8', 10); // U+D800 as UTF-8 (RFC 3629 §3)
  refused(() => decode(msg('02 c0 80')), 'EGW_CODEC_UTF8', 10); // overlong NUL
  refused(() => decode(msg('02 6f 6b 00')), 'EGW_CODEC_TRAILING', 13);
});
