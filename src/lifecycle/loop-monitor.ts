import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

/**
 * Measures event-loop responsiveness. A blocked loop cannot run the sampling timer, so the time
 * since the last tick is the live lag even while the histogram has not been updated.
 */
export class LoopMonitor {
  private readonly hist: IntervalHistogram = monitorEventLoopDelay({ resolution: 20 });
  private lastTick = performance.now();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly maxLagMs: number) {}

  start(): void {
    this.hist.enable();
    this.timer = setInterval(() => (this.lastTick = performance.now()), 100);
    this.timer.unref();
  }

  stop(): void {
    this.hist.disable();
    clearInterval(this.timer);
  }

  /** Milliseconds the loop is currently behind, counting a block still in progress. */
  lagMs(): number {
    return Math.max(0, performance.now() - this.lastTick - 100);
  }

  p99Ms(): number {
    return this.hist.percentile(99) / 1e6;
  }

  responsive(): boolean {
    return this.lagMs() < this.maxLagMs;
  }
}
