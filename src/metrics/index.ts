import type { CapabilityModule } from '../capability/types.js';
import { MetricsServer } from './server.js';

export { createRegistry, MetricsServer, METRIC_PREFIX } from './server.js';

/** GET /metrics, GET /health and the status page's routes; last in the list, so READY means every other listener is up. */
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
          // GET /health means what /mgmt/health means; the status page's routes share the listener.
          health: () => ctx.health(),
          routes: ctx.provided.httpRoutes ?? [],
        }),
      ],
    };
  },
};
