import type { DeviceRegistry } from '../devices/registry.js';
import { StateLog, type Logger } from '../log/logger.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import { describeProblems, normaliseReadings, type Normalised } from '../pipeline/normalise.js';
import { isValidDeviceId, type Reading } from '../pipeline/reading.js';
import type { DriverMetrics } from './metrics.js';
import { RateLimitedLog } from '../log/rate-limited.js';
import type {
  CommandOptions,
  CommandResult,
  Driver,
  DriverContext,
  DriverDetail,
  DriverErrorKind,
  DriverType,
  Sample,
} from './types.js';

export interface RuntimeOptions {
  type: DriverType<never>;
  config: { id: string; type: string; buffer_size: number; [k: string]: unknown };
  log: Logger;
  pipeline: Pipeline;
  devices: DeviceRegistry;
  metrics: DriverMetrics;
  /** Largest batch handed to one ingest call. */
  maxBatch?: number;
  /** Wait before retrying after the pipeline refused a batch (overload). */
  retryMs?: number;
}

export interface DriverStatus {
  id: string;
  type: string;
  state: 'stopped' | 'running' | 'failed';
  connected: boolean;
  reason: string | null;
  lastReadingTs: number | null;
  readings: number;
  dropped: number;
  errors: Partial<Record<DriverErrorKind, number>>;
  buffered: number;
  detail?: DriverDetail;
}

/**
 * Wraps one driver instance: the part every driver shares. Samples become Readings in a bounded
 * buffer (drop-oldest, counted) drained by one ingest at a time, so a slow pipeline never makes a
 * driver block or buffer without bound; health goes to the device registry and metrics; nothing
 * the driver throws reaches the core.
 */
export class DriverRuntime {
  readonly id: string;
  private driver: Driver | undefined;
  private abort = new AbortController();
  private buffer: Reading[] = [];
  private draining = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private state: DriverStatus['state'] = 'stopped';
  private connected = false;
  private reason: string | null = 'not started';
  private lastReadingTs: number | null = null;
  private readings = 0;
  private dropped = 0;
  private readonly errors: Partial<Record<DriverErrorKind, number>> = {};
  private readonly link: StateLog<'connected' | 'disconnected'>;
  private readonly deviceStates = new Map<string, boolean>();
  private readonly rateLog: RateLimitedLog;
  private readonly maxBatch: number;
  private readonly retryMs: number;

  constructor(private readonly opts: RuntimeOptions) {
    this.id = opts.config.id;
    this.link = new StateLog(opts.log, `driver ${this.id}`);
    this.rateLog = new RateLimitedLog(opts.log, 10000);
    this.maxBatch = opts.maxBatch ?? 500;
    this.retryMs = opts.retryMs ?? 200;
  }

  /** Creates the driver (config checks happen here, before any hardware is touched); throws on bad config. */
  create(): void {
    const ctx = this.context();
    this.driver = (this.opts.type.create as (c: unknown, ctx: DriverContext) => Driver)(this.opts.config, ctx);
  }

  /** For plugin types registered after construction (see DriverManager). */
  replaceType(type: DriverType<never>, config: RuntimeOptions['config']): void {
    this.opts.type = type;
    this.opts.config = config;
  }

  get created(): boolean {
    return this.driver !== undefined;
  }

  devices(): readonly string[] {
    try {
      return this.driver?.devices() ?? [this.id];
    } catch {
      return [this.id];
    }
  }

  async start(): Promise<void> {
    if (!this.driver) this.create();
    this.state = 'running';
    try {
      await this.driver!.start();
    } catch (err) {
      // A driver that throws on start is disabled, not fatal: other drivers and the gateway go on.
      this.state = 'failed';
      this.reason = (err as Error).message;
      this.opts.log.error(
        { err, driver: this.id },
        `driver ${this.id} failed to start; it stays disabled until restart`,
      );
    }
  }

  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.abort.abort();
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    try {
      await this.driver?.stop();
    } catch (err) {
      this.opts.log.warn({ err, driver: this.id }, 'driver stop threw');
    }
    this.setConnected(false, 'stopped');
    // Whatever is still buffered cannot be ingested any more: count it.
    if (this.buffer.length) this.drop(this.buffer.length, 'stopped');
    this.buffer = [];
    this.abort = new AbortController();
  }

  async command(deviceId: string, payload: unknown, opts: CommandOptions): Promise<CommandResult> {
    const d = this.driver;
    if (!d?.command) return { ok: false, error: `driver ${this.id} (${this.opts.type.type}) accepts no commands` };
    if (this.state !== 'running') return { ok: false, error: `driver ${this.id} is ${this.state}` };
    try {
      const r = await d.command(deviceId, payload, opts);
      if (!r.ok) this.countError('command', deviceId, r.error);
      return r;
    } catch (err) {
      this.countError('command', deviceId, (err as Error).message);
      return { ok: false, error: (err as Error).message };
    }
  }

  status(): DriverStatus {
    let detail: DriverDetail | undefined;
    try {
      detail = this.driver?.detail?.();
    } catch {
      detail = undefined;
    }
    return {
      id: this.id,
      type: this.opts.type.type,
      state: this.state,
      connected: this.connected,
      reason: this.reason,
      lastReadingTs: this.lastReadingTs,
      readings: this.readings,
      dropped: this.dropped,
      errors: { ...this.errors },
      buffered: this.buffer.length,
      ...(detail ? { detail } : {}),
    };
  }

  private context(): DriverContext {
    // A getter, because the abort controller is replaced on every restart of the driver.
    const currentSignal = () => this.abort.signal;
    return {
      id: this.id,
      log: this.opts.log,
      get signal() {
        return currentSignal();
      },
      emit: (samples) => this.guard(() => this.emit(samples)),
      setConnected: (c, reason, deviceId) => this.guard(() => this.setConnected(c, reason ?? null, deviceId)),
      error: (kind, o) => this.guard(() => this.countError(kind, o?.deviceId, o?.detail)),
      received: (n, deviceId) =>
        this.guard(() => this.opts.devices.received(deviceId ?? this.id, this.opts.type.transport, n)),
      reconnecting: () => this.guard(() => this.opts.metrics.reconnects.inc({ driver: this.id })),
    };
  }

  /** Context callbacks run inside driver code: a bug here must not surface in the driver's I/O callbacks. */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.opts.log.error({ err, driver: this.id }, 'driver runtime error');
    }
  }

  private emit(samples: readonly Sample[]): void {
    if (this.state !== 'running') return;
    const now = Date.now();
    const { transport, source } = this.opts.type;
    for (const s of samples) {
      const deviceId = s.deviceId ?? this.id;
      if (!isValidDeviceId(deviceId)) {
        this.countError('bad_line', this.id, `invalid device id ${JSON.stringify(deviceId).slice(0, 80)}`);
        continue;
      }
      const r: Reading = { deviceId, ts: s.ts ?? now, values: s.values, quality: s.quality, source };
      if (s.units) r.units = s.units;
      // The boundary's limits (pipeline/normalise.ts): what a reading cannot carry is left out and
      // the sample kept as a dead letter; a ts the codec cannot carry refuses the sample.
      const n = normaliseReadings([r], now);
      if (n.problemCount > 0) this.refuseSample(s, deviceId, n);
      if (n.readings.length === 0) continue;
      this.buffer.push(n.readings[0]!);
      this.opts.devices.message(deviceId, transport, s.bytes ?? 0);
    }
    const over = this.buffer.length - this.opts.config.buffer_size;
    if (over > 0) {
      // Drop the oldest: the newest values describe the sensor best (DESIGN: every queue bounded).
      this.buffer.splice(0, over);
      this.drop(over, 'buffer_full');
    }
    this.opts.metrics.buffered.set({ driver: this.id }, this.buffer.length);
    if (!this.draining && !this.retryTimer) void this.drain();
  }

  private refuseSample(s: Sample, deviceId: string, n: Normalised): void {
    const { transport, source } = this.opts.type;
    void this.opts.pipeline.refuse({
      source,
      transport,
      deviceId,
      origin: this.id,
      topic: `sensors/${deviceId}/data`,
      payload: Buffer.from(JSON.stringify(s)),
      code: n.code,
      reason: describeProblems(n),
      accepted: n.readings.length,
    });
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.buffer.length > 0 && this.state === 'running') {
        const groups = groupByDevice(this.buffer.splice(0, this.maxBatch));
        for (let g = 0; g < groups.length; g++) {
          const [deviceId, readings] = groups[g]!;
          try {
            await this.opts.pipeline.ingest(readings, { topic: `sensors/${deviceId}/data`, origin: this.id });
            this.readings += readings.length;
            this.lastReadingTs = readings[readings.length - 1]!.ts;
            this.opts.metrics.readings.inc({ driver: this.id }, readings.length);
            this.opts.metrics.lastReading.set({ driver: this.id }, this.lastReadingTs / 1000);
          } catch (err) {
            if ((err as { code?: string }).code === 'EGW_PIPELINE_OVERLOAD' && this.state === 'running') {
              // Backpressure: put this group and the rest back in front, trim to the bound, wait.
              this.buffer.unshift(...groups.slice(g).flatMap(([, rs]) => rs));
              this.trimAfterRequeue();
              this.retryTimer = setTimeout(() => {
                this.retryTimer = undefined;
                void this.drain();
              }, this.retryMs);
              return;
            }
            this.drop(readings.length, 'refused');
            this.rateLog.warn('refused', { err, driver: this.id }, 'pipeline refused driver readings');
          }
        }
      }
    } finally {
      this.draining = false;
      this.opts.metrics.buffered.set({ driver: this.id }, this.buffer.length);
    }
  }

  private trimAfterRequeue(): void {
    const over = this.buffer.length - this.opts.config.buffer_size;
    if (over > 0) {
      this.buffer.splice(0, over);
      this.drop(over, 'buffer_full');
    }
  }

  private drop(n: number, reason: 'buffer_full' | 'refused' | 'stopped'): void {
    this.dropped += n;
    this.opts.metrics.dropped.inc({ driver: this.id, reason }, n);
    if (reason !== 'stopped')
      this.rateLog.warn(`drop-${reason}`, { driver: this.id, reason, n }, `driver ${this.id} dropped readings`);
  }

  private setConnected(connected: boolean, reason: string | null, deviceId?: string): void {
    const { transport } = this.opts.type;
    if (deviceId === undefined || deviceId === this.id) {
      this.connected = connected;
      this.reason = connected ? null : reason;
      this.opts.metrics.up.set({ driver: this.id, type: this.opts.type.type }, connected ? 1 : 0);
      const code = !connected && transport === 'serial' && reason !== 'stopped' ? { code: 'EGW_SERIAL_OPEN' } : {};
      this.link.set(
        connected ? 'connected' : 'disconnected',
        { reason, ...code }, // the driver's child logger already carries driver and type
        // A stop is asked for, not a fault: info, not warn.
        connected || reason === 'stopped' ? 'info' : 'warn',
      );
      this.opts.devices.setOnline(this.id, transport, connected, reason);
      return;
    }
    this.opts.metrics.deviceUp.set({ driver: this.id, device: deviceId }, connected ? 1 : 0);
    if (this.deviceStates.get(deviceId) !== connected) {
      this.deviceStates.set(deviceId, connected);
      this.opts.log[connected ? 'info' : 'warn'](
        { driver: this.id, device: deviceId, reason },
        `device ${deviceId} ${connected ? 'online' : 'offline'}`,
      );
    }
    this.opts.devices.setOnline(deviceId, transport, connected, reason);
  }

  private countError(kind: DriverErrorKind, deviceId: string | undefined, detail: string | undefined): void {
    this.errors[kind] = (this.errors[kind] ?? 0) + 1;
    this.opts.metrics.errors.inc({ driver: this.id, kind });
    this.opts.devices.error(deviceId ?? this.id, this.opts.type.transport);
    this.rateLog.warn(
      kind,
      { driver: this.id, device: deviceId, kind, detail: detail?.slice(0, 200) },
      `driver ${this.id}: ${kind}`,
    );
  }
}

function groupByDevice(batch: readonly Reading[]): [string, Reading[]][] {
  const m = new Map<string, Reading[]>();
  for (const r of batch) {
    let list = m.get(r.deviceId);
    if (!list) m.set(r.deviceId, (list = []));
    list.push(r);
  }
  return [...m];
}
