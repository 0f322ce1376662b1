/**
 * Incremental statistics for one metric: values in, numbers out (no timers, no I/O).
 *
 * Mean and variance use Welford's online algorithm, extended with the exact inverse step so a
 * sliding window can remove its oldest sample without re-summing (Welford 1962; the removal is
 * the same recurrence run backwards). Min and max come from monotonic deques: amortised O(1) per
 * sample for windows that evict in arrival order.
 */

/** What every window reports. `stddev` is the population standard deviation (σ, n in the divisor). */
export interface Aggregate {
  count: number;
  mean: number;
  min: number;
  max: number;
  stddev: number;
  last: number;
  /** (last − first) / elapsed seconds over the window; null until two samples at different times. */
  ratePerS: number | null;
}

export const EMPTY_AGGREGATE: Readonly<Aggregate> = Object.freeze({
  count: 0,
  mean: 0,
  min: 0,
  max: 0,
  stddev: 0,
  last: 0,
  ratePerS: null,
});

/** Running mean and sum of squared deviations, with exact add and remove. */
export class Welford {
  count = 0;
  mean = 0;
  /** Sum of squared deviations from the mean (M2). */
  m2 = 0;

  add(x: number): void {
    this.count++;
    const d = x - this.mean;
    this.mean += d / this.count;
    this.m2 += d * (x - this.mean);
  }

  /** Removes a sample that was added before (the inverse recurrence). */
  remove(x: number): void {
    if (this.count <= 1) {
      this.reset();
      return;
    }
    const prevMean = (this.count * this.mean - x) / (this.count - 1);
    this.m2 -= (x - this.mean) * (x - prevMean);
    this.mean = prevMean;
    this.count--;
    // Rounding can leave a tiny negative M2 after many add/remove pairs; σ of a constant is 0.
    if (this.m2 < 0) this.m2 = 0;
  }

  reset(): void {
    this.count = 0;
    this.mean = 0;
    this.m2 = 0;
  }

  /** Population variance (divides by n): a z-score compares a sample with the window it sits in. */
  variance(): number {
    return this.count > 0 ? this.m2 / this.count : 0;
  }
}

/**
 * Keeps the extreme (min or max) of a FIFO window: values that can never be the extreme again
 * are discarded on insert, so each sample enters and leaves the deque once.
 */
export class ExtremeDeque {
  private readonly items: { seq: number; v: number }[] = [];
  private head = 0;

  constructor(private readonly better: (a: number, b: number) => boolean) {}

  push(seq: number, v: number): void {
    while (this.items.length > this.head && !this.better(this.items[this.items.length - 1]!.v, v)) this.items.pop();
    this.items.push({ seq, v });
  }

  /** Drops entries whose sequence number is below `minSeq` (they left the window). */
  evictBefore(minSeq: number): void {
    while (this.head < this.items.length && this.items[this.head]!.seq < minSeq) this.head++;
    // Compact now and then so the array does not grow with the stream.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items.splice(0, this.head);
      this.head = 0;
    }
  }

  value(): number | undefined {
    return this.head < this.items.length ? this.items[this.head]!.v : undefined;
  }

  clear(): void {
    this.items.length = 0;
    this.head = 0;
  }
}
