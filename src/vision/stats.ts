/** Last N samples of one quantity; percentiles by sorting a copy (N ≤ a few thousand, on demand). */
export class Reservoir {
  private readonly buf: Float64Array;
  private n = 0;
  private i = 0;
  constructor(size = 1024) {
    this.buf = new Float64Array(size);
  }
  add(v: number): void {
    this.buf[this.i] = v;
    this.i = (this.i + 1) % this.buf.length;
    if (this.n < this.buf.length) this.n++;
  }
  get count(): number {
    return this.n;
  }
  /** Nearest-rank percentiles, rounded to 0.01 ms; null when empty. */
  percentiles(ps: readonly number[] = [50, 95, 99]): Record<string, number | null> {
    const out: Record<string, number | null> = {};
    const s = Array.from(this.buf.subarray(0, this.n)).sort((a, b) => a - b);
    for (const p of ps) {
      const k = `p${p}`;
      if (s.length === 0) out[k] = null;
      else out[k] = Math.round(s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! * 100) / 100;
    }
    return out;
  }
}

export const STAGES = ['decode', 'preprocess', 'inference', 'total', 'reject'] as const;
export type Stage = (typeof STAGES)[number];

/** Frames per second over a sliding window of completion times. */
export class RateMeter {
  private readonly times: number[] = [];
  constructor(private readonly windowMs = 10000) {}
  mark(now: number): void {
    this.times.push(now);
    while (this.times.length > 0 && this.times[0]! < now - this.windowMs) this.times.shift();
  }
  rate(now: number): number {
    while (this.times.length > 0 && this.times[0]! < now - this.windowMs) this.times.shift();
    if (this.times.length < 2) return 0;
    const span = Math.max(now - this.times[0]!, 1);
    return Math.round((this.times.length / span) * 1000 * 100) / 100;
  }
}

export interface VisionCounters {
  frames: number;
  decided: number;
  byVerdict: Record<string, number>;
  byLabel: Record<string, number>;
  /** Frames dropped by a full camera queue (oldest first). */
  dropped: number;
  /** Undecodable / oversized frames. */
  frameErrors: number;
  inferenceErrors: number;
  deadlineMisses: number;
  /** Fail-safe actions by reason: dropped, frame_error, inference_error, deadline, stopped. */
  failSafe: Record<string, number>;
  rejects: number;
  rejectErrors: number;
  publishErrors: number;
  lateResults: number;
  /** Inference workers that died and were reloaded. */
  workerRestarts: number;
}

export function newCounters(): VisionCounters {
  return {
    frames: 0,
    decided: 0,
    byVerdict: {},
    byLabel: {},
    dropped: 0,
    frameErrors: 0,
    inferenceErrors: 0,
    deadlineMisses: 0,
    failSafe: {},
    rejects: 0,
    rejectErrors: 0,
    publishErrors: 0,
    lateResults: 0,
    workerRestarts: 0,
  };
}

export const bump = (r: Record<string, number>, k: string): void => {
  r[k] = (r[k] ?? 0) + 1;
};
