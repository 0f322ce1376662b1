import type { Logger } from '../log/logger.js';

/**
 * Logs at most one line per key per interval and says how many were suppressed, so a sensor
 * spewing garbage cannot flood the journal (STYLE: never drop silently, but do not flood).
 */
export class RateLimitedLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly log: Logger,
    private readonly intervalMs = 10000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  warn(key: string, fields: Record<string, unknown>, msg: string): void {
    const t = this.now();
    const e = this.last.get(key);
    if (e && t - e.at < this.intervalMs) {
      e.suppressed++;
      return;
    }
    this.last.set(key, { at: t, suppressed: 0 });
    this.log.warn(e && e.suppressed > 0 ? { ...fields, suppressed: e.suppressed } : fields, msg);
  }
}
