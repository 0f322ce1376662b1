import type { TSchema } from '@sinclair/typebox';
import type { Transport } from '../devices/registry.js';
import type { Logger } from '../log/logger.js';
import type { Quality, ReadingSource, ReadingValue } from '../pipeline/reading.js';

/**
 * The driver contract. A driver turns bytes from a sensor into samples; everything else
 * (buffering, backpressure, pipeline ingest, device registry, metrics, error isolation) is done
 * once by the runtime that wraps it (runtime.ts), so a new driver type only writes the part that
 * knows its protocol.
 */

/** What a driver emits: one device's values at one instant. The runtime turns it into a Reading. */
export interface Sample {
  /** Defaults to the driver id; multi-device drivers (Modbus slaves) set their own. */
  deviceId?: string;
  /** Wall-clock ms; defaults to the time the runtime receives it. */
  ts?: number;
  values: Record<string, ReadingValue>;
  quality: Quality;
  units?: Record<string, string>;
  /** Bytes on the wire that produced it (device registry bytes_in). */
  bytes?: number;
}

/** Error kinds a driver counts; they become the `kind` label of edge_gateway_driver_errors_total. */
export type DriverErrorKind =
  | 'open' // the port could not be opened
  | 'io' // the port failed or vanished while open
  | 'bad_line' // a line that no parser accepted
  | 'overlong' // a line longer than max_line_length (discarded up to the next delimiter)
  | 'checksum' // NMEA checksum mismatch
  | 'crc' // Modbus CRC / malformed response
  | 'timeout' // a request got no answer in time
  | 'exception' // a Modbus exception response
  | 'command'; // a device command that was refused or failed

/** Handed to each driver instance by the runtime: the only way a driver talks to the core. */
export interface DriverContext {
  readonly id: string;
  readonly log: Logger;
  /** Hands samples to the runtime; never blocks, never throws (bounded buffer, drops counted). */
  emit(samples: readonly Sample[]): void;
  /** Connection state of the driver's link (port) or of one of its devices. */
  setConnected(connected: boolean, reason?: string, deviceId?: string): void;
  /**
   * Counts an error (metrics, device registry) and logs it rate-limited. `deviceId` defaults to
   * the driver id; `detail` (a sample of the bad input, the error message) goes to the log only.
   */
  error(kind: DriverErrorKind, opts?: { deviceId?: string; detail?: string }): void;
  /**
   * Counts bytes received from a device (device registry bytes_in) as they arrive, whether or not
   * they become a reading; drivers that use it emit samples with `bytes: 0`.
   */
  received(bytes: number, deviceId?: string): void;
  /** Counts a reconnect attempt (for edge_gateway_driver_reconnects_total). */
  reconnecting(): void;
  /** Aborted when the driver is stopped: pending waits and timers should end. */
  readonly signal: AbortSignal;
}

/** What the caller of a command grants the driver (DriverManager.handleCommand sets both). */
export interface CommandOptions {
  /**
   * Aborted when the caller stopped waiting and reported the command failed: from then on the
   * driver must not send anything more for it.
   */
  readonly signal: AbortSignal;
  /** Monotonic time (performance.now()) by which the driver must have answered. */
  readonly deadline: number;
}

/** Driver-specific health for /mgmt; entries of `devices` are served per device (/mgmt/devices/{id}). */
export interface DriverDetail {
  devices?: Record<string, Record<string, unknown>>;
  [key: string]: unknown;
}

export interface CommandResult {
  ok: boolean;
  /** Short reason shown to the caller when ok is false (validation error, timeout...). */
  error?: string;
  detail?: Record<string, unknown>;
}

export interface Driver {
  /**
   * Starts in the background: resolves once the driver is running or retrying (a missing port is
   * not a start failure: it is "offline, retrying"). Must not throw for runtime conditions.
   */
  start(): Promise<void>;
  /** Releases every handle and timer. Idempotent. */
  stop(): Promise<void>;
  /** Device ids this driver owns (for command routing and registry); at least the driver id. */
  devices(): readonly string[];
  /** Handles `commands/{deviceId}`; only drivers that can write to a device implement it. */
  command?(deviceId: string, payload: unknown, opts: CommandOptions): Promise<CommandResult>;
  /** Extra per-type health detail (e.g. per-slave state) for /mgmt. */
  detail?(): DriverDetail;
}

/**
 * A driver type: its name (the `type:` key in YAML), the TypeBox schema of one `drivers:` entry
 * of this type, and a factory. Built-in types are listed in builtin.ts; plugins and other modules
 * register more with DriverTypeRegistry.register().
 */
export interface DriverType<C extends { id: string; type: string } = { id: string; type: string }> {
  readonly type: string;
  /** Schema of a whole `drivers:` entry of this type (type, id, common keys and options). */
  readonly schema: TSchema;
  /** Where its readings say they come from, and the device-registry transport. */
  readonly source: ReadingSource;
  readonly transport: Transport;
  create(config: C, ctx: DriverContext): Driver;
}
