import type { ClassStats, DropReason } from './types.js';

/**
 * Running numbers of one class: what waits (depth, readings, stored bytes: what the quota counts),
 * what was delivered, what was dropped and why. Plain data; the outbox updates it, `classStats`
 * turns it into the /mgmt/queues view.
 */
export class ClassCounters {
  depth = 0;
  readings = 0;
  bytes = 0;
  sentMessages = 0;
  sentReadings = 0;
  sentBytes = 0;
  rateBps = 0;
  secondBytes = 0;
  readonly dropped: Record<DropReason, number> = { ttl: 0, age: 0, quota: 0, disk_full: 0, invalid: 0 };

  stored(rows: number, readings: number, bytes: number): void {
    this.depth += rows;
    this.readings += readings;
    this.bytes += bytes;
  }

  removed(rows: number, readings: number, bytes: number): void {
    this.depth -= rows;
    this.readings -= readings;
    this.bytes -= bytes;
  }

  sent(readings: number, wireBytes: number): void {
    this.sentMessages++;
    this.sentReadings += readings;
    this.sentBytes += wireBytes;
    this.secondBytes += wireBytes;
  }

  /** Once a second: exponential average of delivered bytes/s over ~10 s. */
  tick(): void {
    this.rateBps = this.rateBps * 0.9 + this.secondBytes * 0.1;
    this.secondBytes = 0;
  }

  view(oldestT: number | undefined, clock: number): ClassStats {
    return {
      depth: this.depth,
      readings: this.readings,
      bytes: this.bytes,
      oldestAgeS: oldestT === undefined || this.depth === 0 ? 0 : Math.max(0, (clock - oldestT) / 1000),
      sentMessages: this.sentMessages,
      sentReadings: this.sentReadings,
      sentBytes: this.sentBytes,
      sendRateBps: Math.round(this.rateBps),
      dropped: { ...this.dropped },
    };
  }
}
