import type { CapabilityModule } from '../capability/types.js';
import { needDb } from '../capability/needs.js';
import { loadConfigFile } from '../config/load.js';
import { PluginDriverBridge, proxyDriverType } from './drivers.js';
import { PluginManager, type PluginAction } from './manager.js';
import { PluginStore } from './store.js';

export { PluginManager } from './manager.js';
export * from './api.js';

/** POST /mgmt/plugins?action=reload|disable|release&name=NAME (ctl plugins ...). */
export interface PluginActions {
  act(action: PluginAction, name: string): Promise<Record<string, unknown> | undefined>;
}

declare module '../mgmt/registry.js' {
  interface MgmtResources {
    pluginActions: PluginActions;
  }
}

/** One bridge per config object: driverTypes() runs before build() (check-config needs the x- names). */
const bridges = new WeakMap<object, PluginDriverBridge>();
function bridgeFor(config: object): PluginDriverBridge {
  let b = bridges.get(config);
  if (!b) bridges.set(config, (b = new PluginDriverBridge()));
  return b;
}

/**
 * Site plugins (docs/plugins.md): typed, capability-scoped, guarded or in worker threads,
 * quarantined when faulty, reloadable. After the publisher and CoAP (it adds /plugins/{name}/...
 * resources), before the drivers (which may use plugin `x-` driver types). Owns tables: plugin
 * key-value store and the quarantine list.
 */
export const pluginsModule: CapabilityModule = {
  name: 'plugins',
  ownsTables: true,
  enabled: (config) => config.plugins.enabled,
  driverTypes(config) {
    const bridge = bridgeFor(config);
    return config.plugins.plugins
      .filter((e) => e.enabled)
      .flatMap((e) => e.driver_types.map((t) => proxyDriverType(t, bridge)));
  },
  build(ctx, db) {
    const log = ctx.log.child({ mod: 'plugins' });
    const configPath = ctx.configPath;
    const manager = new PluginManager({
      config: ctx.config.plugins,
      dataDir: ctx.config.gateway.data_dir,
      pipeline: ctx.pipeline,
      broker: ctx.provided.broker,
      log,
      deps: {
        publisher: ctx.provided.publisher,
        coap: ctx.provided.coapResources,
        store: new PluginStore(needDb(db, 'plugins')),
        metrics: ctx.metrics,
        drivers: bridgeFor(ctx.config),
        log,
      },
      // Reload reads the plugin entries from the file as it is now (new config without a restart).
      ...(configPath
        ? { reread: () => ({ config: loadConfigFile(configPath, process.env, ctx.checkConfig).plugins }) }
        : {}),
    });
    return {
      services: [manager],
      mgmt: {
        resources: {
          plugins: () => manager.view(),
          pluginActions: { act: (action, name) => manager.act(action, name) },
        },
      },
    };
  },
};
