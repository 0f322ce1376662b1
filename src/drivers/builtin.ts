import { coapDriverType } from './coap/driver.js';
import { serialLinesType } from './lines/driver.js';
import { modbusRtuType } from './modbus/driver.js';
import { nmeaType } from './nmea/driver.js';
import { DriverTypeRegistry } from './registry.js';
import { simulatedType } from './simulated/driver.js';

/** A registry holding the built-in driver types; modules and plugins register more on it. */
export function createDriverTypes(): DriverTypeRegistry {
  const r = new DriverTypeRegistry();
  r.register(serialLinesType);
  r.register(nmeaType);
  r.register(modbusRtuType);
  r.register(simulatedType);
  r.register(coapDriverType);
  return r;
}
