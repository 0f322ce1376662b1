import type { CapabilityModule } from '../capability/types.js';
import { BUILTIN_DRIVER_TYPES } from './builtin.js';
import { DriverManager } from './manager.js';

export type { DriverType, Driver, DriverContext, Sample, CommandResult } from './types.js';
export { DriverManager } from './manager.js';
export { DriverTypeRegistry } from './registry.js';

/**
 * Sensor drivers from `drivers:`. The built-in types are this module's; the manager instantiates
 * from the registry the root filled with every enabled module's types (plugins' `x-` types too).
 * Its command handler serves `commands/{deviceId}` for the devices a driver owns.
 */
export const driversModule: CapabilityModule = {
  name: 'drivers',
  enabled: (config) => config.drivers.length > 0,
  driverTypes: () => BUILTIN_DRIVER_TYPES,
  build(ctx) {
    const manager = new DriverManager({
      config: ctx.config.drivers,
      types: ctx.driverTypes,
      log: ctx.log.child({ mod: 'drivers' }),
      pipeline: ctx.pipeline,
      devices: ctx.devices,
      metrics: ctx.metrics,
    });
    return { services: [manager], commands: [manager] };
  },
};
