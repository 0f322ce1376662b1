import { EMPTY_AGGREGATE, ExtremeDeque, Welford, type Aggregate } from './stats.js';

/**
 * A window over one metric of one device. Times are milliseconds on the caller's clock (the
 * gateway's monotonic clock live, the recorded timestamps in a backtest), so the same sequence
 * gives the same results in both.
 *
 * - `sliding`: the last `count` samples and/or the samples of the last `duration_ms`.
 * - `tumbling`: consecutive, non-overlapping windows of `duration_ms` (aligned to multiples of it)
 *   or of `count` samples; each closes once and is emitted.
 * - `hopping`: windows of `duration_ms` that start every `hop_ms` (overlapping when hop < duration);
 *   each is emitted when it ends.
 */
export type WindowSpec =
  | { kind: 'sliding'; count?: number; duration_ms?: number }
  | { kind: 'tumbling'; count?: number; duration_ms?: number }
  | { kind: 'hopping'; duration_ms: number; hop_ms: number };

/** A closed window (tumbling, hopping): its bounds and aggregate. */
export interface ClosedWindow {
  start: number;
  end: number;
  agg: Aggregate;
}

/** Samples a time window keeps at most, whatever its duration: memory is bounded per metric. */
export const MAX_WINDOW_SAMPLES = 10000;

/** JSON-serialisable state, so windows survive a restart (analytics state store). */
export interface WindowState {
  samples: [t: number, v: number][];
  /** tumbling/hopping: start of the window being filled, or null. */
  openStart: number | null;
}

interface Sample {
  seq: number;
  t: number;
  v: number;
}

/**
 * The sample set and its incremental aggregate: a FIFO with Welford add/remove and min/max
 * deques. Every window kind is built from it.
 */
class SampleSet {
  private readonly samples: Sample[] = [];
  private head = 0;
  private seq = 0;
  private readonly stats = new Welford();
  private readonly min = new ExtremeDeque((a, b) => a < b);
  private readonly max = new ExtremeDeque((a, b) => a > b);

  get size(): number {
    return this.samples.length - this.head;
  }

  oldest(): Sample | undefined {
    return this.samples[this.head];
  }

  newest(): Sample | undefined {
    return this.size > 0 ? this.samples[this.samples.length - 1] : undefined;
  }

  add(t: number, v: number): void {
    const s = { seq: this.seq++, t, v };
    this.samples.push(s);
    this.stats.add(v);
    this.min.push(s.seq, v);
    this.max.push(s.seq, v);
  }

  removeOldest(): void {
    const s = this.samples[this.head];
    if (!s) return;
    this.head++;
    this.stats.remove(s.v);
    this.min.evictBefore(s.seq + 1);
    this.max.evictBefore(s.seq + 1);
    if (this.head > 1024 && this.head * 2 > this.samples.length) {
      this.samples.splice(0, this.head);
      this.head = 0;
    }
  }

  clear(): void {
    this.samples.length = 0;
    this.head = 0;
    this.stats.reset();
    this.min.clear();
    this.max.clear();
  }

  aggregate(): Aggregate {
    if (this.size === 0) return { ...EMPTY_AGGREGATE };
    const first = this.oldest()!;
    const last = this.newest()!;
    const dt = (last.t - first.t) / 1000;
    return {
      count: this.size,
      mean: this.stats.mean,
      min: this.min.value()!,
      max: this.max.value()!,
      stddev: Math.sqrt(this.stats.variance()),
      last: last.v,
      ratePerS: dt > 0 ? (last.v - first.v) / dt : null,
    };
  }

  entries(): [number, number][] {
    const out: [number, number][] = [];
    for (let i = this.head; i < this.samples.length; i++) out.push([this.samples[i]!.t, this.samples[i]!.v]);
    return out;
  }
}

export class MetricWindow {
  private readonly set = new SampleSet();
  /** Kept for hopping windows: samples of the last `duration_ms` before the next hop. */
  private openStart: number | null = null;
  private readonly maxCount: number;

  constructor(readonly spec: WindowSpec) {
    if (spec.kind !== 'hopping' && spec.count === undefined && spec.duration_ms === undefined)
      throw new RangeError(`a ${spec.kind} window needs count or duration_ms`);
    if (spec.kind === 'tumbling' && spec.count !== undefined && spec.duration_ms !== undefined)
      throw new RangeError('a tumbling window is either by count or by duration_ms, not both');
    if (spec.kind === 'hopping' && !(spec.hop_ms > 0 && spec.duration_ms > 0))
      throw new RangeError('a hopping window needs duration_ms > 0 and hop_ms > 0');
    const count = spec.kind === 'hopping' ? undefined : spec.count;
    this.maxCount = Math.min(count ?? MAX_WINDOW_SAMPLES, MAX_WINDOW_SAMPLES);
  }

  /**
   * Adds a sample at time `t` (non-decreasing; an older `t` is treated as `t` of the newest sample)
   * and returns the windows that closed before or with it.
   */
  push(t: number, v: number): ClosedWindow[] {
    const newest = this.set.newest();
    if (newest && t < newest.t) t = newest.t;
    const closed = this.advance(t);
    if (this.spec.kind === 'tumbling' && this.spec.duration_ms !== undefined && this.openStart === null)
      this.openStart = Math.floor(t / this.spec.duration_ms) * this.spec.duration_ms;
    if (this.spec.kind === 'hopping' && this.openStart === null) {
      // The earliest window (starts are multiples of hop_ms) that still contains t: start > t − duration.
      const { duration_ms: d, hop_ms: h } = this.spec;
      this.openStart = (Math.floor((t - d) / h) + 1) * h;
    }
    this.set.add(t, v);
    while (this.set.size > this.maxCount) this.set.removeOldest();
    if (this.spec.kind === 'tumbling' && this.spec.count !== undefined && this.set.size >= this.spec.count) {
      const first = this.set.oldest()!;
      closed.push({ start: first.t, end: t, agg: this.set.aggregate() });
      this.set.clear();
    }
    return closed;
  }

  /** Time passes: evicts expired samples and closes windows that ended at or before `t`. */
  advance(t: number): ClosedWindow[] {
    const spec = this.spec;
    const closed: ClosedWindow[] = [];
    if (spec.kind === 'sliding') {
      if (spec.duration_ms !== undefined) this.evictOlderThan(t - spec.duration_ms);
    } else if (spec.kind === 'tumbling') {
      if (spec.duration_ms !== undefined && this.openStart !== null && t >= this.openStart + spec.duration_ms) {
        closed.push({ start: this.openStart, end: this.openStart + spec.duration_ms, agg: this.set.aggregate() });
        this.set.clear();
        this.openStart = null;
      }
    } else if (this.openStart !== null) {
      // Hopping: every window [start, start + duration) whose end has passed is emitted, in order.
      while (this.openStart + spec.duration_ms <= t) {
        const start = this.openStart;
        const end = start + spec.duration_ms;
        this.evictOlderThan(start);
        const agg = this.aggregateBefore(end);
        if (agg.count > 0) closed.push({ start, end, agg }); // an empty window says nothing
        this.openStart += spec.hop_ms;
        if (this.set.size === 0 && t - this.openStart > spec.duration_ms) {
          // A long silence: skip the empty windows in one step instead of emitting each.
          this.openStart = null;
          break;
        }
      }
      if (this.openStart !== null) this.evictOlderThan(this.openStart);
    }
    return closed;
  }

  /** The live aggregate (sliding: the window; tumbling/hopping: the window being filled). */
  current(): Aggregate {
    return this.set.aggregate();
  }

  snapshot(): WindowState {
    return { samples: this.set.entries(), openStart: this.openStart };
  }

  restore(state: WindowState): void {
    this.set.clear();
    for (const [t, v] of state.samples.slice(-this.maxCount)) this.set.add(t, v);
    this.openStart = state.openStart;
  }

  private evictOlderThan(cutoff: number): void {
    while (this.set.size > 0 && this.set.oldest()!.t < cutoff) this.set.removeOldest();
  }

  /** Aggregate of the samples with t < end (a hopping window excludes its end instant). */
  private aggregateBefore(end: number): Aggregate {
    const newest = this.set.newest();
    if (!newest || newest.t < end) return this.set.aggregate();
    const part = new SampleSet();
    for (const [t, v] of this.set.entries()) if (t < end) part.add(t, v);
    return part.aggregate();
  }
}
