import { EventEmitter } from 'node:events';
import type { Reading } from './reading.js';
import type { Sink } from './pipeline.js';

/**
 * Latest reading per device, for CoAP GET/observe and /mgmt. An after-commit sink: updated once
 * every other sink (the outbox) committed, so it never shows a value the gateway then failed to
 * store; ordered by arrival, not by the device's `ts`: a device whose clock once jumped ahead (or a
 * reading with a wrong `ts`) must not hide every later reading. Bounded: beyond `maxDevices` the
 * least recently updated device is forgotten (Map keeps insertion order; re-insert on update).
 */
export class LatestValues extends EventEmitter<{ update: [reading: Reading] }> implements Sink {
  readonly name = 'latest';
  readonly afterCommit = true;
  private readonly byDevice = new Map<string, Reading>();

  constructor(private readonly maxDevices = 10000) {
    super();
  }

  accept(readings: readonly Reading[]): void {
    for (const r of readings) {
      this.byDevice.delete(r.deviceId);
      this.byDevice.set(r.deviceId, r);
      if (this.byDevice.size > this.maxDevices) this.byDevice.delete(this.byDevice.keys().next().value!);
      this.emit('update', r);
    }
  }

  get(deviceId: string): Reading | undefined {
    return this.byDevice.get(deviceId);
  }

  devices(): string[] {
    return [...this.byDevice.keys()];
  }
}
