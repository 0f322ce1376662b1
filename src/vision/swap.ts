import type { Logger } from '../log/logger.js';
import type { ModelContract } from './contract.js';
import type { InferenceEngine } from './engine.js';
import type { VisionCounters } from './stats.js';

export interface SwapState {
  state: 'idle' | 'loading' | 'shadow' | 'switched' | 'failed';
  path: string | null;
  reason: string | null;
  shadowAnswered: number;
  at: string | null;
}

interface Candidate {
  engine: InferenceEngine;
  contract: ModelContract;
  needed: number;
  answered: number;
}

const iso = () => new Date().toISOString();

/**
 * The serving model, and the candidate of a swap in progress (docs/vision.md "Model swap"): a new
 * model is loaded and warmed beside the serving one, answers `needed` live frames in shadow, and
 * only then serves. Any failure drops the candidate; the serving model never stops, so a swap
 * drops no frame. A dead serving worker is replaced at once (replaceDead).
 */
export class ModelSlot {
  swap: SwapState = { state: 'idle', path: null, reason: null, shadowAnswered: 0, at: null };
  private cand: Candidate | null = null;
  /** Called when another engine starts serving (a swap or a restarted worker). */
  onServe: ((engine: InferenceEngine) => void) | undefined;

  constructor(
    private serving: InferenceEngine,
    private readonly log: Logger,
    private readonly counters: VisionCounters,
  ) {}

  get engine(): InferenceEngine {
    return this.serving;
  }

  get candidate(): Candidate | null {
    return this.cand;
  }

  markLoading(path: string): void {
    this.swap = { state: 'loading', path, reason: null, shadowAnswered: 0, at: iso() };
  }

  /** A loaded, warmed model: serves after `needed` shadow answers (at once when 0). */
  offer(engine: InferenceEngine, needed: number): void {
    if (this.cand) void this.cand.engine.close();
    this.cand = null;
    this.swap = { state: 'shadow', path: engine.modelPath, reason: null, shadowAnswered: 0, at: iso() };
    if (needed <= 0) this.switchTo(engine);
    else this.cand = { engine, contract: engine.contract, needed, answered: 0 };
  }

  /** Runs one live frame on the candidate; `pixels` gives its input (a copy or its own decode). */
  shadow(cand: Candidate, pixels: () => Promise<Uint8Array>, timeoutMs: number): void {
    const run = async () => {
      const out = await cand.engine.infer(await pixels(), timeoutMs);
      if (out.logits.length !== cand.contract.labels.length) throw new Error('wrong output length');
    };
    run().then(
      () => {
        if (this.cand !== cand) return;
        cand.answered++;
        this.swap.shadowAnswered = cand.answered;
        if (cand.answered >= cand.needed) this.switchTo(cand.engine);
      },
      (e: unknown) => {
        if (this.cand === cand) this.abandon(`shadow run failed: ${(e as Error).message}`);
      },
    );
  }

  private switchTo(engine: InferenceEngine): void {
    const old = this.serving;
    this.serving = engine;
    this.cand = null;
    this.swap = { ...this.swap, state: 'switched', path: engine.modelPath, at: iso() };
    this.log.info({ model: engine.modelPath, provider: engine.provider, was: old.modelPath }, 'vision model switched');
    // The old worker finishes a run already queued before it handles close (one message chain).
    void old.close();
    this.onServe?.(engine);
  }

  abandon(reason: string): void {
    const cand = this.cand;
    this.cand = null;
    if (cand) void cand.engine.close();
    this.swap = { ...this.swap, state: 'failed', reason, at: iso() };
    this.log.warn(
      { reason, model: this.serving.modelPath },
      'vision model swap abandoned; the old model keeps serving',
    );
  }

  /** Replaces a dead serving engine at once (nothing serves to compare with). */
  replaceDead(dead: InferenceEngine, engine: InferenceEngine): void {
    if (this.serving !== dead) {
      void engine.close();
      return;
    }
    this.serving = engine;
    this.counters.workerRestarts++;
    this.onServe?.(engine);
    this.log.warn({ model: engine.modelPath, provider: engine.provider }, 'vision: inference worker restarted');
  }

  async close(): Promise<void> {
    if (this.cand) await this.cand.engine.close();
    this.cand = null;
    await this.serving.close();
  }
}
