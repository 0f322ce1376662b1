import type { Logger } from './logger.js';

/**
 * Warns at most once per key per interval and says how many were suppressed: a device stuck in a
 * loop of bad input must not flood the journal, yet the first occurrence is always seen.
 * Keys are bounded (the map is cleared past 1,000) so hostile peers cannot grow it.
 */
export class RateLimitedLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly log: Logger,
    private readonly intervalMs = 60000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  warn(key: string, fields: Record<string, unknown>, msg: string): void {
    const t = this.now();
    const e = this.last.get(key);
    if (e && t - e.at < this.intervalMs) {
      e.suppressed++;
      return;
    }
    if (this.last.size > 1000) this.last.clear();
    this.last.set(key, { at: t, suppressed: 0 });
    this.log.warn(e && e.suppressed > 0 ? { ...fields, suppressed: e.suppressed } : fields, msg);
  }
}
