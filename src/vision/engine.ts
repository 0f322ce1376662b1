import { existsSync, readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { GatewayError } from '../errors.js';
import type { Provider, VisionConfig } from './config.js';
import type { ModelContract } from './contract.js';
import type { FromWorker, InferRequest, LoadRequest, ProviderAttempt, ToWorker } from './engine-protocol.js';

export interface EngineLoadOptions {
  config: VisionConfig;
  /** Default: config.model.path. */
  modelPath?: string;
  loadTimeoutMs?: number;
}

export interface InferOutput {
  logits: Float32Array;
  preprocessMs: number;
  inferenceMs: number;
  /** A prepared tensor given to inferTensor, back for reuse. */
  tensor?: Float32Array;
}

/**
 * TensorRT options for the stock onnxruntime-node binding, which passes only deviceId to the
 * TensorRT provider (js/node/src/session_options_helper.cc); the provider reads the rest from
 * these environment variables (onnxruntime TensorRT EP docs, "Environment variables"). Set before
 * the worker loads the library; a worker's process.env is a copy, the real environment is shared.
 */
function setTensorRtEnv(cfg: VisionConfig): void {
  if (!cfg.providers.includes('tensorrt')) return;
  process.env.ORT_TENSORRT_FP16_ENABLE = cfg.tensorrt.fp16 ? '1' : '0';
  if (cfg.tensorrt.engine_cache_dir !== undefined) {
    process.env.ORT_TENSORRT_ENGINE_CACHE_ENABLE = '1';
    process.env.ORT_TENSORRT_CACHE_PATH = cfg.tensorrt.engine_cache_dir;
  }
  if (cfg.tensorrt.workspace_bytes !== undefined)
    process.env.ORT_TENSORRT_MAX_WORKSPACE_SIZE = String(cfg.tensorrt.workspace_bytes);
}

/** One model loaded in its own worker thread. */
export class InferenceEngine {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (o: InferOutput) => void; reject: (e: Error) => void }>();
  private dead: Error | null = null;

  private constructor(
    private readonly worker: Worker,
    readonly modelPath: string,
    readonly provider: Provider,
    readonly attempts: ProviderAttempt[],
    readonly contract: ModelContract,
    readonly loadMs: number,
    readonly warmupMs: number,
  ) {
    worker.on('message', (m: FromWorker) => {
      if (m.type !== 'result' && m.type !== 'infer-failed') return;
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.type === 'result')
        p.resolve({
          logits: m.logits,
          preprocessMs: m.preprocessMs,
          inferenceMs: m.inferenceMs,
          ...(m.tensor ? { tensor: m.tensor } : {}),
        });
      else p.reject(new Error(m.error));
    });
    const fail = (e: Error) => {
      this.dead ??= e;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`inference worker exited (${code})`)));
  }

  /**
   * Loads the model in a new worker with the first provider that loads, runs the warm-up and
   * returns the engine. A missing file, no loadable provider or a broken contract is
   * EGW_VISION_MODEL (with every provider's reason in the message).
   */
  static async load(o: EngineLoadOptions): Promise<InferenceEngine> {
    const cfg = o.config;
    const model = cfg.model;
    if (!model) throw new GatewayError('EGW_VISION_MODEL', 'vision.model is not configured');
    const modelPath = o.modelPath ?? model.path;
    if (!existsSync(modelPath)) throw new GatewayError('EGW_VISION_MODEL', `model file not found: ${modelPath}`);
    let labelsFromFile: string[] | undefined;
    if (model.labels === undefined && model.labels_file !== undefined) {
      try {
        labelsFromFile = readFileSync(model.labels_file, 'utf8')
          .split('\n')
          .map((l) => l.trim())
          .filter((l) => l !== '');
      } catch (e) {
        throw new GatewayError('EGW_VISION_MODEL', `labels file ${model.labels_file}: ${(e as Error).message}`);
      }
    }
    setTensorRtEnv(cfg);
    const worker = new Worker(new URL('./engine-worker.js', import.meta.url));
    const req: LoadRequest = {
      type: 'load',
      modelPath,
      model,
      providers: cfg.providers,
      cudaDeviceId: cfg.cuda_device_id,
      intraOpThreads: cfg.intra_op_threads,
      spinning: cfg.spinning,
      warmupRuns: cfg.warmup_runs,
      ...(labelsFromFile ? { labelsFromFile } : {}),
      ...(cfg.binding !== undefined ? { binding: cfg.binding } : {}),
    };
    const reply = await new Promise<FromWorker>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new GatewayError('EGW_VISION_MODEL', `model load timed out: ${modelPath}`)),
        o.loadTimeoutMs ?? 120000,
      );
      worker.once('message', (m: FromWorker) => {
        clearTimeout(timer);
        resolve(m);
      });
      worker.once('error', (e) => {
        clearTimeout(timer);
        reject(new GatewayError('EGW_VISION_MODEL', `inference worker failed: ${e.message}`, { cause: e }));
      });
      worker.postMessage(req satisfies ToWorker);
    }).catch(async (e: unknown) => {
      await worker.terminate();
      throw e;
    });
    if (reply.type !== 'loaded') {
      await worker.terminate();
      if (reply.type === 'load-failed') {
        const tried = reply.attempts.map((a) => `${a.provider}: ${a.error}`).join('; ');
        throw new GatewayError('EGW_VISION_MODEL', `${modelPath}: ${reply.error}${tried ? ` (${tried})` : ''}`);
      }
      throw new GatewayError('EGW_VISION_MODEL', 'unexpected reply from the inference worker');
    }
    return new InferenceEngine(
      worker,
      modelPath,
      reply.provider,
      reply.attempts,
      reply.contract,
      reply.loadMs,
      reply.warmupMs,
    );
  }

  get alive(): boolean {
    return this.dead === null;
  }

  /** Runs one frame; pixels are transferred (the caller's buffer is detached). */
  infer(pixels: Uint8Array, timeoutMs = 30000): Promise<InferOutput> {
    const buf = pixels.byteOffset === 0 && pixels.byteLength === pixels.buffer.byteLength ? pixels : pixels.slice();
    return this.request({ type: 'infer', id: 0, pixels: buf }, buf.buffer as ArrayBuffer, timeoutMs);
  }

  /**
   * Runs one frame whose tensor the caller made (contract.ts toTensor, for this engine's
   * contract): the worker only runs the model. The tensor is transferred there and comes back
   * in the output for reuse.
   */
  inferTensor(tensor: Float32Array, timeoutMs = 30000): Promise<InferOutput> {
    const buf =
      tensor.byteOffset === 0 && tensor.byteLength === tensor.buffer.byteLength ? tensor : new Float32Array(tensor);
    return this.request({ type: 'infer', id: 0, tensor: buf }, buf.buffer as ArrayBuffer, timeoutMs);
  }

  private request(m: InferRequest, transfer: ArrayBuffer, timeoutMs: number): Promise<InferOutput> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise<InferOutput>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`inference timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (o) => {
          clearTimeout(timer);
          resolve(o);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.worker.postMessage({ ...m, id } satisfies ToWorker, [transfer]);
    });
  }

  /** Ends the worker abruptly, as a crash would (tests; a hung worker). */
  async kill(): Promise<void> {
    await this.worker.terminate();
  }

  async close(): Promise<void> {
    if (this.dead) return;
    this.worker.postMessage({ type: 'close' } satisfies ToWorker);
    const exited = new Promise<void>((r) => this.worker.once('exit', () => r()));
    const t = setTimeout(() => void this.worker.terminate(), 2000);
    await exited;
    clearTimeout(t);
  }
}
