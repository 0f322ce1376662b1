import type { GatewayContext } from '../context.js';
import { createDriverTypes } from './builtin.js';
import { DriverManager } from './manager.js';
import type { DriverTypeRegistry } from './registry.js';

export type { DriverType, Driver, DriverContext, Sample, CommandResult } from './types.js';
export { DriverManager } from './manager.js';
export { DriverTypeRegistry } from './registry.js';

/**
 * Wires the driver layer from the config. `types` may be given so other modules register their
 * driver types first; `manager.handleCommand(deviceId, payload)` is the hook for commands/{id}.
 */
export function buildDrivers(
  ctx: GatewayContext,
  types: DriverTypeRegistry = createDriverTypes(),
): { manager: DriverManager; types: DriverTypeRegistry } {
  const manager = new DriverManager({
    config: ctx.config.drivers,
    types,
    log: ctx.log.child({ mod: 'drivers' }),
    pipeline: ctx.pipeline,
    devices: ctx.devices,
    metrics: ctx.metrics,
  });
  return { manager, types };
}
