/**
 * The pure priority scheduler: which class sends next. No timers, no I/O — values in, a class out.
 *
 * Two mechanisms, as low-latency queueing (LLQ = a policed strict-priority queue in front of
 * class-based weighted fair queueing, Cisco IOS QoS / RFC 3246's EF behaviour):
 *
 * 1. Fair shares (work-conserving): each class carries a virtual time that advances by
 *    bytes / share when it is served; the backlogged class with the smallest virtual time goes
 *    next (start-time fair queueing). A class that was idle re-enters at the current virtual time,
 *    so idleness earns no credit, and an idle class's share goes to the busy ones.
 * 2. CRITICAL priority, policed: CRITICAL skips the fair queue while its policer has tokens. The
 *    policer is byte-clocked: every byte anyone sends earns CRITICAL `share/Σshares` bytes of
 *    credit (its share of the link, whatever the link rate), capped at `criticalBurstBytes`. An alarm
 *    within its share therefore goes out next; a device flooding CRITICAL drains the policer and
 *    falls back to its fair share, so it cannot starve the rest.
 *
 * CRITICAL's priority sends also advance its virtual time, so in steady saturation every class,
 * CRITICAL included, gets exactly its share of the bytes.
 */
export interface SchedulerOptions {
  /** Relative shares per class index (0 = CRITICAL ... 3 = LOW); each > 0. */
  shares: readonly number[];
  /** Policer depth for CRITICAL's priority path, in bytes. 0 disables the priority path. */
  criticalBurstBytes: number;
}

export class Scheduler {
  private readonly vtime: number[];
  private readonly backlogged: boolean[];
  private readonly shares: readonly number[];
  private readonly critFraction: number;
  private readonly burst: number;
  private critTokens: number;
  /** Virtual time of the last message started; where a newly backlogged class starts. */
  private sysV = 0;

  constructor(opts: SchedulerOptions) {
    if (opts.shares.some((s) => !(s > 0))) throw new RangeError('every share must be > 0');
    this.shares = [...opts.shares];
    const sum = this.shares.reduce((a, b) => a + b, 0);
    this.critFraction = this.shares[0]! / sum;
    this.burst = opts.criticalBurstBytes;
    this.critTokens = this.burst;
    this.vtime = this.shares.map(() => 0);
    this.backlogged = this.shares.map(() => false);
  }

  /**
   * `next[i]` is the cost in bytes of class i's next message, or undefined when class i has
   * nothing ready. Returns the class to send, or undefined when nothing is ready.
   */
  pick(next: readonly (number | undefined)[]): number | undefined {
    let minV = Infinity;
    for (let i = 0; i < this.vtime.length; i++) {
      if (next[i] !== undefined && this.backlogged[i]) minV = Math.min(minV, this.vtime[i]!);
    }
    const enter = minV === Infinity ? this.sysV : minV;
    for (let i = 0; i < this.vtime.length; i++) {
      const ready = next[i] !== undefined;
      if (ready && !this.backlogged[i]) this.vtime[i] = Math.max(this.vtime[i]!, enter);
      this.backlogged[i] = ready;
    }
    const crit = next[0];
    if (crit !== undefined && this.burst > 0 && this.critTokens >= Math.min(crit, this.burst)) return 0;
    let best: number | undefined;
    for (let i = 0; i < this.vtime.length; i++) {
      if (next[i] === undefined) continue;
      if (best === undefined || this.vtime[i]! < this.vtime[best]!) best = i;
    }
    return best;
  }

  /** Records that class `cls` sent `bytes` (its cost estimate). */
  charge(cls: number, bytes: number): void {
    this.sysV = Math.max(this.sysV, this.vtime[cls]!);
    this.vtime[cls]! += bytes / this.shares[cls]!;
    this.critTokens = Math.min(this.burst, this.critTokens + bytes * this.critFraction);
    if (cls === 0) this.critTokens = Math.max(-this.burst, this.critTokens - bytes);
  }

  /** For tests and /mgmt: the policer's current credit in bytes. */
  get criticalCredit(): number {
    return this.critTokens;
  }
}
