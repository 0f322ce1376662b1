import type { CapabilityModule } from '../capability/types.js';
import type { Service } from '../lifecycle/service.js';
import { GatewayPublisher } from './publisher.js';
import { LocalReadings } from './readings.js';

export { GatewayPublisher } from './publisher.js';
export { LocalReadings, readingJson } from './readings.js';
export type { Publisher, PublishRequest, PublishOutcome } from './types.js';

/**
 * The one publisher (local broker and/or outbox, whichever is enabled) and, when the broker runs,
 * every accepted reading on the local `sensors/{id}/data`. After the queue and broker modules.
 */
export const publisherModule: CapabilityModule = {
  name: 'publisher',
  enabled: () => true,
  build(ctx) {
    const { broker, outbox } = ctx.provided;
    const log = ctx.log.child({ mod: 'publisher' });
    const publisher = new GatewayPublisher({ log, local: broker, uplink: outbox });
    const services: Service[] = [];
    if (broker && ctx.config.publisher.local_readings) {
      services.push(
        new LocalReadings({
          pipeline: ctx.pipeline,
          local: broker,
          qos: ctx.config.publisher.local_readings_qos,
          log,
          metrics: ctx.metrics,
        }),
      );
    }
    return { services, provides: { publisher } };
  },
};
