import { EventEmitter } from 'node:events';
import type { Reading } from './reading.js';
import type { IngestMeta, Pipeline } from './pipeline.js';

/**
 * Latest reading per device, for CoAP GET/observe and /mgmt. Updated after the commit (it follows
 * the pipeline's `reading` event, emitted once every sink committed), so it never shows a value
 * the gateway then failed to store; ordered by arrival, not by the device's `ts`: a device whose
 * clock once jumped ahead (or a reading with a wrong `ts`) must not hide every later reading.
 * Bounded: beyond `maxDevices` the least recently updated device is forgotten (Map keeps
 * insertion order; re-insert on update).
 */
export class LatestValues extends EventEmitter<{ update: [reading: Reading] }> {
  private readonly byDevice = new Map<string, Reading>();
  private readonly onReading = (r: Reading, _meta: IngestMeta) => this.update(r);

  constructor(private readonly maxDevices = 10000) {
    super();
  }

  /** Follows a pipeline's committed readings; returns the function that stops following. */
  follow(pipeline: Pipeline): () => void {
    pipeline.on('reading', this.onReading);
    return () => pipeline.off('reading', this.onReading);
  }

  update(r: Reading): void {
    this.byDevice.delete(r.deviceId);
    this.byDevice.set(r.deviceId, r);
    if (this.byDevice.size > this.maxDevices) this.byDevice.delete(this.byDevice.keys().next().value!);
    this.emit('update', r);
  }

  /** Several readings in arrival order (tests, replays). */
  accept(readings: readonly Reading[]): void {
    for (const r of readings) this.update(r);
  }

  get(deviceId: string): Reading | undefined {
    return this.byDevice.get(deviceId);
  }

  devices(): string[] {
    return [...this.byDevice.keys()];
  }
}
