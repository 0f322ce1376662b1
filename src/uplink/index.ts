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
    // Until command routing lands (issue 15 item 1), a device command from any profile's layout
    // goes to the local `commands/{deviceId}` (DESIGN topics); the rest is logged.
    uplink.onDownlink((d) => {
      const broker = ctx.provided.broker;
      if (d.kind === 'device-command' && broker) {
        broker
          .publish({ topic: `commands/${d.deviceId}`, payload: d.payload, qos: 1, retain: false })
          .catch((err: unknown) => ctx.log.warn({ err, deviceId: d.deviceId }, 'cloud command not delivered locally'));
      } else {
        ctx.log.info({ kind: d.kind, profile: uplink.profile.name }, 'uplink: downlink message not handled');
      }
    });
    return {
      services: [uplink],
      provides: { uplink },
      mgmt: {
        resources: {
          uplink: () => ({
            state: uplink.isOnline ? 'online' : 'offline',
            url: config.uplink.url,
            profile: uplink.profile.name,
            unsendable: uplink.counters.unsendable,
            inflight: uplink.inflightCount,
          }),
          uplinkReconnect: () => ({ state: uplink.reconnectNow() }),
        },
      },
    };
  },
};
