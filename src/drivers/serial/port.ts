import type { SerialPort } from 'serialport';
import { lazyRequire } from '../../lifecycle/lazy.js';

// Loaded on the first open (lifecycle/lazy.ts).
const serialport = lazyRequire<typeof import('serialport')>('serialport');
import { backoffDelay } from '../backoff.js';
import type { DriverContext } from '../types.js';

/** Port settings as they come from the config (common-config.ts serialPortKeys). */
export interface SerialSettings {
  path: string;
  baud: number;
  data_bits: 5 | 6 | 7 | 8;
  parity: 'none' | 'even' | 'odd' | 'mark' | 'space';
  stop_bits: 1 | 1.5 | 2;
  rtscts: boolean;
  xon: boolean;
  xoff: boolean;
  hupcl: boolean;
  rs485: { rts?: boolean; dtr?: boolean; low_latency: boolean };
  reconnect: { initial_ms: number; max_ms: number };
}

export function serialOpenOptions(s: SerialSettings) {
  return {
    path: s.path,
    baudRate: s.baud,
    dataBits: s.data_bits,
    parity: s.parity,
    stopBits: s.stop_bits,
    rtscts: s.rtscts,
    xon: s.xon,
    xoff: s.xoff,
    hupcl: s.hupcl,
  };
}

/** Applies the RS-485 related line settings serialport can set after open. Errors are logged, not fatal. */
export async function applyLineSettings(port: SerialPort, s: SerialSettings, ctx: DriverContext): Promise<void> {
  const set: { rts?: boolean; dtr?: boolean; lowLatency?: boolean } = {};
  if (s.rs485.rts !== undefined) set.rts = s.rs485.rts;
  if (s.rs485.dtr !== undefined) set.dtr = s.rs485.dtr;
  if (s.rs485.low_latency) set.lowLatency = true;
  if (Object.keys(set).length === 0) return;
  await new Promise<void>((resolve) =>
    port.set(set, (err) => {
      if (err) ctx.log.warn({ err, path: s.path }, 'could not apply rs485 line settings');
      resolve();
    }),
  );
}

export interface PortSupervisorOptions {
  settings: SerialSettings;
  ctx: DriverContext;
  onData(chunk: Buffer): void;
  /** Called after each (re)open, e.g. to reset a framer. */
  onOpen?(): void;
}

/**
 * Keeps a serial port open: opens it, and when it vanishes or errors (USB unplugged, pty closed)
 * reports the link offline and reopens with capped exponential backoff until it is back. Owns the
 * only port handle and the only timer; stop() releases both.
 */
export class PortSupervisor {
  private port: SerialPort | undefined;
  private timer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private stopped = true;

  constructor(private readonly o: PortSupervisorOptions) {}

  start(): void {
    this.stopped = false;
    this.open();
  }

  get isOpen(): boolean {
    return this.port?.isOpen ?? false;
  }

  /** Writes and waits until the bytes reached the OS, bounded by `timeoutMs`. */
  write(data: Buffer, timeoutMs = 2000): Promise<void> {
    const p = this.port;
    if (!p?.isOpen) return Promise.reject(new Error('port not open'));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('serial write timed out')), timeoutMs);
      p.write(data, (err) => {
        if (err) {
          clearTimeout(t);
          reject(err);
          return;
        }
        p.drain(() => {
          clearTimeout(t);
          resolve();
        });
      });
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.closePort();
  }

  private open(): void {
    if (this.stopped) return;
    const { settings, ctx } = this.o;
    const port = new (serialport().SerialPort)({ ...serialOpenOptions(settings), autoOpen: false });
    this.port = port;
    port.on('data', (chunk: Buffer) => this.o.onData(chunk));
    port.on('error', (err) => this.lost(port, `port error: ${err.message}`));
    port.on('close', () => this.lost(port, 'port closed'));
    port.open((err) => {
      if (this.port !== port) return;
      if (err) {
        ctx.error('open', { detail: err.message });
        this.port = undefined;
        port.removeAllListeners();
        ctx.setConnected(false, `cannot open ${settings.path}: ${err.message}`);
        this.retry();
        return;
      }
      if (this.stopped) {
        void this.closePort();
        return;
      }
      this.attempt = 0;
      void applyLineSettings(port, settings, ctx);
      this.o.onOpen?.();
      ctx.setConnected(true);
    });
  }

  /** The port vanished or failed: drop the handle, report offline once, schedule a reopen. */
  private lost(port: SerialPort, reason: string): void {
    if (this.port !== port) return;
    this.port = undefined;
    if (this.stopped) return;
    this.o.ctx.error('io', { detail: reason });
    this.o.ctx.setConnected(false, reason);
    port.removeAllListeners();
    // Keep a no-op error listener: a late error from the dead handle must not become an uncaught exception.
    port.on('error', () => {});
    if (port.isOpen) port.close(() => {});
    this.retry();
  }

  private retry(): void {
    if (this.stopped || this.timer) return;
    const { initial_ms, max_ms } = this.o.settings.reconnect;
    const delay = backoffDelay(this.attempt++, initial_ms, max_ms);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.o.ctx.reconnecting();
      this.open();
    }, delay);
  }

  private async closePort(): Promise<void> {
    const p = this.port;
    this.port = undefined;
    if (!p) return;
    p.removeAllListeners();
    p.on('error', () => {});
    if (!p.isOpen) return;
    await new Promise<void>((resolve) => p.close(() => resolve()));
  }
}

/**
 * Reports a device offline ("silent") when nothing valid arrived for `afterMs`; kick() on each
 * valid input. One timer, unref'd, cleared by stop().
 */
export class SilenceWatch {
  private timer: NodeJS.Timeout | undefined;
  private silent = false;

  constructor(
    private readonly afterMs: number,
    private readonly onSilent: () => void,
    private readonly onAlive: () => void,
  ) {}

  /** (Re)starts the countdown without reporting alive: called when the port opens. */
  arm(): void {
    if (this.afterMs <= 0) return;
    this.silent = false;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.silent = true;
      this.onSilent();
    }, this.afterMs);
    this.timer.unref();
  }

  kick(): void {
    if (this.afterMs <= 0) return;
    if (this.silent) {
      this.silent = false;
      this.onAlive();
    }
    this.arm();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
