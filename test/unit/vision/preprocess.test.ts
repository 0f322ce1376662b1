import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { resolveContract, toTensor, ContractError } from '../../../src/vision/contract.js';
import { decodeForModel, DecodeError } from '../../../src/vision/decode.js';

import { assertTensorEqual, contract, LIMITS, reference } from './tensor-ref.js';

const png = (w: number, h: number, ch: 3 | 4 | 1, f: (x: number, y: number, c: number) => number) => {
  const raw = Buffer.alloc(w * h * ch);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) for (let c = 0; c < ch; c++) raw[(y * w + x) * ch + c] = f(x, y, c);
  return sharp(raw, { raw: { width: w, height: h, channels: ch } })
    .png()
    .toBuffer();
};

for (const layout of ['NCHW', 'NHWC'] as const) {
  test(`toTensor equals the hand computation element by element (${layout}, 3 channels)`, () => {
    const c = contract({ layout });
    const px = (x: number, y: number, ch: number) => (x * 31 + y * 17 + ch * 101) % 256;
    const pixels = new Uint8Array(8 * 6 * 3);
    for (let y = 0; y < 6; y++)
      for (let x = 0; x < 8; x++) for (let ch = 0; ch < 3; ch++) pixels[(y * 8 + x) * 3 + ch] = px(x, y, ch);
    assertTensorEqual(toTensor(pixels, c), reference(c, px));
  });

  test(`solid colour, every fit, resized from another size (${layout})`, async () => {
    const img = await png(37, 23, 3, (_x, _y, ch) => [200, 100, 50][ch]!);
    for (const fit of ['fill', 'cover'] as const) {
      const c = contract({ layout, fit });
      const t = toTensor(await decodeForModel(img, c, LIMITS), c);
      assertTensorEqual(
        t,
        reference(c, (_x, _y, ch) => [200, 100, 50][ch]!),
      );
    }
  });

  test(`contain letterboxes with the background, centred (${layout})`, async () => {
    // 20×10 into 8×8: scale min(8/20, 8/10) = 0.4 → 8×4, top margin floor((8 − 4)/2) = 2.
    const img = await png(20, 10, 3, (_x, _y, ch) => [10, 20, 30][ch]!);
    const c = contract({ layout, fit: 'contain', width: 8, height: 8, background: [9, 8, 7] });
    const t = toTensor(await decodeForModel(img, c, LIMITS), c);
    assertTensorEqual(
      t,
      reference(c, (_x, y, ch) => (y >= 2 && y < 6 ? [10, 20, 30] : [9, 8, 7])[ch]!),
    );
  });

  test(`split halves at the model size are exact (${layout})`, async () => {
    const f = (x: number, _y: number, ch: number) => (x < 4 ? [255, 0, 0] : [0, 0, 255])[ch]!;
    const c = contract({ layout });
    const t = toTensor(await decodeForModel(await png(8, 6, 3, f), c, LIMITS), c);
    assertTensorEqual(t, reference(c, f));
  });

  test(`RGBA: alpha is dropped, colour kept as stored (${layout})`, async () => {
    const f = (x: number, y: number, ch: number) => (ch === 3 ? (x * 40) % 256 : (x * 13 + y * 7 + ch * 50) % 256);
    const c = contract({ layout });
    const t = toTensor(await decodeForModel(await png(8, 6, 4, f), c, LIMITS), c);
    assertTensorEqual(t, reference(c, f));
  });

  test(`greyscale replicated to RGB, and a 1-channel model (${layout})`, async () => {
    const f = (x: number, y: number) => (x * 20 + y * 9) % 256;
    const img = await png(8, 6, 1, f);
    const c3 = contract({ layout });
    assertTensorEqual(toTensor(await decodeForModel(img, c3, LIMITS), c3), reference(c3, f));
    const c1 = contract({ layout, channels: 1, mean: [0.5], std: [0.5] });
    assertTensorEqual(toTensor(await decodeForModel(img, c1, LIMITS), c1), reference(c1, f));
  });

  test(`JPEG: tensor equals the hand computation on the decoded pixels (${layout})`, async () => {
    const jpeg = await sharp(await png(8, 6, 3, (x, y, ch) => (x * 30 + y * 40 + ch * 60) % 256))
      .jpeg({ quality: 90 })
      .toBuffer();
    const { data } = await sharp(jpeg).raw().toBuffer({ resolveWithObject: true });
    const c = contract({ layout });
    const t = toTensor(await decodeForModel(jpeg, c, LIMITS), c);
    assertTensorEqual(
      t,
      reference(c, (x, y, ch) => data[(y * 8 + x) * 3 + ch]!),
    );
  });
}

test('corrupt, truncated and enormous images are DecodeErrors', async () => {
  const c = contract();
  const good = await png(8, 6, 3, () => 1);
  await assert.rejects(decodeForModel(Buffer.from('not an image at all'), c, LIMITS), DecodeError);
  await assert.rejects(decodeForModel(good.subarray(0, good.length - 20), c, LIMITS), DecodeError);
  // A valid PNG signature and IHDR declaring 30000×30000 (CRC computed), no pixel data.
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(30000, 0);
  ihdr.writeUInt32BE(30000, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  const { crc32 } = await import('node:zlib');
  const chunk = Buffer.concat([Buffer.from('IHDR'), ihdr]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(13);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(chunk));
  const huge = Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), len, chunk, crc]);
  // libvips refuses this header itself; the rss stays small either way.
  const rss0 = process.memoryUsage().rss;
  await assert.rejects(decodeForModel(huge, c, LIMITS), DecodeError);
  assert.ok(process.memoryUsage().rss - rss0 < 100 * 1024 * 1024);
  // A real image over max_image_pixels is refused by the pixel limit before decoding.
  const big = await png(100, 100, 3, () => 5);
  await assert.rejects(
    decodeForModel(big, c, { maxPixels: 5000 }),
    (e: Error) => e instanceof DecodeError && /pixel limit/i.test(e.message),
  );
});

test('toTensor refuses a buffer of the wrong size', () => {
  assert.throws(() => toTensor(new Uint8Array(10), contract()), ContractError);
});

const facts = (shape: (number | string)[], metadata: Record<string, string> = {}) => ({
  inputNames: ['image'],
  outputNames: ['logits'],
  inputShape: shape,
  metadata,
});
const cfg = { path: 'm.onnx', fit: 'fill' as const, background: [0, 0, 0] };

test('contract: layout and size from the input shape, the rest from metadata', () => {
  const c = resolveContract(
    facts(['batch', 3, 64, 48], { labels: '["good","chip"]', mean: '0.5', std: '0.25,0.25,0.25', scale: '1' }),
    cfg,
    undefined,
  );
  assert.equal(c.layout, 'NCHW');
  assert.deepEqual([c.width, c.height, c.channels], [48, 64, 3]);
  assert.deepEqual(c.mean, [0.5, 0.5, 0.5]);
  assert.equal(c.scale, 1);
  assert.deepEqual(c.labels, ['good', 'chip']);
  const n = resolveContract(facts([1, 224, 224, 3]), { ...cfg, labels: ['good', 'x'] }, undefined);
  assert.equal(n.layout, 'NHWC');
  assert.equal(n.scale, 1 / 255);
});

test('contract: config beats metadata; dynamic size needs the config; errors are ContractErrors', () => {
  const c = resolveContract(
    facts([1, 3, 'h', 'w'], { labels: 'a,b', mean: '0.1' }),
    { ...cfg, width: 32, height: 16, mean: [0.2], good_labels: ['a'] },
    undefined,
  );
  assert.deepEqual([c.width, c.height, c.mean[0]], [32, 16, 0.2]);
  assert.throws(() => resolveContract(facts([1, 3, 'h', 'w'], { labels: 'a' }), cfg, undefined), ContractError);
  assert.throws(() => resolveContract(facts([1, 3, 8, 8]), cfg, undefined), /no labels/);
  assert.throws(() => resolveContract(facts([1, 3, 8]), { ...cfg, labels: ['good'] }, undefined), /rank/);
  assert.throws(() => resolveContract(facts([1, 3, 8, 8]), { ...cfg, labels: ['ok'] }, undefined), /good label/);
  assert.throws(
    () => resolveContract(facts([1, 3, 8, 8], { mean: '1,2' }), { ...cfg, labels: ['good'] }, undefined),
    /mean/,
  );
});
