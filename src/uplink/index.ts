import type { CapabilityModule } from '../capability/types.js';
import { needDb, needSeam } from '../capability/needs.js';
import type { Service } from '../lifecycle/service.js';
import { buildDownlink } from './downlink-module.js';
import { codecFormat, FormatSelector, jsonFormat } from './formats.js';
import { defaultTopicLayout, formatFor } from './topics.js';
import { Uplink, type LinkHooks } from './uplink.js';

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
    const prefix = u.topic_prefix || `edge/${config.gateway.id}`;
    const layout = defaultTopicLayout(prefix);
    const pick = formatFor(u.payload_format_rules, u.payload_format);
    const allCodec = u.payload_format === 'codec' && u.payload_format_rules.every((r) => r.format === 'codec');
    const format = allCodec
      ? undefined
      : new FormatSelector((topic) => (pick(topic) === 'json' ? jsonFormat : codecFormat));
    const log = ctx.log.child({ mod: 'uplink' });
    let link: LinkHooks | undefined;
    const services: Service[] = [];
    // The downlink answers through the uplink built below (read when a command arrives).
    const ref: { uplink?: Uplink } = {};
    if (u.downlink.enabled) {
      const built = buildDownlink(ctx, needDb(db, 'uplink'), layout, () => ref.uplink!);
      link = built.link;
      services.push(built.service);
    }
    const uplink = new Uplink({
      config: u,
      queue: config.queue,
      gatewayId: config.gateway.id,
      outbox: needSeam(ctx.provided.outbox, 'outbox', 'uplink'),
      log,
      layout,
      ...(format ? { format } : {}),
      ...(link ? { link } : {}),
    });
    ref.uplink = uplink;
    return {
      services: [uplink, ...services],
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
