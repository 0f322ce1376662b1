import { analyticsModule } from '../analytics/index.js';
import { brokerModule } from '../broker/index.js';
import { coapModule } from '../coap/index.js';
import type { ConfigIssue } from '../config/load.js';
import type { GatewayConfig } from '../config/schema.js';
import { deviceStatusModule } from '../devices/status.js';
import { driversModule } from '../drivers/index.js';
import { historyModule } from '../history/index.js';
import { statusModule } from '../status/index.js';
import { visionModule } from '../vision/index.js';
import { DriverTypeRegistry } from '../drivers/registry.js';
import { metricsModule } from '../metrics/index.js';
import { otaModule } from '../ota/index.js';
import { publisherModule } from '../publisher/index.js';
import { queueModule } from '../queue/index.js';
import { uplinkModule } from '../uplink/index.js';
import { profileIssues } from '../uplink/profiles/index.js';
import { pluginsModule } from '../plugins/index.js';
import type { CapabilityModule } from './types.js';

/**
 * Every capability, in start order (stopped in reverse): sinks before sources, so nothing is
 * acknowledged before it can be committed (outbox, uplink, broker, publisher and status before
 * CoAP and the drivers); metrics last, so READY means every listener is up. A new capability
 * (vision, OTA, plugins, rules, cloud link, status page) adds one line here.
 */
export const MODULES: readonly CapabilityModule[] = [
  queueModule,
  uplinkModule,
  brokerModule,
  publisherModule,
  deviceStatusModule,
  historyModule,
  analyticsModule,
  visionModule,
  coapModule,
  pluginsModule,
  driversModule,
  otaModule,
  statusModule,
  metricsModule,
];

/** The driver types of every enabled module for this config; throws on a name registered twice. */
export function collectDriverTypes(config: GatewayConfig, modules: readonly CapabilityModule[]): DriverTypeRegistry {
  const types = new DriverTypeRegistry();
  for (const m of modules) {
    if (!m.enabled(config)) continue;
    for (const t of m.driverTypes?.(config) ?? []) types.register(t);
  }
  return types;
}

/**
 * Checks the config against what the modules provide, beyond the schema: every enabled driver
 * entry names a registered driver type. The schema accepts any `x-<name>` (a plugin type), but
 * one that no module registers could never start; check-config and the start refuse it here.
 */
export function checkAgainstModules(
  config: GatewayConfig,
  modules: readonly CapabilityModule[] = MODULES,
): ConfigIssue[] {
  const types = collectDriverTypes(config, modules);
  const issues: ConfigIssue[] = [];
  config.drivers.forEach((entry, i) => {
    if (!entry.enabled || types.get(entry.type)) return;
    issues.push({
      path: `drivers[${i}].type`,
      message: `driver type "${entry.type}" is not registered by any module or plugin (known: ${types.names().join(', ')})`,
    });
  });
  issues.push(...profileIssues(config.uplink, config.gateway.id));
  return issues;
}
