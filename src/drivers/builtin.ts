import { coapDriverType } from './coap/driver.js';
import { serialLinesType } from './lines/driver.js';
import { modbusRtuType } from './modbus/driver.js';
import { nmeaType } from './nmea/driver.js';
import { DriverTypeRegistry } from './registry.js';
import { simulatedType } from './simulated/driver.js';
import type { DriverType } from './types.js';

/** The built-in driver types (the drivers module contributes them to the root's registry). */
export const BUILTIN_DRIVER_TYPES: readonly DriverType<never>[] = [
  serialLinesType,
  nmeaType,
  modbusRtuType,
  simulatedType,
  coapDriverType,
];

/** A registry holding the built-in driver types; modules and plugins register more on it. */
export function createDriverTypes(): DriverTypeRegistry {
  const r = new DriverTypeRegistry();
  for (const t of BUILTIN_DRIVER_TYPES) r.register(t);
  return r;
}
