import type { DeviceRegistry } from '../devices/registry.js';
import { GatewayError } from '../errors.js';
import type { Service, ServiceHealth } from '../lifecycle/service.js';
import type { Logger } from '../log/logger.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import type { Registry } from 'prom-client';
import type { DriverEntry } from './config.js';
import { DriverMetrics } from './metrics.js';
import type { DriverTypeRegistry } from './registry.js';
import { DriverRuntime, type DriverStatus } from './runtime.js';
import type { CommandResult } from './types.js';

export interface DriverManagerOptions {
  config: readonly DriverEntry[];
  types: DriverTypeRegistry;
  log: Logger;
  pipeline: Pipeline;
  devices: DeviceRegistry;
  metrics: Registry;
  /** Bound on one device command (a Modbus write with retries). */
  commandTimeoutMs?: number;
}

/**
 * Starts and stops every configured driver and routes device commands to them. One driver's
 * failure never stops the others or the gateway: health stays ok with per-driver detail (a
 * missing sensor is not a reason for systemd to restart the gateway).
 */
export class DriverManager implements Service {
  readonly name = 'drivers';
  private readonly runtimes: DriverRuntime[] = [];
  private running = false;

  constructor(private readonly opts: DriverManagerOptions) {
    const metrics = new DriverMetrics(opts.metrics);
    const seen = new Set<string>();
    opts.config.forEach((entry, i) => {
      if (seen.has(entry.id))
        throw new GatewayError('EGW_DRIVER_CONFIG', `drivers[${i}].id: duplicate driver id "${entry.id}"`);
      seen.add(entry.id);
      if (!entry.enabled) return;
      const log = opts.log.child({ driver: entry.id, type: entry.type });
      const type = opts.types.get(entry.type);
      const rt = new DriverRuntime({
        type: type ?? placeholderType(entry.type),
        config: entry,
        log,
        pipeline: opts.pipeline,
        devices: opts.devices,
        metrics,
      });
      this.runtimes.push(rt);
      // Built-in types are created now: config problems surface before any port is opened.
      // Plugin (x-) types may register later, so they are created at start.
      if (type && !entry.type.startsWith('x-')) {
        try {
          rt.create();
        } catch (err) {
          throw new GatewayError('EGW_DRIVER_CONFIG', `drivers[${i}] (${entry.id}): ${(err as Error).message}`, {
            cause: err,
          });
        }
      }
    });
    const owners = new Map<string, string>();
    for (const rt of this.runtimes) {
      for (const d of rt.devices()) {
        const prev = owners.get(d);
        if (prev && prev !== rt.id)
          throw new GatewayError('EGW_DRIVER_CONFIG', `device id "${d}" is produced by drivers ${prev} and ${rt.id}`);
        owners.set(d, rt.id);
      }
    }
  }

  async start(): Promise<void> {
    this.running = true;
    await Promise.all(
      this.runtimes.map(async (rt, i) => {
        if (!rt.created) {
          const entry = this.opts.config.find((e) => e.id === rt.id)!;
          try {
            this.createLate(rt, entry, i);
          } catch (err) {
            this.opts.log.error({ err, driver: rt.id }, `driver ${rt.id} cannot be created; it stays disabled`);
            return;
          }
        }
        await rt.start();
      }),
    );
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.runtimes.map((rt) => rt.stop()));
  }

  health(): ServiceHealth {
    const st = this.status();
    const connected = st.filter((s) => s.connected).length;
    return {
      ok: true,
      state: this.running ? `${connected}/${st.length} connected` : 'stopped',
      // Driver detail (per-device entries such as Modbus slaves) is what /mgmt/devices serves.
      detail: Object.fromEntries(
        st.map((s) => [
          s.id,
          {
            type: s.type,
            state: s.state,
            connected: s.connected,
            reason: s.reason,
            ...(s.detail ? { detail: s.detail } : {}),
          },
        ]),
      ),
    };
  }

  status(): DriverStatus[] {
    return this.runtimes.map((rt) => rt.status());
  }

  /** True when a configured driver produces this device (so `commands/{deviceId}` is ours to handle). */
  ownsDevice(deviceId: string): boolean {
    return this.runtimes.some((rt) => rt.devices().includes(deviceId));
  }

  /**
   * Hook for `commands/{deviceId}` (wired by the broker): resolves null when no driver owns the
   * device, else the outcome. Never rejects; bounded by commandTimeoutMs.
   */
  async handleCommand(deviceId: string, payload: unknown): Promise<CommandResult | null> {
    const rt = this.runtimes.find((r) => r.devices().includes(deviceId));
    if (!rt) return null;
    const bound = this.opts.commandTimeoutMs ?? 10000;
    // The driver gets the deadline (to answer before it) and a signal aborted when we stop
    // waiting, so a command reported as timed out is never carried out later (docs/drivers.md).
    const abort = new AbortController();
    const deadline = performance.now() + bound;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<CommandResult>(
      (r) =>
        (timer = setTimeout(() => {
          abort.abort();
          r({ ok: false, error: `command timed out after ${bound} ms; nothing more is sent for it` });
        }, bound)),
    );
    try {
      return await Promise.race([rt.command(deviceId, payload, { signal: abort.signal, deadline }), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private createLate(rt: DriverRuntime, entry: DriverEntry, i: number): void {
    const type = this.opts.types.get(entry.type);
    if (!type)
      throw new GatewayError(
        'EGW_DRIVER_TYPE',
        `drivers[${i}]: unknown driver type "${entry.type}" (known: ${this.opts.types.names().join(', ')})`,
      );
    const options = this.opts.types.checkOptions(type, (entry as { options?: unknown }).options ?? {}, `drivers[${i}]`);
    rt.replaceType(type, { ...entry, options });
    rt.create();
  }
}

/** Stands in for a plugin type not registered yet; replaced at start. */
function placeholderType(name: string) {
  return {
    type: name,
    schema: {} as never,
    source: 'plugin' as const,
    transport: 'serial' as const,
    create(): never {
      throw new GatewayError('EGW_DRIVER_TYPE', `driver type ${name} is not registered`);
    },
  };
}
