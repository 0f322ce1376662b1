import { join } from 'node:path';
import type { CapabilityModule } from '../capability/types.js';
import { needDb } from '../capability/needs.js';
import { Checkpointer } from '../store/checkpoint.js';
import { binaryReadingCodec } from './codec.js';
import { queuesSnapshot, registerQueueMetrics } from './metrics.js';
import { Outbox } from './outbox.js';
import { outboxPort } from './port.js';
import { QueueService } from './service.js';

export { Outbox, type UplinkMessage } from './outbox.js';
export { outboxPort, type OutboxAccess, type OutboxPort } from './port.js';
export type { OutboundMessage, Priority, QueuesSnapshot } from './types.js';

/**
 * The store-and-forward outbox: a pipeline sink (started before every source, so nothing is
 * acknowledged that cannot be committed), `outbox` for the uplink and the publisher, /mgmt/queues
 * and the edge_gateway_queue_* metrics. The uplink is its own module (src/uplink/index.ts).
 */
export const queueModule: CapabilityModule = {
  name: 'queue',
  ownsTables: true,
  enabled: (config) => config.queue.enabled,
  build(ctx, db) {
    const { config } = ctx;
    const log = ctx.log.child({ mod: 'outbox' });
    const store = needDb(db, 'queue');
    const outbox = new Outbox({
      db: store,
      log,
      config: config.queue,
      codec: binaryReadingCodec,
      // Group commits append to a journal, spilled into SQLite now and then (docs/queues.md §Disk writes).
      journal: { path: join(config.gateway.data_dir, 'outbox.journal'), fsync: config.gateway.durability === 'full' },
    });
    const port = outboxPort(outbox);
    const quota = { maxBytes: config.queue.outbox.max_bytes, maxAgeS: config.queue.outbox.max_age_s };
    // The uplink is built after this module: read its view when asked, not now.
    const snapshot = () => queuesSnapshot(port, ctx.provided.uplink, quota);
    registerQueueMetrics(ctx.metrics, snapshot);
    return {
      services: [
        new QueueService({
          outbox,
          pipeline: ctx.pipeline,
          log,
          // WAL checkpoints off the event loop (docs/queues.md §Disk writes).
          checkpointer: new Checkpointer({ db: store, log: ctx.log.child({ mod: 'store' }) }),
        }),
      ],
      provides: { outbox: port },
      mgmt: { resources: { queues: snapshot } },
    };
  },
};
