import { EventEmitter } from 'node:events';
import type { Reading } from './reading.js';
import type { Sink } from './pipeline.js';

/**
 * Latest reading per device, for CoAP GET/observe and /mgmt. Bounded: beyond `maxDevices` the
 * least recently updated device is forgotten (Map keeps insertion order; re-insert on update).
 */
export class LatestValues extends EventEmitter<{ update: [reading: Reading] }> implements Sink {
  readonly name = 'latest';
  private readonly byDevice = new Map<string, Reading>();

  constructor(private readonly maxDevices = 10000) {
    super();
  }

  accept(readings: readonly Reading[]): void {
    for (const r of readings) {
      const prev = this.byDevice.get(r.deviceId);
      // Out-of-order history (a drained serial buffer) must not replace a newer value.
      if (prev && prev.ts > r.ts) continue;
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
