import type { CapabilityModule } from '../capability/types.js';
import { needSeam } from '../capability/needs.js';
import type { Service, ServiceHealth } from '../lifecycle/service.js';
import type { Logger } from '../log/logger.js';
import type { Publisher } from '../publisher/types.js';
import type { DeviceRecord, DeviceRegistry } from './registry.js';

/** The retained document on `devices/{id}/status` (docs/publisher.md). */
export interface DeviceStatusDoc {
  online: boolean;
  /** Why it went offline ("disconnect", "will", "port closed", "restart"...); null when online. */
  reason: string | null;
  transport: DeviceRecord['transport'];
  /** Wall-clock ms of the transition (data only). */
  ts: number;
}

export function statusDoc(d: DeviceRecord, ts: number): DeviceStatusDoc {
  return { online: d.online, reason: d.online ? null : d.reason, transport: d.transport, ts };
}

/**
 * Device online/offline, whatever the transport (drivers, CoAP, MQTT sessions), as the retained
 * `devices/{id}/status` on the local broker and, through the outbox, on the cloud (DESIGN topics).
 * No explicit priority: the queue rules decide (default `devices/+/status` → HIGH).
 *
 * An MQTT client owns its own `devices/{id}/status` on the local broker (its will and birth
 * messages; the default ACL grants it `devices/{clientid}/#`), so for MQTT devices the gateway
 * does not publish locally — it would overwrite the device's retained message — and sends the
 * transition to the uplink only.
 */
export class DeviceStatusPublisher implements Service {
  readonly name = 'device-status';
  private remove: (() => void) | undefined;
  private failures = 0;
  /** Publishes not settled yet: stop waits for them, so the "offline, stopped" of each device still reaches the broker. */
  private readonly pending = new Set<Promise<unknown>>();

  constructor(
    private readonly opts: {
      devices: DeviceRegistry;
      publisher: Publisher;
      log: Logger;
      now?: () => number;
    },
  ) {}

  /** Subscribes at build time: drivers and the broker report transitions while they start. */
  attach(): void {
    this.remove ??= this.opts.devices.onStatus((d) => this.publish(d));
  }

  async start(): Promise<void> {
    this.attach();
    // A device online when the gateway last stopped (or crashed) still has a retained "online";
    // the registry marks it offline with reason "restart" until its source reports again.
    for (const d of this.opts.devices.list()) if (!d.online && d.reason === 'restart') this.publish(d);
  }

  async stop(): Promise<void> {
    this.remove?.();
    this.remove = undefined;
    // Sources stopped before this service (reverse start order) and reported their devices
    // offline; the broker stops after it, so let those publishes land first (bounded by the
    // lifecycle's stop timeout).
    await Promise.allSettled([...this.pending]);
  }

  health(): ServiceHealth {
    return { ok: true, state: this.remove ? 'publishing' : 'stopped', detail: { failures: this.failures } };
  }

  private publish(d: DeviceRecord): void {
    const ts = (this.opts.now ?? Date.now)();
    const p = this.opts.publisher
      .publish({
        topic: `devices/${d.id}/status`,
        payload: JSON.stringify(statusDoc(d, ts)),
        qos: 1,
        retain: true,
        local: d.transport !== 'mqtt',
        source: 'system',
      })
      .catch((err: unknown) => {
        this.failures++;
        this.opts.log.error({ err, deviceId: d.id }, 'device status not accepted for the uplink');
      })
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }
}

/** Device status through the publisher; before the sources (CoAP, drivers) so it stops after them. */
export const deviceStatusModule: CapabilityModule = {
  name: 'device-status',
  enabled: () => true,
  build(ctx) {
    const status = new DeviceStatusPublisher({
      devices: ctx.devices,
      publisher: needSeam(ctx.provided.publisher, 'publisher', 'device-status'),
      log: ctx.log.child({ mod: 'device-status' }),
    });
    status.attach();
    return { services: [status] };
  },
};
