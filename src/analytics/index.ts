import type { CapabilityModule } from '../capability/types.js';
import { needDb, needSeam } from '../capability/needs.js';
import { AnalyticsService } from './service.js';

export { AnalyticsService, type AlertsView } from './service.js';

/**
 * Rules on accepted readings (docs/analytics.md): alerts on `alerts/{deviceId}` and device
 * commands through the publisher (commands reach drivers through the command router), rule state
 * in its own tables, GET /mgmt/alerts. After the publisher in the module list, before the sources.
 */
export const analyticsModule: CapabilityModule = {
  name: 'analytics',
  ownsTables: true,
  enabled: (config) => config.analytics.enabled,
  build(ctx, db) {
    const { pipeline } = ctx;
    const analytics = new AnalyticsService({
      config: ctx.config.analytics,
      db: needDb(db, 'analytics'),
      publisher: needSeam(ctx.provided.publisher, 'publisher', 'analytics'),
      log: ctx.log.child({ mod: 'analytics' }),
      // An after-commit sink: called with each batch once every other sink (the outbox included)
      // committed it, in commit order — a batch at a time, not an event per reading.
      onAccepted: (fn) => pipeline.addSink({ name: 'analytics', afterCommit: true, accept: fn }),
      registry: ctx.metrics,
    });
    return {
      services: [analytics],
      provides: { alerts: analytics },
      mgmt: {
        resources: {
          alerts: {
            view: () => analytics.view(),
            acknowledge: (id) => analytics.acknowledge(id),
            onChange: (fn) => analytics.onChange(fn),
          },
        },
      },
    };
  },
};
