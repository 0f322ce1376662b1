/**
 * A fixed ring of samples (one number per lane) covering a time window: the outbox depth per class
 * over the last hour for the overview chart. Pure: the caller passes the time. Bounded:
 * `capacity` samples, older ones are overwritten.
 */
export class SampleRing<L extends string> {
  private readonly t: Float64Array;
  private readonly v: Map<L, Float64Array>;
  private next = 0;
  private size = 0;

  constructor(
    readonly lanes: readonly L[],
    readonly capacity: number,
  ) {
    this.t = new Float64Array(capacity);
    this.v = new Map(lanes.map((l) => [l, new Float64Array(capacity)]));
  }

  add(at: number, values: Record<L, number>): void {
    this.t[this.next] = at;
    for (const l of this.lanes) this.v.get(l)![this.next] = values[l];
    this.next = (this.next + 1) % this.capacity;
    this.size = Math.min(this.size + 1, this.capacity);
  }

  get length(): number {
    return this.size;
  }

  /**
   * At most `points` samples per lane, oldest first, taken from samples newer than `since`: each
   * point is the max of its bucket, so a short spike of the outbox still shows on a small chart.
   */
  downsample(points: number, since = -Infinity): { t: number[]; lanes: Record<L, number[]> } {
    const idx: number[] = [];
    for (let i = 0; i < this.size; i++) {
      const k = (this.next - this.size + i + this.capacity) % this.capacity;
      if (this.t[k]! >= since) idx.push(k);
    }
    const n = Math.min(points, idx.length);
    const t: number[] = [];
    const lanes = {} as Record<L, number[]>;
    for (const l of this.lanes) lanes[l] = [];
    for (let b = 0; b < n; b++) {
      const from = Math.floor((b * idx.length) / n);
      const to = Math.floor(((b + 1) * idx.length) / n);
      t.push(this.t[idx[to - 1]!]!);
      for (const l of this.lanes) {
        const arr = this.v.get(l)!;
        let m = -Infinity;
        for (let i = from; i < to; i++) m = Math.max(m, arr[idx[i]!]!);
        lanes[l].push(m);
      }
    }
    return { t, lanes };
  }
}
