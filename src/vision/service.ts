import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { GatewayError } from '../errors.js';
import type { Service, ServiceHealth } from '../lifecycle/service.js';
import type { Logger } from '../log/logger.js';
import type { Publisher } from '../publisher/types.js';
import { RejectActuator, type RejectHook } from './actions.js';
import type { VisionConfig } from './config.js';
import { configureSharp, encodeRawPng } from './decode.js';
import { InferenceEngine } from './engine.js';
import { Inspector } from './inspector.js';
import type { SwapState } from './swap.js';
import { imageExt, ReviewStore, type ReviewEntry, type ReviewStats } from './review.js';
import { DirectorySource } from './sources/directory.js';
import { FfmpegSource } from './sources/ffmpeg.js';
import { HttpSnapshotSource } from './sources/http.js';
import { MqttSource, type SubscribeFn } from './sources/mqtt.js';
import type { VisionCounters } from './stats.js';
import type { Frame, FrameSource, InspectionResult } from './types.js';

export interface VisionServiceOptions {
  config: VisionConfig;
  log: Logger;
  registry?: Registry;
  publisher: Publisher;
  /** Local broker subscription for `camera/{id}/image` frames; needed by `mqtt` cameras. */
  subscribe?: SubscribeFn;
  /** Sampling of good results / review frames; injected by tests. */
  random?: () => number;
}

/** The /mgmt/inspection document. */
export interface InspectionView {
  enabled: boolean;
  state: string;
  model: {
    path: string;
    provider: string;
    attempts: { provider: string; error: string }[];
    input: { layout: string; width: number; height: number; channels: number; fit: string };
    labels: string[];
    goodLabels: string[];
    loadMs: number;
    warmupMs: number;
  } | null;
  swap: SwapState;
  cameras: Record<string, Record<string, unknown>>;
  counters: VisionCounters;
  latencyMs: Record<string, Record<string, number | null>>;
  fps: number;
  review: { stats: ReviewStats; recent: ReviewEntry[] } | null;
}

/**
 * Vision inspection as a gateway service: cameras → Inspector → publisher (results on
 * `inspection/{cameraId}/result`, defective CRITICAL) and reject actions. The model is loaded
 * and warmed at start; a missing or unloadable model is EGW_VISION_MODEL and the gateway does
 * not start.
 */
export class VisionService implements Service {
  readonly name = 'vision';
  private inspector: Inspector | null = null;
  private readonly sources: FrameSource[] = [];
  private readonly actuator: RejectActuator;
  private review: ReviewStore | null = null;
  private modelWatch: FSWatcher | undefined;
  private watchTimer: NodeJS.Timeout | undefined;
  private swapping: Promise<void> | null = null;
  private reloading = false;
  private reloadTimer: NodeJS.Timeout | undefined;
  private state = 'stopped';
  private readonly rand: () => number;
  private readonly listeners = new Set<(r: InspectionResult) => void>();
  private readonly m: {
    stage: Histogram<'stage'>;
    results: Counter<'verdict' | 'label'>;
    failSafe: Counter<'reason'>;
    dropped: Counter<'camera'>;
    frameErrors: Counter;
    model: Gauge<'model' | 'provider'>;
    reviewWrites: Counter;
  } | null = null;

  constructor(private readonly opts: VisionServiceOptions) {
    this.rand = opts.random ?? Math.random;
    this.actuator = new RejectActuator(opts.config.reject, opts.publisher, opts.log);
    const reg = opts.registry;
    if (reg) {
      this.m = {
        stage: new Histogram({
          name: 'edge_gateway_vision_stage_seconds',
          help: 'Per-part stage latency (decode, preprocess, inference, total; reject = capture to reject action done).',
          labelNames: ['stage'],
          buckets: [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2],
          registers: [reg],
        }),
        results: new Counter({
          name: 'edge_gateway_vision_results_total',
          help: 'Decided parts by verdict and label.',
          labelNames: ['verdict', 'label'],
          registers: [reg],
        }),
        failSafe: new Counter({
          name: 'edge_gateway_vision_failsafe_total',
          help: 'Parts that got the fail-safe action, by reason (dropped, frame_error, inference_error, deadline, stopped).',
          labelNames: ['reason'],
          registers: [reg],
        }),
        dropped: new Counter({
          name: 'edge_gateway_vision_frames_dropped_total',
          help: 'Frames dropped by a full camera queue (oldest first).',
          labelNames: ['camera'],
          registers: [reg],
        }),
        frameErrors: new Counter({
          name: 'edge_gateway_vision_frame_errors_total',
          help: 'Frames that could not be decoded (corrupt, truncated, too large).',
          registers: [reg],
        }),
        model: new Gauge({
          name: 'edge_gateway_vision_model_info',
          help: 'The model serving (1) and the execution provider it runs on.',
          labelNames: ['model', 'provider'],
          registers: [reg],
        }),
        reviewWrites: new Counter({
          name: 'edge_gateway_vision_review_writes_total',
          help: 'Review images written (SD-card wear).',
          registers: [reg],
        }),
      };
    }
  }

  async start(): Promise<void> {
    const cfg = this.opts.config;
    if (!cfg.enabled) {
      this.state = 'disabled';
      return;
    }
    if (!cfg.model) throw new GatewayError('EGW_VISION_MODEL', 'vision.enabled is true but vision.model is not set');
    configureSharp(cfg.sharp_concurrency);
    const engine = await InferenceEngine.load({ config: cfg });
    this.logProvider(engine);
    if (cfg.review.dir !== undefined)
      this.review = new ReviewStore(cfg.review.dir, cfg.review.max_bytes, cfg.review.max_files);
    this.inspector = new Inspector(cfg, engine, this.actuator, this.opts.log, {
      onResult: (r, f) => this.onResult(r, f),
      onStage: (s, ms) => this.m?.stage.observe({ stage: s }, ms / 1000),
      onEngineDead: (dead) => this.reload(dead),
    });
    this.inspector.slot.onServe = () => {
      for (const src of this.sources) src.retarget?.();
    };
    this.setModelGauge();
    for (const cam of cfg.cameras) this.sources.push(this.makeSource(cam));
    const sink = (f: Frame) => this.inspector?.push(f);
    try {
      for (const s of this.sources) await s.start(sink);
    } catch (e) {
      await this.stop();
      throw new GatewayError('EGW_SERVICE_START', `vision camera source: ${(e as Error).message}`, { cause: e });
    }
    this.watchModel(cfg.model.path);
    this.state = 'inspecting';
  }

  /** A dead worker is reloaded from the same file, retried every 5 s until it loads or we stop. */
  private reload(dead: InferenceEngine): void {
    if (this.reloading) return;
    this.reloading = true;
    this.opts.log.error({ model: dead.modelPath }, 'vision: inference worker died; reloading the model');
    const attempt = async (): Promise<void> => {
      if (!this.inspector || this.state === 'stopping') return;
      try {
        const engine = await InferenceEngine.load({ config: this.opts.config, modelPath: dead.modelPath });
        if (!this.inspector) {
          await engine.close();
          return;
        }
        this.inspector.slot.replaceDead(dead, engine);
        this.setModelGauge();
        this.reloading = false;
      } catch (e) {
        this.opts.log.error({ err: (e as Error).message }, 'vision: model reload failed; retrying in 5 s');
        this.reloadTimer = setTimeout(() => void attempt(), 5000);
      }
    };
    void attempt();
  }

  private logProvider(engine: InferenceEngine): void {
    const log = this.opts.log;
    for (const a of engine.attempts)
      log.warn({ provider: a.provider, err: a.error }, `vision: execution provider ${a.provider} did not load`);
    const msg = `vision: model ${engine.modelPath} runs on ${engine.provider}`;
    if (engine.attempts.length > 0)
      log.warn(
        { provider: engine.provider, fellBackFrom: engine.attempts.map((a) => a.provider) },
        `${msg} (fallback from ${engine.attempts.map((a) => a.provider).join(', ')})`,
      );
    else log.info({ provider: engine.provider, loadMs: engine.loadMs, warmupMs: engine.warmupMs }, msg);
  }

  private setModelGauge(): void {
    if (!this.m || !this.inspector) return;
    this.m.model.reset();
    this.m.model.set({ model: this.inspector.modelName, provider: this.inspector.active.provider }, 1);
  }

  private makeSource(cam: VisionConfig['cameras'][number]): FrameSource {
    const { log, config: cfg } = this.opts;
    const l = log.child({ mod: 'vision', camera: cam.id });
    switch (cam.kind) {
      case 'directory':
        return new DirectorySource(
          cam.id,
          cam.path,
          cam.settle_ms,
          cam.delete_after,
          l,
          () => cfg.queue_per_camera - (this.inspector?.queued(cam.id) ?? 0),
        );
      case 'mqtt':
        if (!this.opts.subscribe)
          throw new GatewayError('EGW_SERVICE_START', `camera ${cam.id}: mqtt frames need the broker`);
        return new MqttSource(cam.id, this.opts.subscribe);
      case 'http':
        return new HttpSnapshotSource(cam.id, cam.url, cam.interval_ms, cam.timeout_ms, cfg.max_image_bytes, l);
      case 'ffmpeg':
        return new FfmpegSource(
          cam.id,
          {
            input: cam.input,
            format: cam.format,
            target: () => this.inspector!.active.contract,
            inputArgs: cam.input_args,
            fps: cam.fps,
            ...(cam.max_width !== undefined ? { maxWidth: cam.max_width } : {}),
            reconnectMs: cam.reconnect_ms,
            reconnectMaxMs: Math.max(cam.reconnect_ms, cam.reconnect_max_ms),
            ffmpeg: cam.ffmpeg,
          },
          cfg.max_image_bytes,
          l,
        );
    }
  }

  /** A plugin's reject action (the "plugin hook" of docs/vision.md); returns the removal. */
  addRejectHook(fn: RejectHook): () => void {
    return this.actuator.addHook(fn);
  }

  /** Every published result (plugins' inspection hook); returns the removal. */
  onInspection(fn: (r: InspectionResult) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Source-less entry point (tests, plugins): inspects one frame. */
  push(frame: Frame): void {
    if (!this.inspector) {
      frame.done?.();
      return;
    }
    this.inspector.push(frame);
  }

  private onResult(r: InspectionResult, f: Frame): void {
    const cfg = this.opts.config;
    for (const fn of this.listeners) {
      try {
        fn(r);
      } catch (e) {
        this.opts.log.warn({ err: (e as Error).message }, 'vision: an inspection hook threw');
      }
    }
    if (this.m) {
      if (r.verdict === 'failsafe') {
        this.m.failSafe.inc({ reason: r.failSafe!.reason });
        if (r.failSafe!.reason === 'dropped') this.m.dropped.inc({ camera: r.cameraId });
        if (r.failSafe!.reason === 'frame_error') this.m.frameErrors.inc();
      } else if (!r.late) this.m.results.inc({ verdict: r.verdict, label: r.label ?? '' });
    }
    const critical = r.verdict === 'defective' || (r.verdict === 'failsafe' && r.failSafe?.action === 'reject');
    const sample = cfg.publish_good;
    const publish = r.verdict !== 'good' || sample === 'all' || (typeof sample === 'number' && this.rand() < sample);
    if (publish) {
      this.opts.publisher
        .publish({
          topic: `inspection/${r.cameraId}/result`,
          payload: JSON.stringify(r),
          priority: critical ? 'CRITICAL' : 'LOW',
          labels: [r.verdict, r.label ?? r.failSafe?.reason ?? 'none'],
          source: 'vision',
        })
        .catch(() => {
          if (this.inspector) this.inspector.counters.publishErrors++;
        });
    }
    const rv = cfg.review;
    if (this.review && !r.late) {
      const v = r.verdict === 'failsafe' ? 'uncertain' : r.verdict;
      const keep = rv.keep.includes(v) || (v === 'good' && rv.sample_good > 0 && this.rand() < rv.sample_good);
      if (keep) this.keepForReview(this.review, r, f);
    }
  }

  /**
   * An encoded frame is kept as it came; raw pixels are kept as PNG (lossless: the frame's pixels
   * exactly — for a grey model the RGB frame its grey was made from), encoded on libuv's pool only
   * for the frames kept.
   */
  private keepForReview(store: ReviewStore, r: InspectionResult, f: Frame): void {
    const save = (img: Uint8Array, ext: string) => {
      if (store.save(f.captureTs, f.cameraId, f.frameId, r.verdict, img, ext)) this.m?.reviewWrites.inc();
    };
    if (!f.raw) return save(f.image, imageExt(f.image));
    encodeRawPng(f.image, f.raw).then(
      (png) => save(png, '.png'),
      () => store.stats.writeErrors++,
    );
  }

  /**
   * Loads `path` (default: the configured model) beside the serving one, warms it, runs it in
   * shadow on the next `shadow_frames` live frames and switches only when all answered. On any
   * failure the old model keeps serving and the reason is in view().swap.
   */
  swapModel(path?: string): Promise<void> {
    const insp = this.inspector;
    if (!insp) return Promise.reject(new GatewayError('EGW_VISION_MODEL', 'vision is not running'));
    const p = path ?? this.opts.config.model!.path;
    const run = async () => {
      insp.slot.markLoading(p);
      try {
        const engine = await InferenceEngine.load({ config: this.opts.config, modelPath: p });
        this.logProvider(engine);
        insp.slot.offer(engine, this.opts.config.shadow_frames);
        this.setModelGauge();
      } catch (e) {
        insp.slot.abandon((e as Error).message);
      }
    };
    const prev = this.swapping ?? Promise.resolve();
    const next = prev.then(run);
    this.swapping = next;
    return next;
  }

  /**
   * `POST /mgmt/inspection` (admin): `{}` reloads the configured model, `{"model": "file.onnx"}`
   * swaps to another model in the configured model's folder (a path elsewhere is refused: the
   * endpoint must not open arbitrary files). Resolves when the swap reached shadow, switched or
   * failed; the answer is the swap state.
   */
  async mgmtPost(body: unknown): Promise<{ ok: boolean; error?: string; swap?: SwapState }> {
    if (!this.inspector || !this.opts.config.model) return { ok: false, error: 'vision is not running' };
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      return { ok: false, error: 'body must be a JSON object' };
    const keys = Object.keys(body);
    if (keys.some((k) => k !== 'model'))
      return { ok: false, error: `unknown key(s): ${keys.filter((k) => k !== 'model').join(', ')}` };
    const m = (body as { model?: unknown }).model;
    let path = this.opts.config.model.path;
    if (m !== undefined) {
      if (typeof m !== 'string' || m.length === 0 || m.length > 255 || m.includes('\0'))
        return { ok: false, error: 'model must be a file name (≤ 255 characters)' };
      const dir = resolve(dirname(this.opts.config.model.path));
      const candidate = resolve(dir, m);
      if (dirname(candidate) !== dir || !candidate.endsWith('.onnx'))
        return { ok: false, error: `model must be a .onnx file in ${dir}` };
      path = candidate;
    }
    await this.swapModel(path);
    const swap = this.inspector?.slot.swap;
    return swap?.state === 'failed'
      ? { ok: false, error: swap.reason ?? 'swap failed', swap }
      : { ok: true, ...(swap ? { swap } : {}) };
  }

  private watchModel(path: string): void {
    try {
      // The folder, not the file: a model replaced by rename (the safe way to write it) is a new
      // inode, and a watch on the old one would never fire again.
      this.modelWatch = watch(dirname(path), (_ev, name) => {
        if (name !== null && name !== basename(path)) return;
        // Writers replace a model in several steps; act once the file is quiet for 1 s.
        if (this.watchTimer) clearTimeout(this.watchTimer);
        this.watchTimer = setTimeout(() => void this.swapModel(path), 1000);
      });
      this.modelWatch.on('error', () => undefined);
    } catch {
      // no inotify: swaps via /mgmt/inspection only
    }
  }

  /** A kept review image by its file name (status page thumbnails); undefined when not kept. */
  reviewImage(file: string): { type: string; body: Buffer } | undefined {
    const body = this.review?.read(file);
    if (!body) return undefined;
    const ext = imageExt(body);
    const type = ext === '.jpg' ? 'image/jpeg' : ext === '.png' ? 'image/png' : ext === '.webp' ? 'image/webp' : '';
    return type ? { type, body } : undefined;
  }

  view(): InspectionView {
    const insp = this.inspector;
    const cameras: Record<string, Record<string, unknown>> = {};
    for (const s of this.sources) cameras[s.cameraId] = { ...s.view(), queued: insp?.queued(s.cameraId) ?? 0 };
    const e = insp?.active;
    const latencyMs: Record<string, Record<string, number | null>> = {};
    if (insp) for (const [k, r] of insp.stages) latencyMs[k] = { ...r.percentiles(), n: r.count };
    return {
      enabled: this.opts.config.enabled,
      state: this.state,
      model: e
        ? {
            path: e.modelPath,
            provider: e.provider,
            attempts: e.attempts,
            input: {
              layout: e.contract.layout,
              width: e.contract.width,
              height: e.contract.height,
              channels: e.contract.channels,
              fit: e.contract.fit,
            },
            labels: e.contract.labels,
            goodLabels: e.contract.goodLabels,
            loadMs: Math.round(e.loadMs),
            warmupMs: Math.round(e.warmupMs),
          }
        : null,
      swap: insp?.slot.swap ?? { state: 'idle', path: null, reason: null, shadowAnswered: 0, at: null },
      cameras,
      counters: insp?.counters ?? (undefined as unknown as VisionCounters),
      latencyMs,
      fps: insp?.rate.rate(performance.now()) ?? 0,
      review: this.review ? { stats: this.review.stats, recent: this.review.list(50) } : null,
    };
  }

  /** The serving engine (tests). */
  get engine(): InferenceEngine | null {
    return this.inspector?.active ?? null;
  }

  /** Resolves when every frame pushed so far is decided (tests). */
  idle(): Promise<void> {
    return this.inspector?.idle() ?? Promise.resolve();
  }

  async stop(): Promise<void> {
    if (this.state === 'stopped' && !this.inspector) return;
    this.state = 'stopping';
    this.modelWatch?.close();
    if (this.watchTimer) clearTimeout(this.watchTimer);
    if (this.reloadTimer) clearTimeout(this.reloadTimer);
    await Promise.allSettled(this.sources.map((s) => s.stop()));
    await this.swapping?.catch(() => undefined);
    await this.inspector?.stop();
    this.inspector = null;
    await this.actuator.close();
    this.state = 'stopped';
  }

  health(): ServiceHealth {
    const insp = this.inspector;
    if (!this.opts.config.enabled) return { ok: true, state: 'disabled' };
    return {
      ok: this.state === 'stopped' || (insp !== null && insp.active.alive),
      state: this.state,
      detail: insp ? { provider: insp.active.provider, model: insp.modelName, decided: insp.counters.decided } : {},
    };
  }
}
