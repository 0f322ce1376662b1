import { basename } from 'node:path';
import type { Logger } from '../log/logger.js';
import { RateLimitedLog } from '../log/rate-limited.js';
import type { RejectActuator } from './actions.js';
import type { VisionConfig } from './config.js';
import { toTensor, type ModelContract } from './contract.js';
import { decodeForModel, DecodeError } from './decode.js';
import { decide, type Decision, type DecisionPolicy } from './decision.js';
import type { InferenceEngine } from './engine.js';
import { ModelSlot } from './swap.js';
import { bump, newCounters, RateMeter, Reservoir, STAGES, type Stage, type VisionCounters } from './stats.js';
import type { Frame, InspectionResult } from './types.js';

interface Part {
  frame: Frame;
  /** performance.now() at arrival, for the stage timings. */
  t0: number;
  decided: boolean;
  /** Left the queue (decoding or later): the deadline no longer removes it from the queue. */
  started: boolean;
  timer: NodeJS.Timeout | undefined;
  pixels: Uint8Array | null;
  /** The model's input made from `pixels` (off the worker's critical path). */
  tensor: Float32Array | null;
  contract: ModelContract | null;
  decodeMs: number;
  preprocessMs: number;
}

export interface InspectorHooks {
  /** The result of every part, decided or fail-safe; `reject` says whether reject actions ran. */
  onResult(result: InspectionResult, frame: Frame): void;
  onStage?(stage: Stage, ms: number): void;
  /** The serving engine's worker died (its parts got the fail-safe); the service reloads it. */
  onEngineDead?(engine: InferenceEngine): void;
}

/**
 * The per-frame pipeline: bounded queue per camera (full → the OLDEST waiting frame is dropped
 * and its part gets the fail-safe), decode of the next frame overlapping inference of the current
 * one (sharp runs on libuv's pool, onnxruntime in its worker), decision, reject, and the
 * per-part deadline: a part without a verdict `deadline_ms` after capture gets the fail-safe
 * action once; a verdict arriving later is published marked `late` and acts no more.
 */
export class Inspector {
  readonly counters: VisionCounters = newCounters();
  readonly stages = new Map<Stage, Reservoir>(STAGES.map((s) => [s, new Reservoir(2048)]));
  readonly rate = new RateMeter();
  /** The serving model and a swap in progress (swap.ts). */
  readonly slot: ModelSlot;

  private readonly queues = new Map<string, Part[]>();
  private rr: string[] = [];
  private decoding = 0;
  private readonly ready: Part[] = [];
  /** Frames sent to the engine worker and not answered yet (at most MAX_IN_FLIGHT). */
  private inflight = 0;
  /** Tensors back from the worker, for the next frames (at most MAX_COMMITTED kept). */
  private readonly tensorPool: Float32Array[] = [];
  private stopped = false;
  private idleWaiters: (() => void)[] = [];
  private readonly policy: () => DecisionPolicy;
  /** One warning per camera and reason per minute: a broken camera must not flood the journal. */
  private readonly warn: RateLimitedLog;

  constructor(
    private readonly cfg: VisionConfig,
    engine: InferenceEngine,
    private readonly actuator: RejectActuator,
    private readonly log: Logger,
    private readonly hooks: InspectorHooks,
  ) {
    this.warn = new RateLimitedLog(log, 60000);
    this.slot = new ModelSlot(engine, log, this.counters);
    this.policy = () => ({
      labels: this.engine.contract.labels,
      goodLabels: this.engine.contract.goodLabels,
      defectThresholds: cfg.defect_thresholds,
      defaultDefectThreshold: cfg.default_defect_threshold,
      uncertainBelow: cfg.uncertain_below,
      topScores: cfg.result_scores,
    });
  }

  private get engine(): InferenceEngine {
    return this.slot.engine;
  }

  get active(): InferenceEngine {
    return this.slot.engine;
  }

  get modelName(): string {
    return basename(this.engine.modelPath);
  }

  queued(cameraId: string): number {
    return this.queues.get(cameraId)?.length ?? 0;
  }

  /** Accepts a frame from a source. Never throws. */
  push(frame: Frame): void {
    this.counters.frames++;
    const part: Part = {
      frame,
      t0: performance.now(),
      decided: false,
      started: false,
      timer: undefined,
      pixels: null,
      tensor: null,
      contract: null,
      decodeMs: 0,
      preprocessMs: 0,
    };
    if (this.stopped) {
      this.failSafe(part, 'stopped');
      return;
    }
    const remaining = this.cfg.deadline_ms - (Date.now() - frame.captureTs);
    part.timer = setTimeout(() => this.onDeadline(part), Math.max(0, remaining));
    let q = this.queues.get(frame.cameraId);
    if (!q) {
      q = [];
      this.queues.set(frame.cameraId, q);
      this.rr.push(frame.cameraId);
    }
    q.push(part);
    if (frame.image.length > this.cfg.max_image_bytes || frame.invalid !== undefined) {
      q.pop();
      this.counters.frameErrors++;
      this.failSafe(
        part,
        'frame_error',
        frame.invalid ?? `image of ${frame.image.length} bytes exceeds max_image_bytes`,
      );
      return;
    }
    while (q.length > this.cfg.queue_per_camera) {
      const old = q.shift()!;
      this.counters.dropped++;
      this.failSafe(old, 'dropped');
    }
    this.pump();
  }

  private onDeadline(part: Part): void {
    part.timer = undefined;
    if (part.decided) return;
    this.counters.deadlineMisses++;
    if (!part.started) {
      const q = this.queues.get(part.frame.cameraId);
      const i = q?.indexOf(part) ?? -1;
      if (q && i >= 0) q.splice(i, 1);
    }
    this.failSafe(part, 'deadline');
  }

  /** The next waiting part, round robin over cameras. */
  private next(): Part | undefined {
    for (let k = 0; k < this.rr.length; k++) {
      const id = this.rr.shift()!;
      this.rr.push(id);
      const q = this.queues.get(id)!;
      const p = q.shift();
      if (p) return p;
    }
    return undefined;
  }

  private pump(): void {
    // Two frames in flight to the worker (one running, the next already in its message queue),
    // so the worker starts frame n+1 the moment n ends instead of idling for the round trip
    // through this thread (result → decide → send). Decode of the frame after those runs on
    // libuv's pool meanwhile. At most MAX_COMMITTED frames have left the queue (decoding,
    // decoded, in flight): the rest stay where drop-oldest and the deadline can still take them.
    while (this.inflight < MAX_IN_FLIGHT && this.ready.length > 0) {
      const p = this.ready.shift()!;
      if (p.decided) continue;
      this.inflight++;
      void this.infer(p);
    }
    while (!this.stopped && this.decoding + this.ready.length + this.inflight < MAX_COMMITTED) {
      const p = this.next();
      if (!p) break;
      p.started = true;
      this.decoding++;
      void this.decode(p);
    }
    if (this.decoding === 0 && this.ready.length === 0 && this.inflight === 0) {
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
    }
  }

  private async decode(p: Part): Promise<void> {
    const t = performance.now();
    try {
      const c = this.engine.contract;
      p.pixels = await decodeForModel(p.frame.image, c, { maxPixels: this.cfg.max_image_pixels }, p.frame.raw);
      p.contract = c;
      p.decodeMs = performance.now() - t;
      this.stage('decode', p.decodeMs);
      this.prepare(p, c);
      // A part whose deadline passed while decoding already got the fail-safe: no inference.
      if (!p.decided) this.ready.push(p);
    } catch (e) {
      this.counters.frameErrors++;
      this.failSafe(p, 'frame_error', e instanceof DecodeError ? e.message : String(e));
    } finally {
      this.decoding--;
      this.pump();
    }
  }

  /**
   * Makes the tensor here, right after decode, while the worker runs the frames ahead of this one:
   * the worker's serial path is then the model alone (the conversion would add ~0.3 ms to every
   * frame of a 224×224 model there). Buffers come back from the worker and are reused.
   */
  private prepare(p: Part, c: ModelContract): void {
    const t = performance.now();
    const len = c.width * c.height * c.channels;
    let buf = this.tensorPool.pop();
    if (buf && buf.length !== len) buf = undefined;
    p.tensor = toTensor(p.pixels!, c, buf ?? new Float32Array(len));
    p.preprocessMs = performance.now() - t;
  }

  private async infer(p: Part): Promise<void> {
    const engine = this.engine;
    try {
      if (p.contract !== engine.contract) {
        // The model was swapped to one with another input since this frame was decoded.
        p.pixels = await decodeForModel(
          p.frame.image,
          engine.contract,
          { maxPixels: this.cfg.max_image_pixels },
          p.frame.raw,
        );
        p.contract = engine.contract;
        this.prepare(p, engine.contract);
      }
      const tensor = p.tensor!;
      this.shadow(p, p.pixels!);
      p.pixels = null;
      p.tensor = null;
      const out = await engine.inferTensor(tensor, Math.max(this.cfg.deadline_ms * 4, 5000));
      if (out.tensor && this.tensorPool.length < MAX_COMMITTED) this.tensorPool.push(out.tensor);
      const d = decide(out.logits, this.policy());
      this.finish(p, d, p.preprocessMs + out.preprocessMs, out.inferenceMs, engine);
    } catch (e) {
      this.counters.inferenceErrors++;
      this.failSafe(p, 'inference_error', e instanceof Error ? e.message : String(e));
      if (!engine.alive && engine === this.engine) this.hooks.onEngineDead?.(engine);
    } finally {
      this.inflight--;
      this.pump();
    }
  }

  private finish(p: Part, d: Decision, preprocessMs: number, inferenceMs: number, engine: InferenceEngine): void {
    const total = performance.now() - p.t0;
    const result: InspectionResult = {
      cameraId: p.frame.cameraId,
      frameId: p.frame.frameId,
      partId: p.frame.partId,
      label: d.label,
      verdict: d.verdict,
      confidence: d.confidence,
      scores: d.scores,
      latencyMs: { decode: r2(p.decodeMs), preprocess: r2(preprocessMs), inference: r2(inferenceMs), total: r2(total) },
      model: basename(engine.modelPath),
      provider: engine.provider,
      captureTs: new Date(p.frame.captureTs).toISOString(),
    };
    this.stage('preprocess', preprocessMs);
    this.stage('inference', inferenceMs);
    this.stage('total', total);
    this.rate.mark(performance.now());
    if (p.decided) {
      // The fail-safe already acted on this part; report the verdict, act no more.
      this.counters.lateResults++;
      result.late = true;
      this.hooks.onResult(result, p.frame);
      return;
    }
    this.settle(p);
    this.counters.decided++;
    bump(this.counters.byVerdict, d.verdict);
    bump(this.counters.byLabel, d.label);
    if (d.verdict === 'defective') this.runReject(p, d.label);
    else if (d.verdict === 'uncertain' && this.cfg.reject_uncertain) this.runReject(p, 'uncertain');
    this.hooks.onResult(result, p.frame);
    p.frame.done?.();
  }

  private settle(p: Part): void {
    p.decided = true;
    if (p.timer) clearTimeout(p.timer);
    p.timer = undefined;
  }

  private failSafe(p: Part, reason: string, error?: string): void {
    if (p.decided) return;
    this.settle(p);
    bump(this.counters.failSafe, reason);
    const action = this.cfg.fail_safe;
    if (action === 'reject') this.runReject(p, reason);
    if (error !== undefined)
      this.warn.warn(
        `${p.frame.cameraId}/${reason}`,
        {
          camera: p.frame.cameraId,
          frame: p.frame.frameId,
          reason,
          err: error,
          ...(reason === 'frame_error' ? { code: 'EGW_VISION_FRAME' } : {}),
        },
        'vision fail-safe',
      );
    const result: InspectionResult = {
      cameraId: p.frame.cameraId,
      frameId: p.frame.frameId,
      partId: p.frame.partId,
      label: null,
      verdict: 'failsafe',
      confidence: null,
      scores: {},
      latencyMs: { decode: r2(p.decodeMs), preprocess: 0, inference: 0, total: r2(performance.now() - p.t0) },
      model: this.modelName,
      provider: this.engine.provider,
      captureTs: new Date(p.frame.captureTs).toISOString(),
      failSafe: { reason, action },
      ...(error !== undefined ? { error } : {}),
    };
    this.hooks.onResult(result, p.frame);
    p.frame.done?.();
  }

  private runReject(p: Part, reason: string): void {
    if (!this.actuator.configured) return;
    const f = p.frame;
    this.actuator.reject({ cameraId: f.cameraId, frameId: f.frameId, partId: f.partId, reason }).then(
      () => {
        this.counters.rejects++;
        this.stage('reject', Date.now() - f.captureTs);
      },
      (e: unknown) => {
        this.counters.rejectErrors++;
        this.log.error(
          { camera: f.cameraId, part: f.partId, err: (e as Error).message },
          'vision reject action failed',
        );
      },
    );
  }

  private stage(s: Stage, ms: number): void {
    this.stages.get(s)!.add(ms);
    this.hooks.onStage?.(s, ms);
  }

  /** Sends a copy of the frame to the candidate model, if a swap is in its shadow phase. */
  private shadow(p: Part, pixels: Uint8Array): void {
    const cand = this.slot.candidate;
    if (!cand) return;
    const c = cand.contract;
    const pc = p.contract!;
    const same = c.width === pc.width && c.height === pc.height && c.channels === pc.channels && c.fit === pc.fit;
    // The live model gets the tensor, so the pixels can go to the candidate as they are.
    const copy = same ? pixels : null;
    this.slot.shadow(
      cand,
      async () =>
        copy ?? (await decodeForModel(p.frame.image, c, { maxPixels: this.cfg.max_image_pixels }, p.frame.raw)),
      Math.max(this.cfg.deadline_ms * 4, 5000),
    );
  }

  /** Resolves when nothing is queued, decoding or inferring (tests, shutdown). */
  idle(): Promise<void> {
    if (
      this.decoding === 0 &&
      this.ready.length === 0 &&
      this.inflight === 0 &&
      [...this.queues.values()].every((q) => q.length === 0)
    )
      return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Stops taking frames; every waiting part gets the fail-safe (reason `stopped`). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const q of this.queues.values()) for (const p of q.splice(0)) this.failSafe(p, 'stopped');
    const deadline = Date.now() + 5000;
    while ((this.decoding > 0 || this.inflight > 0) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    for (const p of this.ready.splice(0)) this.failSafe(p, 'stopped');
    await this.slot.close();
  }
}

const r2 = (x: number) => Math.round(x * 100) / 100;
/** Frames sent to the engine worker ahead of its answers (docs/vision.md "Pipeline"). */
export const MAX_IN_FLIGHT = 2;
/** Frames out of the camera queues at once: in flight + decoding + decoded. */
export const MAX_COMMITTED = 3;
