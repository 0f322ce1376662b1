import type { VisionModelConfig, Provider } from './config.js';
import type { ModelContract } from './contract.js';

/** Messages between the InferenceEngine (main thread) and its worker (engine-worker.ts). */
export interface LoadRequest {
  type: 'load';
  modelPath: string;
  model: VisionModelConfig;
  labelsFromFile?: string[];
  providers: Provider[];
  cudaDeviceId: number;
  intraOpThreads: number;
  spinning: boolean;
  warmupRuns: number;
  /** A package directory or name to import instead of onnxruntime-node (a user build). */
  binding?: string;
}

export interface ProviderAttempt {
  provider: Provider;
  error: string;
}

export type LoadReply =
  | {
      type: 'loaded';
      provider: Provider;
      /** Providers tried before the one used, with why each did not load. */
      attempts: ProviderAttempt[];
      contract: ModelContract;
      loadMs: number;
      warmupMs: number;
    }
  | { type: 'load-failed'; error: string; attempts: ProviderAttempt[]; contractError: boolean };

export interface InferRequest {
  type: 'infer';
  id: number;
  /**
   * Interleaved 8-bit pixels, exactly the model's width × height × channels (transferred); the
   * worker makes the tensor. Or `tensor`: the model's input already made by the caller
   * (contract.ts toTensor), so the worker only runs the model.
   */
  pixels?: Uint8Array;
  tensor?: Float32Array;
}

export type InferReply =
  | {
      type: 'result';
      id: number;
      logits: Float32Array;
      preprocessMs: number;
      inferenceMs: number;
      /** The request's tensor, transferred back for reuse. */
      tensor?: Float32Array;
    }
  | { type: 'infer-failed'; id: number; error: string };

export type ToWorker = LoadRequest | InferRequest | { type: 'close' };
export type FromWorker = LoadReply | InferReply;
