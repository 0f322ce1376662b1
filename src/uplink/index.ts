import type { CapabilityModule } from '../capability/types.js';
import { needSeam } from '../capability/needs.js';
import { Uplink } from './uplink.js';

export { Uplink, MSG_ID_PROPERTY } from './uplink.js';

/**
 * The MQTT 5 link to the cloud, fed by the outbox (Priority-keyed port) through the scheduler and
 * the token bucket. Needs the queue module before it in the list.
 */
export const uplinkModule: CapabilityModule = {
  name: 'uplink',
  enabled: (config) => config.queue.enabled && config.uplink.enabled,
  build(ctx) {
    const { config } = ctx;
    const uplink = new Uplink({
      config: config.uplink,
      queue: config.queue,
      gatewayId: config.gateway.id,
      outbox: needSeam(ctx.provided.outbox, 'outbox', 'uplink'),
      log: ctx.log.child({ mod: 'uplink' }),
    });
    return {
      services: [uplink],
      provides: { uplink },
      mgmt: {
        resources: {
          uplink: () => ({
            state: uplink.isOnline ? 'online' : 'offline',
            url: config.uplink.url,
            inflight: uplink.inflightCount,
          }),
          uplinkReconnect: () => ({ state: uplink.reconnectNow() }),
        },
      },
    };
  },
};
