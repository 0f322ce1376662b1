// Raw frames through Debian's ffmpeg (format: raw, the default): ffmpeg scales a still image to the
// model's input and writes rawvideo; the gateway cuts it into frames and feeds them to real ONNX
// inference without decoding. What a user relies on: the expected labels come out, the frame
// ffmpeg delivers is (within resampling noise) what decodeForModel gives for the same image with
// the model's fit, review frames are PNGs, an oversized raw frame is refused at start, and a
// killed ffmpeg never lets half a frame through.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { GatewayError } from '../../src/errors.js';
import type { ModelContract } from '../../src/vision/contract.js';
import { decodeForModel } from '../../src/vision/decode.js';
import { FfmpegSource, rawScaleFilter, type RawTarget } from '../../src/vision/sources/ffmpeg.js';
import type { Frame, RawFormat } from '../../src/vision/types.js';
import { VisionService } from '../../src/vision/service.js';
import { partPng, partSvg, rng, DEMO_LABELS, type DemoLabel } from '../../scripts/vision-synth.js';
import { captureLog, ffmpegChildren, RecordingPublisher, until, visionConfig } from './vision-harness.js';

const FFMPEG = '/usr/bin/ffmpeg';
const skip = !existsSync(FFMPEG) && 'ffmpeg not installed (scripts/test-peers.txt)';
const tmp = () => mkdtempSync(join(tmpdir(), 'egw-vision-raw-'));
/** A still image as an endless stream at the input's pace (image2 demuxer, 25 fps). */
const STILL = ['-loop', '1', '-re'];

function rawSource(input: string, target: RawTarget, extra: { reconnectMs?: number } = {}) {
  const frames: Frame[] = [];
  const src = new FfmpegSource(
    'raw',
    {
      input,
      format: 'raw',
      target: () => target,
      inputArgs: STILL,
      fps: 10,
      reconnectMs: extra.reconnectMs ?? 100,
      reconnectMaxMs: 400,
      ffmpeg: FFMPEG,
    },
    8 * 1024 * 1024,
    captureLog().log,
  );
  return { src, frames, start: () => src.start((f) => frames.push(f)) };
}

const view = (s: FfmpegSource) => s.view() as { frames: number; starts: number; exits: number; format: string };

test(
  'a still image through ffmpeg raw frames and real inference gives the expected labels; review keeps PNGs',
  { skip },
  async () => {
    const dir = tmp();
    const reviewDir = join(dir, 'review');
    // One part of each class at 160×160 (seed 31): the demo model labels all four right from PNG.
    const labels = DEMO_LABELS;
    const r = rng(31);
    const stills = new Map<DemoLabel, string>();
    for (const label of labels) {
      const f = join(dir, `${label}.png`);
      writeFileSync(f, await partPng(label, r, 160));
      stills.set(label, f);
    }
    const pub = new RecordingPublisher();
    const svc = new VisionService({
      config: visionConfig({
        // format is not set: raw is the default.
        cameras: labels.map((label) => ({
          id: `cam-${label}`,
          kind: 'ffmpeg',
          input: stills.get(label)!,
          input_args: STILL,
          fps: 4,
          reconnect_ms: 200,
        })),
        deadline_ms: 5000,
        review: { dir: reviewDir, keep: ['good', 'defective', 'uncertain'], max_files: 500 },
      }),
      log: captureLog().log,
      publisher: pub,
    });
    await svc.start();
    try {
      const decided = (cam: string) => pub.results().filter((x) => x.cameraId === cam && x.verdict !== 'failsafe');
      await pub.until(() => labels.every((l) => decided(`cam-${l}`).length >= 4), 30000, 'raw results');
      // The same image as an encoded frame (sharp decode): the raw path must agree with it.
      for (const label of labels)
        svc.push({
          cameraId: 'png',
          frameId: label,
          partId: null,
          captureTs: Date.now(),
          image: readFileSync(stills.get(label)!),
        });
      await pub.until(
        () => pub.results().filter((x) => x.cameraId === 'png').length === labels.length,
        15000,
        'PNG results',
      );
      for (const label of labels) {
        assert.equal(pub.results().find((x) => x.cameraId === 'png' && x.frameId === label)!.label, label, 'PNG path');
        const got = decided(`cam-${label}`);
        assert.ok(
          got.every((x) => x.label === label),
          `cam-${label}: ${got.map((x) => x.label).join(',')}`,
        );
        assert.ok(got.every((x) => x.verdict === (label === 'good' ? 'good' : 'defective')));
      }
      const v = svc.view();
      assert.equal(v.counters.frameErrors, 0);
      assert.equal((v.cameras['cam-good'] as { format: string }).format, 'raw');
      // Review frames: PNG (lossless), 64×64 RGB — exactly the pixels ffmpeg gave the model.
      await until(
        () => readdirSync(reviewDir).filter((f) => f.includes('-cam-spot-')).length >= 2,
        10000,
        'review PNGs',
      );
      const file = readdirSync(reviewDir).find((f) => f.includes('-cam-spot-defective-'))!;
      assert.match(file, /\.png$/);
      const png = readFileSync(join(reviewDir, file));
      const meta = await sharp(png).metadata();
      assert.deepEqual([meta.format, meta.width, meta.height, meta.channels], ['png', 64, 64, 3]);
      const c: RawTarget = { width: 64, height: 64, channels: 3, fit: 'fill', background: [0, 0, 0] };
      const want = execFileSync(FFMPEG, [
        ...['-hide_banner', '-loglevel', 'error', '-i', stills.get('spot')!, '-vf', rawScaleFilter(c)],
        ...['-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'],
      ]);
      assert.ok((await sharp(png).raw().toBuffer()).equals(want), 'review PNG pixels = the raw frame');
    } finally {
      await svc.stop();
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(ffmpegChildren(), '');
  },
);

test('raw frames pushed by a camera integration: any size decided as its PNG is; a malformed one is a counted fail-safe', async () => {
  const pub = new RecordingPublisher();
  const svc = new VisionService({
    config: visionConfig({
      deadline_ms: 10000,
      // 14 frames pushed at once: the default queue of 4 would drop the oldest on a loaded machine.
      queue_per_camera: 100,
      reject: [{ kind: 'command', device_id: 'gate', command: { coil: 0 } }],
    }),
    log: captureLog().log,
    publisher: pub,
  });
  await svc.start();
  try {
    const r = rng(31);
    const parts: { label: DemoLabel; png: Buffer }[] = [];
    for (const label of DEMO_LABELS) parts.push({ label, png: await partPng(label, r, 160) });
    const push = (frameId: string, image: Buffer, raw?: RawFormat) =>
      svc.push({
        cameraId: 'line',
        frameId,
        partId: `P-${frameId}`,
        captureTs: Date.now(),
        image,
        ...(raw ? { raw } : {}),
      });
    for (const { label, png } of parts) {
      push(`png-${label}`, png);
      // 160×160 RGB (resized by libvips) and 64×64 (the model's size: used as is) raw pixels.
      const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      push(`raw160-${label}`, data, { width: info.width, height: info.height, channels: 3 });
      const small = await sharp(png).removeAlpha().resize(64, 64, { fit: 'fill' }).raw().toBuffer();
      push(`raw64-${label}`, small, { width: 64, height: 64, channels: 3 });
    }
    const good = parts[0]!.png;
    push('short', Buffer.alloc(64 * 64 * 3 - 1), { width: 64, height: 64, channels: 3 });
    push('no-pixels', good, { width: 0, height: 64, channels: 3 });
    await pub.until(() => pub.results().length >= parts.length * 3 + 2, 20000, 'every frame decided');
    const by = new Map(pub.results().map((x) => [x.frameId, x]));
    for (const { label } of parts) {
      const png = by.get(`png-${label}`)!;
      assert.equal(png.label, label);
      for (const k of ['raw160', 'raw64']) {
        const x = by.get(`${k}-${label}`)!;
        assert.equal(x.label, label, `${k}-${label}`);
        // Same pixels as the PNG: the same scores.
        if (k === 'raw160') assert.deepEqual(x.scores, png.scores);
        else assert.ok(Math.abs(x.scores[label]! - png.scores[label]!) < 0.05, `${k}-${label} scores`);
      }
    }
    for (const id of ['short', 'no-pixels'])
      assert.deepEqual(by.get(id)!.failSafe, { reason: 'frame_error', action: 'reject' });
    assert.equal(svc.view().counters.frameErrors, 2);
    const rejected = pub.commands().map((c) => c.body.part_id);
    assert.ok(rejected.includes('P-short') && rejected.includes('P-no-pixels'));
  } finally {
    await svc.stop();
  }
});

/** Per-channel mean absolute difference, overall and on the outermost rows and columns. */
function compare(a: Uint8Array, b: Uint8Array, w: number, h: number, ch: number) {
  assert.equal(a.length, b.length);
  const mad = new Array<number>(ch).fill(0);
  const edge = new Array<number>(ch).fill(0);
  let max = 0;
  let edges = 0;
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const onEdge = x === 0 || y === 0 || x === w - 1 || y === h - 1;
      if (onEdge) edges++;
      for (let c = 0; c < ch; c++) {
        const d = Math.abs(a[(y * w + x) * ch + c]! - b[(y * w + x) * ch + c]!);
        mad[c]! += d;
        if (onEdge) edge[c]! += d;
        max = Math.max(max, d);
      }
    }
  return { mad: mad.map((s) => s / (w * h)), edge: edge.map((s) => s / edges), max };
}

/** A camera-like still: a part on the belt, a red block top-left and a blue block bottom-right. */
async function still(w: number, h: number, seed: number): Promise<Buffer> {
  const markers = Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}">` +
      `<rect x="0" y="0" width="${w >> 2}" height="${h >> 2}" fill="rgb(250,20,20)"/>` +
      `<rect x="${w - (w >> 2)}" y="${h - (h >> 2)}" width="${w >> 2}" height="${h >> 2}" fill="rgb(20,20,250)"/></svg>`,
  );
  return sharp(Buffer.from(partSvg('spot', rng(seed), Math.max(w, h))))
    .extract({ left: 0, top: 0, width: w, height: h })
    .composite([{ input: markers }])
    .png()
    .toBuffer();
}

test(
  'geometry: the raw frame ffmpeg delivers agrees with decodeForModel for fill, cover and contain',
  { skip },
  async (t: TestContext) => {
    const dir = tmp();
    // Odd and even sizes, both aspect ratios: cover crops an odd margin, contain pads an odd one
    // (200×90 → 64×29, 35 rows of border), the background is a colour that shows misplacement.
    const cases: { w: number; h: number; model: RawTarget; jpeg?: boolean }[] = [];
    const bg: [number, number, number] = [200, 30, 90];
    for (const [w, h] of [
      [321, 241],
      [200, 90],
      [90, 161],
    ] as const)
      for (const fit of ['fill', 'cover', 'contain'] as const)
        cases.push({ w, h, model: { width: 64, height: 64, channels: 3, fit, background: bg } });
    cases.push({ w: 161, h: 99, model: { width: 64, height: 64, channels: 3, fit: 'fill', background: bg } });
    cases.push({ w: 320, h: 180, model: { width: 48, height: 32, channels: 3, fit: 'cover', background: bg } });
    for (const fit of ['fill', 'contain'] as const)
      cases.push({ w: 200, h: 90, model: { width: 64, height: 64, channels: 1, fit, background: bg } });
    // A camera's JPEG (4:2:0 chroma): libjpeg's and swscale's chroma upsampling differ a little.
    for (const fit of ['fill', 'cover'] as const)
      cases.push({ w: 640, h: 480, jpeg: true, model: { width: 64, height: 64, channels: 3, fit, background: bg } });
    const worst = { mad: 0, edge: 0 };
    const failures: string[] = [];
    try {
      for (const { w, h, model, jpeg } of cases) {
        const file = join(dir, `still-${w}x${h}.${jpeg ? 'jpg' : 'png'}`);
        const png = await still(w, h, w * h);
        const img = jpeg ? await sharp(png).jpeg({ quality: 90 }).toBuffer() : png;
        writeFileSync(file, img);
        const s = rawSource(file, model, { reconnectMs: 60000 });
        await s.start();
        try {
          await until(() => s.frames.length >= 1, 20000, `a raw frame for ${w}×${h} ${model.fit}`);
        } finally {
          await s.src.stop();
        }
        const f = s.frames[0]!;
        const c = { ...model, layout: 'NCHW' } as ModelContract;
        const want = await decodeForModel(img, c, { maxPixels: 50_000_000 });
        // What the model sees: the raw frame as decodeForModel turns it into the model's pixels.
        const got = await decodeForModel(f.image, c, { maxPixels: 50_000_000 }, f.raw);
        const d = compare(got, want, model.width, model.height, model.channels);
        const what = `${w}×${h}${jpeg ? ' JPEG' : ''} → ${model.width}×${model.height}×${model.channels} ${model.fit}`;
        t.diagnostic(
          `${what}: MAD ${d.mad.map((m) => m.toFixed(2)).join('/')}, edge ${d.edge.map((m) => m.toFixed(2)).join('/')}, max ${d.max}`,
        );
        worst.mad = Math.max(worst.mad, ...d.mad);
        worst.edge = Math.max(worst.edge, ...d.edge);
        // Resampling noise (lanczos in swscale vs libvips) is a fraction of a level on average; a
        // crop or pad one pixel off, or a wrong colour, is several levels.
        if (d.mad.some((m) => m > 1.5))
          failures.push(`${what}: mean abs difference ${d.mad.map((m) => m.toFixed(2)).join('/')}`);
        if (d.edge.some((m) => m > 3))
          failures.push(`${what}: border mean abs difference ${d.edge.map((m) => m.toFixed(2)).join('/')}`);
        // Contain: the top-left pixel is border, exactly the background in both.
        const px = (b: Uint8Array) => Array.from(b.subarray(0, model.channels)).join(',');
        if (model.fit === 'contain' && px(got) !== px(want))
          failures.push(`${what}: background ${px(got)} ≠ ${px(want)}`);
      }
      t.diagnostic(`worst: MAD ${worst.mad.toFixed(2)}, border MAD ${worst.edge.toFixed(2)}`);
      assert.deepEqual(failures, []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(ffmpegChildren(), '');
  },
);

test(
  'a swap to a model whose raw frame exceeds max_image_bytes keeps ffmpeg at the running size (said in lastError), also across a reconnect',
  { skip },
  async () => {
    const dir = tmp();
    const file = join(dir, 'part.png');
    writeFileSync(file, await partPng('good', rng(3)));
    let target: RawTarget = { width: 64, height: 64, channels: 3, fit: 'fill', background: [0, 0, 0] };
    const frames: Frame[] = [];
    // 64×64×3 = 12288 bytes fit; 128×128×3 = 49152 do not.
    const src = new FfmpegSource(
      'cam',
      {
        input: file,
        format: 'raw',
        target: () => target,
        inputArgs: STILL,
        fps: 10,
        reconnectMs: 100,
        reconnectMaxMs: 100,
        ffmpeg: FFMPEG,
      },
      20000,
      captureLog().log,
    );
    try {
      await src.start((f) => frames.push(f));
      await until(() => frames.length >= 2, 20000, 'frames at 64×64');
      target = { ...target, width: 128, height: 128 };
      src.retarget();
      const view = () => src.view() as { rawSize?: string; starts: number; lastError: string | null };
      assert.equal(view().starts, 1, 'no restart for a size that cannot be sent');
      assert.match(
        view().lastError ?? '',
        /model input 128×128 exceeds max_image_bytes 20000 as raw RGB; ffmpeg stays at 64×64/,
      );
      // A reconnect (ffmpeg killed) starts again at the running size, not the refused one.
      const pid = src.pid!;
      process.kill(pid, 'SIGKILL');
      await until(() => view().starts >= 2 && frames.length >= 6, 20000, 'frames after the reconnect');
      assert.equal(view().rawSize, '64x64x3');
      assert.ok(frames.every((f) => f.raw?.width === 64 && f.image.length === 12288));
    } finally {
      await src.stop();
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(ffmpegChildren(), '');
  },
);

test(
  'a raw frame larger than max_image_bytes makes start() fail with a clear message; no ffmpeg left',
  { skip },
  async () => {
    const dir = tmp();
    const file = join(dir, 'part.png');
    writeFileSync(file, await partPng('good', rng(3)));
    const svc = new VisionService({
      config: visionConfig({
        // 64×64×3 = 12288 bytes per raw frame at the demo model's input.
        cameras: [{ id: 'tiny', kind: 'ffmpeg', input: file, input_args: STILL, fps: 5 }],
        max_image_bytes: 4096,
      }),
      log: captureLog().log,
      publisher: new RecordingPublisher(),
    });
    try {
      await assert.rejects(
        svc.start(),
        (e: unknown) =>
          e instanceof GatewayError &&
          e.code === 'EGW_SERVICE_START' &&
          /raw 64×64×3 frame exceeds max_image_bytes 4096/.test(e.message),
      );
      assert.equal(ffmpegChildren(), '');
    } finally {
      await svc.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'ffmpeg killed mid-frame: no partial frame reaches the sink, the source restarts, frames flow again',
  { skip },
  async () => {
    const dir = tmp();
    const file = join(dir, 'part.png');
    writeFileSync(file, await partPng('chip', rng(11), 256));
    // 640×480×3 = 921600 bytes a frame: far more than the stdout socket buffers (libuv's stdio
    // pipes are socketpairs, 208 KiB by default), so ffmpeg writes a frame in pieces and a kill
    // after the first piece leaves most of the frame unwritten.
    const target: RawTarget = { width: 640, height: 480, channels: 3, fit: 'fill', background: [0, 0, 0] };
    const size = 640 * 480 * 3;
    const s = rawSource(file, target);
    // Observe each ffmpeg child's stdout from the moment it is spawned (before the source's own
    // listener): bytes per child, and a SIGKILL while a frame is half written.
    const children: { pid: number; bytes: number; frames: number; killedAt: number | null }[] = [];
    let current: (typeof children)[number] | null = null;
    let kills = 2;
    let child: ChildProcess | null = null;
    Object.defineProperty(s.src, 'child', {
      get: () => child,
      set: (c: ChildProcess | null) => {
        child = c;
        if (!c) return;
        const rec = { pid: c.pid!, bytes: 0, frames: 0, killedAt: null as number | null };
        children.push(rec);
        current = rec;
        c.stdout!.on('data', (d: Buffer) => {
          rec.bytes += d.length;
          if (kills > 0 && rec.killedAt === null && rec.bytes % size !== 0 && rec.bytes > size) {
            kills--;
            rec.killedAt = rec.bytes;
            process.kill(rec.pid, 'SIGKILL');
          }
        });
      },
    });
    const frames: Frame[] = [];
    await s.src.start((f) => {
      frames.push(f);
      current!.frames++;
    });
    try {
      assert.equal(children.length, 1, 'the spawned child is seen (FfmpegSource keeps it in `child`)');
      await until(() => children.length >= 3 && children[2]!.frames >= 3, 30000, 'frames after two kills');
    } finally {
      await s.src.stop();
      rmSync(dir, { recursive: true, force: true });
    }
    const v = view(s.src);
    assert.ok(v.starts >= 3 && v.exits >= 2, `starts ${v.starts}, exits ${v.exits}`);
    const ref = frames[0]!.image;
    assert.equal(ref.length, size);
    frames.forEach((f, i) => {
      assert.equal(f.image.length, size, `frame ${i} size`);
      assert.deepEqual(f.raw, { width: 640, height: 480, channels: 3 });
      assert.ok(f.image.equals(ref), `frame ${i} is the whole still image, not a spliced one`);
    });
    for (const c of children.slice(0, 2)) {
      assert.notEqual(c.killedAt, null);
      assert.notEqual(c.bytes % size, 0, `child ${c.pid} ended mid-frame (${c.bytes} bytes)`);
      assert.equal(c.frames, Math.floor(c.bytes / size), `child ${c.pid}: whole frames only`);
    }
    assert.equal(ffmpegChildren(), '');
  },
);
