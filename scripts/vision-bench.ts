/**
 * Vision benchmark, one run, CPU provider:
 *
 *   npm run build
 *   node dist/scripts/vision-make-models.js mobilenetv2        # once: data/vision/mobilenetv2-random.onnx
 *   node dist/scripts/vision-bench.js [FRAMES] [ROUNDS]
 *   EGW_VISION_INTRA_OP=2 node dist/scripts/vision-bench.js   # another vision.intra_op_threads
 *
 * For the demo model and a MobileNetV2 (random weights; timing only), on 640×480 JPEG frames:
 * - bare `session.run` on a prepared tensor (the reference: inference-only rate);
 * - per-stage medians and end-to-end latency, one frame at a time (ratio to bare; target ≤ 1.25);
 * - throughput with overlap (all frames queued: decode of the next overlaps inference) in ROUNDS
 *   rounds, each against the inference-only rate measured around it, and without (one at a
 *   time), as a fraction of the inference-only rate (target ≥ 0.9);
 * - reject-action latency from capture (p50/p99; every part rejected: threshold 0);
 * - RSS with vision on.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { Value } from '@sinclair/typebox/value';
import * as ort from 'onnxruntime-node';
import { pino } from 'pino';
import sharp from 'sharp';
import type { PublishOutcome, PublishRequest, Publisher } from '../src/publisher/types.js';
import { VisionConfigSchema, type VisionConfig } from '../src/vision/config.js';
import { tensorDims, toTensor, type ModelContract } from '../src/vision/contract.js';
import { configureSharp, decodeForModel } from '../src/vision/decode.js';
import { VisionService } from '../src/vision/service.js';
import type { Stage } from '../src/vision/stats.js';
import type { Frame, RawFormat } from '../src/vision/types.js';
import { DEMO_LABELS, partSvg, rng } from './vision-synth.js';

const FRAMES = Number(process.argv[2] ?? 60);
/** Overlap rounds (each between bare-rate measurements). */
const ROUNDS = Number(process.argv[3] ?? 10);
/** The camera frame: VGA, as a small line camera or an RTSP substream delivers. */
const FRAME_W = 640;
const FRAME_H = 480;
const repo = process.cwd();

class CountingPublisher implements Publisher {
  results = 0;
  commands = 0;
  /** Sum of the worker's session.run times of the published results. */
  inferenceMs = 0;
  private wait: { n: number; resolve: () => void } | null = null;
  publish(req: PublishRequest): Promise<PublishOutcome> {
    if (req.topic.startsWith('inspection/')) {
      this.results++;
      const r = JSON.parse(String(req.payload)) as { latencyMs: { inference: number } };
      this.inferenceMs += r.latencyMs.inference;
    } else if (req.topic.startsWith('commands/')) this.commands++;
    if (this.wait && this.results >= this.wait.n) {
      this.wait.resolve();
      this.wait = null;
    }
    return Promise.resolve({ local: true, uplink: false });
  }
  until(n: number): Promise<void> {
    if (this.results >= n) return Promise.resolve();
    return new Promise((resolve) => (this.wait = { n, resolve }));
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function frames(n: number): Promise<Buffer[]> {
  const r = rng(123);
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const label = DEMO_LABELS[i % DEMO_LABELS.length]!;
    out.push(
      await sharp(Buffer.from(partSvg(label, r, 480)))
        .resize(FRAME_W, FRAME_H, { fit: 'fill' })
        .jpeg({ quality: 85 })
        .toBuffer(),
    );
  }
  return out;
}

function config(model: string): VisionConfig {
  return Value.Default(
    VisionConfigSchema,
    structuredClone({
      enabled: true,
      model: { path: model },
      queue_per_camera: 1000,
      deadline_ms: 600000,
      default_defect_threshold: 0,
      reject: [{ kind: 'command', device_id: 'gate' }],
      publish_good: 'all',
      // EGW_VISION_INTRA_OP=2: both the bare reference and the pipeline with two intra-op threads.
      ...(process.env.EGW_VISION_INTRA_OP ? { intra_op_threads: Number(process.env.EGW_VISION_INTRA_OP) } : {}),
    }),
  ) as VisionConfig;
}

/**
 * `jpeg`: the camera's JPEG frames, decoded and resized by the gateway. `raw`: the same frames as
 * raw RGB at the model's input size, as ffmpeg's `format: raw` (or an industrial camera) delivers
 * them: no decode, no resize.
 */
type FrameFormat = 'jpeg' | 'raw';

async function bench(
  name: string,
  model: string,
  jpegs: Buffer[],
  format: FrameFormat,
): Promise<Record<string, unknown>> {
  const cfg = config(model);
  // Reference: bare session.run on a prepared tensor, on this thread, same thread settings.
  const s = await ort.InferenceSession.create(model, {
    intraOpNumThreads: cfg.intra_op_threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
  const pub = new CountingPublisher();
  const svc = new VisionService({ config: cfg, log: pino({ level: 'warn' }), publisher: pub });
  await svc.start();
  const c = svc.view().model!;
  const contract = {
    inputName: s.inputNames[0]!,
    outputName: s.outputNames[0]!,
    layout: c.input.layout as 'NCHW' | 'NHWC',
    width: c.input.width,
    height: c.input.height,
    channels: c.input.channels as 1 | 3,
    scale: 1 / 255,
    mean: [0, 0, 0],
    std: [1, 1, 1],
    labels: c.labels,
    goodLabels: c.goodLabels,
    fit: 'fill' as const,
    background: [0, 0, 0] as [number, number, number],
  };
  const raw: RawFormat = { width: contract.width, height: contract.height, channels: contract.channels as 1 | 3 };
  const imgs =
    format === 'jpeg'
      ? jpegs
      : await Promise.all(jpegs.map(async (j) => Buffer.from(await decodeForModel(j, contract, { maxPixels: 1e8 }))));
  const frame = (id: string, i: number): Frame => ({
    cameraId: 'c',
    frameId: id,
    partId: id,
    captureTs: Date.now(),
    image: imgs[i % imgs.length]!,
    ...(format === 'raw' ? { raw } : {}),
  });
  const px = new Uint8Array(contract.width * contract.height * 3).fill(128);
  const feed = { [contract.inputName]: new ort.Tensor('float32', toTensor(px, contract), tensorDims(contract)) };
  for (let i = 0; i < 3; i++) await s.run(feed);
  const bareRun = async (n: number, into: number[]) => {
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      await s.run(feed);
      into.push(performance.now() - t);
    }
  };
  // The machine is shared and noisy: bare runs and pipeline frames alternate, so both see the
  // same load (paired samples), and the rate reference is taken right before and after.
  const bare: number[] = [];
  const e2e: number[] = [];
  let done = 0;
  let seqMs = 0;
  for (let i = 0; i < FRAMES; i++) {
    await bareRun(1, bare);
    const t = performance.now();
    svc.push(frame(`s${i}`, i));
    await pub.until(++done);
    e2e.push(performance.now() - t);
    seqMs += performance.now() - t;
  }
  const seqFps = (FRAMES / seqMs) * 1000;
  const seqView = svc.view();
  const stages = seqView.latencyMs;
  const bareMs = median(bare);

  // All frames queued at once: decode of frame n+1 overlaps inference of frame n (two frames in
  // flight to the worker). ROUNDS rounds, each between two back-to-back bare runs of as many
  // frames (the inference-only rate of that moment: the machine is shared and its load moves).
  // One histogram per round: a histogram disabled and enabled again would count the bare run
  // between as one long delay.
  const loops: { p99: number; max: number }[] = [];
  const rounds: { overlapFps: number; inferenceOnlyFps: number; ratio: number; workerBusy: number }[] = [];
  let bareFrames = 0;
  let bareMsSum = 0;
  let pipeMsSum = 0;
  // CPU per frame of the whole process (all threads: this one, the worker, libuv's pool), bare vs
  // pipelined: independent of the machine's load, and the ratio a saturated machine converges to.
  let bareCpuUs = 0;
  let pipeCpuUs = 0;
  const cpuUs = () => {
    const u = process.cpuUsage();
    return u.user + u.system;
  };
  for (let round = 0; round < ROUNDS; round++) {
    const rate: number[] = [];
    let c0 = cpuUs();
    await bareRun(FRAMES, rate);
    bareCpuUs += cpuUs() - c0;
    const loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    c0 = cpuUs();
    const inf0 = pub.inferenceMs;
    const t2 = performance.now();
    for (let i = 0; i < FRAMES; i++) svc.push(frame(`o${round}-${i}`, i));
    done += FRAMES;
    await pub.until(done);
    const pipeMs = performance.now() - t2;
    const overlapFps = (FRAMES / pipeMs) * 1000;
    // The share of the round the worker spent in session.run: 1 = it never waited for a frame.
    const workerBusy = (pub.inferenceMs - inf0) / pipeMs;
    pipeMsSum += pipeMs;
    pipeCpuUs += cpuUs() - c0;
    loop.disable();
    loops.push({ p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 });
    await bareRun(FRAMES, rate);
    // A rate: frames over the summed time (not a median).
    const rateMs = rate.reduce((a, b) => a + b, 0);
    bareFrames += rate.length;
    bareMsSum += rateMs;
    const inferenceOnlyFps = (rate.length / rateMs) * 1000;
    rounds.push({
      overlapFps: r2(overlapFps),
      inferenceOnlyFps: r2(inferenceOnlyFps),
      ratio: r2(overlapFps / inferenceOnlyFps),
      workerBusy: r2(workerBusy),
    });
  }
  await s.release();
  await svc.idle();
  await new Promise((r) => setTimeout(r, 50));
  const rss = process.memoryUsage().rss;
  await svc.stop();
  const ratios = rounds.map((x) => x.ratio);
  const inferenceOnlyFps = (bareFrames / bareMsSum) * 1000;
  const e2eMs = median(e2e);
  const st = (k: Stage) => stages[k]?.p50 ?? 0;
  return {
    model: name,
    input: `${c.input.width}x${c.input.height}`,
    frame:
      format === 'jpeg'
        ? `${FRAME_W}x${FRAME_H} JPEG, ${Math.round(median(imgs.map((b) => b.length)) / 1024)} KiB`
        : `raw ${raw.width}x${raw.height}x${raw.channels} (the model's input: ffmpeg format raw)`,
    frames: FRAMES,
    bareRunMs: r2(bareMs),
    stageMedianMs: {
      decode: st('decode'),
      preprocess: st('preprocess'),
      inference: st('inference'),
      total: st('total'),
    },
    // The figure: one frame from its bytes to its published verdict, alone in the
    // pipeline, over bare session.run on a prepared tensor (paired samples, medians).
    endToEndMedianMs: r2(e2eMs),
    endToEndVsBare: r2(e2eMs / bareMs),
    // What the stages add to the model: decode + preprocess + the rest (thread hops, decision, publish).
    endToEndBreakdownMs: {
      decode: st('decode'),
      preprocess: st('preprocess'),
      inference: st('inference'),
      other: r2(e2eMs - st('decode') - st('preprocess') - st('inference')),
    },
    inferenceOnlyFps: r2(inferenceOnlyFps),
    fpsWithoutOverlap: r2(seqFps),
    // Paired with the bare runs alternating with those frames.
    noOverlapVsInferenceOnly: r2(bare.reduce((a, b) => a + b, 0) / seqMs),
    overlapRounds: rounds,
    // All rounds together (frames over summed time, each side), and per round.
    overlapVsInferenceOnly: {
      all: r2((FRAMES * ROUNDS) / pipeMsSum / (bareFrames / bareMsSum)),
      median: median(ratios),
      min: Math.min(...ratios),
      workerBusyMedian: median(rounds.map((x) => x.workerBusy)),
    },
    cpuMsPerFrame: {
      bare: r2(bareCpuUs / 1000 / (FRAMES * ROUNDS)),
      pipeline: r2(pipeCpuUs / 1000 / (FRAMES * ROUNDS)),
      bareOverPipeline: r2(bareCpuUs / pipeCpuUs),
    },
    // One part at a time (queueing in the overlap run would be counted otherwise).
    rejectFromCaptureMs: { p50: stages.reject?.p50, p99: stages.reject?.p99, n: stages.reject?.n },
    rejects: pub.commands,
    eventLoopDelayDuringOverlapMs: {
      p99: r2(Math.max(...loops.map((l) => l.p99))),
      max: r2(Math.max(...loops.map((l) => l.max))),
    },
    rssMiB: r2(rss / 1048576),
  };
}

const r2 = (x: number) => Math.round(x * 100) / 100;

/**
 * CPU per frame of decodeForModel to 224×224 (fill) by camera frame size. libjpeg's DCT scaling
 * (sharp's shrink-on-load) applies only when both axes shrink by ≥ 3 (sharp lowers a factor-2
 * shrink to none for shrink < 3: "known libjpeg rounding errors"), so a 640×480 frame is decoded
 * whole and a 1280×960 one at 1/4.
 */
async function decodeBySize(): Promise<Record<string, number>> {
  configureSharp(1);
  const c = { width: 224, height: 224, channels: 3, fit: 'fill', background: [0, 0, 0] } as ModelContract;
  const out: Record<string, number> = {};
  const r = rng(5);
  for (const [w, h] of [
    [640, 480],
    [896, 672],
    [1280, 960],
    [1920, 1080],
  ] as const) {
    const img = await sharp(Buffer.from(partSvg('spot', r, 480)))
      .resize(w, h, { fit: 'fill' })
      .jpeg({ quality: 85 })
      .toBuffer();
    for (let i = 0; i < 5; i++) await decodeForModel(img, c, { maxPixels: 1e8 });
    const u0 = process.cpuUsage();
    for (let i = 0; i < 50; i++) await decodeForModel(img, c, { maxPixels: 1e8 });
    const u = process.cpuUsage(u0);
    out[`${w}x${h}`] = r2((u.user + u.system) / 1000 / 50);
  }
  return out;
}

/**
 * The ceiling of "throughput with overlap ÷ inference-only" for JPEG frames on this machine:
 * bare `session.run` alone vs the same runs while another thread decodes JPEG frames to 224×224
 * back to back (what the pipeline's decode does beside inference). Both cores busy, the runs slow
 * down (shared cache and memory bandwidth, not CPU time: a JS spin loop on the other core does not
 * slow them); no scheduling can make the overlapped pipeline faster than those slowed runs.
 */
async function contention(model: string, jpegs: Buffer[]): Promise<Record<string, number>> {
  const s = await ort.InferenceSession.create(model, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
  const dims = s.inputMetadata[0]!.isTensor ? s.inputMetadata[0]!.shape : [];
  const n = dims.slice(1).reduce<number>((a, d) => a * (typeof d === 'number' ? d : 1), 1);
  const feed = {
    [s.inputNames[0]!]: new ort.Tensor('float32', new Float32Array(n).fill(0.5), [1, ...dims.slice(1)] as number[]),
  };
  const runs = async (k: number) => {
    const xs: number[] = [];
    for (let i = 0; i < k; i++) {
      const t = performance.now();
      await s.run(feed);
      xs.push(performance.now() - t);
    }
    return median(xs);
  };
  for (let i = 0; i < 5; i++) await s.run(feed);
  const stop = new Int32Array(new SharedArrayBuffer(4));
  Atomics.store(stop, 0, 1);
  const decoder = new Worker(
    // Paused (waiting on the flag, no CPU) while stop[0] is 1, decoding back to back while it is 0.
    `const { workerData } = require('node:worker_threads');
     const sharp = require('sharp');
     sharp.concurrency(1);
     sharp.cache(false);
     (async () => {
       for (let i = 0; ; ) {
         if (Atomics.load(workerData.stop, 0) === 1) Atomics.wait(workerData.stop, 0, 1, 50);
         else await sharp(workerData.jpegs[i++ % workerData.jpegs.length]).resize(224, 224, { fit: 'fill' }).raw().toBuffer();
       }
     })();`,
    { eval: true, workerData: { stop, jpegs } },
  );
  const alone: number[] = [];
  const withDecode: number[] = [];
  await new Promise((r) => setTimeout(r, 500));
  for (let round = 0; round < 3; round++) {
    alone.push(await runs(60));
    Atomics.store(stop, 0, 0);
    Atomics.notify(stop, 0);
    await new Promise((r) => setTimeout(r, 20));
    withDecode.push(await runs(60));
    Atomics.store(stop, 0, 1);
    await new Promise((r) => setTimeout(r, 20));
  }
  await decoder.terminate();
  await s.release();
  return {
    bareRunAloneMs: r2(median(alone)),
    bareRunBesideJpegDecodeMs: r2(median(withDecode)),
    overlapCeiling: r2(median(alone) / median(withDecode)),
  };
}

async function main(): Promise<void> {
  const rss0 = process.memoryUsage().rss;
  const imgs = await frames(12);
  const out: Record<string, unknown>[] = [];
  const formats: FrameFormat[] = ['jpeg', 'raw'];
  for (const f of formats)
    out.push(await bench('demo-defects', join(repo, 'test', 'fixtures', 'vision', 'demo-defects.onnx'), imgs, f));
  const mnv2 = join(repo, 'data', 'vision', 'mobilenetv2-random.onnx');
  if (existsSync(mnv2)) for (const f of formats) out.push(await bench('mobilenetv2-random', mnv2, imgs, f));
  else console.error(`(skipping MobileNetV2: make it with node dist/scripts/vision-make-models.js mobilenetv2)`);
  const contended = existsSync(mnv2) ? { mobilenetv2: await contention(mnv2, imgs) } : {};
  console.log(
    JSON.stringify(
      { rssBeforeMiB: r2(rss0 / 1048576), results: out, decodeTo224: await decodeBySize(), contention: contended },
      null,
      2,
    ),
  );
}

await main();
