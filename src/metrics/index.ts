import type { CapabilityModule } from '../capability/types.js';
import { MetricsServer } from './server.js';

export { createRegistry, MetricsServer, METRIC_PREFIX } from './server.js';

/** GET /metrics; last in the list, so READY means every other listener is up. */
export const metricsModule: CapabilityModule = {
  name: 'metrics',
  enabled: (config) => config.metrics.enabled,
  build(ctx) {
    return {
      services: [
        new MetricsServer({
          config: ctx.config.metrics,
          registry: ctx.metrics,
          log: ctx.log.child({ mod: 'metrics' }),
        }),
      ],
    };
  },
};
