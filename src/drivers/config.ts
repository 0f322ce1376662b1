import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { commonDriverKeys } from './common-config.js';
import { CoapDriverConfigSchema } from './coap/config.js';
import { SerialLinesConfigSchema } from './lines/config.js';
import { ModbusRtuConfigSchema } from './modbus/config.js';
import { NmeaConfigSchema } from './nmea/config.js';
import { SimulatedConfigSchema } from './simulated/config.js';

/**
 * Entry schemas of the driver types known when the config is validated. A module that adds a
 * built-in type (the CoAP poller in src/drivers/coap/) adds its entry schema here and its factory
 * in builtin.ts. Types added at run time by plugins use the `x-` form below.
 */
const ENTRY_SCHEMAS = [
  SerialLinesConfigSchema,
  NmeaConfigSchema,
  ModbusRtuConfigSchema,
  SimulatedConfigSchema,
  CoapDriverConfigSchema,
] as const;

/** Plugin driver types: `type: x-<name>`; `options` is checked against the plugin's schema at start. */
export const EXTENSION_TYPE_PATTERN = '^x-[a-z0-9][a-z0-9-]{0,47}$';
export const ExtensionDriverConfigSchema = Type.Object(
  {
    ...commonDriverKeys('x-'),
    type: Type.String({ pattern: EXTENSION_TYPE_PATTERN, description: 'A driver type registered by a plugin.' }),
    options: Type.Record(Type.String(), Type.Unknown(), {
      default: {},
      description: 'Options of the plugin driver type; validated against its schema when the driver is created.',
    }),
  },
  { additionalProperties: false },
);

export type SerialLinesEntry = Static<typeof SerialLinesConfigSchema>;
export type DriverEntry = Static<(typeof ENTRY_SCHEMAS)[number]> | Static<typeof ExtensionDriverConfigSchema>;

const typeName = (s: TSchema): string =>
  (s as unknown as { properties: { type: { const: string } } }).properties.type.const;
export const BUILTIN_TYPE_NAMES: readonly string[] = ENTRY_SCHEMAS.map(typeName);

/**
 * A list discriminated by `type`: each entry is checked against exactly one type's closed schema
 * through if/then, so errors name only that type's keys (an anyOf of the types would report every
 * type's complaints) and defaults apply (ajv ignores defaults inside anyOf/oneOf, not inside then).
 */
const DriverEntrySchema = Type.Unsafe<DriverEntry>({
  type: 'object',
  required: ['type', 'id'],
  properties: {
    type: {
      type: 'string',
      anyOf: [...BUILTIN_TYPE_NAMES.map((t) => ({ const: t })), { pattern: EXTENSION_TYPE_PATTERN }],
      description: `Driver type: ${BUILTIN_TYPE_NAMES.join(', ')}, or x-<name> for a plugin type.`,
    },
    id: { type: 'string' },
  },
  allOf: [
    ...ENTRY_SCHEMAS.map((s) => ({
      if: { properties: { type: { const: typeName(s) } }, required: ['type'] },
      then: s,
    })),
    {
      if: { properties: { type: { type: 'string', pattern: EXTENSION_TYPE_PATTERN } }, required: ['type'] },
      then: ExtensionDriverConfigSchema,
    },
  ],
});

export const DriversConfigSchema = Type.Array(DriverEntrySchema, {
  default: [],
  description: 'Sensor drivers: one entry per port or synthetic source; see docs/drivers.md.',
});
export type DriversConfig = Static<typeof DriversConfigSchema>;
