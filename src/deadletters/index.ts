import { Counter, Gauge, type Registry } from 'prom-client';
import type { DeviceRegistry } from '../devices/registry.js';
import type { Db } from '../store/db.js';
import type { Logger } from '../log/logger.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import type { Publisher } from '../publisher/types.js';
import type { DeadLettersConfig } from './config.js';
import { RefusalKeeper } from './refusals.js';
import { DeadLetterStore } from './store.js';

export { DeadLetterStore, type DeadLetter, type DeadLetterSummary, type DeadLetterStats } from './store.js';
export { RefusalKeeper } from './refusals.js';
export { DeadLettersConfigSchema, type DeadLettersConfig } from './config.js';

/**
 * Refused payloads, wired once by the composition root: the store (undefined when
 * deadletters.enabled is false) and the keeper that every source's refusals reach through
 * `pipeline.refuse` (device counters, dead letters, one log line per device per minute).
 */
export class DeadLetters {
  readonly store: DeadLetterStore | undefined;
  private readonly keeper: RefusalKeeper;
  private readonly uplink: boolean;
  private readonly log: Logger;

  constructor(opts: {
    db: Db;
    config: DeadLettersConfig;
    devices: DeviceRegistry;
    pipeline: Pipeline;
    log: Logger;
    /** Prometheus registry for edge_gateway_refused_payloads_total and edge_gateway_deadletters. */
    registry?: Registry;
  }) {
    const { db, config, devices, pipeline, log, registry } = opts;
    this.uplink = config.uplink;
    this.log = log;
    const store = config.enabled ? new DeadLetterStore({ db, config, log }) : undefined;
    this.store = store;
    const keeper = new RefusalKeeper({ store, devices, log, uplink: config.uplink });
    this.keeper = keeper;
    const registers = registry ? [registry] : [];
    const refused = new Counter({
      name: 'edge_gateway_refused_payloads_total',
      help: 'Payloads refused whole or in part at the boundary (kept as dead letters), by source.',
      labelNames: ['source'],
      registers,
    });
    if (store) {
      new Gauge({
        name: 'edge_gateway_deadletters',
        help: 'Dead letters in the store (bounded by deadletters.max_rows / max_bytes / max_age_s).',
        registers,
        collect() {
          this.set(store.stats().rows);
        },
      });
    }
    pipeline.setRefusalSink({
      refuse: (r) => {
        refused.inc({ source: r.source });
        return keeper.refuse(r);
      },
    });
  }

  /** The publisher for `deadletters.uplink` (LOW priority); set once the publisher exists. */
  setPublisher(publisher: Publisher | undefined): void {
    this.keeper.setPublisher(publisher);
  }

  start(): void {
    this.store?.start();
    this.keeper.start();
    if (this.uplink && !this.keeper.hasPublisher)
      this.log.warn('deadletters.uplink is on but no publisher is wired (queue disabled?): dead letters stay local');
  }

  /** Logs the last counts and commits what waits; before the database closes. */
  close(): void {
    this.keeper.stop();
    this.store?.close();
  }
}
