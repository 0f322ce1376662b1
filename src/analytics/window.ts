import { emptyAggregate, ExtremeDeque, Welford, type Aggregate } from './stats.js';

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

/**
 * The sample set and its incremental aggregate: a FIFO with Welford add/remove and min/max
 * deques. Every window kind is built from it. Samples sit in a ring of two typed arrays (times,
 * values) that doubles when full, so a reading allocates nothing; a sample's sequence number is
 * implicit (the one `nextSeq - size` is the oldest).
 */
class SampleSet {
  private ts = new Float64Array(8);
  private vs = new Float64Array(8);
  private head = 0;
  private len = 0;
  private nextSeq = 0;
  private readonly stats = new Welford();
  private readonly min = new ExtremeDeque('min');
  private readonly max = new ExtremeDeque('max');

  get size(): number {
    return this.len;
  }

  /** Time of the oldest sample (size > 0). */
  oldestT(): number {
    return this.ts[this.head]!;
  }

  /** Time of the newest sample (size > 0). */
  newestT(): number {
    return this.ts[(this.head + this.len - 1) & (this.ts.length - 1)]!;
  }

  add(t: number, v: number): void {
    if (this.len === this.ts.length) this.grow();
    const i = (this.head + this.len) & (this.ts.length - 1);
    this.ts[i] = t;
    this.vs[i] = v;
    this.len++;
    const seq = this.nextSeq++;
    this.stats.add(v);
    this.min.push(seq, v);
    this.max.push(seq, v);
  }

  removeOldest(): void {
    if (this.len === 0) return;
    const v = this.vs[this.head]!;
    const seq = this.nextSeq - this.len;
    this.head = (this.head + 1) & (this.ts.length - 1);
    this.len--;
    this.stats.remove(v);
    this.min.evictBefore(seq + 1);
    this.max.evictBefore(seq + 1);
  }

  clear(): void {
    this.head = 0;
    this.len = 0;
    this.stats.reset();
    this.min.clear();
    this.max.clear();
  }

  aggregate(): Aggregate {
    const out = emptyAggregate();
    this.aggregateInto(out);
    return out;
  }

  /** The aggregate written into `out` (the engine reuses one object per track: no allocation). */
  aggregateInto(out: Aggregate): void {
    if (this.len === 0) {
      out.count = 0;
      out.mean = 0;
      out.min = 0;
      out.max = 0;
      out.stddev = 0;
      out.last = 0;
      out.ratePerS = null;
      return;
    }
    const mask = this.ts.length - 1;
    const firstT = this.ts[this.head]!;
    const firstV = this.vs[this.head]!;
    const lastI = (this.head + this.len - 1) & mask;
    const lastT = this.ts[lastI]!;
    const lastV = this.vs[lastI]!;
    const dt = (lastT - firstT) / 1000;
    // Into a local first: the same ternary stored straight into `out.ratePerS` made V8 throw the
    // optimised code away about once per 2,000 readings ("Smi" bailouts; 4× the CPU per reading).
    const rate = dt > 0 ? (lastV - firstV) / dt : null;
    out.count = this.len;
    out.mean = this.stats.mean;
    out.min = this.min.value()!;
    out.max = this.max.value()!;
    out.stddev = Math.sqrt(this.stats.variance());
    out.last = lastV;
    out.ratePerS = rate;
  }

  entries(): [number, number][] {
    const out: [number, number][] = [];
    const mask = this.ts.length - 1;
    for (let k = 0; k < this.len; k++) out.push([this.ts[(this.head + k) & mask]!, this.vs[(this.head + k) & mask]!]);
    return out;
  }

  private grow(): void {
    const n = this.ts.length;
    const ts = new Float64Array(n * 2);
    const vs = new Float64Array(n * 2);
    for (let k = 0; k < this.len; k++) {
      ts[k] = this.ts[(this.head + k) & (n - 1)]!;
      vs[k] = this.vs[(this.head + k) & (n - 1)]!;
    }
    this.ts = ts;
    this.vs = vs;
    this.head = 0;
  }
}

export class MetricWindow {
  private readonly set = new SampleSet();
  /** Kept for hopping windows: samples of the last `duration_ms` before the next hop. */
  private openStart: number | null = null;
  /**
   * The time of the last advance while nothing changed since: advancing to the same time again is
   * a no-op, so a push right after an advance (the engine does both per reading) skips it.
   */
  private advancedTo = NaN;
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
    const closed: ClosedWindow[] = [];
    this.pushInto(t, v, closed);
    return closed;
  }

  /** Time passes: evicts expired samples and closes windows that ended at or before `t`. */
  advance(t: number): ClosedWindow[] {
    const closed: ClosedWindow[] = [];
    this.advanceInto(t, closed);
    return closed;
  }

  /**
   * `push` for a caller that does not read the closed windows (the rule engine): the same state
   * change, without building their aggregates — nothing allocated per reading.
   */
  add(t: number, v: number): void {
    this.pushInto(t, v, null);
  }

  /** `advance` without the closed windows (the rule engine's per-reading and per-tick step). */
  advanceTo(t: number): void {
    this.advanceInto(t, null);
  }

  /** The live aggregate (sliding: the window; tumbling/hopping: the window being filled). */
  current(): Aggregate {
    return this.set.aggregate();
  }

  /** `current` written into `out` (no allocation). */
  currentInto(out: Aggregate): void {
    this.set.aggregateInto(out);
  }

  snapshot(): WindowState {
    return { samples: this.set.entries(), openStart: this.openStart };
  }

  restore(state: WindowState): void {
    this.advancedTo = NaN;
    this.set.clear();
    for (const [t, v] of state.samples.slice(-this.maxCount)) this.set.add(t, v);
    this.openStart = state.openStart;
  }

  /** `closed` null: the caller does not want the closed windows, so their aggregates are not computed. */
  private pushInto(t: number, v: number, closed: ClosedWindow[] | null): void {
    if (this.set.size > 0 && t < this.set.newestT()) t = this.set.newestT();
    if (t !== this.advancedTo) this.advanceInto(t, closed);
    this.advancedTo = NaN;
    const spec = this.spec;
    if (spec.kind === 'tumbling' && spec.duration_ms !== undefined && this.openStart === null)
      this.openStart = Math.floor(t / spec.duration_ms) * spec.duration_ms;
    if (spec.kind === 'hopping' && this.openStart === null) {
      // The earliest window (starts are multiples of hop_ms) that still contains t: start > t − duration.
      const { duration_ms: d, hop_ms: h } = spec;
      this.openStart = (Math.floor((t - d) / h) + 1) * h;
    }
    this.set.add(t, v);
    while (this.set.size > this.maxCount) this.set.removeOldest();
    if (spec.kind === 'tumbling' && spec.count !== undefined && this.set.size >= spec.count) {
      closed?.push({ start: this.set.oldestT(), end: t, agg: this.set.aggregate() });
      this.set.clear();
    }
  }

  private advanceInto(t: number, closed: ClosedWindow[] | null): void {
    const spec = this.spec;
    if (spec.kind === 'sliding') {
      if (spec.duration_ms !== undefined) this.evictOlderThan(t - spec.duration_ms);
    } else if (spec.kind === 'tumbling') {
      if (spec.duration_ms !== undefined && this.openStart !== null && t >= this.openStart + spec.duration_ms) {
        closed?.push({ start: this.openStart, end: this.openStart + spec.duration_ms, agg: this.set.aggregate() });
        this.set.clear();
        this.openStart = null;
      }
    } else if (this.openStart !== null) {
      // Hopping: every window [start, start + duration) whose end has passed is emitted, in order.
      while (this.openStart + spec.duration_ms <= t) {
        const start = this.openStart;
        const end = start + spec.duration_ms;
        this.evictOlderThan(start);
        if (closed) {
          const agg = this.aggregateBefore(end);
          if (agg.count > 0) closed.push({ start, end, agg }); // an empty window says nothing
        }
        this.openStart += spec.hop_ms;
        if (this.set.size === 0 && t - this.openStart > spec.duration_ms) {
          // A long silence: skip the empty windows in one step instead of emitting each.
          this.openStart = null;
          break;
        }
      }
      if (this.openStart !== null) this.evictOlderThan(this.openStart);
    }
    this.advancedTo = t;
  }

  private evictOlderThan(cutoff: number): void {
    while (this.set.size > 0 && this.set.oldestT() < cutoff) this.set.removeOldest();
  }

  /** Aggregate of the samples with t < end (a hopping window excludes its end instant). */
  private aggregateBefore(end: number): Aggregate {
    if (this.set.size === 0 || this.set.newestT() < end) return this.set.aggregate();
    const part = new SampleSet();
    for (const [t, v] of this.set.entries()) if (t < end) part.add(t, v);
    return part.aggregate();
  }
}
