import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { decode, encodeBatch, encodeReading } from '../../../src/codec/index.js';
import { VECTORS } from './vectors.js';
import { ROOT, loadCloudDecoder, withoutSource } from './helpers.js';

const isBatch = (v: (typeof VECTORS)[number]): boolean => v.readings.length > 1 || v.batch === true;
const hexOf = (b: Uint8Array): string => Buffer.from(b).toString('hex');

for (const v of VECTORS) {
  test(`vector ${v.name}: the encoder produces the documented bytes`, () => {
    const opts = { compress: v.compress };
    const b = isBatch(v) ? encodeBatch(v.readings, opts) : encodeReading(v.readings[0]!, opts);
    if ((b[1]! & 0x02) !== 0) {
      // Deflate output may differ between zlib builds; the decoded content may not.
      assert.deepEqual(decode(b), v.readings);
    } else assert.equal(hexOf(b), v.hex);
  });

  test(`vector ${v.name}: the gateway decoder reads the documented values`, () => {
    assert.deepEqual(decode(Buffer.from(v.hex, 'hex')), v.readings);
  });

  test(`vector ${v.name}: the cloud example decoder reads the documented values`, async () => {
    const cloud = await loadCloudDecoder();
    assert.deepEqual(cloud.decodeReadings(Buffer.from(v.hex, 'hex')), v.readings.map(withoutSource));
  });
}

test('docs/codec.md lists every vector with its hex', () => {
  const doc = readFileSync(resolve(ROOT, 'docs/codec.md'), 'utf8');
  for (const v of VECTORS) {
    assert.ok(doc.includes(v.name), `docs/codec.md lacks vector ${v.name}`);
    assert.ok(doc.includes(v.hex), `docs/codec.md lacks the hex of ${v.name}`);
  }
});

test('the typical reading is at most 35 bytes', () => {
  assert.ok(Buffer.from(VECTORS[0]!.hex, 'hex').length <= 35);
});

test('decode sets the caller-given source on every reading', () => {
  const rs = decode(Buffer.from(VECTORS[2]!.hex, 'hex'), { source: 'coap' });
  assert.deepEqual(
    rs.map((r) => r.source),
    ['coap', 'coap', 'coap'],
  );
});
