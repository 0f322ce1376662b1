import type { CapabilityModule } from '../capability/types.js';
import { needDb, needSeam } from '../capability/needs.js';
import type { Service } from '../lifecycle/service.js';
import { buildDownlink } from './downlink-module.js';
import { Uplink } from './uplink.js';
import { createProfile } from './profiles/index.js';

export { Uplink, MSG_ID_PROPERTY } from './uplink.js';
export { defaultTopicLayout, type TopicLayout, type DownlinkTopic } from './topics.js';
export { codecFormat, jsonFormat, readingsToJson, type PayloadFormat } from './formats.js';

/**
 * The MQTT 5 link to the cloud, fed by the outbox (Priority-keyed port) through the scheduler and
 * the token bucket; with uplink.downlink.enabled also the way back (commands, desired config,
 * reported state; docs/uplink.md). Needs the queue module before it in the list.
 */
export const uplinkModule: CapabilityModule = {
  name: 'uplink',
  enabled: (config) => config.queue.enabled && config.uplink.enabled,
  // The downlink's command ids and config sync record, and the audit rows of cloud commands.
  ownsTables: true,
  build(ctx, db) {
    const { config } = ctx;
    const u = config.uplink;
    // The profile (uplink.profile, src/uplink/profiles/) is the one wire seam: connect options,
    // topics, payload format, what comes down, where results and state go.
    const uplink = new Uplink({
      config: u,
      queue: config.queue,
      gatewayId: config.gateway.id,
      outbox: needSeam(ctx.provided.outbox, 'outbox', 'uplink'),
      log: ctx.log.child({ mod: 'uplink' }),
      profile: createProfile(u, config.gateway.id, undefined, config.gateway.data_dir),
    });
    const services: Service[] = [];
    if (u.downlink.enabled) {
      // Every profile's commands go through the one pipeline: authorisation, validation, dedupe, audit.
      services.push(buildDownlink(ctx, needDb(db, 'uplink'), uplink));
    } else {
      uplink.onDownlink((d) =>
        ctx.log.warn(
          { kind: d.kind, profile: uplink.profile.name },
          'uplink: a downlink message arrived but uplink.downlink.enabled is off; ignored',
        ),
      );
    }
    return {
      services: [uplink, ...services],
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
