import type { CapabilityModule } from '../capability/types.js';
import { needDb } from '../capability/needs.js';
import { BrokerService } from './broker.js';

export { BrokerService } from './broker.js';

/** The local MQTT broker (aedes): ingest, auth, ACL; its SQLite persistence owns tables. */
export const brokerModule: CapabilityModule = {
  name: 'broker',
  ownsTables: true,
  enabled: (config) => config.broker.enabled,
  build(ctx, db) {
    const broker = new BrokerService({
      config: ctx.config.broker,
      log: ctx.log.child({ mod: 'broker' }),
      pipeline: ctx.pipeline,
      devices: ctx.devices,
      registry: ctx.metrics,
      db: needDb(db, 'broker'),
    });
    return { services: [broker], provides: { broker } };
  },
};
