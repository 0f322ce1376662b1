/**
 * Vision benchmark, one run, CPU provider:
 *
 *   npm run build
 *   node dist/scripts/vision-make-models.js mobilenetv2        # once: data/vision/mobilenetv2-random.onnx
 *   node dist/scripts/vision-bench.js [FRAMES]
 *
 * For the demo model and a MobileNetV2 (random weights; timing only), on 640×480 JPEG frames:
 * - bare `session.run` on a prepared tensor (the reference: inference-only rate);
 * - per-stage medians and end-to-end latency, one frame at a time (ratio to bare; target ≤ 1.25);
 * - throughput with overlap (all frames queued: decode of the next overlaps inference) and without
 *   (one at a time), as a fraction of the inference-only rate (target ≥ 0.9);
 * - reject-action latency from capture (p50/p99; every part rejected: threshold 0);
 * - RSS with vision on.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Value } from '@sinclair/typebox/value';
import * as ort from 'onnxruntime-node';
import { pino } from 'pino';
import sharp from 'sharp';
import type { PublishOutcome, PublishRequest, Publisher } from '../src/publisher/types.js';
import { VisionConfigSchema, type VisionConfig } from '../src/vision/config.js';
import { tensorDims, toTensor } from '../src/vision/contract.js';
import { VisionService } from '../src/vision/service.js';
import { DEMO_LABELS, partSvg, rng } from './vision-synth.js';

const FRAMES = Number(process.argv[2] ?? 60);
const repo = process.cwd();

class CountingPublisher implements Publisher {
  results = 0;
  commands = 0;
  private wait: { n: number; resolve: () => void } | null = null;
  publish(req: PublishRequest): Promise<PublishOutcome> {
    if (req.topic.startsWith('inspection/')) this.results++;
    else if (req.topic.startsWith('commands/')) this.commands++;
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
        .resize(640, 480, { fit: 'fill' })
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
    }),
  ) as VisionConfig;
}

async function bench(name: string, model: string, imgs: Buffer[]): Promise<Record<string, unknown>> {
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
    svc.push({
      cameraId: 'c',
      frameId: `s${i}`,
      partId: `s${i}`,
      captureTs: Date.now(),
      image: imgs[i % imgs.length]!,
    });
    await pub.until(++done);
    e2e.push(performance.now() - t);
    seqMs += performance.now() - t;
  }
  const seqFps = (FRAMES / seqMs) * 1000;
  const seqView = svc.view();
  const stages = seqView.latencyMs;
  const bareMs = median(bare);

  // All frames queued at once: decode of frame n+1 overlaps inference of frame n.
  const rate: number[] = [];
  await bareRun(FRAMES, rate);
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const t2 = performance.now();
  for (let i = 0; i < FRAMES; i++)
    svc.push({
      cameraId: 'c',
      frameId: `o${i}`,
      partId: `o${i}`,
      captureTs: Date.now(),
      image: imgs[i % imgs.length]!,
    });
  await pub.until(done + FRAMES);
  const overlapFps = (FRAMES / (performance.now() - t2)) * 1000;
  loop.disable();
  await bareRun(FRAMES, rate);
  await s.release();
  await svc.idle();
  await new Promise((r) => setTimeout(r, 50));
  const rss = process.memoryUsage().rss;
  await svc.stop();
  // Inference-only rate: back-to-back bare runs around the overlap run (sum, not median: a rate).
  const inferenceOnlyFps = (rate.length / rate.reduce((a, b) => a + b, 0)) * 1000;
  return {
    model: name,
    input: `${c.input.width}x${c.input.height}`,
    frames: FRAMES,
    bareRunMs: r2(bareMs),
    stageMedianMs: {
      decode: stages.decode?.p50,
      preprocess: stages.preprocess?.p50,
      inference: stages.inference?.p50,
      total: stages.total?.p50,
    },
    endToEndMedianMs: r2(median(e2e)),
    endToEndVsBare: r2(median(e2e) / bareMs),
    inferenceOnlyFps: r2(inferenceOnlyFps),
    fpsWithoutOverlap: r2(seqFps),
    fpsWithOverlap: r2(overlapFps),
    overlapVsInferenceOnly: r2(overlapFps / inferenceOnlyFps),
    noOverlapVsInferenceOnly: r2(seqFps / inferenceOnlyFps),
    // One part at a time (queueing in the overlap run would be counted otherwise).
    rejectFromCaptureMs: { p50: stages.reject?.p50, p99: stages.reject?.p99, n: stages.reject?.n },
    rejects: pub.commands,
    eventLoopDelayDuringOverlapMs: { p99: r2(loop.percentile(99) / 1e6), max: r2(loop.max / 1e6) },
    rssMiB: r2(rss / 1048576),
  };
}

const r2 = (x: number) => Math.round(x * 100) / 100;

async function main(): Promise<void> {
  const rss0 = process.memoryUsage().rss;
  const imgs = await frames(12);
  const out: Record<string, unknown>[] = [];
  out.push(await bench('demo-defects', join(repo, 'test', 'fixtures', 'vision', 'demo-defects.onnx'), imgs));
  const mnv2 = join(repo, 'data', 'vision', 'mobilenetv2-random.onnx');
  if (existsSync(mnv2)) out.push(await bench('mobilenetv2-random', mnv2, imgs));
  else console.error(`(skipping MobileNetV2: make it with node dist/scripts/vision-make-models.js mobilenetv2)`);
  console.log(JSON.stringify({ rssBeforeMiB: r2(rss0 / 1048576), results: out }, null, 2));
}

await main();
