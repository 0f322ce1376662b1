// Raw frames (Frame.raw): ffmpeg's rawvideo cut into frames (RawSplitter), raw pixels to the
// model's tensor (decodeForModel with `raw`), and the ffmpeg filters that scale to the model's
// input (rawScaleFilter). The ffmpeg side runs for real in test/integration/vision-raw.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { pino } from 'pino';
import { toTensor, type ModelContract } from '../../../src/vision/contract.js';
import { decodeForModel, DecodeError } from '../../../src/vision/decode.js';
import { FfmpegSource, RawSplitter, rawScaleFilter, type RawTarget } from '../../../src/vision/sources/ffmpeg.js';
import type { RawFormat } from '../../../src/vision/types.js';

import { assertTensorEqual, contract, LIMITS, reference } from './tensor-ref.js';

function assertBytesEqual(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++)
    if (actual[i] !== expected[i]) assert.fail(`${what}: byte ${i}: ${actual[i]} !== ${expected[i]}`);
}

/** Raw interleaved pixels, as a camera or ffmpeg's rawvideo delivers them. */
function rawImage(w: number, h: number, ch: 1 | 3, f: (x: number, y: number, c: number) => number): Buffer {
  const b = Buffer.alloc(w * h * ch);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) for (let c = 0; c < ch; c++) b[(y * w + x) * ch + c] = f(x, y, c);
  return b;
}

/** The same pixels as a PNG (lossless): what decodeForModel gives for an encoded image is the reference. */
const asPng = (raw: Buffer, f: RawFormat) => sharp(raw, { raw: f }).png().toBuffer();

// ---------------------------------------------------------------------------------------------
// RawSplitter

/** `n` frames of `size` bytes, each byte telling frame and offset apart. */
function frames(n: number, size: number): Buffer[] {
  return Array.from({ length: n }, (_, k) =>
    Buffer.from(Array.from({ length: size }, (_, i) => (k * 37 + i * 11 + 1) % 256)),
  );
}

test('RawSplitter: a stream cut into chunks of every size 1..n gives the same frames, pending counts the rest', () => {
  const size = 12;
  const want = frames(5, size);
  const stream = Buffer.concat(want);
  for (let chunk = 1; chunk <= stream.length + 3; chunk++) {
    const s = new RawSplitter(size);
    const got: Buffer[] = [];
    for (let off = 0; off < stream.length; off += chunk) {
      const piece = stream.subarray(off, Math.min(off + chunk, stream.length));
      const out = s.push(piece);
      got.push(...out);
      const pushed = Math.min(off + chunk, stream.length);
      assert.equal(s.pending, pushed % size, `chunk ${chunk}, after ${pushed} bytes`);
      assert.equal(got.length, Math.floor(pushed / size), `chunk ${chunk}, after ${pushed} bytes`);
    }
    assert.equal(got.length, want.length, `chunk ${chunk}`);
    got.forEach((g, k) => assertBytesEqual(g, want[k]!, `chunk ${chunk}, frame ${k}`));
  }
});

test('RawSplitter: several frames and a part of the next in one chunk; the tail completes later', () => {
  const size = 7;
  const want = frames(4, size);
  const s = new RawSplitter(size);
  const all = Buffer.concat(want);
  const first = s.push(all.subarray(0, 3 * size + 2)); // three frames and 2 bytes of the fourth
  assert.equal(first.length, 3);
  assert.equal(s.pending, 2);
  const rest = s.push(all.subarray(3 * size + 2));
  assert.equal(rest.length, 1);
  assert.equal(s.pending, 0);
  [...first, ...rest].forEach((g, k) => assertBytesEqual(g, want[k]!, `frame ${k}`));
  assert.deepEqual(s.push(Buffer.alloc(0)), []);
});

test('RawSplitter: every frame is its own buffer — not the chunk, not overwritten by the next frame', () => {
  const size = 16;
  const want = frames(6, size);
  const s = new RawSplitter(size);
  // One reusable chunk buffer (as a reader with a fixed buffer would pass): overwritten after
  // every push, so a frame that aliased it would change.
  const chunk = Buffer.alloc(10);
  const all = Buffer.concat(want);
  const got: Buffer[] = [];
  for (let off = 0; off < all.length; off += chunk.length) {
    const n = all.copy(chunk, 0, off, off + chunk.length);
    got.push(...s.push(chunk.subarray(0, n)));
    chunk.fill(0xee);
  }
  assert.equal(got.length, 6);
  got.forEach((g, k) => assertBytesEqual(g, want[k]!, `frame ${k} after later pushes`));
  assert.equal(new Set(got).size, 6, 'six distinct Buffer objects');
  got[0]!.fill(0); // a consumer scribbling on one frame leaves the others alone
  got.slice(1).forEach((g, k) => assertBytesEqual(g, want[k + 1]!, `frame ${k + 1} after frame 0 was changed`));
});

test('RawSplitter: a frame size below 1 is refused (it would never complete a frame)', () => {
  assert.throws(() => new RawSplitter(0), RangeError);
  assert.throws(() => new RawSplitter(-3), RangeError);
  assert.throws(() => new RawSplitter(1.5), RangeError);
});

// ---------------------------------------------------------------------------------------------
// decodeForModel with raw pixels

for (const layout of ['NCHW', 'NHWC'] as const) {
  test(`raw at exactly the model's size: the tensor is the hand computation on those bytes (${layout})`, async () => {
    const c = contract({ layout });
    const px = (x: number, y: number, ch: number) => (x * 31 + y * 17 + ch * 101 + 3) % 256;
    const img = rawImage(8, 6, 3, px);
    const pixels = await decodeForModel(img, c, LIMITS, { width: 8, height: 6, channels: 3 });
    assertTensorEqual(toTensor(pixels, c), reference(c, px));
  });

  test(`raw grey at the model's size: 1-channel model exact, 3-channel model R = G = B (${layout})`, async () => {
    const g = (x: number, y: number) => (x * 29 + y * 41) % 256;
    const img = rawImage(8, 6, 1, g);
    const fmt = { width: 8, height: 6, channels: 1 } as const;
    const c1 = contract({ layout, channels: 1, mean: [0.5], std: [0.25] });
    assertTensorEqual(toTensor(await decodeForModel(img, c1, LIMITS, fmt), c1), reference(c1, g));
    const c3 = contract({ layout });
    assertTensorEqual(toTensor(await decodeForModel(img, c3, LIMITS, fmt), c3), reference(c3, g));
  });

  test(`raw at 2× the model's size equals the same pixels as PNG, every fit (${layout})`, async () => {
    // Split halves (red | blue) and a gradient, 16×12 → 8×6; contain into 8×8 letterboxes.
    const f = (x: number, y: number, ch: number) =>
      y < 8 ? (x < 8 ? [250, 10, 20] : [15, 30, 240])[ch]! : (x * 16 + ch * 40 + y * 3) % 256;
    const fmt = { width: 16, height: 12, channels: 3 } as const;
    const img = rawImage(16, 12, 3, f);
    const png = await asPng(img, fmt);
    for (const fit of ['fill', 'cover', 'contain'] as const) {
      const c = contract({ layout, fit, ...(fit === 'contain' ? { height: 8, background: [9, 200, 7] } : {}) });
      const fromRaw = await decodeForModel(img, c, LIMITS, fmt);
      assertBytesEqual(fromRaw, await decodeForModel(png, c, LIMITS), `${fit}`);
      assert.equal(toTensor(fromRaw, c).length, c.width * c.height * 3);
    }
    // A solid colour stays exactly its colour through the resize.
    const solid = rawImage(16, 12, 3, (_x, _y, ch) => [200, 100, 50][ch]!);
    const c = contract({ layout });
    assertTensorEqual(
      toTensor(await decodeForModel(solid, c, LIMITS, fmt), c),
      reference(c, (_x, _y, ch) => [200, 100, 50][ch]!),
    );
  });

  test(`raw RGB to a 1-channel model and raw grey to a 3-channel model equal the PNG path (${layout})`, async () => {
    const rgb = rawImage(8, 6, 3, (x, y, ch) => (x * 30 + y * 20 + ch * 70) % 256);
    const grey = rawImage(16, 12, 1, (x, y) => (x * 13 + y * 19) % 256);
    const c1 = contract({ layout, channels: 1, mean: [0.5], std: [0.25] });
    const c3 = contract({ layout });
    const cases: [Buffer, RawFormat, ModelContract, string][] = [
      [rgb, { width: 8, height: 6, channels: 3 }, c1, 'RGB at the model size → grey'],
      [grey, { width: 16, height: 12, channels: 1 }, c3, 'grey at 2× → RGB'],
      [grey, { width: 16, height: 12, channels: 1 }, c1, 'grey at 2× → grey'],
    ];
    for (const [img, fmt, c, what] of cases) {
      const fromRaw = await decodeForModel(img, c, LIMITS, fmt);
      assertBytesEqual(fromRaw, await decodeForModel(await asPng(img, fmt), c, LIMITS), what);
      assert.equal(fromRaw.length, c.width * c.height * c.channels, what);
    }
  });
}

test('raw pixels at the model size are a copy: the frame keeps its bytes whatever happens to the tensor input', async () => {
  const c = contract();
  const img = rawImage(8, 6, 3, (x, y, ch) => (x + y * 8 + ch * 50) % 256);
  const keep = Buffer.from(img);
  const pixels = await decodeForModel(img, c, LIMITS, { width: 8, height: 6, channels: 3 });
  assertBytesEqual(pixels, keep, 'pixels');
  assert.notEqual(pixels.buffer, img.buffer, 'not a view of the frame');
  pixels.fill(0);
  assertBytesEqual(img, keep, 'frame after the pixels were changed');
  img.fill(1);
  assert.ok(
    pixels.every((v) => v === 0),
    'pixels after the frame was changed',
  );
});

test('malformed raw frames are DecodeErrors: short, long, zero or fractional size, 2 channels, over max pixels', async () => {
  const c = contract();
  const ok = { width: 8, height: 6, channels: 3 } as const;
  const good = Buffer.alloc(8 * 6 * 3, 7);
  const bad: [Buffer, RawFormat, RegExp, typeof LIMITS?][] = [
    [good.subarray(0, good.length - 1), ok, /143 bytes; 8×6×3 = 144 expected/],
    [Buffer.alloc(0), ok, /0 bytes/],
    [Buffer.concat([good, Buffer.alloc(1)]), ok, /145 bytes/],
    [good, { width: 0, height: 6, channels: 3 }, /not valid/],
    [good, { width: 8, height: -6, channels: 3 }, /not valid/],
    [good, { width: 7.5, height: 6, channels: 3 }, /not valid/],
    [good, { width: Number.NaN, height: 6, channels: 3 }, /not valid/],
    [good, { width: 8, height: 6, channels: 2 as 3 }, /not valid/],
    [good, { width: 8, height: 6, channels: 4 as 3 }, /not valid/],
    // 48 pixels over a limit of 40: refused before any length check or allocation.
    [good, ok, /exceeds max_image_pixels/, { maxPixels: 40 }],
    [Buffer.alloc(3), { width: 100_000, height: 100_000, channels: 3 }, /exceeds max_image_pixels/],
  ];
  for (const [img, fmt, msg, limits] of bad)
    await assert.rejects(
      decodeForModel(img, c, limits ?? LIMITS, fmt),
      (e: Error) => e instanceof DecodeError && msg.test(e.message),
      `${fmt.width}×${fmt.height}×${fmt.channels}, ${img.length} bytes`,
    );
  // At the limit exactly: accepted.
  assert.equal((await decodeForModel(good, c, { maxPixels: 48 }, ok)).length, 144);
});

// ---------------------------------------------------------------------------------------------
// rawScaleFilter and the ffmpeg arguments in raw mode

const target = (over: Partial<RawTarget> = {}): RawTarget => ({
  width: 224,
  height: 160,
  channels: 3,
  fit: 'fill',
  background: [0, 0, 0],
  ...over,
});
const FLAGS = 'flags=lanczos+accurate_rnd+full_chroma_int+full_chroma_inp';

test('rawScaleFilter: fill stretches, cover crops the centre, contain pads centred with the background', () => {
  assert.equal(rawScaleFilter(target()), `scale=224:160:${FLAGS},format=rgb24`);
  // The crop rounds as libvips does (sharp CalculateCrop: the odd pixel is cropped on the left/top).
  assert.equal(
    rawScaleFilter(target({ fit: 'cover' })),
    `scale=224:160:force_original_aspect_ratio=increase:${FLAGS},crop=224:160:floor((iw-ow+1)/2):floor((ih-oh+1)/2),format=rgb24`,
  );
  assert.equal(
    rawScaleFilter(target({ fit: 'contain', background: [200, 30, 9] })),
    `scale=224:160:force_original_aspect_ratio=decrease:${FLAGS},pad=224:160:(ow-iw)/2:(oh-ih)/2:color=0xc81e09,format=rgb24`,
  );
});

test('rawScaleFilter: a grey model gets RGB from ffmpeg (the grey conversion is the one encoded frames get)', () => {
  assert.equal(rawScaleFilter(target({ channels: 1 })), `scale=224:160:${FLAGS},format=rgb24`);
  // Contain: the pad is the grey sharp gives a 1-band image for this background (Rec. 709 weights),
  // so the border is that grey once converted.
  assert.equal(
    rawScaleFilter(target({ channels: 1, fit: 'contain', background: [200, 30, 90] })),
    `scale=224:160:force_original_aspect_ratio=decrease:${FLAGS},pad=224:160:(ow-iw)/2:(oh-ih)/2:color=0x464646,format=rgb24`,
  );
});

test("rawScaleFilter: a grey model's pad is exactly the border grey decodeForModel gives, for any background", async () => {
  const img = await asPng(
    rawImage(20, 10, 3, () => 128),
    { width: 20, height: 10, channels: 3 },
  );
  // Greys whose weighted sum lands just under the integer (5 → 4.999999999999999) and colours
  // whose fraction is above one half: sharp stores the value through a float and truncates.
  const backgrounds: [number, number, number][] = [
    [0, 0, 0],
    [5, 5, 5],
    [13, 13, 13],
    [255, 255, 255],
    [200, 30, 90],
    [200, 30, 91],
    [255, 0, 0],
    [3, 200, 255],
  ];
  for (const background of backgrounds) {
    const c = contract({ channels: 1, mean: [0], std: [1], fit: 'contain', width: 8, height: 8, background });
    const border = (await decodeForModel(img, c, LIMITS))[0]!;
    const hex = /color=0x([0-9a-f]{6})/.exec(rawScaleFilter(c))![1]!;
    assert.equal(hex, border.toString(16).padStart(2, '0').repeat(3), `background ${background.join(',')}`);
  }
});

test('ffmpeg arguments in raw mode: the filter, rawvideo rgb24 on stdout; the target is read at every call', () => {
  let t = target({ width: 64, height: 48 });
  const s = new FfmpegSource(
    'cam',
    {
      input: 'rtsp://user:pw@cam.local/stream',
      format: 'raw',
      target: () => t,
      inputArgs: [],
      fps: 5,
      reconnectMs: 100,
      reconnectMaxMs: 1000,
      ffmpeg: '/usr/bin/ffmpeg',
    },
    16 * 1024 * 1024,
    pino({ level: 'silent' }),
  );
  const a = s.args();
  assert.deepEqual(a.slice(a.indexOf('-vf')), [
    '-vf',
    `fps=5,${rawScaleFilter(t)}`,
    '-f',
    'rawvideo',
    '-pix_fmt',
    'rgb24',
    'pipe:1',
  ]);
  t = target({ width: 32, height: 32, fit: 'cover', channels: 1 });
  assert.deepEqual(s.args().slice(s.args().indexOf('-vf') + 1), [
    `fps=5,${rawScaleFilter(t)}`,
    '-f',
    'rawvideo',
    '-pix_fmt',
    'rgb24',
    'pipe:1',
  ]);
  assert.equal(s.view().format, 'raw');
  const noTarget = new FfmpegSource(
    'cam',
    { input: 'x.mp4', format: 'raw', inputArgs: [], fps: 5, reconnectMs: 100, reconnectMaxMs: 100, ffmpeg: 'ffmpeg' },
    1024,
    pino({ level: 'silent' }),
  );
  assert.throws(() => noTarget.args(), /model input size/);
});
