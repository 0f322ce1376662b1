import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Crash-loop detection: a start counter in the data directory, incremented at every start and
 * cleared once the gateway ran `healthyAfterS` (or stopped cleanly). A process the watchdog kills
 * (an inline plugin blocking the loop) never clears it; after `crashStarts` such starts in a row
 * the next start loads no plugin (safe mode).
 */
export class CrashLoopMarker {
  private readonly file: string;
  private timer: NodeJS.Timeout | undefined;

  constructor(dataDir: string) {
    this.file = join(dataDir, 'plugins-starts.json');
  }

  /** Counts this start; returns how many starts in a row came before it without a healthy run. */
  begin(healthyAfterS: number): number {
    const before = this.read();
    this.write(before + 1);
    this.timer = setTimeout(() => this.write(0), healthyAfterS * 1000);
    this.timer.unref();
    return before;
  }

  /** A clean stop is not a crash. */
  clean(): void {
    clearTimeout(this.timer);
    this.write(0);
  }

  private read(): number {
    try {
      const v = (JSON.parse(readFileSync(this.file, 'utf8')) as { starts?: unknown }).starts;
      return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : 0;
    } catch {
      return 0;
    }
  }

  private write(starts: number): void {
    try {
      writeFileSync(`${this.file}.tmp`, JSON.stringify({ starts }));
      renameSync(`${this.file}.tmp`, this.file);
    } catch {
      // A read-only data dir only loses crash-loop detection, never the start.
    }
  }
}
