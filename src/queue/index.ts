import type { GatewayContext } from '../context.js';
import type { Service } from '../lifecycle/service.js';
import { Checkpointer } from '../store/checkpoint.js';
import { Uplink } from '../uplink/uplink.js';
import { binaryReadingCodec } from './codec.js';
import { queuesSnapshot, registerQueueMetrics } from './metrics.js';
import { Outbox } from './outbox.js';
import { QueueService } from './service.js';
import type { QueuesSnapshot } from './types.js';

export { Outbox, type UplinkMessage } from './outbox.js';
export type { OutboundMessage, Priority, QueuesSnapshot } from './types.js';

export interface QueueWiring {
  /** In start order: the outbox (a pipeline sink) first, then the uplink. Both before any source. */
  services: Service[];
  /** `outbox.enqueue(OutboundMessage)` for alerts, device status, inspection results. */
  outbox: Outbox;
  uplink: Uplink | undefined;
  /** The /mgmt/queues document. */
  snapshot: () => QueuesSnapshot;
  /** The uplink part of /mgmt/status. */
  uplinkState: () => { state: string; url: string | null; inflight: number };
  /** POST /mgmt/uplink/reconnect. */
  reconnect: () => { state: string };
}

/** Builds the outbox, its sink and the uplink from the config (called first in buildServices). */
export function buildQueue(ctx: GatewayContext): QueueWiring {
  const { config } = ctx;
  const outbox = new Outbox({
    db: ctx.db,
    log: ctx.log.child({ mod: 'outbox' }),
    config: config.queue,
    codec: binaryReadingCodec,
  });
  const services: Service[] = [
    new QueueService({
      outbox,
      pipeline: ctx.pipeline,
      log: ctx.log.child({ mod: 'outbox' }),
      checkpointer: new Checkpointer({ db: ctx.db, log: ctx.log.child({ mod: 'store' }) }),
    }),
  ];
  let uplink: Uplink | undefined;
  if (config.uplink.enabled) {
    uplink = new Uplink({
      config: config.uplink,
      queue: config.queue,
      gatewayId: config.gateway.id,
      outbox,
      log: ctx.log.child({ mod: 'uplink' }),
    });
    services.push(uplink);
  }
  const quota = { maxBytes: config.queue.outbox.max_bytes, maxAgeS: config.queue.outbox.max_age_s };
  const snapshot = () => queuesSnapshot(outbox, uplink, quota);
  registerQueueMetrics(ctx.metrics, snapshot);
  return {
    services,
    outbox,
    uplink,
    snapshot,
    uplinkState: () => ({
      state: uplink ? (uplink.isOnline ? 'online' : 'offline') : 'disabled',
      url: uplink ? config.uplink.url : null,
      inflight: uplink?.inflightCount ?? 0,
    }),
    reconnect: () => ({ state: uplink ? uplink.reconnectNow() : 'disabled' }),
  };
}
