import type { DeviceRegistry } from '../devices/registry.js';
import type { Logger } from '../log/logger.js';
import type { Refusal, RefusalSink } from '../pipeline/pipeline.js';
import type { Publisher } from '../publisher/types.js';
import type { DeadLetterStore } from './store.js';

export interface RefusalKeeperOptions {
  store: DeadLetterStore | undefined;
  devices: DeviceRegistry;
  log: Logger;
  /** When set (and `uplink` is true) each dead letter also goes to the cloud at LOW priority. */
  publisher?: Publisher;
  uplink?: boolean;
  /** Wall clock for the device's lastErrorAt. */
  wallClock?: () => number;
  /** Monotonic clock for the log rate (DESIGN "Clocks"). */
  monoClock?: () => number;
  /** One log line per device at most this often (default one minute). */
  logIntervalMs?: number;
}

interface LogState {
  lastAt: number;
  /** Refusals since the last line. */
  pending: number;
  reason: string;
  code: string;
}

/** Devices tracked for the log rate; beyond it new devices share one line. */
const MAX_TRACKED = 10000;
const SHARED_KEY = '(other devices)';

/**
 * Where every source's refusals go (the pipeline's refusal sink): the device's refusal count and
 * last error (/mgmt/devices), the dead-letter store (/mgmt/deadletters), optionally the cloud, and
 * the log — at most one line per device per minute, carrying how many were refused since the last
 * line, so a flood is visible per device without flooding the journal.
 */
export class RefusalKeeper implements RefusalSink {
  private readonly perDevice = new Map<string, LogState>();
  private readonly wall: () => number;
  private readonly mono: () => number;
  private readonly interval: number;
  private timer: NodeJS.Timeout | undefined;
  private publisher: Publisher | undefined;

  constructor(private readonly opts: RefusalKeeperOptions) {
    this.publisher = opts.publisher;
    this.wall = opts.wallClock ?? Date.now;
    this.mono = opts.monoClock ?? (() => performance.now());
    this.interval = opts.logIntervalMs ?? 60_000;
  }

  get hasPublisher(): boolean {
    return this.publisher !== undefined;
  }

  setPublisher(publisher: Publisher | undefined): void {
    this.publisher = publisher;
  }

  /** Starts the timer that logs the counts of devices still refused at the end of their minute. */
  start(): void {
    this.timer = setInterval(() => this.tick(), this.interval);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.tick(true);
  }

  refuse(r: Refusal): Promise<void> | void {
    const { devices, store } = this.opts;
    const publisher = this.publisher;
    if (r.deviceId !== undefined && r.transport !== undefined)
      devices.refused(r.deviceId, r.transport, r.reason, this.wall());
    this.count(r);
    if (this.opts.uplink && publisher) {
      const body = {
        deviceId: r.deviceId ?? null,
        source: r.source,
        topic: r.topic ?? null,
        code: r.code,
        reason: r.reason,
        accepted: r.accepted,
        at: this.wall(),
        payload: Buffer.from(r.payload).toString('base64'),
      };
      publisher
        .publish({
          topic: `deadletters/${r.deviceId ?? '_'}`,
          payload: JSON.stringify(body),
          priority: 'LOW',
          source: 'system',
          local: false,
        })
        .catch((err: unknown) => this.opts.log.warn({ err }, 'dead letter not queued for the uplink'));
    }
    return store?.add({
      source: r.source,
      deviceId: r.deviceId ?? null,
      origin: r.origin ?? null,
      topic: r.topic ?? null,
      code: r.code,
      reason: r.reason,
      accepted: r.accepted,
      payload: r.payload,
    });
  }

  private count(r: Refusal): void {
    let key = r.deviceId ?? r.origin ?? '(unknown)';
    let s = this.perDevice.get(key);
    if (!s && this.perDevice.size >= MAX_TRACKED) {
      key = SHARED_KEY;
      s = this.perDevice.get(key);
    }
    const t = this.mono();
    if (!s) {
      s = { lastAt: -Infinity, pending: 0, reason: r.reason, code: r.code };
      this.perDevice.set(key, s);
    }
    s.pending++;
    s.reason = r.reason;
    s.code = r.code;
    if (t - s.lastAt >= this.interval) this.line(key, s, t);
  }

  private line(key: string, s: LogState, t: number): void {
    this.opts.log.warn(
      { code: s.code, deviceId: key, refused: s.pending, reason: s.reason.slice(0, 300) },
      `${s.pending} payload(s) from ${key} refused or partly refused since the last report; kept as dead letters (edge-gateway ctl deadletters)`,
    );
    s.pending = 0;
    s.lastAt = t;
  }

  private tick(final = false): void {
    const t = this.mono();
    for (const [key, s] of this.perDevice) {
      if (s.pending > 0 && (final || t - s.lastAt >= this.interval)) this.line(key, s, t);
      else if (s.pending === 0 && t - s.lastAt >= 2 * this.interval) this.perDevice.delete(key);
    }
  }
}
